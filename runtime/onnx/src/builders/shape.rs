//! Data movement: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Pad, Slice, Split
//! (one Slice per output) and Gather with a constant scalar or 1-D index (Slices, plus a Reshape
//! dropping the axis for a scalar index).
//!
//! With a fixed leading dimension (no symbolic batch) axis 0 is an ordinary axis; with a symbolic
//! batch, nodes that read across it are refused ([`Ctx::batch_guard`]).

use super::BuildFn;
use crate::ctx::{Ctx, OnnxNode};
use crate::fold::{SliceArg, slice_args};
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
    r.insert("Split", split);
    r.insert("Gather", gather);
}

fn flatten(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let rank = ctx.shape(n, 0)?.len();
    let a = n.attr_or("axis", 1i64)?;
    let axis = if a == rank as i64 { rank } else { n.axis("axis", a, rank)? };
    if axis == 0 {
        ctx.batch_guard(n, "flattening from axis 0")?;
    }
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::Flatten(FlattenConfig { axis }), vec![x], n.output().to_string())
}

/// A reshape target keeps a symbolic batch: entry 0 derived from the batch dimension becomes `0`
/// (copy the input's dimension).
fn reshape_to(ctx: &mut Ctx, n: &OnnxNode, shape: Vec<i64>) -> Result<()> {
    let x = ctx.value(n, 0)?;
    let xs = ctx.shape(n, 0)?;
    reshape_value(ctx, n, None, x, &xs, shape, n.output().to_string())
}

/// Reshape value `x` (of shape `xs` at batch 1) to `shape` into `output`, keeping a symbolic
/// batch when the target copies it unchanged.
pub(super) fn reshape_value(
    ctx: &mut Ctx,
    n: &OnnxNode,
    suffix: Option<&str>,
    x: String,
    xs: &[usize],
    mut shape: Vec<i64>,
    output: String,
) -> Result<()> {
    if ctx.has_batch && !xs.is_empty() && shape.first() == Some(&(xs[0] as i64)) && shape.len() > 1 {
        let rest: i64 = shape[1..].iter().product();
        let per_image: usize = xs[1..].iter().product();
        if rest == per_image as i64 || shape[1..].contains(&-1) {
            shape[0] = 0;
        }
    }
    ctx.push(n, suffix, Op::Reshape(ReshapeConfig { shape }), vec![x], output)
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
    let axes: Vec<usize> = match axes(ctx, n)?.filter(|a| !a.is_empty()) {
        Some(a) => a.iter().map(|&a| n.axis("axes", a, rank)).collect::<Result<_>>()?,
        // All axes of length 1; a symbolic batch is not known to be 1.
        None => (usize::from(ctx.has_batch)..rank).filter(|&i| xs[i] == 1).collect(),
    };
    if let Some(&a) = axes.iter().find(|&&a| xs[a] != 1) {
        return Err(n.unsupported(format!("squeezing axis {a} of length {} (of {xs:?})", xs[a])));
    }
    if axes.contains(&0) {
        ctx.batch_guard(n, "squeezing axis 0")?;
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
        ctx.batch_guard(n, "unsqueezing in front of axis 0")?;
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
    if perm.first().is_some_and(|&p| p != 0) {
        ctx.batch_guard(n, &format!("a transpose that moves axis 0 (perm {perm:?})"))?;
    }
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::Transpose(TransposeConfig { perm }), vec![x], n.output().to_string())
}

fn concat(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let rank = ctx.shape(n, 0)?.len();
    let axis = n.axis("axis", n.attr("axis")?, rank)?;
    if axis == 0 {
        ctx.batch_guard(n, "concatenating along axis 0")?;
    }
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
    if per_axis.first().is_some_and(|&p| p != (0, 0)) {
        ctx.batch_guard(n, "padding axis 0")?;
    }
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::Pad(PadConfig { pads: per_axis, value }), vec![x], n.output().to_string())
}

fn slice(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let xs = ctx.shape(n, 0)?;
    let args: Vec<SliceArg> = slice_args(ctx, n, &xs)?.into_iter().filter(|a| !a.is_whole(xs[a.axis])).collect();
    if args.iter().any(|a| a.step < 0) {
        return Err(n.unsupported("negative slice steps on a computed value (they are supported on constants only)"));
    }
    if args.iter().any(|a| a.axis == 0) {
        ctx.batch_guard(n, "slicing axis 0")?;
    }
    let x = ctx.value(n, 0)?;
    if args.is_empty() {
        return ctx.push(n, None, Op::Identity, vec![x], n.output().to_string());
    }
    let cfg = SliceConfig {
        axes: args.iter().map(|a| a.axis).collect(),
        starts: args.iter().map(|a| a.start as usize).collect(),
        ends: args.iter().map(|a| a.end as usize).collect(),
        steps: args.iter().map(|a| a.step as usize).collect(),
    };
    ctx.push(n, None, Op::Slice(cfg), vec![x], n.output().to_string())
}

/// `x[start..end]` along `axis` into `output`.
fn slice_range(
    ctx: &mut Ctx,
    n: &OnnxNode,
    suffix: Option<&str>,
    x: String,
    axis: usize,
    (start, end, step): (usize, usize, usize),
    output: String,
) -> Result<()> {
    let cfg = SliceConfig { axes: vec![axis], starts: vec![start], ends: vec![end], steps: vec![step] };
    ctx.push(n, suffix, Op::Slice(cfg), vec![x], output)
}

