//! The secure lowering of the ops transformers need, over the same [`Backend`] as
//! [`super::lower`]: products of two secret tensors, and the approximations of
//! [`masq_ir::approx::transformer`] (whose table gives each function's method, range and error
//! bound) with Softmax and LayerNorm built on them. Per row of `L` (Softmax) or `N` (LayerNorm)
//! elements, `⌈·⌉` rounding up:
//!
//! ```text
//!   MatMul (both computed)  Beaver matrix triple, both operands opened     0 comparisons   1 round
//!   Softmax                 max by a tree of ReLUs (⌈log₂L⌉ rounds, L − 1 comparisons),
//!                           exp(x − max) (1 comparison each, 10 rounds), local row sum,
//!                           1/sum (⌈log₂L⌉ + 1 comparisons, 8 rounds), × 1/sum (1 round)
//!                                                      ⌈log₂L⌉ + 19 rounds
//!   LayerNorm               mean (local), (x − mean)² (1 round), mean (local), 1/√(var + ε)
//!                           (14 comparisons per row, 11 rounds), × (1 round), scale and bias
//!                           (public)                                                     13 rounds
//!   Gelu (erf or tanh form) x/2 + E(clamp(x, ±4.5)) + overflow/2           2 comparisons   11 rounds
//!   Erf                     u·h(u²), u = clamp(x, ±3.5)/3.5                 2 comparisons   13 rounds
//!   Tanh                    2σ(2x) − 1 (the Sigmoid protocol)               6 comparisons   10 rounds
//!   Exp                     clamp(x, −16, 4), p(x/8)⁸                        2 comparisons   11 rounds
//!   Reciprocal              sign, range bits, polynomial, 2 Newton steps   21 comparisons   10 rounds
//!   Div by a computed value a × 1/d                                        21 comparisons   11 rounds
//!   Sqrt                    x × 1/√x                                       14 comparisons   12 rounds
//! ```
//! Every product of fixed-point values is truncated once (local truncation).

use ndarray::{ArrayD, Axis};

use masq_ir::approx::Poly;
use masq_ir::approx::transformer::{self as approx, Reciprocal, Rsqrt};
use masq_ir::shape::broadcast;
use masq_ir::{Graph, LayerNormConfig, Node};
use masq_mpc::FixedPoint;

use super::lower::{
    Backend, broadcast_to, clamp, concat, mismatch, mpc_err, permute, reshape, scalar, scale, scale_fine, standard,
    sum_axis, unsupported,
};
use crate::error::Result;

/// Horner in the secret `w` with public coefficients (constant first); the first step is a
/// public product.
fn horner<B: Backend>(b: &mut B, node: &Node, fp: FixedPoint, w: ArrayD<B::T>, coeffs: &[f64]) -> Result<ArrayD<B::T>> {
    let shape = w.shape().to_vec();
    let d = coeffs.len().saturating_sub(1);
    if d == 0 {
        return Ok(scalar(b, fp, coeffs.first().copied().unwrap_or(0.0), &shape));
    }
    let h = scale(b, fp, w.clone(), coeffs[d]);
    let mut h = b.add(h, &scalar(b, fp, coeffs[d - 1], &shape));
    for &a in coeffs[..d - 1].iter().rev() {
        let t = b.mul(h, &w).map_err(mpc_err(node))?;
        let t = b.truncate(t);
        h = b.add(t, &scalar(b, fp, a, &shape));
    }
    Ok(h)
}

/// `p(x / k)` for a fitted polynomial: `w = (x − k·centre) / (k·half)`, then Horner.
fn poly_at<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    p: &Poly,
    k: f64,
) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    let centred = b.sub(x, &scalar(b, fp, k * p.centre(), &shape));
    let w = scale(b, fp, centred, 1.0 / (k * p.half()));
    horner(b, node, fp, w, &p.coeffs)
}

fn mul_t<B: Backend>(b: &mut B, node: &Node, x: ArrayD<B::T>, y: &ArrayD<B::T>) -> Result<ArrayD<B::T>> {
    let z = b.mul(x, y).map_err(mpc_err(node))?;
    Ok(b.truncate(z))
}

