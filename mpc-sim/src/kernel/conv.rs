//! 2-D convolution over Z_2^64 by im2col + GEMM.
//!
//! For each image and each group, the output `Og × (Ho·Wo)` is `W_g[Og × Cg·kh·kw] · col`, where
//! `col[(c, ki, kj), (oy, ox)]` is the input pixel under tap `(ki, kj)` of output `(oy, ox)` (zero in
//! the padding). Depthwise convolutions (one input channel per group) skip the GEMM and
//! accumulate shifted input rows tap by tap. `col` is built a band of output rows at a time so that it stays below
//! [`COL_BUDGET`] values whatever the image size. A 1×1 kernel with stride 1 and no padding reads
//! the input directly as the GEMM's right operand.

use ndarray::{Array4, ArrayView4};

use super::gemm::{self, MatRef};
use super::micro::Kernel;
use crate::error::{MpcError, Result, fmt_shape};

/// With one input channel per group and at most this many output channels per group, the
/// convolution streams over the input per tap instead of running im2col + a thin GEMM.
const SINGLE_CHANNEL_MAX_OG: usize = 4;

/// Most `u64` values of the im2col buffer at a time (4 MiB).
const COL_BUDGET: usize = 1 << 19;

/// Hyper-parameters of a 2-D convolution (ONNX `Conv` semantics).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct Conv2dParams {
    /// Step between output pixels, `[along H, along W]`.
    pub stride: [usize; 2],
    /// Zero padding `[top, left, bottom, right]` (ONNX `pads` order).
    pub padding: [usize; 4],
    /// Spacing between kernel taps, `[along H, along W]`.
    pub dilation: [usize; 2],
    /// Number of groups; input and output channels must both be multiples of it.
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams { stride: [1, 1], padding: [0; 4], dilation: [1, 1], groups: 1 }
    }
}

impl Conv2dParams {
    /// Output height and width for an input of `in_hw` and a kernel of `kernel_hw`.
    ///
    /// Fails if stride, dilation or groups are zero, a kernel side is zero, or the dilated kernel
    /// does not fit in the padded input.
    pub fn output_hw(&self, in_hw: [usize; 2], kernel_hw: [usize; 2]) -> Result<[usize; 2]> {
        self.check()?;
        let mut out = [0; 2];
        for d in 0..2 {
            let bad = |reason: String| MpcError::ShapeMismatch {
                op: "conv2d".into(),
                expected: reason,
                got: format!("input {} and kernel {} with {self:?}", fmt_shape(&in_hw), fmt_shape(&kernel_hw)),
            };
            if kernel_hw[d] == 0 {
                return Err(bad("a kernel of positive height and width".into()));
            }
            let padded = in_hw[d]
                .checked_add(self.padding[d])
                .and_then(|v| v.checked_add(self.padding[d + 2]))
                .ok_or_else(|| bad("padded input size that fits in usize".into()))?;
            let span = (kernel_hw[d] - 1)
                .checked_mul(self.dilation[d])
                .and_then(|v| v.checked_add(1))
                .ok_or_else(|| bad("dilated kernel size that fits in usize".into()))?;
            if span > padded {
                return Err(bad(format!("dilated kernel (extent {span}) no larger than the padded input ({padded})")));
            }
            out[d] = (padded - span) / self.stride[d] + 1;
        }
        Ok(out)
    }

