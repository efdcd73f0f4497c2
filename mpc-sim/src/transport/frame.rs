//! Length-prefixed framing: how one [`Transport::send`](super::Transport::send) looks on a
//! byte stream.
//!
//! ```text
//! +----------------------+---------------------------+
//! | len: u32 little-end. | payload: len bytes        |
//! +----------------------+---------------------------+
//!   FRAME_HEADER_BYTES
//! ```
//!
//! Frames longer than the configured maximum are refused on both sides with
//! [`MpcError::FrameTooLarge`]. A reader never trusts the header with its memory: it grows the
//! payload buffer by at most [`READ_CHUNK_BYTES`] at a time, and only after the previous chunk
//! has actually arrived, so a peer that announces 1 GiB and sends 10 bytes costs us about 1 MiB.
//!
//! [`FrameReader`] keeps a partly received frame across calls, so a read that times out
//! ([`MpcError::Timeout`]) can be retried without losing the stream's framing.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{MpcError, Result};

/// Bytes of the length prefix in front of every frame (a `u32`, little-endian).
pub const FRAME_HEADER_BYTES: usize = 4;

/// Default maximum payload of one frame: 1 GiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 30;

/// The largest payload the header can describe at all.
pub const ABSOLUTE_MAX_FRAME_BYTES: usize = u32::MAX as usize;

/// How much the receive buffer of one frame may grow before more bytes have arrived.
pub const READ_CHUNK_BYTES: usize = 1 << 20;

const DURING_RECV: &str = "receiving a frame";
const DURING_SEND: &str = "sending a frame";

/// The maximum frame size actually enforced for a configured `max` (the header caps it at `u32::MAX`).
pub fn effective_max(max: usize) -> usize {
    max.min(ABSOLUTE_MAX_FRAME_BYTES)
}

/// Checks that a payload of `len` bytes may be sent or received under a maximum of `max` bytes.
pub fn check_frame_len(len: usize, max: usize) -> Result<()> {
    let max = effective_max(max);
    if len > max {
        return Err(MpcError::FrameTooLarge { len: len as u64, max: max as u64 });
    }
    Ok(())
}

/// Writes one frame (header, then payload) to `writer`. Nothing is written if the payload is too large.
///
/// Does not flush: callers with a buffered writer flush when they are about to wait for the peer.
pub fn write_frame<W: Write + ?Sized>(writer: &mut W, payload: &[u8], max: usize) -> Result<()> {
    check_frame_len(payload.len(), max)?;
    let header = (payload.len() as u32).to_le_bytes();
    writer.write_all(&header).map_err(|e| write_error(e, DURING_SEND))?;
    writer.write_all(payload).map_err(|e| write_error(e, DURING_SEND))?;
    Ok(())
}

/// Reads one whole frame from `reader`; see [`FrameReader`] for the errors. A timeout part-way
/// through a frame loses the partial frame: use a [`FrameReader`] to be able to resume.
pub fn read_frame<R: Read + ?Sized>(reader: &mut R, max: usize) -> Result<Vec<u8>> {
    FrameReader::new(max).read_frame(reader)
}

/// Maps an I/O error from a write to the transport error it means.
///
/// A timeout carries `after: 0`: a plain writer does not know its timeout, and transports that
/// do replace it (see [`with_timeout`]).
pub fn write_error(e: io::Error, during: &'static str) -> MpcError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => MpcError::Timeout { during, after: Duration::ZERO },
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected
        | io::ErrorKind::WriteZero => MpcError::PeerDisconnected { during },
        _ => MpcError::Io(e),
    }
}

/// Fills in the real timeout of a [`MpcError::Timeout`] produced by the framing functions.
pub fn with_timeout(e: MpcError, timeout: Duration) -> MpcError {
    match e {
        MpcError::Timeout { during, .. } => MpcError::Timeout { during, after: timeout },
        other => other,
    }
}

