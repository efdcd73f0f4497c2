//! Metering: bytes per direction, frames and rounds, counted around any [`Transport`].
//!
//! Bytes are the exact bytes on the wire: payload plus [`FRAME_HEADER_BYTES`] per frame (the
//! in-memory transport is counted as if it framed too, so the figures do not depend on the
//! transport).
//!
//! A *round* is one wait for the peer. It is counted on a successful receive that follows a send
//! made since the previous receive, or on the very first receive. Consecutive receives belong to
//! the same wait, and so do sends queued before one wait:
//!
//! ```text
//!  P0                        P1
//!  send a ----\    /------ send b
//!              \  /
//!               \/
//!               /\
//!  recv b <----/  \-----> recv a    first receive of each party: 1 round each
//!               /-------- send c
//!  recv c <----/                    P0 sent nothing since it last received: same wait
//!  send d ---------------> recv d    P1 sent c since it last received: its 2nd round
//! ```
//! Totals: P0 1 round, P1 2 rounds. In the usual opening (both send, then both receive),
//! each exchange costs each party exactly 1 round.

use std::ops::{Add, AddAssign, Sub};

use serde::Serialize;

use super::channel::Transport;
use super::frame::FRAME_HEADER_BYTES;
use crate::error::Result;

/// Traffic counters of one party. Subtract two snapshots (or use [`Traffic::since`]) to get the
/// cost of the steps in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Bytes sent, framing included.
    pub bytes_sent: u64,
    /// Bytes received, framing included.
    pub bytes_received: u64,
    /// Frames (messages) sent.
    pub frames_sent: u64,
    /// Frames (messages) received.
    pub frames_received: u64,
    /// Waits for the peer (see the module docs).
    pub rounds: u64,
}

impl Traffic {
    /// The counters accumulated since the snapshot `earlier` (saturating at zero).
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            frames_sent: self.frames_sent.saturating_sub(earlier.frames_sent),
            frames_received: self.frames_received.saturating_sub(earlier.frames_received),
            rounds: self.rounds.saturating_sub(earlier.rounds),
        }
    }

    /// Bytes in both directions.
    pub fn total_bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}

impl Sub for Traffic {
    type Output = Traffic;
    fn sub(self, earlier: Traffic) -> Traffic {
        self.since(&earlier)
    }
}

impl Add for Traffic {
    type Output = Traffic;
    fn add(self, other: Traffic) -> Traffic {
        Traffic {
            bytes_sent: self.bytes_sent + other.bytes_sent,
            bytes_received: self.bytes_received + other.bytes_received,
            frames_sent: self.frames_sent + other.frames_sent,
            frames_received: self.frames_received + other.frames_received,
            rounds: self.rounds + other.rounds,
        }
    }
}

impl AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        *self = *self + other;
    }
}

/// A transport that counts what passes through it; see the module docs for the round rule.
#[derive(Debug)]
pub struct Metered<T: Transport> {
    inner: T,
    traffic: Traffic,
    received_any: bool,
    sent_since_recv: bool,
}

impl<T: Transport> Metered<T> {
    /// Wraps `inner` with all counters at zero.
    pub fn new(inner: T) -> Self {
        Self { inner, traffic: Traffic::default(), received_any: false, sent_since_recv: false }
    }

    /// A snapshot of the counters.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped transport, mutably (traffic through it is not counted).
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the transport, dropping the counters.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Declares that the next receive waits for a message the peer can only send after a step of
    /// its own (e.g. the output reveal after the last exchange): count it as a new round even if
    /// this party sent nothing since its previous receive.
    pub fn start_round(&mut self) {
        self.sent_since_recv = true;
    }

    fn count_send(&mut self, len: usize) {
        self.traffic.bytes_sent += (len + FRAME_HEADER_BYTES) as u64;
        self.traffic.frames_sent += 1;
        self.sent_since_recv = true;
    }
}

impl<T: Transport> Transport for Metered<T> {
    fn set_max_frame_bytes(&mut self, max: usize) {
        self.inner.set_max_frame_bytes(max)
    }
    fn set_read_timeout(&mut self, timeout: std::time::Duration) {
        self.inner.set_read_timeout(timeout)
    }
    fn send(&mut self, payload: &[u8]) -> Result<()> {
        self.inner.send(payload)?;
        self.count_send(payload.len());
        Ok(())
    }

