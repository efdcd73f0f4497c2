//! Constant folding at the ONNX level: shape arithmetic as torch exports it
//! (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`, and the legacy exporter's comparisons,
//! `Where`, `Mod`, `Range`, `Expand` and reversed slices), `Constant`, casts, arithmetic,
//! element-wise functions and QuantizeLinear / DequantizeLinear ([`crate::qdq`]) on constants.
//! Runs during the build phase, because builders read folded values (a Reshape target, Pad's pads).

use ndarray::{ArrayD, Axis, IxDyn, Zip};

use crate::ctx::{Ctx, OnnxNode};
use crate::proto::TensorProto;
use crate::tensor::{Const, DType, decode_tensor};
use masq_ir::Result;
use masq_ir::shape::{broadcast, reshape_target};

/// Ops this folder can evaluate (when all their inputs are constants; `Shape` always). Those with
/// no builder are fold-only: the importer refuses them on computed inputs.
pub(crate) const FOLDABLE: &[&str] = &[
    "Constant",
    "ConstantOfShape",
    "Shape",
    "Size",
    "Identity",
    "Cast",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Reshape",
    "Slice",
    "Flatten",
    "Transpose",
    "Expand",
    "Tile",
    "Range",
    "Where",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Mod",
    "Pow",
    "Min",
    "Max",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "Neg",
    "Abs",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "Relu",
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Sigmoid",
    "Tanh",
    "Erf",
    "QuantizeLinear",
    "DequantizeLinear",
];

fn axes_of(ctx: &Ctx, n: &OnnxNode, input: usize) -> Result<Option<Vec<i64>>> {
    if n.opset >= 13 { Ok(ctx.konst(n, input, "axes")?.map(Const::to_i64_vec)) } else { n.attr_opt::<Vec<i64>>("axes") }
}

/// Evaluate `n` if it can be folded (its inputs are constants, or it is a `Shape`). Returns the
/// output, or `None` when the node must be built as an IR node instead.
pub(crate) fn try_fold(ctx: &Ctx, n: &OnnxNode) -> Result<Option<Const>> {
    let op = n.op();
    if !FOLDABLE.contains(&op) {
        return Ok(None);
    }
    if op == "Shape" {
        let shape = ctx.shape(n, 0)?;
        let rank = shape.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let start = clamp(n.attr_or("start", 0i64)?);
        let end = clamp(n.attr_or("end", rank)?);
        let dims: Vec<f64> = shape[start..end.max(start)].iter().map(|&d| d as f64).collect();
        let batch = (0..dims.len()).map(|i| ctx.has_batch && start + i == 0 && !ctx.is_const(n, 0)).collect();
        let len = dims.len();
        let mut c = Const::new(DType::I64, ArrayD::from_shape_vec(vec![len], dims).expect("1-D"));
        c.batch = Some(batch);
        return Ok(Some(c));
    }
    let all_const = n.proto.input.iter().filter(|s| !s.is_empty()).all(|s| ctx.consts.contains_key(s));
    if !all_const {
        return Ok(None);
    }
    let x = || ctx.require_const(n, 0, "data");
    let out = fold_op(ctx, n, op, x)?;
    if let Some(c) = &out {
        // Every folded result is charged to the import's budget; ops whose result can be larger
        // than their inputs checked it before computing.
        ctx.charge_fold(n, c.data.shape())?;
    }
    Ok(out)
}

