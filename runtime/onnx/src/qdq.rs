//! The QDQ format's arithmetic, shared by the importer and the exporter: the integer types of
//! QuantizeLinear / DequantizeLinear with their ranges, the exporter's choice of type for a grid,
//! the scale and zero point of a node (per tensor, per axis, blocked), and both ops evaluated on
//! constants as the ONNX spec defines them, in f32:
//! `QuantizeLinear: y = saturate(round_half_even(x / scale) + zero_point)`,
//! `DequantizeLinear: y = (x − zero_point) · scale`.

use ndarray::ArrayD;

use crate::annotation::weight_grid_from_doc_string;
use crate::ctx::{Ctx, OnnxNode};
use crate::proto::{TensorProto, data_type};
use crate::tensor::{Const, DType, type_name};
use masq_ir::{IrError, QuantParams, Result};

/// An integer element type of the QDQ format, with its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntType {
    /// The ONNX element type (`data_type::*`).
    pub elem: i32,
    pub min: i32,
    pub max: i32,
}

impl IntType {
    pub const INT8: IntType = IntType { elem: data_type::INT8, min: -128, max: 127 };
    pub const UINT8: IntType = IntType { elem: data_type::UINT8, min: 0, max: 255 };
    pub const INT16: IntType = IntType { elem: data_type::INT16, min: -32768, max: 32767 };
    pub const UINT16: IntType = IntType { elem: data_type::UINT16, min: 0, max: 65535 };
    /// DequantizeLinear only (a quantized bias).
    pub const INT32: IntType = IntType { elem: data_type::INT32, min: i32::MIN, max: i32::MAX };

    /// The type of an ONNX element type, if it is one of the above.
    pub fn of(elem: i32) -> Option<IntType> {
        [Self::INT8, Self::UINT8, Self::INT16, Self::UINT16, Self::INT32].into_iter().find(|t| t.elem == elem)
    }

    pub fn name(&self) -> String {
        type_name(self.elem)
    }

    /// The first opset whose QuantizeLinear takes this type (DequantizeLinear: INT32 from 10).
    pub fn min_opset(&self) -> i64 {
        if matches!(self.elem, data_type::INT16 | data_type::UINT16) { 21 } else { 10 }
    }

    fn holds(&self, q: &QuantParams) -> bool {
        self.min <= q.qmin && q.qmax <= self.max
    }

    /// Whether the type's range is exactly the grid's.
    pub fn is_exact(&self, q: &QuantParams) -> bool {
        self.min == q.qmin && self.max == q.qmax
    }
}

/// The type the exporter writes the integers of grid `q` in: of INT8 and UINT8, then (opset 21 on)
/// INT16 and UINT16, the first width with a type that holds `[qmin, qmax]`; within a width the type
/// whose range is exactly the grid's, else the signed one for a range with negative values, else
/// the unsigned one. A narrower range than the type's needs a Clip after the DequantizeLinear.
pub fn export_type(q: &QuantParams, opset: i64) -> std::result::Result<IntType, String> {
    for (signed, unsigned) in [(IntType::INT8, IntType::UINT8), (IntType::INT16, IntType::UINT16)] {
        let order = if q.qmin < 0 { [signed, unsigned] } else { [unsigned, signed] };
        let pick = order.iter().find(|t| t.is_exact(q)).or_else(|| order.iter().find(|t| t.holds(q)));
        if let Some(&t) = pick {
            if opset < t.min_opset() {
                return Err(format!(
                    "the range [{}, {}] ({} bits) needs {} QuantizeLinear/DequantizeLinear, opset {} or later",
                    q.qmin,
                    q.qmax,
                    q.bits(),
                    t.name(),
                    t.min_opset()
                ));
            }
            return Ok(t);
        }
    }
    Err(format!("the range [{}, {}] fits no 8- or 16-bit integer type of QuantizeLinear", q.qmin, q.qmax))
}

/// Where the scale and zero point of a node apply, on the flat (row-major) input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Tensor,
    /// One entry per index of the axis, which has `dim` indices and `inner` elements after it.
    Axis {
        dim: usize,
        inner: usize,
    },
    /// Blocks of `block` indices along the axis; the parameters have `sdim` entries there.
    Blocked {
        dim: usize,
        inner: usize,
        block: usize,
        sdim: usize,
    },
}

