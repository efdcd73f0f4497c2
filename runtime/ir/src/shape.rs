//! Shape inference, one rule per op; the helpers are shared with the interpreter.

use crate::error::{IrError, Result};
use crate::{Graph, Node, Op, Replacement};

fn mismatch(node: &Node, expected: impl Into<String>, got: &[usize]) -> IrError {
    IrError::ShapeMismatch {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        expected: expected.into(),
        got: got.to_vec(),
    }
}

/// The most elements one tensor may have: every shape masq infers (node outputs, graph inputs,
/// decoded and folded constants) is checked against it, so a hostile file fails at import with
/// an error naming the node or tensor instead of asking for an allocation of its choosing.
/// 2^31 elements (8 GiB of f32).
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The element count of `shape` when it is within [`MAX_ELEMENTS`]. Axes of length 0 count as 1
/// for the bound, so `[0, 2^40, 2^40]` is refused too (no array library accepts it).
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d.max(1)).filter(|&n| n <= MAX_ELEMENTS))?;
    Some(shape.iter().product())
}

/// [`element_count`] as an error naming `what` (a node's output, a tensor, an input).
pub fn check_elements(what: impl FnOnce() -> String, shape: &[usize]) -> Result<usize> {
    element_count(shape).ok_or_else(|| IrError::TooLarge { what: what(), shape: format!("{shape:?}") })
}

/// Output length of a sliding window along one axis; `None` when the window does not fit (or
/// its arithmetic overflows).
pub fn window_out(
    len: usize,
    pad: (usize, usize),
    kernel: usize,
    stride: usize,
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    let padded = len.checked_add(pad.0)?.checked_add(pad.1)?;
    let span = dilation.checked_mul(kernel.max(1) - 1)?.checked_add(1)?;
    if padded < span || stride == 0 {
        return None;
    }
    let num = padded - span;
    let mut out = if ceil { num.div_ceil(stride) + 1 } else { num / stride + 1 };
    // A window may not start inside the right padding only (PyTorch/ONNX rule for ceil mode).
    if ceil && (out - 1) * stride >= len + pad.0 {
        out -= 1;
    }
    Some(out)
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let x = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let y = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Resolve an ONNX reshape target (`0` copies, `-1` infers) against an input shape.
pub fn reshape_target(input: &[usize], target: &[i64]) -> Option<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 => out.push(*input.get(i)?),
            t if t > 0 => out.push(usize::try_from(t).ok()?),
            _ => return None,
        }
    }
    let known = out.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return None;
        }
        out[i] = total / known;
    } else if known != total {
        return None;
    }
    Some(out)
}

/// Shape after a strided slice (positive steps; ends clamped).
pub fn slice_len(len: usize, start: usize, end: usize, step: usize) -> usize {
    let end = end.min(len);
    if start >= end { 0 } else { (end - start).div_ceil(step) }
}