/// `e^x` by [`approx::Exp`]: the clamp (one or two comparisons, one round), the polynomial, the
/// squarings.
pub(super) fn exp<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    e: &approx::Exp,
) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    let c = match e.hi {
        Some(hi) => clamp(b, node, fp, x, e.lo, hi)?,
        None => {
            let d = b.sub(x, &scalar(b, fp, e.lo, &shape));
            let r = b.relu(d).map_err(mpc_err(node))?;
            b.add(r, &scalar(b, fp, e.lo, &shape))
        }
    };
    let mut y = poly_at(b, node, fp, c, &e.poly, f64::from(1u32 << e.squarings))?;
    for _ in 0..e.squarings {
        let s = b.square(y).map_err(mpc_err(node))?;
        y = b.truncate(s);
    }
    Ok(y)
}

/// The bits `[x ≥ base^j]` for every threshold `j`, as integer 0/1 shares, in one comparison
/// call (one round).
fn range_bits<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: &ArrayD<B::T>,
    base: f64,
    thresholds: &[i32],
) -> Result<Vec<ArrayD<B::T>>> {
    let shape = x.shape().to_vec();
    let n = x.len();
    let parts: Vec<ArrayD<B::T>> = thresholds
        .iter()
        .map(|&j| {
            let d = b.sub(x.clone(), &scalar(b, fp, base.powi(j), &shape));
            reshape(d, &[n]).expect("flat")
        })
        .collect();
    let all = concat(&parts, 0).expect("flat parts");
    let bits = b.drelu(all).map_err(mpc_err(node))?;
    Ok((0..thresholds.len())
        .map(|i| {
            let s = bits.slice_axis(Axis(0), ndarray::Slice::from(i * n..(i + 1) * n));
            reshape(standard(s), &shape).expect("same length")
        })
        .collect())
}

/// `start − Σ bitᵢ·wᵢ` with integer bits and public real weights (no truncation: the bits are
/// integers).
fn bits_combination<B: Backend>(
    b: &mut B,
    fp: FixedPoint,
    shape: &[usize],
    start: f64,
    bits: &[ArrayD<B::T>],
    weights: &[f64],
) -> ArrayD<B::T> {
    let mut acc = scalar(b, fp, start, shape);
    for (bit, &w) in bits.iter().zip(weights) {
        let t = b.mul_public(bit.clone(), &ndarray::arr0(fp.encode(w)).into_dyn());
        acc = b.sub(acc, &t);
    }
    acc
}

/// `1/x` by [`Reciprocal`] for `x` in its range.
pub(super) fn reciprocal<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    r: &Reciprocal,
) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    // The sign as an integer share s = 2·[x ≥ 0] − 1, and |x| = x·s (exact: no truncation).
    let sign = if r.signed {
        let bit = b.drelu(x.clone()).map_err(mpc_err(node))?;
        let two = b.mul_public(bit, &ndarray::arr0(2u64).into_dyn());
        let one = broadcast_to(b.public(&ndarray::arr0(1u64).into_dyn()), &shape).expect("scalar broadcasts");
        Some(b.sub(two, &one))
    } else {
        None
    };
    let x = match &sign {
        Some(s) => b.mul(x, s).map_err(mpc_err(node))?,
        None => x,
    };
    let js: Vec<i32> = r.thresholds().collect();
    let bits = range_bits(b, node, fp, &x, 2.0, &js)?;
    let weights: Vec<f64> = js.iter().map(|&j| 2f64.powi(-j)).collect();
    let c = bits_combination(b, fp, &shape, 2f64.powi(-r.jlo), &bits, &weights);
    // x' = |x|·c, and c·s (exact) in the same round.
    let (xs, c) = match &sign {
        Some(s) => {
            let mut v = super::lower::mul_all(b, &[x, c.clone()], &[c, s.clone()]).map_err(mpc_err(node))?;
            let cs = v.pop().expect("two parts");
            let xs = v.pop().expect("two parts");
            (b.truncate(xs), cs)
        }
        None => (mul_t(b, node, x, &c)?, c),
    };
    let mut y = poly_at(b, node, fp, xs.clone(), &r.poly, 1.0)?;
    for _ in 0..r.newton {
        let e = mul_t(b, node, xs.clone(), &y)?;
        let t = b.sub(scalar(b, fp, 2.0, &shape), &e);
        y = mul_t(b, node, y, &t)?;
    }
    mul_t(b, node, y, &c)
}

