//! Integration tests of masq-exporter: artifact round trips and malformed artifacts.
//!
//! One test binary for the crate (each module is one former test file), so `cargo test` links
//! one executable here instead of one per file.

mod crash_recovery;
mod cross_check;
mod determinism;
mod errors;
mod roundtrip;
mod scratch;
