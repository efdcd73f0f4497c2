//! # masq-deploy
//!
//! Deployment: encrypted inference between two real processes, with preprocessing from dealer
//! files or from a dealer service.
//!
//! ```text
//!   masq deal  ──▶ DIR/p0.bin (server)   DIR/p1.bin (client)      trusted dealer, offline, K inferences
//!   masq dealer (service) ──▶ each party its half of each inference, on request, over TLS
//!   masq serve (P0: weights + p0.bin | --dealer)  ⇄ TCP/TLS (or any Transport) ⇄  masq query (P1: input + p1.bin | --dealer)
//!       1. auth (optional): HMAC-SHA256 challenge-response on a shared key (TLS first, when on)
//!       2. hello: protocol version, pair id (or dealer id), model hash, fixed point, comparison
//!          bits, batch, and the inference the server offers (its first slot neither spent nor
//!          reserved by another session, or a new one opened at the dealer, with its ticket);
//!          the server also sends the public model (the client plans from it)
//!       3. the client accepts the slot only if it is unspent in p1.bin (or once it has fetched its
//!          half from the dealer with the ticket); both mark it spent (fsync), then run it: model
//!          load, offline precomputation, online pass, reveal
//! ```
//!
//! - [`public`]: the public part of a model (structure, shapes, masks, public constants; linear
//!   weights and biases replaced by their shapes) and its hash;
//! - [`file`](mod@file): the dealer's per-party preprocessing file with crash-safe "spent" flags;
//! - [`auth`]: the HMAC-SHA256 challenge-response;
//! - [`tls`]: mutually authenticated TLS 1.3 channels with a project CA, and `masq keygen`'s keys;
//! - [`session`]: the handshake and one session of each side over any transport
//!   ([`Server::serve_over`], [`Client::query_over`]) and over TCP ([`Server::serve`], [`query`]);
//! - [`deal`]: the dealer's offline phase for K inferences;
//! - [`dealer`]: the dealer as a service (`masq dealer`): numbers made durable before use,
//!   tickets, and each party's half streamed request by request;
//! - [`relay`]: a shaping TCP relay (delay and bandwidth of a network profile) for measurements.
//!
//! Threat model: semi-honest parties, a trusted dealer, and public masks, shapes and structure.
//! Authentication keeps strangers out; it does not make a dishonest peer honest.

pub mod auth;
pub mod dealer;
pub mod file;
pub mod public;
pub mod relay;
pub mod session;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::Instant;

use masq_mpc::MpcError;
use masq_mpc::dealer::Dealer;

use masq_ir::Graph;
use masq_runtime::RuntimeError;
use masq_runtime::secure::{SecureConfig, plan};

pub use file::{DealerFile, FileHeader};
pub use public::PublicModel;
pub use session::{
    Client, QueryOptions, QueryResult, ServeOptions, Server, SessionOptions, SessionReport, query, query_with_dealer,
};

/// Version of the wire protocol: the handshake, the message layout and the sequence of protocol
/// calls the secure lowering makes (5: the Sigmoid's pieces share their rounds).
pub const PROTOCOL_VERSION: u32 = 5;

/// Errors of deployment: files, keys, handshakes and sessions.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A preprocessing file is damaged, of another format, or for the other party.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A key file is unusable.
    #[error("key file {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    /// The peer did not prove knowledge of the shared key (or this side could not).
    #[error("authentication failed: {reason}")]
    Auth { reason: String },
    /// The two sides were set up for different computations.
    #[error("handshake refused: {field} differs (server {server}, client {client})")]
    Mismatch { field: &'static str, server: String, client: String },
    /// No unspent inference is left on one side.
    #[error("preprocessing exhausted: {reason}")]
    Exhausted { reason: String },
    /// The server has as many sessions in progress as it allows.
    #[error("server busy: {reason}")]
    Busy { reason: String },
    /// The peer refused the session and said why.
    #[error("refused by the peer: {reason}")]
    Refused { reason: String },
    /// The peer sent something the protocol does not allow at this point.
    #[error("protocol violation while {during}: {reason}")]
    Protocol { during: &'static str, reason: String },
    /// The public model received or decoded is malformed.
    #[error("malformed public model: {reason}")]
    BadPublicModel { reason: String },
    /// An engine error (transport, preprocessing, protocol) with where it happened.
    #[error("{at}: {source}")]
    Mpc {
        at: String,
        #[source]
        source: MpcError,
    },
    /// A model or runtime error (planning, the secure run).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Result of deployment functions.
pub type Result<T, E = DeployError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn mpc_err(at: &str) -> impl FnOnce(MpcError) -> DeployError + '_ {
    move |source| DeployError::Mpc { at: at.to_string(), source }
}

pub use masq_ir::atomic::hex;

/// What [`deal`] wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DealSummary {
    pub p0_path: PathBuf,
    pub p1_path: PathBuf,
    /// Sizes of the two files.
    pub p0_bytes: u64,
    pub p1_bytes: u64,
    /// Inferences dealt.
    pub count: u64,
    pub batch: usize,
    /// Hash of the public model (hex).
    pub model_hash: String,
    /// The cost model's offline bytes of one inference (both parties, seed-compressed) and of
    /// the model load.
    pub predicted_offline_bytes: u64,
    pub predicted_setup_offline_bytes: u64,
    /// What the dealer reported for all inferences (both parties, seed-compressed).
    pub dealt_offline_bytes: u64,
    pub seconds: f64,
}

