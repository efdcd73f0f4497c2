//! Element-wise ops: Add, Sub, Mul, Div, Relu, Clip, LeakyRelu, Identity, Dropout, Softmax,
//! LogSoftmax.

use super::BuildFn;
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::{BinaryConfig, ClipConfig, LeakyReluConfig, Op, SoftmaxConfig};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("Add", |c, n| binary(c, n, Op::Add(BinaryConfig {})));
    r.insert("Sub", |c, n| binary(c, n, Op::Sub(BinaryConfig {})));
    r.insert("Mul", |c, n| binary(c, n, Op::Mul(BinaryConfig {})));
    r.insert("Div", div);
    r.insert("Relu", |c, n| unary(c, n, Op::Relu));
    r.insert("Identity", |c, n| unary(c, n, Op::Identity));
    r.insert("Dropout", dropout);
    r.insert("Clip", clip);
    r.insert("LeakyRelu", leaky_relu);
    r.insert("Softmax", |c, n| softmax(c, n, false));
    r.insert("LogSoftmax", |c, n| softmax(c, n, true));
}

fn binary(ctx: &mut Ctx, n: &OnnxNode, op: Op) -> Result<()> {
    if n.opset < 7 && n.attr_opt::<i64>("broadcast")?.is_some() {
        return Err(n.unsupported("legacy broadcast attribute (opset < 7)"));
    }
    let a = ctx.value(n, 0)?;
    let b = ctx.value(n, 1)?;
    ctx.push(n, None, op, vec![a, b], n.output().to_string())
}

fn div(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    if !ctx.is_const(n, 1) {
        return Err(n.unsupported("division by a non-constant value"));
    }
    binary(ctx, n, Op::Div(BinaryConfig {}))
}

fn unary(ctx: &mut Ctx, n: &OnnxNode, op: Op) -> Result<()> {
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, op, vec![x], n.output().to_string())
}

fn dropout(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    if n.proto.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(n.unsupported("the Dropout mask output is not supported"));
    }
    // Opset 12 on: an optional training_mode input; in training mode Dropout is random unless the
    // ratio is 0. (Before, Dropout in an inference graph is the identity.)
    let training = match ctx.konst(n, 2, "training_mode")? {
        Some(t) => t.data.iter().any(|&v| v != 0.0),
        None => false,
    };
    if training {
        let ratio = match ctx.konst(n, 1, "ratio")? {
            Some(r) => r.data.iter().next().copied().unwrap_or(0.5),
            None => 0.5,
        };
        if ratio != 0.0 {
            return Err(n.unsupported(format!("training-mode Dropout (random, ratio {ratio})")));
        }
    }
    unary(ctx, n, Op::Identity)
}

fn scalar(ctx: &Ctx, n: &OnnxNode, i: usize, what: &str) -> Result<Option<f32>> {
    match ctx.konst(n, i, what)? {
        None => Ok(None),
        Some(c) if c.data.len() == 1 => Ok(c.data.iter().next().map(|&v| v as f32)),
        Some(c) => Err(n.unsupported(format!("{what} must be a scalar, got shape {:?}", c.data.shape()))),
    }
}

fn clip(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let cfg = if n.opset < 11 {
        ClipConfig { min: n.attr_opt("min")?, max: n.attr_opt("max")? }
    } else {
        ClipConfig { min: scalar(ctx, n, 1, "min")?, max: scalar(ctx, n, 2, "max")? }
    };
    unary(ctx, n, Op::Clip(cfg))
}

fn leaky_relu(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let alpha = n.attr_or("alpha", 0.01f32)?;
    unary(ctx, n, Op::LeakyRelu(LeakyReluConfig { alpha }))
}

fn softmax(ctx: &mut Ctx, n: &OnnxNode, log: bool) -> Result<()> {
    let rank = ctx.shape(n, 0)?.len();
    let default = if n.opset >= 13 { -1 } else { 1 };
    let axis = n.axis("axis", n.attr_or("axis", default)?, rank)?;
    // Before opset 13 the op flattens from `axis` on; that equals a softmax over the last axis
    // only when `axis` is the last axis.
    if n.opset < 13 && axis + 1 != rank {
        return Err(n.unsupported(format!("softmax over flattened axes {axis}.. of a rank-{rank} input (opset < 13)")));
    }
    let cfg = SoftmaxConfig { axis };
    unary(ctx, n, if log { Op::LogSoftmax(cfg) } else { Op::Softmax(cfg) })
}
