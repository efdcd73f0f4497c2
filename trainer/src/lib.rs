//! # masq-trainer
//!
//! Executes masq IR graphs with tch (libtorch from the project's Python environment, see
//! `scripts/setup.sh`), reads datasets, trains baselines and cuts ReLUs to a budget ([`reduce`]:
//! AutoReP, SNL, random masks; see `docs/ALGORITHMS.md`). It depends on masq-ir alone: no
//! ONNX, no 2PC engine, no onnxruntime.
//!
//! ```no_run
//! use masq_trainer::{data, device, train};
//! let graph = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
//! let kind = data::DatasetKind::Mnist;
//! let splits = data::load(kind, Some(std::path::Path::new("data"))).unwrap();
//! let mut cfg = train::TrainConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
//! cfg.epochs = 2;
//! let dev = device::parse_device("auto").unwrap();
//! let (_model, summary) = train::train(&graph, &splits, &cfg, dev, &mut |_| {}).unwrap();
//! println!("accuracy {:.2}%", 100.0 * summary.final_accuracy);
//! ```
//!
//! Start with [`model::TchModel`] (a graph on tch), [`lower`] (one file per op family),
//! [`data`], [`optim`] and [`train`]. Checkpoints are `masq_ir::checkpoint` files.

pub mod data;
pub mod device;
pub mod error;
pub mod lower;
pub mod model;
pub mod optim;
pub mod prune;
pub mod quant;
pub mod reduce;
pub mod train;

pub use error::{Result, TrainerError};
pub use model::TchModel;
