//! One lowering per op, written once over a [`Backend`]: the planner runs it on shapes (recording
//! dealer requests and predicted costs), the executor on shares (calling the protocols). Both
//! therefore make the same protocol calls on the same shapes, in the same order.
//!
//! Values are `ArrayD<T>`: a party's share words (`T = u64`) or bare shapes (`T = ()`, zero
//! bytes per element). Data movement (reshape, transpose, slice, pad, concat, broadcast) is
//! generic over `T` and shared by both backends; only arithmetic and protocols are backend
//! methods.
//!
//! Non-linear element-wise ops, per element (`n` elements, rounds of the node):
//!
//! ```text
//!   Clip [lo, hi]   lo + ReLU(x − lo) − ReLU(x − hi)            2 comparisons, one ReLU call   1 round
//!   HardSigmoid     t = α·x + β (public, 1 truncation); Clip t to [0, 1]     2 comparisons     1 round
//!   HardSwish       h = Clip(x/6 + 1/2, 0, 1); x·h (Beaver mul)  2 comparisons, 1 product     2 rounds
//!   Sigmoid         approx::SIGMOID = mid(x) + tail(x) − tail(−x): x clamped to [−4, 4] and
//!                   ±x to [4, 16] in one ReLU call; mid: u = c/4, v = u², Horner in v, u·P(v);
//!                   both tails on 2n elements by Horner in w; the pieces' products interleaved,
//!                   one Beaver call per round              6 comparisons, 27 products   10 rounds
//!   Pow 2           x² (Beaver square)                           1 product                     1 round
//!   ReduceSum/Mean  local sums of shares (exact); Mean × public 1/count to 2^-2f, 2 truncations 0 rounds
//! ```
//! Every product of fixed-point values is truncated once (local truncation, ±1 unit in the last
//! place).

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

use masq_mpc::dealer::LinearKind;
use masq_mpc::kernel::Conv2dParams;
use masq_mpc::protocols::{PoolParams, Replacement as MpcReplacement};
use masq_mpc::{FixedPoint, MpcError};

use super::transformer;
use crate::error::{IrError, Result, RuntimeError};
use masq_ir::approx::{self, Piecewise};
use masq_ir::shape::{broadcast, reduced_shape, reshape_target, window_out};
use masq_ir::{Graph, Node, Op, PoolConfig, ReduceConfig, Replacement};

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
    /// `[x²]` element-wise (Beaver square: half the words of `mul(x, x)`).
    fn square(&mut self, x: ArrayD<Self::T>) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// `[1{x ≥ 0}]` as integer 0/1 shares (not fixed point): a comparison whose bit is kept.
    fn drelu(&mut self, x: ArrayD<Self::T>) -> masq_mpc::Result<ArrayD<Self::T>>;
    /// `[x·y]` for two secret tensors, `x` `[B, M, K]` and `y` `[B, K, N]` (Beaver matrix
    /// triple; exact ring product).
    fn matmul(&mut self, x: ArrayD<Self::T>, y: &ArrayD<Self::T>) -> masq_mpc::Result<ArrayD<Self::T>>;
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

pub(super) fn unsupported(node: &Node, reason: impl Into<String>) -> RuntimeError {
    IrError::UnsupportedConfig { node: node.name.clone(), op: node.op.name().to_string(), reason: reason.into() }.into()
}

