//! # masq-runtime
//!
//! The model IR (graph, typed ops, tensors), ONNX and safetensors codecs, the model zoo, the
//! plaintext interpreter, the onnxruntime cross-check and the secure executor on masq-mpc.
//!
//! This crate is filled by the runtime issue; for now it only fixes its place in the workspace.
