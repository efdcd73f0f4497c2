//! One session of each side: the server (P0, the model owner) and the client (P1, the input owner).
//!
//! Messages (bincode, one frame each) before the secure computation:
//!
//! ```text
//!   S → C  Auth { version, required, nonce ns }
//!   C → S  Proof { nonce nc, HMAC(key, "masq-client"||ns||nc) }        (when required)
//!   S → C  ServerProof { HMAC(key, "masq-server"||nc||ns) }            (or Refuse)
//!   S → C  Hello { version, model hash, frac bits, cmp bits, batch, K, first unspent; public model }
//!   C → S  Hello { the same fields from p1.bin }                      (or Refuse)
//!   S → C  Go { index = max(first unspent of both) }                 (or Refuse, saying why)
//!          both mark inference `index` (and any they skip) spent, then run it
//!   S → C  Summary (the server's per-step rounds and times)  C → S  Summary
//! ```
//! Both sides check the hello fields with the same function, so a mismatch is reported with the
//! same words on both sides.
//!
//! Both sides run over any [`Transport`] ([`Server::serve_over`], [`Client::query_over`]); the
//! TCP entry points ([`Server::serve`] on an accepted connection, [`query`] connecting to an
//! address) only open the connection with the options' timeout and frame limit. Over another
//! transport, its own timeout and frame limit apply.

use std::path::Path;
use std::time::{Duration, Instant};

use bincode::{Decode, Encode};
use ndarray::ArrayD;

use masq_mpc::Party;
use masq_mpc::cost::{Cost, Network, estimate_seconds, latency::FORMULA};
use masq_mpc::dealer::CmpMode;
use masq_mpc::protocols::{Ctx, StepRecord};
use masq_mpc::transport::{DEFAULT_MAX_FRAME_BYTES, TcpOptions, TcpTransport, Transport};

use crate::auth::{Key, NONCE_BYTES, nonce};
use crate::file::DealerFile;
use crate::public::{PublicModel, sha256};
use crate::{DeployError, PROTOCOL_VERSION, Result, hex, mpc_err};
use masq_ir::Graph;
use masq_runtime::secure::{self, Plan, SecureConfig};

/// Settings of a session (either side).
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Connect timeout (client) and the longest wait for any message or write (TCP; another
    /// transport keeps its own).
    pub timeout: Duration,
    /// Shared key: authenticate the peer with HMAC-SHA256 challenge-response.
    pub key: Option<Key>,
    /// Largest frame accepted or sent (TCP; another transport keeps its own).
    pub max_frame_bytes: usize,
    /// Most bytes of preprocessing held at once: the dealer file's section is read and expanded
    /// in segments of about this size while the online phase runs (at least one request each).
    pub material_budget_bytes: u64,
    /// Threads this party's comparison (DCF) evaluation may use (at least 1).
    pub threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            timeout: Duration::from_secs(30),
            key: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            material_budget_bytes: 1 << 30,
            threads: 1,
        }
    }
}

impl SessionOptions {
    /// The transport settings these options imply.
    pub fn tcp(&self) -> TcpOptions {
        TcpOptions { max_frame_bytes: self.max_frame_bytes, ..TcpOptions::with_timeout(self.timeout) }
    }
}

/// The server's options.
pub type ServeOptions = SessionOptions;
/// The client's options.
pub type QueryOptions = SessionOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
struct Hello {
    version: u32,
    model_hash: [u8; 32],
    frac_bits: u32,
    cmp_bits: u32,
    cmp_mode: CmpMode,
    batch: u64,
    count: u64,
    first_unspent: u64,
}

impl Hello {
    fn of(file: &DealerFile) -> Hello {
        let h = file.header();
        Hello {
            version: PROTOCOL_VERSION,
            model_hash: h.model_hash,
            frac_bits: h.frac_bits,
            cmp_bits: h.cmp_bits,
            cmp_mode: h.cmp_mode,
            batch: h.batch,
            count: h.count,
            first_unspent: file.first_unspent(),
        }
    }
}

/// What a party reports after the run, so both compute the same combined figures.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct Summary {
    step_ops: Vec<String>,
    step_rounds: Vec<u64>,
    online_seconds: f64,
}