impl Layout {
    /// The parameter entry of flat input element `i`.
    fn index(&self, i: usize) -> usize {
        match *self {
            Layout::Tensor => 0,
            Layout::Axis { dim, inner } => (i / inner) % dim,
            Layout::Blocked { dim, inner, block, sdim } => {
                let (outer, along, rest) = (i / (dim * inner), (i / inner) % dim, i % inner);
                (outer * sdim + along / block) * inner + rest
            }
        }
    }
}

/// The scale and zero point of one QuantizeLinear / DequantizeLinear node (flattened), their
/// layout on the input and the integer type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub ty: IntType,
    pub layout: Layout,
}

fn malformed(ctx: &Ctx, n: &OnnxNode, reason: String) -> IrError {
    IrError::MalformedNode { file: ctx.file.clone(), node: format!("{} ({})", n.name, n.op()), reason }
}

impl Params {
    /// Reads the constant scale (input 1) and zero point (input 2, default 0) of `n` for an input
    /// of shape `x_shape` whose integers are of type `ty`; a zero point of another type is refused.
    pub(crate) fn read(ctx: &Ctx, n: &OnnxNode, x_shape: &[usize], ty: IntType) -> Result<Params> {
        let (sname, zname) =
            if n.op() == "QuantizeLinear" { ("y_scale", "y_zero_point") } else { ("x_scale", "x_zero_point") };
        let scale = ctx.require_const(n, 1, sname)?;
        if scale.dtype != DType::F32 {
            return Err(n.unsupported(format!("{sname} of type {} (masq reads float scales)", type_name(scale.elem))));
        }
        let zp = ctx.konst(n, 2, zname)?;
        if let Some(z) = zp
            && z.elem != ty.elem
        {
            return Err(n.unsupported(format!("{zname} is {} but the integers are {}", type_name(z.elem), ty.name())));
        }
        let layout = layout(n, x_shape, scale.data.shape())?;
        if let Some(z) = zp
            && z.data.shape() != scale.data.shape()
            && !(layout == Layout::Tensor && z.data.len() == 1)
        {
            return Err(n.unsupported(format!(
                "{zname} of shape {:?} for {sname} of shape {:?}",
                z.data.shape(),
                scale.data.shape()
            )));
        }
        let scale: Vec<f32> = scale.data.iter().map(|&v| v as f32).collect();
        if let Some((i, s)) = scale.iter().enumerate().find(|(_, s)| !(s.is_finite() && **s > 0.0)) {
            return Err(malformed(ctx, n, format!("{sname}[{i}] = {s} is not a finite positive number")));
        }
        let zero_point: Vec<i64> = match zp {
            Some(z) => z.data.iter().map(|&v| v as i64).collect(),
            None => vec![0; scale.len()],
        };
        if let Some(z) = zero_point.iter().find(|&&z| z < i64::from(ty.min) || z > i64::from(ty.max)) {
            return Err(malformed(ctx, n, format!("{zname} {z} is outside the range of {}", ty.name())));
        }
        Ok(Params { scale, zero_point, ty, layout })
    }

    /// The parameters as one grid over the type's whole range, when they are per tensor (an INT32
    /// bias is no grid masq records).
    pub(crate) fn per_tensor(&self) -> Option<QuantParams> {
        (self.layout == Layout::Tensor && self.ty != IntType::INT32).then(|| QuantParams {
            scale: self.scale[0],
            zero_point: self.zero_point[0] as i32,
            qmin: self.ty.min,
            qmax: self.ty.max,
        })
    }
}

