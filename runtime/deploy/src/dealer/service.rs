//! The dealer's side: one connection is one request (`Info`, `Open` or `Fetch`), answered and,
//! for `Open` and `Fetch`, followed by the party's half of the inference (see [`super`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use masq_mpc::Party;
use masq_mpc::dealer::{Dealer, LinearKind};
use masq_mpc::transport::{DEFAULT_MAX_FRAME_BYTES, Transport};

use masq_ir::Graph;
use masq_runtime::secure::{self, Plan, SecureConfig};

use super::state::State;
use super::{DEALER_PROTOCOL_VERSION, Msg, Params, REQUEST_MAX_FRAME_BYTES};
use crate::public::PublicModel;
use crate::tls::Role;
use crate::{DeployError, Result, mpc_err};

/// Settings of a dealer service.
#[derive(Debug, Clone)]
pub struct DealerOptions {
    /// Longest wait for the request and for each write.
    pub timeout: Duration,
    /// Longest time between `Open` and the client's `Fetch`.
    pub ticket_ttl: Duration,
    /// Most inferences opened and not yet fetched; one more `Open` is refused as busy.
    pub max_pending: usize,
}

impl Default for DealerOptions {
    fn default() -> Self {
        DealerOptions { timeout: Duration::from_secs(30), ticket_ttl: Duration::from_secs(600), max_pending: 1024 }
    }
}

/// What one connection got.
#[derive(Debug, Clone, PartialEq)]
pub enum Served {
    /// Asked what the dealer deals.
    Info,
    /// A party's half of an inference was sent.
    Deal { slot: u64, party: Party, bytes: u64, offline_bytes: u64, seconds: f64 },
}

#[derive(Debug)]
struct Pending {
    ticket: [u8; 32],
    opened: Instant,
}

