//! Gemm and MatMul (a MatMul with a constant 2-D right operand and a 2-D input becomes a Gemm).

use ndarray::{ArrayD, Ix2};

use super::BuildFn;
use super::conv::flat;
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::shape::broadcast;
use masq_ir::{BinaryConfig, GemmConfig, MatMulConfig, Op, TransposeConfig};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("Gemm", gemm);
    r.insert("MatMul", matmul);
}

fn gemm(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let trans_a = n.attr_or("transA", 0i64)? != 0;
    if trans_a {
        ctx.batch_guard(n, "transA = 1 (a transpose of axis 0)")?;
    }
    let mut x = ctx.value(n, 0)?;
    let mut xs = ctx.shape(n, 0)?;
    let b = ctx.require_const(n, 1, "B")?.to_f32();
    let b2 = b.view().into_dimensionality::<Ix2>().map_err(|_| n.unsupported("B must be 2-D"))?;
    let alpha = n.attr_or("alpha", 1.0f32)?;
    let beta = n.attr_or("beta", 1.0f32)?;
    // Normalise to W = [out, in].
    let w = if n.attr_or("transB", 0i64)? != 0 { b2.to_owned() } else { b2.t().to_owned() };
    let w = w.mapv(|v| v * alpha).into_dyn();
    let out = w.shape()[0];
    if trans_a && xs.len() == 2 {
        xs.reverse();
    }
    if xs.len() != 2 || xs[1] != w.shape()[1] {
        return Err(n.unsupported(format!("input {xs:?} does not fit weight [{}, {}]", out, w.shape()[1])));
    }
    // C is a per-output bias (folded into the Gemm) or, when it broadcasts to [M, N] otherwise
    // (a matrix bias), a constant added after the product.
    let mut bias = None;
    let mut matrix = None;
    if let Some(c) = ctx.konst(n, 2, "C")? {
        let c = c.to_f32().mapv(|v| v * beta);
        let per_output = c.len() == out && c.shape().iter().rev().skip(1).all(|&d| d == 1);
        if c.len() == 1 {
            bias = Some(ArrayD::from_elem(vec![out], c.iter().next().copied().unwrap_or(0.0)));
        } else if per_output {
            bias = Some(flat(c));
        } else if c.ndim() <= 2 && broadcast(&[xs[0], out], c.shape()).as_deref() == Some(&[xs[0], out][..]) {
            matrix = Some(c);
        } else {
            return Err(n.unsupported(format!("C of shape {:?} does not broadcast to [{}, {out}]", c.shape(), xs[0])));
        }
    }
    let weight = ctx.add_param(&format!("{}.weight", n.name), w);
    // A weight scaled by alpha is no longer on its grid.
    if alpha == 1.0 {
        ctx.record_weight_quant(n, 1, &weight);
    }
    let bias = bias.map(|b| ctx.add_param(&format!("{}.bias", n.name), b));
    if trans_a {
        let t = ctx.add_value_name(&format!("{}/a_transposed", n.output()));
        ctx.push(n, Some("transpose_a"), Op::Transpose(TransposeConfig { perm: vec![1, 0] }), vec![x], t.clone())?;
        x = t;
    }
    let gemm = Op::Gemm(GemmConfig { weight, bias });
    match matrix {
        None => ctx.push(n, None, gemm, vec![x], n.output().to_string()),
        Some(c) => {
            let product = ctx.add_value_name(&format!("{}/product", n.output()));
            ctx.push(n, Some("gemm"), gemm, vec![x], product.clone())?;
            let c = ctx.add_param(&format!("{}.C", n.name), c);
            ctx.push(n, None, Op::Add(BinaryConfig {}), vec![product, c], n.output().to_string())
        }
    }
}

fn matmul(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let a_shape = ctx.shape(n, 0)?;
    if ctx.is_const(n, 1) && !ctx.is_const(n, 0) && a_shape.len() == 2 {
        let b = ctx.require_const(n, 1, "B")?.to_f32();
        if let Ok(b2) = b.view().into_dimensionality::<Ix2>() {
            let w = b2.t().to_owned().into_dyn();
            let x = ctx.value(n, 0)?;
            let weight = ctx.add_param(&format!("{}.weight", n.name), w);
            ctx.record_weight_quant(n, 1, &weight);
            return ctx.push(n, None, Op::Gemm(GemmConfig { weight, bias: None }), vec![x], n.output().to_string());
        }
    }
    let a = ctx.value(n, 0)?;
    let b = ctx.value(n, 1)?;
    if a_shape.len() < 2 || ctx.shape(n, 1)?.len() < 2 {
        return Err(n.unsupported("1-D MatMul operands are not supported"));
    }
    ctx.push(n, None, Op::MatMul(MatMulConfig {}), vec![a, b], n.output().to_string())
}
