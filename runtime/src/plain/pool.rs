//! Max, average and global average pooling.

use ndarray::{Array4, ArrayD};

use super::conv::as4;
use masq_ir::shape::window_out;
use masq_ir::{IrError, Result};
use masq_ir::{Node, PoolConfig};

fn pool(node: &Node, c: &PoolConfig, x: &ArrayD<f32>, max: bool) -> Result<ArrayD<f32>> {
    let x = as4(node, x)?;
    let (n, ch, h, w) = x.dim();
    let [pt, pl, pb, pr] = c.padding;
    let bad = || IrError::ShapeMismatch {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        expected: format!("spatial size at least the kernel {:?}", c.kernel),
        got: x.shape().to_vec(),
    };
    let oh = window_out(h, (pt, pb), c.kernel[0], c.stride[0], c.dilation[0], c.ceil_mode).ok_or_else(bad)?;
    let ow = window_out(w, (pl, pr), c.kernel[1], c.stride[1], c.dilation[1], c.ceil_mode).ok_or_else(bad)?;
    let mut out = Array4::<f32>::zeros((n, ch, oh, ow));
    for b in 0..n {
        for ci in 0..ch {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                    let mut inside = 0usize;
                    let mut in_padded = 0usize;
                    for ky in 0..c.kernel[0] {
                        let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize - pt as isize;
                        for kx in 0..c.kernel[1] {
                            let ix = (ox * c.stride[1] + kx * c.dilation[1]) as isize - pl as isize;
                            // Positions in the explicit padding count for count_include_pad; positions
                            // beyond it (ceil mode) never do.
                            if iy < h as isize + pb as isize && ix < w as isize + pr as isize {
                                in_padded += 1;
                            }
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = x[[b, ci, iy as usize, ix as usize]];
                            inside += 1;
                            if max {
                                acc = acc.max(v);
                            } else {
                                acc += v;
                            }
                        }
                    }
                    out[[b, ci, oy, ox]] = if max {
                        acc
                    } else {
                        let d = if c.count_include_pad { in_padded } else { inside };
                        if d == 0 { 0.0 } else { acc / d as f32 }
                    };
                }
            }
        }
    }
    Ok(out.into_dyn())
}

pub(super) fn max_pool(node: &Node, c: &PoolConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    pool(node, c, x, true)
}

pub(super) fn avg_pool(node: &Node, c: &PoolConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    pool(node, c, x, false)
}

pub(super) fn global_avg_pool(node: &Node, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    if x.ndim() < 3 {
        return Err(IrError::ShapeMismatch {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            expected: "[N, C, spatial...]".to_string(),
            got: x.shape().to_vec(),
        });
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let area: usize = x.shape()[2..].iter().product();
    let flat = x.to_shape((n, c, area)).expect("contiguous reshape");
    let mean = flat.sum_axis(ndarray::Axis(2)) / area as f32;
    let mut shape = vec![n, c];
    shape.extend(std::iter::repeat_n(1, x.ndim() - 2));
    Ok(mean.into_shape_with_order(shape).expect("sizes agree").into_dyn())
}
