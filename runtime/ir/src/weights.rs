//! Reading f32 tensors from safetensors files (e.g. the akamaster checkpoints).

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayD;
use safetensors::{Dtype, SafeTensors};

use crate::error::{IrError, Result};

/// Every tensor of a safetensors file as f32 (F32, F64, F16-free files; I64 buffers such as
/// `num_batches_tracked` are converted).
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, ArrayD<f32>>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| IrError::io(path, e))?;
    let bad = |reason: String| IrError::Malformed { file: path.to_path_buf(), reason };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let v: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F64 => {
                data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
            }
            Dtype::I64 => {
                data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
            }
            other => return Err(IrError::UnsupportedDtype { name, dtype: format!("{other:?}") }),
        };
        let arr = ArrayD::from_shape_vec(view.shape().to_vec(), v).map_err(|e| bad(format!("tensor {name}: {e}")))?;
        out.insert(name, arr);
    }
    Ok(out)
}
