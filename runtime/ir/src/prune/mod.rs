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
//!
//! How the surgery works: the dead filters are zeroed ([`zero_filters`]); then, value by value,
//! the pass works out which channels are identically zero (`zeros.rs`: a zero row of a Conv or Gemm
//! with zero bias, BatchNorm with zeroed scale and shift or zero input and mean, ReLU, LeakyReLU,
//! Clip around 0, HardSwish, Tanh, Gelu, Sqrt, MaskedAct where the channel's mask is all ones or
//! its polynomial's `c0` is 0, pooling, Pad (with 0, or on no spatial axis), Slice, Concat,
//! Flatten, a flattening Reshape, Add/Sub where every operand is zero there, Mul where one is,
//! Div of a zero by a nonzero tensor). Channels that must go together are tied (`rules.rs`: a
//! channelwise op's input and output channel, Concat offsets, Pad and Slice re-indexing, a
//! flattened channel's columns, the operands of an Add, Sub or Mul, a grouped conv's whole group
//! with its input channels); a tied class goes when all of it is zero and none of it is a graph
//! input or output or touches an op without a rule (`classes.rs`). Conv and Gemm drop zero input
//! channels (weight dim 1, the columns of a flattened channel). The tensors that follow are
//! sliced (`surgery.rs`): BatchNorm vectors, MaskedAct masks and coefficients, per-channel
//! constants of Add/Sub/Mul/Div, Pad amounts and Slice bounds on the channel axis, a flattening
//! Reshape's target. No node is added or removed.
//!
//! Conservative cases (the dead filter stays, zeroed, as `kept_zeroed`): a channel that meets a
//! live one in an `Add`/`Sub` (a residual stream: every writer of the stream channel must be dead),
//! a graph output, a MaskedAct channel with some masked-out element and `c0 ≠ 0`, a Clip that
//! excludes 0, a strided Slice on channels, a dead filter of a grouped conv whose group is not
//! all dead or whose input channels are live, any op without a rule (MatMul, Transpose, Gather,
//! Softmax over channels, a non-flattening Reshape, ...), and the last channel of a value (a
//! value keeps at least one channel, zero if need be). A live channel is never removed, even one
//! nothing uses.

mod classes;
pub mod count;
mod index;
mod rules;
pub mod slopes;
mod surgery;
mod zero;
mod zeros;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{IrError, Result};
use crate::{Graph, Op};
use classes::Classes;
use index::Index;
use rules::Plan;
use surgery::Edits;

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
    /// tied to other producers, e.g. through an `Add`, or a group must die together). Precisely:
    /// every filter of the conv, dead alone, is removed by [`prune_channels`].
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
    let index = Index::new(graph)?;
    let plan = Plan::build(&index)?;
    let classes = Classes::new(&index, &plan);
    let deps = zeros::Dependents::new(&plan, index.elems);
    let mut zero = zeros::full(&plan, index.elems);
    let mut sites = Vec::new();
    for (n, node) in graph.nodes.iter().enumerate() {
        let Op::Conv(c) = &node.op else { continue };
        let out_channels = graph.initializer(node, &c.weight)?.shape()[0];
        let bn = index.exclusive_bn(n);
        let out = node.outputs[0].as_str();
        let removable = out_channels > 0
            && (0..out_channels).all(|chan| {
                let Some(e) = index.elem(out, chan) else { return false };
                let set = zeros::add(&plan, &deps, &mut zero, zeros::Hypothesis { conv: n, bn, chan });
                let k = classes.of[e];
                let ok = !classes.empties[k] && classes.removable(k, &zero);
                for e in set {
                    zero[e] = false;
                }
                ok
            });
        sites.push(ConvSite {
            conv: node.name.clone(),
            weight: c.weight.clone(),
            out_channels,
            groups: c.groups,
            batchnorm: bn.map(|b| graph.nodes[b].name.clone()),
            removable,
        });
    }
    Ok(sites)
}

/// The reference semantics of a dead set: zero the dead filters' weight rows and bias entries,
/// and the scale and shift of a BatchNorm that reads only that conv's output (see [`ConvSite`]).
/// Errors name the conv and channel when `dead` does not fit `graph`.
pub fn zero_filters(graph: &mut Graph, dead: &DeadSet) -> Result<()> {
    zero::zero_filters(graph, dead)
}

/// Remove the dead filters and every channel only they fed; see the module doc for the contract.
///
/// A channel goes when it is identically zero (given the dead filters) everywhere it flows until
/// layers that drop it, and none of those values is a graph input or output or passes an op
/// without a rule; a value keeps at least one channel. `convs` has one entry per `Conv` of
/// `graph`, in node order. `before − after` may exceed the number of dead filters removed: a
/// filter whose output the dead ones make zero goes too (a depthwise conv's channel whose input
/// is a dead filter, when it has no bias; a conv without bias or BatchNorm fed nothing but zeros).
pub fn prune_channels(graph: &Graph, dead: &DeadSet) -> Result<Pruned> {
    let mut g = graph.clone();
    zero::zero_filters(&mut g, dead)?;
    let (edits, convs) = {
        let index = Index::new(&g)?;
        let resolved = zero::resolve(&index, dead)?;
        let plan = Plan::build(&index)?;
        let zero = zeros::full(&plan, index.elems);
        let classes = Classes::new(&index, &plan);
        let removed = classes.decide(&index, &zero);
        let mut convs = Vec::new();
        for (n, node) in g.nodes.iter().enumerate() {
            let Op::Conv(c) = &node.op else { continue };
            let before = g.initializer(node, &c.weight)?.shape()[0];
            let out = node.outputs[0].as_str();
            let gone = |ch: usize| index.elem(out, ch).is_some_and(|e| removed[e]);
            let lost = (0..before).filter(|&ch| gone(ch)).count();
            let dead_here = resolved.iter().find(|(i, _)| *i == n).map(|(_, d)| d);
            let kept_zeroed = dead_here.map_or(0, |d| d.iter().filter(|&&ch| !gone(ch)).count());
            convs.push(ConvChange { conv: node.name.clone(), before, after: before - lost, kept_zeroed });
        }
        (Edits::plan(&index, &removed)?, convs)
    };
    let before = graph.infer_shapes(1)?;
    edits.apply(&mut g)?;
    g.finalize()?;
    let after = g.infer_shapes(1)?;
    for out in &graph.outputs {
        let (old, new) = (&before[&out.name], &after[&out.name]);
        if new != old {
            return Err(IrError::InvalidGraph {
                reason: format!(
                    "channel pruning changed the shape of output {} from {old:?} to {new:?} (a bug in masq_ir::prune)",
                    out.name
                ),
            });
        }
    }
    Ok(Pruned { graph: g, convs })
}