/// `1/√x` by [`Rsqrt`] for `x` in its range.
pub(super) fn rsqrt<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    r: &Rsqrt,
) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    let js: Vec<i32> = r.thresholds().collect();
    let bits = range_bits(b, node, fp, &x, 4.0, &js)?;
    let w4: Vec<f64> = js.iter().map(|&j| 3.0 * 4f64.powi(-j)).collect();
    let w2: Vec<f64> = js.iter().map(|&j| 2f64.powi(-j)).collect();
    let c4 = bits_combination(b, fp, &shape, 4f64.powi(-r.jlo), &bits, &w4);
    let c2 = bits_combination(b, fp, &shape, 2f64.powi(-r.jlo), &bits, &w2);
    let xs = mul_t(b, node, x, &c4)?;
    let mut y = poly_at(b, node, fp, xs.clone(), &r.poly, 1.0)?;
    for _ in 0..r.newton {
        let y2 = b.square(y.clone()).map_err(mpc_err(node))?;
        let y2 = b.truncate(y2);
        let a = mul_t(b, node, xs.clone(), &y2)?;
        let half_a = scale(b, fp, a, 0.5);
        let t = b.sub(scalar(b, fp, 1.5, &shape), &half_a);
        y = mul_t(b, node, y, &t)?;
    }
    mul_t(b, node, y, &c2)
}

/// GELU by [`approx::Gelu`] (both forms).
pub(super) fn gelu<B: Backend>(b: &mut B, node: &Node, fp: FixedPoint, x: ArrayD<B::T>) -> Result<ArrayD<B::T>> {
    let g = approx::gelu();
    let shape = x.shape().to_vec();
    let t = g.bound;
    let xp = b.add(x.clone(), &scalar(b, fp, t, &shape));
    let xm = b.sub(x.clone(), &scalar(b, fp, t, &shape));
    let mut r = super::lower::relu_all(b, &[xp.clone(), xm]).map_err(mpc_err(node))?;
    let (r1, r0) = (r.pop().expect("two parts"), r.pop().expect("two parts"));
    // c = clamp(x, −T, T) = ReLU(x + T) − ReLU(x − T) − T; over = ReLU(x − T) + ReLU(−x − T).
    let c = b.sub(r0.clone(), &r1);
    let c = b.sub(c, &scalar(b, fp, t, &shape));
    let over = b.add(r1, &r0);
    let over = b.sub(over, &xp);
    let u = scale(b, fp, c, 1.0 / t);
    let v = b.square(u).map_err(mpc_err(node))?;
    let v = b.truncate(v);
    let q = poly_at(b, node, fp, v, &g.poly, 1.0)?;
    let half_x = scale(b, fp, x, 0.5);
    let half_over = scale(b, fp, over, 0.5);
    let y = b.add(half_x, &q);
    Ok(b.add(y, &half_over))
}

/// erf by [`approx::Erf`].
pub(super) fn erf<B: Backend>(b: &mut B, node: &Node, fp: FixedPoint, x: ArrayD<B::T>) -> Result<ArrayD<B::T>> {
    let e = approx::erf_approx();
    let c = clamp(b, node, fp, x, -e.bound, e.bound)?;
    let u = scale(b, fp, c, 1.0 / e.bound);
    let v = b.square(u.clone()).map_err(mpc_err(node))?;
    let v = b.truncate(v);
    let h = poly_at(b, node, fp, v, &e.poly, 1.0)?;
    mul_t(b, node, u, &h)
}

/// `tanh(x) = 2σ(2x) − 1` on the Sigmoid protocol (doubling and the affine map are exact).
pub(super) fn tanh<B: Backend>(b: &mut B, node: &Node, fp: FixedPoint, x: ArrayD<B::T>) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    let two = ndarray::arr0(2u64).into_dyn();
    let x2 = b.mul_public(x, &two);
    let s = super::lower::piecewise(b, node, fp, x2, &masq_ir::approx::SIGMOID)?;
    let s2 = b.mul_public(s, &two);
    Ok(b.sub(s2, &scalar(b, fp, 1.0, &shape)))
}

