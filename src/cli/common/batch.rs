//! Models with a fixed batch: the one message every command gives when a model that cannot be
//! generalised (see `masq_ir::batch`) is handed another number of images, and the batch an ONNX
//! file itself declares (for onnxruntime, which runs the file as exported).

use std::fmt::Display;
use std::path::Path;

use masq_ir::{Dim, Graph, batch};

/// A model that only runs at one batch, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedBatch {
    pub batch: usize,
    /// The node that mixes the images of the batch (or what is known instead).
    pub why: String,
}

impl FixedBatch {
    /// `MODEL has a fixed batch of 4 that cannot be generalised (node ...)`.
    pub fn describe(&self, model: &dyn Display) -> String {
        format!("{model} has a fixed batch of {} that cannot be generalised ({})", self.batch, self.why)
    }

    /// `give exactly 4 images` (or `1 image`).
    pub fn give(&self) -> String {
        format!("give exactly {} image{}", self.batch, if self.batch == 1 { "" } else { "s" })
    }
}

/// The fixed batch of a model that does not run at any batch (`None` when it does).
pub fn fixed(graph: &Graph) -> Option<FixedBatch> {
    if graph.supports_batch() {
        return None;
    }
    let input = graph.data_inputs().next()?;
    let b = match input.shape.first() {
        Some(Dim::Fixed(b)) => *b,
        _ => 1,
    };
    let why = match batch::diagnose(graph) {
        Some(r) => r.to_string(),
        None => format!("its input is {}", masq_ir::format_dims(&input.shape)),
    };
    Some(FixedBatch { batch: b, why })
}

/// The leading dimension an ONNX file declares for its first graph input, when it is fixed.
pub fn onnx_declared_batch(file: &Path) -> Option<usize> {
    let bytes = std::fs::read(file).ok()?;
    let model = masq_onnx::import::decode(&bytes, file).ok()?;
    let g = model.graph?;
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let input = g.input.iter().find(|v| !inits.contains(v.name.as_str()))?;
    let dim = input.r#type.as_ref()?.tensor_type.as_ref()?.shape.as_ref()?.dim.first()?;
    dim.dim_value.filter(|&v| v > 0).map(|v| v as usize)
}
