//! masq-runtime's error type: a model error from masq-ir, a failure of the secure engine, or
//! onnxruntime's.

use std::path::PathBuf;

pub use masq_ir::IrError;

/// Every error masq-runtime returns.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The model, its shapes or its inputs are at fault (names the node, tensor or value).
    #[error(transparent)]
    Model(#[from] IrError),

    /// The secure engine (a protocol, the dealer or the transport) failed; `at` names the node or phase.
    #[error("secure evaluation failed at {at}")]
    Mpc {
        at: String,
        #[source]
        source: masq_mpc::MpcError,
    },

    /// The ring is too small for a layer's fixed-point products on this input (see
    /// `secure::headroom`): the run would compute wrong values, so it does not start.
    #[error("layer {layer} ({op}): the 64-bit ring has too little headroom: {reason}")]
    RingHeadroom { layer: String, op: String, reason: String },

    /// ONNX Runtime cannot be loaded (the library is missing or too old).
    #[error("onnxruntime unavailable: {reason}")]
    OrtUnavailable { reason: String },

    /// ONNX Runtime rejected or failed to run a model (names the file).
    #[error("onnxruntime on {}: {reason}", file.display())]
    Ort { file: PathBuf, reason: String },
}

/// Result alias used across the crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