/// The layout of parameters of shape `s` on an input of shape `x` (`axis`, default 1, and
/// `block_size`, default 0, attributes).
fn layout(n: &OnnxNode, x: &[usize], s: &[usize]) -> Result<Layout> {
    let block = n.attr_or("block_size", 0i64)?;
    if block < 0 {
        return Err(n.bad_attr("block_size", &format!("{block} is negative")));
    }
    let len: usize = s.iter().product();
    if block == 0 && len == 1 && s.len() <= 1 {
        return Ok(Layout::Tensor);
    }
    let bad = |why: &str| n.unsupported(format!("scale of shape {s:?} for an input of shape {x:?}: {why}"));
    if x.is_empty() {
        return Err(bad("per-axis parameters for a scalar input"));
    }
    let axis = n.axis("axis", n.attr_or("axis", 1i64)?, x.len())?;
    let (dim, inner) = (x[axis], x[axis + 1..].iter().product::<usize>());
    if block == 0 {
        if s != [dim] {
            return Err(bad(&format!("per-axis parameters (axis {axis}) must be 1-D of length {dim}")));
        }
        return Ok(Layout::Axis { dim, inner });
    }
    let block = block as usize;
    let sdim = dim.div_ceil(block);
    let fits = s.len() == x.len() && (0..x.len()).all(|d| if d == axis { s[d] == sdim } else { s[d] == x[d] });
    if !fits {
        return Err(bad(&format!("blocks of {block} along axis {axis} need parameters with {sdim} entries there")));
    }
    Ok(Layout::Blocked { dim, inner, block, sdim })
}

/// The integer type of a QuantizeLinear: its zero point's type, else its `output_dtype` (opset
/// 21), else UINT8. Refuses other types (4-bit and 8-bit float types are refused when decoded).
pub(crate) fn quantize_type(ctx: &Ctx, n: &OnnxNode) -> Result<IntType> {
    let precision = n.attr_or("precision", 0i64)?;
    if precision != 0 && precision != i64::from(data_type::FLOAT) {
        return Err(n.unsupported(format!("precision {} (masq divides in FLOAT)", type_name(precision as i32))));
    }
    let zp = ctx.konst(n, 2, "y_zero_point")?.map(|z| z.elem);
    let out = n.attr_or("output_dtype", 0i64)? as i32;
    let elem = match (zp, out) {
        (Some(z), o) if o != 0 && o != z => {
            return Err(n.bad_attr(
                "output_dtype",
                &format!("{} disagrees with the zero point's type {}", type_name(o), type_name(z)),
            ));
        }
        (Some(z), _) => z,
        (None, 0) => data_type::UINT8,
        (None, o) => o,
    };
    IntType::of(elem).filter(|t| *t != IntType::INT32).ok_or_else(|| {
        n.unsupported(format!("quantization to {} (masq reads INT8, UINT8, INT16 and UINT16)", type_name(elem)))
    })
}

/// Refuses a DequantizeLinear `output_dtype` (opset 23) other than FLOAT.
pub(crate) fn check_dequantize_output(n: &OnnxNode) -> Result<()> {
    match n.attr_or("output_dtype", 0i64)? as i32 {
        0 | data_type::FLOAT => Ok(()),
        t => Err(n.unsupported(format!("output_dtype {} (masq computes in FLOAT)", type_name(t)))),
    }
}

/// ONNX QuantizeLinear of one value (the rule of [`QuantParams::quantize`]).
fn quantize_value(x: f32, scale: f32, zero_point: i64, ty: IntType) -> i64 {
    let q = (x / scale).round_ties_even() + zero_point as f32;
    q.clamp(ty.min as f32, ty.max as f32) as i64
}

/// QuantizeLinear of a constant: integers of the node's type.
pub(crate) fn fold_quantize(ctx: &Ctx, n: &OnnxNode) -> Result<Const> {
    let x = ctx.require_const(n, 0, "x")?;
    if x.dtype == DType::Bool {
        return Err(n.unsupported("QuantizeLinear of a BOOL tensor"));
    }
    let ty = quantize_type(ctx, n)?;
    let p = Params::read(ctx, n, x.data.shape(), ty)?;
    let data = x.data.iter().enumerate().map(|(i, &v)| {
        let k = p.layout.index(i);
        quantize_value(v as f32, p.scale[k], p.zero_point[k], ty) as f64
    });
    let data = ArrayD::from_shape_vec(x.data.raw_dim(), data.collect()).expect("one value per input element");
    Ok(Const { elem: ty.elem, ..Const::new(DType::I64, data) })
}