/// The shape left after reducing `axes` (kept as length 1 with `keepdims`).
pub fn reduced_shape(x: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    x.iter()
        .enumerate()
        .filter_map(|(i, &d)| match (axes.contains(&i), keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// The shape of a Gather along `axis` with indices of shape `indices_shape`.
pub fn gathered_shape(x: &[usize], axis: usize, indices_shape: &[usize]) -> Vec<usize> {
    let mut out = x[..axis].to_vec();
    out.extend_from_slice(indices_shape);
    out.extend_from_slice(&x[axis + 1..]);
    out
}

/// Infer the output shape of one node from its input shapes. An output of more than
/// [`MAX_ELEMENTS`] elements is an error naming this node (so a later node is never blamed for a
/// size that overflowed here); so is an input list shorter than the op needs.
pub fn infer_node(graph: &Graph, node: &Node, ins: &[&[usize]]) -> Result<Vec<usize>> {
    let need = node.op.arity().unwrap_or(1);
    if ins.len() < need {
        return Err(IrError::InvalidGraph {
            reason: format!("node {} ({}) has {} inputs, needs {need}", node.name, node.op.name(), ins.len()),
        });
    }
    let out = infer_rule(graph, node, ins)?;
    check_elements(|| format!("node {} ({}): output", node.name, node.op.name()), &out)?;
    Ok(out)
}

fn infer_rule(graph: &Graph, node: &Node, ins: &[&[usize]]) -> Result<Vec<usize>> {
    let x = ins.first().copied().unwrap_or(&[]);
    match &node.op {
        Op::Conv(c) => {
            let w = graph.initializer(node, &c.weight)?.shape().to_vec();
            if x.len() != 4 || w.len() != 4 {
                return Err(mismatch(node, "4-D input [N, C, H, W] and 4-D weight", x));
            }
            let channels = w[1].checked_mul(c.groups);
            if c.groups == 0 || channels != Some(x[1]) || w[0] % c.groups != 0 || [w[2], w[3]] != c.kernel {
                return Err(mismatch(
                    node,
                    format!("C = {} (weight {:?}, groups {})", w[1].saturating_mul(c.groups), w, c.groups),
                    x,
                ));
            }
            if let Some(b) = &c.bias {
                let b = graph.initializer(node, b)?;
                if b.shape() != [w[0]] {
                    return Err(mismatch(node, format!("bias [{}]", w[0]), b.shape()));
                }
            }
            let oh = window_out(x[2], (c.padding[0], c.padding[2]), w[2], c.stride[0], c.dilation[0], false);
            let ow = window_out(x[3], (c.padding[1], c.padding[3]), w[3], c.stride[1], c.dilation[1], false);
            match (oh, ow) {
                (Some(oh), Some(ow)) => Ok(vec![x[0], w[0], oh, ow]),
                _ => Err(mismatch(node, "spatial size at least the kernel", x)),
            }
        }
        Op::Gemm(c) => {
            let w = graph.initializer(node, &c.weight)?.shape().to_vec();
            if x.len() != 2 || w.len() != 2 || x[1] != w[1] {
                return Err(mismatch(node, format!("[N, {}]", w.get(1).copied().unwrap_or(0)), x));
            }
            if let Some(b) = &c.bias {
                let b = graph.initializer(node, b)?;
                if b.shape() != [w[0]] {
                    return Err(mismatch(node, format!("bias [{}]", w[0]), b.shape()));
                }
            }
            Ok(vec![x[0], w[0]])
        }
        Op::MatMul(_) => {
            let (a, b) = (ins[0], ins[1]);
            if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
                return Err(mismatch(node, format!("inner dimensions to agree with {b:?}"), a));
            }
            let batch = broadcast(&a[..a.len() - 2], &b[..b.len() - 2])
                .ok_or_else(|| mismatch(node, format!("batch dims broadcastable with {b:?}"), a))?;
            let mut out = batch;
            out.push(a[a.len() - 2]);
            out.push(b[b.len() - 1]);
            Ok(out)
        }
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Pow(_) => {
            broadcast(ins[0], ins[1]).ok_or_else(|| mismatch(node, format!("broadcastable with {:?}", ins[1]), ins[0]))
        }
        Op::Relu
        | Op::Clip(_)
        | Op::LeakyRelu(_)
        | Op::Identity
        | Op::FakeQuant(_)
        | Op::Sigmoid
        | Op::HardSigmoid(_)
        | Op::HardSwish
        | Op::Tanh
        | Op::Erf
        | Op::Gelu(_)
        | Op::Exp
        | Op::Sqrt
        | Op::Reciprocal => Ok(x.to_vec()),
        Op::ReduceMean(c) | Op::ReduceSum(c) => {
            if c.axes.iter().any(|&a| a >= x.len()) || c.axes.windows(2).any(|w| w[0] >= w[1]) {
                return Err(mismatch(node, format!("rank > every axis of {:?} (sorted, distinct)", c.axes), x));
            }
            Ok(reduced_shape(x, &c.axes, c.keepdims))
        }
        Op::LayerNorm(c) => {
            if c.axis >= x.len() {
                return Err(mismatch(node, format!("rank > {}", c.axis), x));
            }
            for name in c.scale.iter().chain(&c.bias) {
                let t = graph.initializer(node, name)?;
                if t.shape() != &x[c.axis..] {
                    return Err(mismatch(node, format!("{name} of shape {:?}", &x[c.axis..]), t.shape()));
                }
            }
            Ok(x.to_vec())
        }
        Op::Softmax(c) | Op::LogSoftmax(c) => {
            if c.axis >= x.len() {
                return Err(mismatch(node, format!("rank > {}", c.axis), x));
            }
            Ok(x.to_vec())
        }
        Op::BatchNorm(c) => {
            if x.len() < 2 {
                return Err(mismatch(node, "[N, C, ...]", x));
            }
            for name in [&c.scale, &c.bias, &c.mean, &c.var] {
                let t = graph.initializer(node, name)?;
                if t.shape() != [x[1]] {
                    return Err(mismatch(node, format!("{name} of shape [{}]", x[1]), t.shape()));
                }
            }
            Ok(x.to_vec())
        }
        Op::MaxPool(c) | Op::AveragePool(c) => {
            if x.len() != 4 {
                return Err(mismatch(node, "[N, C, H, W]", x));
            }
            let oh =
                window_out(x[2], (c.padding[0], c.padding[2]), c.kernel[0], c.stride[0], c.dilation[0], c.ceil_mode);
            let ow =
                window_out(x[3], (c.padding[1], c.padding[3]), c.kernel[1], c.stride[1], c.dilation[1], c.ceil_mode);
            match (oh, ow) {
                (Some(oh), Some(ow)) => Ok(vec![x[0], x[1], oh, ow]),
                _ => Err(mismatch(node, "spatial size at least the kernel", x)),
            }
        }
        Op::GlobalAveragePool => {
            if x.len() < 3 {
                return Err(mismatch(node, "[N, C, spatial...]", x));
            }
            let mut out = x.to_vec();
            out[2..].iter_mut().for_each(|d| *d = 1);
            Ok(out)
        }
        Op::Flatten(c) => {
            if c.axis > x.len() {
                return Err(mismatch(node, format!("rank >= {}", c.axis), x));
            }
            Ok(vec![x[..c.axis].iter().product(), x[c.axis..].iter().product()])
        }
        Op::Reshape(c) => reshape_target(x, &c.shape)
            .ok_or_else(|| mismatch(node, format!("a shape reshapeable to {:?}", c.shape), x)),
        Op::Transpose(c) => {
            let mut sorted = c.perm.clone();
            sorted.sort_unstable();
            if c.perm.len() != x.len() || sorted != (0..x.len()).collect::<Vec<_>>() {
                return Err(mismatch(node, format!("rank {} (perm {:?})", c.perm.len(), c.perm), x));
            }
            Ok(c.perm.iter().map(|&p| x[p]).collect())
        }
        Op::Concat(c) => {
            let mut out = x.to_vec();
            if c.axis >= x.len() {
                return Err(mismatch(node, format!("rank > {}", c.axis), x));
            }
            for other in &ins[1..] {
                let same = other.len() == x.len() && (0..x.len()).all(|i| i == c.axis || other[i] == x[i]);
                if !same {
                    return Err(mismatch(node, format!("{x:?} except on axis {}", c.axis), other));
                }
                out[c.axis] = out[c.axis]
                    .checked_add(other[c.axis])
                    .ok_or_else(|| mismatch(node, "a concatenated length that fits", other))?;
            }
            Ok(out)
        }
        Op::Pad(c) => {
            if c.pads.len() != x.len() {
                return Err(mismatch(node, format!("rank {}", c.pads.len()), x));
            }
            x.iter()
                .zip(&c.pads)
                .map(|(&d, &(a, b))| d.checked_add(a).and_then(|d| d.checked_add(b)))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| mismatch(node, format!("pads {:?} that fit", c.pads), x))
        }
        Op::Slice(c) => {
            let mut out = x.to_vec();
            let n = c.axes.len();
            if c.starts.len() != n || c.ends.len() != n || c.steps.len() != n {
                return Err(mismatch(node, "as many starts, ends and steps as axes", x));
            }
            for i in 0..n {
                let axis = c.axes[i];
                if axis >= x.len() || c.steps[i] == 0 {
                    return Err(mismatch(node, format!("axis {axis} in range and a positive step"), x));
                }
                out[axis] = slice_len(x[axis], c.starts[i], c.ends[i], c.steps[i]);
            }
            Ok(out)
        }
        Op::Gather(c) => {
            if c.axis >= x.len()
                || element_count(&c.indices_shape) != Some(c.indices.len())
                || c.indices.iter().any(|&i| i >= x[c.axis])
            {
                return Err(mismatch(
                    node,
                    format!("axis {} with more than every index of {:?}", c.axis, c.indices),
                    x,
                ));
            }
            Ok(gathered_shape(x, c.axis, &c.indices_shape))
        }
        Op::MaskedAct(c) => {
            let mask = graph.masks.get(&c.mask).ok_or_else(|| IrError::BadInitializer {
                node: node.name.clone(),
                op: "MaskedAct".to_string(),
                name: c.mask.clone(),
                reason: "mask missing".to_string(),
            })?;
            if x.len() < 2 || mask.shape() != &x[1..] {
                return Err(mismatch(node, format!("[N, {:?}] to match the mask", mask.shape()), x));
            }
            if let Replacement::Poly { c2, c1, c0 } = &c.replacement {
                for name in [c2, c1, c0] {
                    let t = graph.initializer(node, name)?;
                    if t.shape() != [x[1]] {
                        return Err(mismatch(node, format!("coefficient {name} of shape [{}]", x[1]), t.shape()));
                    }
                }
            }
            Ok(x.to_vec())
        }
    }
}
