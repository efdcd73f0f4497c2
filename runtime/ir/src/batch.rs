//! Fixed batches: a model exported at a fixed batch `B` (`torch.onnx.export(model,
//! torch.randn(4, 3, 32, 32))` without dynamic axes) has `B` baked into its input and into its
//! Reshape targets (`x.view(x.size(0), -1)` becomes `Reshape([4, 64])`). [`generalise`] turns the
//! leading dimension back into the batch ([`Dim::Batch`]) where every node agrees, so that such a
//! model runs at any batch; where a node mixes the images of the batch it refuses, naming the node
//! ([`Refusal`]), and the model stays fixed at `B`.
//!
//! The pass follows the batch axis from axis 0 of the (one) data input through every node that
//! reads a batch value, and requires each such node to keep it on axis 0 of its output and to
//! treat the images independently:
//!
//! - a Reshape whose target resolves to `B` at position 0 gets `0` there (copy the batch);
//! - a constant with a leading `B` combined with a batch value (the expanded class token of a
//!   ViT) is generalised when its `B` rows are equal: element-wise ops and MatMul take its first
//!   row (broadcasting does the rest); a Concat takes the batch parts zero-padded along the
//!   concatenation axis, plus the constants' rows at their places (`Pad` + `Add`, exact);
//! - anything that reads across the batch axis (a Reshape, Flatten, Transpose, Slice, Gather,
//!   Pad, reduction, normalisation or Concat on axis 0, a MatMul contracting it, a constant whose
//!   rows differ) is refused.
//!
//! Shapes are then inferred at batches 1, 2 and `B + 1`: every batch value must keep its batch
//! axis and every other value its shape.
//!
//! ```
//! use masq_ir::{Dim, Graph, Node, Op, ReshapeConfig, ValueInfo, batch};
//! let mut g = Graph::new("fixed");
//! g.inputs.push(ValueInfo::new("x", vec![Dim::Fixed(4), Dim::Fixed(2), Dim::Fixed(3)]));
//! g.nodes.push(Node::new("relu", Op::Relu, &["x"], &["r"]));
//! g.nodes.push(Node::new("flat", Op::Reshape(ReshapeConfig { shape: vec![4, 6] }), &["r"], &["y"]));
//! g.outputs.push(ValueInfo::new("y", vec![]));
//! g.finalize().unwrap();
//! let out = batch::generalise(&mut g).unwrap();
//! assert!(matches!(out, batch::Outcome::Generalised { batch: 4, .. }));
//! assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(6)]);
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use ndarray::{ArrayD, Axis, Slice};

use crate::error::{IrError, Result};
use crate::fold::fresh_name;
use crate::shape::reshape_target;
use crate::{BinaryConfig, ConcatConfig, Dim, Graph, Node, Op, PadConfig, ShapeMap};

/// Why a fixed-batch graph cannot run at other batches: the first node that reads across the
/// batch axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The batch the graph is fixed at.
    pub batch: usize,
    pub node: String,
    pub op: String,
    /// What the node does, e.g. `reshapes [4, 3, 8, 8] into [1, 12, 8, 8], mixing the images`.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} ({}) {}", self.node, self.op, self.reason)
    }
}

/// What [`generalise`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: the graph's batch is symbolic already, or it has no single data input of
    /// rank 2 or more with a fixed leading dimension.
    NotFixed,
    /// The leading dimension `batch` of the input is now [`Dim::Batch`]; `rewritten` names the
    /// nodes that changed (Reshape targets, constants taken per image, Concats rebuilt).
    Generalised { batch: usize, rewritten: Vec<String> },
    /// The graph is unchanged (still fixed at `refusal.batch`).
    Refused(Refusal),
}

/// The batch a graph is fixed at: the leading dimension of its one data input when that is
/// fixed and the input has rank 2 or more.
pub fn fixed_batch(graph: &Graph) -> Option<usize> {
    fixed_input(graph).map(|(_, b)| b)
}

fn fixed_input(graph: &Graph) -> Option<(usize, usize)> {
    let data: Vec<usize> =
        (0..graph.inputs.len()).filter(|&i| !graph.initializers.contains_key(&graph.inputs[i].name)).collect();
    let [i] = data.as_slice() else { return None };
    let shape = &graph.inputs[*i].shape;
    if shape.len() < 2 || shape.contains(&Dim::Batch) {
        return None;
    }
    match shape[0] {
        Dim::Fixed(b) if b > 0 => Some((*i, b)),
        _ => None,
    }
}

