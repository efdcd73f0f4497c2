//! Replays every crashing input the fuzzers found (`fuzz/regressions/<target>/*`, see
//! docs/FUZZING.md) through the entry function of its fuzz target, the very code the fuzz target
//! runs (`fuzz/src/entries.rs`, compiled into this test). Each must return: an error is fine, a
//! panic is the bug coming back.

/// The dataset decoders the entries call (the fuzz crate compiles the same file without libtorch).
mod data_decode {
    pub use masq_trainer::data::decode::*;
}

#[path = "../../fuzz/src/entries.rs"]
#[allow(dead_code)]
mod entries;

use std::path::Path;

/// Every regression input of `target`, sorted.
fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.expect("listing regressions").path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs every input of `target`, and fails naming each one that panics.
fn replay(target: &str) {
    let (_, entry) = entries::TARGETS.iter().find(|(t, _)| *t == target).expect("a fuzz target");
    let mut panicked = Vec::new();
    for path in inputs(target) {
        let bytes = std::fs::read(&path).expect("reading a regression input");
        if std::panic::catch_unwind(|| entry(&bytes)).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "{target}: these inputs panic: {panicked:#?}");
}

#[test]
fn every_regression_directory_is_a_fuzz_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for e in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = e.expect("listing").path();
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            assert!(entries::TARGETS.iter().any(|(t, _)| *t == name), "{name} is not a fuzz target");
        }
    }
}

#[test]
fn onnx_import() {
    replay("onnx_import");
}

#[test]
fn checkpoint() {
    replay("checkpoint");
}

#[test]
fn artifact() {
    replay("artifact");
}

#[test]
fn npy() {
    replay("npy");
}

#[test]
fn dealer_file() {
    replay("dealer_file");
}

#[test]
fn handshake() {
    replay("handshake");
}

#[test]
fn datasets() {
    replay("datasets");
}

#[test]
fn dealer_stream() {
    replay("dealer_stream");
}
