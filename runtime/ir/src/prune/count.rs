//! Counting as the Rotated ReLU seed's `count.py` (docs/ALGORITHMS.md §6): per conv
//! `params = n_i·(n_{i−1}/groups)·k²`, `flops = 2·params·H_out·W_out`; projection shortcuts count;
//! each Gemm counts `2·out·in` FLOPs and `out·in` params; BatchNorm and biases are ignored.
//!
//! The counts are of the graph as it is: a filter that [`super::prune_channels`] had to keep
//! (with zero weights) still counts.

use serde::Serialize;

use crate::error::{IrError, Result};
use crate::{Graph, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SeedCount {
    pub params: u64,
    pub flops: u64,
}

impl SeedCount {
    /// `1 − pruned/full` for params and FLOPs.
    pub fn savings(&self, pruned: &SeedCount) -> (f64, f64) {
        let s = |a: u64, b: u64| if a == 0 { 0.0 } else { 1.0 - b as f64 / a as f64 };
        (s(self.params, pruned.params), s(self.flops, pruned.flops))
    }
}

/// The count of `graph` at its declared input size.
pub fn seed_count(graph: &Graph) -> Result<SeedCount> {
    let shapes = graph.infer_shapes(1)?;
    let mut count = SeedCount::default();
    for node in &graph.nodes {
        let weight = match &node.op {
            Op::Conv(c) => &c.weight,
            Op::Gemm(c) => &c.weight,
            _ => continue,
        };
        // The weight holds n_i·(n_{i−1}/groups)·kh·kw (Conv) or out·in (Gemm) elements.
        let params = graph.initializer(node, weight)?.len() as u64;
        let out = shapes
            .get(&node.outputs[0])
            .ok_or_else(|| IrError::NotFound { kind: "shape of value", name: node.outputs[0].clone() })?;
        let positions: u64 = match &node.op {
            Op::Conv(_) => out[2..].iter().product::<usize>() as u64,
            _ => 1,
        };
        count.params += params;
        count.flops += 2 * params * positions;
    }
    Ok(count)
}
