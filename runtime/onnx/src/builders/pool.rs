//! MaxPool, AveragePool, GlobalAveragePool.

use super::{BuildFn, require_4d, window};
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::{Op, PoolConfig};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("MaxPool", |c, n| pool(c, n, true));
    r.insert("AveragePool", |c, n| pool(c, n, false));
    r.insert("GlobalAveragePool", global_avg);
}

fn pool(ctx: &mut Ctx, n: &OnnxNode, max: bool) -> Result<()> {
    if n.proto.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(n.unsupported("the MaxPool indices output is not supported"));
    }
    let x = ctx.value(n, 0)?;
    let xs = ctx.shape(n, 0)?;
    require_4d(n, &xs)?;
    let k: Vec<i64> = n.attr("kernel_shape")?;
    if k.len() != 2 || k.iter().any(|&v| v < 1) {
        return Err(n.bad_attr("kernel_shape", &format!("expected two positive values, got {k:?}")));
    }
    let win = window(n, [xs[2], xs[3]], [k[0] as usize, k[1] as usize])?;
    let cfg = PoolConfig {
        kernel: win.kernel,
        stride: win.stride,
        padding: win.padding,
        dilation: win.dilation,
        ceil_mode: n.attr_or("ceil_mode", 0i64)? != 0,
        count_include_pad: n.attr_or("count_include_pad", 0i64)? != 0,
    };
    let op = if max { Op::MaxPool(cfg) } else { Op::AveragePool(cfg) };
    ctx.push(n, None, op, vec![x], n.output().to_string())
}

fn global_avg(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let x = ctx.value(n, 0)?;
    ctx.push(n, None, Op::GlobalAveragePool, vec![x], n.output().to_string())
}
