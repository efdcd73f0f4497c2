//! Element-wise ops: Add, Sub, Mul, Div, Pow, Neg, Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid,
//! HardSwish, Tanh, Erf, Gelu, Exp, Sqrt, Reciprocal, Identity, Cast (float to float), Dropout,
//! Softmax, LogSoftmax. (On constant inputs most of them fold instead, see `fold`; a Clip on the
//! grid of the FakeQuant it reads narrows it, see `quant`.)

use super::BuildFn;
use crate::ctx::{Ctx, OnnxNode};
use crate::proto::data_type;
use masq_ir::Result;
use masq_ir::{BinaryConfig, ClipConfig, GeluConfig, HardSigmoidConfig, LeakyReluConfig, Op, SoftmaxConfig};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("Add", |c, n| binary(c, n, Op::Add(BinaryConfig {})));
    r.insert("Sub", |c, n| binary(c, n, Op::Sub(BinaryConfig {})));
    r.insert("Mul", |c, n| binary(c, n, Op::Mul(BinaryConfig {})));
    r.insert("Div", |c, n| binary(c, n, Op::Div(BinaryConfig {})));
    r.insert("Pow", |c, n| binary(c, n, Op::Pow(BinaryConfig {})));
    r.insert("Neg", neg);
    r.insert("Relu", |c, n| unary(c, n, Op::Relu));
    r.insert("Sigmoid", |c, n| unary(c, n, Op::Sigmoid));
    r.insert("HardSigmoid", hard_sigmoid);
    r.insert("HardSwish", |c, n| unary(c, n, Op::HardSwish));
    r.insert("Tanh", |c, n| unary(c, n, Op::Tanh));
    r.insert("Erf", |c, n| unary(c, n, Op::Erf));
    r.insert("Gelu", gelu);
    r.insert("Exp", |c, n| unary(c, n, Op::Exp));
    r.insert("Sqrt", |c, n| unary(c, n, Op::Sqrt));
    r.insert("Reciprocal", |c, n| unary(c, n, Op::Reciprocal));
    r.insert("Cast", cast);
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

/// `-x` as `x · (-1)`.
fn neg(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let x = ctx.value(n, 0)?;
    let m = ctx.add_param(&format!("{}.minus_one", n.name), ndarray::ArrayD::from_elem(vec![], -1.0f32));
    ctx.push(n, None, Op::Mul(BinaryConfig {}), vec![x, m], n.output().to_string())
}

fn hard_sigmoid(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let cfg = HardSigmoidConfig { alpha: n.attr_or("alpha", 0.2f32)?, beta: n.attr_or("beta", 0.5f32)? };
    unary(ctx, n, Op::HardSigmoid(cfg))
}

fn gelu(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let tanh = match n.attr_or("approximate", "none".to_string())?.as_str() {
        "none" => false,
        "tanh" => true,
        other => return Err(n.bad_attr("approximate", &format!("unknown value {other:?} (\"none\" or \"tanh\")"))),
    };
    unary(ctx, n, Op::Gelu(GeluConfig { tanh }))
}

/// A Cast of a computed (f32) value is the identity when it casts to a float type; computed
/// integer or boolean values do not exist in the IR.
fn cast(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let to: i64 = n.attr("to")?;
    if to as i32 != data_type::FLOAT && to as i32 != data_type::DOUBLE {
        return Err(n.unsupported(format!(
            "Cast of a computed value to ONNX type {to} (computed values are f32; integer and boolean tensors must be constants)"
        )));
    }
    unary(ctx, n, Op::Identity)
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
    if super::quant::narrow_by_clip(ctx, n, &cfg)? {
        return Ok(());
    }
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
    if axis == 0 {
        ctx.batch_guard(n, "a softmax over axis 0")?;
    }
    let cfg = SoftmaxConfig { axis };
    unary(ctx, n, if log { Op::LogSoftmax(cfg) } else { Op::Softmax(cfg) })
}