#[derive(Debug, Encode, Decode)]
enum Msg {
    Auth { version: u32, required: bool, nonce: [u8; NONCE_BYTES] },
    Proof { nonce: [u8; NONCE_BYTES], mac: [u8; 32] },
    ServerProof { mac: [u8; 32] },
    Hello { hello: Hello, public_model: Vec<u8> },
    Go { index: u64 },
    Refuse { reason: String },
    Summary(Summary),
}

impl Msg {
    fn name(&self) -> &'static str {
        match self {
            Msg::Auth { .. } => "Auth",
            Msg::Proof { .. } => "Proof",
            Msg::ServerProof { .. } => "ServerProof",
            Msg::Hello { .. } => "Hello",
            Msg::Go { .. } => "Go",
            Msg::Refuse { .. } => "Refuse",
            Msg::Summary(_) => "Summary",
        }
    }
}

fn send<T: Transport>(t: &mut T, m: &Msg, during: &'static str) -> Result<()> {
    t.send_msg(m).and_then(|_| t.flush()).map_err(mpc_err(during))
}

fn recv<T: Transport>(t: &mut T, during: &'static str) -> Result<Msg> {
    t.recv_msg::<Msg>(during).map_err(mpc_err(during))
}

/// Tells the peer why, best effort (it may be gone), and returns the error.
fn refuse<T: Transport>(t: &mut T, e: DeployError) -> DeployError {
    let _ = send(t, &Msg::Refuse { reason: e.to_string() }, "refusing");
    e
}

fn unexpected(during: &'static str, expected: &str, got: &Msg) -> DeployError {
    DeployError::Protocol { during, reason: format!("expected {expected}, got {}", got.name()) }
}

fn short(h: &[u8; 32]) -> String {
    hex(&h[..8])
}

/// The server's side of the greeting and of authentication (when it has a key): nothing else is
/// sent before the client has proved that it knows the key.
fn greet<T: Transport>(t: &mut T, key: Option<&Key>) -> Result<()> {
    let ns = nonce();
    send(t, &Msg::Auth { version: PROTOCOL_VERSION, required: key.is_some(), nonce: ns }, "greeting")?;
    if let Some(key) = key {
        match recv(t, "authenticating the client")? {
            Msg::Proof { nonce: nc, mac } => {
                if !key.verify_client(&ns, &nc, &mac) {
                    let e = DeployError::Auth { reason: "the client's answer does not verify (wrong key)".into() };
                    return Err(refuse(t, e));
                }
                send(t, &Msg::ServerProof { mac: key.server_mac(&nc, &ns) }, "authenticating")?;
            }
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(t, unexpected("authenticating the client", "Proof", &m))),
        }
    }
    Ok(())
}

/// The client's side of the greeting and of authentication: checks the server's protocol
/// version, and proves knowledge of `key` and checks the server's proof when the server asks;
/// a client with a key refuses a server that does not ask.
fn greeted_by<T: Transport>(t: &mut T, key: Option<&Key>) -> Result<()> {
    let (version, required, ns) = match recv(t, "greeting")? {
        Msg::Auth { version, required, nonce } => (version, required, nonce),
        m => return Err(refuse(t, unexpected("greeting", "Auth", &m))),
    };
    if version != PROTOCOL_VERSION {
        let e = DeployError::Mismatch {
            field: "protocol version",
            server: version.to_string(),
            client: PROTOCOL_VERSION.to_string(),
        };
        return Err(refuse(t, e));
    }
    match (key, required) {
        (None, true) => {
            let e = DeployError::Auth { reason: "the server requires authentication (give --auth KEYFILE)".into() };
            return Err(refuse(t, e));
        }
        (Some(_), false) => {
            let e = DeployError::Auth {
                reason: "the server does not authenticate, but --auth was given: refusing an unauthenticated server"
                    .into(),
            };
            return Err(refuse(t, e));
        }
        (None, false) => {}
        (Some(key), true) => {
            let nc = nonce();
            send(t, &Msg::Proof { nonce: nc, mac: key.client_mac(&ns, &nc) }, "authenticating")?;
            match recv(t, "authenticating the server")? {
                Msg::ServerProof { mac } if key.verify_server(&nc, &ns, &mac) => {}
                Msg::ServerProof { .. } => {
                    let e = DeployError::Auth { reason: "the server's answer does not verify (wrong key)".into() };
                    return Err(refuse(t, e));
                }
                Msg::Refuse { reason } => {
                    return Err(DeployError::Auth { reason: format!("the server says: {reason}") });
                }
                m => return Err(refuse(t, unexpected("authenticating the server", "ServerProof", &m))),
            }
        }
    }
    Ok(())
}