/// Split into one Slice per output: sizes from the `split` attribute (opset < 13) or input
/// (opset 13 on), else `num_outputs` (opset 18 on: chunks of ⌈len / n⌉, the last smaller) or
/// the number of outputs (equal parts).
fn split(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let xs = ctx.shape(n, 0)?;
    let axis = n.axis("axis", n.attr_or("axis", 0i64)?, xs.len())?;
    let len = xs[axis];
    let outputs = n.proto.output.clone();
    let k = outputs.len();
    let given = if n.opset >= 13 { ctx.konst(n, 1, "split")?.map(Const::to_i64_vec) } else { n.attr_opt("split")? };
    let sizes: Vec<usize> = match given.filter(|s| !s.is_empty()) {
        Some(s) => {
            if s.len() != k || s.iter().any(|&v| v < 0) || s.iter().sum::<i64>() != len as i64 {
                return Err(n.unsupported(format!("split sizes {s:?} for {k} outputs of an axis of length {len}")));
            }
            s.iter().map(|&v| v as usize).collect()
        }
        None => match n.attr_opt::<i64>("num_outputs")? {
            Some(m) if m != k as i64 => {
                return Err(n.bad_attr("num_outputs", &format!("{m}, but the node has {k} outputs")));
            }
            Some(_) => {
                let chunk = len.div_ceil(k.max(1));
                (0..k).map(|i| chunk.min(len.saturating_sub(i * chunk))).collect()
            }
            None if k > 0 && len.is_multiple_of(k) => vec![len / k; k],
            None => return Err(n.unsupported(format!("an axis of length {len} does not split into {k} equal parts"))),
        },
    };
    if axis == 0 {
        ctx.batch_guard(n, "splitting axis 0")?;
    }
    let x = ctx.value(n, 0)?;
    let mut start = 0;
    for (i, (out, &size)) in outputs.iter().zip(&sizes).enumerate() {
        if !out.is_empty() {
            let suffix = i.to_string();
            if size == len {
                ctx.push(n, Some(&suffix), Op::Identity, vec![x.clone()], out.clone())?;
            } else {
                slice_range(ctx, n, Some(&suffix), x.clone(), axis, (start, start + size, 1), out.clone())?;
            }
        }
        start += size;
    }
    Ok(())
}

/// Gather on a computed value with a constant index (constant data folds): a scalar index is a
/// Slice of length 1 and a Reshape dropping the axis (ViT's `x[:, 0]`); 1-D indices are one
/// strided Slice when they form a progression, else one Slice each and a Concat; indices of
/// higher rank are gathered flat and reshaped (the dynamo exporter's `as_strided`).
fn gather(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let xs = ctx.shape(n, 0)?;
    let axis = n.axis("axis", n.attr_or("axis", 0i64)?, xs.len())?;
    let idx = ctx.require_const(n, 1, "indices")?;
    let idx_shape = idx.data.shape().to_vec();
    let len = xs[axis] as i64;
    let picks: Vec<usize> = idx
        .to_i64_vec()
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + len } else { i };
            if (0..len).contains(&j) {
                Ok(j as usize)
            } else {
                Err(n.unsupported(format!("index {i} out of range for axis {axis} of length {len}")))
            }
        })
        .collect::<Result<_>>()?;
    if picks.is_empty() {
        return Err(n.unsupported("an empty index"));
    }
    let step = if picks.len() > 1 { picks[1] as i64 - picks[0] as i64 } else { 1 };
    let progression = step >= 1 && picks.windows(2).all(|w| w[1] as i64 - w[0] as i64 == step);
    let whole = progression && picks[0] == 0 && step == 1 && picks.len() == xs[axis];
    if axis == 0 && !whole {
        ctx.batch_guard(n, "gathering along axis 0")?;
    }
    let x = ctx.value(n, 0)?;
    let out = n.output().to_string();
    // Output shape: x[..axis] ++ indices shape ++ x[axis + 1..].
    let mut target: Vec<i64> = xs[..axis].iter().map(|&d| d as i64).collect();
    target.extend(idx_shape.iter().map(|&d| d as i64));
    target.extend(xs[axis + 1..].iter().map(|&d| d as i64));
    let flat = idx_shape.len() == 1;
    // The whole of a flattened value gathered back into its own shape (the dynamo exporter's
    // `as_strided` after a global pool) is that value: keep its (batch) shape.
    if whole && !flat {
        let src = ctx.producer(&x).filter(|p| matches!(p.op, Op::Reshape(_))).map(|p| p.inputs[0].clone());
        if let Some(src) = src
            && ctx.shapes.get(&src).is_some_and(|s| s.iter().map(|&d| d as i64).eq(target.iter().copied()))
        {
            return ctx.push(n, None, Op::Identity, vec![src], out);
        }
    }
    let gathered = if flat { out.clone() } else { ctx.add_value_name(&format!("{out}/gathered")) };
    let suffix = if flat { None } else { Some("gather") };
    if progression {
        let (first, last) = (picks[0], picks[picks.len() - 1]);
        if whole {
            ctx.push(n, suffix, Op::Identity, vec![x], gathered.clone())?;
        } else {
            slice_range(ctx, n, suffix, x, axis, (first, last + 1, step as usize), gathered.clone())?;
        }
    } else {
        let mut parts = Vec::new();
        for (k, &p) in picks.iter().enumerate() {
            let part = ctx.add_value_name(&format!("{out}/{k}"));
            slice_range(ctx, n, Some(&k.to_string()), x.clone(), axis, (p, p + 1, 1), part.clone())?;
            parts.push(part);
        }
        ctx.push(n, suffix, Op::Concat(ConcatConfig { axis }), parts, gathered.clone())?;
    }
    if flat {
        return Ok(());
    }
    let mut gs = xs.clone();
    gs[axis] = picks.len();
    reshape_value(ctx, n, None, gathered, &gs, target, out)
}