fn fold_op<'c>(ctx: &'c Ctx, n: &OnnxNode, op: &str, x: impl Fn() -> Result<&'c Const>) -> Result<Option<Const>> {
    let out = match op {
        "Constant" => constant(ctx, n)?,
        "ConstantOfShape" => {
            let shape: Vec<usize> = x()?.to_i64_vec().iter().map(|&d| d.max(0) as usize).collect();
            ctx.check_fold(n, &shape)?;
            let value = match n.attr_opt::<TensorProto>("value")? {
                Some(t) => decode_tensor(&t, &ctx.file)?,
                None => Const::new(DType::F32, ArrayD::zeros(vec![1])),
            };
            let v = value.data.iter().next().copied().unwrap_or(0.0);
            Const::new(value.dtype, ArrayD::from_elem(IxDyn(&shape), v))
        }
        "Identity" => x()?.clone(),
        "Cast" => {
            let to: i64 = n.attr("to")?;
            let dtype =
                DType::from_onnx(to as i32).ok_or_else(|| n.bad_attr("to", &format!("unsupported type {to}")))?;
            let src = x()?;
            Const { elem: to as i32, batch: src.batch.clone(), ..Const::new(dtype, src.data.mapv(|v| dtype.coerce(v))) }
        }
        "Gather" => {
            let data = x()?;
            let idx = ctx.require_const(n, 1, "indices")?;
            if data.data.ndim() == 0 {
                return Err(n.unsupported("Gather of a scalar"));
            }
            let axis = n.axis("axis", n.attr_or("axis", 0i64)?, data.data.ndim())?;
            let len = data.data.shape()[axis] as i64;
            // Output shape: data.shape[..axis] + indices.shape + data.shape[axis+1..].
            let mut shape = data.data.shape()[..axis].to_vec();
            shape.extend_from_slice(idx.data.shape());
            shape.extend_from_slice(&data.data.shape()[axis + 1..]);
            ctx.check_fold(n, &shape)?;
            let picks: Vec<usize> = idx
                .to_i64_vec()
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + len } else { i };
                    if j < 0 || j >= len {
                        Err(n.unsupported(format!("index {i} out of range {len}")))
                    } else {
                        Ok(j as usize)
                    }
                })
                .collect::<Result<_>>()?;
            let sel = data.data.select(Axis(axis), &picks);
            let values: Vec<f64> = sel.iter().copied().collect();
            let batch = data.batch.as_ref().filter(|_| axis == 0).map(|b| picks.iter().map(|&p| b[p]).collect());
            data.moved(ArrayD::from_shape_vec(shape, values).expect("sizes agree"), batch)
        }
        "Unsqueeze" => {
            let src = x()?;
            let axes = axes_of(ctx, n, 1)?.ok_or_else(|| n.bad_attr("axes", "missing"))?;
            let rank = src.data.ndim() + axes.len();
            let mut axes: Vec<usize> = axes.iter().map(|&a| n.axis("axes", a, rank)).collect::<Result<_>>()?;
            axes.sort_unstable();
            let mut shape = src.data.shape().to_vec();
            for &a in &axes {
                shape.insert(a, 1);
            }
            let batch = src.batch.clone().filter(|b| b.len() == src.data.len());
            src.moved(reshape(&src.data, shape), batch)
        }
        "Squeeze" => {
            let src = x()?;
            let rank = src.data.ndim();
            let axes = match axes_of(ctx, n, 1)? {
                Some(a) => a.iter().map(|&a| n.axis("axes", a, rank)).collect::<Result<Vec<_>>>()?,
                None => (0..rank).filter(|&i| src.data.shape()[i] == 1).collect(),
            };
            let shape: Vec<usize> =
                src.data.shape().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
            src.moved(reshape(&src.data, shape), src.batch.clone())
        }
        "Concat" => {
            let parts: Vec<&Const> =
                (0..n.proto.input.len()).map(|i| ctx.require_const(n, i, "input")).collect::<Result<_>>()?;
            let rank = parts[0].data.ndim();
            let axis = n.axis("axis", n.attr("axis")?, rank)?;
            let views: Vec<_> = parts.iter().map(|c| c.data.view()).collect();
            let data = ndarray::concatenate(Axis(axis), &views).map_err(|e| n.unsupported(format!("concat: {e}")))?;
            let batch = if rank == 1 {
                Some(parts.iter().flat_map(|p| p.batch.clone().unwrap_or_else(|| vec![false; p.data.len()])).collect())
            } else {
                None
            };
            let quant = parts[0].quant.filter(|q| parts.iter().all(|p| p.quant == Some(*q)));
            Const { quant, ..parts[0].moved(data, batch) }
        }
        "Reshape" => {
            let src = x()?;
            let target = if n.opset >= 5 { ctx.require_const(n, 1, "shape")?.to_i64_vec() } else { n.attr("shape")? };
            let shape = reshape_target(src.data.shape(), &target)
                .ok_or_else(|| n.unsupported(format!("cannot reshape {:?} to {target:?}", src.data.shape())))?;
            src.moved(reshape(&src.data, shape), None)
        }
        "Flatten" => {
            let src = x()?;
            let rank = src.data.ndim();
            let a = n.attr_or("axis", 1i64)?;
            let axis = if a < 0 { (a + rank as i64).max(0) as usize } else { (a as usize).min(rank) };
            let s = src.data.shape();
            src.moved(reshape(&src.data, vec![s[..axis].iter().product(), s[axis..].iter().product()]), None)
        }
        "Transpose" => {
            let src = x()?;
            let rank = src.data.ndim();
            let perm: Vec<usize> = match n.attr_opt::<Vec<i64>>("perm")? {
                Some(p) => p.iter().map(|&a| n.axis("perm", a, rank)).collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            src.moved(src.data.clone().permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned(), None)
        }
        "Slice" => slice(ctx, n)?,
        "Size" => Const::new(DType::I64, ArrayD::from_elem(vec![], x()?.data.len() as f64)),
        "Expand" => {
            let src = x()?;
            let target: Vec<usize> =
                ctx.require_const(n, 1, "shape")?.to_i64_vec().iter().map(|&d| d.max(0) as usize).collect();
            let shape = broadcast(src.data.shape(), &target)
                .ok_or_else(|| n.unsupported(format!("cannot expand {:?} to {target:?}", src.data.shape())))?;
            ctx.check_fold(n, &shape)?;
            let data = src.data.broadcast(IxDyn(&shape)).expect("checked").to_owned();
            src.moved(data, None)
        }
        "Tile" => {
            let src = x()?;
            let reps = ctx.require_const(n, 1, "repeats")?.to_i64_vec();
            let s = src.data.shape().to_vec();
            if reps.len() != s.len() || reps.iter().any(|&r| r < 0) {
                return Err(n.unsupported(format!("repeats {reps:?} for a rank-{} input", s.len())));
            }
            let shape: Vec<usize> = s
                .iter()
                .zip(&reps)
                .map(|(&d, &r)| usize::try_from(r).ok().and_then(|r| d.checked_mul(r)))
                .collect::<Option<_>>()
                .ok_or_else(|| n.unsupported(format!("repeats {reps:?} of {s:?} overflow")))?;
            ctx.check_fold(n, &shape)?;
            let data = ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                let src_ix: Vec<usize> = (0..s.len()).map(|i| ix[i] % s[i]).collect();
                src.data[IxDyn(&src_ix)]
            });
            src.moved(data, None)
        }
        "Range" => {
            let scalar = |i: usize, what: &str| -> Result<(DType, f64)> {
                let c = ctx.require_const(n, i, what)?;
                let v = c.data.iter().next().copied().ok_or_else(|| n.unsupported(format!("empty {what}")))?;
                Ok((c.dtype, v))
            };
            let ((dtype, start), (_, limit), (_, delta)) =
                (scalar(0, "start")?, scalar(1, "limit")?, scalar(2, "delta")?);
            if delta == 0.0 {
                return Err(n.unsupported("Range with delta 0"));
            }
            let steps = ((limit - start) / delta).ceil().max(0.0);
            if !steps.is_finite() {
                return Err(n.unsupported(format!("Range from {start} to {limit} by {delta}")));
            }
            let count = steps as usize;
            ctx.check_fold(n, &[count])?;
            let values: Vec<f64> = (0..count).map(|i| dtype.coerce(start + i as f64 * delta)).collect();
            Const::new(dtype, ArrayD::from_shape_vec(vec![count], values).expect("1-D"))
        }
        "Where" => {
            let (c, a, b) = (x()?, ctx.require_const(n, 1, "X")?, ctx.require_const(n, 2, "Y")?);
            let shape = broadcast(c.data.shape(), a.data.shape())
                .and_then(|s| broadcast(&s, b.data.shape()))
                .ok_or_else(|| n.unsupported("condition, X and Y do not broadcast together"))?;
            ctx.check_fold(n, &shape)?;
            let v = |t: &Const| t.data.broadcast(IxDyn(&shape)).expect("checked").to_owned();
            let (cv, av, bv) = (v(c), v(a), v(b));
            let data = Zip::from(&cv).and(&av).and(&bv).map_collect(|&c, &a, &b| if c != 0.0 { a } else { b });
            // A 1-D shape vector keeps the batch flags of the entries it takes.
            let batch = (shape.len() == 1).then(|| {
                let flags = |t: &Const| t.batch.clone().filter(|f| f.len() == shape[0]);
                let (fa, fb) = (flags(a), flags(b));
                (0..shape[0])
                    .map(|i| {
                        let pick = if cv[i] != 0.0 { &fa } else { &fb };
                        pick.as_ref().is_some_and(|f| f[i])
                    })
                    .collect()
            });
            Const { elem: a.elem, batch, ..Const::new(a.dtype, data) }
        }
        "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Pow" => {
            let (a, b) = (x()?, ctx.require_const(n, 1, "B")?);
            let fmod = n.attr_or("fmod", 0i64)? != 0;
            let int = a.dtype != DType::F32;
            let dtype = a.dtype;
            let data = zip2(ctx, n, a, b, |x, y| match op {
                "Add" => x + y,
                "Sub" => x - y,
                "Mul" => x * y,
                "Div" if int && y == 0.0 => 0.0,
                "Div" => x / y,
                "Mod" if y == 0.0 => 0.0,
                // fmod: the sign of the dividend (C fmod); otherwise the sign of the divisor.
                "Mod" if fmod => x % y,
                "Mod" => x - y * (x / y).floor(),
                _ => x.powf(y),
            })?;
            Const::new(dtype, data.mapv(|v| dtype.coerce(v)))
        }
        "Min" | "Max" => {
            let mut acc = x()?.clone();
            acc.batch = None;
            for i in 1..n.proto.input.len() {
                let b = ctx.require_const(n, i, "input")?;
                let data = zip2(ctx, n, &acc, b, |x, y| if op == "Min" { x.min(y) } else { x.max(y) })?;
                acc = Const::new(acc.dtype, data);
            }
            acc
        }
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor" => {
            let (a, b) = (x()?, ctx.require_const(n, 1, "B")?);
            let data = zip2(ctx, n, a, b, |x, y| {
                let t = match op {
                    "Equal" => x == y,
                    "Less" => x < y,
                    "Greater" => x > y,
                    "LessOrEqual" => x <= y,
                    "GreaterOrEqual" => x >= y,
                    "And" => x != 0.0 && y != 0.0,
                    "Or" => x != 0.0 || y != 0.0,
                    _ => (x != 0.0) != (y != 0.0),
                };
                t as u8 as f64
            })?;
            Const::new(DType::Bool, data)
        }
        "Not" => Const::new(DType::Bool, x()?.data.mapv(|v| (v == 0.0) as u8 as f64)),
        "Neg" => unary(x()?, |v| -v),
        "Abs" => unary(x()?, f64::abs),
        "Sign" => unary(x()?, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        "Floor" => unary(x()?, f64::floor),
        "Ceil" => unary(x()?, f64::ceil),
        // Round half to even.
        "Round" => unary(x()?, |v| {
            let r = v.round();
            if (v - v.trunc()).abs() == 0.5 { 2.0 * (v / 2.0).round() } else { r }
        }),
        "Relu" => unary(x()?, |v| v.max(0.0)),
        "Sqrt" => unary(x()?, f64::sqrt),
        "Reciprocal" => unary(x()?, |v| 1.0 / v),
        "Exp" => unary(x()?, f64::exp),
        "Sigmoid" => unary(x()?, |v| 1.0 / (1.0 + (-v).exp())),
        "Tanh" => unary(x()?, f64::tanh),
        "Erf" => unary(x()?, masq_ir::special::erf),
        "QuantizeLinear" => crate::qdq::fold_quantize(ctx, n)?,
        "DequantizeLinear" => crate::qdq::fold_dequantize(ctx, n)?,
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn unary(c: &Const, f: impl Fn(f64) -> f64) -> Const {
    Const::new(c.dtype, c.data.mapv(|v| c.dtype.coerce(f(v))))
}

/// `f` element-wise over two constants broadcast together.
fn zip2(ctx: &Ctx, n: &OnnxNode, a: &Const, b: &Const, f: impl Fn(f64, f64) -> f64) -> Result<ArrayD<f64>> {
    let shape = broadcast(a.data.shape(), b.data.shape())
        .ok_or_else(|| n.unsupported(format!("cannot broadcast {:?} with {:?}", a.data.shape(), b.data.shape())))?;
    ctx.check_fold(n, &shape)?;
    let (av, bv) =
        (a.data.broadcast(IxDyn(&shape)).expect("checked"), b.data.broadcast(IxDyn(&shape)).expect("checked"));
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

fn reshape(a: &ArrayD<f64>, shape: Vec<usize>) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(&shape), a.iter().copied().collect()).expect("element counts agree")
}