/// Whether an I/O error kind means the peer went away (reset or aborted connection).
fn is_disconnect(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

/// Incremental frame decoder: keeps the bytes of a partly received frame between calls.
///
/// Errors of [`FrameReader::read_frame`]:
/// - [`MpcError::PeerDisconnected`]: clean end of stream (or a reset) at a frame boundary;
/// - [`MpcError::TruncatedFrame`]: the stream ended inside a frame. Inside the header,
///   `expected` is [`FRAME_HEADER_BYTES`] and `got` the header bytes received; inside the
///   payload, `expected` is the announced payload length and `got` the payload bytes received;
/// - [`MpcError::FrameTooLarge`]: the header announces more than the maximum (nothing is allocated);
/// - [`MpcError::Timeout`] (with `after: 0`, see [`with_timeout`]): the reader reported
///   `WouldBlock` / `TimedOut`; the partial frame is kept and the next call continues it;
/// - [`MpcError::Io`]: any other I/O error.
///
/// After any error other than `Timeout` the stream's framing is lost and it should be dropped.
#[derive(Debug)]
pub struct FrameReader {
    max: usize,
    /// A limit shared with the owner of the connection, read when each length prefix completes
    /// (see [`FrameReader::with_shared_max`]); `max` when absent.
    shared_max: Option<Arc<AtomicUsize>>,
    header: [u8; FRAME_HEADER_BYTES],
    header_got: usize,
    /// Announced payload length, once the header is complete.
    expected: usize,
    /// Payload buffer: `body.len()` bytes are allocated and zeroed, `body_got` of them received.
    body: Vec<u8>,
    body_got: usize,
}

impl FrameReader {
    /// A reader that accepts payloads of at most `max` bytes (capped at [`ABSOLUTE_MAX_FRAME_BYTES`]).
    pub fn new(max: usize) -> Self {
        Self {
            max: effective_max(max),
            shared_max: None,
            header: [0; FRAME_HEADER_BYTES],
            header_got: 0,
            expected: 0,
            body: Vec::new(),
            body_got: 0,
        }
    }

    /// A reader whose limit is whatever `max` holds when a frame's length prefix completes
    /// (capped at [`ABSOLUTE_MAX_FRAME_BYTES`]): the owner may raise or lower it while a read
    /// is blocked waiting for the next frame.
    pub fn with_shared_max(max: Arc<AtomicUsize>) -> Self {
        Self { shared_max: Some(max), ..Self::new(0) }
    }

    /// The maximum payload this reader accepts (now).
    pub fn max_frame_bytes(&self) -> usize {
        match &self.shared_max {
            Some(m) => effective_max(m.load(Ordering::Acquire)),
            None => self.max,
        }
    }

    /// Whether part of a frame has been received (so an end of stream now would be a truncation).
    pub fn is_mid_frame(&self) -> bool {
        self.header_got > 0
    }

    fn reset(&mut self) {
        self.header_got = 0;
        self.expected = 0;
        self.body = Vec::new();
        self.body_got = 0;
    }

    fn truncated(&mut self) -> MpcError {
        let e = if self.header_got < FRAME_HEADER_BYTES {
            MpcError::TruncatedFrame { expected: FRAME_HEADER_BYTES as u64, got: self.header_got as u64 }
        } else {
            MpcError::TruncatedFrame { expected: self.expected as u64, got: self.body_got as u64 }
        };
        self.reset();
        e
    }

    /// Maps a read error; `Ok(())` means "interrupted, try again".
    fn read_failed(&mut self, e: io::Error) -> Result<()> {
        match e.kind() {
            io::ErrorKind::Interrupted => Ok(()),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Err(MpcError::Timeout { during: DURING_RECV, after: Duration::ZERO })
            }
            k if is_disconnect(k) => {
                if self.is_mid_frame() {
                    Err(self.truncated())
                } else {
                    Err(MpcError::PeerDisconnected { during: DURING_RECV })
                }
            }
            _ => {
                self.reset();
                Err(MpcError::Io(e))
            }
        }
    }

    /// Reads until one whole frame has arrived and returns its payload.
    pub fn read_frame<R: Read + ?Sized>(&mut self, reader: &mut R) -> Result<Vec<u8>> {
        while self.header_got < FRAME_HEADER_BYTES {
            match reader.read(&mut self.header[self.header_got..]) {
                Ok(0) if self.header_got == 0 => return Err(MpcError::PeerDisconnected { during: DURING_RECV }),
                Ok(0) => return Err(self.truncated()),
                Ok(n) => self.header_got += n,
                Err(e) => self.read_failed(e)?,
            }
            if self.header_got == FRAME_HEADER_BYTES {
                let len = u32::from_le_bytes(self.header) as usize;
                let max = self.max_frame_bytes();
                if len > max {
                    self.reset();
                    return Err(MpcError::FrameTooLarge { len: len as u64, max: max as u64 });
                }
                self.expected = len;
            }
        }
        while self.body_got < self.expected {
            if self.body_got == self.body.len() {
                // Grow only once what we have is full, and by a bounded step.
                let grow = (self.expected - self.body.len()).min(READ_CHUNK_BYTES);
                self.body.reserve_exact(grow);
                self.body.resize(self.body.len() + grow, 0);
            }
            match reader.read(&mut self.body[self.body_got..]) {
                Ok(0) => return Err(self.truncated()),
                Ok(n) => self.body_got += n,
                Err(e) => self.read_failed(e)?,
            }
        }
        let payload = std::mem::take(&mut self.body);
        self.reset();
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            write_frame(&mut out, p, DEFAULT_MAX_FRAME_BYTES).unwrap();
        }
        out
    }

    #[test]
    fn round_trip_several_frames_including_empty() {
        let big: Vec<u8> = (0..3 * READ_CHUNK_BYTES + 17).map(|i| (i * 31 % 251) as u8).collect();
        let wire = framed(&[b"hello", b"", &big, b"x"]);
        assert_eq!(wire.len(), 4 * FRAME_HEADER_BYTES + 5 + big.len() + 1);
        assert_eq!(&wire[..4], &5u32.to_le_bytes());
        let mut r = Cursor::new(wire);
        assert_eq!(read_frame(&mut r, DEFAULT_MAX_FRAME_BYTES).unwrap(), b"hello");
        assert_eq!(read_frame(&mut r, DEFAULT_MAX_FRAME_BYTES).unwrap(), b"");
        assert_eq!(read_frame(&mut r, DEFAULT_MAX_FRAME_BYTES).unwrap(), big);
        assert_eq!(read_frame(&mut r, DEFAULT_MAX_FRAME_BYTES).unwrap(), b"x");
        assert!(matches!(read_frame(&mut r, DEFAULT_MAX_FRAME_BYTES), Err(MpcError::PeerDisconnected { .. })));
    }

    #[test]
    fn oversized_send_is_refused_and_writes_nothing() {
        let mut out = Vec::new();
        let err = write_frame(&mut out, &[0u8; 11], 10).unwrap_err();
        assert!(matches!(err, MpcError::FrameTooLarge { len: 11, max: 10 }), "{err:?}");
        assert!(out.is_empty());
        write_frame(&mut out, &[0u8; 10], 10).unwrap();
        assert_eq!(out.len(), 14);
    }

    #[test]
    fn oversized_header_is_refused_before_allocating() {
        // A header announcing u32::MAX bytes, followed by nothing.
        let mut r = Cursor::new(u32::MAX.to_le_bytes().to_vec());
        let err = read_frame(&mut r, DEFAULT_MAX_FRAME_BYTES).unwrap_err();
        assert!(
            matches!(err, MpcError::FrameTooLarge { len, max } if len == u64::from(u32::MAX) && max == DEFAULT_MAX_FRAME_BYTES as u64),
            "{err:?}"
        );
        let mut r = Cursor::new(framed(&[&[1u8; 101]]));
        assert!(matches!(read_frame(&mut r, 100), Err(MpcError::FrameTooLarge { len: 101, max: 100 })));
    }

    #[test]
    fn lying_header_allocates_at_most_one_chunk() {
        // Announces 1 GiB but sends 10 bytes: must end in TruncatedFrame with a small buffer.
        let mut wire = (DEFAULT_MAX_FRAME_BYTES as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&[7u8; 10]);
        let mut fr = FrameReader::new(DEFAULT_MAX_FRAME_BYTES);
        let mut r = Cursor::new(wire);
        let err = fr.read_frame(&mut r).unwrap_err();
        assert!(
            matches!(err, MpcError::TruncatedFrame { expected, got: 10 } if expected == DEFAULT_MAX_FRAME_BYTES as u64),
            "{err:?}"
        );
        // A reader that stops (times out) mid-frame shows the bounded buffer.
        let mut wire = (DEFAULT_MAX_FRAME_BYTES as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&[7u8; 10]);
        let mut r = Stutter { data: wire, pos: 0, block_after: usize::MAX };
        let mut fr = FrameReader::new(DEFAULT_MAX_FRAME_BYTES);
        assert!(matches!(fr.read_frame(&mut r), Err(MpcError::Timeout { .. })));
        assert!(fr.body.capacity() <= READ_CHUNK_BYTES, "capacity {}", fr.body.capacity());
    }

    #[test]
    fn truncated_payload_and_header() {
        let mut wire = framed(&[&[9u8; 50]]);
        wire.truncate(FRAME_HEADER_BYTES + 20);
        let err = read_frame(&mut Cursor::new(wire), DEFAULT_MAX_FRAME_BYTES).unwrap_err();
        assert!(matches!(err, MpcError::TruncatedFrame { expected: 50, got: 20 }), "{err:?}");
        let err = read_frame(&mut Cursor::new(vec![1u8, 0]), DEFAULT_MAX_FRAME_BYTES).unwrap_err();
        assert!(matches!(err, MpcError::TruncatedFrame { expected: 4, got: 2 }), "{err:?}");
    }

    /// A reader that hands out at most 3 bytes per call and returns `WouldBlock` once `block_after`
    /// bytes have been delivered (with `block_after == usize::MAX`: once the data is used up).
    struct Stutter {
        data: Vec<u8>,
        pos: usize,
        block_after: usize,
    }
    impl Read for Stutter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.block_after || self.pos == self.data.len() && self.block_after == usize::MAX {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(3).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn timeouts_resume_without_losing_the_frame() {
        let payload: Vec<u8> = (0..40u8).collect();
        let wire = framed(&[&payload, b"next"]);
        let total = wire.len();
        let mut fr = FrameReader::new(DEFAULT_MAX_FRAME_BYTES);
        let mut r = Stutter { data: wire, pos: 0, block_after: 2 };
        // Times out inside the header, then inside the payload; each time we deliver more.
        let mut timeouts = 0;
        let got = loop {
            match fr.read_frame(&mut r) {
                Ok(p) => break p,
                Err(MpcError::Timeout { .. }) => {
                    timeouts += 1;
                    r.block_after += 7;
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        };
        assert_eq!(got, payload);
        assert!(timeouts >= 5, "{timeouts}");
        r.block_after = total;
        assert_eq!(fr.read_frame(&mut r).unwrap(), b"next");
    }

    #[test]
    fn io_error_kinds_map_to_typed_errors() {
        assert!(matches!(
            write_error(io::ErrorKind::BrokenPipe.into(), "x"),
            MpcError::PeerDisconnected { during: "x" }
        ));
        assert!(matches!(write_error(io::ErrorKind::TimedOut.into(), "x"), MpcError::Timeout { .. }));
        assert!(matches!(write_error(io::ErrorKind::PermissionDenied.into(), "x"), MpcError::Io(_)));
        let t = with_timeout(write_error(io::ErrorKind::WouldBlock.into(), "x"), Duration::from_secs(3));
        assert!(matches!(t, MpcError::Timeout { after, .. } if after == Duration::from_secs(3)));
        // A reset in the middle of a frame is a truncation, at a boundary a disconnect.
        struct Reset(usize);
        impl Read for Reset {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                let n = self.0.min(buf.len());
                buf[..n].fill(0);
                self.0 -= n;
                Ok(n)
            }
        }
        assert!(matches!(read_frame(&mut Reset(0), 100), Err(MpcError::PeerDisconnected { .. })));
        assert!(matches!(read_frame(&mut Reset(3), 100), Err(MpcError::TruncatedFrame { expected: 4, got: 3 })));
    }
}
