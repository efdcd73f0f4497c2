//! Channel pruning (docs/ALGORITHMS.md §6, §8): score or search conv filters, remove them with
//! the IR's surgery pass (`masq_ir::prune`), retrain.

pub mod rrelu;
