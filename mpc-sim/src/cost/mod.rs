//! The cost model: what each protocol step sends, in how many rounds, and what the dealer sends
//! offline; latency estimates for a network profile; and the same estimates under published
//! per-operation costs of other protocols.
//!
//! Predictions here are exact mirrors of the protocols in [`crate::protocols`]: tests hold
//! prediction == measurement at the metered transport, byte for byte.

pub mod latency;
pub mod published;
mod steps;

pub use latency::{Network, estimate_seconds};
pub use published::{Protocol, Workload};
pub use steps::{
    Cost, cmp, deal_overhead, exchange, frame_bytes, linear, linear_setup, masked_act, matmul, maxpool, mul, open,
    reveal, square,
};
