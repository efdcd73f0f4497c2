//! QuantizeLinear and DequantizeLinear on computed values (the QDQ format; on constants both fold,
//! see [`crate::qdq`]). A QuantizeLinear whose output only DequantizeLinear nodes read, all with
//! its per-tensor scale and zero point, becomes one `FakeQuant` per DequantizeLinear, named after
//! it; the integer range is the zero point's type's. The exporter's Clip for a range narrower than
//! the integer type (e.g. 6 bits in INT8), annotated with that range, narrows the FakeQuant it alone
//! reads instead of becoming a node when its bounds lie on the grid. Other Clips stay Clips: under
//! 2PC a FakeQuant is not re-applied, so folding a model's own clamp (a ReLU6) into one would drop
//! a comparison the model computes.

use super::BuildFn;
use crate::annotation::fake_quant_range_from_doc_string;
use crate::ctx::{Consumer, Ctx, OnnxNode, Quantized};
use crate::qdq::{self, Params};
use masq_ir::{ClipConfig, Op, QuantParams, Result};

pub(super) fn register(r: &mut std::collections::HashMap<&'static str, BuildFn>) {
    r.insert("QuantizeLinear", quantize);
    r.insert("DequantizeLinear", dequantize);
}

fn quantize(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    let x = ctx.value(n, 0)?;
    let shape = ctx.shape(n, 0)?;
    let ty = qdq::quantize_type(ctx, n)?;
    let params = Params::read(ctx, n, &shape, ty)?;
    if params.per_tensor().is_none() {
        return Err(n.unsupported(
            "per-axis or blocked quantization of a computed value (masq's FakeQuant is per tensor; \
             only constant weights may be quantized per channel)",
        ));
    }
    let out = n.output().to_string();
    let others: Vec<&Consumer> =
        ctx.consumers.get(&out).into_iter().flatten().filter(|c| c.op != "DequantizeLinear").collect();
    if let Some(c) = others.first() {
        let reader = if c.op == Consumer::GRAPH_OUTPUT {
            "it is a graph output".to_string()
        } else {
            format!("{} node {} reads it", c.op, c.node)
        };
        return Err(n.unsupported(format!(
            "its integer output {out:?} must only be read by DequantizeLinear nodes, but {reader}: masq imports \
             the QDQ format (QuantizeLinear -> DequantizeLinear pairs around float ops); re-quantize with \
             QuantFormat.QDQ instead of the QOperator format"
        )));
    }
    ctx.quantized.insert(out, Quantized { x, shape, params, node: n.name.clone() });
    Ok(())
}

fn dequantize(ctx: &mut Ctx, n: &OnnxNode) -> Result<()> {
    qdq::check_dequantize_output(n)?;
    // Constant parameters first (a computed scale gets that error, not the one below).
    ctx.require_const(n, 1, "x_scale")?;
    ctx.konst(n, 2, "x_zero_point")?;
    let input = n.input(0).ok_or_else(|| n.unsupported("missing input 0 (x)"))?;
    let Some(src) = ctx.quantized.get(input).cloned() else {
        ctx.shape(n, 0)?;
        return Err(n.unsupported(format!(
            "x ({input:?}) is a computed value no QuantizeLinear produced (computed values are f32; \
             DequantizeLinear reads constants or a QuantizeLinear output)"
        )));
    };
    let params = Params::read(ctx, n, &src.shape, src.params.ty)?;
    if params != src.params {
        return Err(n.unsupported(format!(
            "scale {:?} and zero point {:?} differ from those of QuantizeLinear {} (scale {:?}, zero point {:?}): \
             not a fake quantization",
            params.scale, params.zero_point, src.node, src.params.scale, src.params.zero_point
        )));
    }
    let q = params.per_tensor().ok_or_else(|| n.unsupported("per-axis parameters of a computed value"))?;
    ctx.push(n, None, Op::FakeQuant(q), vec![src.x], n.output().to_string())
}

/// The integer bound a Clip bound `v` gives on grid `q` (`None`: not on the grid): an absent or
/// inactive bound keeps the range's end.
fn grid_bound(q: &QuantParams, v: Option<f32>, lower: bool) -> Option<i32> {
    let end = if lower { q.qmin } else { q.qmax };
    let Some(v) = v else { return Some(end) };
    if (lower && v <= q.dequantize(q.qmin)) || (!lower && v >= q.dequantize(q.qmax)) {
        return Some(end);
    }
    let k = (f64::from(v) / f64::from(q.scale)).round() + f64::from(q.zero_point);
    if !(f64::from(q.qmin)..=f64::from(q.qmax)).contains(&k) {
        return None;
    }
    let k = k as i32;
    (q.dequantize(k) == v).then_some(k)
}

/// Folds Clip `n`, annotated by the exporter, into the FakeQuant it alone reads when its bounds
/// lie on the grid and give the annotated range: the FakeQuant takes the narrower range and the
/// Clip's name and output. Returns whether it did.
pub(super) fn narrow_by_clip(ctx: &mut Ctx, n: &OnnxNode, clip: &ClipConfig) -> Result<bool> {
    let range = match fake_quant_range_from_doc_string(&n.proto.doc_string) {
        None => return Ok(false),
        Some(Err(e)) => return Err(n.bad_attr("doc_string", &format!("malformed FakeQuant range annotation: {e}"))),
        Some(Ok(r)) => r,
    };
    let Some(input) = n.input(0).map(str::to_string) else { return Ok(false) };
    let Some(&at) = ctx.producers.get(&input) else { return Ok(false) };
    let Op::FakeQuant(q) = ctx.graph.nodes[at].op else { return Ok(false) };
    if ctx.consumers.get(&input).map_or(0, Vec::len) != 1 {
        return Ok(false);
    }
    let (Some(qmin), Some(qmax)) = (grid_bound(&q, clip.min, true), grid_bound(&q, clip.max, false)) else {
        return Ok(false);
    };
    if (qmin, qmax) != range {
        return Ok(false);
    }
    let narrowed = QuantParams { qmin, qmax, ..q };
    if narrowed.check().is_err() {
        return Ok(false);
    }
    let out = n.output().to_string();
    let mut name = n.name.clone();
    while ctx.graph.nodes.iter().any(|x| x.name == name) {
        name.push('_');
    }
    let node = &mut ctx.graph.nodes[at];
    node.op = Op::FakeQuant(narrowed);
    node.name = name;
    node.outputs[0] = out.clone();
    let shape = ctx.shapes.remove(&input).unwrap_or_default();
    ctx.shapes.insert(out.clone(), shape);
    ctx.producers.remove(&input);
    ctx.producers.insert(out, at);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_bounds_on_the_grid_narrow_the_range() {
        let q = QuantParams::linear(8, 4);
        let s = q.scale;
        assert_eq!(grid_bound(&q, Some(-32.0 * s), true), Some(-32));
        assert_eq!(grid_bound(&q, Some(31.0 * s), false), Some(31));
        assert_eq!(grid_bound(&q, None, true), Some(-128));
        assert_eq!(grid_bound(&q, Some(-1e9), true), Some(-128));
        assert_eq!(grid_bound(&q, Some(0.3 * s), false), None);
        assert_eq!(grid_bound(&q, Some(f32::NAN), false), None);
    }
}
