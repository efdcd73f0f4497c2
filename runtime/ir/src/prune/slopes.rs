//! Rotated ReLU slopes (docs/ALGORITHMS.md §6): `y = a_c·ReLU(x)`, one slope per channel.
//!
//! In the graph a slope is a `Mul` node right after a `Relu`, whose second operand is an
//! initializer named `<relu node>.slope` of shape `[1, C, 1, 1]` (or `[1, C]` after a Gemm).
//!
//! A slope site ([`slope_sites`]) is a `Relu` that
//! - reads a `Conv`'s output, directly or through a `BatchNorm`, each link read by nothing else
//!   (so a dead filter there only reaches the rest of the graph through this ReLU), and
//! - whose output only reaches `Conv`s and `Gemm`s through ops that commute with a per-channel
//!   scale of either sign: `Identity`, `AveragePool`, `GlobalAveragePool`, `Pad` with value 0 off
//!   the channel axis, `Slice` off the batch and channel axes, `Flatten` (axis 1), a flattening
//!   `Reshape`, and `Mul` by a tensor. A slope then folds exactly into those layers' input
//!   weights.
//!
//! Not sites: ReLUs whose output also feeds an `Add` (the post-addition ReLUs of a residual
//! stream, a ResNet stem ReLU read by an identity shortcut), ReLUs before a `MaxPool` (a max does
//! not commute with a negative slope), ReLUs that read an `Add` (a pre-activation block's first
//! BN-ReLU, except where its input is the stem conv alone), graph outputs.

use std::collections::{BTreeMap, BTreeSet};

use ndarray::{ArrayD, Axis, IxDyn};
use serde::Serialize;

use super::DeadSet;
use super::index::{Index, initializer_uses, put_initializer};
use super::rules::flatten_like;
use crate::error::{IrError, Result};
use crate::fold::fresh_name;
use crate::{BinaryConfig, Graph, Node, Op};

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

/// A layer a slope folds into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Scale input channel `c` of the conv's weight.
    Conv(usize),
    /// Scale the columns `c·block .. (c+1)·block` of the Gemm's weight.
    Gemm { node: usize, block: usize },
}

/// The conv whose filters are the channels a Relu reads (through an exclusive BatchNorm).
fn producing_conv(index: &Index<'_>, relu: usize) -> Option<usize> {
    let g = index.graph;
    let input = g.nodes[relu].inputs[0].as_str();
    if index.sole_reader(input) != Some(relu) {
        return None;
    }
    let p = *index.producer.get(input)?;
    match &g.nodes[p].op {
        Op::Conv(_) => Some(p),
        Op::BatchNorm(_) => {
            let w = g.nodes[p].inputs[0].as_str();
            let c = *index.producer.get(w)?;
            (matches!(g.nodes[c].op, Op::Conv(_)) && index.sole_reader(w) == Some(p)).then_some(c)
        }
        _ => None,
    }
}

