//! ReduceMean and ReduceSum. Axes are an attribute before opset 18 (ReduceMean) or 13
//! (ReduceSum) and an optional constant input from then on; negative axes count from the end;
//! absent or empty axes reduce every axis (unless `noop_with_empty_axes`, then the node is the
//! identity); `keepdims` defaults to 1.
//!
//! A ReduceMean over exactly H and W of an `[N, C, H, W]` input is a `GlobalAveragePool` (which has
//! a 2PC protocol), followed by a Reshape to `[N, C]` without `keepdims`.

use super::BuildFn;
use super::shape::reshape_value;
use crate::ctx::{Ctx, OnnxNode};
use crate::tensor::Const;
use masq_ir::Result;
use masq_ir::{Op, ReduceConfig};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("ReduceMean", |c, n| reduce(c, n, true));
    r.insert("ReduceSum", |c, n| reduce(c, n, false));
}

fn reduce(ctx: &mut Ctx, n: &OnnxNode, mean: bool) -> Result<()> {
    let xs = ctx.shape(n, 0)?;
    let rank = xs.len();
    let axes_as_input = n.opset >= if mean { 18 } else { 13 };
    let given: Option<Vec<i64>> =
        if axes_as_input { ctx.konst(n, 1, "axes")?.map(Const::to_i64_vec) } else { n.attr_opt("axes")? };
    let keepdims = n.attr_or("keepdims", 1i64)? != 0;
    let x = ctx.value(n, 0)?;
    let out = n.output().to_string();
    let mut axes: Vec<usize> = match given.filter(|a| !a.is_empty()) {
        Some(a) => a.iter().map(|&a| n.axis("axes", a, rank)).collect::<Result<_>>()?,
        None if n.attr_or("noop_with_empty_axes", 0i64)? != 0 => return ctx.push(n, None, Op::Identity, vec![x], out),
        None => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    if axes.contains(&0) {
        ctx.batch_guard(n, "reducing over axis 0")?;
    }
    if mean && rank == 4 && axes == [2, 3] {
        if keepdims {
            return ctx.push(n, None, Op::GlobalAveragePool, vec![x], out);
        }
        let pooled = ctx.add_value_name(&format!("{out}/pooled"));
        ctx.push(n, Some("pool"), Op::GlobalAveragePool, vec![x], pooled.clone())?;
        let target = vec![xs[0] as i64, xs[1] as i64];
        return reshape_value(ctx, n, None, pooled, &[xs[0], xs[1], 1, 1], target, out);
    }
    let cfg = ReduceConfig { axes, keepdims };
    ctx.push(n, None, if mean { Op::ReduceMean(cfg) } else { Op::ReduceSum(cfg) }, vec![x], out)
}
