//! One session of each side: the server (P0, the model owner) and the client (P1, the input owner).
//!
//! Messages (bincode, one frame each) before the secure computation:
//!
//! ```text
//!   S → C  Auth { version, required, nonce ns }
//!   C → S  Proof { nonce nc, HMAC(key, "masq-client"||ns||nc) }        (when required)
//!   S → C  ServerProof { HMAC(key, "masq-server"||nc||ns) }            (or Refuse)
//!   C → S  Hello { version, pair id, model hash, frac bits, cmp bits, batch, K; slot: first unspent }
//!   S → C  Hello { the same fields from p0.bin, slot i offered; public model }   (or Refuse)
//!   C → S  Accept { i }                                              (or Refuse, saying why)
//!   S → C  Go { index = i }                                          (or Refuse)
//!          both mark inference `i` (and only it) spent, then run it
//!   S → C  Summary (the server's per-step rounds and times)  C → S  Summary
//! ```
//! Both sides check the hello fields with the same function, so a mismatch is reported with the
//! same words on both sides.
//!
//! The slot: the server alone decides it, from its own file, once the client's hello has
//! arrived and matched: its first inference neither spent nor reserved by a concurrent session
//! (a connection that sends nothing reserves nothing). The client's slot field is only
//! informational. The client accepts it only if the same slot is unspent
//! in its `p1.bin` (an earlier slot it holds unspent stays unspent: the server has spent it,
//! so it is never offered again). No peer can make the other skip or burn material: a session
//! that fails before `Go` releases its reservation and spends nothing. The server marks the slot
//! spent before it sends `Go`, the client when it receives `Go`, so the client's spent slots are
//! always among the server's.
//!
//! Until `Go`, the server accepts frames of at most [`HANDSHAKE_MAX_FRAME_BYTES`] and waits at
//! most the handshake timeout for each message; the session's own limits apply from `Go` on.
//!
//! Both sides run over any [`Transport`] ([`Server::serve_over`], [`Client::query_over`]); the
//! TCP entry points ([`Server::serve`] on an accepted connection, [`query`] connecting to an
//! address) only open the connection with the options' timeout and frame limit. Over another
//! transport, its own timeout and frame limit apply.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bincode::{Decode, Encode};
use ndarray::ArrayD;

use masq_mpc::Party;
use masq_mpc::cost::{Cost, Network, estimate_seconds, latency::FORMULA};
use masq_mpc::dealer::CmpMode;
use masq_mpc::protocols::{Ctx, StepRecord};
use masq_mpc::transport::{DEFAULT_MAX_FRAME_BYTES, TcpOptions, TcpTransport, Transport};

use crate::auth::{Key, NONCE_BYTES, nonce};
use crate::dealer::{DealerLink, Grant, Params};
use crate::file::{DealerFile, FileHeader};
use crate::public::{PublicModel, sha256};
use crate::{DeployError, PROTOCOL_VERSION, Result, hex, mpc_err};
use masq_ir::Graph;
use masq_mpc::dealer::section_reader::SectionPlan;
use masq_mpc::dealer::stream::Refill;
use masq_mpc::dealer::{ModelMaterial, Preprocessing, wire};
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
    /// Longest wait for each message of the handshake (server: before the client's hello).
    pub handshake_timeout: Duration,
    /// Server: most sessions past authentication at once (in their handshake or running);
    /// one more is refused as busy. 0: no limit.
    pub max_concurrent: usize,
    /// This side's TLS identity: the TCP entry points that connect ([`query`]) then run over
    /// mutually authenticated TLS (see [`crate::tls`]); the server's accept loop does the same
    /// with [`crate::tls::accept`]. Independent of `key`: either, both or neither.
    pub tls: Option<crate::tls::Identity>,
}

/// Largest frame the server accepts before the client has authenticated and sent its hello
/// (the client's messages until then are a few hundred bytes).
pub const HANDSHAKE_MAX_FRAME_BYTES: usize = 16 * 1024;

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            timeout: Duration::from_secs(30),
            key: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            material_budget_bytes: 1 << 30,
            threads: 1,
            handshake_timeout: Duration::from_secs(10),
            max_concurrent: 0,
            tls: None,
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
    pair_id: [u8; 16],
    model_hash: [u8; 32],
    frac_bits: u32,
    cmp_bits: u32,
    cmp_mode: CmpMode,
    batch: u64,
    count: u64,
    /// The inference the server offers (the client echoes it).
    slot: u64,
    /// With a dealer service: the ticket the dealer gave the server for `slot`, which the client
    /// presents to fetch its half (zero with files).
    ticket: [u8; 32],
}