/// Moves `axis` last and flattens the rest: `[rows, len]`, with the permutation used.
fn rows_last<T: Clone>(x: ArrayD<T>, axis: usize) -> (ArrayD<T>, Vec<usize>, Vec<usize>) {
    let nd = x.ndim();
    let mut perm: Vec<usize> = (0..nd).filter(|&a| a != axis).collect();
    perm.push(axis);
    let moved = permute(x, &perm);
    let moved_shape = moved.shape().to_vec();
    let len = moved_shape[nd - 1];
    let rows = moved.len() / len.max(1);
    (reshape(moved, &[rows, len]).expect("element counts agree"), perm, moved_shape)
}

/// The inverse of [`rows_last`].
fn rows_back<T: Clone>(y: ArrayD<T>, perm: &[usize], moved_shape: &[usize]) -> ArrayD<T> {
    let y = reshape(y, moved_shape).expect("element counts agree");
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    permute(y, &inv)
}

/// `[R, L]` → `[R]`: the maximum of each row by a tree of ReLUs (`max(a, b) = b + ReLU(a − b)`).
fn row_max<B: Backend>(b: &mut B, node: &Node, x: &ArrayD<B::T>) -> Result<ArrayD<B::T>> {
    let mut cur = x.clone();
    while cur.shape()[1] > 1 {
        let w = cur.shape()[1];
        let h = w / 2;
        let lhs = standard(cur.slice_axis(Axis(1), ndarray::Slice::from(0..h)));
        let rhs = standard(cur.slice_axis(Axis(1), ndarray::Slice::from(h..2 * h)));
        let d = b.sub(lhs, &rhs);
        let r = b.relu(d).map_err(mpc_err(node))?;
        let m = b.add(rhs, &r);
        cur = if w % 2 == 1 {
            let last = standard(cur.slice_axis(Axis(1), ndarray::Slice::from(w - 1..w)));
            concat(&[m, last], 1).expect("same rows")
        } else {
            m
        };
    }
    Ok(reshape(cur, &[x.shape()[0]]).expect("one column"))
}

/// `[R]` → `[R, L]` (each row's value repeated).
fn per_row<T: Clone>(v: ArrayD<T>, len: usize) -> ArrayD<T> {
    let rows = v.len();
    broadcast_to(reshape(v, &[rows, 1]).expect("column"), &[rows, len]).expect("broadcasts")
}

/// Softmax over `axis`.
pub(super) fn softmax<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    axis: usize,
) -> Result<ArrayD<B::T>> {
    if axis >= x.ndim() {
        return Err(mismatch(node, format!("rank > {axis}"), x.shape()));
    }
    let (rows, perm, moved_shape) = rows_last(x, axis);
    let len = rows.shape()[1];
    if len == 0 {
        return Ok(rows_back(rows, &perm, &moved_shape));
    }
    let m = row_max(b, node, &rows)?;
    let z = b.sub(rows, &per_row(m, len));
    let e = exp(b, node, fp, z, approx::softmax_exp())?;
    let s = sum_axis(b, &e, 1);
    let r = reciprocal(b, node, fp, s, &Reciprocal::softmax(len))?;
    let y = mul_t(b, node, e, &per_row(r, len))?;
    Ok(rows_back(y, &perm, &moved_shape))
}

