//! The closed set of ops, one typed config struct per op.
//!
//! Layout is NCHW everywhere. Parameters of Conv, Gemm, BatchNorm and MaskedAct live in the graph's
//! initializer maps and are named by the config; element-wise binary ops take both operands as node
//! inputs (either may be an initializer), with numpy broadcasting.

use serde::{Deserialize, Serialize};

/// 2-D convolution. Weight `[out, in/groups, kh, kw]`, optional bias `[out]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvConfig {
    pub weight: String,
    pub bias: Option<String>,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, left, bottom, right
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// Fully connected layer normalised to `y = x · Wᵀ + b`, weight `[out, in]`, input `[N, in]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmConfig {
    pub weight: String,
    pub bias: Option<String>,
}

/// `y = a · b` with numpy matmul semantics; inputs are the node's two inputs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MatMulConfig {}

/// Element-wise binary op with numpy broadcasting; inputs are the node's two inputs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BinaryConfig {}

/// `min(max(x, min), max)`; a missing bound is not applied.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClipConfig {
    pub min: Option<f32>,
    pub max: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakyReluConfig {
    pub alpha: f32,
}

/// Inference-mode batch normalisation over axis 1; all four tensors have shape `[C]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNormConfig {
    pub scale: String,
    pub bias: String,
    pub mean: String,
    pub var: String,
    pub epsilon: f32,
}

/// Max or average pooling over H and W.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolConfig {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, left, bottom, right
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
    /// Average pooling only: whether padded zeros count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlattenConfig {
    pub axis: usize,
}

/// ONNX Reshape semantics with a constant target: `0` copies the input dimension, `-1` is inferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshapeConfig {
    pub shape: Vec<i64>,
}

/// Axis permutation. Restricted: the batch axis must stay first (`perm[0] == 0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransposeConfig {
    pub perm: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcatConfig {
    pub axis: usize,
}

/// Constant padding: `pads[i] = (before, after)` for axis `i` (one entry per input axis).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PadConfig {
    pub pads: Vec<(usize, usize)>,
    pub value: f32,
}

/// Strided slice with positive steps; `end` is clamped to the axis length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceConfig {
    pub axes: Vec<usize>,
    pub starts: Vec<usize>,
    pub ends: Vec<usize>,
    pub steps: Vec<usize>,
}

/// ONNX Gather with constant, in-range indices: picks `indices` (of shape `indices_shape`) along
/// `axis`; the output shape is `x[..axis] ++ indices_shape ++ x[axis + 1..]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatherConfig {
    pub axis: usize,
    pub indices: Vec<usize>,
    pub indices_shape: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftmaxConfig {
    pub axis: usize,
}

/// `clip(alpha·x + beta, 0, 1)` (ONNX defaults alpha = 0.2, beta = 0.5; PyTorch's Hardsigmoid is
/// alpha = 1/6, beta = 0.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardSigmoidConfig {
    pub alpha: f32,
    pub beta: f32,
}

/// `x·Φ(x)` exactly (`tanh: false`) or by the tanh approximation
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeluConfig {
    pub tanh: bool,
}

/// Reduction over `axes` (sorted, distinct, in range); `keepdims` keeps them as length 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReduceConfig {
    pub axes: Vec<usize>,
    pub keepdims: bool,
}

/// Layer normalisation over the axes from `axis` on: `(x − mean) / √(var + ε) · scale + bias`,
/// with `scale` and `bias` f32 initializers of the normalised shape (a missing one is 1 or 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerNormConfig {
    pub axis: usize,
    pub epsilon: f32,
    pub scale: Option<String>,
    pub bias: Option<String>,
}

/// Per-tensor linear quantization, ONNX QuantizeLinear then DequantizeLinear:
/// `q = clamp(round(x / scale) + zero_point, qmin, qmax)`, `y = (q − zero_point) · scale`, with
/// round-half-to-even (ONNX's rule). The same parameters describe a quantized weight
/// ([`Graph::weight_quant`](crate::Graph::weight_quant)). docs/ALGORITHMS.md §7.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
    pub qmin: i32,
    pub qmax: i32,
}