/// The checks both sides run on the two hellos.
fn check(server: &Hello, client: &Hello) -> Result<()> {
    let m = |field, s: String, c: String| Err(DeployError::Mismatch { field, server: s, client: c });
    if server.version != client.version {
        return m("protocol version", server.version.to_string(), client.version.to_string());
    }
    if server.model_hash != client.model_hash {
        return m(
            "model (hash of the public model; the preprocessing was dealt for another model)",
            short(&server.model_hash),
            short(&client.model_hash),
        );
    }
    if server.frac_bits != client.frac_bits {
        return m("fixed-point frac bits", server.frac_bits.to_string(), client.frac_bits.to_string());
    }
    if server.cmp_bits != client.cmp_bits {
        return m("comparison bits", server.cmp_bits.to_string(), client.cmp_bits.to_string());
    }
    if server.cmp_mode != client.cmp_mode {
        return m("comparison mode", server.cmp_mode.to_string(), client.cmp_mode.to_string());
    }
    if server.batch != client.batch {
        return m("batch", server.batch.to_string(), client.batch.to_string());
    }
    Ok(())
}

/// The inference both use: the larger first unspent index (each side skips what the other burned).
fn choose(server: &Hello, client: &Hello) -> Result<u64> {
    let i = server.first_unspent.max(client.first_unspent);
    if i >= server.count || i >= client.count {
        let side = if i >= server.count { "server's p0.bin" } else { "client's p1.bin" };
        return Err(DeployError::Exhausted {
            reason: format!(
                "all inferences of the {side} are spent (server {} of {} left, client {} of {} left from index {i}); \
                 deal more with `masq deal`",
                server.count.saturating_sub(i),
                server.count,
                client.count.saturating_sub(i),
                client.count
            ),
        });
    }
    Ok(i)
}

fn summary_of(log: &[StepRecord], online_seconds: f64) -> Summary {
    Summary {
        step_ops: log.iter().map(|s| s.op.to_string()).collect(),
        step_rounds: log.iter().map(|s| s.traffic.rounds).collect(),
        online_seconds,
    }
}

/// Online figures from one party's log, with rounds combined with the peer's per-step rounds
/// (the slower of the two per step, as the in-process run counts) when the peer's summary agrees.
fn figures(party: Party, log: &[StepRecord], peer: Option<&Summary>) -> Cost {
    let sent: u64 = log.iter().map(|s| s.traffic.bytes_sent).sum();
    let received: u64 = log.iter().map(|s| s.traffic.bytes_received).sum();
    let own = log.iter().map(|s| s.traffic.rounds);
    let rounds = match peer {
        Some(p) if p.step_ops.len() == log.len() && p.step_ops.iter().zip(log).all(|(a, b)| a == b.op) => {
            own.zip(&p.step_rounds).map(|(a, &b)| a.max(b)).sum()
        }
        _ => own.sum(),
    };
    let (p0_to_p1, p1_to_p0) = match party {
        Party::P0 => (sent, received),
        Party::P1 => (received, sent),
    };
    Cost { p0_to_p1, p1_to_p0, rounds, ..Cost::default() }
}

/// What the server logs about one session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionReport {
    pub index: u64,
    pub peer: String,
    pub online_bytes_p0_to_p1: u64,
    pub online_bytes_p1_to_p0: u64,
    pub rounds: u64,
    /// Online wall seconds at the server.
    pub online_seconds: f64,
    /// Model load (opening `E = W - A`) bytes, both directions.
    pub setup_bytes: u64,
    /// The whole session, handshake included.
    pub seconds: f64,
}

/// The model owner, P0: its plan, public model and preprocessing file.
#[derive(Debug)]
pub struct Server {
    plan: Plan,
    public: PublicModel,
    file: DealerFile,
    opts: SessionOptions,
}

