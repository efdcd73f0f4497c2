//! Transports: how the two parties exchange bytes.
//!
//! One trait with three required methods (send a frame, receive a frame, flush) and typed
//! helpers on top. Implementations: an in-memory pair ([`mem`]) and TCP ([`tcp`]); the
//! [`meter::Metered`] wrapper counts bytes per direction and rounds around any of them.
//! Frames are length-prefixed ([`frame`]) with a maximum size, so a peer can never make the
//! other allocate unbounded memory; reads and connects have timeouts, and a vanished peer is
//! a typed error ([`MpcError::PeerDisconnected`] / [`MpcError::Timeout`]), never a hang.

use crate::error::{MpcError, Result};

/// A bidirectional, message-oriented channel to the other party.
///
/// Every `send` is one frame on the wire: `FRAME_HEADER_BYTES` of length prefix plus the
/// payload. Byte counts reported by [`Metered`] include the prefix.
pub trait Transport: Send {
    /// Queues one frame holding `payload` (it may be buffered until [`Transport::flush`]).
    fn send(&mut self, payload: &[u8]) -> Result<()>;
    /// Receives one whole frame's payload (flushes pending sends first).
    fn recv(&mut self) -> Result<Vec<u8>>;
    /// Pushes buffered frames to the peer.
    fn flush(&mut self) -> Result<()>;

    /// Sends ring elements as one frame of little-endian words.
    fn send_u64s(&mut self, words: &[u64]) -> Result<()> {
        let mut buf = Vec::with_capacity(words.len() * 8);
        for w in words {
            buf.extend_from_slice(&w.to_le_bytes());
        }
        self.send(&buf)
    }

    /// Receives one frame of exactly `expected` ring elements.
    fn recv_u64s(&mut self, expected: usize, during: &'static str) -> Result<Vec<u64>> {
        let buf = self.recv()?;
        if buf.len() != expected * 8 {
            return Err(MpcError::UnexpectedMessage {
                during,
                expected: format!("{expected} words ({} bytes)", expected * 8),
                got: format!("{} bytes", buf.len()),
            });
        }
        Ok(buf.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8-byte chunk"))).collect())
    }

    /// Sends `mine`, then receives the peer's equally long vector: one round, both directions.
    fn exchange_u64s(&mut self, mine: &[u64], during: &'static str) -> Result<Vec<u64>> {
        self.send_u64s(mine)?;
        self.flush()?;
        self.recv_u64s(mine.len(), during)
    }

    /// Sends a typed message encoded with bincode 2 (standard config).
    fn send_msg<T: bincode::Encode>(&mut self, msg: &T) -> Result<()>
    where
        Self: Sized,
    {
        let buf = bincode::encode_to_vec(msg, bincode::config::standard())
            .map_err(|e| MpcError::Decode { during: "encoding a message", reason: e.to_string() })?;
        self.send(&buf)
    }

    /// Receives a typed message encoded with bincode 2 (standard config, bounded by the frame size).
    fn recv_msg<T: bincode::Decode<()>>(&mut self, during: &'static str) -> Result<T>
    where
        Self: Sized,
    {
        let buf = self.recv()?;
        let (msg, used) = bincode::decode_from_slice(&buf, bincode::config::standard())
            .map_err(|e| MpcError::Decode { during, reason: e.to_string() })?;
        if used != buf.len() {
            return Err(MpcError::Decode { during, reason: format!("{} trailing bytes", buf.len() - used) });
        }
        Ok(msg)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, payload: &[u8]) -> Result<()> {
        (**self).send(payload)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        (**self).recv()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}