fn constant(ctx: &Ctx, n: &OnnxNode) -> Result<Const> {
    if let Some(t) = n.attr_opt::<TensorProto>("value")? {
        return decode_tensor(&t, &ctx.file);
    }
    if let Some(v) = n.attr_opt::<f32>("value_float")? {
        return Ok(Const::new(DType::F32, ArrayD::from_elem(vec![], v as f64)));
    }
    if let Some(v) = n.attr_opt::<Vec<f32>>("value_floats")? {
        return Ok(Const::new(
            DType::F32,
            ArrayD::from_shape_vec(vec![v.len()], v.iter().map(|&x| x as f64).collect()).expect("1-D"),
        ));
    }
    if let Some(v) = n.attr_opt::<i64>("value_int")? {
        return Ok(Const::new(DType::I64, ArrayD::from_elem(vec![], v as f64)));
    }
    if let Some(v) = n.attr_opt::<Vec<i64>>("value_ints")? {
        return Ok(Const::new(
            DType::I64,
            ArrayD::from_shape_vec(vec![v.len()], v.iter().map(|&x| x as f64).collect()).expect("1-D"),
        ));
    }
    Err(n.unsupported("Constant without a value, value_float(s) or value_int(s) attribute"))
}

/// One axis of a Slice, normalised against the input shape by the ONNX rules: negative starts
/// and ends count from the end; with a positive step both are clamped to `[0, len]`, with a
/// negative step the start to `[0, len - 1]` and the end to `[-1, len - 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SliceArg {
    pub axis: usize,
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl SliceArg {
    /// The indices taken, in order.
    pub fn indices(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut i = self.start;
        while (self.step > 0 && i < self.end) || (self.step < 0 && i > self.end) {
            out.push(i as usize);
            i += self.step;
        }
        out
    }

    /// Whether the slice takes the whole axis of length `len` in order.
    pub fn is_whole(&self, len: usize) -> bool {
        self.step == 1 && self.start == 0 && self.end >= len as i64
    }
}