pub(super) fn mismatch(node: &Node, expected: impl Into<String>, got: &[usize]) -> RuntimeError {
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

pub(super) fn encode(fp: FixedPoint, c: &ArrayD<f32>) -> ArrayD<u64> {
    c.mapv(|v| fp.encode(v as f64))
}

pub(super) fn standard<T: Clone>(v: ArrayViewD<'_, T>) -> ArrayD<T> {
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

pub(super) fn permute<T: Clone>(a: ArrayD<T>, perm: &[usize]) -> ArrayD<T> {
    standard(a.view().permuted_axes(IxDyn(perm)))
}

pub(super) fn concat<T: Clone>(parts: &[ArrayD<T>], axis: usize) -> Option<ArrayD<T>> {
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

/// The pool window of a config in floor mode, and the extra bottom/right padding `[rows, cols]`
/// that ceil mode's partial last windows need. A window running past the input (beyond the
/// explicit padding) is a floor-mode window over that extra padding: MaxPool never compares
/// padded positions; AveragePool must not count the extra ones (see [`lower`]).
fn pool_params(node: &Node, c: &PoolConfig, x: &[usize]) -> Result<(PoolParams, [usize; 2])> {
    if x.len() != 4 {
        return Err(mismatch(node, "[N, C, H, W]", x));
    }
    let mut out = [0; 2];
    let mut extra = [0; 2];
    for (d, (len, pad)) in
        [(x[2], (c.padding[0], c.padding[2])), (x[3], (c.padding[1], c.padding[3]))].into_iter().enumerate()
    {
        let (k, s, dil) = (c.kernel[d], c.stride[d], c.dilation[d]);
        out[d] = window_out(len, pad, k, s, dil, c.ceil_mode)
            .ok_or_else(|| mismatch(node, format!("spatial size at least the kernel {:?}", c.kernel), x))?;
        let span = dil * (k.max(1) - 1) + 1;
        extra[d] = ((out[d] - 1) * s + span).saturating_sub(len + pad.0 + pad.1);
    }
    let [t, l, bo, r] = c.padding;
    let p = PoolParams {
        kernel: c.kernel,
        stride: c.stride,
        padding: [t, l, bo + extra[0], r + extra[1]],
        dilation: c.dilation,
    };
    // Floor mode over the extended padding gives ceil mode's output size, except where ceil
    // mode drops a last window that would start inside the right padding only.
    if p.output_hw(x[2], x[3]).ok() != Some(out) {
        return Err(unsupported(node, "ceil_mode with padding at least the window (a last window inside the padding)"));
    }
    Ok((p, extra))
}

/// The concatenation of `parts`, each flattened (row-major).
pub(super) fn flat_concat<T: Clone>(parts: &[ArrayD<T>]) -> ArrayD<T> {
    let flat: Vec<ArrayD<T>> = parts.iter().map(|p| reshape(p.clone(), &[p.len()]).expect("flat")).collect();
    concat(&flat, 0).expect("1-D parts concatenate")
}

/// Splits a flat `all` into consecutive parts of `shapes`.
pub(super) fn split<T: Clone>(all: &ArrayD<T>, shapes: &[Vec<usize>]) -> Vec<ArrayD<T>> {
    let mut at = 0;
    shapes
        .iter()
        .map(|shape| {
            let n: usize = shape.iter().product();
            let part = standard(all.slice_axis(Axis(0), Slice::from(at..at + n)));
            at += n;
            reshape(part, shape).expect("n elements")
        })
        .collect()
}

fn shapes_of<T>(parts: &[ArrayD<T>]) -> Vec<Vec<usize>> {
    parts.iter().map(|p| p.shape().to_vec()).collect()
}

/// ReLUs of all `parts` in one call (one round), split back into the parts' shapes.
pub(super) fn relu_all<B: Backend>(b: &mut B, parts: &[ArrayD<B::T>]) -> masq_mpc::Result<Vec<ArrayD<B::T>>> {
    let r = b.relu(flat_concat(parts))?;
    Ok(split(&r, &shapes_of(parts)))
}

/// Products `xᵢ·yᵢ` of all pairs in one Beaver call (one round), in the parts' shapes.
pub(super) fn mul_all<B: Backend>(
    b: &mut B,
    xs: &[ArrayD<B::T>],
    ys: &[ArrayD<B::T>],
) -> masq_mpc::Result<Vec<ArrayD<B::T>>> {
    debug_assert_eq!(shapes_of(xs), shapes_of(ys));
    let z = b.mul(flat_concat(xs), &flat_concat(ys))?;
    Ok(split(&z, &shapes_of(xs)))
}

/// The public value `v` (encoded) as a share of `shape`.
pub(super) fn scalar<B: Backend>(b: &B, fp: FixedPoint, v: f64, shape: &[usize]) -> ArrayD<B::T> {
    broadcast_to(b.public(&ndarray::arr0(fp.encode(v)).into_dyn()), shape).expect("scalar broadcasts")
}

/// ONNX Clip on shares: one bound is a ReLU of the shifted value, two a clamp.
pub(super) fn clip<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    c: &masq_ir::ClipConfig,
) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    match (c.min, c.max) {
        (None, None) => Ok(x),
        (Some(lo), None) => {
            // lo + relu(x - lo)
            let d = b.sub(x, &scalar(b, fp, lo as f64, &shape));
            let r = b.relu(d).map_err(mpc_err(node))?;
            Ok(b.add(r, &scalar(b, fp, lo as f64, &shape)))
        }
        (None, Some(hi)) => {
            // hi - relu(hi - x)
            let d = b.sub(scalar(b, fp, hi as f64, &shape), &x);
            let r = b.relu(d).map_err(mpc_err(node))?;
            Ok(b.sub(scalar(b, fp, hi as f64, &shape), &r))
        }
        (Some(lo), Some(hi)) if lo > hi => Err(unsupported(node, format!("min {lo} > max {hi}"))),
        (Some(lo), Some(hi)) => clamp(b, node, fp, x, lo as f64, hi as f64),
    }
}

/// `c·[x]` for a public real `c`, truncated.
pub(super) fn scale<B: Backend>(b: &mut B, fp: FixedPoint, x: ArrayD<B::T>, c: f64) -> ArrayD<B::T> {
    let y = b.mul_public(x, &ndarray::arr0(fp.encode(c)).into_dyn());
    b.truncate(y)
}

/// `c·[x]` for a public `0 < c ≤ 1` with `c` resolved to `2^-2f` rather than `2^-f` (a mean over
/// many elements would otherwise be off by up to `count / 2^(f+1)` relative): with
/// `c·2^f = q₁ + q₂/2^f`, `[x]·c = trunc([x]·q₁ + trunc([x]·q₂))`, two local truncations,
/// at most about one unit in the last place off.
pub(super) fn scale_fine<B: Backend>(b: &mut B, fp: FixedPoint, x: ArrayD<B::T>, c: f64) -> ArrayD<B::T> {
    let one = fp.encode(1.0) as f64;
    let q1 = (c * one).floor();
    let q2 = ((c * one - q1) * one).round();
    let word = |q: f64| ndarray::arr0(q as u64).into_dyn();
    let lo = b.mul_public(x.clone(), &word(q2));
    let lo = b.truncate(lo);
    let hi = b.mul_public(x, &word(q1));
    let y = b.add(hi, &lo);
    b.truncate(y)
}

/// `clamp(x, lo, hi)` = `lo + ReLU(x − lo) − ReLU(x − hi)`: both ReLUs in one call (one round,
/// two comparisons per element).
pub(super) fn clamp<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    lo: f64,
    hi: f64,
) -> Result<ArrayD<B::T>> {
    if lo > hi {
        return Err(unsupported(node, format!("min {lo} > max {hi}")));
    }
    let shape = x.shape().to_vec();
    let d1 = b.sub(x.clone(), &scalar(b, fp, lo, &shape));
    let d2 = b.sub(x, &scalar(b, fp, hi, &shape));
    let mut r = relu_all(b, &[d1, d2]).map_err(mpc_err(node))?;
    let (r2, r1) = (r.pop().expect("two parts"), r.pop().expect("two parts"));
    let y = b.sub(r1, &r2);
    Ok(b.add(y, &scalar(b, fp, lo, &shape)))
}

