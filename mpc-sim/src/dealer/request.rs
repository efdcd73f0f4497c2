//! What the online phase will ask the dealer for, in order.

use crate::kernel::Conv2dParams;

/// Identifies a linear layer of a model (index in the model's list of linear layers).
pub type LayerId = usize;

/// The bilinear product a linear layer computes: `op(W, x)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, bincode::Encode, bincode::Decode)]
pub enum LinearKind {
    /// 2-D convolution, NCHW input, weight `[out, in/groups, kh, kw]`.
    Conv2d {
        /// Weight shape `[out, in/groups, kh, kw]`.
        weight_shape: [usize; 4],
        /// Stride, padding, dilation, groups.
        params: Conv2dParams,
    },
    /// `y[m×n] = x[m×k] · W[k×n]` (Gemm layers pass `Wᵀ`).
    MatMul {
        /// Inner dimension.
        k: usize,
        /// Output features.
        n: usize,
    },
}

impl LinearKind {
    /// Shape of the weight operand.
    pub fn weight_shape(&self) -> Vec<usize> {
        match self {
            LinearKind::Conv2d { weight_shape, .. } => weight_shape.to_vec(),
            LinearKind::MatMul { k, n } => vec![*k, *n],
        }
    }
}

/// One request for correlated randomness. The online protocols consume material in exactly
/// this order; asking for something else is a [`crate::MpcError::PreprocessingMismatch`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, bincode::Encode, bincode::Decode)]
pub enum Request {
    /// Element-wise Beaver triples `(a, b, ab)` for `n` products.
    Mul { n: usize },
    /// Square pairs `(a, a²)` for `n` squares.
    Square { n: usize },
    /// `n` comparisons (DReLU or ReLU) on `bits`-bit signed values.
    Cmp { n: usize, bits: u32 },
    /// A masked activation layer: `relus` comparisons and `squares` square pairs, used in one round.
    MaskedAct { relus: usize, squares: usize, bits: u32 },
    /// Per-inference matrix triple of a linear layer for an input of `input_shape`.
    Linear { layer: LayerId, input_shape: Vec<usize> },
}

impl Request {
    /// Short name for error messages and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Mul { .. } => "mul",
            Request::Square { .. } => "square",
            Request::Cmp { .. } => "cmp",
            Request::MaskedAct { .. } => "masked_act",
            Request::Linear { .. } => "linear",
        }
    }
}
