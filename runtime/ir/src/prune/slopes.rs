//! Rotated ReLU slopes (docs/ALGORITHMS.md §6): `y = a_c·ReLU(x)`, one slope per channel.
//!
//! In the graph a slope is a `Mul` node right after a `Relu`, whose second operand is an
//! initializer named `<relu node>.slope` of shape `[1, C, 1, 1]` (or `[1, C]` after a Gemm).

use std::collections::BTreeMap;

use serde::Serialize;

use super::DeadSet;
use crate::Graph;
use crate::error::Result;

/// A ReLU whose channels can carry slopes: its input comes from a conv (through an optional
/// BatchNorm) and a zero slope makes that conv's filter removable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlopeSite {
    /// The `Relu` node's name.
    pub relu: String,
    /// The conv producing its input channels.
    pub conv: String,
    pub channels: usize,
}

/// The ReLUs of `graph` that can carry slopes, in node order.
pub fn slope_sites(graph: &Graph) -> Result<Vec<SlopeSite>> {
    let _ = graph;
    unimplemented!("filled in by the surgery pass")
}

/// The initializer name of a site's slopes.
pub fn slope_name(relu: &str) -> String {
    format!("{relu}.slope")
}

/// A copy of `graph` with a slope `Mul` after each given site, initialised from `init` (relu
/// name -> one value per channel).
pub fn insert_slopes(graph: &Graph, init: &BTreeMap<String, Vec<f32>>) -> Result<Graph> {
    let _ = (graph, init);
    unimplemented!("filled in by the surgery pass")
}

/// The slopes currently in `graph`, by relu name.
pub fn read_slopes(graph: &Graph) -> Result<BTreeMap<String, Vec<f32>>> {
    let _ = graph;
    unimplemented!("filled in by the surgery pass")
}

/// Remove every slope `Mul`: channels with `|a| <= zeta` become dead filters of the producing
/// conv (returned), the others' slopes fold into the consumers' input weights (exact, sign
/// included), so the result has plain ReLUs and no extra ops. Feed the dead set to
/// [`super::prune_channels`].
pub fn fold_slopes(graph: &Graph, zeta: f32) -> Result<(Graph, DeadSet)> {
    let _ = (graph, zeta);
    unimplemented!("filled in by the surgery pass")
}