/// Generalise a finalized graph fixed at a batch `B` to any batch (see the module docs). On
/// [`Outcome::Refused`] and [`Outcome::NotFixed`] the graph is left as it was. Errors only when
/// the graph's own shapes do not infer.
pub fn generalise(graph: &mut Graph) -> Result<Outcome> {
    let Some((input, b)) = fixed_input(graph) else { return Ok(Outcome::NotFixed) };
    let mut g = graph.clone();
    match rewrite(&mut g, input, b)? {
        Err(r) => Ok(Outcome::Refused(r)),
        Ok(rewritten) => {
            g.prune();
            g.finalize()?;
            *graph = g;
            Ok(Outcome::Generalised { batch: b, rewritten })
        }
    }
}

/// Why a graph that does not run at batches other than its own cannot be generalised: for a
/// fixed-batch graph, the node [`generalise`] refuses at; for a graph with a symbolic batch that
/// only runs at batch 1, the node that pins it. `None` when the graph runs at any batch, or when
/// no single node is to blame.
pub fn diagnose(graph: &Graph) -> Option<Refusal> {
    if graph.supports_batch() {
        return None;
    }
    let mut g = graph.clone();
    if fixed_input(&g).is_none() {
        // A symbolic batch that only works at 1: analyse it as fixed at 1.
        let data: Vec<usize> =
            (0..g.inputs.len()).filter(|&i| !g.initializers.contains_key(&g.inputs[i].name)).collect();
        let [i] = data.as_slice() else { return None };
        let v = &mut g.inputs[*i];
        if v.shape.len() < 2 || v.shape[0] != Dim::Batch || v.shape[1..].contains(&Dim::Batch) {
            return None;
        }
        v.shape[0] = Dim::Fixed(1);
    }
    match generalise(&mut g) {
        Ok(Outcome::Refused(r)) => Some(r),
        _ => None,
    }
}