    fn send_owned(&mut self, payload: Vec<u8>) -> Result<()> {
        let len = payload.len();
        self.inner.send_owned(payload)?;
        self.count_send(len);
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        let frame = self.inner.recv()?;
        if !self.received_any || self.sent_since_recv {
            self.traffic.rounds += 1;
        }
        self.received_any = true;
        self.sent_since_recv = false;
        self.traffic.bytes_received += (frame.len() + FRAME_HEADER_BYTES) as u64;
        self.traffic.frames_received += 1;
        Ok(frame)
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MpcError;
    use crate::transport::mem::{mem_pair, mem_pair_with};

    #[test]
    fn bytes_are_payload_plus_header_per_frame() {
        let (a, b) = mem_pair();
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        a.send(&[1; 10]).unwrap();
        a.send(&[]).unwrap();
        a.send_u64s(&[7; 5]).unwrap();
        a.send_owned(vec![2; 3]).unwrap();
        for _ in 0..4 {
            b.recv().unwrap();
        }
        let expect = (10 + 4) + 4 + (40 + 4) + (3 + 4);
        assert_eq!(
            a.traffic(),
            Traffic { bytes_sent: expect, bytes_received: 0, frames_sent: 4, frames_received: 0, rounds: 0 }
        );
        assert_eq!(
            b.traffic(),
            Traffic { bytes_sent: 0, bytes_received: expect, frames_sent: 0, frames_received: 4, rounds: 1 }
        );
    }

    #[test]
    fn exchange_costs_one_round_each() {
        let (a, b) = mem_pair();
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        // Three exchanges of two openings each, both send before they receive.
        for _ in 0..3 {
            a.send_u64s(&[1, 2]).unwrap();
            a.send_u64s(&[3]).unwrap();
            b.send_u64s(&[4, 5]).unwrap();
            b.send_u64s(&[6]).unwrap();
            a.recv_u64s(2, "t").unwrap();
            a.recv_u64s(1, "t").unwrap();
            b.recv_u64s(2, "t").unwrap();
            b.recv_u64s(1, "t").unwrap();
        }
        for t in [a.traffic(), b.traffic()] {
            assert_eq!(t.rounds, 3);
            assert_eq!(t.frames_sent, 6);
            assert_eq!(t.bytes_sent, 3 * (20 + 12));
            assert_eq!(t.bytes_sent, t.bytes_received);
        }
    }

    #[test]
    fn round_rule_matches_the_module_diagram() {
        let (p0, p1) = mem_pair();
        let (mut p0, mut p1) = (Metered::new(p0), Metered::new(p1));
        p0.send(b"a").unwrap();
        p1.send(b"b").unwrap();
        p0.recv().unwrap(); // b: P0's first wait
        p1.recv().unwrap(); // a: P1's first wait
        p1.send(b"c").unwrap();
        p0.recv().unwrap(); // c: P0 sent nothing since its last receive: same wait
        p0.send(b"d").unwrap();
        p1.recv().unwrap(); // d: P1 sent c since its last receive: a new wait
        assert_eq!(p0.traffic().rounds, 1);
        assert_eq!(p1.traffic().rounds, 2);
    }

    #[test]
    fn ping_pong_counts_a_round_per_reply() {
        let (a, b) = mem_pair();
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        for i in 0..5u8 {
            a.send(&[i]).unwrap();
            assert_eq!(b.recv().unwrap(), [i]);
            b.send(&[i, i]).unwrap();
            assert_eq!(a.recv().unwrap().len(), 2);
        }
        assert_eq!(a.traffic().rounds, 5);
        assert_eq!(b.traffic().rounds, 5);
    }

    #[test]
    fn failed_operations_are_not_counted() {
        let (a, b) = mem_pair_with(std::time::Duration::from_millis(10), 8);
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        assert!(matches!(a.send(&[0; 9]), Err(MpcError::FrameTooLarge { .. })));
        assert!(matches!(b.recv(), Err(MpcError::Timeout { .. })));
        assert_eq!(a.traffic(), Traffic::default());
        assert_eq!(b.traffic(), Traffic::default());
    }

    #[test]
    fn snapshots_subtract_and_add() {
        let (a, b) = mem_pair();
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        a.send(&[0; 6]).unwrap();
        b.recv().unwrap();
        let before = b.traffic();
        b.send(&[0; 2]).unwrap();
        a.recv().unwrap();
        a.send(&[0; 1]).unwrap();
        b.recv().unwrap();
        let delta = b.traffic() - before;
        assert_eq!(delta, Traffic { bytes_sent: 6, bytes_received: 5, frames_sent: 1, frames_received: 1, rounds: 1 });
        assert_eq!(delta, b.traffic().since(&before));
        assert_eq!(before + delta, b.traffic());
        assert_eq!(delta.total_bytes(), 11);
        let mut acc = Traffic::default();
        acc += delta;
        acc += delta;
        assert_eq!(acc.rounds, 2);
    }

    #[test]
    fn works_through_box_dyn_and_unwraps() {
        let (a, b) = mem_pair();
        let a: Box<dyn Transport> = Box::new(a);
        let mut a = Metered::new(a);
        let mut b = Metered::new(b);
        a.send_msg(&(7u32, String::from("hi"))).unwrap();
        let (n, s): (u32, String) = b.recv_msg("test").unwrap();
        assert_eq!((n, s.as_str()), (7, "hi"));
        assert_eq!(a.traffic().bytes_sent, b.traffic().bytes_received);
        let _inner: Box<dyn Transport> = a.into_inner();
    }
}

#[cfg(test)]
mod start_round_tests {
    use super::*;
    use crate::transport::mem::mem_pair;

    #[test]
    fn a_declared_round_counts_even_after_a_receive() {
        let (a, b) = mem_pair();
        let (mut a, mut b) = (Metered::new(a), Metered::new(b));
        a.send(&[1]).unwrap();
        a.send(&[2]).unwrap();
        b.recv().unwrap();
        assert_eq!(b.traffic().rounds, 1);
        b.recv().unwrap();
        assert_eq!(b.traffic().rounds, 1, "consecutive receives are one wait");
        a.send(&[3]).unwrap();
        b.start_round();
        b.recv().unwrap();
        assert_eq!(b.traffic().rounds, 2, "a declared dependent message is a new round");
    }
}
