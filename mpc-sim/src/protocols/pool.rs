//! Pooling: MaxPool from comparisons, AvgPool and GlobalAvgPool locally.
//!
//! ```text
//!   MaxPool, per tree level (ceil(log2 |window|) levels, one round each; two in compact mode):
//!     pair up the window's candidates (a, b):  max(a, b) = b + ReLU(a - b)
//!     all pairs of all windows go into one ReLU batch; an odd candidate passes through
//!   AvgPool: local window sum · round(2^f / count), then local truncation by f
//! ```
//! Padding is never compared: windows hold only their valid positions, so no "minus infinity"
//! constant is needed.

use ndarray::{ArrayD, IxDyn};

use super::ctx::Ctx;
use super::relu::cmp_words;
use super::trunc::truncate_word;
use crate::dealer::{CmpMode, Request};
use crate::error::{MpcError, Result, fmt_shape};
use crate::share::Share;
use crate::transport::Transport;

/// Window geometry of a 2-D pooling over NCHW tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, bincode::Encode, bincode::Decode)]
pub struct PoolParams {
    /// Window `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Padding `[top, left, bottom, right]`.
    pub padding: [usize; 4],
    /// Dilation `[dh, dw]`.
    pub dilation: [usize; 2],
}

impl PoolParams {
    /// A `k×k` window with stride `s` and no padding.
    pub fn square(k: usize, s: usize) -> Self {
        PoolParams { kernel: [k, k], stride: [s, s], padding: [0; 4], dilation: [1, 1] }
    }

    /// Output `[Ho, Wo]` for an input `[H, W]` (floor mode).
    pub fn output_hw(&self, h: usize, w: usize) -> Result<[usize; 2]> {
        let bad = |reason: &str| MpcError::InvalidParameter {
            name: "pool window",
            value: format!("{self:?} on {h}x{w}"),
            reason: reason.into(),
        };
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(bad("kernel, stride and dilation must be positive"));
        }
        let span = |k: usize, d: usize| d * (k - 1) + 1;
        let ph = h + self.padding[0] + self.padding[2];
        let pw = w + self.padding[1] + self.padding[3];
        let (sh, sw) = (span(self.kernel[0], self.dilation[0]), span(self.kernel[1], self.dilation[1]));
        if ph < sh || pw < sw {
            return Err(bad("window larger than the padded input"));
        }
        Ok([(ph - sh) / self.stride[0] + 1, (pw - sw) / self.stride[1] + 1])
    }

    /// Flat input offsets (within one H×W plane) of each output position's valid window elements,
    /// and the output `[Ho, Wo]`.
    pub fn windows(&self, h: usize, w: usize) -> Result<(Vec<Vec<usize>>, [usize; 2])> {
        let [ho, wo] = self.output_hw(h, w)?;
        let mut out = Vec::with_capacity(ho * wo);
        for oy in 0..ho {
            for ox in 0..wo {
                let mut win = Vec::with_capacity(self.kernel[0] * self.kernel[1]);
                for ky in 0..self.kernel[0] {
                    for kx in 0..self.kernel[1] {
                        let y = (oy * self.stride[0] + ky * self.dilation[0]) as isize - self.padding[0] as isize;
                        let x = (ox * self.stride[1] + kx * self.dilation[1]) as isize - self.padding[1] as isize;
                        if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                            win.push(y as usize * w + x as usize);
                        }
                    }
                }
                out.push(win);
            }
        }
        Ok((out, [ho, wo]))
    }
}

