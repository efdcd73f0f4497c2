//! Constant folding at the ONNX level: shape arithmetic as torch exports it
//! (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`), `Constant`, casts and arithmetic on
//! constants. Runs during the build phase, because builders read folded values (a Reshape target).

use ndarray::{ArrayD, Axis, IxDyn, Slice, Zip};

use crate::ctx::{Ctx, OnnxNode};
use crate::proto::TensorProto;
use crate::tensor::{Const, DType, decode_tensor};
use masq_ir::Result;
use masq_ir::shape::{broadcast, reshape_target};

/// Ops this folder can evaluate.
pub(crate) const FOLDABLE: &[&str] = &[
    "Constant",
    "ConstantOfShape",
    "Shape",
    "Identity",
    "Cast",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Reshape",
    "Slice",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Sqrt",
    "Reciprocal",
    "Flatten",
    "Transpose",
];

/// Ops that only exist as constant computations (no IR op).
pub(crate) const FOLD_ONLY: &[&str] =
    &["Constant", "ConstantOfShape", "Shape", "Cast", "Gather", "Neg", "Sqrt", "Reciprocal"];

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
    let out = match op {
        "Constant" => constant(ctx, n)?,
        "ConstantOfShape" => {
            let shape: Vec<usize> = x()?.to_i64_vec().iter().map(|&d| d.max(0) as usize).collect();
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
            Const { dtype, data: src.data.mapv(|v| dtype.coerce(v)), batch: src.batch.clone() }
        }
        "Gather" => {
            let data = x()?;
            let idx = ctx.require_const(n, 1, "indices")?;
            let axis = n.axis("axis", n.attr_or("axis", 0i64)?, data.data.ndim())?;
            let len = data.data.shape()[axis] as i64;
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
            // Output shape: data.shape[..axis] + indices.shape + data.shape[axis+1..].
            let mut shape = data.data.shape()[..axis].to_vec();
            shape.extend_from_slice(idx.data.shape());
            shape.extend_from_slice(&data.data.shape()[axis + 1..]);
            let values: Vec<f64> = sel.iter().copied().collect();
            let batch = data.batch.as_ref().filter(|_| axis == 0).map(|b| picks.iter().map(|&p| b[p]).collect());
            Const { dtype: data.dtype, data: ArrayD::from_shape_vec(shape, values).expect("sizes agree"), batch }
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
            Const { dtype: src.dtype, data: reshape(&src.data, shape), batch }
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
            Const { dtype: src.dtype, data: reshape(&src.data, shape), batch: src.batch.clone() }
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
            Const { dtype: parts[0].dtype, data, batch }
        }
        "Reshape" => {
            let src = x()?;
            let target = if n.opset >= 5 { ctx.require_const(n, 1, "shape")?.to_i64_vec() } else { n.attr("shape")? };
            let shape = reshape_target(src.data.shape(), &target)
                .ok_or_else(|| n.unsupported(format!("cannot reshape {:?} to {target:?}", src.data.shape())))?;
            Const::new(src.dtype, reshape(&src.data, shape))
        }
        "Flatten" => {
            let src = x()?;
            let rank = src.data.ndim();
            let a = n.attr_or("axis", 1i64)?;
            let axis = if a < 0 { (a + rank as i64).max(0) as usize } else { (a as usize).min(rank) };
            let s = src.data.shape();
            Const::new(src.dtype, reshape(&src.data, vec![s[..axis].iter().product(), s[axis..].iter().product()]))
        }
        "Transpose" => {
            let src = x()?;
            let rank = src.data.ndim();
            let perm: Vec<usize> = match n.attr_opt::<Vec<i64>>("perm")? {
                Some(p) => p.iter().map(|&a| n.axis("perm", a, rank)).collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            Const::new(src.dtype, src.data.clone().permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned())
        }
        "Slice" => slice(ctx, n)?,
        "Neg" => unary(x()?, |v| -v),
        "Sqrt" => unary(x()?, f64::sqrt),
        "Reciprocal" => unary(x()?, |v| 1.0 / v),
        "Add" | "Sub" | "Mul" | "Div" => {
            let (a, b) = (x()?, ctx.require_const(n, 1, "B")?);
            let shape = broadcast(a.data.shape(), b.data.shape()).ok_or_else(|| {
                n.unsupported(format!("cannot broadcast {:?} with {:?}", a.data.shape(), b.data.shape()))
            })?;
            let (av, bv) =
                (a.data.broadcast(IxDyn(&shape)).expect("checked"), b.data.broadcast(IxDyn(&shape)).expect("checked"));
            let dtype = a.dtype;
            let data = Zip::from(&av).and(&bv).map_collect(|&x, &y| {
                dtype.coerce(match op {
                    "Add" => x + y,
                    "Sub" => x - y,
                    "Mul" => x * y,
                    _ => x / y,
                })
            });
            Const::new(dtype, data)
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn unary(c: &Const, f: impl Fn(f64) -> f64) -> Const {
    Const::new(c.dtype, c.data.mapv(|v| c.dtype.coerce(f(v))))
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

/// Slice arguments normalised against a shape: (axis, start, end, step) with positive steps.
pub(crate) fn slice_args(ctx: &Ctx, n: &OnnxNode, shape: &[usize]) -> Result<Vec<(usize, usize, usize, usize)>> {
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
    let mut out = Vec::new();
    for i in 0..starts.len() {
        let axis = n.axis("axes", axes[i], rank)?;
        let len = shape[axis] as i64;
        if steps[i] <= 0 {
            return Err(n.unsupported("only positive slice steps are supported"));
        }
        let norm = |v: i64| (if v < 0 { v + len } else { v }).clamp(0, len) as usize;
        out.push((axis, norm(starts[i]), norm(ends[i]), steps[i] as usize));
    }
    Ok(out)
}

fn slice(ctx: &Ctx, n: &OnnxNode) -> Result<Const> {
    let src = ctx.require_const(n, 0, "data")?;
    let args = slice_args(ctx, n, src.data.shape())?;
    let mut view = src.data.view();
    for &(axis, start, end, step) in &args {
        view.slice_axis_inplace(Axis(axis), Slice::new(start as isize, Some(end.max(start) as isize), step as isize));
    }
    let batch = match (&src.batch, args.as_slice()) {
        (Some(b), [(0, s, e, st)]) => Some((*s..(*e).max(*s)).step_by(*st).map(|i| b[i]).collect()),
        _ => None,
    };
    Ok(Const { dtype: src.dtype, data: view.to_owned(), batch })
}