/// A dealer for one model and one fixed-point configuration.
#[derive(Debug)]
pub struct DealerService {
    plan: Plan,
    params: Params,
    kinds: Vec<(usize, LinearKind)>,
    state: Mutex<State>,
    id: [u8; 16],
    pending: Mutex<BTreeMap<u64, Pending>>,
    opts: DealerOptions,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the guard anyway rather than panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DealerService {
    /// Plans `graph` at `batch` with `cfg` (its seed is not used: every inference has its own
    /// key) and opens the state directory `state` (locked while the service lives).
    pub fn new(graph: &Graph, cfg: &SecureConfig, batch: usize, state: &Path, opts: DealerOptions) -> Result<Self> {
        let plan = secure::plan(graph, batch, cfg)?;
        let public = PublicModel::of(&plan.graph)?;
        let params = Params {
            model_hash: public.hash,
            frac_bits: cfg.frac_bits,
            cmp_bits: cfg.cmp_bits,
            cmp_mode: cfg.cmp_mode,
            batch: batch as u64,
        };
        let kinds = plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
        let state = State::open(state)?;
        let id = state.id();
        Ok(DealerService {
            plan,
            params,
            kinds,
            state: Mutex::new(state),
            id,
            pending: Mutex::new(BTreeMap::new()),
            opts,
        })
    }

    /// What this dealer deals.
    pub fn params(&self) -> Params {
        self.params
    }

    /// The dealer's id.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// The plan every inference is dealt for.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The number the next inference gets.
    pub fn next_slot(&self) -> u64 {
        lock(&self.state).next()
    }

    /// Inferences opened and not yet fetched (expired ones included until the next `Open`).
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Answers one connection. `peer` is the role its TLS certificate proved (`None` without
    /// TLS: any request is allowed). Failures are sent to the peer too, best effort.
    pub fn serve_over<T: Transport>(&self, mut t: T, peer: Option<Role>) -> Result<Served> {
        t.set_max_frame_bytes(REQUEST_MAX_FRAME_BYTES);
        t.set_read_timeout(self.opts.timeout);
        let m = t.recv_msg::<Msg>("the request").map_err(mpc_err("reading the request"))?;
        // The material goes out in frames of up to `wire::CHUNK_BYTES` (a model layer's mask in one).
        t.set_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES);
        match self.answer(m, peer) {
            Ok((party, slot, ticket)) => {
                let granted = Msg::Granted { params: self.params, dealer_id: self.id, slot, ticket };
                t.send_msg(&granted).and_then(|_| t.flush()).map_err(mpc_err("answering"))?;
                let Some(party) = party else { return Ok(Served::Info) };
                let start = Instant::now();
                let mut dealer = Dealer::from_key(lock(&self.state).slot_key(slot));
                let (m0, m1) = dealer.setup_model(&self.kinds).map_err(mpc_err("dealer (model load)"))?;
                let model = if party == Party::P0 { m0 } else { m1 };
                let sent = dealer.send_deal(&mut t, party, &model, 0, &self.plan.requests).map_err(|e| {
                    DeployError::Mpc { at: format!("sending {party}'s half of inference {slot}"), source: e }
                })?;
                Ok(Served::Deal {
                    slot,
                    party,
                    bytes: sent.bytes,
                    offline_bytes: sent.offline_bytes,
                    seconds: start.elapsed().as_secs_f64(),
                })
            }
            Err(e) => {
                let _ = t.send_msg(&Msg::Refuse { reason: e.to_string() }).and_then(|_| t.flush());
                Err(e)
            }
        }
    }

    /// Checks a request and decides: whose half of which inference (none for `Info`), and the ticket.
    fn answer(&self, m: Msg, peer: Option<Role>) -> Result<(Option<Party>, u64, [u8; 32])> {
        let version = match &m {
            Msg::Info { version } | Msg::Open { version, .. } | Msg::Fetch { version, .. } => *version,
            other => {
                return Err(DeployError::Protocol {
                    during: "reading the request",
                    reason: format!("expected Info, Open or Fetch, got {}", other.name()),
                });
            }
        };
        if version != DEALER_PROTOCOL_VERSION {
            return Err(DeployError::Mismatch {
                field: "dealer protocol version",
                server: format!("dealer {DEALER_PROTOCOL_VERSION}"),
                client: format!("requested {version}"),
            });
        }
        let only = |role: Role, what: &str| match peer {
            Some(p) if p != role => Err(DeployError::Auth {
                reason: format!("{what} is for {role} certificates; this peer holds a {p} certificate"),
            }),
            _ => Ok(()),
        };
        match m {
            Msg::Info { .. } => Ok((None, 0, [0; 32])),
            Msg::Open { want, .. } => {
                only(Role::Server, "opening an inference")?;
                self.params.check(&want)?;
                let mut pending = lock(&self.pending);
                let ttl = self.opts.ticket_ttl;
                pending.retain(|_, p| p.opened.elapsed() < ttl);
                if pending.len() >= self.opts.max_pending {
                    return Err(DeployError::Busy {
                        reason: format!(
                            "{} inferences opened and not fetched yet (the limit); try again later",
                            pending.len()
                        ),
                    });
                }
                let slot = lock(&self.state).allocate()?;
                let ticket: [u8; 32] = rand::random();
                pending.insert(slot, Pending { ticket, opened: Instant::now() });
                Ok((Some(Party::P0), slot, ticket))
            }
            Msg::Fetch { want, slot, ticket, .. } => {
                only(Role::Client, "fetching an inference")?;
                self.params.check(&want)?;
                let mut pending = lock(&self.pending);
                let refused = |why: &str| DeployError::Exhausted { reason: format!("inference {slot}: {why}") };
                let Some(p) = pending.get(&slot) else {
                    return Err(refused(
                        "not open here (never opened, already fetched, or opened before the dealer restarted)",
                    ));
                };
                if !constant_time_eq(&p.ticket, &ticket) {
                    return Err(DeployError::Auth { reason: format!("inference {slot}: wrong ticket") });
                }
                let expired = p.opened.elapsed() >= self.opts.ticket_ttl;
                pending.remove(&slot);
                if expired {
                    return Err(refused("its ticket expired"));
                }
                Ok((Some(Party::P1), slot, ticket))
            }
            other => Err(DeployError::Protocol {
                during: "reading the request",
                reason: format!("expected Info, Open or Fetch, got {}", other.name()),
            }),
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