/// Follows `value` (channels on axis 1; `flat = Some(b)` once flattened, `b` columns per channel)
/// to the layers a slope folds into; `Err` says which reader stops it.
fn sinks(index: &Index<'_>, value: &str, flat: Option<usize>, out: &mut Vec<Sink>) -> std::result::Result<(), String> {
    let g = index.graph;
    if index.outputs.contains(value) {
        return Err(format!("value {value} is a graph output"));
    }
    let rank = index.shapes.get(value).map_or(0, Vec::len);
    for &(n, slot) in index.readers.get(value).map(Vec::as_slice).unwrap_or(&[]) {
        let node = &g.nodes[n];
        let next = node.outputs[0].as_str();
        let refuse = || Err(format!("{} node {} reads it", node.op.name(), node.name));
        match &node.op {
            Op::Conv(_) if slot == 0 && flat.is_none() && rank == 4 => out.push(Sink::Conv(n)),
            Op::Gemm(_) if slot == 0 && rank == 2 => out.push(Sink::Gemm { node: n, block: flat.unwrap_or(1) }),
            Op::Identity => sinks(index, next, flat, out)?,
            Op::AveragePool(_) | Op::GlobalAveragePool if flat.is_none() => sinks(index, next, flat, out)?,
            Op::Pad(c) if flat.is_none() && c.value == 0.0 && c.pads.len() >= 2 && c.pads[..2] == [(0, 0), (0, 0)] => {
                sinks(index, next, flat, out)?
            }
            Op::Slice(c) if flat.is_none() && !c.axes.iter().any(|&a| a <= 1) => sinks(index, next, flat, out)?,
            Op::Flatten(_) | Op::Reshape(_) => {
                let flattens = match &node.op {
                    Op::Flatten(f) => f.axis == 1,
                    Op::Reshape(r) => index.shapes.get(value).is_some_and(|s| flatten_like(s, &r.shape)),
                    _ => false,
                };
                if !flattens || rank < 2 {
                    return refuse();
                }
                let block = match flat {
                    Some(b) => b,
                    None => index.shapes[value][2..].iter().product(),
                };
                sinks(index, next, Some(block), out)?
            }
            Op::Mul(_) if node.inputs.iter().enumerate().all(|(i, v)| i == slot || index.is_initializer(v)) => {
                sinks(index, next, flat, out)?
            }
            _ => return refuse(),
        }
    }
    Ok(())
}

/// The ReLUs of `graph` that can carry slopes, in node order.
pub fn slope_sites(graph: &Graph) -> Result<Vec<SlopeSite>> {
    let index = Index::new(graph)?;
    Ok(sites(&index))
}

fn sites(index: &Index<'_>) -> Vec<SlopeSite> {
    let g = index.graph;
    let mut out = Vec::new();
    for (n, node) in g.nodes.iter().enumerate() {
        if !matches!(node.op, Op::Relu) {
            continue;
        }
        let Some(conv) = producing_conv(index, n) else { continue };
        let mut found = Vec::new();
        if sinks(index, node.output(), None, &mut found).is_err() || found.is_empty() {
            continue;
        }
        let Some(channels) = index.channels(node.output()) else { continue };
        out.push(SlopeSite { relu: node.name.clone(), conv: g.nodes[conv].name.clone(), channels });
    }
    out
}

/// The initializer name of a site's slopes.
pub fn slope_name(relu: &str) -> String {
    format!("{relu}.slope")
}

/// A copy of `graph` with a slope `Mul` after each given site, initialised from `init` (relu
/// name -> one value per channel).
///
/// The `Mul` node (and its output value) is named `<relu>.slope_mul`; every reader of the ReLU's
/// output reads the `Mul`'s instead. Every name in `init` must be a [`slope_sites`] ReLU.
pub fn insert_slopes(graph: &Graph, init: &BTreeMap<String, Vec<f32>>) -> Result<Graph> {
    let index = Index::new(graph)?;
    let sites = sites(&index);
    let mut g = graph.clone();
    // relu output value -> Mul node.
    let mut muls: BTreeMap<String, Node> = BTreeMap::new();
    for (relu, values) in init {
        let Some(site) = sites.iter().find(|s| &s.relu == relu) else {
            return Err(match index.node_index(relu) {
                None => IrError::NotFound { kind: "Relu node", name: relu.clone() },
                Some(i) => IrError::UnsupportedConfig {
                    node: relu.clone(),
                    op: graph.nodes[i].op.name().to_string(),
                    reason: "not a slope site (a Relu reading a conv, through an exclusive BatchNorm, whose output \
                             only reaches Conv/Gemm layers through channelwise linear ops)"
                        .into(),
                },
            });
        };
        if values.len() != site.channels {
            return Err(IrError::UnsupportedConfig {
                node: relu.clone(),
                op: "Relu".into(),
                reason: format!("{} slopes given for {} channels", values.len(), site.channels),
            });
        }
        let name = slope_name(relu);
        if fresh_name(&g, &name) != name {
            return Err(IrError::InvalidGraph { reason: format!("the slope name {name} is taken") });
        }
        let node = &graph.nodes[index.node_index(relu).expect("a site is a node")];
        let rank = index.shapes[node.output()].len();
        let mut shape = vec![1; rank];
        shape[1] = site.channels;
        g.initializers.insert(name.clone(), ArrayD::from_shape_vec(IxDyn(&shape), values.clone()).expect("sizes"));
        let mul = fresh_name(&g, &format!("{relu}.slope_mul"));
        muls.insert(
            node.output().to_string(),
            Node::new(mul.clone(), Op::Mul(BinaryConfig {}), &[node.output(), &name], &[&mul]),
        );
    }
    let mut nodes = Vec::with_capacity(g.nodes.len() + muls.len());
    for mut node in std::mem::take(&mut g.nodes) {
        for input in &mut node.inputs {
            if let Some(m) = muls.get(input.as_str()) {
                *input = m.outputs[0].clone();
            }
        }
        let added = muls.get(node.output()).cloned();
        nodes.push(node);
        nodes.extend(added);
    }
    g.nodes = nodes;
    g.finalize()?;
    Ok(g)
}