/// Does the rewrite in place; `Err(refusal)` leaves `g` half-rewritten (the caller drops it).
fn rewrite(g: &mut Graph, input: usize, b: usize) -> Result<Result<Vec<String>, Refusal>> {
    let shapes = g.infer_shapes(b)?;
    let mut batch: HashSet<String> = HashSet::from([g.inputs[input].name.clone()]);
    let mut rewritten = Vec::new();
    let mut per_image: HashMap<String, String> = HashMap::new();
    // `g.nodes` stays as it was during the walk, so that new names are fresh against it.
    let nodes = g.nodes.clone();
    let mut out_nodes = Vec::with_capacity(nodes.len());
    for mut node in nodes {
        let flags: Vec<bool> = node.inputs.iter().map(|i| batch.contains(i)).collect();
        if !flags.iter().any(|&f| f) {
            out_nodes.push(node);
            continue;
        }
        let ins: Vec<Vec<usize>> = node.inputs.iter().map(|i| shapes[i].clone()).collect();
        let (name, op) = (node.name.clone(), node.op.name().to_string());
        let refuse = |reason: String| Refusal { batch: b, node: name.clone(), op: op.clone(), reason };
        let x = &ins[0];
        let step = match &mut node.op {
            Op::Conv(_)
            | Op::Gemm(_)
            | Op::Relu
            | Op::Clip(_)
            | Op::LeakyRelu(_)
            | Op::Sigmoid
            | Op::HardSigmoid(_)
            | Op::HardSwish
            | Op::Tanh
            | Op::Erf
            | Op::Gelu(_)
            | Op::Exp
            | Op::Sqrt
            | Op::Reciprocal
            | Op::BatchNorm(_)
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::Identity
            | Op::FakeQuant(_)
            | Op::MaskedAct(_) => Ok(()),
            Op::Flatten(c) if c.axis == 0 => Err(refuse(format!("flattens {x:?} with axis 0, mixing the images"))),
            Op::Flatten(_) => Ok(()),
            Op::Reshape(c) => match reshape_target(x, &c.shape) {
                Some(out) if out.first() == Some(&b) => {
                    if c.shape[0] != 0 {
                        c.shape[0] = 0;
                        rewritten.push(node.name.clone());
                    }
                    Ok(())
                }
                Some(out) => Err(refuse(format!("reshapes the batch axis: {x:?} into {out:?}, mixing the images"))),
                None => Err(refuse(format!("reshapes {x:?} into {:?}", c.shape))),
            },
            Op::Transpose(c) if c.perm.first() != Some(&0) => {
                Err(refuse(format!("moves the batch axis (perm {:?})", c.perm)))
            }
            Op::Transpose(_) => Ok(()),
            Op::Pad(c) if c.pads.first().is_some_and(|&p| p != (0, 0)) => Err(refuse("pads the batch axis".into())),
            Op::Pad(_) => Ok(()),
            Op::Slice(c) if c.axes.contains(&0) => Err(refuse("slices the batch axis".into())),
            Op::Slice(_) => Ok(()),
            Op::Gather(c) if c.axis == 0 => Err(refuse("gathers along the batch axis".into())),
            Op::Gather(_) => Ok(()),
            Op::Softmax(c) | Op::LogSoftmax(c) if c.axis == 0 => {
                Err(refuse("normalises across the batch axis (axis 0)".into()))
            }
            Op::Softmax(_) | Op::LogSoftmax(_) => Ok(()),
            Op::ReduceMean(c) | Op::ReduceSum(c) if c.axes.contains(&0) => {
                Err(refuse(format!("reduces over the batch axis (axes {:?})", c.axes)))
            }
            Op::ReduceMean(_) | Op::ReduceSum(_) => Ok(()),
            Op::LayerNorm(c) if c.axis == 0 => Err(refuse("normalises across the batch axis (axis 0)".into())),
            Op::LayerNorm(_) => Ok(()),
            Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Pow(_) => {
                elementwise(g, &mut node.inputs, &flags, &ins, b, &mut per_image, &refuse)
            }
            Op::MatMul(_) => matmul(g, &mut node.inputs, &flags, &ins, b, &mut per_image, &refuse),
            Op::Concat(c) if c.axis == 0 => Err(refuse("concatenates along the batch axis".into())),
            Op::Concat(_) if flags.iter().all(|&f| f) => Ok(()),
            Op::Concat(c) => {
                let axis = c.axis;
                match concat_with_constants(g, &node, axis, &flags, &ins, &shapes, b, &refuse) {
                    Ok(replacement) => {
                        rewritten.push(node.name.clone());
                        batch.insert(node.outputs[0].clone());
                        batch.extend(replacement.iter().map(|n| n.outputs[0].clone()));
                        out_nodes.extend(replacement);
                        continue;
                    }
                    Err(r) => Err(r),
                }
            }
        };
        if let Err(r) = step {
            return Ok(Err(r));
        }
        if node.inputs.iter().any(|i| per_image.values().any(|v| v == i)) && !rewritten.contains(&node.name) {
            rewritten.push(node.name.clone());
        }
        batch.insert(node.outputs[0].clone());
        out_nodes.push(node);
    }
    g.nodes = out_nodes;
    g.inputs[input].shape[0] = Dim::Batch;
    Ok(verify(g, &batch, &shapes, b).map(|()| rewritten))
}

type RefuseFn<'a> = dyn Fn(String) -> Refusal + 'a;

/// The first row of initializer `name` (of leading dimension `b`) as a new initializer, when all
/// `b` rows are equal.
fn first_row(g: &mut Graph, name: &str, b: usize, cache: &mut HashMap<String, String>) -> Option<String> {
    if let Some(n) = cache.get(name) {
        return Some(n.clone());
    }
    let t = g.initializers.get(name)?;
    if t.ndim() == 0 || t.shape()[0] != b || !rows_equal(t) {
        return None;
    }
    let row = t.slice_axis(Axis(0), Slice::from(0..1)).to_owned();
    let new = fresh_name(g, &format!("{name}.per_image"));
    g.initializers.insert(new.clone(), row);
    cache.insert(name.to_string(), new.clone());
    Some(new)
}

fn rows_equal(t: &ArrayD<f32>) -> bool {
    let first = t.index_axis(Axis(0), 0);
    t.axis_iter(Axis(0)).all(|r| r == first)
}