/// DequantizeLinear of a constant: f32 values; a per-tensor one records its grid in
/// [`Const::quant`] (the range of the type, or the narrower one of masq's annotation).
pub(crate) fn fold_dequantize(ctx: &Ctx, n: &OnnxNode) -> Result<Const> {
    check_dequantize_output(n)?;
    let x = ctx.require_const(n, 0, "x")?;
    let ty = IntType::of(x.elem).ok_or_else(|| {
        n.unsupported(format!(
            "DequantizeLinear of {} (masq reads INT8, UINT8, INT16, UINT16 and INT32)",
            type_name(x.elem)
        ))
    })?;
    let p = Params::read(ctx, n, x.data.shape(), ty)?;
    let data = x.data.iter().enumerate().map(|(i, &v)| {
        let k = p.layout.index(i);
        f64::from((v as i64 - p.zero_point[k]) as f32 * p.scale[k])
    });
    let data = ArrayD::from_shape_vec(x.data.raw_dim(), data.collect()).expect("one value per input element");
    let within = |lo: i32, hi: i32| x.data.iter().all(|&v| v >= f64::from(lo) && v <= f64::from(hi));
    let mut quant = p.per_tensor().filter(|q| within(q.qmin, q.qmax));
    if let Some(q) = quant {
        match weight_grid_from_doc_string(&n.proto.doc_string) {
            Some(Err(e)) => return Err(n.bad_attr("doc_string", &format!("malformed grid annotation: {e}"))),
            // The exporter's exact grid, when it fits the node (a stale one is ignored).
            Some(Ok(a))
                if a.scale == q.scale && a.zero_point == q.zero_point && ty.holds(&a) && within(a.qmin, a.qmax) =>
            {
                quant = Some(a);
            }
            _ => {}
        }
    }
    Ok(Const { quant, ..Const::new(DType::F32, data) })
}

/// The grid of an f32 initializer that masq's exporter annotated (a quantized weight no integer
/// type held at the opset), if its values lie on it.
pub(crate) fn initializer_grid(t: &TensorProto, c: &Const, file: &std::path::Path) -> Result<Option<QuantParams>> {
    match weight_grid_from_doc_string(&t.doc_string) {
        None => Ok(None),
        Some(Err(e)) => Err(IrError::Malformed {
            file: file.to_path_buf(),
            reason: format!("tensor {}: malformed grid annotation: {e}", t.name),
        }),
        Some(Ok(q)) => {
            let on_grid = c.dtype == DType::F32 && c.data.iter().all(|&v| q.apply(v as f32) == v as f32);
            Ok(on_grid.then_some(q))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_types_are_the_smallest_that_hold_the_range() {
        let q = |qmin: i32, qmax: i32| QuantParams { scale: 0.5, zero_point: qmin.max(0).min(qmax), qmin, qmax };
        assert_eq!(export_type(&q(-128, 127), 13), Ok(IntType::INT8));
        assert_eq!(export_type(&q(0, 255), 13), Ok(IntType::UINT8));
        assert_eq!(export_type(&q(-32, 31), 13), Ok(IntType::INT8));
        assert_eq!(export_type(&q(0, 63), 13), Ok(IntType::UINT8));
        assert_eq!(export_type(&q(-2048, 2047), 21), Ok(IntType::INT16));
        assert_eq!(export_type(&q(0, 65535), 21), Ok(IntType::UINT16));
        assert!(export_type(&q(-2048, 2047), 20).unwrap_err().contains("opset 21"));
        assert!(export_type(&q(-70000, 70000), 21).is_err());
    }

    #[test]
    fn blocked_and_per_axis_indices() {
        // x [2, 4, 3], axis 1: per axis, entry = index along axis 1.
        let axis = Layout::Axis { dim: 4, inner: 3 };
        assert_eq!((0..24).map(|i| axis.index(i)).collect::<Vec<_>>()[..7], [0, 0, 0, 1, 1, 1, 2]);
        assert_eq!(axis.index(12), 0);
        // Blocks of 2 along axis 1: parameters [2, 2, 3].
        let b = Layout::Blocked { dim: 4, inner: 3, block: 2, sdim: 2 };
        assert_eq!([b.index(0), b.index(3), b.index(6), b.index(11), b.index(12), b.index(23)], [0, 0, 3, 5, 6, 11]);
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let t = IntType::INT8;
        assert_eq!(quantize_value(2.5, 1.0, 0, t), 2);
        assert_eq!(quantize_value(3.5, 1.0, 0, t), 4);
        assert_eq!(quantize_value(-1000.0, 2.0, 0, t), -128);
        assert_eq!(quantize_value(1000.0, 2.0, 10, IntType::UINT8), 255);
    }
}
