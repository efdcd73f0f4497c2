//! One rule per node, in two parts:
//!
//! - **zero propagation**: when is channel `c` of the node's output identically zero, given which
//!   input channels are (a [`Rule`]: a row test for Conv/Gemm, a per-channel [`Formula`] for the
//!   channelwise and re-indexing ops, nothing for the rest);
//! - **channel ties**: which (value, channel) elements must be removed together for the node to
//!   stay well formed (`ties`: a Relu's input channel `c` and output channel `c`, a Concat input's
//!   channel and its offset output channel, a whole group of a grouped conv, with its inputs), and
//!   which ones can never go (`blocked`: graph inputs and outputs, tensors, anything an op without
//!   a rule reads or writes, a strided channel Slice's channels). A Conv or Gemm drops any zero
//!   input channel (the weights then only ever multiplied zeros): nothing ties its input to its
//!   output channels.
//!
//! A class of tied elements is removable when nothing in it is blocked and all of it is
//! identically zero ([`super::classes`]).

use std::borrow::Cow;

use ndarray::{ArrayD, Axis};

use super::index::Index;
use crate::error::Result;
use crate::{Op, Replacement};

/// `zero ⇔ always ∨ (gate ∧ (any ? ∃ : ∀) input zero)`.
#[derive(Debug, Clone, Default)]
pub(super) struct Formula {
    pub always: bool,
    pub gate: bool,
    pub any: bool,
    pub inputs: Vec<usize>,
}

impl Formula {
    fn unary(input: usize, gate: bool) -> Self {
        Formula { always: false, gate, any: false, inputs: vec![input] }
    }
}

/// A Conv (or Gemm: `ksz = 1`, one group) viewed as rows over input channels.
#[derive(Debug)]
pub(super) struct Linear<'g> {
    /// First element of the input and of the output.
    pub x: usize,
    pub out: usize,
    pub out_chans: usize,
    /// Input and output channels per group; weight elements per (output, input) pair.
    pub ig: usize,
    pub og: usize,
    pub ksz: usize,
    pub weight: Cow<'g, [f32]>,
    pub bias: Option<Cow<'g, [f32]>>,
}

impl Linear<'_> {
    /// Whether output channel `o` is zero when the inputs `zero` says are zero are: its bias is
    /// zero and its weights on every other input channel of its group are.
    pub fn row_zero(&self, o: usize, zero: &[bool]) -> bool {
        if self.bias.as_ref().is_some_and(|b| b[o] != 0.0) {
            return false;
        }
        let j = o / self.og;
        let row = &self.weight[o * self.ig * self.ksz..(o + 1) * self.ig * self.ksz];
        (0..self.ig)
            .all(|k| zero[self.x + j * self.ig + k] || row[k * self.ksz..(k + 1) * self.ksz].iter().all(|&w| w == 0.0))
    }
}

#[derive(Debug)]
pub(super) enum Rule<'g> {
    /// Outputs are never known to be zero.
    Never,
    Linear(Linear<'g>),
    /// One formula per output channel, starting at element `out`.
    Map {
        out: usize,
        chans: Vec<Formula>,
    },
}

/// Every node's rule and the ties, needs and blocks of the whole graph.
#[derive(Debug)]
pub(super) struct Plan<'g> {
    pub rules: Vec<Rule<'g>>,
    pub ties: Vec<(usize, usize)>,
    pub blocked: Vec<usize>,
}

fn contiguous(t: &ArrayD<f32>) -> Cow<'_, [f32]> {
    match t.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.iter().copied().collect()),
    }
}

/// Whether every element of `t` at index `c` of axis `axis` satisfies `f`.
fn slice_all(t: &ArrayD<f32>, axis: usize, c: usize, f: impl Fn(f32) -> bool) -> bool {
    t.index_axis(Axis(axis), c).iter().all(|&v| f(v))
}

/// The channel axis of a tensor of rank `r` broadcast against a result of rank `big` (numpy
/// alignment from the right), if it has one.
pub(super) fn channel_axis(r: usize, big: usize) -> Option<usize> {
    (r + 1).checked_sub(big).filter(|_| big >= 2 && r >= big - 1)
}

/// Whether a Reshape target flattens `[N, ...]` to `[N, prod(...)]`.
pub(super) fn flatten_like(input: &[usize], target: &[i64]) -> bool {
    if input.len() < 2 || target.len() != 2 {
        return false;
    }
    let f: usize = input[1..].iter().product();
    match (target[0], target[1]) {
        (0, t) => t == -1 || t == f as i64,
        (-1, t) => t == f as i64,
        _ => false,
    }
}

