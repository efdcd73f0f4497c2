//! Transports: how the two parties exchange bytes.
//!
//! One trait with three required methods (send a frame, receive a frame, flush) and typed
//! helpers on top ([`Transport`], with the word and message encodings it uses). Implementations:
//! an in-memory pair ([`mem`]) and TCP ([`tcp`]); the [`meter::Metered`] wrapper counts bytes per
//! direction and rounds around any of them. Frames are length-prefixed ([`frame`]) with a maximum
//! size, so a peer can never make the other allocate unbounded memory; reads and connects have
//! timeouts, and a vanished peer is a typed error ([`crate::MpcError::PeerDisconnected`] /
//! [`crate::MpcError::Timeout`]), never a hang.

mod channel;
pub mod frame;
pub mod mem;
pub mod meter;
pub mod tcp;

pub use channel::{DEFAULT_TIMEOUT, MSG_CONFIG, Transport, decode_bounded, decode_u64s, encode_u64s, u64s_as_le_bytes};
pub use frame::{DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES};
pub use mem::{MemTransport, mem_pair, mem_pair_with};
pub use meter::{Metered, Traffic};
pub use tcp::{TcpOptions, TcpTransport};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutable_references_are_transports() {
        fn send_via<T: Transport>(mut t: T) {
            t.send_u64s(&[9, 8]).unwrap();
        }
        fn recv_via<T: Transport>(mut t: T) -> Vec<u64> {
            t.recv_u64s(2, "t").unwrap()
        }
        let (mut a, mut b) = mem_pair();
        send_via(&mut a);
        send_via(&mut a);
        assert_eq!(b.recv_u64s(2, "t").unwrap(), vec![9, 8]);
        assert_eq!(recv_via(&mut b), vec![9, 8]);
    }
}
