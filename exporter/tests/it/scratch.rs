//! Scratch directories of these tests, and listing what a directory holds.

use std::path::{Path, PathBuf};

/// A fresh, empty directory `masq-exporter-{tag}-{pid}` under the system's temporary directory
/// (`tag` names the test; every test of this binary uses its own).
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-exporter-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}