enum Operand {
    /// A computed value with the result's channels: tied channel by channel.
    PerChannel(usize),
    /// A computed value broadcast over the channels: zero everywhere iff this element is.
    Broadcast(Option<usize>),
    /// A tensor: per output channel, whether its slice is all zero and all nonzero.
    Const { zero: Vec<bool>, nonzero: Vec<bool> },
    /// Does not line up with the result's channels: the node is opaque.
    Mismatch,
}

impl<'g> Plan<'g> {
    pub fn build(index: &Index<'g>) -> Result<Plan<'g>> {
        let g = index.graph;
        let mut plan = Plan { rules: Vec::with_capacity(g.nodes.len()), ties: vec![], blocked: vec![] };
        let all = |v: &str| -> Vec<usize> {
            match (index.base.get(v), index.channels(v)) {
                (Some(&b), Some(c)) => (b..b + c).collect(),
                _ => vec![],
            }
        };
        for v in g.inputs.iter().map(|v| v.name.as_str()).chain(g.outputs.iter().map(|v| v.name.as_str())) {
            plan.blocked.extend(all(v));
        }
        for &(name, b, c) in &index.values {
            if index.is_initializer(name) {
                plan.blocked.extend(b..b + c);
            }
        }
        for (ni, node) in g.nodes.iter().enumerate() {
            let rule = plan.node_rule(index, ni)?;
            let rule = match rule {
                Some(r) => r,
                None => {
                    // Opaque: nothing it reads or writes may lose a channel.
                    for v in node.inputs.iter().chain(&node.outputs) {
                        plan.blocked.extend(all(v));
                    }
                    Rule::Never
                }
            };
            plan.rules.push(rule);
        }
        Ok(plan)
    }

    fn tie_range(&mut self, a: usize, b: usize, n: usize) {
        self.ties.extend((0..n).map(|i| (a + i, b + i)));
    }

    /// The rule of node `ni`, recording its ties; `None` when the node is opaque.
    fn node_rule(&mut self, index: &Index<'g>, ni: usize) -> Result<Option<Rule<'g>>> {
        let g = index.graph;
        let node = &g.nodes[ni];
        let out = node.outputs[0].as_str();
        let Some(ob) = index.base.get(out).copied() else {
            // An output of rank < 2: its inputs' channels all matter to it (unless untracked too).
            return Ok(None);
        };
        let oc = index.channels(out).unwrap_or(0);
        let x = node.inputs[0].as_str();
        let xb = index.base.get(x).copied();
        let xc = index.channels(x);
        // The same channels in and out, tied one to one.
        let channelwise = |plan: &mut Self| -> Option<usize> {
            match (xb, xc) {
                (Some(b), Some(c)) if c == oc => {
                    plan.tie_range(b, ob, c);
                    Some(b)
                }
                _ => None,
            }
        };
        let unary = |plan: &mut Self, gate: &dyn Fn(usize) -> bool| -> Option<Rule<'g>> {
            let b = channelwise(plan)?;
            Some(Rule::Map { out: ob, chans: (0..oc).map(|c| Formula::unary(b + c, gate(c))).collect() })
        };
        let rule = match &node.op {
            Op::Conv(c) => {
                let Some(b) = xb else { return Ok(None) };
                let w = g.initializer(node, &c.weight)?;
                let ws = w.shape();
                let (ig, og, ksz) = (ws[1], ws[0] / c.groups.max(1), ws[2] * ws[3]);
                if c.groups > 1 {
                    for j in 0..c.groups {
                        let first = b + j * ig;
                        self.ties.extend((1..ig).map(|k| (first, first + k)));
                        self.ties.extend((0..og).map(|m| (first, ob + j * og + m)));
                    }
                }
                let bias = c.bias.as_ref().map(|n| g.initializer(node, n).map(contiguous)).transpose()?;
                Some(Rule::Linear(Linear { x: b, out: ob, out_chans: oc, ig, og, ksz, weight: contiguous(w), bias }))
            }
            Op::Gemm(c) => {
                let (Some(b), Some(cin)) = (xb, xc) else { return Ok(None) };
                let w = g.initializer(node, &c.weight)?;
                let bias = c.bias.as_ref().map(|n| g.initializer(node, n).map(contiguous)).transpose()?;
                Some(Rule::Linear(Linear {
                    x: b,
                    out: ob,
                    out_chans: oc,
                    ig: cin,
                    og: oc,
                    ksz: 1,
                    weight: contiguous(w),
                    bias,
                }))
            }
            Op::Relu
            | Op::LeakyRelu(_)
            | Op::Identity
            | Op::FakeQuant(_)
            | Op::HardSwish
            | Op::Tanh
            | Op::Gelu(_)
            | Op::Sqrt
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool => unary(self, &|_| true),
            Op::Sigmoid | Op::HardSigmoid(_) | Op::Erf | Op::Exp | Op::Reciprocal => unary(self, &|_| false),
            Op::Clip(c) => {
                let keeps = c.min.is_none_or(|m| m <= 0.0) && c.max.is_none_or(|m| m >= 0.0);
                unary(self, &|_| keeps)
            }
            Op::MaskedAct(c) => {
                let mask = g.masks.get(&c.mask);
                let c0 = match &c.replacement {
                    Replacement::Identity => None,
                    Replacement::Poly { c0, .. } => Some(g.initializer(node, c0)?),
                };
                let cap_ok = c.cap.is_none_or(|m| m >= 0.0);
                let keeps = |ch: usize| {
                    let all_kept = mask.is_some_and(|m| m.index_axis(Axis(0), ch).iter().all(|&v| v != 0));
                    cap_ok && (all_kept || c0.is_none_or(|t| t[[ch]] == 0.0))
                };
                unary(self, &keeps)
            }
            Op::BatchNorm(c) => {
                let get = |n: &str| g.initializer(node, n);
                let (gamma, beta, mean) = (get(&c.scale)?, get(&c.bias)?, get(&c.mean)?);
                channelwise(self).map(|b| Rule::Map {
                    out: ob,
                    chans: (0..oc)
                        .map(|ch| Formula {
                            always: beta[[ch]] == 0.0 && gamma[[ch]] == 0.0,
                            gate: beta[[ch]] == 0.0 && mean[[ch]] == 0.0,
                            any: false,
                            inputs: vec![b + ch],
                        })
                        .collect(),
                })
            }
            Op::Softmax(c) | Op::LogSoftmax(c) if c.axis >= 2 => channelwise(self).map(|_| Rule::Never),
            Op::LayerNorm(c) if c.axis >= 2 => channelwise(self).map(|_| Rule::Never),
            Op::ReduceMean(c) | Op::ReduceSum(c) if c.axes.iter().all(|&a| a >= 2) => {
                channelwise(self).map(|_| Rule::Never)
            }
            Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Pow(_) => self.binary(index, ni, ob, oc)?,
            Op::Pad(c) => {
                let (Some(b), Some(cin)) = (xb, xc) else { return Ok(None) };
                if c.pads.len() < 2 || c.pads[0] != (0, 0) {
                    return Ok(None);
                }
                let (before, _) = c.pads[1];
                let spatial_unpadded = c.pads[2..].iter().all(|&p| p == (0, 0));
                let zero_fill = c.value == 0.0;
                self.tie_range(b, ob + before, cin);
                let chans = (0..oc)
                    .map(|o| match o.checked_sub(before).filter(|&i| i < cin) {
                        Some(i) => Formula::unary(b + i, zero_fill || spatial_unpadded),
                        None => Formula { always: false, gate: zero_fill, any: false, inputs: vec![] },
                    })
                    .collect();
                Some(Rule::Map { out: ob, chans })
            }
            Op::Slice(c) => {
                let (Some(b), Some(cin)) = (xb, xc) else { return Ok(None) };
                if c.axes.contains(&0) {
                    return Ok(None);
                }
                match c.axes.iter().position(|&a| a == 1) {
                    None => unary(self, &|_| true),
                    Some(i) => {
                        let (start, step) = (c.starts[i], c.steps[i]);
                        let picked: Vec<usize> = (0..oc).map(|j| start + j * step).collect();
                        if step == 1 {
                            self.ties.extend(picked.iter().enumerate().map(|(j, &ic)| (b + ic, ob + j)));
                        } else {
                            // A strided channel slice cannot be re-indexed after a removal.
                            self.blocked.extend(b..b + cin);
                            self.blocked.extend(ob..ob + oc);
                        }
                        Some(Rule::Map {
                            out: ob,
                            chans: picked.iter().map(|&ic| Formula::unary(b + ic, true)).collect(),
                        })
                    }
                }
            }
            Op::Concat(c) if c.axis == 1 => {
                let mut chans = Vec::with_capacity(oc);
                for input in &node.inputs {
                    let (Some(b), Some(n)) = (index.base.get(input.as_str()).copied(), index.channels(input)) else {
                        return Ok(None);
                    };
                    self.tie_range(b, ob + chans.len(), n);
                    chans.extend((0..n).map(|i| Formula::unary(b + i, true)));
                }
                Some(Rule::Map { out: ob, chans })
            }
            Op::Concat(c) if c.axis >= 2 => {
                let mut bases = Vec::new();
                for input in &node.inputs {
                    match (index.base.get(input.as_str()).copied(), index.channels(input)) {
                        (Some(b), Some(n)) if n == oc => bases.push(b),
                        _ => return Ok(None),
                    }
                }
                for &b in &bases {
                    self.tie_range(b, ob, oc);
                }
                let chans = (0..oc)
                    .map(|ch| Formula {
                        always: false,
                        gate: true,
                        any: false,
                        inputs: bases.iter().map(|b| b + ch).collect(),
                    })
                    .collect();
                Some(Rule::Map { out: ob, chans })
            }
            Op::Flatten(_) | Op::Reshape(_) => {
                let flattens = match &node.op {
                    Op::Flatten(f) => f.axis == 1,
                    Op::Reshape(r) => flatten_like(index.shape(x)?, &r.shape),
                    _ => false,
                };
                let (Some(b), Some(cin)) = (xb, xc) else { return Ok(None) };
                if !flattens || cin == 0 || !oc.is_multiple_of(cin) {
                    return Ok(None);
                }
                let block = oc / cin;
                let mut chans = Vec::with_capacity(oc);
                for ch in 0..cin {
                    for t in 0..block {
                        self.ties.push((b + ch, ob + ch * block + t));
                        chans.push(Formula::unary(b + ch, true));
                    }
                }
                Some(Rule::Map { out: ob, chans })
            }
            _ => None,
        };
        Ok(rule)
    }

    fn binary(&mut self, index: &Index<'g>, ni: usize, ob: usize, oc: usize) -> Result<Option<Rule<'g>>> {
        let g = index.graph;
        let node = &g.nodes[ni];
        let rank = index.shape(&node.outputs[0])?.len();
        let mut ops = Vec::new();
        for input in &node.inputs {
            let shape = index.shape(input)?;
            let axis = channel_axis(shape.len(), rank);
            let op = if let Some(t) = g.initializers.get(input) {
                match axis {
                    Some(a) if shape[a] == oc && oc > 1 => Operand::Const {
                        zero: (0..oc).map(|c| slice_all(t, a, c, |v| v == 0.0)).collect(),
                        nonzero: (0..oc).map(|c| slice_all(t, a, c, |v| v != 0.0)).collect(),
                    },
                    _ => {
                        let (z, nz) = (t.iter().all(|&v| v == 0.0), t.iter().all(|&v| v != 0.0));
                        Operand::Const { zero: vec![z; oc], nonzero: vec![nz; oc] }
                    }
                }
            } else {
                match axis {
                    Some(1) if shape[1] == oc => Operand::PerChannel(index.base[input.as_str()]),
                    Some(1) if shape[1] == 1 => Operand::Broadcast(index.base.get(input.as_str()).copied()),
                    None => Operand::Broadcast(None),
                    Some(a) if shape[a] == 1 => Operand::Broadcast(None),
                    _ => Operand::Mismatch,
                }
            };
            ops.push(op);
        }
        if ops.iter().any(|o| matches!(o, Operand::Mismatch)) {
            return Ok(None);
        }
        for op in &ops {
            if let Operand::PerChannel(b) = op {
                self.tie_range(*b, ob, oc);
            }
        }
        let elem = |op: &Operand, c: usize| match op {
            Operand::PerChannel(b) => Some(b + c),
            Operand::Broadcast(e) => *e,
            _ => None,
        };
        let chans = (0..oc)
            .map(|c| {
                let mut f = Formula::default();
                match &node.op {
                    Op::Add(_) | Op::Sub(_) => {
                        f.gate = true;
                        for op in &ops {
                            match op {
                                Operand::Const { zero, .. } => f.gate &= zero[c],
                                Operand::Broadcast(None) => f.gate = false,
                                _ => f.inputs.extend(elem(op, c)),
                            }
                        }
                    }
                    Op::Mul(_) => {
                        f.gate = true;
                        f.any = true;
                        for op in &ops {
                            match op {
                                Operand::Const { zero, .. } => f.always |= zero[c],
                                _ => f.inputs.extend(elem(op, c)),
                            }
                        }
                    }
                    Op::Div(_) => match (&ops[0], &ops[1]) {
                        (Operand::Const { .. }, _) | (Operand::Broadcast(None), _) => {}
                        (num, Operand::Const { nonzero, .. }) => {
                            f.gate = nonzero[c];
                            f.inputs.extend(elem(num, c));
                        }
                        _ => {}
                    },
                    _ => {}
                }
                f
            })
            .collect();
        Ok(Some(Rule::Map { out: ob, chans }))
    }
}
