//! Gemm (`y = x·Wᵀ + b`) and MatMul.

use masq_ir::{GemmConfig, Node};
use tch::Tensor;

use super::Params;
use super::{mismatch, param, weight};
use crate::error::Result;

pub(super) fn gemm(model: &dyn Params, node: &Node, c: &GemmConfig, x: &Tensor) -> Result<Tensor> {
    let w = &weight(model, node, &c.weight)?;
    if x.dim() != 2 || w.dim() != 2 || x.size()[1] != w.size()[1] {
        return Err(mismatch(node, format!("[N, {}]", w.size().get(1).copied().unwrap_or(0)), x));
    }
    let b = match &c.bias {
        Some(b) => Some(param(model, node, b)?),
        None => None,
    };
    Ok(x.f_linear(w, b)?)
}

pub(super) fn matmul(node: &Node, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dim() < 2 || b.dim() < 2 {
        return Err(mismatch(node, format!("rank >= 2 operands (other: {:?})", b.size()), a));
    }
    a.f_matmul(b).map_err(|_| mismatch(node, format!("inner dimension to match {:?}", b.size()), a))
}
