//! Deployable artifacts: the directory `masq export` writes and the runtime loads.
//!
//! An artifact directory holds three files:
//! - `model.onnx`: standard ONNX ops only; a masked activation is `Where(mask, Relu(x), g(x))` with
//!   the `Where` node's `doc_string` holding a [`MaskedActAnnotation`] so the importer recovers one
//!   `MaskedAct` node with its original names;
//! - `model.safetensors`: the weights (f32), each site's mask as u8 under `<site>.mask`, polynomial
//!   coefficients (f32, `[C]`), and `__metadata__` with the format version, per-site ReLU counts,
//!   input shape, normalisation and class names;
//! - `manifest.json`: a [`Manifest`] (shapes, normalisation, classes, ReLU counts, accuracy, and the
//!   sha256 of both other files).
//!
//! [`load_artifact`] checks all of it before handing out the graph.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use masq_ir::atomic::sha256_hex;
use masq_ir::{Dim, Graph, IrError, Op, Result};
pub use masq_onnx::MaskedActAnnotation;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

pub use masq_ir::facts::Normalisation;

/// File name of the ONNX model inside an artifact.
pub const MODEL_ONNX: &str = "model.onnx";
/// File name of the tensors inside an artifact.
pub const MODEL_SAFETENSORS: &str = "model.safetensors";
/// File name of the manifest inside an artifact.
pub const MANIFEST_JSON: &str = "manifest.json";
/// Value of [`Manifest::format`].
pub const FORMAT: &str = "masq.artifact";
/// The artifact format version this code writes and reads.
/// Version 2: `model.onnx` keeps no tensor bytes of its own; its initializers point into
/// `model.safetensors` (ONNX external data), and every fact lives in the manifest alone.
/// Version 1 artifacts (tensors in both files) still load.
pub const FORMAT_VERSION: u32 = 2;

/// One dimension of a shape in the manifest: a number, or `"batch"` for the symbolic batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShapeDim {
    Fixed(usize),
    Symbolic(String),
}

impl ShapeDim {
    pub fn from_dims(dims: &[Dim]) -> Vec<ShapeDim> {
        dims.iter()
            .map(|d| match d {
                Dim::Batch => ShapeDim::Symbolic("batch".to_string()),
                Dim::Fixed(n) => ShapeDim::Fixed(*n),
            })
            .collect()
    }
}

/// A named graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<ShapeDim>,
}

/// ReLUs of one layer: `relus` secure comparisons out of `elements` activations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRelus {
    pub layer: String,
    pub op: String,
    pub relus: u64,
    pub elements: u64,
}

/// One file of the artifact: its size and sha256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub masq_version: String,
    /// RFC 3339, UTC: the time of the export, or `SOURCE_DATE_EPOCH` when that is set (so two
    /// exports of one model are byte-identical).
    pub created: String,
    pub architecture: String,
    pub dataset: Option<String>,
    pub classes: Vec<String>,
    pub input: TensorSpec,
    pub output: TensorSpec,
    pub normalisation: Option<Normalisation>,
    pub relu_count: u64,
    pub relu_layers: Vec<LayerRelus>,
    /// Accuracy recorded by the trainer (fraction in 0..=1), if any.
    pub accuracy: Option<f64>,
    pub opset: i64,
    pub bn_folded: bool,
    /// By file name ([`MODEL_ONNX`], [`MODEL_SAFETENSORS`]).
    pub files: BTreeMap<String, FileEntry>,
}

/// `__metadata__` key of the format name ([`FORMAT`]) in `model.safetensors`.
pub const META_FORMAT: &str = "masq.format";
/// `__metadata__` key of the format version.
pub const META_FORMAT_VERSION: &str = "masq.format_version";