impl QuantParams {
    /// Signed `bits`-bit linear quantization with step `2^(−sf)` and zero point 0 (§7).
    pub fn linear(bits: u32, sf: i32) -> Self {
        let half = 1i64 << (bits.clamp(2, 31) - 1);
        QuantParams { scale: 2f32.powi(-sf), zero_point: 0, qmin: -half as i32, qmax: (half - 1) as i32 }
    }

    /// Bits of the integer range: `⌈log2(qmax − qmin + 1)⌉`.
    pub fn bits(&self) -> u32 {
        let levels = (self.qmax as i64 - self.qmin as i64 + 1).max(1) as u64;
        64 - (levels - 1).leading_zeros()
    }

    /// The quantized integer of `x` (ONNX QuantizeLinear: round half to even, saturate).
    pub fn quantize(&self, x: f32) -> i32 {
        let q = (x / self.scale).round_ties_even() + self.zero_point as f32;
        q.clamp(self.qmin as f32, self.qmax as f32) as i32
    }

    /// The real value of a quantized integer (ONNX DequantizeLinear).
    pub fn dequantize(&self, q: i32) -> f32 {
        (q as i64 - self.zero_point as i64) as f32 * self.scale
    }

    /// `dequantize(quantize(x))`.
    pub fn apply(&self, x: f32) -> f32 {
        self.dequantize(self.quantize(x))
    }

    /// The largest magnitude a dequantized value can take.
    pub fn max_abs(&self) -> f32 {
        self.dequantize(self.qmin).abs().max(self.dequantize(self.qmax).abs())
    }

    /// Checks the parameters: a finite positive scale and `qmin ≤ zero_point ≤ qmax`.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!("scale {} is not a finite positive number", self.scale));
        }
        if !(self.qmin <= self.zero_point && self.zero_point <= self.qmax) {
            return Err(format!("zero point {} outside [{}, {}]", self.zero_point, self.qmin, self.qmax));
        }
        Ok(())
    }
}

/// What a masked activation computes where its mask is 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replacement {
    /// `g(x) = x`.
    Identity,
    /// `g(x) = c2·x² + c1·x + c0` with per-channel coefficients (f32 initializers of shape `[C]`).
    Poly { c2: String, c1: String, c0: String },
}

/// Per-element ReLU gate: `y = mask ? kept(x) : g(x)` with `kept(x) = relu(x)`, or
/// `min(relu(x), cap)` for a capped site (a ReLU6 site has `cap = 6`). The mask is a u8 tensor of
/// shape `[C, H, W]` in the graph's `masks` map (1 = keep the activation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskedActConfig {
    pub mask: String,
    pub replacement: Replacement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<f32>,
}

/// The closed set of ops. Every consumer matches this exhaustively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "config")]
pub enum Op {
    Conv(ConvConfig),
    Gemm(GemmConfig),
    MatMul(MatMulConfig),
    Add(BinaryConfig),
    Sub(BinaryConfig),
    Mul(BinaryConfig),
    /// Division. Under 2PC the divisor (second input) must be an initializer.
    Div(BinaryConfig),
    /// `a^b` element-wise. Under 2PC only small constant integer exponents.
    Pow(BinaryConfig),
    Relu,
    Clip(ClipConfig),
    LeakyRelu(LeakyReluConfig),
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    HardSigmoid(HardSigmoidConfig),
    /// `x · clip(x/6 + 1/2, 0, 1)` (ONNX HardSwish).
    HardSwish,
    Tanh,
    Erf,
    Gelu(GeluConfig),
    Exp,
    Sqrt,
    Reciprocal,
    ReduceMean(ReduceConfig),
    ReduceSum(ReduceConfig),
    LayerNorm(LayerNormConfig),
    BatchNorm(BatchNormConfig),
    MaxPool(PoolConfig),
    AveragePool(PoolConfig),
    GlobalAveragePool,
    Flatten(FlattenConfig),
    Reshape(ReshapeConfig),
    Transpose(TransposeConfig),
    Concat(ConcatConfig),
    Pad(PadConfig),
    Slice(SliceConfig),
    Gather(GatherConfig),
    Identity,
    Softmax(SoftmaxConfig),
    LogSoftmax(SoftmaxConfig),
    MaskedAct(MaskedActConfig),
    /// Fake quantization of an activation (ONNX QuantizeLinear + DequantizeLinear).
    FakeQuant(QuantParams),
}

