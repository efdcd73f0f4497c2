//! Per-layer and total cost figures of a graph at batch 1: parameters, MACs and ReLUs.
//!
//! Counting rules (ALGORITHMS.md §9): a `Relu` (or `LeakyRelu`) costs one ReLU per element of its
//! input for one image; a `MaskedAct` costs one per 1 in its mask. Max pooling is reported apart as
//! comparisons (`kh·kw − 1` per output element), and `Clip` as one comparison per bound per element.
//! MACs: multiply-accumulates of Conv/Gemm/MatMul, plus one per element for BatchNorm, Mul and Div,
//! AveragePool's window sums, and two per replaced element of a polynomial MaskedAct.

use serde::Serialize;

use crate::error::Result;
use crate::ir::{Dim, Graph, Op, Replacement};

/// One node's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: String,
    /// Output shape at batch 1.
    pub output_shape: Vec<usize>,
    pub params: u64,
    pub macs: u64,
    pub relus: u64,
    pub maxpool_comparisons: u64,
    pub other_comparisons: u64,
}

/// A whole graph's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub model: String,
    pub inputs: Vec<(String, Vec<Dim>)>,
    pub outputs: Vec<(String, Vec<Dim>)>,
    /// Whether the graph runs at batch sizes above 1.
    pub supports_batch: bool,
    pub params: u64,
    pub macs: u64,
    pub relu_count: u64,
    pub maxpool_comparisons: u64,
    pub other_comparisons: u64,
    pub layers: Vec<LayerReport>,
}

/// Compute the report of a graph.
pub fn report(graph: &Graph) -> Result<Report> {
    let shapes = graph.infer_shapes(1)?;
    let mut layers = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let out = shapes[&node.outputs[0]].clone();
        let input = node.inputs.first().and_then(|n| shapes.get(n)).cloned().unwrap_or_default();
        let out_elems: u64 = out.iter().product::<usize>() as u64;
        let in_elems: u64 = input.iter().product::<usize>() as u64;
        let (mut macs, mut relus, mut maxcmp, mut other) = (0u64, 0u64, 0u64, 0u64);
        match &node.op {
            Op::Conv(c) => {
                let w = graph.initializer(node, &c.weight)?.shape();
                macs = out_elems * (w[1] * w[2] * w[3]) as u64;
            }
            Op::Gemm(c) => {
                let w = graph.initializer(node, &c.weight)?.shape();
                macs = out_elems * w[1] as u64;
            }
            Op::MatMul(_) => {
                macs = out_elems * input.last().copied().unwrap_or(0) as u64;
            }
            Op::BatchNorm(_) | Op::Mul(_) | Op::Div(_) => macs = out_elems,
            Op::AveragePool(c) => macs = out_elems * (c.kernel[0] * c.kernel[1]) as u64,
            Op::GlobalAveragePool => macs = in_elems,
            Op::Relu | Op::LeakyRelu(_) => relus = in_elems,
            Op::MaskedAct(c) => {
                let ones = graph.masks.get(&c.mask).map(|m| m.iter().filter(|&&v| v != 0).count()).unwrap_or(0) as u64;
                relus = ones;
                if let Replacement::Poly { .. } = c.replacement {
                    macs = 2 * (in_elems - ones.min(in_elems));
                }
            }
            Op::MaxPool(c) => maxcmp = out_elems * (c.kernel[0] * c.kernel[1]).saturating_sub(1) as u64,
            Op::Clip(c) => other = in_elems * (c.min.is_some() as u64 + c.max.is_some() as u64),
            Op::Softmax(_) | Op::LogSoftmax(_) => other = in_elems,
            Op::Add(_)
            | Op::Sub(_)
            | Op::Flatten(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Concat(_)
            | Op::Pad(_)
            | Op::Slice(_)
            | Op::Identity => {}
        }
        layers.push(LayerReport {
            name: node.name.clone(),
            op: node.op.name().to_string(),
            output_shape: out,
            params: graph.node_params(node) as u64,
            macs,
            relus,
            maxpool_comparisons: maxcmp,
            other_comparisons: other,
        });
    }
    let params = graph.initializers.values().map(|t| t.len() as u64).sum();
    Ok(Report {
        model: graph.name.clone(),
        inputs: graph.data_inputs().map(|v| (v.name.clone(), v.shape.clone())).collect(),
        outputs: graph.outputs.iter().map(|v| (v.name.clone(), v.shape.clone())).collect(),
        supports_batch: graph.supports_batch(),
        params,
        macs: layers.iter().map(|l| l.macs).sum(),
        relu_count: layers.iter().map(|l| l.relus).sum(),
        maxpool_comparisons: layers.iter().map(|l| l.maxpool_comparisons).sum(),
        other_comparisons: layers.iter().map(|l| l.other_comparisons).sum(),
        layers,
    })
}

/// Group digits in threes: `1359872` -> `1,359,872`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Report {
    /// A human-readable table with a totals line.
    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let name_w = self.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 48);
        let mut s = String::new();
        let _ = writeln!(s, "model {}", self.model);
        for (n, d) in &self.inputs {
            let _ = writeln!(s, "input  {n}: {}", crate::ir::format_dims(d));
        }
        for (n, d) in &self.outputs {
            let _ = writeln!(s, "output {n}: {}", crate::ir::format_dims(d));
        }
        let _ = writeln!(
            s,
            "{:<name_w$}  {:<18}  {:<18}  {:>12}  {:>15}  {:>11}",
            "name", "op", "output", "params", "MACs", "ReLUs"
        );
        for l in &self.layers {
            let shape = format!("{:?}", l.output_shape);
            let _ = writeln!(
                s,
                "{:<name_w$}  {:<18}  {:<18}  {:>12}  {:>15}  {:>11}",
                l.name,
                l.op,
                shape,
                thousands(l.params),
                thousands(l.macs),
                thousands(l.relus)
            );
        }
        let _ = writeln!(
            s,
            "total: params {}, MACs {}, ReLUs {}, max-pool comparisons {}, other comparisons {}",
            thousands(self.params),
            thousands(self.macs),
            thousands(self.relu_count),
            thousands(self.maxpool_comparisons),
            thousands(self.other_comparisons)
        );
        s
    }
}
