//! The surgery: given the channel elements to remove, the tensor and config changes of every
//! node (computed from the graph as it is), then applied to it.

use ndarray::{ArrayD, Axis};

use super::index::{Index, initializer_uses, put_initializer};
use super::rules::{channel_axis, flatten_like};
use crate::error::{IrError, Result};
use crate::{Graph, Op, Replacement};

/// Where a node refers to a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Input(usize),
    Weight,
    Bias,
    BnScale,
    BnBias,
    BnMean,
    BnVar,
    C2,
    C1,
    C0,
}

#[derive(Debug)]
enum Edit {
    Tensor { node: usize, slot: Slot, name: String, tensor: ArrayD<f32> },
    Mask { node: usize, name: String, tensor: ArrayD<u8> },
    Groups { node: usize, groups: usize },
    Pad { node: usize, before: usize, after: usize },
    Slice { node: usize, pos: usize, start: usize, end: usize },
    Reshape { node: usize, cols: i64 },
}

/// The changes, as owned data (the graph they were computed from can then be changed).
#[derive(Debug)]
pub(super) struct Edits(Vec<Edit>);

fn internal(node: &str, what: &str) -> IrError {
    IrError::InvalidGraph { reason: format!("channel pruning: node {node}: {what} (a bug in masq_ir::prune)") }
}

/// Kept channels of a value, when some of them go.
fn kept(index: &Index<'_>, removed: &[bool], value: &str) -> Option<Vec<usize>> {
    let (&b, c) = (index.base.get(value)?, index.channels(value)?);
    if !(b..b + c).any(|e| removed[e]) {
        return None;
    }
    Some((0..c).filter(|&i| !removed[b + i]).collect())
}

fn gone(index: &Index<'_>, removed: &[bool], value: &str, c: usize) -> bool {
    index.elem(value, c).is_some_and(|e| removed[e])
}

impl Edits {
    pub fn plan(index: &Index<'_>, removed: &[bool]) -> Result<Edits> {
        let g = index.graph;
        let mut edits = Vec::new();
        for (ni, node) in g.nodes.iter().enumerate() {
            let out = node.outputs[0].as_str();
            let x = node.inputs[0].as_str();
            let kout = kept(index, removed, out);
            let kin = kept(index, removed, x);
            let tensor = |edits: &mut Vec<Edit>, slot: Slot, name: &str, t: ArrayD<f32>| {
                edits.push(Edit::Tensor { node: ni, slot, name: name.to_string(), tensor: t })
            };
            match &node.op {
                Op::Conv(c) => {
                    if kout.is_none() && kin.is_none() {
                        continue;
                    }
                    let w = g.initializer(node, &c.weight)?;
                    let mut t = match &kout {
                        Some(k) => w.select(Axis(0), k),
                        None => w.clone(),
                    };
                    if c.groups == 1 {
                        if let Some(k) = &kin {
                            t = t.select(Axis(1), k);
                        }
                    } else {
                        let (ig, og) = (w.shape()[1], w.shape()[0] / c.groups);
                        let mut lost = 0;
                        for j in 0..c.groups {
                            let ins: Vec<bool> = (0..ig).map(|k| gone(index, removed, x, j * ig + k)).collect();
                            let outs: Vec<bool> = (0..og).map(|m| gone(index, removed, out, j * og + m)).collect();
                            let all = ins.iter().chain(&outs).all(|&r| r);
                            if !all && ins.iter().chain(&outs).any(|&r| r) {
                                return Err(internal(
                                    &node.name,
                                    "a group of a grouped conv loses only part of itself",
                                ));
                            }
                            lost += all as usize;
                        }
                        edits.push(Edit::Groups { node: ni, groups: c.groups - lost });
                    }
                    tensor(&mut edits, Slot::Weight, &c.weight, t);
                    if let (Some(b), Some(k)) = (&c.bias, &kout) {
                        tensor(&mut edits, Slot::Bias, b, g.initializer(node, b)?.select(Axis(0), k));
                    }
                }
                Op::Gemm(c) => {
                    if kout.is_none() && kin.is_none() {
                        continue;
                    }
                    let w = g.initializer(node, &c.weight)?;
                    let mut t = match &kout {
                        Some(k) => w.select(Axis(0), k),
                        None => w.clone(),
                    };
                    if let Some(k) = &kin {
                        t = t.select(Axis(1), k);
                    }
                    tensor(&mut edits, Slot::Weight, &c.weight, t);
                    if let (Some(b), Some(k)) = (&c.bias, &kout) {
                        tensor(&mut edits, Slot::Bias, b, g.initializer(node, b)?.select(Axis(0), k));
                    }
                }
                Op::BatchNorm(c) => {
                    let Some(k) = &kout else { continue };
                    for (slot, name) in [
                        (Slot::BnScale, &c.scale),
                        (Slot::BnBias, &c.bias),
                        (Slot::BnMean, &c.mean),
                        (Slot::BnVar, &c.var),
                    ] {
                        tensor(&mut edits, slot, name, g.initializer(node, name)?.select(Axis(0), k));
                    }
                }
                Op::MaskedAct(c) => {
                    let Some(k) = &kout else { continue };
                    if let Replacement::Poly { c2, c1, c0 } = &c.replacement {
                        for (slot, name) in [(Slot::C2, c2), (Slot::C1, c1), (Slot::C0, c0)] {
                            tensor(&mut edits, slot, name, g.initializer(node, name)?.select(Axis(0), k));
                        }
                    }
                    let mask = g.masks.get(&c.mask).ok_or_else(|| internal(&node.name, "mask missing"))?;
                    edits.push(Edit::Mask { node: ni, name: c.mask.clone(), tensor: mask.select(Axis(0), k) });
                }
                Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Pow(_) => {
                    let Some(k) = &kout else { continue };
                    let (rank, oc) = (index.shape(out)?.len(), index.channels(out).unwrap_or(0));
                    for (slot, input) in node.inputs.iter().enumerate() {
                        let Some(t) = g.initializers.get(input) else { continue };
                        if let Some(a) = channel_axis(t.ndim(), rank).filter(|&a| t.shape()[a] == oc && oc > 1) {
                            tensor(&mut edits, Slot::Input(slot), input, t.select(Axis(a), k));
                        }
                    }
                }
                Op::Pad(c) => {
                    let Some(k) = &kout else { continue };
                    let (before, cin) = (c.pads[1].0, index.channels(x).unwrap_or(0));
                    let b = k.iter().filter(|&&o| o < before).count();
                    let a = k.iter().filter(|&&o| o >= before + cin).count();
                    edits.push(Edit::Pad { node: ni, before: b, after: a });
                }
                Op::Slice(c) => {
                    let (Some(pos), Some(k)) = (c.axes.iter().position(|&a| a == 1), &kin) else { continue };
                    let cin = index.channels(x).unwrap_or(0);
                    let (start, end) = (c.starts[pos], c.ends[pos]);
                    if c.steps[pos] != 1 {
                        return Err(internal(&node.name, "a strided channel slice loses input channels"));
                    }
                    let new_start = k.iter().filter(|&&i| i < start).count();
                    let new_end =
                        if end >= cin { end } else { new_start + k.iter().filter(|&&i| i >= start && i < end).count() };
                    edits.push(Edit::Slice { node: ni, pos, start: new_start, end: new_end });
                }
                Op::Reshape(r) => {
                    let Some(k) = &kout else { continue };
                    if flatten_like(index.shape(x)?, &r.shape) && r.shape[1] > 0 {
                        edits.push(Edit::Reshape { node: ni, cols: k.len() as i64 });
                    }
                }
                _ => {}
            }
        }
        Ok(Edits(edits))
    }

