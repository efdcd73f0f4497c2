//! The masked activation `y = m⊙ReLU(x) + (1−m)⊙g(x)` with a fixed per-element mask `m` and a
//! replacement `g`: identity, or `c2·x² + c1·x + c0` with trainable per-channel coefficients.
//! (Trainable gates come with ReLU reduction.)

use masq_ir::{MaskedActConfig, Node, Replacement};
use tch::Tensor;

use super::Params;
use super::{mismatch, param};
use crate::error::{Result, TrainerError};

/// The kept activation of a masked site: `relu(x)`, or `min(relu(x), cap)` for a capped (ReLU6)
/// site.
pub(crate) fn kept(x: &Tensor, cap: Option<f32>) -> Result<Tensor> {
    let r = x.f_relu()?;
    Ok(match cap {
        Some(c) => r.f_clamp_max(c as f64)?,
        None => r,
    })
}

/// Reshape a per-channel `[C]` tensor to broadcast over `[N, C, ...]`.
pub(crate) fn per_channel(t: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1i64; rank];
    shape[1] = t.numel() as i64;
    Ok(t.f_reshape(shape.as_slice())?)
}

/// The replacement `g(x)`.
pub(crate) fn replacement(model: &dyn Params, node: &Node, r: &Replacement, x: &Tensor) -> Result<Tensor> {
    match r {
        Replacement::Identity => Ok(x.shallow_clone()),
        Replacement::Poly { c2, c1, c0 } => {
            let ch = x.size()[1];
            let get = |n: &String| -> Result<Tensor> {
                let t = param(model, node, n)?;
                if t.numel() as i64 != ch {
                    return Err(mismatch(node, format!("{n} with {} channels", t.numel()), x));
                }
                per_channel(t, x.dim())
            };
            let (a2, a1, a0) = (get(c2)?, get(c1)?, get(c0)?);
            // (c2·x + c1)·x + c0
            Ok(x.f_mul(&a2)?.f_add(&a1)?.f_mul(x)?.f_add(&a0)?)
        }
    }
}

pub(super) fn masked_act(model: &dyn Params, node: &Node, c: &MaskedActConfig, x: &Tensor) -> Result<Tensor> {
    let m = model
        .mask(&c.mask)
        .ok_or_else(|| TrainerError::MissingValue { node: node.name.clone(), input: c.mask.clone() })?;
    if x.dim() < 2 || x.size()[1..] != m.size()[..] {
        return Err(mismatch(node, format!("[N, {:?}]", m.size()), x));
    }
    let g = replacement(model, node, &c.replacement, x)?;
    // g + m·(kept(x) − g)
    Ok(g.f_add(&kept(x, c.cap)?.f_sub(&g)?.f_mul(m)?)?)
}