fn nchw(op: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match shape {
        &[n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(MpcError::ShapeMismatch { op: op.into(), expected: "[N, C, H, W]".into(), got: fmt_shape(shape) }),
    }
}

/// Sizes of the comparison batches a MaxPool makes, level by level.
fn maxpool_levels(window_lens: impl Iterator<Item = usize>, planes: usize) -> Vec<usize> {
    let mut lens: Vec<usize> = window_lens.collect();
    let mut levels = Vec::new();
    while lens.iter().any(|&l| l > 1) {
        levels.push(lens.iter().map(|l| l / 2).sum::<usize>() * planes);
        for l in lens.iter_mut() {
            *l = *l / 2 + *l % 2;
        }
    }
    levels
}

/// The preprocessing a MaxPool over `input_shape` (NCHW) asks for, in order.
pub fn maxpool_requests(input_shape: &[usize], p: &PoolParams, bits: u32, mode: CmpMode) -> Result<Vec<Request>> {
    let [n, c, h, w] = nchw("maxpool", input_shape)?;
    let (wins, _) = p.windows(h, w)?;
    Ok(maxpool_levels(wins.iter().map(Vec::len), n * c).into_iter().map(|n| Request::Cmp { n, bits, mode }).collect())
}

/// Max over each window (NCHW): `ceil(log2 |window|)` rounds of batched comparisons.
pub fn maxpool<T: Transport>(ctx: &mut Ctx<T>, x: &Share, p: &PoolParams, bits: u32, mode: CmpMode) -> Result<Share> {
    ctx.check_share("maxpool", x)?;
    let [n, c, h, w] = nchw("maxpool", x.shape())?;
    let (wins, [ho, wo]) = p.windows(h, w)?;
    let data = x.data().as_standard_layout();
    let data = data.as_slice().expect("standard layout");
    let planes = n * c;
    ctx.step("maxpool", planes * ho * wo, |ctx| {
        // cand[plane * windows + win] = candidate words of that window.
        let mut cand: Vec<Vec<u64>> = Vec::with_capacity(planes * wins.len());
        for pl in 0..planes {
            let base = pl * h * w;
            for win in &wins {
                cand.push(win.iter().map(|&i| data[base + i]).collect());
            }
        }
        let out = max_tree(cand, |diffs| cmp_words(ctx, diffs, bits, mode, true))?;
        Ok(Share::new(ctx.party(), ArrayD::from_shape_vec(IxDyn(&[n, c, ho, wo]), out).expect("shape")))
    })
}

/// The max of each candidate list as a tree of pairwise maxima, `max(a, b) = b + ReLU(a − b)`:
/// each level's differences go to `relu` in one batch (one call per level); an odd candidate
/// passes through. Words are ring elements (shares, or plain values for a clear-text probe).
pub fn max_tree(mut cand: Vec<Vec<u64>>, mut relu: impl FnMut(&[u64]) -> Result<Vec<u64>>) -> Result<Vec<u64>> {
    while cand.iter().any(|v| v.len() > 1) {
        let diffs: Vec<u64> = cand.iter().flat_map(|v| v.chunks_exact(2).map(|p| p[0].wrapping_sub(p[1]))).collect();
        let r = relu(&diffs)?;
        let mut at = 0;
        for v in cand.iter_mut() {
            let mut next = Vec::with_capacity(v.len() / 2 + 1);
            for pair in v.chunks_exact(2) {
                next.push(pair[1].wrapping_add(r[at]));
                at += 1;
            }
            if v.len() % 2 == 1 {
                next.push(*v.last().expect("odd length"));
            }
            *v = next;
        }
    }
    Ok(cand.into_iter().map(|v| v.first().copied().unwrap_or(0)).collect())
}

/// Average over each window (NCHW), locally. With `count_include_pad` the divisor is the full
/// window size, otherwise the number of valid positions.
pub fn avgpool<T: Transport>(ctx: &mut Ctx<T>, x: &Share, p: &PoolParams, count_include_pad: bool) -> Result<Share> {
    ctx.check_share("avgpool", x)?;
    let [n, c, h, w] = nchw("avgpool", x.shape())?;
    let (wins, [ho, wo]) = p.windows(h, w)?;
    let data = x.data().as_standard_layout();
    let data = data.as_slice().expect("standard layout");
    let fp = ctx.fixed_point();
    let f = fp.frac_bits();
    let party = ctx.party();
    let full = p.kernel[0] * p.kernel[1];
    ctx.step("avgpool", n * c * ho * wo, |_| {
        let mut out = Vec::with_capacity(n * c * ho * wo);
        for pl in 0..n * c {
            let base = pl * h * w;
            for win in &wins {
                let sum = win.iter().fold(0u64, |s, &i| s.wrapping_add(data[base + i]));
                let count = if count_include_pad { full } else { win.len().max(1) };
                out.push(truncate_word(party, sum.wrapping_mul(fp.encode(1.0 / count as f64)), f));
            }
        }
        Ok(Share::new(party, ArrayD::from_shape_vec(IxDyn(&[n, c, ho, wo]), out).expect("shape")))
    })
}

/// Mean over H×W (NCHW -> N×C×1×1), locally.
pub fn global_avgpool<T: Transport>(ctx: &mut Ctx<T>, x: &Share) -> Result<Share> {
    ctx.check_share("global_avgpool", x)?;
    let [_, _, h, w] = nchw("global_avgpool", x.shape())?;
    let p = PoolParams { kernel: [h, w], stride: [1, 1], padding: [0; 4], dilation: [1, 1] };
    avgpool(ctx, x, &p, true)
}