/// Slope `Mul` nodes: (Mul, Relu) node indices.
fn slope_muls(index: &Index<'_>) -> Vec<(usize, usize)> {
    let g = index.graph;
    let mut out = Vec::new();
    for (m, node) in g.nodes.iter().enumerate() {
        if !matches!(node.op, Op::Mul(_)) {
            continue;
        }
        let Some(&r) = index.producer.get(node.inputs[0].as_str()) else { continue };
        if matches!(g.nodes[r].op, Op::Relu)
            && node.inputs[1] == slope_name(&g.nodes[r].name)
            && index.is_initializer(&node.inputs[1])
        {
            out.push((m, r));
        }
    }
    out
}

fn slope_values(index: &Index<'_>, mul: usize, relu: usize) -> Result<Vec<f32>> {
    let g = index.graph;
    let node = &g.nodes[mul];
    let t = g.initializer(node, &node.inputs[1])?;
    let channels = index.channels(g.nodes[relu].output()).unwrap_or(0);
    let per_channel = t.ndim() >= 2 && t.len() == channels && t.shape()[1] == channels;
    if !per_channel {
        return Err(IrError::BadInitializer {
            node: node.name.clone(),
            op: "Mul".into(),
            name: node.inputs[1].clone(),
            reason: format!("slopes of shape {:?} for {channels} channels (expected [1, {channels}, 1, 1])", t.shape()),
        });
    }
    Ok(t.iter().copied().collect())
}

/// The slopes currently in `graph`, by relu name.
pub fn read_slopes(graph: &Graph) -> Result<BTreeMap<String, Vec<f32>>> {
    let index = Index::new(graph)?;
    slope_muls(&index)
        .into_iter()
        .map(|(m, r)| Ok((graph.nodes[r].name.clone(), slope_values(&index, m, r)?)))
        .collect()
}

