//! One lowering per op, written once over a [`Backend`]: the planner runs it on shapes (recording
//! dealer requests and predicted costs), the executor on shares (calling the protocols). Both
//! therefore make the same protocol calls on the same shapes, in the same order.
//!
//! Values are `ArrayD<T>`: a party's share words (`T = u64`) or bare shapes (`T = ()`, zero
//! bytes per element). Data movement (reshape, transpose, slice, pad, concat, broadcast) is
//! generic over `T` and shared by both backends; only arithmetic and protocols are backend
//! methods.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

use masq_mpc::dealer::LinearKind;
use masq_mpc::kernel::Conv2dParams;
use masq_mpc::protocols::{PoolParams, Replacement as MpcReplacement};
use masq_mpc::{FixedPoint, MpcError};

use crate::error::{IrError, Result, RuntimeError};
use masq_ir::shape::{broadcast, reshape_target, window_out};
use masq_ir::{Graph, Node, Op, PoolConfig, Replacement};

/// Where a linear layer's weight comes from: an initializer, used as is or transposed (Gemm).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WeightSource {
    /// Initializer name.
    pub name: String,
    /// Whether the weight is transposed (Gemm's `[out, in]` becomes `[in, out]`).
    pub transpose: bool,
}

/// What the secure computation needs: arithmetic on shares and the protocols.
pub(crate) trait Backend {
    /// Element type of values: share words or `()` for shapes.
    type T: Clone + Default + Send + Sync;
    /// The value `c` public to both, as this party's share (P0 holds it, P1 zero).
    fn public(&self, c: &ArrayD<u64>) -> ArrayD<Self::T>;
    /// One public word as this party's share word.
    fn public_word(&self, w: u64) -> Self::T;
    /// `[a] + [b]` (same shapes).
    fn add(&mut self, a: ArrayD<Self::T>, b: &ArrayD<Self::T>) -> ArrayD<Self::T>;
    /// `[a] - [b]` (same shapes).
    fn sub(&mut self, a: ArrayD<Self::T>, b: &ArrayD<Self::T>) -> ArrayD<Self::T>;
    /// `c ⊙ [a]` with `c` public and broadcastable to `a`'s shape.
    fn mul_public(&mut self, a: ArrayD<Self::T>, c: &ArrayD<u64>) -> ArrayD<Self::T>;
    /// Local truncation by the fractional bits.
    fn truncate(&mut self, a: ArrayD<Self::T>) -> ArrayD<Self::T>;
    /// `[op(W, x)]` of the next linear layer (exact ring product).
    fn linear(
        &mut self,
        kind: &LinearKind,
        weight: WeightSource,
        x: ArrayD<Self::T>,
    ) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// `[ReLU(x)]`.
    fn relu(&mut self, x: ArrayD<Self::T>) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// `[x·y]` element-wise (Beaver).
    fn mul(&mut self, x: ArrayD<Self::T>, y: &ArrayD<Self::T>) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// Masked activation over `[batch, ...]`.
    fn masked_act(&mut self, x: ArrayD<Self::T>, mask: &[u8], r: &MpcReplacement) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// Max pooling (NCHW).
    fn maxpool(&mut self, x: ArrayD<Self::T>, p: &PoolParams) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// Average pooling (NCHW).
    fn avgpool(
        &mut self,
        x: ArrayD<Self::T>,
        p: &PoolParams,
        count_include_pad: bool,
    ) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// Global average pooling (NCHW -> N×C×1×1).
    fn global_avgpool(&mut self, x: ArrayD<Self::T>) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// Called before node `i` is lowered.
    fn node_start(&mut self, _i: usize) {}
    /// Called after node `i` was lowered.
    fn node_end(&mut self, _i: usize) {}
}

/// A node input: a secret value or a constant (initializer).
pub(crate) enum Operand<'g, T> {
    Secret(ArrayD<T>),
    Const(&'g ArrayD<f32>),
}

fn unsupported(node: &Node, reason: impl Into<String>) -> RuntimeError {
    IrError::UnsupportedConfig { node: node.name.clone(), op: node.op.name().to_string(), reason: reason.into() }.into()
}

fn mismatch(node: &Node, expected: impl Into<String>, got: &[usize]) -> RuntimeError {
    IrError::ShapeMismatch {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        expected: expected.into(),
        got: got.to_vec(),
    }
    .into()
}

/// Wraps an engine error with the node it happened in.
pub(crate) fn mpc_err(node: &Node) -> impl FnOnce(MpcError) -> RuntimeError + '_ {
    move |source| RuntimeError::Mpc { at: format!("node {} ({})", node.name, node.op.name()), source }
}

