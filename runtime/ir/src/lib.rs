//! # masq-ir
//!
//! The model IR every other masq crate works on: a graph of typed nodes in topological order
//! ([`Graph`], [`Node`], [`Op`] with one config struct per op), shape inference ([`shape`]),
//! ReLU masks ([`masks`]), BatchNorm folding ([`fold`]), the one table of cost rules
//! ([`cost`]: comparisons, polynomial elements and MACs per node) and the per-layer report built
//! on it ([`report`]), model facts ([`facts`]), the checkpoint format ([`checkpoint`]), the model
//! zoo ([`zoo`]), safetensors state dicts ([`weights`]) and `.npy` files ([`npy`]).
//!
//! It depends on no other masq crate: the trainer, the ONNX codec, the exporter and the runtime
//! all build on it.
//!
//! ```
//! let g = masq_ir::zoo::build("resnet20", None, 0).unwrap();
//! let r = masq_ir::report::report(&g).unwrap();
//! assert_eq!(r.relu_count, 188_416);
//! ```
//!
//! Start with [`graph`](Graph), then [`op`](Op), [`zoo`] and [`cost`]. The documents under
//! `docs/` in the repository (ARCHITECTURE.md, ALGORITHMS.md, FORMATS.md) describe the design.

pub mod approx;
pub mod atomic;
pub mod batch;
pub mod canonical;
pub mod checkpoint;
pub mod cost;
pub mod error;
pub mod facts;
pub mod fold;
mod graph;
pub mod masks;
pub mod npy;
mod op;
pub mod prune;
pub mod quant;
pub mod report;
pub mod score;
pub mod shape;
pub mod special;
pub mod weights;
pub mod zoo;

pub use error::{IrError, Result, UnsupportedNode};
pub use graph::*;
pub use op::*;
