//! Counting as the Rotated ReLU seed's `count.py` (docs/ALGORITHMS.md §6): per conv
//! `params = n_i·(n_{i−1}/groups)·k²`, `flops = 2·params·H_out·W_out`; projection shortcuts count;
//! each Gemm counts `2·out·in` FLOPs and `out·in` params; BatchNorm and biases are ignored.

use serde::Serialize;

use crate::Graph;
use crate::error::Result;

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
    let _ = graph;
    unimplemented!("filled in by the surgery pass")
}
