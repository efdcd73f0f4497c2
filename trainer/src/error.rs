//! The crate's one error type.

use std::path::PathBuf;

/// Every error masq-trainer returns.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// An error from the IR, the checkpoint codec or the zoo.
    #[error(transparent)]
    Model(#[from] masq_ir::IrError),

    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// A node whose configuration the tch lowering does not support.
    #[error("node {node} ({op}): cannot lower to tch: {reason}")]
    Unsupported { node: String, op: String, reason: String },

    /// A node's input does not fit the op.
    #[error("node {node} ({op}): shape mismatch: expected {expected}, got {got:?}")]
    ShapeMismatch { node: String, op: String, expected: String, got: Vec<i64> },

    /// A value a node needs was never computed or fed.
    #[error("node {node}: input {input} is not available")]
    MissingValue { node: String, input: String },

    /// A device spec (`auto`, `cpu`, `cuda`, `cuda:N`) that cannot be used.
    #[error("device {spec:?}: {reason}")]
    BadDevice { spec: String, reason: String },

    /// A dataset that cannot be found or read.
    #[error("dataset {dataset}: {reason}")]
    Data { dataset: String, reason: String },

    /// A malformed data file.
    #[error("malformed data file {}: {reason}", file.display())]
    DataFile { file: PathBuf, reason: String },

    /// Training options that do not make sense together.
    #[error("bad training configuration: {reason}")]
    BadConfig { reason: String },

    /// The model and the dataset disagree (input shape, number of classes).
    #[error("model {model} does not fit dataset {dataset}: {reason}")]
    ModelDataMismatch { model: String, dataset: String, reason: String },

    /// A resume checkpoint that does not fit the run.
    #[error("cannot resume from {}: {reason}", path.display())]
    Resume { path: PathBuf, reason: String },

    /// A file system error, with the path.
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias used across the crate.
pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

impl TrainerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainerError::Io { path: path.into(), source }
    }
}
