//! Element-wise ops: broadcasting binary ops, Clip, LeakyRelu, Softmax and LogSoftmax.

use masq_ir::{ClipConfig, Node, SoftmaxConfig};
use tch::{Kind, TchError, Tensor};

use super::mismatch;
use crate::error::Result;

pub(super) fn binary(
    node: &Node,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, TchError>,
) -> Result<Tensor> {
    f(a, b).map_err(|_| mismatch(node, format!("broadcastable with {:?}", b.size()), a))
}

pub(super) fn clip(x: &Tensor, c: &ClipConfig) -> Result<Tensor> {
    Ok(match (c.min, c.max) {
        (Some(lo), Some(hi)) => x.f_clamp(f64::from(lo), f64::from(hi))?,
        (Some(lo), None) => x.f_clamp_min(f64::from(lo))?,
        (None, Some(hi)) => x.f_clamp_max(f64::from(hi))?,
        (None, None) => x.shallow_clone(),
    })
}

/// `x` where `x >= 0`, `alpha·x` elsewhere.
pub(super) fn leaky_relu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    let neg = x.f_neg()?.f_relu()?.f_mul_scalar(f64::from(alpha))?;
    Ok(x.f_relu()?.f_sub(&neg)?)
}

pub(super) fn softmax(node: &Node, c: &SoftmaxConfig, x: &Tensor, log: bool) -> Result<Tensor> {
    if c.axis >= x.dim() {
        return Err(mismatch(node, format!("rank > {}", c.axis), x));
    }
    let axis = c.axis as i64;
    Ok(if log { x.f_log_softmax(axis, Kind::Float)? } else { x.f_softmax(axis, Kind::Float)? })
}
