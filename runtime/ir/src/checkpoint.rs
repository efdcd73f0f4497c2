//! The checkpoint codec: one `*.safetensors` file holding a whole model.
//!
//! - every initializer of the graph under its IR name (f32), every `MaskedAct` mask under its name
//!   (u8, values 0/1), and optionally extra f32 tensors (e.g. optimiser state) under their own names;
//! - `__metadata__`: `masq.format_version`, `masq.graph` (the graph's structure as JSON), and the
//!   training facts, each a JSON value under `masq.<fact>` (`masq.dataset`, `masq.accuracy`,
//!   `masq.relu_count`, `masq.epoch`, and any others).
//!
//! Writes are atomic: the file is written to a temporary file in the same directory, synced, and
//! renamed over the target, so a reader sees the old file or the new one, never a partial one.
//!
//! ```
//! use masq_ir::checkpoint::{Facts, load_checkpoint, save_checkpoint};
//! let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
//! let dir = std::env::temp_dir().join(format!("masq-ckpt-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("model.safetensors");
//! let facts = Facts { dataset: Some("mnist".into()), accuracy: Some(0.98), ..Facts::default() };
//! save_checkpoint(&path, &g, &facts).unwrap();
//! let (g2, f2) = load_checkpoint(&path).unwrap();
//! assert_eq!(g2, g);
//! assert_eq!(f2.accuracy, Some(0.98));
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ndarray::ArrayD;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::Graph;
use crate::atomic::write_atomic;
use crate::error::{IrError, Result};
use crate::facts::Normalisation;

/// The checkpoint format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const KEY_VERSION: &str = "masq.format_version";
const KEY_GRAPH: &str = "masq.graph";

/// Training facts stored beside the graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub dataset: Option<String>,
    /// Top-1 accuracy as a fraction.
    pub accuracy: Option<f64>,
    pub relu_count: Option<u64>,
    pub epoch: Option<usize>,
    /// Any other facts, stored as `masq.<key>` with a JSON value.
    pub other: BTreeMap<String, Value>,
}

/// The `other` key under which the input normalisation is recorded (`masq.normalization`).
pub const NORMALISATION_KEY: &str = "normalization";

impl Facts {
    /// The input normalisation the model was trained with, if recorded.
    pub fn normalisation(&self) -> Option<Normalisation> {
        self.other.get(NORMALISATION_KEY).and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Records the input normalisation.
    pub fn set_normalisation(&mut self, n: &Normalisation) {
        let v = serde_json::to_value(n).expect("two float vectors serialise");
        self.other.insert(NORMALISATION_KEY.to_string(), v);
    }
}

/// Everything a checkpoint holds.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub graph: Graph,
    pub facts: Facts,
    /// f32 tensors that are not part of the graph (e.g. optimiser state), by name.
    pub extra: BTreeMap<String, ArrayD<f32>>,
}

