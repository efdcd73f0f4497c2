//! Integration tests of masq-runtime: plaintext and secure execution of zoo and imported models, onnxruntime cross-checks and the official ONNX node tests.
//!
//! One test binary for the crate (each module is one former test file), so `cargo test` links
//! one executable here instead of one per file.

mod akamaster;
mod batch_pass;
mod calibrate;
mod common;
mod hostile_checkpoint;
mod hostile_onnx;
mod onnx_import;
mod onnx_mnist;
mod onnx_node_conformance;
mod onnx_qdq_export;
mod onnx_qdq_import;
mod ort_backend;
mod plain_kernels;
mod prune_export;
mod qdq_script;
mod secure_akamaster;
mod secure_cnn_ops;
mod secure_exec;
mod secure_fold;
mod secure_headroom;
mod secure_ops;
mod secure_props;
mod secure_stream;
mod secure_transformer;
mod zoo;