/// A [`Piecewise`] approximation in `1 + max(k, d − 1)` rounds (`k` the middle piece's odd
/// coefficients, `d` the tail's coefficients): the three clamps (`x` to the middle interval, `x`
/// and `−x` to the tail interval) in one ReLU call (six comparisons per element); then the middle
/// piece `constant + u·P(u²)` (`u = c/T`: `v = u²`, Horner in `v` whose first step is public,
/// finally `u·P`) and both tails at once by Horner in `w` (2n elements, first step public), their
/// products interleaved so that each round is one Beaver call; then `mid + tail(x) − tail(−x)`.
pub(super) fn piecewise<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    f: &Piecewise,
) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    let (m, t) = (f.mid.bound, f.tail);
    let (am, at) = (f.mid.odd, t.coeffs);
    let (k, d) = (am.len(), at.len());
    if k < 3 || d < 3 {
        return Err(unsupported(node, "an approximation of fewer than three coefficients per piece"));
    }
    let neg = b.sub(scalar(b, fp, 0.0, &shape), &x);
    let parts = [
        b.sub(x.clone(), &scalar(b, fp, -m, &shape)),
        b.sub(x.clone(), &scalar(b, fp, m, &shape)),
        b.sub(x.clone(), &scalar(b, fp, t.lo, &shape)),
        b.sub(x, &scalar(b, fp, t.hi, &shape)),
        b.sub(neg.clone(), &scalar(b, fp, t.lo, &shape)),
        b.sub(neg, &scalar(b, fp, t.hi, &shape)),
    ];
    let r = relu_all(b, &parts).map_err(mpc_err(node))?;
    let clamped = |b: &mut B, lo: f64, r1: &ArrayD<B::T>, r2: &ArrayD<B::T>| {
        let y = b.sub(r1.clone(), r2);
        b.add(y, &scalar(b, fp, lo, &shape))
    };
    let c_mid = clamped(b, -m, &r[0], &r[1]);
    let c_pos = clamped(b, t.lo, &r[2], &r[3]);
    let c_neg = clamped(b, t.lo, &r[4], &r[5]);
    let u = scale(b, fp, c_mid, 1.0 / m);
    let both = flat_concat(&[c_pos, c_neg]);
    let n2 = [both.len()];
    let centred = b.sub(both, &scalar(b, fp, t.centre(), &n2));
    let w = scale(b, fp, centred, 1.0 / t.half());
    // The tails' public first step; the first round is `u·u` beside the tails' first product.
    let ht = scale(b, fp, w.clone(), at[d - 1]);
    let ht = b.add(ht, &scalar(b, fp, at[d - 2], &n2));
    let mut r = mul_all(b, &[u.clone(), ht], &[u.clone(), w.clone()]).map_err(mpc_err(node))?;
    let (p, v) = (r.pop().expect("two parts"), r.pop().expect("two parts"));
    let v = b.truncate(v);
    let p = b.truncate(p);
    let mut ht = b.add(p, &scalar(b, fp, at[d - 3], &n2));
    let hm = scale(b, fp, v.clone(), am[k - 1]);
    let mut hm = b.add(hm, &scalar(b, fp, am[k - 2], &shape));
    // The rest: the middle piece's Horner steps over am[k-3..=0], then `u·P`; the tails' over
    // at[d-4..=0]; one round per step, both pieces' products in the same call.
    let mid_steps = k - 1; // k − 2 Horner steps and the final product
    let tail_steps = d - 3;
    for step in 0..mid_steps.max(tail_steps) {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let mid_final = step + 1 == mid_steps;
        if step < mid_steps {
            xs.push(hm.clone());
            ys.push(if mid_final { u.clone() } else { v.clone() });
        }
        if step < tail_steps {
            xs.push(ht.clone());
            ys.push(w.clone());
        }
        let mut r = mul_all(b, &xs, &ys).map_err(mpc_err(node))?;
        if step < tail_steps {
            let p = b.truncate(r.pop().expect("tail part"));
            ht = b.add(p, &scalar(b, fp, at[d - 4 - step], &n2));
        }
        if step < mid_steps {
            let p = b.truncate(r.pop().expect("middle part"));
            hm = if mid_final { p } else { b.add(p, &scalar(b, fp, am[k - 3 - step], &shape)) };
        }
    }
    let mid = b.add(hm, &scalar(b, fp, f.mid.constant, &shape));
    let tails = scale(b, fp, ht, t.scale);
    let mut tails = split(&tails, &[shape.clone(), shape.clone()]);
    let (t_neg, t_pos) = (tails.pop().expect("two parts"), tails.pop().expect("two parts"));
    let y = b.add(mid, &t_pos);
    Ok(b.sub(y, &t_neg))
}

