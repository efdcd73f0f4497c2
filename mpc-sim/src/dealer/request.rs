//! What the online phase will ask the dealer for, in order, and the linear layers' bilinear
//! products ([`LinearKind`]: shapes and ring evaluation), which the dealer (to build `C = op(A, B)`),
//! the linear-layer protocol and the cost model all use.

use ndarray::{ArrayD, ArrayView4, Ix4, IxDyn};

use crate::error::{MpcError, Result, fmt_shape};
use crate::kernel::{self, Conv2dParams};

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

    /// Output shape of `op(W, x)` for an input of `input_shape`.
    pub fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        match self {
            LinearKind::Conv2d { weight_shape, params } => {
                let [o, cg, kh, kw] = *weight_shape;
                if input_shape.len() != 4 || input_shape[1] != cg * params.groups {
                    return Err(MpcError::ShapeMismatch {
                        op: "conv2d".into(),
                        expected: format!(
                            "[N, {}, H, W] for weight {:?}, groups {}",
                            cg * params.groups,
                            weight_shape,
                            params.groups
                        ),
                        got: fmt_shape(input_shape),
                    });
                }
                let [ho, wo] = params.output_hw([input_shape[2], input_shape[3]], [kh, kw])?;
                Ok(vec![input_shape[0], o, ho, wo])
            }
            LinearKind::MatMul { k, n } => {
                if input_shape.len() != 2 || input_shape[1] != *k {
                    return Err(MpcError::ShapeMismatch {
                        op: "matmul".into(),
                        expected: format!("[M, {k}]"),
                        got: fmt_shape(input_shape),
                    });
                }
                Ok(vec![input_shape[0], *n])
            }
        }
    }

    /// `op(w, x)` over the ring, with the fast kernels.
    pub fn apply(&self, w: &ArrayD<u64>, x: &ArrayD<u64>) -> Result<ArrayD<u64>> {
        self.apply_threads(w, x, 1)
    }

    /// [`LinearKind::apply`] on up to `threads` threads (convolutions split their output
    /// channels; a matrix product stays on one). Same result for any `threads`.
    pub fn apply_threads(&self, w: &ArrayD<u64>, x: &ArrayD<u64>, threads: usize) -> Result<ArrayD<u64>> {
        if w.shape() != self.weight_shape().as_slice() {
            return Err(MpcError::ShapeMismatch {
                op: "linear weight".into(),
                expected: fmt_shape(&self.weight_shape()),
                got: fmt_shape(w.shape()),
            });
        }
        let out_shape = self.output_shape(x.shape())?;
        match self {
            LinearKind::Conv2d { params, .. } => {
                let xs = x.as_standard_layout();
                let ws = w.as_standard_layout();
                let xv: ArrayView4<u64> = xs.view().into_dimensionality::<Ix4>().expect("checked rank");
                let wv: ArrayView4<u64> = ws.view().into_dimensionality::<Ix4>().expect("checked rank");
                Ok(kernel::conv2d_threads(kernel::Kernel::best(), xv, wv, params, threads)?.into_dyn())
            }
            LinearKind::MatMul { k, n } => {
                let m = x.shape()[0];
                let xs = x.as_standard_layout();
                let ws = w.as_standard_layout();
                let mut out = vec![0u64; m * n];
                kernel::gemm(
                    m,
                    *k,
                    *n,
                    xs.as_slice().expect("standard"),
                    ws.as_slice().expect("standard"),
                    &mut out,
                    false,
                )?;
                Ok(ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("shape matches"))
            }
        }
    }
}

/// How a secure comparison runs (see `docs/PROTOCOLS.md`, "Comparison modes").
///
/// - `OneRound`: one opening of `x + r` and a DCF with a two-word payload that gives shares of
///   `DReLU(x)` and `DReLU(x)·r` directly: 1 round, keys of `32·bits` bytes per party.
/// - `Compact`: a one-bit-output DCF with early termination gives XOR shares of `DReLU(x)`
///   masked by a dealer bit; a second opening of that bit (packed, 1/8 byte per element each way)
///   and a dealer-provided correlation finish the select: 2 rounds, keys of `16·(bits − 8) + 32`
///   bytes (935 at 64 bits).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "kebab-case")]
pub enum CmpMode {
    /// One round, large keys.
    #[default]
    OneRound,
    /// Two rounds, keys about half the size.
    Compact,
}

impl CmpMode {
    /// Both modes.
    pub const ALL: [CmpMode; 2] = [CmpMode::OneRound, CmpMode::Compact];

    /// CLI / report name.
    pub fn name(self) -> &'static str {
        match self {
            CmpMode::OneRound => "one-round",
            CmpMode::Compact => "compact",
        }
    }

    /// Online rounds of one batch of comparisons.
    pub fn rounds(self) -> u64 {
        match self {
            CmpMode::OneRound => 1,
            CmpMode::Compact => 2,
        }
    }
}

impl std::fmt::Display for CmpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CmpMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "one-round" => Ok(CmpMode::OneRound),
            "compact" => Ok(CmpMode::Compact),
            _ => Err(format!("unknown comparison mode {s:?} (expected one-round or compact)")),
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
    /// `n` comparisons (DReLU or ReLU) on `bits`-bit signed values, run in `mode`.
    Cmp { n: usize, bits: u32, mode: CmpMode },
    /// A masked activation layer: `relus` comparisons (in `mode`) and `squares` square pairs.
    MaskedAct { relus: usize, squares: usize, bits: u32, mode: CmpMode },
    /// Per-inference matrix triple of a linear layer for an input of `input_shape`.
    Linear { layer: LayerId, input_shape: Vec<usize> },
    /// A fresh matrix triple `(A, B, C = A·B)` per batch for a product of two secret tensors
    /// `[batch, m, k] · [batch, k, n]` (both masks fresh, nothing reused).
    MatMul { batch: usize, m: usize, k: usize, n: usize },
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
            Request::MatMul { .. } => "matmul",
        }
    }
}

/// Words of a [`Request::MatMul`]'s `A`, `B` and `C` (`batch·m·k`, `batch·k·n`, `batch·m·n`);
/// `None` when one of them overflows `usize`.
pub fn matmul_words(batch: usize, m: usize, k: usize, n: usize) -> Option<(usize, usize, usize)> {
    let words = |p: usize, q: usize| batch.checked_mul(p)?.checked_mul(q);
    Some((words(m, k)?, words(k, n)?, words(m, n)?))
}
