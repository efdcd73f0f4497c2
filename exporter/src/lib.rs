//! # masq-exporter
//!
//! The artifact format, both ways: [`export`] turns a model (a trainer checkpoint, an ONNX file
//! or a zoo graph) into a deployable artifact directory, and [`artifact::load_artifact`] reads one
//! back with every cross-check: `model.onnx` (standard ONNX ops, masked activations as
//! `Where(mask, Relu(x), poly(x))`), `model.safetensors` (weights, per-pixel masks, polynomial
//! coefficients) and `manifest.json`. [`ModelSpec`] is masq's one model loader: `zoo:NAME[@HxW]`,
//! an `.onnx` file, a checkpoint or an artifact directory.
//!
//! ```
//! use masq_exporter::{ExportFacts, ExportOptions, export};
//! let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
//! let dir = std::env::temp_dir().join(format!("masq-export-doc-{}", std::process::id()));
//! let facts = ExportFacts::new("mnist_cnn");
//! let s = export(&g, &facts, &dir, &ExportOptions::default()).unwrap();
//! assert_eq!(s.relu_count, masq_ir::report::report(&g).unwrap().relu_count);
//! let (g2, manifest) = masq_exporter::artifact::load_artifact(&dir).unwrap();
//! assert_eq!(manifest.relu_count, s.relu_count);
//! # let _ = g2;
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! The export is atomic: everything is written into a temporary sibling directory, loaded back
//! and checked with [`artifact::load_artifact`], then renamed into place.

pub mod artifact;
mod error;
pub mod masks;
pub mod model_spec;
mod recover;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::artifact::{
    FORMAT, FORMAT_VERSION, FileEntry, LayerRelus, MANIFEST_JSON, MODEL_ONNX, MODEL_SAFETENSORS, Manifest,
    Normalisation, ShapeDim, TensorSpec,
};
use masq_ir::Graph;
use masq_ir::Op;
use prost::Message;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde::Serialize;

pub use error::ExportError;
pub use masks::{RandomMasks, ReplacementKind, attach_random_masks};
pub use model_spec::{ModelSpec, load_model};

/// Name of the graph input in the exported model (when the graph has one data input).
pub const INPUT_NAME: &str = "input";
/// Name of the graph output in the exported model (when the graph has one output).
pub const OUTPUT_NAME: &str = "logits";

/// What the artifact records about the model besides the graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportFacts {
    pub architecture: String,
    pub dataset: Option<String>,
    /// Class names, one per output logit (empty: unknown).
    pub classes: Vec<String>,
    /// Per-input-channel normalisation the caller applies.
    pub normalisation: Option<Normalisation>,
    /// Accuracy recorded by the trainer (fraction in 0..=1).
    pub accuracy: Option<f64>,
}

impl ExportFacts {
    pub fn new(architecture: impl Into<String>) -> Self {
        ExportFacts { architecture: architecture.into(), ..Default::default() }
    }
}

/// How to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// ONNX opset of the default domain (13..=21).
    pub opset: i64,
    /// Fold BatchNorm into the preceding conv.
    pub fold_bn: bool,
    /// Replace an existing output directory (only an artifact or an empty directory).
    pub force: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { opset: 17, fold_bn: true, force: false }
    }
}

/// One written file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportedFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// What [`export`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    pub out_dir: PathBuf,
    pub relu_count: u64,
    /// Masked-activation sites.
    pub sites: usize,
    /// BatchNorm nodes folded into the preceding Conv or Gemm.
    pub bn_folded: usize,
    /// `model.onnx`, `model.safetensors`, `manifest.json` (the manifest's own hash is informative).
    pub files: Vec<ExportedFile>,
    pub manifest: Manifest,
}

