//! Beaver multiplication and squaring (element-wise).
//!
//! ```text
//!   D ──▶ P_b : [a], [b], [c = a·b]          D ──▶ P_b : [a], [a²]
//!   P0 ⇄ P1  : open d = x - a, e = y - b      P0 ⇄ P1  : open d = x - a
//!   [xy] = [c] + d·[b] + e·[a] + d·e (P0)     [x²] = [a²] + 2d·[a] + d² (P0)
//! ```
//! Both take one round; mul sends 2 words per element each way, square 1.
//!
//! [`matmul`] is the matrix form for a product of two secret tensors `X[batch, m, k]` and
//! `Y[batch, k, n]` (e.g. `Q·Kᵀ`, attention·V), with a fresh matrix triple per call:
//!
//! ```text
//!   D ──▶ P_b : [A] (batch·m·k), [B] (batch·k·n), [C = A·B per batch] (batch·m·n)
//!   P0 ⇄ P1  : open E = X - A, F = Y - B       one message, batch·(m·k + k·n) words each way
//!   [X·Y] = [C] + E·[B] + [A]·F + E·F (P0)     P0: [C] + E·([B] + F) + [A]·F   P1: [C] + E·[B] + [A]·F
//! ```
//! One round. `E` and `F` are uniformly random to each party because both masks are fresh for
//! this call (unlike a linear layer's weight mask, nothing is reused).
//!
//! The results are exact ring products: for fixed-point inputs truncate afterwards
//! ([`super::trunc::truncate`]).

use ndarray::{ArrayD, IxDyn};

use super::ctx::Ctx;
use crate::dealer::{Material, Request};
use crate::error::{MpcError, Result, fmt_shape};
use crate::kernel;
use crate::share::{Party, Share};
use crate::transport::Transport;

/// `[x·y]` element-wise (ring product, no truncation).
pub fn mul<T: Transport>(ctx: &mut Ctx<T>, x: &Share, y: &Share) -> Result<Share> {
    ctx.check_share("mul", x)?;
    ctx.check_share("mul", y)?;
    if x.shape() != y.shape() {
        return Err(MpcError::ShapeMismatch {
            op: "mul".into(),
            expected: fmt_shape(x.shape()),
            got: fmt_shape(y.shape()),
        });
    }
    let n = x.len();
    ctx.step("mul", n, |ctx| {
        let Material::Mul { a, b, c } = ctx.take("mul", &Request::Mul { n })? else { unreachable!("checked by take") };
        let mut msg = Vec::with_capacity(2 * n);
        msg.extend(x.data().iter().zip(&a).map(|(x, a)| x.wrapping_sub(*a)));
        msg.extend(y.data().iter().zip(&b).map(|(y, b)| y.wrapping_sub(*b)));
        let theirs = ctx.exchange(&msg, "mul")?;
        let p0 = ctx.party() == Party::P0;
        let out: Vec<u64> = (0..n)
            .map(|i| {
                let d = msg[i].wrapping_add(theirs[i]);
                let e = msg[n + i].wrapping_add(theirs[n + i]);
                let mut z = c[i].wrapping_add(d.wrapping_mul(b[i])).wrapping_add(e.wrapping_mul(a[i]));
                if p0 {
                    z = z.wrapping_add(d.wrapping_mul(e));
                }
                z
            })
            .collect();
        ctx.retire((a, b, c));
        Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(x.shape()), out).expect("same length")))
    })
}