    fn check(&self) -> Result<()> {
        let checks = [
            ("stride", self.stride[0].min(self.stride[1]), &self.stride[..]),
            ("dilation", self.dilation[0].min(self.dilation[1]), &self.dilation[..]),
            ("groups", self.groups, std::slice::from_ref(&self.groups)),
        ];
        for (name, min, vals) in checks {
            if min == 0 {
                return Err(MpcError::InvalidParameter {
                    name,
                    value: format!("{vals:?}"),
                    reason: "conv2d: must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}

/// 2-D convolution, wrapping: input `N×C×H×W`, weight `O×(C/groups)×kh×kw`, output `N×O×Ho×Wo`.
///
/// Runs on [`Kernel::best`]. Fails with [`MpcError::ShapeMismatch`] (naming `conv2d` and the
/// shapes) when the shapes do not fit together, and [`MpcError::InvalidParameter`] for a zero
/// stride, dilation or group count.
pub fn conv2d(input: ArrayView4<u64>, weight: ArrayView4<u64>, p: &Conv2dParams) -> Result<Array4<u64>> {
    conv2d_with(Kernel::best(), input, weight, p)
}

/// [`conv2d`] on a chosen kernel (fails with [`MpcError::InvalidParameter`] if the CPU lacks it).
pub fn conv2d_with(
    kernel: Kernel,
    input: ArrayView4<u64>,
    weight: ArrayView4<u64>,
    p: &Conv2dParams,
) -> Result<Array4<u64>> {
    conv2d_threads(kernel, input, weight, p, 1)
}

/// Output channels per thread below which [`conv2d_threads`] does not split a group further.
const MIN_ROWS_PER_THREAD: usize = 16;

/// [`conv2d_with`] on up to `threads` threads: each group's output channels are split into
/// contiguous ranges, one per thread, each with its own im2col buffer (so the im2col work is
/// repeated per thread, a small fraction of the GEMM's). Same result for any `threads`.
pub fn conv2d_threads(
    kernel: Kernel,
    input: ArrayView4<u64>,
    weight: ArrayView4<u64>,
    p: &Conv2dParams,
    threads: usize,
) -> Result<Array4<u64>> {
    kernel.check_available()?;
    let (n, c, h, w) = input.dim();
    let (o, cg, kh, kw) = weight.dim();
    p.check()?;
    let g = p.groups;
    let mismatch = |expected: String| MpcError::ShapeMismatch {
        op: "conv2d".into(),
        expected,
        got: format!(
            "input {} (NCHW), weight {} (OIHW), groups {g}",
            fmt_shape(input.shape()),
            fmt_shape(weight.shape())
        ),
    };
    if c % g != 0 || o % g != 0 {
        return Err(mismatch(format!("input and output channels divisible by groups = {g}")));
    }
    if cg != c / g {
        return Err(mismatch(format!("weight with C/groups = {} input channels per group", c / g)));
    }
    let [ho, wo] = p.output_hw([h, w], [kh, kw])?;
    let og = o / g;
    let hw = h * w;
    let howo = ho.checked_mul(wo).ok_or_else(|| mismatch("an output that fits in memory".into()))?;
    let out_len = [n, o, howo].iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let out_len = out_len.ok_or_else(|| mismatch("an output that fits in memory".into()))?;
    let mut out = vec![0u64; out_len];
    if out_len == 0 {
        return Ok(Array4::from_shape_vec((n, o, ho, wo), out).expect("length matches shape"));
    }

    let x = input.as_standard_layout();
    let x = x.as_slice().expect("standard layout is contiguous");
    let wt = weight.as_standard_layout();
    let wt = wt.as_slice().expect("standard layout is contiguous");
    let kg = cg * kh * kw;
    let geom = Geom { kernel, cg, hw: [h, w], khw: [kh, kw], p: *p, howo: [ho, wo], kg };
    let parts = threads.clamp(1, (og / MIN_ROWS_PER_THREAD).max(1));
    let rows_per = og.div_ceil(parts);
    // One im2col buffer per part, reused for every image and group.
    let mut cols: Vec<Vec<u64>> = vec![Vec::new(); parts];

    for b in 0..n {
        for grp in 0..g {
            let x_g = &x[(b * c + grp * cg) * hw..(b * c + (grp + 1) * cg) * hw];
            let w_g = &wt[grp * og * kg..(grp + 1) * og * kg];
            let out_g = &mut out[(b * o + grp * og) * howo..(b * o + (grp + 1) * og) * howo];
            if cg == 1 && og <= SINGLE_CHANNEL_MAX_OG {
                for (oc, out_plane) in out_g.chunks_exact_mut(howo).enumerate() {
                    let taps = &w_g[oc * kg..(oc + 1) * kg];
                    single_channel(kernel, x_g, [h, w], taps, [kh, kw], p, [ho, wo], out_plane);
                }
                continue;
            }
            if parts == 1 {
                geom.rows(x_g, w_g, out_g, &mut cols[0]);
                continue;
            }
            std::thread::scope(|s| {
                let mut work = w_g.chunks(rows_per * kg).zip(out_g.chunks_mut(rows_per * howo)).zip(cols.iter_mut());
                let first = work.next();
                for ((w_part, out_part), col) in work {
                    s.spawn(move || geom.rows(x_g, w_part, out_part, col));
                }
                if let Some(((w_part, out_part), col)) = first {
                    geom.rows(x_g, w_part, out_part, col);
                }
            });
        }
    }
    Ok(Array4::from_shape_vec((n, o, ho, wo), out).expect("length matches shape"))
}

/// The shape of one group's convolution.
#[derive(Clone, Copy)]
struct Geom {
    kernel: Kernel,
    cg: usize,
    hw: [usize; 2],
    khw: [usize; 2],
    p: Conv2dParams,
    howo: [usize; 2],
    /// `cg·kh·kw`: the GEMM's shared dimension.
    kg: usize,
}

impl Geom {
    /// `out[Og' × Ho·Wo] = w[Og' × kg] · col(x_g)` for a range of `Og'` output channels of a group.
    /// `col` is the im2col buffer, grown as needed.
    fn rows(&self, x_g: &[u64], w: &[u64], out: &mut [u64], col: &mut Vec<u64>) {
        let Geom { kernel, cg, hw: [h, w_in], khw, p, howo: [ho, wo], kg } = *self;
        let rows = w.len() / kg;
        let howo = ho * wo;
        let w_m = MatRef { data: w, rs: kg, cs: 1 };
        if khw == [1, 1] && p.stride == [1, 1] && p.padding == [0; 4] {
            let x_m = MatRef { data: x_g, rs: h * w_in, cs: 1 };
            gemm::run(kernel, rows, kg, howo, w_m, x_m, out, howo, false);
            return;
        }
        // Output rows per im2col band, so that the band holds at most COL_BUDGET values.
        let band = (COL_BUDGET / (kg * wo).max(1)).clamp(1, ho);
        if col.len() < kg * band * wo {
            col.resize(kg * band * wo, 0);
        }
        for oy0 in (0..ho).step_by(band) {
            let nrows = band.min(ho - oy0);
            let ncols = nrows * wo;
            let col = &mut col[..kg * ncols];
            im2col(x_g, [cg, h, w_in], khw, &p, oy0..oy0 + nrows, wo, col);
            let col_m = MatRef { data: col, rs: ncols, cs: 1 };
            gemm::run(kernel, rows, kg, ncols, w_m, col_m, &mut out[oy0 * wo..], howo, false);
        }
    }
}

/// Fills `col[(c·kh + ki)·kw + kj, t·wo + ox]` with the input pixel under tap `(ki, kj)` of output
/// `(oy_range.start + t, ox)`, or zero where that tap falls into the padding.
fn im2col(
    x: &[u64],
    [cg, h, w]: [usize; 3],
    [kh, kw]: [usize; 2],
    p: &Conv2dParams,
    oy_range: std::ops::Range<usize>,
    wo: usize,
    col: &mut [u64],
) {
    let ncols = oy_range.len() * wo;
    let [sh, sw] = p.stride;
    let [dh, dw] = p.dilation;
    let (pt, pl) = (p.padding[0], p.padding[1]);
    let mut rows = col.chunks_exact_mut(ncols);
    for ci in 0..cg {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let dst = rows.next().expect("col holds cg·kh·kw rows");
                let (lo, hi, tap) = valid_columns(kj * dw, pl, sw, w, wo);
                for (t, oy) in oy_range.clone().enumerate() {
                    let drow = &mut dst[t * wo..(t + 1) * wo];
                    let iy = (oy * sh + ki * dh) as isize - pt as isize;
                    if iy < 0 || iy >= h as isize {
                        drow.fill(0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    drow[..lo].fill(0);
                    drow[hi..].fill(0);
                    if hi == lo {
                        continue;
                    }
                    let first = lo * sw + tap - pl;
                    if sw == 1 {
                        drow[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                    } else {
                        for (d, s) in drow[lo..hi].iter_mut().zip(src[first..].iter().step_by(sw)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// For a tap at horizontal offset `tap` (= kj·dilation) under left padding `pl` and stride `sw`,
/// output column `ox` reads input column `ox·sw + tap - pl`. Returns `(lo, hi, tap)` such that this
/// column lies inside `0..w` exactly for `ox` in `lo..hi` (`hi >= lo`, both at most `wo`).
fn valid_columns(tap: usize, pl: usize, sw: usize, w: usize, wo: usize) -> (usize, usize, usize) {
    let lo = pl.saturating_sub(tap).div_ceil(sw).min(wo);
    let hi = if tap >= w + pl { 0 } else { ((w + pl - 1 - tap) / sw + 1).min(wo) };
    (lo, hi.max(lo), tap)
}

/// One output plane of a convolution with one input channel per group (depthwise, possibly with
/// a channel multiplier): `out += Σ_taps w[tap] · shifted input`, a streaming loop per tap and
/// output row instead of im2col + a one-row GEMM. `out` must be zero on entry.
#[allow(clippy::too_many_arguments)]
fn single_channel(
    kernel: Kernel,
    plane: &[u64],
    hw: [usize; 2],
    taps: &[u64],
    khw: [usize; 2],
    p: &Conv2dParams,
    howo: [usize; 2],
    out: &mut [u64],
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => {
            assert!(kernel.is_available(), "AVX-512 kernel requested on a CPU without it");
            // SAFETY: AVX-512F/DQ support was just checked.
            unsafe { single_channel_avx512(plane, hw, taps, khw, p, howo, out) }
        }
        _ => single_channel_body(plane, hw, taps, khw, p, howo, out),
    }
}

/// [`single_channel_body`] compiled with AVX-512 enabled (vectorised `vpmullq` rows).
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn single_channel_avx512(
    plane: &[u64],
    hw: [usize; 2],
    taps: &[u64],
    khw: [usize; 2],
    p: &Conv2dParams,
    howo: [usize; 2],
    out: &mut [u64],
) {
    single_channel_body(plane, hw, taps, khw, p, howo, out)
}

/// The body of [`single_channel`], inlined into a plain and an AVX-512 wrapper so LLVM can
/// vectorise the row loop with whatever the wrapper enables.
#[inline(always)]
fn single_channel_body(
    plane: &[u64],
    [h, w]: [usize; 2],
    taps: &[u64],
    [kh, kw]: [usize; 2],
    p: &Conv2dParams,
    [ho, wo]: [usize; 2],
    out: &mut [u64],
) {
    let [sh, sw] = p.stride;
    let [dh, dw] = p.dilation;
    let (pt, pl) = (p.padding[0], p.padding[1]);
    for ki in 0..kh {
        for kj in 0..kw {
            let wv = taps[ki * kw + kj];
            let (lo, hi, tap) = valid_columns(kj * dw, pl, sw, w, wo);
            if hi == lo {
                continue;
            }
            let first = lo * sw + tap - pl;
            for oy in 0..ho {
                let iy = oy * sh + ki * dh;
                if iy < pt || iy - pt >= h {
                    continue;
                }
                let src = &plane[(iy - pt) * w..(iy - pt + 1) * w];
                let dst = &mut out[oy * wo + lo..oy * wo + hi];
                if sw == 1 {
                    for (d, s) in dst.iter_mut().zip(&src[first..first + (hi - lo)]) {
                        *d = d.wrapping_add(wv.wrapping_mul(*s));
                    }
                } else {
                    for (d, s) in dst.iter_mut().zip(src[first..].iter().step_by(sw)) {
                        *d = d.wrapping_add(wv.wrapping_mul(*s));
                    }
                }
            }
        }
    }
}
