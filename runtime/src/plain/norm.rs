//! Inference-mode batch normalisation.

use ndarray::{ArrayD, Axis};

use masq_ir::{BatchNormConfig, Graph, Node};
use masq_ir::{IrError, Result};

pub(super) fn batch_norm(graph: &Graph, node: &Node, c: &BatchNormConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let (scale, bias, mean, var) = (
        graph.initializer(node, &c.scale)?,
        graph.initializer(node, &c.bias)?,
        graph.initializer(node, &c.mean)?,
        graph.initializer(node, &c.var)?,
    );
    let ch = x.shape().get(1).copied().unwrap_or(0);
    if x.ndim() < 2 || [scale, bias, mean, var].iter().any(|t| t.len() != ch) {
        return Err(IrError::ShapeMismatch {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            expected: format!("[N, {}, ...]", scale.len()),
            got: x.shape().to_vec(),
        });
    }
    let flat = |t: &ArrayD<f32>| t.iter().copied().collect::<Vec<f32>>();
    let (scale, bias, mean, var) = (flat(scale), flat(bias), flat(mean), flat(var));
    let mut y = x.clone();
    for mut img in y.axis_iter_mut(Axis(0)) {
        for (ci, mut plane) in img.axis_iter_mut(Axis(0)).enumerate() {
            let inv = scale[ci] / (var[ci] + c.epsilon).sqrt();
            let (m, b) = (mean[ci], bias[ci]);
            plane.mapv_inplace(|v| (v - m) * inv + b);
        }
    }
    Ok(y)
}