impl Server {
    /// Plans `graph` as `preprocessing` (a `p0.bin`) was dealt, and checks that it was dealt for this model.
    pub fn new(graph: &Graph, preprocessing: &Path, opts: SessionOptions) -> Result<Server> {
        let file = DealerFile::open(preprocessing, Party::P0)?;
        let h = *file.header();
        let cfg = SecureConfig {
            frac_bits: h.frac_bits,
            cmp_bits: h.cmp_bits,
            cmp_mode: h.cmp_mode,
            seed: 0,
            ..SecureConfig::default()
        };
        let plan = secure::plan(graph, h.batch as usize, &cfg)?;
        let public = PublicModel::of(&plan.graph)?;
        if public.hash != h.model_hash {
            return Err(DeployError::BadFile {
                path: preprocessing.to_path_buf(),
                reason: format!(
                    "dealt for another model (file: model hash {}, this model: {})",
                    short(&h.model_hash),
                    short(&public.hash)
                ),
            });
        }
        file.model_material()?;
        Ok(Server { plan, public, file, opts })
    }

    /// The preprocessing file.
    pub fn file(&self) -> &DealerFile {
        &self.file
    }

    /// The options.
    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    /// The public model the server sends.
    pub fn public_model(&self) -> &PublicModel {
        &self.public
    }

    /// The plan every session runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs one session with a client connected over TCP (accepted with
    /// [`SessionOptions::tcp`]): [`Server::serve_over`] with the peer's address.
    pub fn serve(&mut self, t: TcpTransport, on_start: impl FnOnce(u64)) -> Result<SessionReport> {
        let peer = t.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        self.serve_over(t, &peer, on_start)
    }

    /// Runs one session with a client connected over `t` (`peer` names it in the report);
    /// `on_start(index)` is called once the inference is chosen and marked spent. Any failure
    /// ends this session only.
    pub fn serve_over<T: Transport>(
        &mut self,
        mut t: T,
        peer: &str,
        on_start: impl FnOnce(u64),
    ) -> Result<SessionReport> {
        let start = Instant::now();
        greet(&mut t, self.opts.key.as_ref())?;
        let mine = Hello::of(&self.file);
        send(&mut t, &Msg::Hello { hello: mine, public_model: self.public.bytes.clone() }, "handshake")?;
        let theirs = match recv(&mut t, "handshake")? {
            Msg::Hello { hello, .. } => hello,
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(&mut t, unexpected("handshake", "Hello", &m))),
        };
        let index = match check(&mine, &theirs).and_then(|_| choose(&mine, &theirs)) {
            Ok(i) => i,
            Err(e) => return Err(refuse(&mut t, e)),
        };
        self.file.mark_spent(mine.first_unspent, index)?;
        send(&mut t, &Msg::Go { index }, "handshake")?;
        on_start(index);

