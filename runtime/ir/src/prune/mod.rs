//! Channel pruning as a graph pass (docs/ALGORITHMS.md §6, §8): remove whole conv filters and
//! everything that only they fed, leaving an ordinary, smaller graph.
//!
//! The contract every function here keeps: [`prune_channels`]`(g, dead)` computes the same function
//! as [`zero_filters`] applied to `g` with the same `dead` set (to float rounding). A dead filter
//! whose channel cannot be removed physically (e.g. an `Add` whose other operand is alive on that
//! channel) stays in the graph with zeroed weights and is reported as `kept_zeroed`.
//!
//! - [`conv_sites`]: every `Conv` with its output channels and whether a dead filter there is
//!   physically removable on its own;
//! - [`zero_filters`]: the reference semantics (zero filter rows, bias, and the BatchNorm scale and
//!   shift of the channel when a BatchNorm reads the conv's output and nothing else does);
//! - [`prune_channels`]: the surgery;
//! - [`slopes`]: Rotated ReLU's per-channel slopes (insert, fold, threshold);
//! - [`count`]: the seed code's parameter and FLOP counting (§6 "Counting").

pub mod count;
pub mod slopes;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::Graph;
use crate::error::Result;

/// Dead filters: conv node name -> output-channel indices to remove.
pub type DeadSet = BTreeMap<String, BTreeSet<usize>>;

/// One conv whose filters can be scored and removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConvSite {
    /// The `Conv` node's name.
    pub conv: String,
    /// Its weight initializer's name (`[out, in/groups, kh, kw]`).
    pub weight: String,
    pub out_channels: usize,
    pub groups: usize,
    /// A BatchNorm that reads this conv's output and nothing else does (zeroed/removed together).
    pub batchnorm: Option<String>,
    /// Whether one dead filter here is removed physically on its own (false when the channel is
    /// tied to other producers, e.g. through an `Add`, or a group must die together).
    pub removable: bool,
}

/// Per-conv outcome of [`prune_channels`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConvChange {
    pub conv: String,
    pub before: usize,
    pub after: usize,
    /// Dead filters that had to stay (with zero weights) because their channel is still used.
    pub kept_zeroed: usize,
}

/// The smaller graph and what changed.
#[derive(Debug, Clone)]
pub struct Pruned {
    pub graph: Graph,
    pub convs: Vec<ConvChange>,
}

/// Every `Conv` of `graph` in node order (see [`ConvSite`]).
pub fn conv_sites(graph: &Graph) -> Result<Vec<ConvSite>> {
    let _ = graph;
    unimplemented!("filled in by the surgery pass")
}

/// The reference semantics of a dead set: zero the dead filters' weight rows and bias entries,
/// and the scale and shift of a BatchNorm that reads only that conv's output (see [`ConvSite`]).
/// Errors name the conv and channel when `dead` does not fit `graph`.
pub fn zero_filters(graph: &mut Graph, dead: &DeadSet) -> Result<()> {
    let _ = (graph, dead);
    unimplemented!("filled in by the surgery pass")
}

/// Remove the dead filters and every channel only they fed; see the module doc for the contract.
pub fn prune_channels(graph: &Graph, dead: &DeadSet) -> Result<Pruned> {
    let _ = (graph, dead);
    unimplemented!("filled in by the surgery pass")
}