/// Slice arguments normalised against a shape (one entry per sliced axis, axes distinct).
pub(crate) fn slice_args(ctx: &Ctx, n: &OnnxNode, shape: &[usize]) -> Result<Vec<SliceArg>> {
    let rank = shape.len();
    let (starts, ends, axes, steps) = if n.opset >= 10 {
        let get =
            |i: usize, what: &str| -> Result<Option<Vec<i64>>> { Ok(ctx.konst(n, i, what)?.map(Const::to_i64_vec)) };
        (get(1, "starts")?.unwrap_or_default(), get(2, "ends")?.unwrap_or_default(), get(3, "axes")?, get(4, "steps")?)
    } else {
        (n.attr("starts")?, n.attr("ends")?, n.attr_opt("axes")?, None)
    };
    if starts.len() != ends.len() {
        return Err(n.unsupported("starts and ends differ in length"));
    }
    let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(n.unsupported("starts, ends, axes and steps differ in length"));
    }
    let mut out: Vec<SliceArg> = Vec::new();
    for i in 0..starts.len() {
        let axis = n.axis("axes", axes[i], rank)?;
        if out.iter().any(|a| a.axis == axis) {
            return Err(n.unsupported(format!("axis {axis} is sliced twice")));
        }
        let len = shape[axis] as i64;
        let step = steps[i];
        if step == 0 {
            return Err(n.unsupported("slice step 0"));
        }
        let abs = |v: i64| if v < 0 { v.saturating_add(len) } else { v };
        let (start, end) = if step > 0 {
            (abs(starts[i]).clamp(0, len), abs(ends[i]).clamp(0, len))
        } else if len == 0 {
            (0, 0)
        } else {
            (abs(starts[i]).clamp(0, len - 1), abs(ends[i]).clamp(-1, len - 1))
        };
        out.push(SliceArg { axis, start, end, step });
    }
    Ok(out)
}

fn slice(ctx: &Ctx, n: &OnnxNode) -> Result<Const> {
    let src = ctx.require_const(n, 0, "data")?;
    let args = slice_args(ctx, n, src.data.shape())?;
    let mut data = src.data.clone();
    for a in &args {
        data = data.select(Axis(a.axis), &a.indices());
    }
    let batch = match (&src.batch, args.as_slice()) {
        (Some(b), [a]) if a.axis == 0 => Some(a.indices().iter().map(|&i| b[i]).collect()),
        _ => None,
    };
    Ok(src.moved(data, batch))
}
