//! Data movement: Flatten, Reshape, Transpose, Concat, Pad, Slice, Gather.

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use masq_ir::shape::{check_elements, gathered_shape, reshape_target};
use masq_ir::{
    ConcatConfig, FlattenConfig, GatherConfig, Node, PadConfig, ReshapeConfig, SliceConfig, TransposeConfig,
};
use masq_ir::{IrError, Result};

fn mismatch(node: &Node, expected: String, got: &[usize]) -> IrError {
    IrError::ShapeMismatch { node: node.name.clone(), op: node.op.name().to_string(), expected, got: got.to_vec() }
}

fn reshaped(x: &ArrayD<f32>, shape: Vec<usize>) -> ArrayD<f32> {
    let v: Vec<f32> = x.iter().copied().collect();
    ArrayD::from_shape_vec(IxDyn(&shape), v).expect("element counts agree")
}

pub(super) fn flatten(node: &Node, c: &FlattenConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    if c.axis > x.ndim() {
        return Err(mismatch(node, format!("rank >= {}", c.axis), x.shape()));
    }
    let s = x.shape();
    Ok(reshaped(x, vec![s[..c.axis].iter().product(), s[c.axis..].iter().product()]))
}

pub(super) fn reshape(node: &Node, c: &ReshapeConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let shape = reshape_target(x.shape(), &c.shape)
        .ok_or_else(|| mismatch(node, format!("reshapeable to {:?}", c.shape), x.shape()))?;
    Ok(reshaped(x, shape))
}

pub(super) fn transpose(node: &Node, c: &TransposeConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let mut sorted = c.perm.clone();
    sorted.sort_unstable();
    if sorted != (0..x.ndim()).collect::<Vec<_>>() {
        return Err(mismatch(node, format!("rank {}", c.perm.len()), x.shape()));
    }
    Ok(x.view().permuted_axes(IxDyn(&c.perm)).as_standard_layout().into_owned())
}

pub(super) fn concat(node: &Node, c: &ConcatConfig, ins: &[&ArrayD<f32>]) -> Result<ArrayD<f32>> {
    let views: Vec<_> = ins.iter().map(|t| t.view()).collect();
    ndarray::concatenate(Axis(c.axis), &views)
        .map_err(|_| mismatch(node, format!("equal shapes except on axis {}", c.axis), ins[0].shape()))
}

pub(super) fn pad(node: &Node, c: &PadConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    if c.pads.len() != x.ndim() {
        return Err(mismatch(node, format!("rank {}", c.pads.len()), x.shape()));
    }
    let shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(&c.pads)
        .map(|(&d, &(a, b))| d.checked_add(a).and_then(|d| d.checked_add(b)))
        .collect::<Option<_>>()
        .ok_or_else(|| mismatch(node, format!("pads {:?} that fit", c.pads), x.shape()))?;
    check_elements(|| format!("node {} (Pad): output", node.name), &shape)?;
    let mut out = ArrayD::from_elem(IxDyn(&shape), c.value);
    let mut view = out.view_mut();
    for (axis, (&d, &(a, _))) in x.shape().iter().zip(&c.pads).enumerate() {
        view.slice_axis_inplace(Axis(axis), Slice::from(a..a + d));
    }
    view.assign(x);
    Ok(out)
}

pub(super) fn slice(node: &Node, c: &SliceConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let mut view = x.view();
    for i in 0..c.axes.len() {
        let axis = c.axes[i];
        if axis >= x.ndim() || c.steps[i] == 0 {
            return Err(mismatch(node, format!("axis {axis} in range, positive step"), x.shape()));
        }
        let len = x.shape()[axis];
        let end = c.ends[i].min(len);
        let start = c.starts[i].min(end);
        view.slice_axis_inplace(Axis(axis), Slice::new(start as isize, Some(end as isize), c.steps[i] as isize));
    }
    Ok(view.as_standard_layout().into_owned())
}

/// Gather with constant indices, for any element type (the secure lowering moves shares with it);
/// `None` when an index or the axis is out of range.
pub(crate) fn take<T: Clone>(x: &ArrayD<T>, c: &GatherConfig) -> Option<ArrayD<T>> {
    if c.axis >= x.ndim() || c.indices.iter().any(|&i| i >= x.shape()[c.axis]) {
        return None;
    }
    let picked = x.select(Axis(c.axis), &c.indices);
    let shape = gathered_shape(x.shape(), c.axis, &c.indices_shape);
    let picked = if picked.is_standard_layout() { picked } else { picked.as_standard_layout().into_owned() };
    picked.into_shape_with_order(IxDyn(&shape)).ok()
}

pub(super) fn gather(node: &Node, c: &GatherConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    take(x, c).ok_or_else(|| mismatch(node, format!("axis {} longer than every index", c.axis), x.shape()))
}
