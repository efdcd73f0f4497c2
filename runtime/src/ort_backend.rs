//! ONNX Runtime as a reference backend (the `ort` crate, `load-dynamic`): run an `.onnx` file on
//! f32 inputs to cross-check the importer and the plaintext interpreter.
//!
//! The library is `libonnxruntime.so` from the PyPI `onnxruntime` wheel that `make setup` installs.
//! It is found, in order: the `ORT_DYLIB_PATH` environment variable at run time; the path
//! `MASQ_ORT_DYLIB` that `.cargo/config.toml` sets at build time (`.masq/libonnxruntime.so` in the
//! checkout); otherwise [`RuntimeError::OrtUnavailable`] says to run `make setup`.
//!
//! ```no_run
//! use ndarray::ArrayD;
//! let x = ArrayD::<f32>::zeros(vec![1, 1, 28, 28]);
//! let outs = masq_runtime::ort_backend::run_onnx("model.onnx".as_ref(), &[("Input3".to_string(), x)]).unwrap();
//! println!("{} -> {:?}", outs[0].0, outs[0].1.shape());
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::ArrayD;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType};

use crate::error::{IrError, Result, RuntimeError};

/// The environment variable that names the ONNX Runtime library at run time.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Where the ONNX Runtime library is looked for: `ORT_DYLIB_PATH` at run time, else the path
/// recorded at build time. Returns the path and where it came from.
pub fn library_path() -> Result<(PathBuf, &'static str)> {
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        return Ok((PathBuf::from(p), ORT_DYLIB_ENV));
    }
    match option_env!("MASQ_ORT_DYLIB") {
        Some(p) if !p.is_empty() => {
            let path = PathBuf::from(p);
            if path.exists() {
                Ok((path, "MASQ_ORT_DYLIB (build time, .cargo/config.toml)"))
            } else {
                Err(RuntimeError::OrtUnavailable {
                    reason: format!(
                        "{} does not exist: run `make setup` in the masq checkout, or set {ORT_DYLIB_ENV} to \
                         libonnxruntime.so (onnxruntime >= 1.31)",
                        path.display()
                    ),
                })
            }
        }
        _ => Err(RuntimeError::OrtUnavailable {
            reason: format!(
                "no ONNX Runtime library configured: run `make setup` and rebuild, or set {ORT_DYLIB_ENV} to \
                 libonnxruntime.so (onnxruntime >= 1.31)"
            ),
        }),
    }
}

/// The process-wide ONNX Runtime environment (ONNX Runtime allows one per process); loaded on
/// first use. A failure is remembered and returned again.
fn environment() -> Result<&'static Environment> {
    static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        let (path, source) = library_path().map_err(|e| match e {
            RuntimeError::OrtUnavailable { reason } => reason,
            other => other.to_string(),
        })?;
        let builder = ort::init_from(&path)
            .map_err(|e| format!("cannot load ONNX Runtime from {} (from {source}): {e}", path.display()))?;
        builder.with_name("masq").build().map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))
    });
    env.as_ref().map_err(|reason| RuntimeError::OrtUnavailable { reason: reason.clone() })
}

/// Whether ONNX Runtime can be loaded (tests use this to decide whether to skip).
pub fn available() -> Result<()> {
    environment().map(|_| ())
}

/// A loaded ONNX model ready to run repeatedly.
#[derive(Debug)]
pub struct OrtSession {
    session: Session,
    file: PathBuf,
}

impl OrtSession {
    /// Load a model file with ONNX Runtime's default settings (all graph optimisations).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_threads(path, None)
    }

    /// Load a model file; `intra_threads` bounds ONNX Runtime's thread pool (`None`: its default).
    pub fn open_with_threads(path: &Path, intra_threads: Option<usize>) -> Result<Self> {
        let env = environment()?;
        let err = |e: &dyn std::fmt::Display| ort_error(path, e);
        let mut builder = Session::builder(env).map_err(|e| err(&e))?;
        if let Some(n) = intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| err(&e))?;
        }
        let session = builder.commit_from_file(path).map_err(|e| err(&e))?;
        Ok(OrtSession { session, file: path.to_path_buf() })
    }

    /// Load a model from serialised bytes (one intra-op thread: small test models); `file` names
    /// it in errors.
    pub fn from_bytes(bytes: &[u8], file: &Path) -> Result<Self> {
        let env = environment()?;
        let err = |e: &dyn std::fmt::Display| ort_error(file, e);
        let session = Session::builder(env)
            .map_err(|e| err(&e))?
            .with_intra_threads(1)
            .map_err(|e| err(&e))?
            .commit_from_memory(bytes)
            .map_err(|e| err(&e))?;
        Ok(OrtSession { session, file: file.to_path_buf() })
    }

    /// The model's input names, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.session.inputs().iter().map(|o| o.name().to_string()).collect()
    }

    /// The model's output names, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.session.outputs().iter().map(|o| o.name().to_string()).collect()
    }

    /// Run on named f32 inputs; returns every output, in the model's order. Every model input must
    /// be given (by name), and every output must be f32.
    pub fn run(&mut self, inputs: &[(String, ArrayD<f32>)]) -> Result<Vec<(String, ArrayD<f32>)>> {
        for name in self.input_names() {
            if !inputs.iter().any(|(n, _)| *n == name) {
                return Err(IrError::NotFound { kind: "input value (for onnxruntime)", name }.into());
            }
        }
        let known = self.input_names();
        let mut values = Vec::with_capacity(inputs.len());
        for (name, x) in inputs {
            if !known.contains(name) {
                return Err(IrError::NotFound { kind: "model input", name: name.clone() }.into());
            }
            let t = Tensor::from_array(x.clone()).map_err(|e| ort_error(&self.file, &e))?;
            values.push((name.clone(), t));
        }
        let file = self.file.clone();
        let outputs = self.session.run(values).map_err(|e| ort_error(&file, &e))?;
        let mut result = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            let dtype = value.dtype().tensor_type();
            if dtype != Some(TensorElementType::Float32) {
                return Err(IrError::UnsupportedDtype {
                    name: name.to_string(),
                    dtype: dtype.map_or_else(|| "a non-tensor value".to_string(), |t| format!("{t:?}")),
                }
                .into());
            }
            let a = value.try_extract_array::<f32>().map_err(|e| ort_error(&file, &e))?;
            result.push((name.to_string(), a.to_owned()));
        }
        Ok(result)
    }
}

fn ort_error(file: &Path, e: &dyn std::fmt::Display) -> RuntimeError {
    RuntimeError::Ort { file: file.to_path_buf(), reason: e.to_string() }
}

/// Run an ONNX file once with ONNX Runtime: named f32 inputs in, every output (by name, in the
/// model's order) out.
pub fn run_onnx(path: &Path, inputs: &[(String, ArrayD<f32>)]) -> Result<Vec<(String, ArrayD<f32>)>> {
    OrtSession::open(path)?.run(inputs)
}
