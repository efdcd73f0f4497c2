//! Conv via im2col and a matrix product.

use ndarray::{Array2, Array4, ArrayD, Axis, Ix4, s};

use masq_ir::shape::{check_elements, window_out};
use masq_ir::{ConvConfig, Graph, Node};
use masq_ir::{IrError, Result};

pub(super) fn as4<'a>(node: &Node, x: &'a ArrayD<f32>) -> Result<ndarray::ArrayView4<'a, f32>> {
    x.view().into_dimensionality::<Ix4>().map_err(|_| IrError::ShapeMismatch {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        expected: "[N, C, H, W]".to_string(),
        got: x.shape().to_vec(),
    })
}

pub(super) fn conv2d(graph: &Graph, node: &Node, c: &ConvConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let x = as4(node, x)?;
    let w = graph.initializer(node, &c.weight)?;
    let w = as4(node, w)?;
    let (n, cin, h, wd) = x.dim();
    let (cout, cg, kh, kw) = w.dim();
    let g = c.groups;
    let bad = || IrError::ShapeMismatch {
        node: node.name.clone(),
        op: "Conv".to_string(),
        expected: format!("C = {} for weight {:?}", cg.saturating_mul(g), w.shape()),
        got: x.shape().to_vec(),
    };
    if g == 0 || cg.checked_mul(g) != Some(cin) || cout % g != 0 {
        return Err(bad());
    }
    let og = cout / g;
    let [pt, pl, pb, pr] = c.padding;
    let oh = window_out(h, (pt, pb), kh, c.stride[0], c.dilation[0], false).ok_or_else(bad)?;
    let ow = window_out(wd, (pl, pr), kw, c.stride[1], c.dilation[1], false).ok_or_else(bad)?;
    let bias = match &c.bias {
        Some(b) => Some(graph.initializer(node, b)?),
        None => None,
    };
    // Both buffers are bounded by masq's tensor limit before they are allocated.
    let what = || format!("node {} (Conv): output", node.name);
    check_elements(what, &[n, cout, oh, ow])?;
    let k = cg * kh * kw;
    check_elements(|| format!("node {} (Conv): im2col buffer", node.name), &[k, oh, ow])?;
    let mut out = Array4::<f32>::zeros((n, cout, oh, ow));
    let mut cols = Array2::<f32>::zeros((k, oh * ow));
    for b in 0..n {
        for gi in 0..g {
            cols.fill(0.0);
            for ci in 0..cg {
                let plane = x.slice(s![b, gi * cg + ci, .., ..]);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let row = (ci * kh + ky) * kw + kx;
                        let mut dst = cols.row_mut(row);
                        let dst = dst.as_slice_mut().expect("fresh array is contiguous");
                        for oy in 0..oh {
                            let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize - pt as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for ox in 0..ow {
                                let ix = (ox * c.stride[1] + kx * c.dilation[1]) as isize - pl as isize;
                                if ix >= 0 && ix < wd as isize {
                                    dst[oy * ow + ox] = plane[[iy as usize, ix as usize]];
                                }
                            }
                        }
                    }
                }
            }
            let wg = w.slice(s![gi * og..(gi + 1) * og, .., .., ..]);
            let wg = wg.to_shape((og, k)).expect("weight slice reshapes");
            let y = wg.dot(&cols);
            let mut dst = out.slice_mut(s![b, gi * og..(gi + 1) * og, .., ..]);
            for (o, row) in y.axis_iter(Axis(0)).enumerate() {
                let add = bias.map(|t| t[o + gi * og]).unwrap_or(0.0);
                let mut plane = dst.index_axis_mut(Axis(0), o);
                for (d, v) in plane.iter_mut().zip(row.iter()) {
                    *d = v + add;
                }
            }
        }
    }
    Ok(out.into_dyn())
}