        let model = self.file.model_material()?;
        let budget = self.opts.material_budget_bytes;
        let (pre, rest) = self.file.inference_stream(index, &self.plan.requests, &model, budget)?;
        let mut ctx = Ctx::new(Party::P0, t, pre, self.plan.fixed_point).map_err(mpc_err("context"))?;
        ctx.set_refill(rest);
        ctx.set_threads(self.opts.threads);
        let out = secure::run_party(&mut ctx, &self.plan, model, None)?;
        let net = ctx.transport_mut().inner_mut();
        let mine = summary_of(&out.log, out.online_seconds);
        send(net, &Msg::Summary(mine), "sending the summary")?;
        // The client's summary only refines the round count: a client gone by now is no failure.
        let theirs = match recv(net, "receiving the summary") {
            Ok(Msg::Summary(s)) => Some(s),
            _ => None,
        };
        let c = figures(Party::P0, &out.log, theirs.as_ref());
        let setup_bytes = out.setup_log.iter().map(|s| s.traffic.total_bytes()).sum();
        Ok(SessionReport {
            index,
            peer: peer.to_string(),
            online_bytes_p0_to_p1: c.p0_to_p1,
            online_bytes_p1_to_p0: c.p1_to_p0,
            rounds: c.rounds,
            online_seconds: out.online_seconds,
            setup_bytes,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// What the client gets from one query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The inference (preprocessing index) used.
    pub index: u64,
    /// Hash of the public model (hex).
    pub model_hash: String,
    pub batch: usize,
    /// Graph outputs by name, decoded (Softmax at the output applied in the clear).
    pub outputs: Vec<(String, ArrayD<f32>)>,
    /// Measured online cost (bytes per direction, rounds).
    pub measured: Cost,
    /// The planner's prediction for one inference.
    pub predicted: Cost,
    /// The cost table's totals for one image (`relu_count`, comparisons by kind, ...).
    pub per_image: masq_ir::cost::ModelCounts,
    /// Secure comparisons of the whole batch.
    pub comparisons_per_batch: u64,
    /// Online wall seconds at the client and at the server.
    pub online_seconds: f64,
    pub server_online_seconds: Option<f64>,
    /// Model load (opening `E = W - A`): bytes both directions, client seconds.
    pub setup_bytes: u64,
    pub setup_seconds: f64,
    /// Connect to result.
    pub total_seconds: f64,
    pub est_lan_seconds: f64,
    pub est_wan_seconds: f64,
    pub formula: &'static str,
}

/// The input owner, P1: its preprocessing file and options.
#[derive(Debug)]
pub struct Client {
    file: DealerFile,
    opts: SessionOptions,
}

impl Client {
    /// Opens `preprocessing` (a `p1.bin`).
    pub fn new(preprocessing: &Path, opts: SessionOptions) -> Result<Client> {
        Ok(Client { file: DealerFile::open(preprocessing, Party::P1)?, opts })
    }

    /// The preprocessing file.
    pub fn file(&self) -> &DealerFile {
        &self.file
    }

    /// The options.
    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    /// Runs one query with a server connected over `t`: authenticates (with the options' key),
    /// receives the public model and checks it against the preprocessing file, runs one inference
    /// on `x` (`[batch, ...]`, or one image without the batch axis) and decodes the revealed
    /// output. `on_event` hears progress lines.
    pub fn query_over<T: Transport>(
        &mut self,
        t: T,
        x: &ArrayD<f32>,
        on_event: impl FnMut(&str),
    ) -> Result<QueryResult> {
        self.run(t, x, on_event, Instant::now())
    }

    fn run<T: Transport>(
        &mut self,
        mut t: T,
        x: &ArrayD<f32>,
        mut on_event: impl FnMut(&str),
        start: Instant,
    ) -> Result<QueryResult> {
        let (opts, file) = (&self.opts, &mut self.file);
        greeted_by(&mut t, opts.key.as_ref())?;
        let (server, public_model) = match recv(&mut t, "handshake")? {
            Msg::Hello { hello, public_model } => (hello, public_model),
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(&mut t, unexpected("handshake", "Hello", &m))),
        };
        if sha256(&public_model) != server.model_hash {
            let e = DeployError::Protocol {
                during: "handshake",
                reason: "the public model sent does not have the hash the server announced".into(),
            };
            return Err(refuse(&mut t, e));
        }
        let mine = Hello::of(file);
        if let Err(e) = check(&server, &mine) {
            // The server runs the same check on our hello and reports the same mismatch.
            let _ = send(&mut t, &Msg::Hello { hello: mine, public_model: Vec::new() }, "handshake");
            return Err(e);
        }
        // Plan the same computation from the public model, and check the input against it.
        let plan = (|| {
            let graph = PublicModel::decode(&public_model)?;
            let cfg = SecureConfig {
                frac_bits: mine.frac_bits,
                cmp_bits: mine.cmp_bits,
                cmp_mode: mine.cmp_mode,
                seed: 0,
                ..SecureConfig::default()
            };
            let plan = secure::plan(&graph, mine.batch as usize, &cfg)?;
            let want = graph.data_inputs().next().map(|i| i.shape_at(mine.batch as usize)).unwrap_or_default();
            // One image without the batch axis is accepted at batch 1.
            let x = if x.ndim() + 1 == want.len() { x.clone().insert_axis(ndarray::Axis(0)) } else { x.clone() };
            if x.shape() != want.as_slice() {
                return Err(DeployError::Runtime(
                    masq_ir::IrError::BadInput {
                        name: "input".into(),
                        expected: format!("{want:?} (the preprocessing was dealt for batch {})", mine.batch),
                        got: x.shape().to_vec(),
                    }
                    .into(),
                ));
            }
            Ok((plan, x))
        })();
        let (plan, x) = match plan {
            Ok(p) => p,
            Err(e) => return Err(refuse(&mut t, e)),
        };
        send(&mut t, &Msg::Hello { hello: mine, public_model: Vec::new() }, "handshake")?;
        let index = match recv(&mut t, "handshake")? {
            Msg::Go { index } => index,
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(&mut t, unexpected("handshake", "Go", &m))),
        };
        if index < mine.first_unspent || index >= mine.count {
            let e = DeployError::Protocol {
                during: "handshake",
                reason: format!(
                    "the server chose inference {index}, but {} is the first unspent here",
                    mine.first_unspent
                ),
            };
            return Err(refuse(&mut t, e));
        }
        file.mark_spent(mine.first_unspent, index)?;
        on_event(&format!("running inference {index}"));

        let model = file.model_material()?;
        let (pre, rest) = file.inference_stream(index, &plan.requests, &model, opts.material_budget_bytes)?;
        let mut ctx = Ctx::new(Party::P1, t, pre, plan.fixed_point).map_err(mpc_err("context"))?;
        ctx.set_refill(rest);
        ctx.set_threads(opts.threads);
        let out = secure::run_party(&mut ctx, &plan, model, Some(&x))?;
        let outputs = secure::decode_outputs(&plan, &out.outputs)?;
        let net = ctx.transport_mut().inner_mut();
        let server_summary = match recv(net, "receiving the summary") {
            Ok(Msg::Summary(s)) => Some(s),
            _ => None,
        };
        let _ = send(net, &Msg::Summary(summary_of(&out.log, out.online_seconds)), "sending the summary");
        let mut measured = figures(Party::P1, &out.log, server_summary.as_ref());
        let predicted = plan.total();
        (measured.offline_p0, measured.offline_p1) = (predicted.offline_p0, predicted.offline_p1);
        let server_online_seconds = server_summary.as_ref().map(|s| s.online_seconds);
        let compute = out.online_seconds.max(server_online_seconds.unwrap_or(0.0));
        Ok(QueryResult {
            index,
            model_hash: hex(&server.model_hash),
            batch: plan.batch,
            outputs,
            measured,
            predicted,
            per_image: plan.per_image(),
            comparisons_per_batch: plan.comparisons_per_batch(),
            online_seconds: out.online_seconds,
            server_online_seconds,
            setup_bytes: out.setup_log.iter().map(|s| s.traffic.total_bytes()).sum(),
            setup_seconds: out.setup_seconds,
            total_seconds: start.elapsed().as_secs_f64(),
            est_lan_seconds: estimate_seconds(&measured, compute, &Network::LAN),
            est_wan_seconds: estimate_seconds(&measured, compute, &Network::WAN),
            formula: FORMULA,
        })
    }
}

