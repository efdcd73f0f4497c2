//! Max, average and global average pooling. Asymmetric padding becomes an explicit pad (with −∞
//! for max pooling; for average pooling a pooled validity map supplies the divisor).

use masq_ir::{Node, PoolConfig};
use tch::{Kind, Tensor};

use super::{mismatch, unsupported};
use crate::error::Result;

fn symmetric(c: &PoolConfig) -> Option<[i64; 2]> {
    let [pt, pl, pb, pr] = c.padding.map(|p| p as i64);
    // PyTorch also requires padding at most half the kernel.
    let fits = 2 * pt <= c.kernel[0] as i64 && 2 * pl <= c.kernel[1] as i64;
    (pt == pb && pl == pr && fits).then_some([pt, pl])
}

pub(super) fn max_pool(node: &Node, c: &PoolConfig, x: &Tensor) -> Result<Tensor> {
    if x.dim() != 4 {
        return Err(mismatch(node, "[N, C, H, W]", x));
    }
    let k = c.kernel.map(|v| v as i64);
    let s = c.stride.map(|v| v as i64);
    let d = c.dilation.map(|v| v as i64);
    match symmetric(c) {
        Some(p) => Ok(x.f_max_pool2d(k, s, p, d, c.ceil_mode)?),
        None => {
            let [pt, pl, pb, pr] = c.padding.map(|p| p as i64);
            let xp = x.f_pad([pl, pr, pt, pb], "constant", f64::NEG_INFINITY)?;
            Ok(xp.f_max_pool2d(k, s, [0, 0], d, c.ceil_mode)?)
        }
    }
}

pub(super) fn avg_pool(node: &Node, c: &PoolConfig, x: &Tensor) -> Result<Tensor> {
    if x.dim() != 4 {
        return Err(mismatch(node, "[N, C, H, W]", x));
    }
    if c.dilation != [1, 1] {
        return Err(unsupported(node, "dilated average pooling"));
    }
    let k = c.kernel.map(|v| v as i64);
    let s = c.stride.map(|v| v as i64);
    if let Some(p) = symmetric(c) {
        return Ok(x.f_avg_pool2d(k, s, p, c.ceil_mode, c.count_include_pad, None::<i64>)?);
    }
    let [pt, pl, pb, pr] = c.padding.map(|p| p as i64);
    let xp = x.f_constant_pad_nd([pl, pr, pt, pb])?;
    // With no implicit padding, PyTorch divides by the window clipped to the (explicitly padded)
    // input: the count_include_pad rule.
    let sums = xp.f_avg_pool2d(k, s, [0, 0], c.ceil_mode, true, None::<i64>)?;
    if c.count_include_pad {
        return Ok(sums);
    }
    let size = x.size();
    let ones =
        Tensor::f_ones([1, 1, size[2], size[3]], (Kind::Float, x.device()))?.f_constant_pad_nd([pl, pr, pt, pb])?;
    let frac = ones.f_avg_pool2d(k, s, [0, 0], c.ceil_mode, true, None::<i64>)?;
    Ok(sums.f_div(&frac)?)
}

pub(super) fn global_avg_pool(node: &Node, x: &Tensor) -> Result<Tensor> {
    if x.dim() < 3 {
        return Err(mismatch(node, "[N, C, spatial...]", x));
    }
    let dims: Vec<i64> = (2..x.dim() as i64).collect();
    Ok(x.f_mean_dim(dims.as_slice(), true, Kind::Float)?)
}
