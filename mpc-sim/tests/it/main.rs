//! Integration tests of masq-mpc: protocol laws, DCF, codecs, privacy and transports.
//!
//! One test binary for the crate (each module is one former test file), so `cargo test` links
//! one executable here instead of one per file.

mod alloc_probe;
mod codec;
mod common;
mod dcf;
mod laws;
mod matmul;
mod privacy;
mod protocols;
mod tcp_protocol;
mod transport_tcp;
mod wire;
