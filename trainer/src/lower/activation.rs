//! Smooth activations, reductions and layer normalisation.

use masq_ir::{GeluConfig, HardSigmoidConfig, LayerNormConfig, Node, ReduceConfig};
use tch::{Kind, Tensor};

use super::{Params, param};
use crate::error::Result;

pub(super) fn hard_sigmoid(x: &Tensor, c: &HardSigmoidConfig) -> Result<Tensor> {
    Ok(x.f_mul_scalar(c.alpha as f64)?.f_add_scalar(c.beta as f64)?.f_clamp(0.0, 1.0)?)
}

pub(super) fn hard_swish(x: &Tensor) -> Result<Tensor> {
    let gate = hard_sigmoid(x, &HardSigmoidConfig { alpha: 1.0 / 6.0, beta: 0.5 })?;
    Ok(x.f_mul(&gate)?)
}

pub(super) fn gelu(x: &Tensor, c: &GeluConfig) -> Result<Tensor> {
    Ok(x.f_gelu(if c.tanh { "tanh" } else { "none" })?)
}

pub(super) fn reduce(x: &Tensor, c: &ReduceConfig, mean: bool) -> Result<Tensor> {
    let dims: Vec<i64> = c.axes.iter().map(|&a| a as i64).collect();
    Ok(if mean {
        x.f_mean_dim(Some(dims.as_slice()), c.keepdims, Kind::Float)?
    } else {
        x.f_sum_dim_intlist(Some(dims.as_slice()), c.keepdims, Kind::Float)?
    })
}

pub(super) fn layer_norm(model: &dyn Params, node: &Node, c: &LayerNormConfig, x: &Tensor) -> Result<Tensor> {
    let shape: Vec<i64> = x.size().into_iter().skip(c.axis).collect();
    let scale = c.scale.as_deref().map(|n| param(model, node, n)).transpose()?;
    let bias = c.bias.as_deref().map(|n| param(model, node, n)).transpose()?;
    Ok(x.f_layer_norm(shape.as_slice(), scale, bias, c.epsilon as f64, false)?)
}
