//! The model IR: a graph of typed nodes in topological order, wired by value names, with named
//! f32 initializers (weights) and u8 masks.
//!
//! ```
//! use masq_ir::{Dim, Graph, Node, Op, ValueInfo};
//! let mut g = Graph::new("tiny");
//! g.inputs.push(ValueInfo::new("x", vec![Dim::Batch, Dim::Fixed(4)]));
//! g.nodes.push(Node::new("relu", Op::Relu, &["x"], &["y"]));
//! g.outputs.push(ValueInfo::new("y", vec![]));
//! g.finalize().unwrap();
//! assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(4)]);
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::error::{IrError, Result};
use crate::op::*;

/// One dimension of a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dim {
    /// The (symbolic) batch dimension.
    Batch,
    Fixed(usize),
}

impl Dim {
    pub fn resolve(self, batch: usize) -> usize {
        match self {
            Dim::Batch => batch,
            Dim::Fixed(n) => n,
        }
    }
}

/// Format a symbolic shape as `[N, 3, 32, 32]`.
pub fn format_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Batch => "N".to_string(),
            Dim::Fixed(n) => n.to_string(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// A named graph input or output with its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueInfo {
    pub name: String,
    pub shape: Vec<Dim>,
}

impl ValueInfo {
    pub fn new(name: impl Into<String>, shape: Vec<Dim>) -> Self {
        ValueInfo { name: name.into(), shape }
    }

    /// `[Batch, dims...]`.
    pub fn batched(name: impl Into<String>, dims: &[usize]) -> Self {
        let mut shape = vec![Dim::Batch];
        shape.extend(dims.iter().map(|&d| Dim::Fixed(d)));
        ValueInfo { name: name.into(), shape }
    }

    pub fn shape_at(&self, batch: usize) -> Vec<usize> {
        self.shape.iter().map(|d| d.resolve(batch)).collect()
    }
}

/// One node: an op with named inputs and outputs (every op has one output today).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    #[serde(flatten)]
    pub op: Op,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl Node {
    pub fn new(name: impl Into<String>, op: Op, inputs: &[&str], outputs: &[&str]) -> Self {
        Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn output(&self) -> &str {
        &self.outputs[0]
    }
}

/// A model: inputs, outputs, nodes in topological order and named tensors.
///
/// The structure (everything but the tensors) serialises to JSON; tensors travel in safetensors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub name: String,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub nodes: Vec<Node>,
    /// Weights and other constant f32 tensors, by name.
    #[serde(skip)]
    pub initializers: BTreeMap<String, ArrayD<f32>>,
    /// Per-element ReLU masks of `MaskedAct` nodes (`[C, H, W]`, values 0/1), by name.
    #[serde(skip)]
    pub masks: BTreeMap<String, ArrayD<u8>>,
    /// Calibrated comparison widths (bits, 2 to 64) by node name (`masq calibrate`): a node listed
    /// here compares on its own width, every other node on the run's global width. Only nodes
    /// that make secure comparisons may be listed ([`Graph::check_cmp_bits`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cmp_bits: BTreeMap<String, u32>,
    /// The fixed-point fractional bits [`Graph::cmp_bits`] were calibrated at (1 to 40). The
    /// compared values scale with `2^f`, so a run at `f'` compares on `width + f' − f` bits
    /// ([`Graph::cmp_bits_at`]); `None` (files from before this field): the widths as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmp_frac_bits: Option<u32>,
    /// Quantized weights (`masq quantize`, or DequantizeLinear weights of an imported QDQ model):
    /// initializer name to the grid its values lie on. The initializer keeps the dequantized f32
    /// values; the ONNX writer stores it as integers plus a DequantizeLinear. docs/ALGORITHMS.md §7.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weight_quant: BTreeMap<String, QuantParams>,
}

/// Whether a node of this op makes secure comparisons (and so may take a calibrated width).
pub fn makes_comparisons(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu
            | Op::LeakyRelu(_)
            | Op::Clip(_)
            | Op::MaxPool(_)
            | Op::Sigmoid
            | Op::HardSigmoid(_)
            | Op::HardSwish
            | Op::MaskedAct(_)
    ) || matches!(op, Op::FakeQuant(q) if crate::quant::saturating_clip(q).is_some())
}

/// Concrete shapes of every value of a graph at one batch size.
pub type ShapeMap = HashMap<String, Vec<usize>>;

impl Graph {
    pub fn new(name: impl Into<String>) -> Self {
        Graph { name: name.into(), ..Default::default() }
    }

    pub fn initializer(&self, node: &Node, name: &str) -> Result<&ArrayD<f32>> {
        self.initializers.get(name).ok_or_else(|| IrError::BadInitializer {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            name: name.to_string(),
            reason: "missing".to_string(),
        })
    }

