//! Constant tensors: decoding `TensorProto` (raw, typed and external data) and the constant values
//! the importer folds (kept as f64 with their ONNX element type, so one code path serves f32
//! weights and i64 shape arithmetic).

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use prost::Message;

use crate::proto::{TensorProto, data_type};
use masq_ir::{IrError, Result};

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
            data_type::INT64 | data_type::INT32 | data_type::INT8 | data_type::UINT8 => Some(DType::I64),
            data_type::BOOL => Some(DType::Bool),
            _ => None,
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
    pub data: ArrayD<f64>,
    /// For 1-D integer constants derived from `Shape`: which entries are the batch dimension.
    pub batch: Option<Vec<bool>>,
}

impl Const {
    pub fn new(dtype: DType, data: ArrayD<f64>) -> Self {
        Const { dtype, data, batch: None }
    }

    pub fn to_f32(&self) -> ArrayD<f32> {
        self.data.mapv(|v| v as f32)
    }

    pub fn to_i64_vec(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
}

fn type_name(t: i32) -> String {
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
        16 => "BFLOAT16",
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
    let count: usize = shape.iter().product();
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
                _ => 1,
            };
            if raw.len() != count * width {
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
                data_type::INT8 => raw.iter().map(|&b| b as i8 as f64).collect(),
                _ => raw.iter().map(|&b| b as f64).collect(),
            }
        }
        None => match t.data_type {
            data_type::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
            data_type::DOUBLE => t.double_data.clone(),
            data_type::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
            // INT32, INT8, UINT8 and BOOL are stored in int32_data.
            _ => t.int32_data.iter().map(|&v| v as f64).collect(),
        },
    };
    if values.len() != count {
        return Err(IrError::Malformed {
            file: file.to_path_buf(),
            reason: format!("tensor {}: {} values for shape {:?}", t.name, values.len(), shape),
        });
    }
    let values = values.into_iter().map(|v| dtype.coerce(v)).collect();
    Ok(Const::new(dtype, ArrayD::from_shape_vec(IxDyn(&shape), values).expect("sizes agree")))
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

/// Read a serialised `TensorProto` file (as in the ONNX test data sets) as f32.
pub fn read_tensor_file(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| IrError::io(path, e))?;
    let t = TensorProto::decode(bytes.as_slice())
        .map_err(|e| IrError::Malformed { file: path.to_path_buf(), reason: format!("not a TensorProto: {e}") })?;
    Ok(decode_tensor(&t, path)?.to_f32())
}