impl Hello {
    fn of(h: &FileHeader, slot: u64) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            pair_id: h.pair_id,
            model_hash: h.model_hash,
            frac_bits: h.frac_bits,
            cmp_bits: h.cmp_bits,
            cmp_mode: h.cmp_mode,
            batch: h.batch,
            count: h.count,
            slot,
            ticket: [0; 32],
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
    Accept { index: u64 },
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
            Msg::Accept { .. } => "Accept",
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
        Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
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
            hex(&server.model_hash),
            hex(&client.model_hash),
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
    // Last: files of two deals with the same settings (a torn or mixed-up pair) differ only here.
    if server.pair_id != client.pair_id {
        return m(
            "pair id (p0.bin and p1.bin come from different `masq deal` runs: deal a new pair)",
            hex(&server.pair_id),
            hex(&client.pair_id),
        );
    }
    Ok(())
}

/// The client's acceptance of the slot the server offers: it must exist and be unspent here.
fn accept_slot(server: &Hello, file: &DealerFile) -> Result<u64> {
    let i = server.slot;
    if i >= file.header().count {
        return Err(DeployError::Exhausted {
            reason: format!(
                "the server offers inference {i}, but the client's p1.bin holds {} inferences",
                file.header().count
            ),
        });
    }
    if file.is_spent(i) {
        return Err(DeployError::Exhausted {
            reason: format!(
                "the server offers inference {i}, which the client's p1.bin has spent (its {} unspent \
                 slots are all before the server's): the two files are out of step (a p0.bin restored \
                 from a copy?); deal a new pair with `masq deal`",
                file.remaining()
            ),
        });
    }
    Ok(i)
}

/// The plan and public model of `graph` as a dealer service deals it.
fn plan_for(graph: &Graph, params: &Params) -> Result<(Plan, PublicModel)> {
    let cfg = SecureConfig {
        frac_bits: params.frac_bits,
        cmp_bits: params.cmp_bits,
        cmp_mode: params.cmp_mode,
        seed: 0,
        ..SecureConfig::default()
    };
    let plan = secure::plan(graph, params.batch as usize, &cfg)?;
    let public = PublicModel::of(&plan.graph)?;
    Ok((plan, public))
}

/// The hello fields of a party served by a dealer service (its id stands for the pair id).
fn header_of(party: Party, params: &Params, dealer_id: [u8; 16]) -> FileHeader {
    FileHeader {
        party,
        pair_id: dealer_id,
        model_hash: params.model_hash,
        frac_bits: params.frac_bits,
        cmp_bits: params.cmp_bits,
        cmp_mode: params.cmp_mode,
        batch: params.batch,
        count: 0,
    }
}

/// A party's half of an inference from the dealer service: the model material and the first
/// segment now, the rest as the online phase consumes it.
fn fetched(
    grant: Grant,
    party: Party,
    plan: &Plan,
    kinds: &[(usize, masq_mpc::dealer::LinearKind)],
    budget: u64,
    name: String,
) -> Result<(ModelMaterial, Preprocessing, Box<dyn Refill>)> {
    let sp = SectionPlan { party, requests: plan.requests.clone(), layers: kinds.to_vec(), budget, name };
    wire::receive_deal(grant.transport, sp).map_err(mpc_err("receiving preprocessing from the dealer"))
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

/// The slots of the server's file: which are spent (on disk) and which are reserved by a
/// session in its handshake (in memory only: a failed handshake releases its slot).
#[derive(Debug)]
struct Slots {
    /// The preprocessing file (none with a dealer service).
    file: Option<DealerFile>,
    reserved: BTreeSet<u64>,
    /// Sessions in their handshake with an inference opened at the dealer service.
    opening: usize,
    /// Sessions past `Go` and not yet ended.
    running: usize,
}

impl Slots {
    fn free(&self) -> impl Iterator<Item = u64> + '_ {
        let file = self.file.as_ref();
        let count = file.map_or(0, |f| f.header().count);
        (0..count).filter(move |&i| file.is_some_and(|f| !f.is_spent(i)) && !self.reserved.contains(&i))
    }

    fn busy(&self) -> usize {
        self.reserved.len() + self.opening + self.running
    }
}

/// A session in its handshake holding an inference opened at the dealer service.
struct Opening<'a>(&'a Server);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.slots().opening -= 1;
    }
}

