//! `.npy` files (NumPy format 1.0–3.0): f32, f64, i64 and u8, little-endian, C order.
//!
//! ```
//! use masq_ir::npy;
//! let a = ndarray::ArrayD::from_shape_vec(vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
//! let bytes = npy::to_bytes(&a);
//! let back = npy::from_bytes(&bytes, "mem").unwrap().into_f32();
//! assert_eq!(back, a);
//! ```

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use crate::error::{IrError, Result};

/// An array read from a `.npy` file, in its stored element type.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyArray {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
}

impl NpyArray {
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyArray::F32(a) => a.shape(),
            NpyArray::F64(a) => a.shape(),
            NpyArray::I64(a) => a.shape(),
            NpyArray::U8(a) => a.shape(),
        }
    }

    /// Convert to f32 (f64 and i64 are rounded to the nearest f32).
    pub fn into_f32(self) -> ArrayD<f32> {
        match self {
            NpyArray::F32(a) => a,
            NpyArray::F64(a) => a.mapv(|v| v as f32),
            NpyArray::I64(a) => a.mapv(|v| v as f32),
            NpyArray::U8(a) => a.mapv(f32::from),
        }
    }
}

/// Element types that can be written.
pub trait NpyElement: Copy {
    const DESCR: &'static str;
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $d:literal) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, "<f4");
element!(f64, "<f8");
element!(i64, "<i8");
element!(u8, "|u1");

/// Encode an array as `.npy` (format 1.0, C order).
pub fn to_bytes<T: NpyElement>(a: &ArrayD<T>) -> Vec<u8> {
    let shape = match a.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!("({})", s.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", T::DESCR);
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in a.iter() {
        v.put(&mut out);
    }
    out
}

/// Write an array to a `.npy` file.
pub fn write<T: NpyElement>(path: impl AsRef<Path>, a: &ArrayD<T>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(a)).map_err(|e| IrError::io(path, e))
}

/// Read a `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| IrError::io(path, e))?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Read a `.npy` file as f32 (converting other element types).
pub fn read_f32(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    read(path).map(NpyArray::into_f32)
}

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Decode `.npy` bytes; `name` is used in errors.
pub fn from_bytes(bytes: &[u8], name: &str) -> Result<NpyArray> {
    let bad = |reason: String| IrError::Malformed { file: name.into(), reason };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (missing \\x93NUMPY magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    let header = bytes.get(start..start + header_len).ok_or_else(|| bad("truncated header".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;
    let descr = field(header, "descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| bad("header has no descr".into()))?;
    let fortran = field(header, "fortran_order").ok_or_else(|| bad("header has no fortran_order".into()))?;
    if fortran.starts_with("True") {
        return Err(bad("Fortran-order arrays are not supported; save with C order".into()));
    }
    let shape_txt = field(header, "shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("header has no shape".into()))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(format!("bad shape entry {s:?}"))))
        .collect::<Result<_>>()?;
    let data = &bytes[start + header_len..];
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("shape overflows".into()))?;
    let need = |size: usize| -> Result<&[u8]> {
        let n = count.checked_mul(size).ok_or_else(|| bad("shape overflows".into()))?;
        if data.len() < n {
            return Err(bad(format!("data has {} bytes, shape {:?} needs {}", data.len(), shape, n)));
        }
        Ok(&data[..n])
    };
    let dim = IxDyn(&shape);
    let arr = match descr {
        "<f4" => {
            let v = need(4)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            NpyArray::F32(ArrayD::from_shape_vec(dim, v).map_err(|e| bad(format!("shape {shape:?}: {e}")))?)
        }
        "<f8" => {
            let v = need(8)?.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
            NpyArray::F64(ArrayD::from_shape_vec(dim, v).map_err(|e| bad(format!("shape {shape:?}: {e}")))?)
        }
        "<i8" => {
            let v = need(8)?.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
            NpyArray::I64(ArrayD::from_shape_vec(dim, v).map_err(|e| bad(format!("shape {shape:?}: {e}")))?)
        }
        "|u1" | "<u1" | "|b1" => NpyArray::U8(
            ArrayD::from_shape_vec(dim, need(1)?.to_vec()).map_err(|e| bad(format!("shape {shape:?}: {e}")))?,
        ),
        other => {
            return Err(bad(format!(
                "element type {other:?} is not supported (use little-endian f32 '<f4', f64 '<f8', i64 '<i8' or u8 '|u1')"
            )));
        }
    };
    Ok(arr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        let f = ArrayD::from_shape_vec(vec![2, 3], vec![1.5f32, -2.0, 3.25, 0.0, 1e-7, 9.0]).unwrap();
        assert_eq!(from_bytes(&to_bytes(&f), "t").unwrap(), NpyArray::F32(f.clone()));
        let d = f.mapv(f64::from);
        assert_eq!(from_bytes(&to_bytes(&d), "t").unwrap(), NpyArray::F64(d));
        let i = ArrayD::from_shape_vec(vec![3], vec![-1i64, 0, 1 << 40]).unwrap();
        assert_eq!(from_bytes(&to_bytes(&i), "t").unwrap(), NpyArray::I64(i));
        let u = ArrayD::from_shape_vec(vec![1, 1, 2], vec![0u8, 255]).unwrap();
        assert_eq!(from_bytes(&to_bytes(&u), "t").unwrap(), NpyArray::U8(u));
        let s = ArrayD::from_elem(vec![], 4.0f32);
        assert_eq!(from_bytes(&to_bytes(&s), "t").unwrap(), NpyArray::F32(s));
        assert_eq!(to_bytes(&f).len() % 64, 24); // 64-byte header, 24 data bytes
    }

    #[test]
    fn rejects_bad_files() {
        let f = ArrayD::from_shape_vec(vec![4], vec![1.0f32; 4]).unwrap();
        let bytes = to_bytes(&f);
        let err = from_bytes(&bytes[..bytes.len() - 1], "x.npy").unwrap_err().to_string();
        assert!(err.contains("x.npy") && err.contains("needs 16"), "{err}");
        assert!(from_bytes(b"hello world", "y").is_err());
        let replace = |from: &[u8], to: &[u8]| {
            let i = bytes.windows(from.len()).position(|w| w == from).unwrap();
            let mut v = bytes.clone();
            v[i..i + from.len()].copy_from_slice(to);
            v
        };
        let err = from_bytes(&replace(b"<f4", b">f4"), "z").unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");
        let err = from_bytes(&replace(b"False", b"True "), "w").unwrap_err().to_string();
        assert!(err.contains("Fortran"), "{err}");
    }
}
