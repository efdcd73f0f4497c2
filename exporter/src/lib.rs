//! # masq-exporter
//!
//! Turns a trainer checkpoint into a deployable artifact: `model.onnx` (standard ONNX ops, masked
//! activations as `Where(mask, Relu(x), poly(x))`), `model.safetensors` (weights, per-pixel masks,
//! polynomial coefficients) and `manifest.json`.
//!
//! This crate is filled by the exporter issue; for now it only fixes its place in the workspace.
