//! Data movement: Flatten, Reshape, Transpose, Concat, Pad, Slice.

use masq_ir::shape::reshape_target;
use masq_ir::{ConcatConfig, FlattenConfig, Node, PadConfig, ReshapeConfig, SliceConfig, TransposeConfig};
use tch::Tensor;

use super::mismatch;
use crate::error::Result;

fn dims(x: &Tensor) -> Vec<usize> {
    x.size().iter().map(|&d| d as usize).collect()
}

pub(super) fn flatten(node: &Node, c: &FlattenConfig, x: &Tensor) -> Result<Tensor> {
    if c.axis > x.dim() {
        return Err(mismatch(node, format!("rank >= {}", c.axis), x));
    }
    let s = x.size();
    let outer: i64 = s[..c.axis].iter().product();
    let inner: i64 = s[c.axis..].iter().product();
    Ok(x.f_reshape([outer, inner])?)
}

pub(super) fn reshape(node: &Node, c: &ReshapeConfig, x: &Tensor) -> Result<Tensor> {
    let shape =
        reshape_target(&dims(x), &c.shape).ok_or_else(|| mismatch(node, format!("reshapeable to {:?}", c.shape), x))?;
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Ok(x.f_reshape(shape.as_slice())?)
}

pub(super) fn transpose(node: &Node, c: &TransposeConfig, x: &Tensor) -> Result<Tensor> {
    let mut sorted = c.perm.clone();
    sorted.sort_unstable();
    if sorted != (0..x.dim()).collect::<Vec<_>>() {
        return Err(mismatch(node, format!("rank {}", c.perm.len()), x));
    }
    let perm: Vec<i64> = c.perm.iter().map(|&p| p as i64).collect();
    Ok(x.f_permute(perm.as_slice())?)
}

pub(super) fn concat(node: &Node, c: &ConcatConfig, ins: &[&Tensor]) -> Result<Tensor> {
    Tensor::f_cat(ins, c.axis as i64)
        .map_err(|_| mismatch(node, format!("equal shapes except on axis {}", c.axis), ins[0]))
}

pub(super) fn pad(node: &Node, c: &PadConfig, x: &Tensor) -> Result<Tensor> {
    if c.pads.len() != x.dim() {
        return Err(mismatch(node, format!("rank {}", c.pads.len()), x));
    }
    // tch wants (before, after) pairs from the last axis backwards.
    let pads: Vec<i64> = c.pads.iter().rev().flat_map(|&(a, b)| [a as i64, b as i64]).collect();
    Ok(x.f_pad(pads.as_slice(), "constant", f64::from(c.value))?)
}

pub(super) fn slice(node: &Node, c: &SliceConfig, x: &Tensor) -> Result<Tensor> {
    let mut y = x.shallow_clone();
    let size = x.size();
    for i in 0..c.axes.len() {
        let axis = c.axes[i];
        if axis >= x.dim() || c.steps[i] == 0 {
            return Err(mismatch(node, format!("axis {axis} in range, positive step"), x));
        }
        let len = size[axis];
        let end = (c.ends[i].min(len as usize)) as i64;
        let start = (c.starts[i] as i64).min(end);
        y = y.f_slice(axis as i64, start, end, c.steps[i] as i64)?;
    }
    Ok(y)
}

pub(super) fn gather(node: &Node, c: &masq_ir::GatherConfig, x: &Tensor) -> Result<Tensor> {
    let size = x.size();
    if c.axis >= size.len() || c.indices.iter().any(|&i| i as i64 >= size[c.axis]) {
        return Err(mismatch(node, format!("axis {} longer than every index", c.axis), x));
    }
    let idx: Vec<i64> = c.indices.iter().map(|&i| i as i64).collect();
    let idx = Tensor::from_slice(&idx).to_device(x.device());
    let picked = x.f_index_select(c.axis as i64, &idx)?;
    let mut shape: Vec<i64> = size[..c.axis].to_vec();
    shape.extend(c.indices_shape.iter().map(|&d| d as i64));
    shape.extend_from_slice(&size[c.axis + 1..]);
    Ok(picked.f_reshape(shape.as_slice())?)
}