/// Check the graph and facts before anything is written.
fn check(graph: &Graph, facts: &ExportFacts) -> Result<(), ExportError> {
    graph.validate()?;
    let shapes = graph.infer_shapes(1)?;
    let data: Vec<_> = graph.data_inputs().collect();
    if data.len() != 1 || graph.outputs.len() != 1 {
        return Err(ExportError::invalid(format!(
            "the graph has {} data inputs and {} outputs; an artifact has one of each",
            data.len(),
            graph.outputs.len()
        )));
    }
    for node in &graph.nodes {
        let Op::MaskedAct(c) = &node.op else { continue };
        let bad = |reason: String| ExportError::BadMask { site: node.name.clone(), mask: c.mask.clone(), reason };
        let mask = graph.masks.get(&c.mask).ok_or_else(|| bad("missing".into()))?;
        let act = &shapes[&node.inputs[0]];
        if act.len() < 2 || mask.shape() != &act[1..] {
            return Err(bad(format!("shape {:?}, the activation is {act:?}", mask.shape())));
        }
        if let Some(v) = mask.iter().find(|&&v| v > 1) {
            return Err(bad(format!("holds the value {v}; masks hold only 0 and 1")));
        }
        if graph.initializers.contains_key(&c.mask) || shapes.contains_key(&c.mask) {
            return Err(bad("the name is also used by a tensor or value".into()));
        }
        if graph.initializers.contains_key(&format!("{}.mask", node.name)) {
            return Err(bad(format!("an f32 tensor is named {}.mask, the mask's name in the safetensors", node.name)));
        }
    }
    let input = data[0];
    let channels = input.shape.get(1).map(|d| d.resolve(1)).unwrap_or(1);
    if let Some(n) = &facts.normalisation {
        let ok_len = |v: &[f32]| v.len() == channels || v.len() == 1;
        if !ok_len(&n.mean) || !ok_len(&n.std) {
            return Err(ExportError::invalid(format!(
                "normalisation has {} means and {} stds for {channels} input channels",
                n.mean.len(),
                n.std.len()
            )));
        }
        if n.std.iter().any(|&s| s.is_nan() || s <= 0.0) || n.mean.iter().any(|m| !m.is_finite()) {
            return Err(ExportError::invalid("normalisation std must be positive and mean finite"));
        }
    }
    let out = &shapes[&graph.outputs[0].name];
    if !facts.classes.is_empty() && out.last() != Some(&facts.classes.len()) {
        return Err(ExportError::invalid(format!(
            "{} class names for an output of shape {out:?}",
            facts.classes.len()
        )));
    }
    Ok(())
}

/// Rename a value everywhere (graph inputs, outputs, node inputs/outputs, initializers).
fn rename_value(g: &mut Graph, old: &str, new: &str) {
    if old == new {
        return;
    }
    let r = |s: &mut String| {
        if s == old {
            *s = new.to_string();
        }
    };
    g.inputs.iter_mut().for_each(|v| r(&mut v.name));
    g.outputs.iter_mut().for_each(|v| r(&mut v.name));
    for n in &mut g.nodes {
        n.inputs.iter_mut().for_each(r);
        n.outputs.iter_mut().for_each(r);
    }
    if let Some(t) = g.initializers.remove(old) {
        g.initializers.insert(new.to_string(), t);
    }
}

/// Name the data input `input` and the output `logits`, moving anything already so named aside.
fn name_io(g: &mut Graph) {
    let input = g.data_inputs().next().map(|v| v.name.clone());
    let output = g.outputs.first().map(|v| v.name.clone());
    for (cur, want) in [(input, INPUT_NAME), (output, OUTPUT_NAME)] {
        let Some(cur) = cur else { continue };
        if cur == want {
            continue;
        }
        let clash = g.initializers.contains_key(want)
            || g.inputs.iter().any(|v| v.name == want)
            || g.nodes.iter().any(|n| n.outputs.iter().any(|o| o == want));
        if clash {
            let aside = masq_ir::fold::fresh_name(g, &format!("{want}.orig"));
            rename_value(g, want, &aside);
        }
        rename_value(g, &cur, want);
    }
}

