//! External data: tensors whose bytes live in another file beside the model (ONNX's
//! `data_location = EXTERNAL` with `location`, `offset` and `length` entries). The importer
//! resolves them into `raw_data` before it builds the graph, reading each file once.
//!
//! A location must be a relative path that stays inside the model's directory, also once symbolic
//! links are resolved, and name a regular file; the byte range
//! must lie inside the file. masq's own artifacts point `model.onnx`'s initializers into
//! `model.safetensors` (see `docs/FORMATS.md`), and hand the bytes they already read and hashed
//! in with [`Files::InMemory`].

use std::collections::HashMap;
use std::path::{Component, Path};

use masq_ir::{IrError, Result};

use crate::proto::{ModelProto, TensorProto};

/// ONNX's `data_location` value for external data.
pub const EXTERNAL: i32 = 1;

/// Where the files named by `location` come from.
#[derive(Debug, Clone, Copy)]
pub enum Files<'a> {
    /// Read from the model's directory.
    Disk,
    /// Only these files, by location, already in memory; any other location is an error.
    InMemory(&'a [(&'a str, &'a [u8])]),
}

/// The external-data reference of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub location: String,
    pub offset: usize,
    pub length: Option<usize>,
}

fn bad(file: &Path, reason: String) -> IrError {
    IrError::Malformed { file: file.to_path_buf(), reason }
}

/// Parse and check a tensor's external-data entries (`file` is the model, for errors).
pub fn reference(t: &TensorProto, file: &Path) -> Result<Reference> {
    let entry = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    let location =
        entry("location").ok_or_else(|| bad(file, format!("tensor {}: external data without a location", t.name)))?;
    let rel = Path::new(location);
    if rel.as_os_str().is_empty() || rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad(
            file,
            format!("tensor {}: external data location {location:?} leaves the model directory", t.name),
        ));
    }
    let num = |k: &str| -> Result<Option<usize>> {
        entry(k)
            .map(|v| {
                v.parse::<usize>().map_err(|_| bad(file, format!("tensor {}: bad external data {k} {v:?}", t.name)))
            })
            .transpose()
    };
    Ok(Reference { location: location.to_string(), offset: num("offset")?.unwrap_or(0), length: num("length")? })
}

/// The referenced bytes within `data` (the whole file named by the reference).
pub fn slice<'d>(t: &TensorProto, r: &Reference, data: &'d [u8], file: &Path) -> Result<&'d [u8]> {
    let end = match r.length {
        Some(len) => r.offset.checked_add(len),
        None => Some(data.len()),
    };
    match end {
        Some(end) if end <= data.len() && r.offset <= end => Ok(&data[r.offset..end]),
        _ => Err(bad(
            file,
            format!(
                "tensor {}: external data range {}..{:?} lies outside {} ({} bytes)",
                t.name,
                r.offset,
                end,
                r.location,
                data.len()
            ),
        )),
    }
}

/// Read one external file from the model's directory. The location is resolved (symbolic links
/// followed) and must still lie inside the resolved model directory and be a regular file: a link
/// beside the model pointing at `/etc/passwd` or a device is refused, not read.
fn read(file: &Path, location: &str) -> Result<Vec<u8>> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let path = dir.join(location);
    let io_err = |e: std::io::Error| bad(&path, format!("external data file (referenced by {}): {e}", file.display()));
    let real_dir = dir.canonicalize().map_err(|e| IrError::io(dir, e))?;
    let real = path.canonicalize().map_err(io_err)?;
    if !real.starts_with(&real_dir) {
        return Err(bad(
            file,
            format!(
                "external data location {location:?} resolves to {}, outside the model directory {}",
                real.display(),
                real_dir.display()
            ),
        ));
    }
    let meta = std::fs::metadata(&real).map_err(io_err)?;
    if !meta.is_file() {
        return Err(bad(file, format!("external data location {location:?} is not a regular file")));
    }
    std::fs::read(&real).map_err(io_err)
}

/// Bytes of one tensor's external data, read from disk (for callers outside an import).
pub fn read_tensor_bytes(t: &TensorProto, file: &Path) -> Result<Vec<u8>> {
    let r = reference(t, file)?;
    let data = read(file, &r.location)?;
    slice(t, &r, &data, file).map(<[u8]>::to_vec)
}

/// Replace every external tensor of the model (initializers and `Constant` values) by its bytes
/// in `raw_data`.
pub fn resolve(model: &mut ModelProto, file: &Path, files: Files<'_>) -> Result<()> {
    let Some(graph) = model.graph.as_mut() else { return Ok(()) };
    let mut cache: HashMap<String, Vec<u8>> = HashMap::new();
    let mut resolve_one = |t: &mut TensorProto| -> Result<()> {
        if t.data_location != EXTERNAL {
            return Ok(());
        }
        let r = reference(t, file)?;
        let data: &[u8] = match files {
            Files::InMemory(list) => {
                list.iter().find(|(loc, _)| *loc == r.location).map(|(_, d)| *d).ok_or_else(|| {
                    bad(
                        file,
                        format!("tensor {}: external data file {:?} is not part of this model", t.name, r.location),
                    )
                })?
            }
            Files::Disk => {
                if !cache.contains_key(&r.location) {
                    cache.insert(r.location.clone(), read(file, &r.location)?);
                }
                &cache[&r.location]
            }
        };
        t.raw_data = slice(t, &r, data, file)?.to_vec();
        t.data_location = 0;
        t.external_data.clear();
        Ok(())
    };
    for t in graph.initializer.iter_mut() {
        resolve_one(t)?;
    }
    for n in graph.node.iter_mut() {
        for a in n.attribute.iter_mut() {
            if let Some(t) = a.t.as_mut() {
                resolve_one(t)?;
            }
        }
    }
    Ok(())
}
