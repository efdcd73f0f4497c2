//! Linear layers (Conv, Gemm/MatMul) with Beaver matrix triples, the weight mask reused for the
//! whole model.
//!
//! ```text
//!   model load (once):  D ──▶ P_b : [A]            P0 ⇄ P1 : open E = W - A   (1 round, |W| words)
//!   offline (per inference): D ──▶ P_b : [B], [C = op(A, B)];  P_b computes op(E, [B]) itself
//!   online:  P0 ⇄ P1 : open F = x - B               (1 round, |x| words each way)
//!            [op(W, x)] = [C] + op(E, [B]) + op(E + A0, F) (P0)   |   + op(A1, F) (P1)
//! ```
//! `op(W, x)` is bilinear (a convolution or `x·W`), so with `W = E + A` and `x = F + B` it splits
//! into the four products above. Online each party computes one layer-sized product. The result
//! is the exact ring product (scale 2f for fixed-point operands): truncate it afterwards; the bias
//! is added by P0.

use ndarray::{ArrayD, IxDyn, Zip};

use super::ctx::{Ctx, LayerState};
use crate::dealer::{LayerId, LinearKind, Material, ModelMaterial, Request};
use crate::error::{MpcError, Result, fmt_shape};
use crate::share::{Party, Share};
use crate::transport::Transport;

/// Output shape of `op(W, x)` for an input of `input_shape`: [`LinearKind::output_shape`].
pub fn output_shape(kind: &LinearKind, input_shape: &[usize]) -> Result<Vec<usize>> {
    kind.output_shape(input_shape)
}

/// `op(w, x)` over the ring, with the fast kernels: [`LinearKind::apply`].
pub fn apply(kind: &LinearKind, w: &ArrayD<u64>, x: &ArrayD<u64>) -> Result<ArrayD<u64>> {
    kind.apply(w, x)
}

/// Model load: opens `E = W - A` for every linear layer in one round and keeps what the
/// online phase needs. `weights` are this party's shares of the weights, in any order
/// (P0, the model owner, typically holds `W` and P1 a share of zero).
pub fn setup_layers<T: Transport>(
    ctx: &mut Ctx<T>,
    model: ModelMaterial,
    weights: Vec<(LayerId, Share)>,
) -> Result<()> {
    if model.party != ctx.party() {
        return Err(MpcError::WrongParty { op: "linear setup".into(), expected: ctx.party(), got: model.party });
    }
    let mut by_id: std::collections::HashMap<LayerId, Share> = weights.into_iter().collect();
    let mut msg = Vec::new();
    let mut pending = Vec::new();
    for (id, kind, a) in model.layers {
        let w = by_id.remove(&id).ok_or_else(|| MpcError::PreprocessingMismatch {
            op: "linear setup".into(),
            expected: format!("a weight share for layer {id}"),
            found: "none".into(),
        })?;
        ctx.check_share("linear setup", &w)?;
        if w.shape() != a.shape() {
            return Err(MpcError::ShapeMismatch {
                op: format!("linear setup (layer {id})"),
                expected: fmt_shape(a.shape()),
                got: fmt_shape(w.shape()),
            });
        }
        msg.extend(w.data().iter().zip(a.iter()).map(|(w, a)| w.wrapping_sub(*a)));
        pending.push((id, kind, a));
    }
    if let Some(id) = by_id.keys().next() {
        return Err(MpcError::PreprocessingMismatch {
            op: "linear setup".into(),
            expected: "model material for every weight".into(),
            found: format!("a weight for layer {id} without material"),
        });
    }
    let n = msg.len();
    ctx.step("linear_setup", n, |ctx| {
        let theirs = ctx.exchange(&msg, "linear setup")?;
        let mut at = 0;
        for (id, kind, a) in pending {
            let len = a.len();
            let e_words: Vec<u64> = (at..at + len).map(|i| msg[i].wrapping_add(theirs[i])).collect();
            at += len;
            let e = ArrayD::from_shape_vec(IxDyn(a.shape()), e_words).expect("same length");
            let online_weight = match ctx.party() {
                Party::P0 => {
                    let mut s = e.clone();
                    Zip::from(&mut s).and(&a).for_each(|x, &y| *x = x.wrapping_add(y));
                    s
                }
                Party::P1 => a,
            };
            ctx.layers.insert(id, LayerState { kind, online_weight, e });
        }
        Ok(())
    })
}

/// Offline: computes `op(E, [B])` for every queued linear triple (input-independent work).
pub fn precompute<T: Transport>(ctx: &mut Ctx<T>) -> Result<()> {
    precompute_from(ctx, 0)
}

/// [`precompute`] for the queued items from index `from` on (a newly added segment).
pub(crate) fn precompute_from<T: Transport>(ctx: &mut Ctx<T>, from: usize) -> Result<()> {
    let threads = ctx.threads();
    let layers = &ctx.layers;
    for item in ctx.pre.items_mut().skip(from) {
        if let Material::Linear { layer, b, eb, .. } = item
            && eb.is_none()
        {
            {
                let state = layers.get(layer).ok_or_else(|| MpcError::PreprocessingMismatch {
                    op: "linear precompute".into(),
                    expected: format!("layer {layer} set up"),
                    found: "no such layer".into(),
                })?;
                *eb = Some(state.kind.apply_threads(&state.e, b, threads)?);
            }
        }
    }
    Ok(())
}

/// `[op(W, x)]` for linear layer `layer` (exact ring product; truncate afterwards).
pub fn linear<T: Transport>(ctx: &mut Ctx<T>, layer: LayerId, x: &Share) -> Result<Share> {
    ctx.check_share("linear", x)?;
    if !ctx.layers.contains_key(&layer) {
        return Err(MpcError::PreprocessingMismatch {
            op: "linear".into(),
            expected: format!("layer {layer} set up with setup_layers"),
            found: "no such layer".into(),
        });
    }
    let req = Request::Linear { layer, input_shape: x.shape().to_vec() };
    ctx.step("linear", x.len(), |ctx| {
        let Material::Linear { b, c, eb, .. } = ctx.take("linear", &req)? else { unreachable!("checked by take") };
        let msg: Vec<u64> = x.data().iter().zip(b.iter()).map(|(x, b)| x.wrapping_sub(*b)).collect();
        let theirs = ctx.exchange(&msg, "linear")?;
        let f_words: Vec<u64> = msg.iter().zip(&theirs).map(|(a, b)| a.wrapping_add(*b)).collect();
        let f = ArrayD::from_shape_vec(IxDyn(x.shape()), f_words).expect("same length");
        let threads = ctx.threads();
        let state = &ctx.layers[&layer];
        let eb = match eb {
            Some(eb) => eb,
            None => state.kind.apply_threads(&state.e, &b, threads)?,
        };
        let mut out = state.kind.apply_threads(&state.online_weight, &f, threads)?;
        Zip::from(&mut out).and(&c).and(&eb).for_each(|o, &c, &e| *o = o.wrapping_add(c).wrapping_add(e));
        ctx.retire((b, c, eb));
        Ok(Share::new(ctx.party(), out))
    })
}