/// The dealer's offline phase: plans `graph` at `batch`, sets up the model once and deals `count`
/// inferences with `Dealer::new(cfg.seed)` (inference 0 gets exactly the material an in-process
/// [`masq_runtime::secure::run`] with the same seed deals), then writes `dir/p0.bin` and `dir/p1.bin`.
pub fn deal(graph: &Graph, cfg: &SecureConfig, batch: usize, count: u64, dir: &Path) -> Result<DealSummary> {
    deal_from(Dealer::new(cfg.seed), graph, cfg, batch, count, dir)
}

/// [`deal`] with the dealer's randomness determined by a 256-bit secret `key` instead of the
/// 64-bit `cfg.seed` (`masq deal` without `--seed` draws it from the operating system).
pub fn deal_keyed(
    graph: &Graph,
    cfg: &SecureConfig,
    batch: usize,
    count: u64,
    dir: &Path,
    key: [u8; 32],
) -> Result<DealSummary> {
    deal_from(Dealer::from_key(key), graph, cfg, batch, count, dir)
}

fn deal_from(
    mut dealer: Dealer,
    graph: &Graph,
    cfg: &SecureConfig,
    batch: usize,
    count: u64,
    dir: &Path,
) -> Result<DealSummary> {
    if count == 0 {
        return Err(DeployError::Mpc {
            at: "deal".into(),
            source: MpcError::InvalidParameter {
                name: "count",
                value: "0".into(),
                reason: "must be at least 1".into(),
            },
        });
    }
    let t = Instant::now();
    let plan = plan(graph, batch, cfg)?;
    let public = PublicModel::of(&plan.graph)?;
    let kinds: Vec<_> = plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
    let (m0, m1) = dealer.setup_model(&kinds).map_err(mpc_err("dealer (model load)"))?;
    // Binds the two files of this deal to each other (checked in the handshake).
    let pair_id: [u8; 16] = rand::random();
    let header = |party| FileHeader {
        party,
        pair_id,
        model_hash: public.hash,
        frac_bits: cfg.frac_bits,
        cmp_bits: cfg.cmp_bits,
        cmp_mode: cfg.cmp_mode,
        batch: batch as u64,
        count,
    };
    let mut dealt = 0u64;
    let written =
        file::write_pair(dir, [header(masq_mpc::Party::P0), header(masq_mpc::Party::P1)], (&m0, &m1), |_| {
            let deal = dealer.deals();
            let (p0, p1) = dealer.deal(&plan.requests).map_err(mpc_err("dealer"))?;
            dealt += p0.offline_bytes() + p1.offline_bytes();
            let (o0, o1) = (dealer.origin(masq_mpc::Party::P0, deal), dealer.origin(masq_mpc::Party::P1, deal));
            Ok(((p0, o0), (p1, o1)))
        })?;
    Ok(DealSummary {
        p0_path: written[0].0.clone(),
        p1_path: written[1].0.clone(),
        p0_bytes: written[0].1,
        p1_bytes: written[1].1,
        count,
        batch,
        model_hash: hex(&public.hash),
        predicted_offline_bytes: plan.total().offline_bytes(),
        predicted_setup_offline_bytes: plan.setup.offline_bytes(),
        dealt_offline_bytes: dealt,
        seconds: t.elapsed().as_secs_f64(),
    })
}