/// A slot reserved by one session: released when dropped unless the session spent it.
struct Reservation<'a> {
    server: &'a Server,
    index: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.server.slots().reserved.remove(&self.index);
    }
}

/// A running session: counted until dropped.
struct Running<'a>(&'a Server);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.slots().running -= 1;
    }
}

/// The model owner, P0: its plan, public model and preprocessing file. One `Server` serves any
/// number of sessions at once ([`Server::serve_over`] takes `&self`); each draws its own slot.
#[derive(Debug)]
pub struct Server {
    plan: Plan,
    public: PublicModel,
    header: FileHeader,
    path: PathBuf,
    slots: Mutex<Slots>,
    /// The plan's linear layers, which the file's model material must match.
    kinds: Vec<(usize, masq_mpc::dealer::LinearKind)>,
    opts: SessionOptions,
    /// The dealer service and what it deals (none: the file's inferences).
    dealer: Option<(DealerLink, Params)>,
}

impl Server {
    /// Plans `graph` as `preprocessing` (a `p0.bin`) was dealt, and checks that it was dealt for
    /// this model. The file stays locked (exclusively) until the server is dropped.
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
                    hex(&h.model_hash),
                    hex(&public.hash)
                ),
            });
        }
        let kinds: Vec<_> = plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
        file.model_material_for(&kinds)?;
        let slots = Mutex::new(Slots { file: Some(file), reserved: BTreeSet::new(), opening: 0, running: 0 });
        Ok(Server { plan, public, header: h, path: preprocessing.to_path_buf(), slots, kinds, opts, dealer: None })
    }

    /// Plans `graph` as the dealer service at `link` deals (asked once, now), and checks that
    /// it deals this model. Each session then opens a new inference there.
    pub fn with_dealer(graph: &Graph, link: DealerLink, opts: SessionOptions) -> Result<Server> {
        let (params, dealer_id) = link.info()?;
        let (plan, public) = plan_for(graph, &params)?;
        if public.hash != params.model_hash {
            return Err(DeployError::Mismatch {
                field: "model (hash of the public model)",
                server: format!("this model {}", hex(&public.hash)),
                client: format!("the dealer at {} deals {}", link.addr, hex(&params.model_hash)),
            });
        }
        let header = header_of(Party::P0, &params, dealer_id);
        let kinds: Vec<_> = plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
        let slots = Mutex::new(Slots { file: None, reserved: BTreeSet::new(), opening: 0, running: 0 });
        let path = PathBuf::from(format!("dealer {}", link.addr));
        Ok(Server { plan, public, header, path, slots, kinds, opts, dealer: Some((link, params)) })
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding the lock; recover the guard anyway rather than panic.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The preprocessing file's header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The preprocessing file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inferences neither spent nor reserved by a session in progress (`u64::MAX` with a
    /// dealer service: it deals on request).
    pub fn remaining(&self) -> u64 {
        if self.dealer.is_some() {
            return u64::MAX;
        }
        self.slots().free().count() as u64
    }

    /// Inferences not spent (reserved ones included; `u64::MAX` with a dealer service).
    pub fn unspent(&self) -> u64 {
        self.slots().file.as_ref().map_or(u64::MAX, |f| f.remaining())
    }

    /// The spent flags, one per inference (empty with a dealer service).
    pub fn spent(&self) -> Vec<bool> {
        self.slots().file.as_ref().map_or_else(Vec::new, |f| f.spent().to_vec())
    }

    /// The dealer service's address, if the server uses one.
    pub fn dealer(&self) -> Option<&str> {
        self.dealer.as_ref().map(|d| d.0.addr.as_str())
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

    /// Sessions in their handshake (holding a slot) or running.
    pub fn in_progress(&self) -> usize {
        self.slots().busy()
    }

    /// Refuses a connection without a session (the server is full, or stopping), saying why.
    pub fn turn_away<T: Transport>(&self, mut t: T, reason: &str) {
        let _ = send(&mut t, &Msg::Refuse { reason: reason.to_string() }, "refusing");
    }

    fn reserve(&self) -> Result<Reservation<'_>> {
        let mut slots = self.slots();
        self.check_busy(&slots)?;
        let Some(index) = slots.free().next() else {
            let (count, unspent) = slots.file.as_ref().map_or((0, 0), |f| (f.header().count, f.remaining()));
            return Err(DeployError::Exhausted {
                reason: format!(
                    "all {count} inferences of the server's p0.bin are spent or in use ({unspent} unspent, \
                     {} reserved by sessions in progress); deal more with `masq deal`",
                    slots.reserved.len()
                ),
            });
        };
        slots.reserved.insert(index);
        Ok(Reservation { server: self, index })
    }

    fn check_busy(&self, slots: &Slots) -> Result<()> {
        let busy = slots.busy();
        if self.opts.max_concurrent > 0 && busy >= self.opts.max_concurrent {
            return Err(DeployError::Busy {
                reason: format!("{busy} sessions in progress (the limit); try again later"),
            });
        }
        Ok(())
    }

    /// Opens a new inference at the dealer service for one session.
    fn open_at_dealer(&self, link: &DealerLink, params: &Params) -> Result<(Opening<'_>, Grant)> {
        {
            let mut slots = self.slots();
            self.check_busy(&slots)?;
            slots.opening += 1;
        }
        let opening = Opening(self);
        let grant = link.open(*params)?;
        if grant.dealer_id != self.header.pair_id {
            return Err(DeployError::Protocol {
                during: "opening an inference",
                reason: format!(
                    "the dealer at {} now has id {}, not {} (another dealer on that address?)",
                    link.addr,
                    hex(&grant.dealer_id),
                    hex(&self.header.pair_id)
                ),
            });
        }
        Ok((opening, grant))
    }

    /// Runs one session with a client connected over TCP (accepted with
    /// [`SessionOptions::tcp`]): [`Server::serve_over`] with the peer's address.
    pub fn serve(&self, t: TcpTransport, on_start: impl FnOnce(u64)) -> Result<SessionReport> {
        let peer = t.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        self.serve_over(t, &peer, on_start)
    }

    /// Runs one session with a client connected over `t` (`peer` names it in the report);
    /// `on_start(index)` is called once the inference is chosen and marked spent. Any failure
    /// ends this session only; a failure before the slot is spent leaves it for the next one.
    pub fn serve_over<T: Transport>(&self, mut t: T, peer: &str, on_start: impl FnOnce(u64)) -> Result<SessionReport> {
        let start = Instant::now();
        // Until the client has shown it belongs here: small frames, short waits.
        t.set_max_frame_bytes(HANDSHAKE_MAX_FRAME_BYTES.min(self.opts.max_frame_bytes));
        t.set_read_timeout(self.opts.handshake_timeout.min(self.opts.timeout));
        greet(&mut t, self.opts.key.as_ref())?;
        let theirs = match recv(&mut t, "handshake")? {
            Msg::Hello { hello, .. } => hello,
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(&mut t, unexpected("handshake", "Hello", &m))),
        };
        // The client's fields against this file's (the client runs the same check and reports
        // the same words, so a mismatch reads the same on both sides).
        let fields = Hello::of(&self.header, 0);
        if let Err(e) = check(&fields, &theirs) {
            let _ = send(&mut t, &Msg::Hello { hello: fields, public_model: Vec::new() }, "handshake");
            return Err(e);
        }
        // A slot of the file, or a new inference at the dealer service.
        let (reservation, opened, index, ticket) = match &self.dealer {
            None => match self.reserve() {
                Ok(r) => {
                    let index = r.index;
                    (Some(r), None, index, [0; 32])
                }
                Err(e) => return Err(refuse(&mut t, e)),
            },
            Some((link, params)) => match self.open_at_dealer(link, params) {
                Ok(o) => {
                    let (index, ticket) = (o.1.slot, o.1.ticket);
                    (None, Some(o), index, ticket)
                }
                Err(e) => return Err(refuse(&mut t, e)),
            },
        };
        let mut mine = Hello::of(&self.header, index);
        mine.ticket = ticket;
        send(&mut t, &Msg::Hello { hello: mine, public_model: self.public.bytes.clone() }, "handshake")?;
        match recv(&mut t, "handshake")? {
            Msg::Accept { index: i } if i == index => {}
            Msg::Accept { index: i } => {
                let e = DeployError::Protocol {
                    during: "handshake",
                    reason: format!("the server offered inference {index}, the client accepted {i}"),
                };
                return Err(refuse(&mut t, e));
            }
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(&mut t, unexpected("handshake", "Accept", &m))),
        }
        let _running = {
            let mut slots = self.slots();
            if let (Some(file), Some(_)) = (slots.file.as_mut(), &reservation) {
                file.mark_spent(index)?;
            }
            slots.running += 1;
            Running(self)
        };
        drop(reservation);
        let grant = opened.map(|(opening, grant)| {
            drop(opening);
            grant
        });
        t.set_max_frame_bytes(self.opts.max_frame_bytes);
        t.set_read_timeout(self.opts.timeout);
        send(&mut t, &Msg::Go { index }, "handshake")?;
        on_start(index);

        let budget = self.opts.material_budget_bytes;
        let (model, (pre, rest)) = match grant {
            None => {
                let slots = self.slots();
                let file = slots.file.as_ref().ok_or_else(|| DeployError::Protocol {
                    during: "starting the session",
                    reason: "no preprocessing file".into(),
                })?;
                let model = file.model_material_for(&self.kinds)?;
                let stream = file.inference_stream(index, &self.plan.requests, &model, budget)?;
                (model, stream)
            }
            Some(g) => {
                let name = format!("{} inference {index}", self.path.display());
                let (model, pre, rest) = fetched(g, Party::P0, &self.plan, &self.kinds, budget, name)?;
                (model, (pre, rest))
            }
        };
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
    source: Source,
    opts: SessionOptions,
}

