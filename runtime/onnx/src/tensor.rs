//! Constant tensors: decoding `TensorProto` (raw, typed and external data) and the constant values
//! the importer folds (kept as f64 with their ONNX element type, so one code path serves f32
//! weights and i64 shape arithmetic).

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use prost::Message;

use crate::proto::{TensorProto, data_type};
use masq_ir::{IrError, QuantParams, Result};

/// Element type of a folded constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I64,
    Bool,
}

impl DType {
    pub fn from_onnx(t: i32) -> Option<DType> {
        match t {
            data_type::FLOAT | data_type::DOUBLE => Some(DType::F32),
            data_type::INT64
            | data_type::INT32
            | data_type::INT16
            | data_type::UINT16
            | data_type::INT8
            | data_type::UINT8 => Some(DType::I64),
            data_type::BOOL => Some(DType::Bool),
            _ => None,
        }
    }

    /// The ONNX element type arithmetic results of this type are given (the widest one).
    pub fn onnx(self) -> i32 {
        match self {
            DType::F32 => data_type::FLOAT,
            DType::I64 => data_type::INT64,
            DType::Bool => data_type::BOOL,
        }
    }

    /// Round a value to what this type can hold.
    pub fn coerce(self, v: f64) -> f64 {
        match self {
            DType::F32 => v as f32 as f64,
            DType::I64 => v.trunc(),
            DType::Bool => (v != 0.0) as u8 as f64,
        }
    }
}

/// A constant value known at import time.
#[derive(Debug, Clone, PartialEq)]
pub struct Const {
    pub dtype: DType,
    /// The ONNX element type (`data_type::*`) the values were read as, cast to or moved from;
    /// arithmetic results carry [`DType::onnx`]. QuantizeLinear and DequantizeLinear read it: the
    /// integer type is the quantization range.
    pub elem: i32,
    pub data: ArrayD<f64>,
    /// For 1-D integer constants derived from `Shape`: which entries are the batch dimension.
    pub batch: Option<Vec<bool>>,
    /// For a per-tensor DequantizeLinear result (and data moved from one): the grid its values
    /// lie on, which a Conv or Gemm weight records in `Graph::weight_quant`.
    pub quant: Option<QuantParams>,
}

impl Const {
    pub fn new(dtype: DType, data: ArrayD<f64>) -> Self {
        Const { dtype, elem: dtype.onnx(), data, batch: None, quant: None }
    }

    /// New values of the same kind (type, element type, grid): what data movement produces.
    pub fn moved(&self, data: ArrayD<f64>, batch: Option<Vec<bool>>) -> Self {
        Const { dtype: self.dtype, elem: self.elem, data, batch, quant: self.quant }
    }

    pub fn to_f32(&self) -> ArrayD<f32> {
        self.data.mapv(|v| v as f32)
    }