fn f32_bytes(t: &ArrayD<f32>) -> Vec<u8> {
    t.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Save a graph (structure, initializers, masks) and facts to `path`, atomically.
pub fn save_checkpoint(path: impl AsRef<Path>, graph: &Graph, facts: &Facts) -> Result<()> {
    save_checkpoint_with(path, graph, facts, &BTreeMap::new())
}

/// [`save_checkpoint`] with extra f32 tensors (names must not clash with the graph's).
pub fn save_checkpoint_with(
    path: impl AsRef<Path>,
    graph: &Graph,
    facts: &Facts,
    extra: &BTreeMap<String, ArrayD<f32>>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode(graph, facts, extra).map_err(|reason| IrError::Malformed { file: path.into(), reason })?;
    write_atomic(path, &bytes)
}

fn encode(graph: &Graph, facts: &Facts, extra: &BTreeMap<String, ArrayD<f32>>) -> std::result::Result<Vec<u8>, String> {
    let mut meta = HashMap::new();
    meta.insert(KEY_VERSION.to_string(), FORMAT_VERSION.to_string());
    meta.insert(KEY_GRAPH.to_string(), serde_json::to_string(graph).map_err(|e| format!("graph to JSON: {e}"))?);
    let mut put = |k: &str, v: Value| {
        meta.insert(format!("masq.{k}"), v.to_string());
    };
    if let Some(d) = &facts.dataset {
        put("dataset", Value::from(d.clone()));
    }
    if let Some(a) = facts.accuracy {
        put("accuracy", Value::from(a));
    }
    if let Some(r) = facts.relu_count {
        put("relu_count", Value::from(r));
    }
    if let Some(e) = facts.epoch {
        put("epoch", Value::from(e));
    }
    for (k, v) in &facts.other {
        if ["format_version", "graph", "dataset", "accuracy", "relu_count", "epoch"].contains(&k.as_str()) {
            return Err(format!("fact {k:?} clashes with a reserved key"));
        }
        put(k, v.clone());
    }
    // Owned byte buffers first, views second (views borrow them).
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in &graph.initializers {
        buffers.push((name.clone(), Dtype::F32, t.shape().to_vec(), f32_bytes(t)));
    }
    for (name, m) in &graph.masks {
        if graph.initializers.contains_key(name) {
            return Err(format!("mask {name} has the name of an initializer"));
        }
        buffers.push((name.clone(), Dtype::U8, m.shape().to_vec(), m.iter().copied().collect()));
    }
    for (name, t) in extra {
        if graph.initializers.contains_key(name) || graph.masks.contains_key(name) {
            return Err(format!("extra tensor {name} has the name of a graph tensor"));
        }
        buffers.push((name.clone(), Dtype::F32, t.shape().to_vec(), f32_bytes(t)));
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| e.to_string())?;
    safetensors::serialize(views, Some(meta)).map(crate::canonical::canonical_header).map_err(|e| e.to_string())
}

/// Load a checkpoint's graph and facts (extra tensors are dropped; see [`read_checkpoint`]).
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<(Graph, Facts)> {
    let c = read_checkpoint(path)?;
    Ok((c.graph, c.facts))
}

/// Load everything a checkpoint holds, checking it: the metadata is present and of a known
/// version, every tensor the graph names is present with the shape the graph expects, masks hold
/// only 0 and 1.
pub fn read_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| IrError::io(path, e))?;
    decode(path, &bytes)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    let bad = |reason: String| IrError::Malformed { file: path.to_path_buf(), reason };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let version = meta.get(KEY_VERSION).ok_or_else(|| {
        bad(format!("no {KEY_VERSION} in __metadata__: not a masq checkpoint (plain weights load with --weights)"))
    })?;
    if version.trim() != FORMAT_VERSION.to_string() {
        return Err(bad(format!("checkpoint format version {version}, this masq reads version {FORMAT_VERSION}")));
    }
    let graph_json = meta.get(KEY_GRAPH).ok_or_else(|| bad(format!("no {KEY_GRAPH} in __metadata__")))?;
    let mut graph: Graph = serde_json::from_str(graph_json).map_err(|e| bad(format!("{KEY_GRAPH}: {e}")))?;
    graph.check_cmp_bits().map_err(|e| bad(format!("{KEY_GRAPH}: {e}")))?;

    let mut facts = Facts::default();
    for (k, v) in &meta {
        let Some(key) = k.strip_prefix("masq.") else { continue };
        if key == "format_version" || key == "graph" {
            continue;
        }
        let value: Value = serde_json::from_str(v).map_err(|e| bad(format!("metadata {k}: not JSON: {e}")))?;
        let wrong = |what: &str| bad(format!("metadata {k}: expected {what}, got {v}"));
        match key {
            "dataset" => facts.dataset = Some(value.as_str().ok_or_else(|| wrong("a string"))?.to_string()),
            "accuracy" => facts.accuracy = Some(value.as_f64().ok_or_else(|| wrong("a number"))?),
            "relu_count" => facts.relu_count = Some(value.as_u64().ok_or_else(|| wrong("an unsigned integer"))?),
            "epoch" => facts.epoch = Some(value.as_u64().ok_or_else(|| wrong("an unsigned integer"))? as usize),
            _ => {
                facts.other.insert(key.to_string(), value);
            }
        }
    }

    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mask_names: std::collections::HashSet<String> = graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            crate::Op::MaskedAct(c) => Some(c.mask.clone()),
            _ => None,
        })
        .collect();
    let mut extra = BTreeMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let data = view.data();
        if mask_names.contains(&name) {
            if view.dtype() != Dtype::U8 {
                return Err(bad(format!("mask {name}: dtype {:?}, expected U8", view.dtype())));
            }
            if let Some(v) = data.iter().find(|&&v| v > 1) {
                return Err(bad(format!("mask {name}: value {v}, masks hold only 0 and 1")));
            }
            let m = ArrayD::from_shape_vec(shape, data.to_vec()).map_err(|e| bad(format!("mask {name}: {e}")))?;
            graph.masks.insert(name, m);
            continue;
        }
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor {name}: dtype {:?}, expected F32", view.dtype())));
        }
        let v: Vec<f32> = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let t = ArrayD::from_shape_vec(shape, v).map_err(|e| bad(format!("tensor {name}: {e}")))?;
        if is_graph_tensor(&graph, &name) {
            graph.initializers.insert(name, t);
        } else {
            extra.insert(name, t);
        }
    }
    check_shapes(path, &graph)?;
    Ok(Checkpoint { graph, facts, extra })
}

