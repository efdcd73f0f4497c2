//! BatchNormalization (inference mode) and LayerNormalization.

use super::BuildFn;
use super::conv::flat;
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::{BatchNormConfig, LayerNormConfig, Op};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("BatchNormalization", batch_norm);
    r.insert("LayerNormalization", layer_norm);
}

/// LayerNormalization (opset 17): `axis` (default -1), `epsilon` (default 1e-5), a constant
/// `Scale` and optional constant `B` broadcastable to `x.shape[axis..]`. `stash_type` only sets
/// the precision of the statistics (computed in f64 anyway); the optional `Mean` and `InvStdDev`
/// outputs must be unused.
fn layer_norm(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    if let Some(o) = n.proto.output.iter().skip(1).find(|o| !o.is_empty() && ctx.consumed.contains(o.as_str())) {
        return Err(n.unsupported(format!("its Mean or InvStdDev output ({o}) is used (only Y is supported)")));
    }
    let xs = ctx.shape(n, 0)?;
    let axis = n.axis("axis", n.attr_or("axis", -1i64)?, xs.len())?;
    if axis == 0 {
        ctx.batch_guard(n, "normalising across axis 0")?;
    }
    let epsilon = n.attr_or("epsilon", 1e-5f32)?;
    let inner = &xs[axis..];
    let mut params = Vec::new();
    for (i, what) in [(1, "scale"), (2, "bias")] {
        let Some(c) = ctx.konst(n, i, what)? else {
            if i == 1 {
                return Err(n.unsupported("missing input 1 (scale)"));
            }
            params.push(None);
            continue;
        };
        let t = c.to_f32();
        let t = t
            .broadcast(ndarray::IxDyn(inner))
            .map(|v| v.to_owned())
            .ok_or_else(|| n.unsupported(format!("{what} of shape {:?} does not broadcast to {inner:?}", t.shape())))?;
        params.push(Some(ctx.add_param(&format!("{}.{what}", n.name), t)));
    }
    let x = ctx.value(n, 0)?;
    let [scale, bias]: [Option<String>; 2] = params.try_into().expect("two parameters");
    ctx.push(n, None, Op::LayerNorm(LayerNormConfig { axis, epsilon, scale, bias }), vec![x], n.output().to_string())
}

fn batch_norm(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    if n.proto.output.iter().skip(1).any(|o| !o.is_empty()) || n.attr_or("training_mode", 0i64)? != 0 {
        return Err(n.unsupported("training-mode BatchNormalization (extra outputs) is not supported"));
    }
    let x = ctx.value(n, 0)?;
    let mut names = Vec::new();
    for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
        let t = flat(ctx.require_const(n, i, what)?.to_f32());
        names.push(ctx.add_param(&format!("{}.{what}", n.name), t));
    }
    let epsilon = n.attr_or("epsilon", 1e-5f32)?;
    let [scale, bias, mean, var]: [String; 4] = names.try_into().expect("four names");
    ctx.push(
        n,
        None,
        Op::BatchNorm(BatchNormConfig { scale, bias, mean, var, epsilon }),
        vec![x],
        n.output().to_string(),
    )
}
