//! The dealer as a service: `masq dealer` deals each inference on request and streams each party
//! its own half, so neither party copies dealer files and nothing is dealt ahead of time.
//!
//! ```text
//!   server (P0)                      dealer D                         client (P1)
//!   ── Open { params } ─────────────▶ s = next (made durable first)
//!                                     ticket t (random, kept in memory)
//!   ◀──── Granted { s, t, id } ─────
//!   ◀──── P0's half of s, request by request (masq_mpc::dealer::wire) ...
//!   ── Hello { s, t, id } (the session's handshake) ───────────────────────────────▶
//!                                     ◀──────────────── Fetch { params, s, t } ────
//!                                     t must be s's, unexpired, not used; then forgotten
//!                                     ───────────────── Granted { s, t, id } ─────▶
//!                                     ──────── P1's half of s, request by request ▶
//!   ◀───────────────────────────────────────────────────────────────── Accept { s }
//!   ── Go { s } ────────────────────────────────────────────────────────────────────▶
//! ```
//!
//! - Inference `s` is dealt from a key derived from the dealer's secret and `s` ([`state`]); D
//!   holds one request's material at a time and sends each party only its own half.
//! - **Never dealt twice, never used twice.** Each `Open` gets a new number, made durable before
//!   it is announced, so a restarted dealer never repeats one. P1's half of `s` is sent once, to
//!   the holder of `s`'s ticket (which only D and the server that opened `s` know, and the server
//!   tells only its client); tickets live in memory, so after a dealer restart the inferences
//!   opened before it are refused to everyone. A session that fails anywhere burns its number:
//!   nothing is spent that could be used again.
//! - With TLS ([`crate::tls`]), `Open` is accepted only from a server certificate and `Fetch`
//!   only from a client certificate, so no party can get the other's half of its own session.
//!   Without TLS (one host, tests), any peer that can connect may open or fetch.

pub mod link;
pub mod service;
pub mod state;

use bincode::{Decode, Encode};

use masq_mpc::dealer::CmpMode;

pub use link::{DealerLink, Grant};
pub use service::{DealerOptions, DealerService, Served};

/// Version of the dealer protocol (2: the Sigmoid's material follows its interleaved rounds).
pub const DEALER_PROTOCOL_VERSION: u32 = 2;

/// Largest frame of a request to the dealer (they are a few hundred bytes).
pub const REQUEST_MAX_FRAME_BYTES: usize = 4096;

/// What a dealer deals: the public model and the fixed-point settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Params {
    pub model_hash: [u8; 32],
    pub frac_bits: u32,
    pub cmp_bits: u32,
    pub cmp_mode: CmpMode,
    pub batch: u64,
}

impl Params {
    /// The first field where `self` (the dealer's) and `want` differ, as a mismatch error.
    pub fn check(&self, want: &Params) -> crate::Result<()> {
        let m = |field, d: String, w: String| {
            Err(crate::DeployError::Mismatch { field, server: format!("dealer {d}"), client: format!("requested {w}") })
        };
        if self.model_hash != want.model_hash {
            return m("model (hash of the public model)", crate::hex(&self.model_hash), crate::hex(&want.model_hash));
        }
        if self.frac_bits != want.frac_bits {
            return m("fixed-point frac bits", self.frac_bits.to_string(), want.frac_bits.to_string());
        }
        if self.cmp_bits != want.cmp_bits {
            return m("comparison bits", self.cmp_bits.to_string(), want.cmp_bits.to_string());
        }
        if self.cmp_mode != want.cmp_mode {
            return m("comparison mode", self.cmp_mode.to_string(), want.cmp_mode.to_string());
        }
        if self.batch != want.batch {
            return m("batch", self.batch.to_string(), want.batch.to_string());
        }
        Ok(())
    }
}

/// Messages between a party and the dealer (bincode, one frame each).
#[derive(Debug, Encode, Decode)]
enum Msg {
    /// What do you deal? (no material)
    Info {
        version: u32,
    },
    /// P0: a new inference.
    Open {
        version: u32,
        want: Params,
    },
    /// P1: its half of inference `slot`, opened by its server.
    Fetch {
        version: u32,
        want: Params,
        slot: u64,
        ticket: [u8; 32],
    },
    /// The answer; for `Open` and `Fetch` the party's material follows.
    Granted {
        params: Params,
        dealer_id: [u8; 16],
        slot: u64,
        ticket: [u8; 32],
    },
    Refuse {
        reason: String,
    },
}

impl Msg {
    fn name(&self) -> &'static str {
        match self {
            Msg::Info { .. } => "Info",
            Msg::Open { .. } => "Open",
            Msg::Fetch { .. } => "Fetch",
            Msg::Granted { .. } => "Granted",
            Msg::Refuse { .. } => "Refuse",
        }
    }
}
