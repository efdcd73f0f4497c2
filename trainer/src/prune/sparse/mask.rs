//! Which weights unstructured pruning looks at, and which of them it zeroes.
//!
//! - The thresholded weights are the weight tensors of every `Conv` and `Gemm` node, in node
//!   order, each once (biases, BatchNorm and other initializers are never touched); the penalised
//!   ones ([`conv_weights`]) are the `Conv` weights alone (§7's `Σ_conv`).
//! - [`Target::Threshold`] zeroes every weight with `|w| < T`.
//! - [`Target::WeightSparsity`] zeroes exactly `⌊S·N⌋` weights, the smallest `|w|`: over all `N`
//!   thresholded weights at once ([`Scope::Global`]) or `⌊S·N_l⌋` of each tensor's `N_l`
//!   ([`Scope::PerLayer`]). Ties in `|w|` go to the earlier tensor, then the lower flat index, so
//!   the choice is deterministic; NaN ranks above every number (never zeroed first).

use std::collections::{BTreeMap, BTreeSet};

use masq_ir::{Graph, IrError, Op};
use serde::{Deserialize, Serialize};

use super::super::select::{Scope, dead_target};
use crate::error::{Result, TrainerError};

/// One thresholded weight tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightLayer {
    /// The node (the first one, when nodes share the tensor).
    pub layer: String,
    /// `Conv` or `Gemm`.
    pub op: String,
    /// The initializer.
    pub weight: String,
    /// Its number of elements.
    pub len: usize,
}

/// The Conv and Gemm weight tensors of `graph`, in node order, each once.
pub fn weight_layers(graph: &Graph) -> Result<Vec<WeightLayer>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for n in &graph.nodes {
        let weight = match &n.op {
            Op::Conv(c) => &c.weight,
            Op::Gemm(g) => &g.weight,
            _ => continue,
        };
        if !seen.insert(weight.clone()) {
            continue;
        }
        let t = graph
            .initializers
            .get(weight)
            .ok_or_else(|| TrainerError::Model(IrError::NotFound { kind: "initializer", name: weight.clone() }))?;
        out.push(WeightLayer { layer: n.name.clone(), op: n.op.name().into(), weight: weight.clone(), len: t.len() });
    }
    Ok(out)
}

/// The weight tensors of the `Conv` nodes (the penalised ones), in node order, each once.
pub fn conv_weights(graph: &Graph) -> Vec<String> {
    let mut seen = BTreeSet::new();
    graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Conv(c) if seen.insert(c.weight.clone()) => Some(c.weight.clone()),
            _ => None,
        })
        .collect()
}

/// `Σ|w|` over the `Conv` weights.
pub fn conv_l1(graph: &Graph) -> f64 {
    conv_weights(graph)
        .iter()
        .filter_map(|w| graph.initializers.get(w))
        .map(|t| t.iter().map(|v| f64::from(v.abs())).sum::<f64>())
        .sum()
}

/// Which weights die.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Zero this fraction, in `[0, 1)`, of the thresholded weights (exactly `⌊S·N⌋`).
    WeightSparsity(f64),
    /// Zero every weight with `|w| < T`, `T ≥ 0`.
    Threshold(f32),
}

/// The specification's threshold.
pub const DEFAULT_THRESHOLD: f32 = 1e-4;

impl Target {
    /// Reject a sparsity outside `[0, 1)` and a negative or non-finite threshold.
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(TrainerError::BadConfig { reason });
        match *self {
            Target::WeightSparsity(s) if !(s.is_finite() && (0.0..1.0).contains(&s)) => {
                bad(format!("weight sparsity {s} is not in [0, 1) (the fraction of weights zeroed)"))
            }
            Target::Threshold(t) if !(t.is_finite() && t >= 0.0) => {
                bad(format!("weight threshold {t} must be a non-negative number"))
            }
            _ => Ok(()),
        }
    }
}

/// The weights a target zeroes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    /// Flat indices to zero, ascending, per weight tensor (tensors with none are absent).
    pub zeroed: BTreeMap<String, Vec<usize>>,
    /// How many in all.
    pub count: usize,
    /// The threshold: `T` itself, or for a sparsity the largest `|w|` zeroed (0 for none).
    pub threshold: f32,
}

/// One candidate: `|w|`, tensor index, flat index.
type Entry = (f32, usize, usize);

fn rank(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
}

/// The `k` lowest entries by [`rank`] (any order).
fn lowest(mut entries: Vec<Entry>, k: usize) -> Vec<Entry> {
    if k == 0 {
        return Vec::new();
    }
    if k < entries.len() {
        entries.select_nth_unstable_by(k - 1, rank);
        entries.truncate(k);
    }
    entries
}

fn entries(graph: &Graph, layers: &[WeightLayer], which: impl Fn(usize) -> bool) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (li, l) in layers.iter().enumerate().filter(|(i, _)| which(*i)) {
        let t = graph
            .initializers
            .get(&l.weight)
            .ok_or_else(|| TrainerError::Model(IrError::NotFound { kind: "initializer", name: l.weight.clone() }))?;
        out.extend(t.iter().enumerate().map(|(i, v)| (v.abs(), li, i)));
    }
    Ok(out)
}

/// The weights of `layers` (from [`weight_layers`]) that `target` zeroes in `graph`.
pub fn select(graph: &Graph, layers: &[WeightLayer], target: Target, scope: Scope) -> Result<Selection> {
    target.check()?;
    let chosen: Vec<Entry> = match (target, scope) {
        (Target::Threshold(t), _) => entries(graph, layers, |_| true)?.into_iter().filter(|e| e.0 < t).collect(),
        (Target::WeightSparsity(s), Scope::Global) => {
            let all = entries(graph, layers, |_| true)?;
            let k = dead_target(s, all.len());
            lowest(all, k)
        }
        (Target::WeightSparsity(s), Scope::PerLayer) => {
            let mut out = Vec::new();
            for (li, l) in layers.iter().enumerate() {
                out.extend(lowest(entries(graph, layers, |i| i == li)?, dead_target(s, l.len)));
            }
            out
        }
    };
    let threshold = match target {
        Target::Threshold(t) => t,
        Target::WeightSparsity(_) => chosen.iter().map(|e| e.0).fold(0.0, f32::max),
    };
    let mut zeroed: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &(_, li, i) in &chosen {
        zeroed.entry(layers[li].weight.clone()).or_default().push(i);
    }
    for v in zeroed.values_mut() {
        v.sort_unstable();
    }
    Ok(Selection { count: chosen.len(), zeroed, threshold })
}

/// `graph` with the selected weights set to 0.
pub fn apply(graph: &Graph, selection: &Selection) -> Result<Graph> {
    let mut g = graph.clone();
    for (name, idx) in &selection.zeroed {
        let t = g
            .initializers
            .get_mut(name)
            .ok_or_else(|| TrainerError::Model(IrError::NotFound { kind: "initializer", name: name.clone() }))?;
        // `as_slice_mut` is the logical (row-major) order, as the flat indices are.
        match t.as_slice_mut() {
            Some(flat) => {
                for &i in idx {
                    if let Some(v) = flat.get_mut(i) {
                        *v = 0.0;
                    }
                }
            }
            None => {
                let set: BTreeSet<usize> = idx.iter().copied().collect();
                for (i, v) in t.iter_mut().enumerate() {
                    if set.contains(&i) {
                        *v = 0.0;
                    }
                }
            }
        }
    }
    Ok(g)
}
