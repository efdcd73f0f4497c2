//! The [`Transport`] trait, its default timeout, and the wire encodings its helpers use (ring
//! elements as little-endian words; typed messages as bincode 2). The implementations (`mem`,
//! `tcp`, `meter`) import this file, never the transport module's `mod.rs`, which only re-exports.

use std::borrow::Cow;
use std::time::Duration;

use super::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::error::{MpcError, Result};

/// Default time a receive (or a connect / accept) waits before failing with [`MpcError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Ring elements as little-endian bytes, the wire format of [`Transport::send_u64s`]: a view of
/// the slice itself on little-endian targets (no copy), an encoded copy elsewhere.
pub fn u64s_as_le_bytes(words: &[u64]) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: `u64` has no padding bytes and `u8` has alignment 1, so the `size_of_val(words)`
        // bytes starting at `words.as_ptr()` are initialised and may be read as `u8`; the view
        // borrows `words`, so it cannot outlive it or coexist with a mutable borrow.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) })
    }
    #[cfg(not(target_endian = "little"))]
    {
        Cow::Owned(encode_u64s_portable(words))
    }
}

/// Encodes ring elements as little-endian words into a new buffer.
pub fn encode_u64s(words: &[u64]) -> Vec<u8> {
    u64s_as_le_bytes(words).into_owned()
}

/// Decodes little-endian words; `None` if the length is not a multiple of 8.
pub fn decode_u64s(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    #[cfg(target_endian = "little")]
    {
        let mut words = vec![0u64; bytes.len() / 8];
        // SAFETY: as in `u64s_as_le_bytes`; in addition every byte pattern is a valid `u64`, so
        // writing arbitrary bytes through the mutable view is sound.
        let view = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(words.as_slice()))
        };
        view.copy_from_slice(bytes);
        Some(words)
    }
    #[cfg(not(target_endian = "little"))]
    {
        Some(decode_u64s_portable(bytes))
    }
}

/// Portable encoder (word by word), the reference for the little-endian fast path.
#[cfg(any(test, not(target_endian = "little")))]
fn encode_u64s_portable(words: &[u64]) -> Vec<u8> {
    let mut buf = vec![0u8; std::mem::size_of_val(words)];
    for (chunk, w) in buf.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    buf
}

/// Portable decoder (word by word); `bytes.len()` must be a multiple of 8.
#[cfg(any(test, not(target_endian = "little")))]
fn decode_u64s_portable(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
}

/// The bincode configuration of [`Transport::send_msg`] / [`Transport::recv_msg`]: standard
/// encoding, and a decode limit so that a length field in a small message cannot make the
/// decoder reserve more than [`DEFAULT_MAX_FRAME_BYTES`] of memory.
pub const MSG_CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DEFAULT_MAX_FRAME_BYTES>,
> = bincode::config::standard().with_limit::<DEFAULT_MAX_FRAME_BYTES>();

/// A bidirectional, message-oriented channel to the other party.
///
/// Every `send` is one frame on the wire: `FRAME_HEADER_BYTES` of length prefix plus the
/// payload. Byte counts reported by [`Metered`](super::Metered) include the prefix.
pub trait Transport: Send {
    /// Queues one frame holding `payload` (it may be buffered until [`Transport::flush`]).
    fn send(&mut self, payload: &[u8]) -> Result<()>;
    /// Receives one whole frame's payload (flushes pending sends first).
    fn recv(&mut self) -> Result<Vec<u8>>;
    /// Pushes buffered frames to the peer.
    fn flush(&mut self) -> Result<()>;

    /// Changes the largest frame accepted from now on (and sent), where the transport has such
    /// a limit (TCP); others ignore it. A frame whose length prefix has already arrived keeps
    /// the limit it was checked against.
    fn set_max_frame_bytes(&mut self, _max: usize) {}

    /// Changes how long a receive waits, where the transport has such a timeout (TCP); others
    /// ignore it.
    fn set_read_timeout(&mut self, _timeout: std::time::Duration) {}

    /// Queues one frame, taking ownership of the buffer. Transports that can hand the buffer
    /// over without copying (the in-memory one) override this; the default calls [`Transport::send`].
    fn send_owned(&mut self, payload: Vec<u8>) -> Result<()> {
        self.send(&payload)
    }

    /// Sends ring elements as one frame of little-endian words.
    fn send_u64s(&mut self, words: &[u64]) -> Result<()> {
        match u64s_as_le_bytes(words) {
            Cow::Borrowed(bytes) => self.send(bytes),
            Cow::Owned(buf) => self.send_owned(buf),
        }
    }

    /// Receives one frame of exactly `expected` ring elements.
    fn recv_u64s(&mut self, expected: usize, during: &'static str) -> Result<Vec<u64>> {
        let buf = self.recv()?;
        match decode_u64s(&buf) {
            Some(words) if words.len() == expected => Ok(words),
            _ => Err(MpcError::UnexpectedMessage {
                during,
                expected: format!("{expected} words ({} bytes)", expected.saturating_mul(8)),
                got: format!("{} bytes", buf.len()),
            }),
        }
    }

