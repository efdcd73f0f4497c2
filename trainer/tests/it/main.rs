//! Integration tests of masq-trainer: datasets, training, ReLU reduction.
//!
//! One test binary for the crate (each module is one former test file), so `cargo test` links
//! one executable here instead of one per file.

mod data;
mod image_datasets;
mod pretrained;
mod prune;
mod prune_rrelu;
mod prune_sparse;
mod quant;
mod reduce_e2e;
mod reduce_math;
mod training;
