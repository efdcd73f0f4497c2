//! Data movement: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Pad, Slice.

use super::BuildFn;
use crate::ctx::{Ctx, OnnxNode};
use crate::fold::slice_args;
use crate::tensor::Const;
use masq_ir::Result;
use masq_ir::{ConcatConfig, FlattenConfig, Op, PadConfig, ReshapeConfig, SliceConfig, TransposeConfig};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("Flatten", flatten);
    r.insert("Reshape", reshape);
    r.insert("Squeeze", squeeze);
    r.insert("Unsqueeze", unsqueeze);
    r.insert("Transpose", transpose);
    r.insert("Concat", concat);
    r.insert("Pad", pad);
    r.insert("Slice", slice);
}

fn flatten(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let rank = ctx.shape(n, 0)?.len();
    let a = n.attr_or("axis", 1i64)?;
    let axis = if a == rank as i64 { rank } else { n.axis("axis", a, rank)? };
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::Flatten(FlattenConfig { axis }), vec![x], n.output().to_string())
}

/// A reshape target keeps a symbolic batch: entry 0 derived from the batch dimension becomes `0`
/// (copy the input's dimension).
fn reshape_to(ctx: &mut Ctx, n: &OnnxNode, mut shape: Vec<i64>) -> Result<()> {
    let x = ctx.value(n, 0)?;
    let xs = ctx.shape(n, 0)?;
    if ctx.has_batch && !xs.is_empty() && shape.first() == Some(&(xs[0] as i64)) && shape.len() > 1 {
        // Keep the batch axis symbolic when the target copies it unchanged.
        let rest: i64 = shape[1..].iter().product();
        let per_image: usize = xs[1..].iter().product();
        if rest == per_image as i64 || shape[1..].contains(&-1) {
            shape[0] = 0;
        }
    }
    ctx.push(n, None, Op::Reshape(ReshapeConfig { shape }), vec![x], n.output().to_string())
}

fn reshape(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let shape = if n.opset >= 5 {
        let c: &Const = ctx.require_const(n, 1, "shape")?;
        let mut s = c.to_i64_vec();
        if let Some(b) = &c.batch
            && b.first() == Some(&true)
        {
            s[0] = 0;
        }
        s
    } else {
        n.attr("shape")?
    };
    if n.attr_or("allowzero", 0i64)? != 0 && shape.contains(&0) {
        return Err(n.unsupported("allowzero = 1 with a zero in the shape"));
    }
    reshape_to(ctx, n, shape)
}

fn axes(ctx: &Ctx, n: &OnnxNode) -> Result<Option<Vec<i64>>> {
    if n.opset >= 13 { Ok(ctx.konst(n, 1, "axes")?.map(Const::to_i64_vec)) } else { n.attr_opt("axes") }
}

fn squeeze(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let xs = ctx.shape(n, 0)?;
    let rank = xs.len();
    let axes: Vec<usize> = match axes(ctx, n)? {
        Some(a) => a.iter().map(|&a| n.axis("axes", a, rank)).collect::<Result<_>>()?,
        None => (1..rank).filter(|&i| xs[i] == 1).collect(),
    };
    if axes.contains(&0) {
        return Err(n.unsupported("squeezing the batch axis"));
    }
    let shape = xs.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d as i64).collect();
    reshape_to(ctx, n, shape)
}

fn unsqueeze(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let xs = ctx.shape(n, 0)?;
    let a = axes(ctx, n)?.ok_or_else(|| n.bad_attr("axes", "missing"))?;
    let rank = xs.len() + a.len();
    let mut a: Vec<usize> = a.iter().map(|&v| n.axis("axes", v, rank)).collect::<Result<_>>()?;
    a.sort_unstable();
    if a.first() == Some(&0) {
        return Err(n.unsupported("unsqueezing in front of the batch axis"));
    }
    let mut shape: Vec<i64> = xs.iter().map(|&d| d as i64).collect();
    for &i in &a {
        shape.insert(i, 1);
    }
    reshape_to(ctx, n, shape)
}

fn transpose(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let rank = ctx.shape(n, 0)?.len();
    let perm: Vec<usize> = match n.attr_opt::<Vec<i64>>("perm")? {
        Some(p) => p.iter().map(|&a| n.axis("perm", a, rank)).collect::<Result<_>>()?,
        None => (0..rank).rev().collect(),
    };
    if perm.first() != Some(&0) {
        return Err(n.unsupported(format!("transposes that move the batch axis (perm {perm:?})")));
    }
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::Transpose(TransposeConfig { perm }), vec![x], n.output().to_string())
}

fn concat(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let rank = ctx.shape(n, 0)?.len();
    let axis = n.axis("axis", n.attr("axis")?, rank)?;
    let inputs = (0..n.proto.input.len()).map(|i| ctx.value(n, i)).collect::<Result<Vec<_>>>()?;
    ctx.push(n, None, Op::Concat(ConcatConfig { axis }), inputs, n.output().to_string())
}

fn pad(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let rank = ctx.shape(n, 0)?.len();
    let mode = n.attr_or("mode", "constant".to_string())?;
    if mode != "constant" {
        return Err(n.unsupported(format!("pad mode {mode:?} (only \"constant\")")));
    }
    let (pads, value, axes): (Vec<i64>, f32, Vec<usize>) = if n.opset < 11 {
        let p = n.attr_opt::<Vec<i64>>("pads")?.map_or_else(|| n.attr("paddings"), Ok)?;
        (p, n.attr_or("value", 0.0f32)?, (0..rank).collect())
    } else {
        let p = ctx.require_const(n, 1, "pads")?.to_i64_vec();
        let v = match ctx.konst(n, 2, "constant_value")? {
            Some(c) => c.data.iter().next().copied().unwrap_or(0.0) as f32,
            None => 0.0,
        };
        let axes = match ctx.konst(n, 3, "axes")? {
            Some(c) => c.to_i64_vec().iter().map(|&a| n.axis("axes", a, rank)).collect::<Result<_>>()?,
            None => (0..rank).collect(),
        };
        (p, v, axes)
    };
    if pads.len() != 2 * axes.len() || pads.iter().any(|&p| p < 0) {
        return Err(n.unsupported(format!("pads {pads:?} (need {} non-negative values)", 2 * axes.len())));
    }
    let mut per_axis = vec![(0usize, 0usize); rank];
    for (k, &a) in axes.iter().enumerate() {
        per_axis[a] = (pads[k] as usize, pads[k + axes.len()] as usize);
    }
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::Pad(PadConfig { pads: per_axis, value }), vec![x], n.output().to_string())
}

fn slice(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let xs = ctx.shape(n, 0)?;
    let args = slice_args(ctx, n, &xs)?;
    if args.iter().any(|a| a.0 == 0) {
        return Err(n.unsupported("slicing the batch axis"));
    }
    let cfg = SliceConfig {
        axes: args.iter().map(|a| a.0).collect(),
        starts: args.iter().map(|a| a.1).collect(),
        ends: args.iter().map(|a| a.2).collect(),
        steps: args.iter().map(|a| a.3).collect(),
    };
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::Slice(cfg), vec![x], n.output().to_string())
}
