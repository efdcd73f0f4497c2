//! Running `scripts/qdq_fixtures.py` (onnxruntime's quantization tool, `onnx.checker`, onnxruntime
//! with and without its graph optimisations) with the project's Python (`MASQ_PYTHON`, set at build
//! time by `.cargo/config.toml` to `.masq/python` after `make setup`), for the QDQ tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's Python with onnx and onnxruntime, or why not (the tests then skip).
pub fn python() -> Result<PathBuf, String> {
    let configured = option_env!("MASQ_PYTHON").ok_or("MASQ_PYTHON was not set at build time (run make setup)")?;
    let configured = PathBuf::from(configured);
    let mut candidates = vec![configured.clone()];
    if let Some(dir) = configured.parent() {
        candidates.push(dir.join("venv").join("bin").join("python"));
    }
    let mut why = Vec::new();
    for py in candidates {
        match Command::new(&py).args(["-c", "import onnx, onnxruntime.quantization, numpy"]).output() {
            Ok(o) if o.status.success() => return Ok(py),
            Ok(o) => why.push(format!("{}: {}", py.display(), String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => why.push(format!("{}: {e}", py.display())),
        }
    }
    Err(why.join("; "))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts").join("qdq_fixtures.py")
}

/// Run the script with `args`; its output on success, a panic with it otherwise.
pub fn run(py: &Path, args: &[&Path]) -> String {
    let out = Command::new(py)
        .arg(script())
        .args(args)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "qdq_fixtures.py {args:?}:\n{text}");
    text
}

/// A fresh scratch folder under the test target's temporary directory.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("qdq-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Largest |a − b| (shapes must match; NaN counts as infinite).
pub fn max_abs_diff(a: &ndarray::ArrayD<f32>, b: &ndarray::ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) })
}