/// `[x·y]` per batch for `x` of shape `[batch, m, k]` and `y` of `[batch, k, n]`: the ring
/// product `[batch, m, n]` (no truncation), with one fresh matrix triple
/// ([`Request::MatMul`]) and one round.
///
/// Shapes other than two 3-D tensors with the same batch and a common inner dimension are a
/// [`MpcError::ShapeMismatch`].
pub fn matmul<T: Transport>(ctx: &mut Ctx<T>, x: &Share, y: &Share) -> Result<Share> {
    ctx.check_share("matmul", x)?;
    ctx.check_share("matmul", y)?;
    let (batch, m, k, n) = matmul_dims(x.shape(), y.shape())?;
    let (_, _, out) = crate::dealer::matmul_sizes(batch, m, k, n)?;
    let req = Request::MatMul { batch, m, k, n };
    ctx.step("matmul", out, |ctx| {
        let Material::MatMul { a, b, c, .. } = ctx.take("matmul", &req)? else { unreachable!("checked by take") };
        let (la, lb) = (a.len(), b.len());
        let mut msg = Vec::with_capacity(la + lb);
        msg.extend(x.data().iter().zip(&a).map(|(x, a)| x.wrapping_sub(*a)));
        msg.extend(y.data().iter().zip(&b).map(|(y, b)| y.wrapping_sub(*b)));
        let theirs = ctx.exchange(&msg, "matmul")?;
        let opened: Vec<u64> = msg.iter().zip(&theirs).map(|(p, q)| p.wrapping_add(*q)).collect();
        let (e, f) = opened.split_at(la);
        // P0 also adds E·F: it folds it into E·(B0 + F), so each party runs two products.
        let right = match ctx.party() {
            Party::P0 => b.iter().zip(f).map(|(b, f)| b.wrapping_add(*f)).collect(),
            Party::P1 => b,
        };
        let mut z = c;
        kernel::gemm_batched(batch, m, k, n, e, &right, &mut z, true)?;
        kernel::gemm_batched(batch, m, k, n, &a, f, &mut z, true)?;
        ctx.retire((a, right));
        Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(&[batch, m, n]), z).expect("batch·m·n words")))
    })
}

/// `(batch, m, k, n)` of a [`matmul`] of `xs` `[batch, m, k]` by `ys` `[batch, k, n]`, or a
/// [`MpcError::ShapeMismatch`] naming "matmul".
pub fn matmul_dims(xs: &[usize], ys: &[usize]) -> Result<(usize, usize, usize, usize)> {
    if xs.len() != 3 {
        return Err(MpcError::ShapeMismatch {
            op: "matmul".into(),
            expected: "a left operand [batch, m, k]".into(),
            got: fmt_shape(xs),
        });
    }
    let (batch, m, k) = (xs[0], xs[1], xs[2]);
    if ys.len() != 3 || ys[0] != batch || ys[1] != k {
        return Err(MpcError::ShapeMismatch {
            op: "matmul".into(),
            expected: format!("a right operand [{batch}, {k}, n] for a left operand {}", fmt_shape(xs)),
            got: fmt_shape(ys),
        });
    }
    Ok((batch, m, k, ys[2]))
}

/// `[x²]` element-wise (ring product, no truncation).
pub fn square<T: Transport>(ctx: &mut Ctx<T>, x: &Share) -> Result<Share> {
    ctx.check_share("square", x)?;
    let n = x.len();
    ctx.step("square", n, |ctx| {
        let Material::Square { a, a2 } = ctx.take("square", &Request::Square { n })? else {
            unreachable!("checked by take")
        };
        let msg: Vec<u64> = x.data().iter().zip(&a).map(|(x, a)| x.wrapping_sub(*a)).collect();
        let theirs = ctx.exchange(&msg, "square")?;
        let out = square_finish(ctx.party(), &msg, &theirs, &a, &a2);
        ctx.retire((a, a2));
        Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(x.shape()), out).expect("same length")))
    })
}

/// Local part of a square after `d = x - a` was opened.
pub(crate) fn square_finish(party: Party, mine: &[u64], theirs: &[u64], a: &[u64], a2: &[u64]) -> Vec<u64> {
    let p0 = party == Party::P0;
    (0..mine.len())
        .map(|i| {
            let d = mine[i].wrapping_add(theirs[i]);
            let mut z = a2[i].wrapping_add(d.wrapping_mul(a[i]).wrapping_mul(2));
            if p0 {
                z = z.wrapping_add(d.wrapping_mul(d));
            }
            z
        })
        .collect()
}