/// Where the client's preprocessing comes from.
#[derive(Debug)]
enum Source {
    File(DealerFile),
    /// A dealer service, what it deals, and the hello fields that follow from it.
    Dealer {
        link: DealerLink,
        params: Params,
        header: FileHeader,
    },
}

impl Client {
    /// Opens `preprocessing` (a `p1.bin`).
    pub fn new(preprocessing: &Path, opts: SessionOptions) -> Result<Client> {
        Ok(Client { source: Source::File(DealerFile::open(preprocessing, Party::P1)?), opts })
    }

    /// A client whose preprocessing comes from the dealer service at `link` (asked once, now,
    /// what it deals; each query then fetches the half of the inference its server opened).
    pub fn with_dealer(link: DealerLink, opts: SessionOptions) -> Result<Client> {
        let (params, dealer_id) = link.info()?;
        let header = header_of(Party::P1, &params, dealer_id);
        Ok(Client { source: Source::Dealer { link, params, header }, opts })
    }

    /// The preprocessing file (none with a dealer service).
    pub fn file(&self) -> Option<&DealerFile> {
        match &self.source {
            Source::File(f) => Some(f),
            Source::Dealer { .. } => None,
        }
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
        let (opts, source) = (&self.opts, &mut self.source);
        let header = match source {
            Source::File(f) => *f.header(),
            Source::Dealer { header, .. } => *header,
        };
        greeted_by(&mut t, opts.key.as_ref())?;
        let first = match source {
            Source::File(f) => f.first_unspent(),
            Source::Dealer { .. } => 0,
        };
        send(&mut t, &Msg::Hello { hello: Hello::of(&header, first), public_model: Vec::new() }, "handshake")?;
        let (server, public_model) = match recv(&mut t, "handshake")? {
            Msg::Hello { hello, public_model } => (hello, public_model),
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(&mut t, unexpected("handshake", "Hello", &m))),
        };
        let mine = Hello::of(&header, server.slot);
        if let Err(e) = check(&server, &mine) {
            // The server ran the same check on our hello and reports the same mismatch.
            return Err(e);
        }
        if sha256(&public_model) != server.model_hash {
            let e = DeployError::Protocol {
                during: "handshake",
                reason: "the public model sent does not have the hash the server announced".into(),
            };
            return Err(refuse(&mut t, e));
        }
        if let Source::File(file) = &*source {
            if let Err(e) = accept_slot(&server, file) {
                return Err(refuse(&mut t, e));
            }
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
            // Finite and within the fixed-point range, before anything is spent.
            secure::check_input(&graph, &x, mine.frac_bits)?;
            Ok((plan, x))
        })();
        let (plan, x) = match plan {
            Ok(p) => p,
            Err(e) => return Err(refuse(&mut t, e)),
        };
        // The file's model material must be for this plan's linear layers (checked before the
        // slot is accepted, so a damaged file spends nothing). From a dealer service, the
        // client's half of the server's inference is fetched (with the server's ticket) before
        // it accepts: a dealer that refuses leaves nothing spent but the server's number.
        let kinds: Vec<_> = plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
        let budget = opts.material_budget_bytes;
        let (model, mut from_dealer) = match &*source {
            Source::File(file) => match file.model_material_for(&kinds) {
                Ok(m) => (m, None),
                Err(e) => return Err(refuse(&mut t, e)),
            },
            Source::Dealer { link, params, .. } => {
                let got = link.fetch(*params, server.slot, server.ticket).and_then(|g| {
                    let name = format!("dealer {} inference {}", link.addr, server.slot);
                    fetched(g, Party::P1, &plan, &kinds, budget, name)
                });
                match got {
                    Ok((m, pre, rest)) => (m, Some((pre, rest))),
                    Err(e) => return Err(refuse(&mut t, e)),
                }
            }
        };
        send(&mut t, &Msg::Accept { index: mine.slot }, "handshake")?;
        let index = match recv(&mut t, "handshake")? {
            Msg::Go { index } => index,
            Msg::Refuse { reason } => return Err(DeployError::Refused { reason }),
            m => return Err(refuse(&mut t, unexpected("handshake", "Go", &m))),
        };
        if index != mine.slot {
            let e = DeployError::Protocol {
                during: "handshake",
                reason: format!("the server offered inference {}, then started {index}", mine.slot),
            };
            return Err(refuse(&mut t, e));
        }
        if let Source::File(file) = source {
            file.mark_spent(index)?;
        }
        on_event(&format!("running inference {index}"));

        let (pre, rest) = match (from_dealer.take(), &*source) {
            (Some(stream), _) => stream,
            (None, Source::File(file)) => file.inference_stream(index, &plan.requests, &model, budget)?,
            (None, Source::Dealer { .. }) => {
                return Err(DeployError::Protocol {
                    during: "starting the session",
                    reason: "no preprocessing".into(),
                });
            }
        };
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
/// [`SessionOptions::tcp`] and the options' timeout; over TLS to a server certificate when the
/// options carry an identity) and runs [`Client::query_over`].
pub fn query(
    addr: &str,
    preprocessing: &Path,
    x: &ArrayD<f32>,
    opts: &SessionOptions,
    on_event: impl FnMut(&str),
) -> Result<QueryResult> {
    let start = Instant::now();
    let mut client = Client::new(preprocessing, opts.clone())?;
    client.query_at(addr, x, on_event, start)
}

