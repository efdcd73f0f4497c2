//! Element-wise ops: broadcasting binary ops, Clip, Softmax and the masked activation.

use ndarray::{ArrayD, Axis, IxDyn, Zip};

use masq_ir::shape::broadcast;
use masq_ir::{ClipConfig, Graph, MaskedActConfig, Node, Replacement, SoftmaxConfig};
use masq_ir::{IrError, Result};

pub(super) fn binary(
    node: &Node,
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    f: impl Fn(f32, f32) -> f32,
) -> Result<ArrayD<f32>> {
    let shape = broadcast(a.shape(), b.shape()).ok_or_else(|| IrError::ShapeMismatch {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        expected: format!("broadcastable with {:?}", b.shape()),
        got: a.shape().to_vec(),
    })?;
    let av = a.broadcast(IxDyn(&shape)).expect("checked broadcast");
    let bv = b.broadcast(IxDyn(&shape)).expect("checked broadcast");
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

pub(super) fn clip(x: &ArrayD<f32>, c: &ClipConfig) -> ArrayD<f32> {
    let (lo, hi) = (c.min.unwrap_or(f32::NEG_INFINITY), c.max.unwrap_or(f32::INFINITY));
    x.mapv(|v| v.max(lo).min(hi))
}

pub(super) fn softmax(node: &Node, c: &SoftmaxConfig, x: &ArrayD<f32>, log: bool) -> Result<ArrayD<f32>> {
    if c.axis >= x.ndim() {
        return Err(IrError::ShapeMismatch {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            expected: format!("rank > {}", c.axis),
            got: x.shape().to_vec(),
        });
    }
    let mut y = x.clone();
    for mut lane in y.lanes_mut(Axis(c.axis)) {
        let max = lane.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = lane.iter().map(|&v| (v - max).exp()).sum();
        if log {
            // (v - max) - ln(sum), not v - (max + ln(sum)): the latter loses ln(sum) to rounding
            // when |max| is large.
            let ln_sum = sum.ln();
            lane.mapv_inplace(|v| (v - max) - ln_sum);
        } else {
            lane.mapv_inplace(|v| (v - max).exp() / sum);
        }
    }
    Ok(y)
}

pub(super) fn masked_act(graph: &Graph, node: &Node, c: &MaskedActConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let mask = graph.masks.get(&c.mask).ok_or_else(|| IrError::BadInitializer {
        node: node.name.clone(),
        op: "MaskedAct".to_string(),
        name: c.mask.clone(),
        reason: "mask missing".to_string(),
    })?;
    if x.ndim() < 2 || mask.shape() != &x.shape()[1..] {
        return Err(IrError::ShapeMismatch {
            node: node.name.clone(),
            op: "MaskedAct".to_string(),
            expected: format!("[N, {:?}]", mask.shape()),
            got: x.shape().to_vec(),
        });
    }
    let coeffs = match &c.replacement {
        Replacement::Identity => None,
        Replacement::Poly { c2, c1, c0 } => {
            let get = |n: &String| graph.initializer(node, n).map(|t| t.iter().copied().collect::<Vec<f32>>());
            Some((get(c2)?, get(c1)?, get(c0)?))
        }
    };
    let cap = c.cap.unwrap_or(f32::INFINITY);
    let mut y = x.clone();
    for mut img in y.axis_iter_mut(Axis(0)) {
        for (ci, (mut plane, mplane)) in img.axis_iter_mut(Axis(0)).zip(mask.axis_iter(Axis(0))).enumerate() {
            let (a2, a1, a0) = match &coeffs {
                Some((c2, c1, c0)) => (c2[ci], c1[ci], c0[ci]),
                None => (0.0, 1.0, 0.0),
            };
            Zip::from(&mut plane).and(&mplane).for_each(|v, &m| {
                *v = if m != 0 { v.max(0.0).min(cap) } else { (a2 * *v + a1) * *v + a0 };
            });
        }
    }
    Ok(y)
}
