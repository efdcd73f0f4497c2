//! In-process transport: two ends of a pair of std channels, for tests, benchmarks and
//! single-process simulations (one thread per party).
//!
//! Frames are moved, not copied, when sent with [`Transport::send_owned`] (which
//! [`Transport::send_u64s`] uses), so an exchange costs a channel hand-off whatever its size.
//! Sends never block (the channels are unbounded); receives wait at most the configured
//! timeout. The maximum frame size is enforced on both sides as on a real connection.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use super::channel::{DEFAULT_TIMEOUT, Transport};
use super::frame::{DEFAULT_MAX_FRAME_BYTES, check_frame_len};
use crate::error::{MpcError, Result};

/// One end of an in-memory connection; see [`mem_pair`], or [`MemTransport::replay`] for an end
/// whose peer is a recording.
#[derive(Debug)]
pub struct MemTransport {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    timeout: Duration,
    max_frame: usize,
    /// Copies of the frames received since [`MemTransport::record`].
    tape: Option<Vec<Vec<u8>>>,
    /// A replaying end's sent frames (the other end of `tx`).
    sink: Option<Receiver<Vec<u8>>>,
}

/// Two connected in-memory transports with the default timeout ([`DEFAULT_TIMEOUT`]) and
/// maximum frame size ([`DEFAULT_MAX_FRAME_BYTES`]).
///
/// ```
/// use masq_mpc::transport::{mem_pair, Transport};
/// let (mut a, mut b) = mem_pair();
/// a.send_u64s(&[1, 2, 3]).unwrap();
/// assert_eq!(b.recv_u64s(3, "example").unwrap(), vec![1, 2, 3]);
/// ```
pub fn mem_pair() -> (MemTransport, MemTransport) {
    mem_pair_with(DEFAULT_TIMEOUT, DEFAULT_MAX_FRAME_BYTES)
}

/// Two connected in-memory transports whose receives time out after `timeout` and that refuse
/// frames above `max_frame_bytes`.
pub fn mem_pair_with(timeout: Duration, max_frame_bytes: usize) -> (MemTransport, MemTransport) {
    let (tx_ab, rx_ab) = mpsc::channel();
    let (tx_ba, rx_ba) = mpsc::channel();
    let a = MemTransport { tx: tx_ab, rx: rx_ba, timeout, max_frame: max_frame_bytes, tape: None, sink: None };
    let b = MemTransport { tx: tx_ba, rx: rx_ab, timeout, max_frame: max_frame_bytes, tape: None, sink: None };
    (a, b)
}

impl MemTransport {
    /// An end whose peer is a recording: receives return `frames` in order (then fail as a
    /// vanished peer), sends are kept for [`MemTransport::take_sent`]. Lets one party run alone,
    /// on all of the machine's cores, against what its peer sent in an earlier run.
    pub fn replay(frames: Vec<Vec<u8>>, timeout: Duration, max_frame_bytes: usize) -> MemTransport {
        let (tx_in, rx) = mpsc::channel();
        for f in frames {
            tx_in.send(f).expect("the receiver is alive");
        }
        drop(tx_in);
        let (tx, sink) = mpsc::channel();
        MemTransport { tx, rx, timeout, max_frame: max_frame_bytes, tape: None, sink: Some(sink) }
    }

    /// Keeps a copy of every frame received from now on ([`MemTransport::take_recording`]).
    pub fn record(&mut self) {
        self.tape = Some(Vec::new());
    }

    /// The frames received since [`MemTransport::record`] (empty if not recording).
    pub fn take_recording(&mut self) -> Vec<Vec<u8>> {
        self.tape.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A replaying end's frames sent so far (empty for an end of a pair).
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        self.sink.as_ref().map(|s| s.try_iter().collect()).unwrap_or_default()
    }

    /// How long [`Transport::recv`] waits for a frame.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long [`Transport::recv`] waits for a frame.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The largest payload this end sends or accepts.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame
    }
}

impl Transport for MemTransport {
    fn send(&mut self, payload: &[u8]) -> Result<()> {
        check_frame_len(payload.len(), self.max_frame)?;
        self.send_owned(payload.to_vec())
    }