    /// Number of f32 parameters a node owns (config initializers plus initializer inputs).
    pub fn node_params(&self, node: &Node) -> usize {
        let from_config: usize =
            node.op.param_names().iter().filter_map(|n| self.initializers.get(*n)).map(|t| t.len()).sum();
        let from_inputs: usize = node.inputs.iter().filter_map(|n| self.initializers.get(n)).map(|t| t.len()).sum();
        from_config + from_inputs
    }

    /// Node `name`'s calibrated width for a run at `frac_bits` fractional bits: the recorded
    /// width moved by the difference from [`Graph::cmp_frac_bits`], clamped to 2..=64; `None`
    /// when the node has no calibrated width.
    pub fn cmp_bits_at(&self, name: &str, frac_bits: u32) -> Option<u32> {
        let bits = *self.cmp_bits.get(name)?;
        let shift = self.cmp_frac_bits.map_or(0, |f| i64::from(frac_bits) - i64::from(f));
        Some((i64::from(bits) + shift).clamp(2, 64) as u32)
    }

    /// Checks [`Graph::cmp_bits`]: every width in 2..=64, every name a node that makes comparisons,
    /// and [`Graph::cmp_frac_bits`] in 1..=40.
    pub fn check_cmp_bits(&self) -> Result<()> {
        if let Some(f) = self.cmp_frac_bits
            && !(1..=40).contains(&f)
        {
            return Err(IrError::InvalidGraph {
                reason: format!("comparison widths calibrated at {f} fractional bits (must be 1 to 40)"),
            });
        }
        for (name, &bits) in &self.cmp_bits {
            let bad = |why: String| IrError::InvalidGraph { reason: format!("comparison width of node {name}: {why}") };
            if !(2..=64).contains(&bits) {
                return Err(bad(format!("{bits} bits (must be 2 to 64)")));
            }
            match self.nodes.iter().find(|n| &n.name == name) {
                None => return Err(bad(format!("{bits} bits for a node the graph does not have"))),
                Some(n) if !makes_comparisons(&n.op) => {
                    return Err(bad(format!("{bits} bits, but a {} node makes no comparisons", n.op.name())));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Structural checks: at least one output and one node (unless every output is a constant),
    /// unique names, inputs defined before use, referenced
    /// tensors present, calibrated comparison widths ([`Graph::check_cmp_bits`]).
    pub fn validate(&self) -> Result<()> {
        if self.outputs.is_empty() {
            return Err(IrError::InvalidGraph { reason: "the graph has no outputs".into() });
        }
        // Only a graph that folded to constants (every output an initializer) may have no nodes.
        if self.nodes.is_empty() && self.outputs.iter().any(|o| !self.initializers.contains_key(&o.name)) {
            return Err(IrError::InvalidGraph { reason: "the graph has no nodes".into() });
        }
        let mut defined: HashSet<&str> = self.inputs.iter().map(|v| v.name.as_str()).collect();
        defined.extend(self.initializers.keys().map(String::as_str));
        let mut node_names = HashSet::new();
        for node in &self.nodes {
            if !node_names.insert(node.name.as_str()) {
                return Err(IrError::InvalidGraph { reason: format!("duplicate node name {}", node.name) });
            }
            if node.outputs.len() != 1 {
                return Err(IrError::InvalidGraph {
                    reason: format!("node {} has {} outputs (expected 1)", node.name, node.outputs.len()),
                });
            }
            let arity_ok = match node.op.arity() {
                Some(n) => node.inputs.len() == n,
                None => !node.inputs.is_empty(),
            };
            if !arity_ok {
                return Err(IrError::InvalidGraph {
                    reason: format!("node {} ({}) has {} inputs", node.name, node.op.name(), node.inputs.len()),
                });
            }
            for input in &node.inputs {
                if !defined.contains(input.as_str()) {
                    return Err(IrError::DanglingInput {
                        node: node.name.clone(),
                        op: node.op.name().to_string(),
                        input: input.clone(),
                    });
                }
            }
            for p in node.op.param_names() {
                self.initializer(node, p)?;
            }
            if let Op::FakeQuant(q) = &node.op {
                q.check()
                    .map_err(|why| IrError::InvalidGraph { reason: format!("FakeQuant node {}: {why}", node.name) })?;
            }
            if let Op::MaskedAct(c) = &node.op
                && !self.masks.contains_key(&c.mask)
            {
                return Err(IrError::BadInitializer {
                    node: node.name.clone(),
                    op: "MaskedAct".to_string(),
                    name: c.mask.clone(),
                    reason: "mask missing".to_string(),
                });
            }
            for out in &node.outputs {
                if !defined.insert(out.as_str()) {
                    return Err(IrError::InvalidGraph { reason: format!("value {out} is defined twice") });
                }
            }
        }
        for out in &self.outputs {
            if !defined.contains(out.name.as_str()) {
                return Err(IrError::NotFound { kind: "output value", name: out.name.clone() });
            }
        }
        self.check_weight_quant()?;
        self.check_cmp_bits()
    }

    /// Checks [`Graph::weight_quant`]: valid parameters, every name an initializer, every value
    /// of that initializer on its grid (within the quantization range).
    pub fn check_weight_quant(&self) -> Result<()> {
        for (name, q) in &self.weight_quant {
            let bad = |why: String| IrError::InvalidGraph { reason: format!("quantized weight {name}: {why}") };
            q.check().map_err(bad)?;
            let Some(t) = self.initializers.get(name) else {
                return Err(bad("no initializer of that name".into()));
            };
            if let Some(v) = t.iter().find(|&&v| (q.apply(v) - v).abs() > q.scale * 1e-3) {
                return Err(bad(format!("value {v} is not on the grid of step {}", q.scale)));
            }
        }
        Ok(())
    }

    /// Concrete shapes of every value (inputs, initializers, node outputs) at batch size `batch`.
    pub fn infer_shapes(&self, batch: usize) -> Result<ShapeMap> {
        let mut shapes: ShapeMap = HashMap::new();
        for (name, t) in &self.initializers {
            shapes.insert(name.clone(), t.shape().to_vec());
        }
        for input in &self.inputs {
            let shape = input.shape_at(batch);
            crate::shape::check_elements(|| format!("input {} at batch {batch}", input.name), &shape)?;
            shapes.insert(input.name.clone(), shape);
        }
        for node in &self.nodes {
            let output = node.outputs.first().ok_or_else(|| IrError::InvalidGraph {
                reason: format!("node {} ({}) has no output", node.name, node.op.name()),
            })?;
            let ins: Vec<&[usize]> = node
                .inputs
                .iter()
                .map(|n| {
                    shapes.get(n).map(|s| s.as_slice()).ok_or_else(|| IrError::DanglingInput {
                        node: node.name.clone(),
                        op: node.op.name().to_string(),
                        input: n.clone(),
                    })
                })
                .collect::<Result<_>>()?;
            let out = crate::shape::infer_node(self, node, &ins)?;
            shapes.insert(output.clone(), out);
        }
        Ok(shapes)
    }

    /// Whether the graph runs at batch sizes other than 1: an input has a symbolic batch and no op
    /// pins it (as a reshape to a fixed `[1, k]` would).
    pub fn supports_batch(&self) -> bool {
        self.inputs.iter().any(|v| v.shape.contains(&Dim::Batch)) && self.infer_shapes(2).is_ok()
    }

    /// Validate, infer shapes at batch 1 and 2, and write the symbolic output shapes.
    ///
    /// A dimension that doubles from batch 1 to batch 2 is the batch dimension. When the graph only
    /// works at batch 1, every input and output dimension becomes fixed.
    pub fn finalize(&mut self) -> Result<()> {
        self.validate()?;
        let s1 = self.infer_shapes(1)?;
        let s2 = self.infer_shapes(2).ok();
        if s2.is_none() {
            for input in &mut self.inputs {
                input.shape = input.shape_at(1).into_iter().map(Dim::Fixed).collect();
            }
        }
        for out in &mut self.outputs {
            let a = &s1[&out.name];
            out.shape = match &s2 {
                Some(s2) => {
                    let b = &s2[&out.name];
                    a.iter().zip(b.iter()).map(|(&x, &y)| if x == y { Dim::Fixed(x) } else { Dim::Batch }).collect()
                }
                None => a.iter().map(|&x| Dim::Fixed(x)).collect(),
            };
        }
        Ok(())
    }

    /// Remove nodes whose outputs nobody uses, and initializers/masks nobody refers to.
    pub fn prune(&mut self) {
        let mut used: HashSet<String> = self.outputs.iter().map(|o| o.name.clone()).collect();
        let mut keep = vec![false; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if node.outputs.iter().any(|o| used.contains(o)) {
                keep[i] = true;
                used.extend(node.inputs.iter().cloned());
                used.extend(node.op.param_names().into_iter().map(String::from));
                if let Op::MaskedAct(c) = &node.op {
                    used.insert(c.mask.clone());
                }
            }
        }
        let mut it = keep.iter();
        self.nodes.retain(|_| *it.next().unwrap_or(&false));
        self.initializers.retain(|k, _| used.contains(k));
        self.masks.retain(|k, _| used.contains(k));
        let names: HashSet<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        self.cmp_bits.retain(|k, _| names.contains(k.as_str()));
        let inits = &self.initializers;
        self.weight_quant.retain(|k, _| inits.contains_key(k));
    }

    /// Graph inputs that are not initializers (what a caller must feed).
    pub fn data_inputs(&self) -> impl Iterator<Item = &ValueInfo> {
        self.inputs.iter().filter(|v| !self.initializers.contains_key(&v.name))
    }
}
