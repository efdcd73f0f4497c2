//! The exporter's error type.

use std::path::PathBuf;

use masq_ir::IrError;

/// Every error masq-exporter returns. Each names the tensor, node or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The graph itself is invalid (shapes that disagree, dangling inputs, missing tensors, a
    /// node the opset cannot express, ...), or a model file cannot be read.
    #[error(transparent)]
    Graph(#[from] IrError),

    /// A mask that is not a 0/1 tensor of the activation's per-image shape.
    #[error("mask {mask} (site {site}): {reason}")]
    BadMask { site: String, mask: String, reason: String },

    /// Export facts or options that do not fit the graph.
    #[error("invalid export request: {reason}")]
    Invalid { reason: String },

    /// The output directory exists and `force` was not given (or it is not safe to replace).
    #[error("output directory {} exists: {reason}", dir.display())]
    Exists { dir: PathBuf, reason: String },

    /// The artifact written does not load back (a bug in the exporter or the importer).
    #[error("the written artifact does not load back: {source}")]
    Verify {
        #[source]
        source: IrError,
    },

    /// A file system error, with the path.
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ExportError::Io { path: path.into(), source }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        ExportError::Invalid { reason: reason.into() }
    }
}