    pub fn apply(self, graph: &mut Graph) -> Result<()> {
        let mut uses = initializer_uses(graph);
        let mut mask_uses = std::collections::HashMap::<String, usize>::new();
        for node in &graph.nodes {
            if let Op::MaskedAct(c) = &node.op {
                *mask_uses.entry(c.mask.clone()).or_default() += 1;
            }
        }
        for edit in self.0 {
            match edit {
                Edit::Tensor { node, slot, name, tensor } => {
                    let user = graph.nodes[node].name.clone();
                    let new = put_initializer(graph, &mut uses, &name, &user, tensor);
                    let n = &mut graph.nodes[node];
                    let target: Option<&mut String> = match (slot, &mut n.op) {
                        (Slot::Input(i), _) => n.inputs.get_mut(i),
                        (Slot::Weight, Op::Conv(c)) => Some(&mut c.weight),
                        (Slot::Bias, Op::Conv(c)) => c.bias.as_mut(),
                        (Slot::Weight, Op::Gemm(c)) => Some(&mut c.weight),
                        (Slot::Bias, Op::Gemm(c)) => c.bias.as_mut(),
                        (Slot::BnScale, Op::BatchNorm(c)) => Some(&mut c.scale),
                        (Slot::BnBias, Op::BatchNorm(c)) => Some(&mut c.bias),
                        (Slot::BnMean, Op::BatchNorm(c)) => Some(&mut c.mean),
                        (Slot::BnVar, Op::BatchNorm(c)) => Some(&mut c.var),
                        (Slot::C2, Op::MaskedAct(c)) => match &mut c.replacement {
                            Replacement::Poly { c2, .. } => Some(c2),
                            Replacement::Identity => None,
                        },
                        (Slot::C1, Op::MaskedAct(c)) => match &mut c.replacement {
                            Replacement::Poly { c1, .. } => Some(c1),
                            Replacement::Identity => None,
                        },
                        (Slot::C0, Op::MaskedAct(c)) => match &mut c.replacement {
                            Replacement::Poly { c0, .. } => Some(c0),
                            Replacement::Identity => None,
                        },
                        _ => None,
                    };
                    match target {
                        Some(t) => *t = new,
                        None => return Err(internal(&user, "no such tensor slot")),
                    }
                }
                Edit::Mask { node, name, tensor } => {
                    let n = mask_uses.get(&name).copied().unwrap_or(0);
                    let new = if n <= 1 {
                        name.clone()
                    } else {
                        mask_uses.insert(name.clone(), n - 1);
                        crate::fold::fresh_name(graph, &format!("{name}.{}", graph.nodes[node].name))
                    };
                    graph.masks.insert(new.clone(), tensor);
                    if let Op::MaskedAct(c) = &mut graph.nodes[node].op {
                        c.mask = new;
                    }
                }
                Edit::Groups { node, groups } => {
                    if let Op::Conv(c) = &mut graph.nodes[node].op {
                        c.groups = groups;
                    }
                }
                Edit::Pad { node, before, after } => {
                    if let Op::Pad(c) = &mut graph.nodes[node].op {
                        c.pads[1] = (before, after);
                    }
                }
                Edit::Slice { node, pos, start, end } => {
                    if let Op::Slice(c) = &mut graph.nodes[node].op {
                        c.starts[pos] = start;
                        c.ends[pos] = end;
                    }
                }
                Edit::Reshape { node, cols } => {
                    if let Op::Reshape(c) = &mut graph.nodes[node].op {
                        c.shape[1] = cols;
                    }
                }
            }
        }
        Ok(())
    }
}
