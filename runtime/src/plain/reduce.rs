//! Reductions over axes and layer normalisation.

use ndarray::{ArrayD, Axis, IxDyn};

use masq_ir::shape::reduced_shape;
use masq_ir::{Graph, IrError, LayerNormConfig, Node, ReduceConfig, Result};

fn bad_axes(node: &Node, axes: &[usize], x: &ArrayD<f32>) -> IrError {
    IrError::ShapeMismatch {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        expected: format!("rank > every axis of {axes:?}"),
        got: x.shape().to_vec(),
    }
}

/// Sum (or mean) over `c.axes`, accumulated in f64.
pub(super) fn reduce(node: &Node, c: &ReduceConfig, x: &ArrayD<f32>, mean: bool) -> Result<ArrayD<f32>> {
    if c.axes.iter().any(|&a| a >= x.ndim()) {
        return Err(bad_axes(node, &c.axes, x));
    }
    let mut acc = x.mapv(|v| v as f64);
    // Highest axis first so the lower indices stay valid.
    for &a in c.axes.iter().rev() {
        acc = acc.sum_axis(Axis(a));
    }
    let count: usize = c.axes.iter().map(|&a| x.shape()[a]).product();
    let scale = if mean { 1.0 / count.max(1) as f64 } else { 1.0 };
    let out = acc.mapv(|v| (v * scale) as f32);
    let shape = reduced_shape(x.shape(), &c.axes, c.keepdims);
    Ok(out.into_shape_with_order(IxDyn(&shape)).expect("element counts agree"))
}

/// `(x − mean) / √(var + ε) · scale + bias` over the axes from `c.axis` on.
pub(super) fn layer_norm(graph: &Graph, node: &Node, c: &LayerNormConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    if c.axis >= x.ndim() {
        return Err(bad_axes(node, &[c.axis], x));
    }
    let inner: usize = x.shape()[c.axis..].iter().product();
    let get = |name: &Option<String>| -> Result<Option<Vec<f32>>> {
        match name {
            None => Ok(None),
            Some(n) => {
                let t = graph.initializer(node, n)?;
                if t.len() != inner {
                    return Err(IrError::ShapeMismatch {
                        node: node.name.clone(),
                        op: node.op.name().to_string(),
                        expected: format!("{n} of {inner} elements"),
                        got: t.shape().to_vec(),
                    });
                }
                Ok(Some(t.iter().copied().collect()))
            }
        }
    };
    let (scale, bias) = (get(&c.scale)?, get(&c.bias)?);
    let x = x.as_standard_layout();
    let flat = x.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(flat.len());
    for row in flat.chunks(inner.max(1)) {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + c.epsilon as f64).sqrt();
        for (i, &v) in row.iter().enumerate() {
            let s = scale.as_ref().map_or(1.0, |s| s[i] as f64);
            let b = bias.as_ref().map_or(0.0, |b| b[i] as f64);
            out.push((((v as f64 - mean) * inv) * s + b) as f32);
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(x.shape()), out).expect("same length"))
}