/// LayerNormalization over the axes from `c.axis` on.
pub(super) fn layer_norm<B: Backend>(
    b: &mut B,
    graph: &Graph,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    c: &LayerNormConfig,
) -> Result<ArrayD<B::T>> {
    let shape = x.shape().to_vec();
    if c.axis >= shape.len() {
        return Err(mismatch(node, format!("rank > {}", c.axis), &shape));
    }
    let n: usize = shape[c.axis..].iter().product();
    let rows = x.len() / n.max(1);
    let xf = reshape(x, &[rows, n]).expect("element counts agree");
    let sum = sum_axis(b, &xf, 1);
    let mean = scale_fine(b, fp, sum, 1.0 / n as f64);
    let d = b.sub(xf, &per_row(mean, n));
    let sq = b.square(d.clone()).map_err(mpc_err(node))?;
    let sq = b.truncate(sq);
    let var = sum_axis(b, &sq, 1);
    let var = scale_fine(b, fp, var, 1.0 / n as f64);
    let v = b.add(var, &scalar(b, fp, c.epsilon as f64, &[rows]));
    let r = rsqrt(b, node, fp, v, approx::rsqrt())?;
    let mut y = mul_t(b, node, d, &per_row(r, n))?;
    let param = |name: &str| -> Result<ArrayD<u64>> {
        let t = graph.initializer(node, name)?;
        if t.len() != n {
            return Err(mismatch(node, format!("{name} of {n} elements"), t.shape()));
        }
        let row = reshape(t.mapv(|v| fp.encode(v as f64)), &[1, n]).expect("one row");
        Ok(broadcast_to(row, &[rows, n]).expect("rows"))
    };
    if let Some(s) = &c.scale {
        let s = param(s)?;
        let t = b.mul_public(y, &s);
        y = b.truncate(t);
    }
    if let Some(bias) = &c.bias {
        let bias = param(bias)?;
        let p = b.public(&bias);
        y = b.add(y, &p);
    }
    Ok(reshape(y, &shape).expect("element counts agree"))
}

/// `a / d` for a computed divisor `d` in [`approx::reciprocal`]'s range.
pub(super) fn divide<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    a: ArrayD<B::T>,
    d: ArrayD<B::T>,
) -> Result<ArrayD<B::T>> {
    let shape = broadcast(a.shape(), d.shape())
        .ok_or_else(|| mismatch(node, format!("broadcastable with {:?}", d.shape()), a.shape()))?;
    let r = reciprocal(b, node, fp, d, approx::reciprocal())?;
    let a = broadcast_to(a, &shape).expect("checked");
    let r = broadcast_to(r, &shape).expect("checked");
    mul_t(b, node, a, &r)
}

/// `√x` as `x·(1/√x)`.
pub(super) fn sqrt<B: Backend>(b: &mut B, node: &Node, fp: FixedPoint, x: ArrayD<B::T>) -> Result<ArrayD<B::T>> {
    let r = rsqrt(b, node, fp, x.clone(), approx::rsqrt())?;
    mul_t(b, node, x, &r)
}

/// MatMul of two computed values `[..., M, K] × [..., K, N]` (batch axes broadcast).
pub(super) fn matmul<B: Backend>(b: &mut B, node: &Node, x: ArrayD<B::T>, y: ArrayD<B::T>) -> Result<ArrayD<B::T>> {
    let (xs, ys) = (x.shape().to_vec(), y.shape().to_vec());
    if xs.len() < 2 || ys.len() < 2 {
        return Err(unsupported(node, "a product of two computed values needs both of rank 2 or more"));
    }
    let (m, k) = (xs[xs.len() - 2], xs[xs.len() - 1]);
    let (k2, n) = (ys[ys.len() - 2], ys[ys.len() - 1]);
    if k != k2 {
        return Err(mismatch(node, format!("[..., {k}, N] for the right operand"), &ys));
    }
    let batch = broadcast(&xs[..xs.len() - 2], &ys[..ys.len() - 2])
        .ok_or_else(|| mismatch(node, format!("batch axes broadcastable with {:?}", &xs[..xs.len() - 2]), &ys))?;
    let bsz: usize = batch.iter().product();
    let full = |mut s: Vec<usize>, a: usize, c: usize| {
        s.extend([a, c]);
        s
    };
    let x = broadcast_to(x, &full(batch.clone(), m, k)).expect("checked");
    let y = broadcast_to(y, &full(batch.clone(), k, n)).expect("checked");
    let x = reshape(x, &[bsz, m, k]).expect("element counts agree");
    let y = reshape(y, &[bsz, k, n]).expect("element counts agree");
    let z = b.matmul(x, &y).map_err(mpc_err(node))?;
    let z = b.truncate(z);
    Ok(reshape(z, &full(batch, m, n)).expect("element counts agree"))
}