    fn send_owned(&mut self, payload: Vec<u8>) -> Result<()> {
        check_frame_len(payload.len(), self.max_frame)?;
        self.tx.send(payload).map_err(|_| MpcError::PeerDisconnected { during: "sending a frame" })
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        const DURING: &str = "receiving a frame";
        let frame = match self.rx.recv_timeout(self.timeout) {
            Ok(frame) => frame,
            Err(RecvTimeoutError::Timeout) => return Err(MpcError::Timeout { during: DURING, after: self.timeout }),
            Err(RecvTimeoutError::Disconnected) => return Err(MpcError::PeerDisconnected { during: DURING }),
        };
        // The peer may have been built with a larger maximum.
        check_frame_len(frame.len(), self.max_frame)?;
        if let Some(tape) = &mut self.tape {
            tape.push(frame.clone());
        }
        Ok(frame)
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn exchange_between_two_threads() {
        let (mut a, mut b) = mem_pair();
        let xs: Vec<u64> = (0..1000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let ys: Vec<u64> = xs.iter().map(|x| !x).collect();
        let (xs2, ys2) = (xs.clone(), ys.clone());
        let t = std::thread::spawn(move || b.exchange_u64s(&ys2, "test exchange").unwrap());
        let got_a = a.exchange_u64s(&xs2, "test exchange").unwrap();
        let got_b = t.join().unwrap();
        assert_eq!(got_a, ys);
        assert_eq!(got_b, xs);
    }

    #[test]
    fn a_recording_replays_to_a_lone_end() {
        let (mut a, mut b) = mem_pair();
        b.record();
        a.send(b"one").unwrap();
        a.send(b"two").unwrap();
        assert_eq!(b.recv().unwrap(), b"one");
        assert_eq!(b.recv().unwrap(), b"two");
        let tape = b.take_recording();
        assert_eq!(tape, vec![b"one".to_vec(), b"two".to_vec()]);
        let mut lone = MemTransport::replay(tape, Duration::from_millis(50), 64);
        lone.send(b"reply").unwrap();
        assert_eq!(lone.recv().unwrap(), b"one");
        assert_eq!(lone.recv().unwrap(), b"two");
        assert!(matches!(lone.recv(), Err(MpcError::PeerDisconnected { .. })));
        assert_eq!(lone.take_sent(), vec![b"reply".to_vec()]);
        assert!(lone.send(&[0; 65]).is_err(), "the frame limit holds");
    }

    #[test]
    fn frames_arrive_in_order_and_empty_frames_work() {
        let (mut a, mut b) = mem_pair();
        a.send(b"one").unwrap();
        a.send(b"").unwrap();
        a.send_owned(b"three".to_vec()).unwrap();
        assert_eq!(b.recv().unwrap(), b"one");
        assert_eq!(b.recv().unwrap(), b"");
        assert_eq!(b.recv().unwrap(), b"three");
    }

    #[test]
    fn recv_times_out() {
        let (mut a, _b) = mem_pair_with(Duration::from_millis(50), DEFAULT_MAX_FRAME_BYTES);
        let start = Instant::now();
        let err = a.recv().unwrap_err();
        assert!(matches!(err, MpcError::Timeout { after, .. } if after == Duration::from_millis(50)), "{err:?}");
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn dropped_peer_is_disconnected_both_ways() {
        let (mut a, b) = mem_pair();
        drop(b);
        assert!(matches!(a.recv(), Err(MpcError::PeerDisconnected { .. })));
        assert!(matches!(a.send(b"x"), Err(MpcError::PeerDisconnected { .. })));
    }

    #[test]
    fn frames_sent_before_the_drop_are_still_delivered() {
        let (mut a, mut b) = mem_pair();
        b.send(b"last words").unwrap();
        drop(b);
        assert_eq!(a.recv().unwrap(), b"last words");
        assert!(matches!(a.recv(), Err(MpcError::PeerDisconnected { .. })));
    }

    #[test]
    fn max_frame_enforced_on_send_and_receive() {
        let (mut a, mut b) = mem_pair_with(DEFAULT_TIMEOUT, 16);
        assert!(matches!(a.send(&[0; 17]), Err(MpcError::FrameTooLarge { len: 17, max: 16 })));
        assert!(matches!(a.send_u64s(&[0; 3]), Err(MpcError::FrameTooLarge { len: 24, max: 16 })));
        a.send(&[0; 16]).unwrap();
        assert_eq!(b.recv().unwrap().len(), 16);
        // A peer with a larger limit cannot push a frame past ours.
        let (mut big, mut small) = mem_pair_with(DEFAULT_TIMEOUT, 1024);
        small.max_frame = 16;
        big.send(&[1; 100]).unwrap();
        assert!(matches!(small.recv(), Err(MpcError::FrameTooLarge { len: 100, max: 16 })));
    }

    #[test]
    fn wrong_length_is_unexpected_message() {
        let (mut a, mut b) = mem_pair();
        a.send_u64s(&[1, 2]).unwrap();
        let err = b.recv_u64s(3, "opening x").unwrap_err();
        assert!(matches!(err, MpcError::UnexpectedMessage { during: "opening x", .. }), "{err:?}");
        a.send(&[0; 9]).unwrap();
        assert!(matches!(b.recv_u64s(1, "opening y"), Err(MpcError::UnexpectedMessage { .. })));
    }

    #[test]
    fn large_exchange_is_fast() {
        // Moves the buffers: a 100,000-element exchange costs a channel hand-off plus the
        // encode/decode passes, far below a millisecond on any recent CPU. The bound is loose so
        // that a loaded machine does not fail it, but a byte-by-byte path would.
        let (mut a, mut b) = mem_pair();
        let xs: Vec<u64> = (0..100_000u64).collect();
        let mut best = Duration::MAX;
        for _ in 0..20 {
            let start = Instant::now();
            a.send_u64s(&xs).unwrap();
            b.send_u64s(&xs).unwrap();
            let ga = a.recv_u64s(xs.len(), "bench").unwrap();
            let gb = b.recv_u64s(xs.len(), "bench").unwrap();
            best = best.min(start.elapsed());
            assert_eq!(ga.len() + gb.len(), 200_000);
        }
        assert!(best < Duration::from_millis(20), "best {best:?}");
    }
}
