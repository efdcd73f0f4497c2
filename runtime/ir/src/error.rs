//! The model error type, shared by masq-ir and masq-onnx: everything that can be wrong with a
//! model, its files or its inputs, naming the node, tensor, file or value at fault.

use std::fmt;
use std::path::PathBuf;

/// One node that the ONNX importer cannot translate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnsupportedNode {
    pub node: String,
    pub op_type: String,
    pub domain: String,
    pub opset: i64,
    /// What to do about it, or why it is refused (shared by every node of the op type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = if self.domain.is_empty() { "ai.onnx" } else { &self.domain };
        write!(f, "{} ({domain}::{}, opset {})", self.node, self.op_type, self.opset)
    }
}

/// Node names shown per op type before "and N more".
const NAMES_PER_OP: usize = 5;

/// One line per op type, in order of first appearance: op, opset, node count, the first few node
/// names, and the hint.
fn list_nodes(nodes: &[UnsupportedNode]) -> String {
    let mut groups: Vec<(&UnsupportedNode, Vec<&str>)> = Vec::new();
    for n in nodes {
        match groups.iter_mut().find(|(g, _)| g.op_type == n.op_type && g.domain == n.domain) {
            Some((_, names)) => names.push(&n.node),
            None => groups.push((n, vec![&n.node])),
        }
    }
    let lines: Vec<String> = groups
        .iter()
        .map(|(g, names)| {
            let domain = if g.domain.is_empty() { "ai.onnx" } else { &g.domain };
            let count = names.len();
            let mut shown = names.iter().take(NAMES_PER_OP).copied().collect::<Vec<_>>().join(", ");
            if count > NAMES_PER_OP {
                shown.push_str(&format!(" and {} more", count - NAMES_PER_OP));
            }
            let plural = if count == 1 { "" } else { "s" };
            let hint = g.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
            format!(
                "unsupported ONNX op {domain}::{} (opset {}), {count} node{plural}: {shown}{hint}",
                g.op_type, g.opset
            )
        })
        .collect();
    lines.join("\n")
}

/// Every error of masq-ir (graphs, checkpoints, zoo, npy) and masq-onnx (import and export).
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// The ONNX file uses ops the importer does not know (or fold-only ops on computed values);
    /// every such node is listed, the message groups them by op type (one line each).
    #[error("{}", list_nodes(nodes))]
    UnsupportedOps { nodes: Vec<UnsupportedNode> },

    /// An op's attributes or inputs are valid ONNX but outside what masq supports.
    #[error("node {node} ({op}): unsupported configuration: {reason}")]
    UnsupportedConfig { node: String, op: String, reason: String },

    /// A node the chosen ONNX opset cannot express (export).
    #[error("node {node} ({op}): cannot export at opset {opset}: {reason}")]
    CannotExport { node: String, op: String, opset: i64, reason: String },

    /// A node's input shape does not fit the op.
    #[error("node {node} ({op}): shape mismatch: expected {expected}, got {got:?}")]
    ShapeMismatch { node: String, op: String, expected: String, got: Vec<usize> },

    /// A node has an attribute that is missing or has the wrong type.
    #[error("node {node} ({op}): attribute {attr}: {reason}")]
    BadAttribute { node: String, op: String, attr: String, reason: String },

    /// An input of a node is produced by nothing (not a graph input, initializer or earlier node).
    #[error("node {node} ({op}): input {input} is not produced by any earlier node, graph input or initializer")]
    DanglingInput { node: String, op: String, input: String },

    /// A node refers to an initializer that does not exist or has the wrong shape.
    #[error("node {node} ({op}): initializer {name}: {reason}")]
    BadInitializer { node: String, op: String, name: String, reason: String },

    /// A file cannot be parsed.
    #[error("malformed file {}: {reason}", file.display())]
    Malformed { file: PathBuf, reason: String },

    /// A node in a malformed model (names the file and the node).
    #[error("malformed model {}: node {node}: {reason}", file.display())]
    MalformedNode { file: PathBuf, node: String, reason: String },

    /// A tensor with an element type masq cannot use here.
    #[error("tensor {name}: unsupported element type {dtype}")]
    UnsupportedDtype { name: String, dtype: String },

    /// A graph (or a value in it) is missing something the caller asked for.
    #[error("graph has no {kind} named {name}")]
    NotFound { kind: &'static str, name: String },

    /// Inputs handed to the interpreter do not fit the graph.
    #[error("input {name}: expected shape {expected}, got {got:?}")]
    BadInput { name: String, expected: String, got: Vec<usize> },

    /// A model spec (`zoo:NAME[@HxW]` or a path) cannot be understood.
    #[error("bad model spec {spec:?}: {reason}")]
    BadSpec { spec: String, reason: String },

    /// Weights handed to a zoo builder do not fit.
    #[error("weights: {name}: {reason}")]
    BadWeights { name: String, reason: String },

    /// A parameter of a graph pass (quantization widths, scores) is out of range.
    #[error("{name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },

    /// A tensor (a node's output, a graph input, a constant) with more elements than masq handles
    /// in one tensor ([`crate::shape::MAX_ELEMENTS`]), or whose element count overflows.
    #[error(
        "{what}: shape {shape} has more than {limit} elements, the most masq allows in one tensor",
        limit = crate::shape::MAX_ELEMENTS
    )]
    TooLarge { what: String, shape: String },

    /// A structural problem found by graph validation.
    #[error("invalid graph: {reason}")]
    InvalidGraph { reason: String },

    /// A file system error, with the path.
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias used across masq-ir and masq-onnx.
pub type Result<T, E = IrError> = std::result::Result<T, E>;

impl IrError {
    /// A file-system error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IrError::Io { path: path.into(), source }
    }
}