/// Whether a tensor name is referred to by the graph (a config parameter or a node input).
fn is_graph_tensor(graph: &Graph, name: &str) -> bool {
    graph.nodes.iter().any(|n| n.op.param_names().contains(&name) || n.inputs.iter().any(|i| i == name))
}

/// Every tensor the graph names is present, and shape inference accepts them; mask shapes match the
/// activation they gate.
fn check_shapes(path: &Path, graph: &Graph) -> Result<()> {
    let bad = |reason: String| IrError::Malformed { file: path.to_path_buf(), reason };
    if graph.nodes.is_empty() {
        return Err(bad(format!("{KEY_GRAPH}: the graph has no nodes")));
    }
    let defined: std::collections::HashSet<&str> = graph
        .inputs
        .iter()
        .map(|v| v.name.as_str())
        .chain(graph.nodes.iter().flat_map(|n| n.outputs.iter().map(String::as_str)))
        .collect();
    for node in &graph.nodes {
        for p in node.op.param_names() {
            if !graph.initializers.contains_key(p) {
                return Err(bad(format!("tensor {p} (of node {}) is missing", node.name)));
            }
        }
        for i in &node.inputs {
            if !defined.contains(i.as_str()) && !graph.initializers.contains_key(i) {
                return Err(bad(format!("tensor {i} (input of node {}) is missing", node.name)));
            }
        }
        if let crate::Op::MaskedAct(c) = &node.op
            && !graph.masks.contains_key(&c.mask)
        {
            return Err(bad(format!("mask {} (of node {}) is missing", c.mask, node.name)));
        }
    }
    // Structure (one output per node, input counts, names defined before use): what the lookups
    // below and every later pass index by.
    graph.validate().map_err(|e| bad(format!("{KEY_GRAPH}: {e}")))?;
    let shapes = graph.infer_shapes(1).map_err(|e| bad(format!("tensor shapes do not fit the graph: {e}")))?;
    for node in &graph.nodes {
        if let crate::Op::MaskedAct(c) = &node.op {
            let x = node.inputs.first().and_then(|i| shapes.get(i)).filter(|x| x.len() >= 2).ok_or_else(|| {
                bad(format!("node {}: a masked activation needs an input of shape [N, C, ...]", node.name))
            })?;
            let m = graph.masks.get(&c.mask).map(|m| m.shape()).unwrap_or_default();
            if m != &x[1..] {
                return Err(bad(format!("mask {}: shape {m:?}, the activation is {:?} per image", c.mask, &x[1..])));
            }
            if let crate::Replacement::Poly { c2, c1, c0 } = &c.replacement {
                for n in [c2, c1, c0] {
                    let t = graph.initializers.get(n).map(|t| t.shape()).unwrap_or_default();
                    if t != [x[1]] {
                        return Err(bad(format!("tensor {n}: shape {t:?}, expected [{}]", x[1])));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MaskedActConfig, Node, Op, Replacement, ValueInfo};
    use std::path::PathBuf;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("masq-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn masked_graph() -> Graph {
        let mut g = Graph::new("m");
        g.inputs.push(ValueInfo::batched("x", &[2, 2, 2]));
        let cfg = MaskedActConfig {
            mask: "act.mask".into(),
            replacement: Replacement::Poly { c2: "act.c2".into(), c1: "act.c1".into(), c0: "act.c0".into() },
            cap: None,
        };
        g.nodes.push(Node::new("act", Op::MaskedAct(cfg), &["x"], &["y"]));
        g.outputs.push(ValueInfo::new("y", vec![]));
        for (n, v) in [("act.c2", 0.1f32), ("act.c1", 0.5), ("act.c0", 0.2)] {
            g.initializers.insert(n.into(), ArrayD::from_elem(vec![2], v));
        }
        g.masks.insert("act.mask".into(), ArrayD::from_shape_vec(vec![2, 2, 2], vec![1, 0, 1, 1, 0, 0, 1, 0]).unwrap());
        g.finalize().unwrap();
        g
    }

    #[test]
    fn round_trip_with_masks_facts_and_extra() {
        let d = tmpdir("rt");
        let p = d.join("c.safetensors");
        let g = masked_graph();
        let mut facts = Facts {
            dataset: Some("synthetic".into()),
            accuracy: Some(0.5),
            relu_count: Some(4),
            epoch: Some(3),
            ..Default::default()
        };
        facts.other.insert("best_accuracy".into(), Value::from(0.75));
        let extra = BTreeMap::from([("optim.act.c1.m".to_string(), ArrayD::from_elem(vec![2], 7.0f32))]);
        save_checkpoint_with(&p, &g, &facts, &extra).unwrap();
        let c = read_checkpoint(&p).unwrap();
        assert_eq!(c.graph, g);
        assert_eq!(c.graph.masks, g.masks);
        assert_eq!(c.facts, facts);
        assert_eq!(c.extra, extra);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn clear_errors() {
        let d = tmpdir("err");
        let g = masked_graph();
        // Plain safetensors without metadata.
        let p = d.join("plain.safetensors");
        let bytes: Vec<u8> = f32_bytes(&ArrayD::from_elem(vec![2], 1.0));
        let v = TensorView::new(Dtype::F32, vec![2], &bytes).unwrap();
        std::fs::write(&p, safetensors::serialize([("w", v)], None).unwrap()).unwrap();
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(e.contains("masq.format_version"), "{e}");

        // A coefficient with the wrong shape is named.
        let mut g2 = g.clone();
        g2.initializers.insert("act.c1".into(), ArrayD::from_elem(vec![3], 0.0));
        let p = d.join("shape.safetensors");
        std::fs::write(&p, encode(&g2, &Facts::default(), &BTreeMap::new()).unwrap()).unwrap();
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(e.contains("act.c1"), "{e}");

        // A mask value other than 0/1.
        let mut g3 = g.clone();
        g3.masks.get_mut("act.mask").unwrap()[[0, 0, 0]] = 2;
        let p = d.join("mask.safetensors");
        std::fs::write(&p, encode(&g3, &Facts::default(), &BTreeMap::new()).unwrap()).unwrap();
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(e.contains("act.mask") && e.contains("value 2"), "{e}");

        // A missing tensor.
        let mut g4 = g.clone();
        g4.initializers.remove("act.c0");
        let p = d.join("missing.safetensors");
        std::fs::write(&p, encode(&g4, &Facts::default(), &BTreeMap::new()).unwrap()).unwrap();
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(e.contains("act.c0") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_write_leaves_no_partial_file() {
        let d = tmpdir("atomic");
        // The target is a directory: the rename fails after the temporary file was written.
        let target = d.join("best.safetensors");
        std::fs::create_dir(&target).unwrap();
        assert!(save_checkpoint(&target, &masked_graph(), &Facts::default()).is_err());
        let names: Vec<String> =
            std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["best.safetensors".to_string()]);
        assert!(target.is_dir());
        // A good write over an existing file replaces it whole.
        let p = d.join("last.safetensors");
        std::fs::write(&p, b"old").unwrap();
        save_checkpoint(&p, &masked_graph(), &Facts::default()).unwrap();
        assert!(load_checkpoint(&p).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
