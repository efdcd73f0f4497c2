//! BatchNorm: batch statistics and running-statistics updates in training mode, running
//! statistics in eval mode.

use masq_ir::{BatchNormConfig, Node};
use tch::Tensor;

use super::Params;
use super::{mismatch, param};
use crate::error::Result;

pub(super) fn batch_norm(
    model: &dyn Params,
    node: &Node,
    c: &BatchNormConfig,
    x: &Tensor,
    train: bool,
) -> Result<Tensor> {
    let (scale, bias, mean, var) = (
        param(model, node, &c.scale)?,
        param(model, node, &c.bias)?,
        param(model, node, &c.mean)?,
        param(model, node, &c.var)?,
    );
    let ch = scale.size().first().copied().unwrap_or(0);
    if x.dim() < 2 || x.size()[1] != ch {
        return Err(mismatch(node, format!("[N, {ch}, ...]"), x));
    }
    let cudnn = model.device().is_cuda();
    Ok(x.f_batch_norm(
        Some(scale),
        Some(bias),
        Some(mean),
        Some(var),
        train,
        model.bn_momentum(),
        f64::from(c.epsilon),
        cudnn,
    )?)
}