/// Element-wise binary op: batch operands have the same rank; a constant operand either does not
/// reach axis 0 (lower rank, or leading dimension 1) or has `b` equal rows there.
fn elementwise(
    g: &mut Graph,
    inputs: &mut [String],
    flags: &[bool],
    ins: &[Vec<usize>],
    b: usize,
    cache: &mut HashMap<String, String>,
    refuse: &RefuseFn<'_>,
) -> Result<(), Refusal> {
    let rank = ins.iter().zip(flags).filter(|(_, f)| **f).map(|(s, _)| s.len()).max().unwrap_or(0);
    for k in 0..inputs.len() {
        let s = &ins[k];
        if flags[k] {
            if s.len() != rank {
                return Err(refuse(format!("combines batch values of ranks {} and {rank}", s.len())));
            }
            continue;
        }
        constant_operand(g, &mut inputs[k], s, rank, b, cache, refuse)?;
    }
    Ok(())
}

/// A constant operand aligned with a batch value of rank `rank` (right-aligned broadcasting).
fn constant_operand(
    g: &mut Graph,
    name: &mut String,
    s: &[usize],
    rank: usize,
    b: usize,
    cache: &mut HashMap<String, String>,
    refuse: &RefuseFn<'_>,
) -> Result<(), Refusal> {
    if s.len() < rank || s[0] == 1 && s.len() == rank {
        return Ok(());
    }
    if s.len() > rank {
        return Err(refuse(format!("broadcasts {name} of shape {s:?} in front of the batch axis")));
    }
    match first_row(g, name, b, cache) {
        Some(row) => {
            *name = row;
            Ok(())
        }
        None if g.initializers.contains_key(name.as_str()) => Err(refuse(format!(
            "combines constant {name} of shape {s:?}, whose rows differ between the {b} images of the fixed batch"
        ))),
        None => Err(refuse(format!("combines {name} of shape {s:?}, computed from constants, with the batch"))),
    }
}

/// MatMul: the batch must be a broadcast (leading) dimension of the product, never a contracted
/// one.
fn matmul(
    g: &mut Graph,
    inputs: &mut [String],
    flags: &[bool],
    ins: &[Vec<usize>],
    b: usize,
    cache: &mut HashMap<String, String>,
    refuse: &RefuseFn<'_>,
) -> Result<(), Refusal> {
    let (ra, rb) = (ins[0].len(), ins[1].len());
    match (flags[0], flags[1]) {
        (true, true) if ra == rb && ra >= 3 => Ok(()),
        (true, true) => {
            Err(refuse(format!("multiplies two batch values of shapes {:?} and {:?} across the batch", ins[0], ins[1])))
        }
        (true, false) if ra == 2 && rb == 2 => Ok(()),
        (true, false) if ra == 2 => {
            Err(refuse(format!("broadcasts {} of shape {:?} in front of the batch axis", inputs[1], ins[1])))
        }
        (true, false) => {
            let (mut n, s) = (inputs[1].clone(), ins[1].clone());
            let r = if rb <= 2 { Ok(()) } else { constant_operand(g, &mut n, &s, ra, b, cache, refuse) };
            inputs[1] = n;
            r
        }
        (false, _) if rb <= 2 => Err(refuse(format!("contracts the batch axis of {:?}", ins[1]))),
        (false, _) => {
            let (mut n, s) = (inputs[0].clone(), ins[0].clone());
            let r = if ra <= 2 { Ok(()) } else { constant_operand(g, &mut n, &s, rb, b, cache, refuse) };
            inputs[0] = n;
            r
        }
    }
}