fn encode(fp: FixedPoint, c: &ArrayD<f32>) -> ArrayD<u64> {
    c.mapv(|v| fp.encode(v as f64))
}

fn standard<T: Clone>(v: ArrayViewD<'_, T>) -> ArrayD<T> {
    if v.is_standard_layout() { v.to_owned() } else { v.as_standard_layout().into_owned() }
}

/// Broadcast to `shape` (numpy rules); `None` when impossible.
pub(crate) fn broadcast_to<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Option<ArrayD<T>> {
    if a.shape() == shape {
        return Some(a);
    }
    a.broadcast(IxDyn(shape)).map(standard)
}

/// Reshape (row-major order).
pub(crate) fn reshape<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Option<ArrayD<T>> {
    let a = if a.is_standard_layout() { a } else { standard(a.view()) };
    a.into_shape_with_order(IxDyn(shape)).ok()
}

fn permute<T: Clone>(a: ArrayD<T>, perm: &[usize]) -> ArrayD<T> {
    standard(a.view().permuted_axes(IxDyn(perm)))
}

fn concat<T: Clone>(parts: &[ArrayD<T>], axis: usize) -> Option<ArrayD<T>> {
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let out = ndarray::concatenate(Axis(axis), &views).ok()?;
    Some(if out.is_standard_layout() { out } else { standard(out.view()) })
}

fn pad<T: Clone>(a: &ArrayD<T>, pads: &[(usize, usize)], fill: T) -> ArrayD<T> {
    let shape: Vec<usize> = a.shape().iter().zip(pads).map(|(d, (l, r))| d + l + r).collect();
    let mut out = ArrayD::from_elem(IxDyn(&shape), fill);
    let mut view = out.view_mut();
    for (axis, (&d, &(l, _))) in a.shape().iter().zip(pads).enumerate() {
        view.slice_axis_inplace(Axis(axis), Slice::from(l..l + d));
    }
    view.assign(a);
    out
}

/// The pool window of a config; ceil mode only where it gives the floor-mode output size.
fn pool_params(node: &Node, c: &PoolConfig, x: &[usize]) -> Result<PoolParams> {
    if x.len() != 4 {
        return Err(mismatch(node, "[N, C, H, W]", x));
    }
    if c.ceil_mode {
        for (d, (len, pad)) in
            [(x[2], (c.padding[0], c.padding[2])), (x[3], (c.padding[1], c.padding[3]))].into_iter().enumerate()
        {
            let f = window_out(len, pad, c.kernel[d], c.stride[d], c.dilation[d], false);
            let e = window_out(len, pad, c.kernel[d], c.stride[d], c.dilation[d], true);
            if f != e {
                return Err(unsupported(node, "ceil_mode with a partial last window"));
            }
        }
    }
    Ok(PoolParams { kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation })
}

