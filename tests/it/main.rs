//! End-to-end tests across crates: the CLI, trainer vs runtime agreement, two processes.
//!
//! One test binary for the crate (each module is one former test file), so `cargo test` links
//! one executable here instead of one per file.

mod cli_bench;
#[cfg(feature = "train")]
mod cli_calibrate;
mod cli_demo;
mod cli_export;
mod cli_hostile;
mod cli_keygen;
mod cli_load_weights;
#[cfg(feature = "train")]
mod cli_prune;
#[cfg(feature = "train")]
mod cli_quantize;
mod cli_run;
#[cfg(feature = "train")]
mod export_agreement;
mod export_reduced_akamaster;
mod fixed_batch;
#[cfg(feature = "train")]
mod fuzz_regressions;
#[cfg(feature = "train")]
mod lowering;
mod relu_counts;
mod serve_concurrency;
/// Dealer, server and client as three hosts in network namespaces, over TLS (skipped without root).
mod three_hosts;
mod torchvision;
mod two_process;