/// The client over TCP with its preprocessing from the dealer service at `dealer` (asked what it
/// deals, then, during the handshake, for the half of the inference the server opened).
pub fn query_with_dealer(
    addr: &str,
    dealer: &str,
    x: &ArrayD<f32>,
    opts: &SessionOptions,
    on_event: impl FnMut(&str),
) -> Result<QueryResult> {
    let start = Instant::now();
    let mut client = Client::with_dealer(DealerLink::new(dealer, opts.clone()), opts.clone())?;
    client.query_at(addr, x, on_event, start)
}

impl Client {
    /// Connects to `addr` (TLS when the options carry an identity) and runs one query.
    fn query_at(
        &mut self,
        addr: &str,
        x: &ArrayD<f32>,
        mut on_event: impl FnMut(&str),
        start: Instant,
    ) -> Result<QueryResult> {
        let opts = &self.opts;
        let t = match &opts.tls {
            Some(id) => crate::tls::connect(addr, opts.timeout, opts.tcp(), id, crate::tls::Role::Server)?,
            None => TcpTransport::connect_with(addr, opts.timeout, opts.tcp()).map_err(mpc_err("connecting"))?,
        };
        on_event(&format!("connected to {addr}{}", if opts.tls.is_some() { " (TLS)" } else { "" }));
        self.run(t, x, on_event, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            pair_id: [3; 16],
            model_hash: [7; 32],
            frac_bits: 16,
            cmp_bits: 64,
            cmp_mode: CmpMode::OneRound,
            batch: 1,
            count: 4,
            slot: 0,
            ticket: [0; 32],
        }
    }

    #[test]
    fn mismatches_name_the_field() {
        let s = hello();
        assert!(check(&s, &s).is_ok());
        for (c, field) in [
            (Hello { model_hash: [8; 32], ..s }, "model"),
            (Hello { pair_id: [4; 16], ..s }, "pair id"),
            (Hello { frac_bits: 12, ..s }, "frac bits"),
            (Hello { cmp_bits: 40, ..s }, "comparison bits"),
            (Hello { cmp_mode: CmpMode::Compact, ..s }, "comparison mode"),
            (Hello { batch: 2, ..s }, "batch"),
            (Hello { version: 9, ..s }, "protocol version"),
        ] {
            let e = check(&s, &c).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        // Hashes are printed whole: two hashes that agree on a prefix are still told apart.
        let mut h = [7; 32];
        h[31] = 8;
        let e = check(&s, &Hello { model_hash: h, ..s }).unwrap_err().to_string();
        assert!(e.contains(&hex(&h)) && e.contains(&hex(&[7; 32])), "{e}");
    }
}
