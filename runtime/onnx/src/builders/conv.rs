//! Conv.

use super::{BuildFn, require_4d, window};
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::{ConvConfig, Op};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("Conv", conv);
}

fn conv(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let x = ctx.value(n, 0)?;
    let xs = ctx.shape(n, 0)?;
    require_4d(n, &xs)?;
    let w = ctx.require_const(n, 1, "weight")?.to_f32();
    if w.ndim() != 4 {
        return Err(n.unsupported(format!("weight must be 4-D, got {:?}", w.shape())));
    }
    let kernel = [w.shape()[2], w.shape()[3]];
    if let Some(k) = n.attr_opt::<Vec<i64>>("kernel_shape")?
        && k.iter().map(|&v| v as usize).collect::<Vec<_>>() != kernel
    {
        return Err(n.bad_attr("kernel_shape", &format!("{k:?} disagrees with the weight {:?}", w.shape())));
    }
    let win = window(n, [xs[2], xs[3]], kernel)?;
    let groups = n.attr_or("group", 1i64)?;
    if groups < 1 {
        return Err(n.bad_attr("group", "must be positive"));
    }
    let bias = ctx.konst(n, 2, "bias")?.map(|b| flat(b.to_f32()));
    let weight = ctx.add_param(&format!("{}.weight", n.name), w);
    ctx.record_weight_quant(n, 1, &weight);
    let bias = bias.map(|b| ctx.add_param(&format!("{}.bias", n.name), b));
    let cfg = ConvConfig {
        weight,
        bias,
        kernel,
        stride: win.stride,
        padding: win.padding,
        dilation: win.dilation,
        groups: groups as usize,
    };
    ctx.push(n, None, Op::Conv(cfg), vec![x], n.output().to_string())
}

/// Flatten to 1-D.
pub(crate) fn flat(a: ndarray::ArrayD<f32>) -> ndarray::ArrayD<f32> {
    let len = a.len();
    ndarray::ArrayD::from_shape_vec(vec![len], a.iter().copied().collect()).expect("same length")
}
