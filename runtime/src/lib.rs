//! # masq-runtime
//!
//! The model IR (graph, typed ops, tensors), the ONNX importer, the model zoo, the plaintext
//! interpreter, reports, `.npy` I/O, an onnxruntime reference backend ([`ort_backend`]) and the
//! secure executor on masq-mpc ([`secure`]).
//!
//! ```
//! let g = masq_runtime::load_model("zoo:resnet20").unwrap();
//! let r = masq_runtime::report::report(&g).unwrap();
//! assert_eq!(r.relu_count, 188_416);
//! ```
//!
//! Start with [`ir`] (the graph), then [`zoo`], [`plain`], [`onnx`] and [`report`].

pub mod artifact;
pub mod checkpoint;
pub mod deploy;
pub mod error;
pub mod ir;
pub mod npy;
pub mod onnx;
pub mod ort_backend;
pub mod plain;
pub mod report;
pub mod secure;
pub mod weights;
pub mod zoo;

pub use error::{Result, RuntimeError};
pub use ir::Graph;

/// Load a model from a spec: `zoo:NAME[@HxW]` (seeded random weights, seed 0), a path to an
/// `.onnx` file, a masq checkpoint (`.safetensors`, see [`checkpoint`]), or an artifact directory
/// written by `masq export` (see [`artifact`]).
pub fn load_model(spec: &str) -> Result<Graph> {
    if spec.starts_with("zoo:") {
        let z = zoo::ZooSpec::parse(spec)?;
        return zoo::build(&z.name, z.input_hw, 0);
    }
    let path = std::path::Path::new(spec);
    if path.is_dir() {
        return artifact::load_artifact(path).map(|(g, _)| g);
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("onnx") => onnx::import_file(path),
        Some(e) if e.eq_ignore_ascii_case("safetensors") => checkpoint::load_checkpoint(path).map(|(g, _)| g),
        _ => Err(RuntimeError::BadSpec {
            spec: spec.to_string(),
            reason: "expected zoo:NAME[@HxW] or a path ending in .onnx or .safetensors".to_string(),
        }),
    }
}
