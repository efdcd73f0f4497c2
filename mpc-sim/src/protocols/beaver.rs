//! Beaver multiplication and squaring (element-wise).
//!
//! ```text
//!   D ──▶ P_b : [a], [b], [c = a·b]          D ──▶ P_b : [a], [a²]
//!   P0 ⇄ P1  : open d = x - a, e = y - b      P0 ⇄ P1  : open d = x - a
//!   [xy] = [c] + d·[b] + e·[a] + d·e (P0)     [x²] = [a²] + 2d·[a] + d² (P0)
//! ```
//! Both take one round; mul sends 2 words per element each way, square 1.
//! The results are exact ring products: for fixed-point inputs truncate afterwards
//! ([`super::trunc::truncate`]).

use ndarray::{ArrayD, IxDyn};

use super::ctx::Ctx;
use crate::dealer::{Material, Request};
use crate::error::{MpcError, Result, fmt_shape};
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
        Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(x.shape()), out).expect("same length")))
    })
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
