//! Channel pruning (docs/ALGORITHMS.md §6, §8): score or search conv filters, remove them with
//! the IR's surgery pass (`masq_ir::prune`), retrain; and unstructured weight pruning (§7,
//! [`sparse`]), which zeroes single weights and keeps the graph's structure.
//!
//! - [`scores`]: per-filter scores (magnitude, magnitude with kept sign, SNIP, random) of the
//!   considered convs (`masq_ir::prune::conv_sites`, removable ones by default);
//! - [`select`]: scores to a `DeadSet` at a filter sparsity, per layer or global, every conv keeping
//!   a filter; flat masks to dead sets and back;
//! - [`sa`]: simulated annealing over filter masks (§8);
//! - [`masked`]: a mask applied in place on tch tensors (`zero_filters`' semantics), the search's
//!   objective;
//! - [`holdout`]: the validation split carved from the training split;
//! - [`flow`]: the whole run, [`prune`], with [`PruneConfig`], [`PruneEvent`], [`PruneSummary`];
//! - [`rrelu`]: Rotated ReLU (§6);
//! - [`sparse`]: unstructured weight pruning, reweighted L1 and magnitude at a weight sparsity or
//!   threshold, with a fixed-mask retrain (§7).
//!
//! ```no_run
//! use masq_trainer::data::{DatasetKind, SyntheticConfig, synthetic};
//! use masq_trainer::prune::{Method, PruneConfig, prune};
//! let splits = synthetic(&SyntheticConfig::default());
//! let graph = masq_ir::zoo::build("cnn_small", None, 0).unwrap();
//! let kind = DatasetKind::Synthetic;
//! let mut cfg = PruneConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
//! cfg.method = Method::Sa;
//! cfg.sparsity = 0.5;
//! cfg.sa.temperatures = 50;
//! let (pruned, summary) = prune(&graph, &splits, &cfg, tch::Device::Cpu, &mut |_| {}).unwrap();
//! println!("{} filters removed, {:.1}% params saved", summary.removed, 100.0 * summary.param_saving);
//! # let _ = pruned;
//! ```

pub mod flow;
pub mod holdout;
pub mod masked;
pub mod rrelu;
pub mod sa;
pub mod scores;
pub mod select;
pub mod sparse;

pub use flow::{Figures, Method, PruneConfig, PruneEvent, PruneSummary, Rewind, prune};
pub use sa::{SaConfig, SaEvent, SaOutcome, SaStats, anneal};
pub use scores::FilterScores;
pub use select::Scope;
