//! masq-deploy's integration tests: whole sessions of the real server and client over the
//! in-memory transport pair, with real dealer files.
//!
//! - [`handshake`]: a session end to end, and every refusal of the handshake;
//! - [`auth`]: authentication happens before any protocol message;
//! - [`dealer_service`]: sessions whose material comes from a dealer service;
//! - [`disconnect`]: a peer that goes away mid-handshake is a typed error on the other side;
//! - [`public_model`]: decoding a forged public model allocates no more than its bytes allow;
//! - [`slots`]: which inference a session uses, file locks, torn pairs, concurrent sessions;
//! - [`tcp`]: the TCP entry points run the same session over a socket;
//! - [`tls`]: keys, identities, TLS channels and their refusals, a session over TLS.

mod auth;
mod common;
mod dealer_service;
mod disconnect;
mod handshake;
mod public_model;
mod slots;
mod tcp;
mod tls;
