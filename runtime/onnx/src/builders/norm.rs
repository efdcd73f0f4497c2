//! BatchNormalization (inference mode).

use super::BuildFn;
use super::conv::flat;
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::{BatchNormConfig, Op};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("BatchNormalization", batch_norm);
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