/// A Concat (on an axis other than 0) of batch values and constants with `b` equal rows: the
/// batch parts, zero-padded along the axis where the constants go, concatenated, plus one
/// constant holding the constants' rows at their places (and zeros elsewhere).
#[allow(clippy::too_many_arguments)]
fn concat_with_constants(
    g: &mut Graph,
    node: &Node,
    axis: usize,
    flags: &[bool],
    ins: &[Vec<usize>],
    shapes: &ShapeMap,
    b: usize,
    refuse: &RefuseFn<'_>,
) -> Result<Vec<Node>, Refusal> {
    let out_shape = &shapes[&node.outputs[0]];
    let mut row_shape = out_shape.clone();
    row_shape[0] = 1;
    let mut constant = ArrayD::<f32>::zeros(row_shape);
    // Batch parts with the (before, after) padding each takes along `axis`.
    let mut parts: Vec<(String, usize, usize)> = Vec::new();
    let mut offset = 0;
    let mut pending = 0;
    for (k, name) in node.inputs.iter().enumerate() {
        let len = ins[k][axis];
        if flags[k] {
            parts.push((name.clone(), if parts.is_empty() { pending } else { 0 }, 0));
            if let Some(prev) = parts.len().checked_sub(2).map(|i| &mut parts[i]) {
                prev.2 = pending;
            }
            pending = 0;
        } else {
            let t = match g.initializers.get(name) {
                Some(t) if rows_equal(t) => t,
                Some(_) => {
                    return Err(refuse(format!(
                        "concatenates constant {name}, whose rows differ between the {b} images of the fixed batch"
                    )));
                }
                None => return Err(refuse(format!("concatenates {name}, computed from constants, with the batch"))),
            };
            let row = t.slice_axis(Axis(0), Slice::from(0..1));
            constant.slice_axis_mut(Axis(axis), Slice::from(offset..offset + len)).assign(&row);
            pending += len;
        }
        offset += len;
    }
    if let Some(last) = parts.last_mut() {
        last.2 = pending;
    }
    let rank = out_shape.len();
    let out = node.outputs[0].clone();
    let mut nodes = Vec::new();
    let mut padded = Vec::new();
    for (j, (name, before, after)) in parts.into_iter().enumerate() {
        if before == 0 && after == 0 {
            padded.push(name);
            continue;
        }
        let mut pads = vec![(0, 0); rank];
        pads[axis] = (before, after);
        let value = fresh_name(g, &format!("{out}.pad{j}"));
        let n = Node::new(
            fresh_name(g, &format!("{}.pad{j}", node.name)),
            Op::Pad(PadConfig { pads, value: 0.0 }),
            &[&name],
            &[&value],
        );
        g.nodes.push(n.clone());
        nodes.push(n);
        padded.push(value);
    }
    let joined = if padded.len() == 1 {
        padded.remove(0)
    } else {
        let value = fresh_name(g, &format!("{out}.cat"));
        let refs: Vec<&str> = padded.iter().map(String::as_str).collect();
        let n = Node::new(
            fresh_name(g, &format!("{}.cat", node.name)),
            Op::Concat(ConcatConfig { axis }),
            &refs,
            &[&value],
        );
        g.nodes.push(n.clone());
        nodes.push(n);
        value
    };
    let cname = fresh_name(g, &format!("{}.constants", node.name));
    g.initializers.insert(cname.clone(), constant);
    // `fresh_name` looks at `g.nodes`: the placeholders pushed above only reserved the names.
    g.nodes.retain(|n| !nodes.iter().any(|m| m.name == n.name));
    nodes.push(Node::new(node.name.clone(), Op::Add(BinaryConfig {}), &[&joined, &cname], &[&out]));
    Ok(nodes)
}