/// Remove every slope `Mul`: channels with `|a| <= zeta` become dead filters of the producing
/// conv (returned), the others' slopes fold into the consumers' input weights (exact, sign
/// included), so the result has plain ReLUs and no extra ops. Feed the dead set to
/// [`super::prune_channels`].
///
/// The consumers' input weights of a dead channel are zeroed too, so the returned graph on its
/// own already computes the slope graph with those slopes set to 0 (and so does
/// `prune_channels` of it with the returned dead set). A slope `Mul` whose Relu is not a slope
/// site, or whose output reaches something it cannot fold into, is an error naming the `Mul`.
pub fn fold_slopes(graph: &Graph, zeta: f32) -> Result<(Graph, DeadSet)> {
    let index = Index::new(graph)?;
    let mut dead = DeadSet::new();
    // (sink, factor per channel of the folded value)
    let mut folds: Vec<(Sink, Vec<f32>)> = Vec::new();
    let mut removed: Vec<(usize, usize)> = Vec::new();
    for (m, r) in slope_muls(&index) {
        let mul = &graph.nodes[m];
        let refuse = |reason: String| IrError::UnsupportedConfig { node: mul.name.clone(), op: "Mul".into(), reason };
        let relu = &graph.nodes[r];
        if index.sole_reader(relu.output()) != Some(m) {
            return Err(refuse(format!("the output of Relu {} has readers besides this slope Mul", relu.name)));
        }
        let Some(conv) = producing_conv(&index, r) else {
            return Err(refuse(format!(
                "Relu {} does not read a conv (directly or through a BatchNorm that nothing else reads)",
                relu.name
            )));
        };
        let mut found = Vec::new();
        if let Err(why) = sinks(&index, mul.output(), None, &mut found) {
            return Err(refuse(format!(
                "cannot fold the slopes of {} into the layers after it: {why} (only Conv/Gemm through \
                 channelwise linear ops fold)",
                relu.name
            )));
        }
        let a = slope_values(&index, m, r)?;
        let small: BTreeSet<usize> = (0..a.len()).filter(|&c| a[c].abs() <= zeta).collect();
        let factors: Vec<f32> = a.iter().enumerate().map(|(c, &v)| if small.contains(&c) { 0.0 } else { v }).collect();
        if !small.is_empty() {
            dead.entry(graph.nodes[conv].name.clone()).or_default().extend(small);
        }
        folds.extend(found.into_iter().map(|s| (s, factors.clone())));
        removed.push((m, r));
    }
    let mut g = graph.clone();
    let mut uses = initializer_uses(&g);
    for (sink, f) in folds {
        match sink {
            Sink::Conv(n) => {
                let node = &graph.nodes[n];
                let Op::Conv(c) = &node.op else { unreachable!("a conv sink") };
                let mut w = graph.initializer(node, &c.weight)?.clone();
                let (ig, og) = (w.shape()[1], w.shape()[0] / c.groups.max(1));
                for (ch, &factor) in f.iter().enumerate() {
                    let (j, k) = (ch / ig, ch % ig);
                    for o in j * og..(j + 1) * og {
                        w.index_axis_mut(Axis(0), o).index_axis_mut(Axis(0), k).mapv_inplace(|v| v * factor);
                    }
                }
                let name = put_initializer(&mut g, &mut uses, &c.weight, &node.name, w);
                if let Op::Conv(c) = &mut g.nodes[n].op {
                    c.weight = name;
                }
            }
            Sink::Gemm { node: n, block } => {
                let node = &graph.nodes[n];
                let Op::Gemm(c) = &node.op else { unreachable!("a gemm sink") };
                let mut w = graph.initializer(node, &c.weight)?.clone();
                for (ch, &factor) in f.iter().enumerate() {
                    for col in ch * block..(ch + 1) * block {
                        w.index_axis_mut(Axis(1), col).mapv_inplace(|v| v * factor);
                    }
                }
                let name = put_initializer(&mut g, &mut uses, &c.weight, &node.name, w);
                if let Op::Gemm(c) = &mut g.nodes[n].op {
                    c.weight = name;
                }
            }
        }
    }
    // Bypass and drop the Muls, then their slope tensors.
    let bypass: BTreeMap<String, String> =
        removed.iter().map(|&(m, r)| (graph.nodes[m].outputs[0].clone(), graph.nodes[r].outputs[0].clone())).collect();
    let drop: BTreeSet<usize> = removed.iter().map(|&(m, _)| m).collect();
    let slopes: Vec<String> = removed.iter().map(|&(m, _)| graph.nodes[m].inputs[1].clone()).collect();
    let mut i = 0;
    g.nodes.retain(|_| {
        i += 1;
        !drop.contains(&(i - 1))
    });
    for node in &mut g.nodes {
        for input in &mut node.inputs {
            if let Some(to) = bypass.get(input) {
                *input = to.clone();
            }
        }
    }
    for name in slopes {
        if !g.nodes.iter().any(|n| n.inputs.contains(&name)) {
            g.initializers.remove(&name);
        }
    }
    let names: BTreeSet<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    let kept: BTreeMap<String, u32> =
        g.cmp_bits.iter().filter(|(k, _)| names.contains(k.as_str())).map(|(k, v)| (k.clone(), *v)).collect();
    g.cmp_bits = kept;
    g.finalize()?;
    Ok((g, dead))
}
