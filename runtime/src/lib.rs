//! # masq-runtime
//!
//! Runs masq IR graphs: in the clear with the plaintext interpreter ([`plain`], f32 on ndarray),
//! under two-party secure computation on masq-mpc ([`secure`]: plan, lower, execute, estimate),
//! and, with the cargo feature `ort`, through onnxruntime as a reference ([`ort_backend`]).
//!
//! ```
//! let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
//! let p = masq_runtime::secure::plan(&g, 1, &masq_runtime::secure::SecureConfig::default()).unwrap();
//! assert_eq!(p.comparisons_per_batch(), masq_ir::cost::graph_cost(&g).unwrap().comparisons());
//! ```
//!
//! Models come from masq-ir (zoo, checkpoints) or masq-onnx (ONNX files); deployment between two
//! processes is masq-deploy.

pub mod error;
#[cfg(feature = "ort")]
pub mod ort_backend;
pub mod plain;
pub mod secure;

pub use error::{Result, RuntimeError};
pub use masq_ir::Graph;
