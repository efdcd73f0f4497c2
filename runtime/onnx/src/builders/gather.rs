//! GatherND with constant indices on an activation (the default exporter writes adaptive average
//! pooling that upsamples, e.g. VGG's 1×1 -> 7×7 at small inputs, this way): the indexed leading
//! axes are merged into one (a Reshape) and the tuples become flat indices of one `Gather`.

use super::BuildFn;
use crate::ctx::{Ctx, OnnxNode};
use masq_ir::Result;
use masq_ir::{GatherConfig, Op, ReshapeConfig};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("GatherND", gather_nd);
}

fn gather_nd(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    if n.attr_or("batch_dims", 0i64)? != 0 {
        return Err(n.unsupported("batch_dims other than 0"));
    }
    let data = ctx.shape(n, 0)?;
    let idx = ctx
        .konst(n, 1, "indices")?
        .ok_or_else(|| n.unsupported("indices computed at run time (only constant indices are supported)"))?;
    let idx_shape = idx.data.shape().to_vec();
    let k = *idx_shape.last().ok_or_else(|| n.unsupported("scalar indices"))?;
    if k == 0 || k > data.len() {
        return Err(n.unsupported(format!("index tuples of length {k} for a rank-{} input", data.len())));
    }
    let values = idx.to_i64_vec();
    let mut flat = Vec::with_capacity(values.len() / k);
    for tuple in values.chunks(k) {
        let mut f = 0usize;
        for (j, &v) in tuple.iter().enumerate() {
            let len = data[j] as i64;
            let i = if v < 0 { v + len } else { v };
            if !(0..len).contains(&i) {
                return Err(n.unsupported(format!("index {v} out of range for axis {j} of length {len}")));
            }
            f = f * data[j] + i as usize;
        }
        flat.push(f);
    }
    let x = ctx.value(n, 0)?;
    let merged = if k == 1 {
        x
    } else {
        let mut target = vec![data[..k].iter().product::<usize>() as i64];
        target.extend(data[k..].iter().map(|&d| d as i64));
        let out = ctx.add_value_name(&format!("{}/merged", n.output()));
        ctx.push(n, Some("merge"), Op::Reshape(ReshapeConfig { shape: target }), vec![x], out.clone())?;
        out
    };
    let cfg = GatherConfig { axis: 0, indices: flat, indices_shape: idx_shape[..idx_shape.len() - 1].to_vec() };
    ctx.push(n, None, Op::Gather(cfg), vec![merged], n.output().to_string())
}