/// Shapes at other batches: every batch value keeps its batch axis (axis 0), every other value its
/// shape.
fn verify(g: &Graph, batch: &HashSet<String>, at_b: &ShapeMap, b: usize) -> Result<(), Refusal> {
    let producer = |value: &str| {
        g.nodes
            .iter()
            .find(|n| n.outputs.iter().any(|o| o == value))
            .map_or((value.to_string(), "input".to_string()), |n| (n.name.clone(), n.op.name().to_string()))
    };
    let mut sizes = vec![1, 2, b + 1];
    sizes.dedup();
    for n in sizes {
        let shapes = match g.infer_shapes(n) {
            Ok(s) => s,
            Err(e) => {
                let (node, op) = match &e {
                    IrError::ShapeMismatch { node, op, .. } | IrError::UnsupportedConfig { node, op, .. } => {
                        (node.clone(), op.clone())
                    }
                    _ => ("(graph)".to_string(), "shapes".to_string()),
                };
                return Err(Refusal { batch: b, node, op, reason: format!("does not run at batch {n}: {e}") });
            }
        };
        for (value, s) in at_b {
            let Some(t) = shapes.get(value) else { continue };
            let ok = if batch.contains(value) {
                s.first() == Some(&b) && t.first() == Some(&n) && s[1..] == t[1..]
            } else {
                s == t
            };
            if !ok {
                let (node, op) = producer(value);
                return Err(Refusal {
                    batch: b,
                    node,
                    op,
                    reason: format!("gives {value} the shape {t:?} at batch {n} ({s:?} at batch {b})"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MatMulConfig, ReshapeConfig, ValueInfo};

    fn graph(b: usize, dims: &[usize], nodes: Vec<Node>, inits: &[(&str, ArrayD<f32>)]) -> Graph {
        let mut g = Graph::new("t");
        let mut shape = vec![Dim::Fixed(b)];
        shape.extend(dims.iter().map(|&d| Dim::Fixed(d)));
        g.inputs.push(ValueInfo::new("x", shape));
        let out = nodes.last().unwrap().outputs[0].clone();
        g.nodes = nodes;
        g.initializers = inits.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
        g.outputs.push(ValueInfo::new(out, vec![]));
        g.finalize().unwrap();
        g
    }

    fn reshape(name: &str, input: &str, shape: Vec<i64>, out: &str) -> Node {
        Node::new(name, Op::Reshape(ReshapeConfig { shape }), &[input], &[out])
    }

    #[test]
    fn at_batch_1_only_reshapes_of_batch_values_change() {
        // A constant reshaped from [1, 6] to [1, 2, 3] is not the batch; the input's reshape is.
        let c = ArrayD::from_elem(vec![1, 6], 0.5f32);
        let nodes = vec![
            reshape("rc", "c", vec![1, 2, 3], "c3"),
            reshape("rx", "x", vec![1, 2, 3], "x3"),
            Node::new("add", Op::Add(BinaryConfig {}), &["x3", "c3"], &["y"]),
        ];
        let mut g = graph(1, &[6], nodes, &[("c", c)]);
        let out = generalise(&mut g).unwrap();
        assert_eq!(out, Outcome::Generalised { batch: 1, rewritten: vec!["rx".into()] });
        let shape = |n: &str| match &g.nodes.iter().find(|x| x.name == n).unwrap().op {
            Op::Reshape(c) => c.shape.clone(),
            _ => unreachable!(),
        };
        assert_eq!((shape("rc"), shape("rx")), (vec![1, 2, 3], vec![0, 2, 3]));
        assert_eq!(g.infer_shapes(3).unwrap()["y"], [3, 2, 3]);
    }

    #[test]
    fn matmul_keeps_the_batch_only_as_rows_or_a_broadcast_dimension() {
        let w = ArrayD::from_elem(vec![6, 2], 1.0f32);
        let mm = |a: &str, b: &str| vec![Node::new("mm", Op::MatMul(MatMulConfig {}), &[a, b], &["y"])];
        let mut g = graph(4, &[6], mm("x", "w"), &[("w", w.clone())]);
        assert!(matches!(generalise(&mut g).unwrap(), Outcome::Generalised { .. }));
        // W [2, 4] · x [4, 6] contracts the batch.
        let mut g = graph(4, &[6], mm("v", "x"), &[("v", ArrayD::from_elem(vec![2, 4], 1.0))]);
        let Outcome::Refused(r) = generalise(&mut g).unwrap() else { panic!("generalised") };
        assert_eq!(r.node, "mm");
        assert_eq!(g.inputs[0].shape[0], Dim::Fixed(4));
        // x [4, 3, 6] · W [4, 6, 2] with equal W rows: W's first row, broadcast.
        let w3 = ArrayD::from_elem(vec![4, 6, 2], 1.0f32);
        let mut g = graph(4, &[3, 6], mm("x", "w3"), &[("w3", w3)]);
        assert!(matches!(generalise(&mut g).unwrap(), Outcome::Generalised { .. }));
        assert_eq!(g.initializers.len(), 1, "the full W is pruned");
        assert_eq!(g.initializers.values().next().unwrap().shape(), [1, 6, 2]);
    }

    #[test]
    fn a_graph_with_a_symbolic_batch_is_not_touched() {
        let mut g = Graph::new("t");
        g.inputs.push(ValueInfo::batched("x", &[6]));
        g.nodes.push(Node::new("r", Op::Relu, &["x"], &["y"]));
        g.outputs.push(ValueInfo::new("y", vec![]));
        g.finalize().unwrap();
        assert_eq!(generalise(&mut g).unwrap(), Outcome::NotFixed);
        assert_eq!(diagnose(&g), None);
    }
}