    /// Sends `mine`, then receives the peer's equally long vector: one round, both directions.
    fn exchange_u64s(&mut self, mine: &[u64], during: &'static str) -> Result<Vec<u64>> {
        self.send_u64s(mine)?;
        self.flush()?;
        self.recv_u64s(mine.len(), during)
    }

    /// Sends a typed message encoded with bincode 2 ([`MSG_CONFIG`]: the standard config).
    fn send_msg<T: bincode::Encode>(&mut self, msg: &T) -> Result<()>
    where
        Self: Sized,
    {
        let buf = bincode::encode_to_vec(msg, MSG_CONFIG)
            .map_err(|e| MpcError::Decode { during: "encoding a message", reason: e.to_string() })?;
        self.send_owned(buf)
    }

    /// Receives a typed message encoded with bincode 2 (the standard config, under the limit of
    /// [`decode_bounded`]); a frame that does not
    /// decode as a `T`, or has bytes left over, is a [`MpcError::Decode`].
    fn recv_msg<T: bincode::Decode<()>>(&mut self, during: &'static str) -> Result<T>
    where
        Self: Sized,
    {
        // The limit follows the frame's length, not the largest frame: a small frame from a
        // hostile peer cannot make this side reserve more than a few times what it sent.
        let buf = self.recv()?;
        decode_bounded(&buf).map_err(|reason| MpcError::Decode { during, reason })
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_max_frame_bytes(&mut self, max: usize) {
        (**self).set_max_frame_bytes(max)
    }
    fn set_read_timeout(&mut self, timeout: std::time::Duration) {
        (**self).set_read_timeout(timeout)
    }
    fn send(&mut self, payload: &[u8]) -> Result<()> {
        (**self).send(payload)
    }
    fn send_owned(&mut self, payload: Vec<u8>) -> Result<()> {
        (**self).send_owned(payload)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        (**self).recv()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn set_max_frame_bytes(&mut self, max: usize) {
        (**self).set_max_frame_bytes(max)
    }
    fn set_read_timeout(&mut self, timeout: std::time::Duration) {
        (**self).set_read_timeout(timeout)
    }
    fn send(&mut self, payload: &[u8]) -> Result<()> {
        (**self).send(payload)
    }
    fn send_owned(&mut self, payload: Vec<u8>) -> Result<()> {
        (**self).send_owned(payload)
    }
    fn recv(&mut self) -> Result<Vec<u8>> {
        (**self).recv()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
}

/// How many bytes of memory a decoded value may claim per byte of its encoding: bincode's limit
/// counts the decoded size (a length or a dimension takes one byte on the wire and eight in
/// memory), and no primitive field takes more than eight per byte (a sequence of structs may, by its
/// `size_of`; callers decode those item by item).
const MEMORY_PER_WIRE_BYTE: usize = 8;

/// Decodes a `T` from all of `bytes` with the standard configuration and a limit on what it may
/// claim, derived from `bytes.len()`: the smallest power of two (at least 1 KiB) not below
/// [`MEMORY_PER_WIRE_BYTE`]` × bytes.len()`. A length field can reserve no more before the
/// decoder finds that the bytes it announces are not there.
pub fn decode_bounded<T: bincode::Decode<()>>(bytes: &[u8]) -> std::result::Result<T, String> {
    use bincode::config::{Config, Configuration, LittleEndian, Varint};
    fn all<T: bincode::Decode<()>, L>(
        bytes: &[u8],
        cfg: Configuration<LittleEndian, Varint, L>,
    ) -> std::result::Result<T, String>
    where
        Configuration<LittleEndian, Varint, L>: Config,
    {
        let (value, used) = bincode::decode_from_slice(bytes, cfg).map_err(|e| match e {
            bincode::error::DecodeError::LimitExceeded => {
                format!("a length field announces more than the {} bytes received can hold", bytes.len())
            }
            e => e.to_string(),
        })?;
        if used != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - used));
        }
        Ok(value)
    }
    let need = bytes.len().saturating_mul(MEMORY_PER_WIRE_BYTE);
    macro_rules! within {
        ($($k:literal)*) => {
            $(if need <= 1usize << $k {
                return all(bytes, bincode::config::standard().with_limit::<{ 1usize << $k }>());
            })*
        };
    }
    within!(10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40);
    Err(format!("{} bytes: too large", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_codec_matches_the_portable_reference() {
        let words: Vec<u64> = (0..1000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 60)).collect();
        let bytes = encode_u64s(&words);
        assert_eq!(bytes, encode_u64s_portable(&words));
        assert_eq!(&bytes[..8], &words[0].to_le_bytes());
        assert_eq!(&bytes[8..16], &words[1].to_le_bytes());
        assert_eq!(decode_u64s(&bytes).unwrap(), words);
        assert_eq!(decode_u64s_portable(&bytes), words);
        assert_eq!(decode_u64s(&[]).unwrap(), Vec::<u64>::new());
        assert!(decode_u64s(&bytes[..15]).is_none());
        // Unaligned input bytes decode too.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode_u64s(&shifted[1..]).unwrap(), words);
    }
}