/// `Σ` of `x` along `axis` (local additions of shares), the axis removed.
pub(super) fn sum_axis<B: Backend>(b: &mut B, x: &ArrayD<B::T>, axis: usize) -> ArrayD<B::T> {
    let len = x.shape()[axis];
    if len == 0 {
        let mut shape = x.shape().to_vec();
        shape.remove(axis);
        return ArrayD::from_elem(IxDyn(&shape), b.public_word(0));
    }
    let mut acc = standard(x.index_axis(Axis(axis), 0));
    for i in 1..len {
        acc = b.add(acc, &standard(x.index_axis(Axis(axis), i)));
    }
    acc
}

/// ReduceSum / ReduceMean over `c.axes`: exact local sums, the mean by a public reciprocal
/// ([`scale_fine`]). No communication.
fn reduce<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    c: &ReduceConfig,
    mean: bool,
) -> Result<ArrayD<B::T>> {
    if c.axes.iter().any(|&a| a >= x.ndim()) {
        return Err(mismatch(node, format!("rank > every axis of {:?}", c.axes), x.shape()));
    }
    let in_shape = x.shape().to_vec();
    let mut axes = c.axes.clone();
    axes.sort_unstable();
    axes.dedup();
    let mut acc = x;
    // Highest axis first so the lower indices stay valid.
    for &a in axes.iter().rev() {
        acc = sum_axis(b, &acc, a);
    }
    let count: usize = axes.iter().map(|&a| in_shape[a]).product();
    if mean && count > 1 {
        acc = scale_fine(b, fp, acc, 1.0 / count as f64);
    }
    let target = reduced_shape(&in_shape, &axes, c.keepdims);
    reshape(acc, &target).ok_or_else(|| mismatch(node, format!("reducible to {target:?}"), &in_shape))
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
            let (x, w) = match (ins.remove(0), ins.remove(0)) {
                (Operand::Secret(x), Operand::Const(w)) => (x, w),
                (Operand::Secret(x), Operand::Secret(y)) => return transformer::matmul(b, node, x, y),
                _ => {
                    return Err(unsupported(node, "a constant left operand times a computed right operand"));
                }
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
                (Operand::Secret(x), Operand::Secret(d)) => return transformer::divide(b, node, fp, x, d),
                _ => return Err(unsupported(node, "a constant divided by a computed value")),
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
            clip(b, node, fp, x, c)
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
            let (p, _) = pool_params(node, c, x.shape())?;
            b.maxpool(x, &p).map_err(mpc_err(node))
        }
        Op::AveragePool(c) => {
            let x = first(&mut ins)?;
            let (mut p, extra) = pool_params(node, c, x.shape())?;
            if c.count_include_pad && extra != [0, 0] {
                // The divisor counts the explicit padding but not ceil mode's overflow (ONNX,
                // PyTorch): pad explicitly with zeros, then count the valid positions of that.
                let [t, l, bo, r] = c.padding;
                let x = pad(&x, &[(0, 0), (0, 0), (t, bo), (l, r)], b.public_word(0));
                p.padding = [0, 0, extra[0], extra[1]];
                b.avgpool(x, &p, false).map_err(mpc_err(node))
            } else {
                b.avgpool(x, &p, c.count_include_pad).map_err(mpc_err(node))
            }
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
        Op::Gather(c) => {
            let x = first(&mut ins)?;
            crate::plain::take(&x, c)
                .ok_or_else(|| mismatch(node, format!("axis {} longer than every index", c.axis), x.shape()))
        }
        Op::Identity => first(&mut ins),
        // Fake quantization is not re-applied on shares. Rounding onto the grid for free (local
        // truncations of (x + s/2)/s to whole units) is not exact: a local truncation is off by
        // one unit in the last place, here a whole step, about as often as not. So the shares carry x,
        // within half a step of the clear text's Q(x). The clamp is applied where it acts as an
        // activation (a quantizer flooring at 0, `quant::saturating_clip`); elsewhere it acts only
        // outside the calibrated range (docs/ALGORITHMS.md §7, "Under 2PC").
        Op::FakeQuant(q) => {
            let x = first(&mut ins)?;
            match masq_ir::quant::saturating_clip(q) {
                Some(c) => clip(b, node, fp, x, &c),
                None => Ok(x),
            }
        }
        Op::Sigmoid => {
            let x = first(&mut ins)?;
            piecewise(b, node, fp, x, &approx::SIGMOID)
        }
        Op::HardSigmoid(c) => {
            // clip(α·x + β, 0, 1): a public affine map, then the two-ReLU clamp.
            let x = first(&mut ins)?;
            let shape = x.shape().to_vec();
            let t = scale(b, fp, x, c.alpha as f64);
            let t = b.add(t, &scalar(b, fp, c.beta as f64, &shape));
            clamp(b, node, fp, t, 0.0, 1.0)
        }
        Op::HardSwish => {
            // x · clip(x/6 + 1/2, 0, 1): the clamp, then one Beaver product.
            let x = first(&mut ins)?;
            let shape = x.shape().to_vec();
            let t = scale(b, fp, x.clone(), 1.0 / 6.0);
            let t = b.add(t, &scalar(b, fp, 0.5, &shape));
            let h = clamp(b, node, fp, t, 0.0, 1.0)?;
            let y = b.mul(x, &h).map_err(mpc_err(node))?;
            Ok(b.truncate(y))
        }
        Op::Pow(_) => {
            let (Operand::Secret(x), Operand::Const(e)) = (ins.remove(0), ins.remove(0)) else {
                return Err(unsupported(node, "only a computed base raised to a constant exponent"));
            };
            let shape = broadcast(x.shape(), e.shape())
                .ok_or_else(|| mismatch(node, format!("broadcastable with {:?}", e.shape()), x.shape()))?;
            let x = broadcast_to(x, &shape).expect("checked");
            let first_e = e.iter().next().copied();
            match first_e {
                Some(v) if e.iter().all(|&w| w == v) && v == 1.0 => Ok(x),
                Some(v) if e.iter().all(|&w| w == v) && v == 2.0 => {
                    let y = b.square(x).map_err(mpc_err(node))?;
                    Ok(b.truncate(y))
                }
                _ => {
                    let vals: Vec<f32> = e.iter().copied().take(4).collect();
                    Err(unsupported(
                        node,
                        format!("exponent {vals:?}: only a constant exponent of 1 or 2 has a secure protocol"),
                    ))
                }
            }
        }
        Op::ReduceMean(c) => {
            let x = first(&mut ins)?;
            reduce(b, node, fp, x, c, true)
        }
        Op::ReduceSum(c) => {
            let x = first(&mut ins)?;
            reduce(b, node, fp, x, c, false)
        }
        Op::Tanh => {
            let x = first(&mut ins)?;
            transformer::tanh(b, node, fp, x)
        }
        Op::Erf => {
            let x = first(&mut ins)?;
            transformer::erf(b, node, fp, x)
        }
        // Both forms map to one approximation (the tanh form is within 5e-4 of the exact one).
        Op::Gelu(_) => {
            let x = first(&mut ins)?;
            transformer::gelu(b, node, fp, x)
        }
        Op::Exp => {
            let x = first(&mut ins)?;
            transformer::exp(b, node, fp, x, approx::transformer::exp())
        }
        Op::Sqrt => {
            let x = first(&mut ins)?;
            transformer::sqrt(b, node, fp, x)
        }
        Op::Reciprocal => {
            let x = first(&mut ins)?;
            transformer::reciprocal(b, node, fp, x, approx::transformer::reciprocal())
        }
        Op::LayerNorm(c) => {
            let x = first(&mut ins)?;
            transformer::layer_norm(b, graph, node, fp, x, c)
        }
        Op::Softmax(c) => {
            let x = first(&mut ins)?;
            transformer::softmax(b, node, fp, x, c.axis)
        }
        Op::LogSoftmax(_) => {
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
            match c.cap {
                None => b.masked_act(x, &flat, &repl).map_err(mpc_err(node)),
                Some(cap) => {
                    // A capped (ReLU6) site: min(relu(x), cap) = relu(x) − relu(x − cap) where the
                    // mask keeps the activation; the cap's ReLUs run on the kept elements only.
                    let shape = x.shape().to_vec();
                    let per_image = flat.len();
                    let kept: Vec<usize> = (0..shape[0])
                        .flat_map(|img| {
                            flat.iter().enumerate().filter(|&(_, &m)| m == 1).map(move |(i, _)| img * per_image + i)
                        })
                        .collect();
                    let xf = reshape(x.clone(), &[x.len()]).expect("flat");
                    let picked =
                        ArrayD::from_shape_vec(IxDyn(&[kept.len()]), kept.iter().map(|&i| xf[i].clone()).collect())
                            .expect("length");
                    let capw = broadcast_to(b.public(&ndarray::arr0(fp.encode(cap as f64)).into_dyn()), &[kept.len()])
                        .expect("scalar broadcasts");
                    let over = b.sub(picked, &capw);
                    let over = b.relu(over).map_err(mpc_err(node))?;
                    let y = b.masked_act(x, &flat, &repl).map_err(mpc_err(node))?;
                    let mut correction = b.public(&ArrayD::zeros(IxDyn(&[y.len()])));
                    for (k, &i) in kept.iter().enumerate() {
                        correction[i] = over[k].clone();
                    }
                    let correction = reshape(correction, &shape).expect("same length");
                    Ok(b.sub(y, &correction))
                }
            }
        }
    }
}
