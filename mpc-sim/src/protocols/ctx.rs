//! The per-party execution context of the online phase.
//!
//! A context may hold a [`Refill`] hook ([`Ctx::set_refill`]): when the online phase asks for
//! material and the queue is empty, the context fetches the next segment from the hook, runs the
//! party's offline precomputation on it and resumes (see [`crate::dealer::stream`]). The time this
//! takes is offline time: it is left out of the step records and reported by
//! [`Ctx::paused_seconds`].

use std::collections::HashMap;
use std::time::Instant;

use ndarray::ArrayD;

use super::reclaim::Reclaimer;
use crate::dealer::stream::Refill;
use crate::dealer::{LayerId, LinearKind, Material, Preprocessing, Request};
use crate::error::{MpcError, Result};
use crate::ring::FixedPoint;
use crate::share::{Party, Share};
use crate::transport::{Metered, Traffic, Transport};

/// What one protocol step cost this party, as measured at its metered transport.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRecord {
    /// Protocol name (`open`, `mul`, `relu`, `linear`, ...).
    pub op: &'static str,
    /// Number of elements the step worked on.
    pub n: usize,
    /// Bytes and rounds this party sent / received during the step.
    pub traffic: Traffic,
    /// Wall seconds this party spent in the step.
    pub seconds: f64,
}

/// A linear layer after model load: the party's share of the weight mask `A` and the opened `E = W - A`.
#[derive(Debug)]
pub(crate) struct LayerState {
    pub kind: LinearKind,
    /// P0: `E + A0` (it also adds `E·F`); P1: `A1`.
    pub online_weight: ArrayD<u64>,
    /// The public `E = W - A`.
    pub e: ArrayD<u64>,
}

/// One party's side of a running computation: its transport (metered), its preprocessing,
/// the fixed-point parameters, the model's linear layers after set-up, and a log of steps.
#[derive(Debug)]
pub struct Ctx<T: Transport> {
    party: Party,
    pub(crate) net: Metered<T>,
    pub(crate) pre: Preprocessing,
    fp: FixedPoint,
    pub(crate) layers: HashMap<LayerId, LayerState>,
    log: Vec<StepRecord>,
    /// Where more preprocessing comes from when the queue runs empty.
    refill: Option<Box<dyn Refill>>,
    /// Wall seconds spent in refills (waiting for the peer, dealing, precomputing).
    paused: f64,
    /// Of those, seconds of this party's offline precomputation.
    refill_precompute: f64,
    /// Refills that brought material.
    refills: usize,
    /// Threads this party's comparison (DCF) evaluation may use.
    threads: usize,
    /// Frees used material in the background.
    reclaim: Reclaimer,
}

impl<T: Transport> Ctx<T> {
    /// A context for `party` over `transport`, consuming `pre`.
    pub fn new(party: Party, transport: T, pre: Preprocessing, fp: FixedPoint) -> Result<Self> {
        if pre.party() != party {
            return Err(MpcError::WrongParty { op: "context".into(), expected: party, got: pre.party() });
        }
        Ok(Ctx {
            party,
            net: Metered::new(transport),
            pre,
            fp,
            layers: HashMap::new(),
            log: Vec::new(),
            refill: None,
            paused: 0.0,
            refill_precompute: 0.0,
            refills: 0,
            threads: 1,
            reclaim: Reclaimer::default(),
        })
    }

    /// Lets this party's comparison evaluation use up to `threads` threads (at least 1). A party
    /// on its own machine can use its cores; two parties simulated in one process share them.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Threads this party's comparison evaluation may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Sets the hook the context asks for more preprocessing when its queue runs empty.
    pub fn set_refill(&mut self, refill: Box<dyn Refill>) {
        self.refill = Some(refill);
    }

    /// Wall seconds spent so far in refills (offline time inside the online phase).
    pub fn paused_seconds(&self) -> f64 {
        self.paused
    }

    /// Of [`Ctx::paused_seconds`], the seconds of this party's offline precomputation.
    pub fn refill_precompute_seconds(&self) -> f64 {
        self.refill_precompute
    }

    /// Refills that brought material so far.
    pub fn refills(&self) -> usize {
        self.refills
    }

    /// This party.
    pub fn party(&self) -> Party {
        self.party
    }

    /// Fixed-point parameters.
    pub fn fixed_point(&self) -> FixedPoint {
        self.fp
    }

    /// Total traffic so far.
    pub fn traffic(&self) -> Traffic {
        self.net.traffic()
    }

    /// The log of protocol steps run so far.
    pub fn log(&self) -> &[StepRecord] {
        &self.log
    }

    /// Takes the log, leaving it empty.
    pub fn take_log(&mut self) -> Vec<StepRecord> {
        std::mem::take(&mut self.log)
    }

    /// Items of preprocessing left.
    pub fn preprocessing_remaining(&self) -> usize {
        self.pre.remaining()
    }

    /// Appends more preprocessing (e.g. for the next inference).
    pub fn add_preprocessing(&mut self, pre: Preprocessing) -> Result<()> {
        self.pre.extend(pre)
    }

    /// The underlying transport.
    pub fn transport_mut(&mut self) -> &mut Metered<T> {
        &mut self.net
    }

    /// Checks that `x` belongs to this party.
    pub(crate) fn check_share(&self, op: &str, x: &Share) -> Result<()> {
        if x.party() != self.party {
            return Err(MpcError::WrongParty { op: op.into(), expected: self.party, got: x.party() });
        }
        Ok(())
    }

    /// Takes the next preprocessing item for `req`.
    /// Refills the queue first when it is empty and a hook is set.
    pub(crate) fn take(&mut self, op: &str, req: &Request) -> Result<Material> {
        if self.pre.remaining() == 0 && self.refill.is_some() {
            self.refill_now()?;
        }
        self.pre.take(op, req)
    }

    fn refill_now(&mut self) -> Result<()> {
        let t = Instant::now();
        let more = match self.refill.as_mut() {
            Some(hook) => hook.refill(),
            None => Ok(None),
        };
        let out = match more {
            Ok(Some(more)) => {
                let from = self.pre.remaining();
                self.refills += 1;
                let tp = Instant::now();
                let r = self.pre.extend(more).and_then(|()| super::linear::precompute_from(self, from));
                self.refill_precompute += tp.elapsed().as_secs_f64();
                if let Some(hook) = self.refill.as_mut() {
                    hook.resume();
                }
                r
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.paused += t.elapsed().as_secs_f64();
        out
    }

    /// Runs `f` as one logged step.
    pub(crate) fn step<R>(&mut self, op: &'static str, n: usize, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        let before = self.net.traffic();
        let start = Instant::now();
        let paused = self.paused;
        let out = f(self)?;
        // Refills inside the step are offline time.
        let seconds = (start.elapsed().as_secs_f64() - (self.paused - paused)).max(0.0);
        let traffic = self.net.traffic().since(&before);
        self.log.push(StepRecord { op, n, traffic, seconds });
        Ok(out)
    }

    /// Hands used material (or any large buffer) to the background reclaimer instead of freeing
    /// it on the critical path (see [`super::reclaim`]).
    pub(crate) fn retire<V: Send + 'static>(&mut self, used: V) {
        self.reclaim.retire(used);
    }

    /// Sends `mine` and receives the peer's vector of the same length (one round).
    pub(crate) fn exchange(&mut self, mine: &[u64], during: &'static str) -> Result<Vec<u64>> {
        self.net.exchange_u64s(mine, during)
    }
}
