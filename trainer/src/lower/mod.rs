//! Lowering of IR ops to tch ops (with autograd), one file per op family, matched exhaustively so
//! a new IR op cannot be forgotten.

mod activation;
mod conv;
mod elementwise;
mod linear;
pub(crate) mod masked;
mod norm;
mod pool;
mod shape_ops;

use masq_ir::{Node, Op, QuantParams};
use tch::Tensor;

use crate::error::{Result, TrainerError};

/// What lowering reads from the model it runs in (implemented by [`crate::model::TchModel`]):
/// parameters, buffers and masks by IR name, the device, and BatchNorm's momentum.
pub trait Params {
    fn tensor(&self, name: &str) -> Option<&Tensor>;
    /// A `MaskedAct` mask as a tensor, by IR name.
    fn mask(&self, name: &str) -> Option<&Tensor>;
    fn device(&self) -> tch::Device;
    fn bn_momentum(&self) -> f64;
    /// The grid of a quantized weight (`Graph::weight_quant`), if it is one.
    fn weight_quant(&self, _name: &str) -> Option<QuantParams> {
        None
    }
}

pub(crate) fn param<'a>(model: &'a dyn Params, node: &Node, name: &str) -> Result<&'a Tensor> {
    model.tensor(name).ok_or_else(|| TrainerError::MissingValue { node: node.name.clone(), input: name.to_string() })
}

/// A layer's weight as the forward pass uses it: fake-quantized onto its grid when the weight is
/// quantized (straight-through: the f32 shadow weight gets the gradient, docs/ALGORITHMS.md §7),
/// else the parameter itself.
pub(crate) fn weight(model: &dyn Params, node: &Node, name: &str) -> Result<Tensor> {
    let w = param(model, node, name)?;
    Ok(match model.weight_quant(name) {
        Some(q) => w.f_fake_quantize_per_tensor_affine(
            f64::from(q.scale),
            i64::from(q.zero_point),
            i64::from(q.qmin),
            i64::from(q.qmax),
        )?,
        None => w.shallow_clone(),
    })
}

pub(crate) fn mismatch(node: &Node, expected: impl Into<String>, got: &Tensor) -> TrainerError {
    TrainerError::ShapeMismatch {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        expected: expected.into(),
        got: got.size(),
    }
}

pub(crate) fn unsupported(node: &Node, reason: impl Into<String>) -> TrainerError {
    TrainerError::Unsupported { node: node.name.clone(), op: node.op.name().to_string(), reason: reason.into() }
}

/// Evaluate one node on its inputs; `train` selects BatchNorm's training mode. (A model's
/// `ActHook` takes over `MaskedAct` nodes before this is called.)
pub fn lower_node(model: &dyn Params, node: &Node, ins: &[&Tensor], train: bool) -> Result<Tensor> {
    let x = ins[0];
    match &node.op {
        Op::Conv(c) => conv::conv2d(model, node, c, x),
        Op::Gemm(c) => linear::gemm(model, node, c, x),
        Op::MatMul(_) => linear::matmul(node, x, ins[1]),
        Op::Add(_) => elementwise::binary(node, x, ins[1], |a, b| a.f_add(b)),
        Op::Sub(_) => elementwise::binary(node, x, ins[1], |a, b| a.f_sub(b)),
        Op::Mul(_) => elementwise::binary(node, x, ins[1], |a, b| a.f_mul(b)),
        Op::Div(_) => elementwise::binary(node, x, ins[1], |a, b| a.f_div(b)),
        Op::Pow(_) => elementwise::binary(node, x, ins[1], |a, b| a.f_pow(b)),
        Op::Sigmoid => Ok(x.f_sigmoid()?),
        Op::HardSigmoid(c) => activation::hard_sigmoid(x, c),
        Op::HardSwish => activation::hard_swish(x),
        Op::Tanh => Ok(x.f_tanh()?),
        Op::Erf => Ok(x.f_erf()?),
        Op::Gelu(c) => activation::gelu(x, c),
        Op::Exp => Ok(x.f_exp()?),
        Op::Sqrt => Ok(x.f_sqrt()?),
        Op::Reciprocal => Ok(x.f_reciprocal()?),
        Op::ReduceMean(c) => activation::reduce(x, c, true),
        Op::ReduceSum(c) => activation::reduce(x, c, false),
        Op::LayerNorm(c) => activation::layer_norm(model, node, c, x),
        Op::Relu => Ok(x.f_relu()?),
        Op::Clip(c) => elementwise::clip(x, c),
        Op::LeakyRelu(c) => elementwise::leaky_relu(x, c.alpha),
        Op::BatchNorm(c) => norm::batch_norm(model, node, c, x, train),
        Op::MaxPool(c) => pool::max_pool(node, c, x),
        Op::AveragePool(c) => pool::avg_pool(node, c, x),
        Op::GlobalAveragePool => pool::global_avg_pool(node, x),
        Op::Flatten(c) => shape_ops::flatten(node, c, x),
        Op::Reshape(c) => shape_ops::reshape(node, c, x),
        Op::Transpose(c) => shape_ops::transpose(node, c, x),
        Op::Concat(c) => shape_ops::concat(node, c, ins),
        Op::Pad(c) => shape_ops::pad(node, c, x),
        Op::Slice(c) => shape_ops::slice(node, c, x),
        Op::Gather(c) => shape_ops::gather(node, c, x),
        Op::Identity => Ok(x.shallow_clone()),
        // Straight-through: libtorch's fake quantization passes the gradient inside [qmin, qmax].
        Op::FakeQuant(q) => Ok(x.f_fake_quantize_per_tensor_affine(
            f64::from(q.scale),
            i64::from(q.zero_point),
            i64::from(q.qmin),
            i64::from(q.qmax),
        )?),
        Op::Softmax(c) => elementwise::softmax(node, c, x, false),
        Op::LogSoftmax(c) => elementwise::softmax(node, c, x, true),
        Op::MaskedAct(c) => masked::masked_act(model, node, c, x),
    }
}