impl Op {
    /// The op's name as written in reports (matches the ONNX op type where there is one).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::Gemm(_) => "Gemm",
            Op::MatMul(_) => "MatMul",
            Op::Add(_) => "Add",
            Op::Sub(_) => "Sub",
            Op::Mul(_) => "Mul",
            Op::Div(_) => "Div",
            Op::Pow(_) => "Pow",
            Op::Relu => "Relu",
            Op::Clip(_) => "Clip",
            Op::LeakyRelu(_) => "LeakyRelu",
            Op::Sigmoid => "Sigmoid",
            Op::HardSigmoid(_) => "HardSigmoid",
            Op::HardSwish => "HardSwish",
            Op::Tanh => "Tanh",
            Op::Erf => "Erf",
            Op::Gelu(_) => "Gelu",
            Op::Exp => "Exp",
            Op::Sqrt => "Sqrt",
            Op::Reciprocal => "Reciprocal",
            Op::ReduceMean(_) => "ReduceMean",
            Op::ReduceSum(_) => "ReduceSum",
            Op::LayerNorm(_) => "LayerNormalization",
            Op::BatchNorm(_) => "BatchNormalization",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Flatten(_) => "Flatten",
            Op::Reshape(_) => "Reshape",
            Op::Transpose(_) => "Transpose",
            Op::Concat(_) => "Concat",
            Op::Pad(_) => "Pad",
            Op::Slice(_) => "Slice",
            Op::Gather(_) => "Gather",
            Op::Identity => "Identity",
            Op::Softmax(_) => "Softmax",
            Op::LogSoftmax(_) => "LogSoftmax",
            Op::MaskedAct(_) => "MaskedAct",
            Op::FakeQuant(_) => "FakeQuant",
        }
    }

    /// Names of the f32 initializers the config refers to (not counting node inputs).
    pub fn param_names(&self) -> Vec<&str> {
        match self {
            Op::Conv(c) => std::iter::once(c.weight.as_str()).chain(c.bias.as_deref()).collect(),
            Op::Gemm(c) => std::iter::once(c.weight.as_str()).chain(c.bias.as_deref()).collect(),
            Op::BatchNorm(c) => vec![&c.scale, &c.bias, &c.mean, &c.var],
            Op::MaskedAct(c) => match &c.replacement {
                Replacement::Identity => vec![],
                Replacement::Poly { c2, c1, c0 } => vec![c2, c1, c0],
            },
            Op::LayerNorm(c) => c.scale.iter().chain(&c.bias).map(String::as_str).collect(),
            Op::MatMul(_)
            | Op::Add(_)
            | Op::Sub(_)
            | Op::Mul(_)
            | Op::Div(_)
            | Op::Pow(_)
            | Op::Sigmoid
            | Op::HardSigmoid(_)
            | Op::HardSwish
            | Op::Tanh
            | Op::Erf
            | Op::Gelu(_)
            | Op::Exp
            | Op::Sqrt
            | Op::Reciprocal
            | Op::ReduceMean(_)
            | Op::ReduceSum(_)
            | Op::Relu
            | Op::Clip(_)
            | Op::LeakyRelu(_)
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::Flatten(_)
            | Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Concat(_)
            | Op::Pad(_)
            | Op::Slice(_)
            | Op::Gather(_)
            | Op::Identity
            | Op::Softmax(_)
            | Op::LogSoftmax(_)
            | Op::FakeQuant(_) => vec![],
        }
    }

    /// How many node inputs the op takes (`None`: one or more).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::MatMul(_) | Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Pow(_) => Some(2),
            Op::Concat(_) => None,
            _ => Some(1),
        }
    }
}
