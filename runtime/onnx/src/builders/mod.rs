//! The op registry: ONNX op type -> builder function, one file per op family.

mod conv;
mod elementwise;
mod gather;
mod linear;
mod masked;
mod norm;
mod pool;
mod quant;
mod reduce;
mod shape;

use std::collections::HashMap;

use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;

/// Translates one ONNX node into IR nodes.
pub(crate) type BuildFn = fn(&mut Ctx, &OnnxNode) -> Result<()>;

/// The registry.
pub(crate) fn registry() -> HashMap<&'static str, BuildFn> {
    let mut r: HashMap<&'static str, BuildFn> = HashMap::new();
    conv::register(&mut r);
    linear::register(&mut r);
    elementwise::register(&mut r);
    gather::register(&mut r);
    norm::register(&mut r);
    pool::register(&mut r);
    reduce::register(&mut r);
    shape::register(&mut r);
    masked::register(&mut r);
    quant::register(&mut r);
    r
}

/// 2-D window geometry shared by Conv and the pools: kernel, strides, dilations and pads
/// `[top, left, bottom, right]`, with `auto_pad` resolved against the input size.
pub(crate) struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: [usize; 4],
}

fn pair(n: &OnnxNode, attr: &str, v: Option<Vec<i64>>, default: usize) -> Result<[usize; 2]> {
    match v {
        None => Ok([default, default]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(n.bad_attr(attr, &format!("expected two positive values for 2-D input, got {v:?}"))),
    }
}

pub(crate) fn window(n: &OnnxNode, input_hw: [usize; 2], kernel: [usize; 2]) -> Result<Window> {
    let stride = pair(n, "strides", n.attr_opt("strides")?, 1)?;
    let dilation = pair(n, "dilations", n.attr_opt("dilations")?, 1)?;
    let auto_pad = n.attr_or("auto_pad", "NOTSET".to_string())?;
    let padding = match auto_pad.as_str() {
        "NOTSET" | "" => match n.attr_opt::<Vec<i64>>("pads")? {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => return Err(n.bad_attr("pads", &format!("expected 4 non-negative values, got {p:?}"))),
        },
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = [0; 4];
            for i in 0..2 {
                let out = input_hw[i].div_ceil(stride[i]);
                let span = (kernel[i] - 1).saturating_mul(dilation[i]).saturating_add(1);
                let total = ((out.max(1) - 1) * stride[i]).saturating_add(span).saturating_sub(input_hw[i]);
                let small = total / 2;
                let (begin, end) =
                    if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                p[i] = begin;
                p[i + 2] = end;
            }
            p
        }
        other => return Err(n.bad_attr("auto_pad", &format!("unknown value {other:?}"))),
    };
    Ok(Window { kernel, stride, dilation, padding })
}

/// The input must be 4-D (N, C, H, W).
pub(crate) fn require_4d(n: &OnnxNode, shape: &[usize]) -> Result<()> {
    if shape.len() != 4 {
        return Err(n.unsupported(format!("only 2-D spatial inputs [N, C, H, W] are supported, got {shape:?}")));
    }
    Ok(())
}