/// Per-op lowering. `ins` are the node's inputs in order; returns the output value.
pub(crate) fn lower<'g, B: Backend>(
    b: &mut B,
    graph: &'g Graph,
    node: &Node,
    mut ins: Vec<Operand<'g, B::T>>,
    fp: FixedPoint,
) -> Result<ArrayD<B::T>> {
    // An operand as a secret value (constants become public shares).
    let secret = |b: &B, op: Operand<'g, B::T>| -> ArrayD<B::T> {
        match op {
            Operand::Secret(v) => v,
            Operand::Const(c) => b.public(&encode(fp, c)),
        }
    };
    let first = |ins: &mut Vec<Operand<'g, B::T>>| -> Result<ArrayD<B::T>> {
        match ins.remove(0) {
            Operand::Secret(v) => Ok(v),
            Operand::Const(_) => Err(unsupported(node, "the first input must be computed from the model input")),
        }
    };
    match &node.op {
        Op::Conv(c) => {
            let x = first(&mut ins)?;
            let w = graph.initializer(node, &c.weight)?;
            let ws = w.shape();
            if ws.len() != 4 || x.ndim() != 4 {
                return Err(mismatch(node, "4-D input and weight", x.shape()));
            }
            let kind = LinearKind::Conv2d {
                weight_shape: [ws[0], ws[1], ws[2], ws[3]],
                params: Conv2dParams { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups },
            };
            let src = WeightSource { name: c.weight.clone(), transpose: false };
            let y = b.linear(&kind, src, x).map_err(mpc_err(node))?;
            let y = b.truncate(y);
            match &c.bias {
                Some(name) => {
                    let bias = graph.initializer(node, name)?;
                    let bias =
                        reshape(encode(fp, bias), &[ws[0], 1, 1]).ok_or_else(|| mismatch(node, "bias [C]", &[]))?;
                    let bias = broadcast_to(bias, y.shape()).ok_or_else(|| mismatch(node, "bias [C]", y.shape()))?;
                    let p = b.public(&bias);
                    Ok(b.add(y, &p))
                }
                None => Ok(y),
            }
        }
        Op::Gemm(c) => {
            let x = first(&mut ins)?;
            let w = graph.initializer(node, &c.weight)?;
            if w.ndim() != 2 || x.ndim() != 2 || x.shape()[1] != w.shape()[1] {
                return Err(mismatch(node, format!("[N, {}]", w.shape().get(1).copied().unwrap_or(0)), x.shape()));
            }
            let (n, k) = (w.shape()[0], w.shape()[1]);
            let kind = LinearKind::MatMul { k, n };
            let y =
                b.linear(&kind, WeightSource { name: c.weight.clone(), transpose: true }, x).map_err(mpc_err(node))?;
            let y = b.truncate(y);
            match &c.bias {
                Some(name) => {
                    let bias = encode(fp, graph.initializer(node, name)?);
                    let bias = broadcast_to(bias, y.shape()).ok_or_else(|| mismatch(node, "bias [out]", y.shape()))?;
                    let p = b.public(&bias);
                    Ok(b.add(y, &p))
                }
                None => Ok(y),
            }
        }
        Op::MatMul(_) => {
            let (Operand::Secret(x), Operand::Const(w)) = (ins.remove(0), ins.remove(0)) else {
                return Err(unsupported(node, "only a computed left operand times a constant right operand"));
            };
            if w.ndim() != 2 {
                return Err(unsupported(node, "a batched (more than 2-D) constant right operand"));
            }
            if x.ndim() < 2 || x.shape()[x.ndim() - 1] != w.shape()[0] {
                return Err(mismatch(node, format!("[..., {}] times a 2-D constant", w.shape()[0]), x.shape()));
            }
            let (k, n) = (w.shape()[0], w.shape()[1]);
            let mut out_shape = x.shape().to_vec();
            *out_shape.last_mut().expect("rank >= 2") = n;
            let rows = x.len() / k;
            let x = reshape(x, &[rows, k]).expect("element counts agree");
            let name = node.inputs[1].clone();
            let y = b
                .linear(&LinearKind::MatMul { k, n }, WeightSource { name, transpose: false }, x)
                .map_err(mpc_err(node))?;
            let y = b.truncate(y);
            Ok(reshape(y, &out_shape).expect("element counts agree"))
        }
        Op::Add(_) | Op::Sub(_) => {
            let (a, c) = (ins.remove(0), ins.remove(0));
            let (a, c) = (secret(b, a), secret(b, c));
            let shape = broadcast(a.shape(), c.shape())
                .ok_or_else(|| mismatch(node, format!("broadcastable with {:?}", c.shape()), a.shape()))?;
            let a = broadcast_to(a, &shape).expect("checked");
            let c = broadcast_to(c, &shape).expect("checked");
            Ok(if matches!(node.op, Op::Add(_)) { b.add(a, &c) } else { b.sub(a, &c) })
        }
        Op::Mul(_) | Op::Div(_) => {
            let div = matches!(node.op, Op::Div(_));
            let (a, c) = (ins.remove(0), ins.remove(0));
            let (x, constant) = match (a, c) {
                (x, Operand::Const(c)) => (secret(b, x), Some(c)),
                (Operand::Const(c), x) if !div => (secret(b, x), Some(c)),
                (Operand::Secret(x), Operand::Secret(y)) if !div => {
                    let shape = broadcast(x.shape(), y.shape())
                        .ok_or_else(|| mismatch(node, format!("broadcastable with {:?}", y.shape()), x.shape()))?;
                    let x = broadcast_to(x, &shape).expect("checked");
                    let y = broadcast_to(y, &shape).expect("checked");
                    let z = b.mul(x, &y).map_err(mpc_err(node))?;
                    return Ok(b.truncate(z));
                }
                _ => return Err(unsupported(node, "the divisor must be a constant")),
            };
            let c = constant.expect("set above");
            let shape = broadcast(x.shape(), c.shape())
                .ok_or_else(|| mismatch(node, format!("broadcastable with {:?}", c.shape()), x.shape()))?;
            let x = broadcast_to(x, &shape).expect("checked");
            let cq = if div {
                if c.iter().any(|&v| v == 0.0) {
                    return Err(unsupported(node, "division by zero"));
                }
                c.mapv(|v| fp.encode(1.0 / v as f64))
            } else {
                encode(fp, c)
            };
            let cq = broadcast_to(cq, &shape).expect("checked");
            let y = b.mul_public(x, &cq);
            Ok(b.truncate(y))
        }
        Op::Relu => {
            let x = first(&mut ins)?;
            b.relu(x).map_err(mpc_err(node))
        }
        Op::Clip(c) => {
            let x = first(&mut ins)?;
            let shape = x.shape().to_vec();
            let n = x.len();
            let word = |v: f32| ndarray::arr0(fp.encode(v as f64)).into_dyn();
            let scalar = |b: &B, v: f32| broadcast_to(b.public(&word(v)), &shape).expect("scalar broadcasts");
            match (c.min, c.max) {
                (None, None) => Ok(x),
                (Some(lo), None) => {
                    // lo + relu(x - lo)
                    let d = b.sub(x, &scalar(b, lo));
                    let r = b.relu(d).map_err(mpc_err(node))?;
                    Ok(b.add(r, &scalar(b, lo)))
                }
                (None, Some(hi)) => {
                    // hi - relu(hi - x)
                    let d = b.sub(scalar(b, hi), &x);
                    let r = b.relu(d).map_err(mpc_err(node))?;
                    Ok(b.sub(scalar(b, hi), &r))
                }
                (Some(lo), Some(hi)) => {
                    if lo > hi {
                        return Err(unsupported(node, format!("min {lo} > max {hi}")));
                    }
                    // lo + relu(x - lo) - relu(x - hi), both ReLUs in one call (one round).
                    let d1 = b.sub(x.clone(), &scalar(b, lo));
                    let d2 = b.sub(x, &scalar(b, hi));
                    let both = concat(&[reshape(d1, &[n]).expect("flat"), reshape(d2, &[n]).expect("flat")], 0)
                        .expect("same shapes");
                    let r = b.relu(both).map_err(mpc_err(node))?;
                    let r1 = reshape(standard(r.slice_axis(Axis(0), Slice::from(0..n))), &shape).expect("n elements");
                    let r2 =
                        reshape(standard(r.slice_axis(Axis(0), Slice::from(n..2 * n))), &shape).expect("n elements");
                    let y = b.sub(r1, &r2);
                    Ok(b.add(y, &scalar(b, lo)))
                }
            }
        }
        Op::LeakyRelu(c) => {
            // a·x + (1 - a)·relu(x), one truncation.
            let x = first(&mut ins)?;
            let r = b.relu(x.clone()).map_err(mpc_err(node))?;
            let a = ndarray::arr0(fp.encode(c.alpha as f64)).into_dyn();
            let one_minus_a = ndarray::arr0(fp.encode(1.0 - c.alpha as f64)).into_dyn();
            let ax = b.mul_public(x, &a);
            let br = b.mul_public(r, &one_minus_a);
            let y = b.add(ax, &br);
            Ok(b.truncate(y))
        }
        Op::BatchNorm(c) => {
            let x = first(&mut ins)?;
            let get = |name: &str| graph.initializer(node, name).map(|t| t.iter().copied().collect::<Vec<f32>>());
            let (gamma, beta, mean, var) = (get(&c.scale)?, get(&c.bias)?, get(&c.mean)?, get(&c.var)?);
            let ch = x.shape().get(1).copied().unwrap_or(0);
            if x.ndim() < 2 || gamma.len() != ch {
                return Err(mismatch(node, format!("[N, {}, ...]", gamma.len()), x.shape()));
            }
            let mut pshape = vec![ch];
            pshape.extend(std::iter::repeat_n(1, x.ndim() - 2));
            let s: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + c.epsilon).sqrt()).collect();
            let t: Vec<f32> = (0..ch).map(|i| beta[i] - mean[i] * s[i]).collect();
            let sq = ArrayD::from_shape_vec(IxDyn(&pshape), s.iter().map(|&v| fp.encode(v as f64)).collect())
                .expect("length");
            let tq = ArrayD::from_shape_vec(IxDyn(&pshape), t.iter().map(|&v| fp.encode(v as f64)).collect())
                .expect("length");
            let shape = x.shape().to_vec();
            let y = b.mul_public(x, &sq);
            let y = b.truncate(y);
            let t = b.public(&broadcast_to(tq, &shape).expect("per-channel broadcasts"));
            Ok(b.add(y, &t))
        }
        Op::MaxPool(c) => {
            let x = first(&mut ins)?;
            let p = pool_params(node, c, x.shape())?;
            b.maxpool(x, &p).map_err(mpc_err(node))
        }
        Op::AveragePool(c) => {
            let x = first(&mut ins)?;
            let p = pool_params(node, c, x.shape())?;
            b.avgpool(x, &p, c.count_include_pad).map_err(mpc_err(node))
        }
        Op::GlobalAveragePool => {
            let x = first(&mut ins)?;
            if x.ndim() != 4 {
                return Err(unsupported(node, "only 4-D (NCHW) inputs"));
            }
            b.global_avgpool(x).map_err(mpc_err(node))
        }
        Op::Flatten(c) => {
            let x = first(&mut ins)?;
            if c.axis > x.ndim() {
                return Err(mismatch(node, format!("rank >= {}", c.axis), x.shape()));
            }
            let s = x.shape();
            let target = [s[..c.axis].iter().product(), s[c.axis..].iter().product()];
            Ok(reshape(x, &target).expect("element counts agree"))
        }
        Op::Reshape(c) => {
            let x = first(&mut ins)?;
            let target = reshape_target(x.shape(), &c.shape)
                .ok_or_else(|| mismatch(node, format!("reshapeable to {:?}", c.shape), x.shape()))?;
            Ok(reshape(x, &target).expect("element counts agree"))
        }
        Op::Transpose(c) => {
            let x = first(&mut ins)?;
            let mut sorted = c.perm.clone();
            sorted.sort_unstable();
            if sorted != (0..x.ndim()).collect::<Vec<_>>() {
                return Err(mismatch(node, format!("rank {}", c.perm.len()), x.shape()));
            }
            Ok(permute(x, &c.perm))
        }
        Op::Concat(c) => {
            let parts: Vec<ArrayD<B::T>> = ins.into_iter().map(|op| secret(b, op)).collect();
            let s0 = parts[0].shape().to_vec();
            concat(&parts, c.axis).ok_or_else(|| mismatch(node, format!("equal shapes except on axis {}", c.axis), &s0))
        }
        Op::Pad(c) => {
            let x = first(&mut ins)?;
            if c.pads.len() != x.ndim() {
                return Err(mismatch(node, format!("rank {}", c.pads.len()), x.shape()));
            }
            let fill = b.public_word(fp.encode(c.value as f64));
            Ok(pad(&x, &c.pads, fill))
        }
        Op::Slice(c) => {
            let x = first(&mut ins)?;
            let mut view = x.view();
            for i in 0..c.axes.len() {
                let axis = c.axes[i];
                if axis >= x.ndim() || c.steps[i] == 0 {
                    return Err(mismatch(node, format!("axis {axis} in range, positive step"), x.shape()));
                }
                let len = x.shape()[axis];
                let end = c.ends[i].min(len);
                let start = c.starts[i].min(end);
                view.slice_axis_inplace(
                    Axis(axis),
                    Slice::new(start as isize, Some(end as isize), c.steps[i] as isize),
                );
            }
            Ok(standard(view))
        }
        Op::Identity => first(&mut ins),
        Op::Pow(_)
        | Op::Sigmoid
        | Op::HardSigmoid(_)
        | Op::HardSwish
        | Op::Tanh
        | Op::Erf
        | Op::Gelu(_)
        | Op::Exp
        | Op::Sqrt
        | Op::Reciprocal
        | Op::ReduceMean(_)
        | Op::ReduceSum(_)
        | Op::LayerNorm(_) => Err(unsupported(node, "no secure protocol for this op yet")),
        Op::Softmax(_) | Op::LogSoftmax(_) => {
            Err(unsupported(node, "only at the model output (the client computes it after the reveal)"))
        }
        Op::MaskedAct(c) => {
            let x = first(&mut ins)?;
            let mask = graph.masks.get(&c.mask).ok_or_else(|| IrError::BadInitializer {
                node: node.name.clone(),
                op: "MaskedAct".into(),
                name: c.mask.clone(),
                reason: "mask missing".into(),
            })?;
            if x.ndim() < 2 || mask.shape() != &x.shape()[1..] {
                return Err(mismatch(node, format!("[N, {:?}] to match the mask", mask.shape()), x.shape()));
            }
            let flat: Vec<u8> = mask.iter().copied().collect();
            if let Some(bad) = flat.iter().find(|&&m| m > 1) {
                return Err(unsupported(node, format!("mask value {bad} (masks hold 0 or 1)")));
            }
            let repl = match &c.replacement {
                Replacement::Identity => MpcReplacement::Identity,
                Replacement::Poly { c2, c1, c0 } => {
                    let get = |n: &str| graph.initializer(node, n).map(|t| t.iter().map(|&v| v as f64).collect());
                    MpcReplacement::Poly { c2: get(c2)?, c1: get(c1)?, c0: get(c0)? }
                }
            };
            b.masked_act(x, &flat, &repl).map_err(mpc_err(node))
        }
    }
}