/// The client over TCP: opens `preprocessing` (a `p1.bin`), connects to `addr` (with
/// [`SessionOptions::tcp`] and the options' timeout) and runs [`Client::query_over`].
pub fn query(
    addr: &str,
    preprocessing: &Path,
    x: &ArrayD<f32>,
    opts: &SessionOptions,
    mut on_event: impl FnMut(&str),
) -> Result<QueryResult> {
    let start = Instant::now();
    let mut client = Client::new(preprocessing, opts.clone())?;
    let t = TcpTransport::connect_with(addr, opts.timeout, opts.tcp()).map_err(mpc_err("connecting"))?;
    on_event(&format!("connected to {addr}"));
    client.run(t, x, on_event, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            model_hash: [7; 32],
            frac_bits: 16,
            cmp_bits: 64,
            cmp_mode: CmpMode::OneRound,
            batch: 1,
            count: 4,
            first_unspent: 0,
        }
    }

    #[test]
    fn mismatches_name_the_field() {
        let s = hello();
        assert!(check(&s, &s).is_ok());
        for (c, field) in [
            (Hello { model_hash: [8; 32], ..s }, "model"),
            (Hello { frac_bits: 12, ..s }, "frac bits"),
            (Hello { cmp_bits: 40, ..s }, "comparison bits"),
            (Hello { cmp_mode: CmpMode::Compact, ..s }, "comparison mode"),
            (Hello { batch: 2, ..s }, "batch"),
            (Hello { version: 9, ..s }, "protocol version"),
        ] {
            let e = check(&s, &c).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn the_later_first_unspent_index_wins() {
        let s = hello();
        assert_eq!(choose(&Hello { first_unspent: 2, ..s }, &Hello { first_unspent: 1, ..s }).unwrap(), 2);
        assert_eq!(choose(&s, &Hello { first_unspent: 3, ..s }).unwrap(), 3);
        let e = choose(&Hello { first_unspent: 4, ..s }, &s).unwrap_err();
        assert!(matches!(e, DeployError::Exhausted { .. }) && e.to_string().contains("server"), "{e}");
        assert!(choose(&s, &Hello { count: 1, first_unspent: 1, ..s }).is_err());
    }
}
