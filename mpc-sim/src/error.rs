//! The one error type of masq-mpc. Every variant carries the facts a user needs to act on it
//! (which op, which shapes, which values); nothing here is a free-form catch-all.

use std::time::Duration;

use crate::party::Party;

/// Errors of the 2PC engine: bad inputs, preprocessing problems and transport failures.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// Operands of an op have shapes that do not fit together.
    #[error("{op}: shape mismatch: expected {expected}, got {got}")]
    ShapeMismatch { op: String, expected: String, got: String },

    /// A share or preprocessing item of one party was handed to the other party's code.
    #[error("{op}: material belongs to party {got}, but this is party {expected}")]
    WrongParty { op: String, expected: Party, got: Party },

    /// The online phase asked for more correlated randomness than the dealer produced.
    #[error("{op}: preprocessing exhausted: needed {needed}, {available} left")]
    PreprocessingExhausted { op: String, needed: String, available: String },

    /// The next preprocessing item is for a different computation than the one running.
    #[error("{op}: preprocessing mismatch: expected {expected}, found {found}")]
    PreprocessingMismatch { op: String, expected: String, found: String },

    /// A parameter is outside its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter { name: &'static str, value: String, reason: String },

    /// The peer closed the connection (or its end of an in-memory channel was dropped).
    #[error("peer disconnected while {during}")]
    PeerDisconnected { during: &'static str },

    /// No message (or connection) arrived within the configured timeout.
    #[error("timed out after {after:?} while {during}")]
    Timeout { during: &'static str, after: Duration },

    /// A frame header announced more bytes than the maximum frame size.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge { len: u64, max: u64 },

    /// The stream ended inside a frame.
    #[error("truncated frame: header announced {expected} bytes, stream ended after {got}")]
    TruncatedFrame { expected: u64, got: u64 },

    /// A frame arrived whose content does not match what the protocol expects.
    #[error("unexpected message while {during}: expected {expected}, got {got}")]
    UnexpectedMessage { during: &'static str, expected: String, got: String },

    /// Decoding a typed (bincode) message failed.
    #[error("malformed message while {during}: {reason}")]
    Decode { during: &'static str, reason: String },

    /// Any other I/O failure of the underlying transport.
    #[error("transport I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = MpcError> = std::result::Result<T, E>;

/// Formats a shape as `[a, b, c]` for error messages.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}
