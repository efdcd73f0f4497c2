//! Conv2d (grouped, dilated, asymmetric padding via an explicit zero pad).

use masq_ir::{ConvConfig, Node};
use tch::Tensor;

use super::Params;
use super::{mismatch, param, unsupported, weight};
use crate::error::Result;

pub(super) fn conv2d(model: &dyn Params, node: &Node, c: &ConvConfig, x: &Tensor) -> Result<Tensor> {
    if x.dim() != 4 {
        return Err(mismatch(node, "[N, C, H, W]", x));
    }
    if c.groups == 0 {
        return Err(unsupported(node, "groups = 0"));
    }
    let w = &weight(model, node, &c.weight)?;
    let b = match &c.bias {
        Some(b) => Some(param(model, node, b)?),
        None => None,
    };
    let [pt, pl, pb, pr] = c.padding.map(|p| p as i64);
    let stride = c.stride.map(|s| s as i64);
    let dilation = c.dilation.map(|d| d as i64);
    let groups = c.groups as i64;
    if pt == pb && pl == pr {
        Ok(x.f_conv2d(w, b, stride, [pt, pl], dilation, groups)?)
    } else {
        let xp = x.f_constant_pad_nd([pl, pr, pt, pb])?;
        Ok(xp.f_conv2d(w, b, stride, [0, 0], dilation, groups)?)
    }
}