    pub fn to_i64_vec(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
}

/// The range of an integer element type stored in `int32_data` (or raw bytes) below 32 bits.
fn small_int_range(t: i32) -> Option<(f64, f64)> {
    match t {
        data_type::INT8 => Some((-128.0, 127.0)),
        data_type::UINT8 => Some((0.0, 255.0)),
        data_type::INT16 => Some((-32768.0, 32767.0)),
        data_type::UINT16 => Some((0.0, 65535.0)),
        _ => None,
    }
}

/// The ONNX name of an element type (`FLOAT`, `INT8`, `FLOAT8E4M3FN`, ...).
pub fn type_name(t: i32) -> String {
    match t {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17 => "FLOAT8E4M3FN",
        18 => "FLOAT8E4M3FNUZ",
        19 => "FLOAT8E5M2",
        20 => "FLOAT8E5M2FNUZ",
        21 => "UINT4",
        22 => "INT4",
        23 => "FLOAT4E2M1",
        24 => "FLOAT8E8M0",
        25 => "UINT2",
        26 => "INT2",
        _ => return format!("data type {t}"),
    }
    .to_string()
}

/// Decode a `TensorProto`; `file` is the model file (for external data and errors).
pub fn decode_tensor(t: &TensorProto, file: &Path) -> Result<Const> {
    let dtype = DType::from_onnx(t.data_type)
        .ok_or_else(|| IrError::UnsupportedDtype { name: t.name.clone(), dtype: type_name(t.data_type) })?;
    let shape: Vec<usize> =
        t.dims.iter().map(|&d| usize::try_from(d)).collect::<std::result::Result<_, _>>().map_err(|_| {
            IrError::Malformed { file: file.to_path_buf(), reason: format!("tensor {}: negative dimension", t.name) }
        })?;
    let count = masq_ir::shape::element_count(&shape).ok_or_else(|| IrError::Malformed {
        file: file.to_path_buf(),
        reason: format!(
            "tensor {}: dimensions {:?} overflow the element count (at most {} elements per tensor)",
            t.name,
            t.dims,
            masq_ir::shape::MAX_ELEMENTS
        ),
    })?;
    let raw = if t.data_location == crate::external::EXTERNAL {
        Some(crate::external::read_tensor_bytes(t, file)?)
    } else {
        None
    };
    let raw = raw.as_deref().or(if t.raw_data.is_empty() { None } else { Some(t.raw_data.as_slice()) });
    let values: Vec<f64> = match raw {
        Some(raw) => {
            let width = match t.data_type {
                data_type::FLOAT | data_type::INT32 => 4,
                data_type::DOUBLE | data_type::INT64 => 8,
                data_type::INT16 | data_type::UINT16 => 2,
                _ => 1,
            };
            if count.checked_mul(width) != Some(raw.len()) {
                return Err(IrError::Malformed {
                    file: file.to_path_buf(),
                    reason: format!(
                        "tensor {}: {} data bytes for {count} elements of {}",
                        t.name,
                        raw.len(),
                        type_name(t.data_type)
                    ),
                });
            }
            match t.data_type {
                data_type::FLOAT => {
                    raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
                }
                data_type::INT32 => {
                    raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
                }
                data_type::DOUBLE => {
                    raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
                }
                data_type::INT64 => {
                    raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64).collect()
                }
                data_type::INT16 => raw.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f64).collect(),
                data_type::UINT16 => raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as f64).collect(),
                data_type::INT8 => raw.iter().map(|&b| b as i8 as f64).collect(),
                _ => raw.iter().map(|&b| b as f64).collect(),
            }
        }
        None => match t.data_type {
            data_type::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
            data_type::DOUBLE => t.double_data.clone(),
            data_type::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
            // INT32, INT16, UINT16, INT8, UINT8 and BOOL are stored in int32_data.
            _ => t.int32_data.iter().map(|&v| v as f64).collect(),
        },
    };
    if let Some((lo, hi)) = small_int_range(t.data_type)
        && let Some(v) = values.iter().find(|&&v| v < lo || v > hi)
    {
        return Err(IrError::Malformed {
            file: file.to_path_buf(),
            reason: format!("tensor {}: value {v} outside the range of {}", t.name, type_name(t.data_type)),
        });
    }
    if t.data_type == data_type::BOOL
        && let Some(v) = values.iter().find(|&&v| v != 0.0 && v != 1.0)
    {
        return Err(IrError::Malformed {
            file: file.to_path_buf(),
            reason: format!("tensor {}: value {v} in a BOOL tensor (only 0 and 1)", t.name),
        });
    }
    if values.len() != count {
        return Err(IrError::Malformed {
            file: file.to_path_buf(),
            reason: format!("tensor {}: {} values for shape {:?}", t.name, values.len(), shape),
        });
    }
    let values = values.into_iter().map(|v| dtype.coerce(v)).collect();
    let data = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| IrError::Malformed {
        file: file.to_path_buf(),
        reason: format!("tensor {}: shape {shape:?}: {e}", t.name),
    })?;
    Ok(Const { elem: t.data_type, ..Const::new(dtype, data) })
}

/// Encode an f32 array as a `TensorProto` with raw data.
pub fn encode_f32(name: &str, a: &ArrayD<f32>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: a.shape().iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        raw_data: a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Encode an i64 vector as a 1-D `TensorProto`.
pub fn encode_i64(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![v.len() as i64],
        data_type: data_type::INT64,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

/// Encode integers as a `TensorProto` of element type `elem` (INT8, UINT8, INT16, UINT16 or
/// INT32) with raw little-endian data; the caller keeps the values within the type's range.
pub fn encode_int(name: &str, dims: &[i64], elem: i32, values: &[i32]) -> TensorProto {
    let raw_data = match elem {
        data_type::INT8 | data_type::UINT8 => values.iter().map(|&v| v as u8).collect(),
        data_type::INT16 | data_type::UINT16 => values.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    TensorProto { name: name.to_string(), dims: dims.to_vec(), data_type: elem, raw_data, ..Default::default() }
}

/// Read a serialised `TensorProto` file (as in the ONNX test data sets) as f32.
pub fn read_tensor_file(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| IrError::io(path, e))?;
    let t = TensorProto::decode(bytes.as_slice())
        .map_err(|e| IrError::Malformed { file: path.to_path_buf(), reason: format!("not a TensorProto: {e}") })?;
    Ok(decode_tensor(&t, path)?.to_f32())
}