/// The safetensors metadata, with a supported format version.
fn st_metadata(bytes: &[u8], path: &Path) -> Result<std::collections::HashMap<String, String>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| malformed(path, e.to_string()))?;
    let map = meta.metadata().clone().unwrap_or_default();
    match map.get(META_FORMAT_VERSION).map(|v| v.parse::<u32>()) {
        Some(Ok(v)) if (1..=FORMAT_VERSION).contains(&v) => Ok(map),
        other => Err(malformed(path, format!("metadata {META_FORMAT_VERSION}: {other:?} is not a supported version"))),
    }
}

/// Whether two copies of a weight agree: bit for bit, or (a value folded from an integer weight
/// and its scale) within a relative 1e-6.
fn same_value(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

fn malformed(file: &Path, reason: impl Into<String>) -> IrError {
    IrError::Malformed { file: file.to_path_buf(), reason: reason.into() }
}

/// Whether a directory looks like an artifact (has a manifest).
pub fn is_artifact_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join(MANIFEST_JSON).is_file()
}

/// Read and parse `manifest.json` of an artifact directory (no other checks).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_JSON);
    if let Some(old) = crate::recover::leftover_artifact(dir) {
        return Err(malformed(
            dir,
            format!(
                "missing: an interrupted export left the previous artifact in {}; the next masq export to {} \
                 restores it (or rename it back)",
                old.display(),
                dir.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| IrError::io(&path, e))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| malformed(&path, format!("not a masq manifest: {e}")))?;
    if m.format != FORMAT {
        return Err(malformed(&path, format!("format {:?}, expected {FORMAT:?}", m.format)));
    }
    if m.format_version == 0 || m.format_version > FORMAT_VERSION {
        return Err(malformed(
            &path,
            format!("format version {} is not supported (this masq reads 1..={FORMAT_VERSION})", m.format_version),
        ));
    }
    Ok(m)
}

/// Read one listed file and check its size and sha256 against the manifest.
fn read_checked(dir: &Path, m: &Manifest, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let path = dir.join(name);
    let entry =
        m.files.get(name).ok_or_else(|| malformed(&dir.join(MANIFEST_JSON), format!("lists no file {name}")))?;
    let bytes = std::fs::read(&path).map_err(|e| IrError::io(&path, e))?;
    let got = sha256_hex(&bytes);
    if got != entry.sha256 {
        return Err(malformed(
            &path,
            format!(
                "sha256 mismatch: manifest says {}, file has {got} ({} bytes, manifest says {})",
                entry.sha256,
                bytes.len(),
                entry.bytes
            ),
        ));
    }
    Ok((path, bytes))
}

/// Load an artifact directory: verify both hashes, import `model.onnx` (recovering masked
/// activations), cross-check every mask with `model.safetensors` (u8, values 0/1, the activation's
/// per-image shape) and the ReLU counts with the manifest.
pub fn load_artifact(dir: impl AsRef<Path>) -> Result<(Graph, Manifest)> {
    let dir = dir.as_ref();
    let manifest = read_manifest(dir)?;
    let manifest_path = dir.join(MANIFEST_JSON);
    let (onnx_path, onnx_bytes) = read_checked(dir, &manifest, MODEL_ONNX)?;
    let (st_path, st_bytes) = read_checked(dir, &manifest, MODEL_SAFETENSORS)?;

    let st = SafeTensors::deserialize(&st_bytes).map_err(|e| malformed(&st_path, e.to_string()))?;
    let st_bad = |name: &str, reason: String| malformed(&st_path, format!("tensor {name}: {reason}"));
    st_metadata(&st_bytes, &st_path)?;
    // The ONNX initializers' bytes come from the safetensors file just hashed, not from disk again.
    // The import keeps the ONNX constants of the safetensors' f32 names for the cross-check below.
    let external = [(MODEL_SAFETENSORS, st_bytes.as_slice())];
    let weights: Vec<String> =
        st.tensors().into_iter().filter(|(_, v)| v.dtype() != Dtype::U8).map(|(n, _)| n).collect();
    let files = masq_onnx::external::Files::InMemory(&external);
    let (graph, constants) = masq_onnx::import_keeping(&onnx_bytes, &onnx_path, files, &weights)?;

    // Masks: one `<site>.mask` per MaskedAct, equal to the mask recovered from the ONNX file.
    let shapes = graph.infer_shapes(1)?;
    let mut sites = std::collections::BTreeSet::new();
    for node in &graph.nodes {
        let Op::MaskedAct(c) = &node.op else { continue };
        let key = format!("{}.mask", node.name);
        sites.insert(key.clone());
        let view = st.tensor(&key).map_err(|_| st_bad(&key, format!("missing (mask of site {})", node.name)))?;
        if view.dtype() != Dtype::U8 {
            return Err(st_bad(&key, format!("dtype {:?}, expected U8", view.dtype())));
        }
        let act = &shapes[&node.inputs[0]];
        if view.shape() != &act[1..] {
            return Err(st_bad(&key, format!("shape {:?}, the activation is {:?} per image", view.shape(), &act[1..])));
        }
        if let Some(v) = view.data().iter().find(|&&v| v > 1) {
            return Err(st_bad(&key, format!("holds the value {v}; masks hold only 0 and 1")));
        }
        let recovered =
            graph.masks.get(&c.mask).ok_or_else(|| st_bad(&c.mask, "missing from the ONNX model".into()))?;
        if !recovered.iter().copied().eq(view.data().iter().copied()) {
            return Err(st_bad(&key, format!("differs from the mask {} in {MODEL_ONNX}", c.mask)));
        }
    }
    // Every other tensor is a weight of the model, with the values model.onnx gives it: its
    // initializer of that name (bytes inline or external), the value a DequantizeLinear of an integer
    // weight folds to, or (polynomial coefficients, written broadcast in ONNX) the imported graph's
    // tensor of that name. A tensor found in neither is refused: the check must not pass by
    // finding nothing to compare.
    for (name, view) in st.tensors() {
        if view.dtype() == Dtype::U8 {
            if !sites.contains(&name) {
                return Err(st_bad(&name, "a mask of no masked activation in the model".into()));
            }
            continue;
        }
        if view.dtype() != Dtype::F32 {
            return Err(st_bad(&name, format!("dtype {:?}, expected F32", view.dtype())));
        }
        let onnx = constants.get(&name).or_else(|| graph.initializers.get(&name)).ok_or_else(|| {
            st_bad(&name, format!("not a tensor of {MODEL_ONNX} (no initializer or constant of that name)"))
        })?;
        if view.shape() != onnx.shape() {
            return Err(st_bad(&name, format!("shape {:?}, {MODEL_ONNX} has {:?}", view.shape(), onnx.shape())));
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        if let Some((i, (a, b))) = values.zip(onnx.iter()).enumerate().find(|(_, (a, b))| !same_value(*a, **b)) {
            return Err(st_bad(&name, format!("element {i} is {a} here but {b} in {MODEL_ONNX}")));
        }
    }

    // ReLU counts.
    let report = masq_ir::report::report(&graph)?;
    if report.relu_count != manifest.relu_count {
        return Err(malformed(
            &manifest_path,
            format!("relu_count {} but the model has {}", manifest.relu_count, report.relu_count),
        ));
    }
    for l in &manifest.relu_layers {
        let got = report.layers.iter().find(|r| r.name == l.layer).map(|r| r.relus);
        if got != Some(l.relus) {
            return Err(malformed(
                &manifest_path,
                format!("layer {}: {} ReLUs listed, the model has {got:?}", l.layer, l.relus),
            ));
        }
    }
    // Input and output names and shapes.
    let input = graph.data_inputs().next().ok_or_else(|| malformed(&onnx_path, "no data input"))?;
    if input.name != manifest.input.name || ShapeDim::from_dims(&input.shape) != manifest.input.shape {
        return Err(malformed(
            &manifest_path,
            format!(
                "input {:?} {:?} but the model has {:?} {:?}",
                manifest.input.name, manifest.input.shape, input.name, input.shape
            ),
        ));
    }
    Ok((graph, manifest))
}