/// The safetensors file: every initializer (f32) and every site's mask as u8 under
/// `<site>.mask`; its metadata names the format and version (every other fact lives in the
/// manifest).
fn encode_tensors(g: &Graph) -> Result<Vec<u8>, ExportError> {
    let f32_bytes: Vec<(String, Vec<usize>, Vec<u8>)> = g
        .initializers
        .iter()
        .map(|(n, t)| (n.clone(), t.shape().to_vec(), t.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let mut mask_bytes = Vec::new();
    for node in &g.nodes {
        if let Op::MaskedAct(c) = &node.op {
            let m = &g.masks[&c.mask];
            mask_bytes.push((
                format!("{}.mask", node.name),
                m.shape().to_vec(),
                m.iter().copied().collect::<Vec<u8>>(),
            ));
        }
    }
    let mut views = Vec::new();
    for (n, s, b) in &f32_bytes {
        views.push((n.clone(), TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| st_err(n, e))?));
    }
    for (n, s, b) in &mask_bytes {
        views.push((n.clone(), TensorView::new(Dtype::U8, s.clone(), b).map_err(|e| st_err(n, e))?));
    }
    let meta: HashMap<String, String> =
        [(artifact::META_FORMAT, FORMAT.to_string()), (artifact::META_FORMAT_VERSION, FORMAT_VERSION.to_string())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    // Sorted header keys: the metadata map's order would differ from one export to the next.
    safetensors::serialize(views, Some(meta)).map(masq_ir::canonical::canonical_header).map_err(|e| st_err("(file)", e))
}

/// Point every f32 and BOOL initializer of the ONNX model at the identical bytes in the
/// safetensors file (ONNX external data: location, offset, length), so each tensor is stored once.
/// Weights, masks (u8 0/1 = ONNX BOOL) and polynomial coefficients (`[C]` in safetensors,
/// `[C, 1, 1]` in ONNX: the same bytes) all have their bytes there.
fn point_into_safetensors(model: &mut masq_onnx::proto::ModelProto, st_bytes: &[u8]) -> Result<usize, ExportError> {
    use masq_onnx::proto::{StringStringEntryProto, data_type};
    let st = safetensors::SafeTensors::deserialize(st_bytes).map_err(|e| st_err("(file)", e))?;
    let base = st_bytes.as_ptr() as usize;
    // Tensors with equal bytes (zero biases) all point at the first copy in the file, whatever
    // order the reader lists the tensors in, so two exports write the same model.onnx.
    let mut spans: Vec<(usize, &[u8])> =
        st.tensors().into_iter().map(|(_, v)| v.data()).map(|d| (d.as_ptr() as usize - base, d)).collect();
    spans.sort_unstable_by_key(|&(offset, d)| (offset, d.len()));
    let mut at: HashMap<&[u8], usize> = HashMap::new();
    for (offset, data) in spans {
        if !data.is_empty() {
            at.entry(data).or_insert(offset);
        }
    }
    let mut moved = 0;
    let graph = model.graph.as_mut().expect("the encoder writes a graph");
    for t in graph.initializer.iter_mut() {
        if !matches!(t.data_type, data_type::FLOAT | data_type::BOOL) || t.raw_data.is_empty() {
            continue;
        }
        let Some(&offset) = at.get(t.raw_data.as_slice()) else { continue };
        let entry = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
        t.external_data = vec![
            entry("location", MODEL_SAFETENSORS.to_string()),
            entry("offset", offset.to_string()),
            entry("length", t.raw_data.len().to_string()),
        ];
        t.data_location = masq_onnx::external::EXTERNAL;
        t.raw_data = Vec::new();
        moved += 1;
    }
    Ok(moved)
}

fn st_err(name: &str, e: safetensors::SafeTensorError) -> ExportError {
    ExportError::invalid(format!("safetensors: tensor {name}: {e}"))
}

fn file_entry(bytes: &[u8]) -> FileEntry {
    FileEntry { sha256: masq_ir::atomic::sha256_hex(bytes), bytes: bytes.len() as u64 }
}

/// Export a graph to an artifact directory `out_dir` (see the crate docs).
pub fn export(
    graph: &Graph,
    facts: &ExportFacts,
    out_dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    // First repair what a killed export to this path left behind (docs/RELIABILITY.md).
    recover::recover(out_dir)?;
    write::check_target(out_dir, opts.force)?;
    check(graph, facts)?;
    if !masq_onnx::export::OPSETS.contains(&opts.opset) {
        return Err(ExportError::invalid(format!(
            "opset {} is outside the range the exporter writes ({}..={})",
            opts.opset,
            masq_onnx::export::OPSETS.start(),
            masq_onnx::export::OPSETS.end()
        )));
    }
    let count_bn = |g: &Graph| g.nodes.iter().filter(|n| matches!(n.op, masq_ir::Op::BatchNorm(_))).count();
    let mut g = if opts.fold_bn { masq_ir::fold::fold_batchnorm(graph)? } else { graph.clone() };
    let bn_folded = count_bn(graph) - count_bn(&g);
    name_io(&mut g);
    g.prune();
    g.finalize()?;

    // ReLU figures.
    let report = masq_ir::report::report(&g)?;
    let shapes = g.infer_shapes(1)?;
    let mut relu_layers = Vec::new();
    let mut sites = 0;
    for (node, l) in g.nodes.iter().zip(&report.layers) {
        if matches!(node.op, Op::Relu | Op::MaskedAct(_)) {
            let elements = shapes[&node.inputs[0]].iter().product::<usize>() as u64;
            relu_layers.push(LayerRelus { layer: l.name.clone(), op: l.op.clone(), relus: l.relus, elements });
        }
        if let Op::MaskedAct(_) = node.op {
            sites += 1;
        }
    }
    let spec = |v: &masq_ir::ValueInfo| TensorSpec { name: v.name.clone(), shape: ShapeDim::from_dims(&v.shape) };
    let input = spec(g.data_inputs().next().expect("checked: one data input"));
    let output = spec(&g.outputs[0]);

    let doc = format!("masq artifact: {}", facts.architecture);
    let mut onnx_model = masq_onnx::export::encode(&g, opts.opset, &doc)?;
    onnx_model
        .metadata_props
        .push(masq_onnx::proto::StringStringEntryProto { key: artifact::META_FORMAT.into(), value: FORMAT.into() });
    let st_bytes = encode_tensors(&g)?;
    point_into_safetensors(&mut onnx_model, &st_bytes)?;
    let onnx_bytes = onnx_model.encode_to_vec();
    let mut files = BTreeMap::new();
    files.insert(MODEL_ONNX.to_string(), file_entry(&onnx_bytes));
    files.insert(MODEL_SAFETENSORS.to_string(), file_entry(&st_bytes));
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        masq_version: env!("CARGO_PKG_VERSION").into(),
        created: write::created()?,
        architecture: facts.architecture.clone(),
        dataset: facts.dataset.clone(),
        classes: facts.classes.clone(),
        input,
        output,
        normalisation: facts.normalisation.clone(),
        relu_count: report.relu_count,
        relu_layers,
        accuracy: facts.accuracy,
        opset: opts.opset,
        bn_folded: opts.fold_bn,
        files,
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::invalid(e.to_string()))?;
    manifest_bytes.push(b'\n');

    let contents: [(&str, &[u8]); 3] =
        [(MODEL_ONNX, &onnx_bytes), (MODEL_SAFETENSORS, &st_bytes), (MANIFEST_JSON, &manifest_bytes)];
    write::write_dir_atomic(out_dir, &contents, opts.force, |tmp| {
        artifact::load_artifact(tmp).map(|_| ()).map_err(|source| ExportError::Verify { source })
    })?;
    let files = contents
        .iter()
        .map(|(n, b)| {
            let e = file_entry(b);
            ExportedFile { name: n.to_string(), sha256: e.sha256, bytes: e.bytes }
        })
        .collect();
    Ok(ExportSummary {
        out_dir: out_dir.to_path_buf(),
        relu_count: report.relu_count,
        sites,
        bn_folded,
        files,
        manifest,
    })
}
