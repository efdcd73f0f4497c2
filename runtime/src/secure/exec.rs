//! The executing backend: the lowering run on one party's shares, calling the protocols.
//!
//! With streamed preprocessing the context refills its queue inside the online pass
//! ([`masq_mpc::dealer::stream`]); that time is offline work, so the online, per-node and reveal
//! seconds here leave out [`Ctx::paused_seconds`] and the refills' precomputation is added to
//! [`PartyOut::precompute_seconds`].

use std::sync::Barrier;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn, Zip};

use masq_mpc::dealer::{LayerId, LinearKind, ModelMaterial};
use masq_mpc::protocols::{self, Ctx, PoolParams, Replacement as MpcReplacement, StepRecord};
use masq_mpc::transport::Transport;
use masq_mpc::{MpcError, Party, Share};

use super::Progress;
use super::lower::{Backend, WeightSource};
use super::plan::Plan;
use crate::error::{Result, RuntimeError};

/// What one party's run produced.
#[derive(Debug)]
pub struct PartyOut {
    /// Steps of model load (opening `E = W - A`).
    pub setup_log: Vec<StepRecord>,
    pub setup_seconds: f64,
    /// Offline work of the party (`op(E, [B])` for every linear triple, refills included).
    pub precompute_seconds: f64,
    /// Wall seconds of refills during the online pass (waiting, dealing, precomputing), left out
    /// of `online_seconds` and the per-node seconds.
    pub paused_seconds: f64,
    /// Refills during the online pass.
    pub refills: usize,
    /// Online steps, in order.
    pub log: Vec<StepRecord>,
    /// Per graph node: its range of `log` and its wall seconds (`None` for client-side nodes).
    pub nodes: Vec<Option<(usize, usize, f64)>>,
    /// The reveal's range of `log`.
    pub reveal: (usize, usize, f64),
    pub online_seconds: f64,
    /// The revealed outputs (at P1).
    pub outputs: Vec<ArrayD<u64>>,
}

struct Exec<'a, T: Transport> {
    ctx: &'a mut Ctx<T>,
    party: Party,
    /// Width of the comparisons of the node being lowered (set by `node_start`).
    bits: u32,
    plan: &'a Plan,
    next_layer: usize,
    start: (usize, Instant),
    /// [`Ctx::paused_seconds`] at the node's start.
    paused_at: f64,
    nodes: Vec<Option<(usize, usize, f64)>>,
    progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    done: usize,
    total: usize,
}

impl<T: Transport> Exec<'_, T> {
    fn share(&self, a: ArrayD<u64>) -> Share {
        Share::new(self.party, a)
    }
}

fn zip_with(mut a: ArrayD<u64>, b: &ArrayD<u64>, f: impl Fn(u64, u64) -> u64) -> ArrayD<u64> {
    Zip::from(&mut a).and(b).for_each(|x, &y| *x = f(*x, y));
    a
}

impl<T: Transport> Backend for Exec<'_, T> {
    type T = u64;

    fn public(&self, c: &ArrayD<u64>) -> ArrayD<u64> {
        match self.party {
            Party::P0 => c.clone(),
            Party::P1 => ArrayD::zeros(IxDyn(c.shape())),
        }
    }

    fn public_word(&self, w: u64) -> u64 {
        match self.party {
            Party::P0 => w,
            Party::P1 => 0,
        }
    }

    fn add(&mut self, a: ArrayD<u64>, b: &ArrayD<u64>) -> ArrayD<u64> {
        zip_with(a, b, u64::wrapping_add)
    }

    fn sub(&mut self, a: ArrayD<u64>, b: &ArrayD<u64>) -> ArrayD<u64> {
        zip_with(a, b, u64::wrapping_sub)
    }

    fn mul_public(&mut self, mut a: ArrayD<u64>, c: &ArrayD<u64>) -> ArrayD<u64> {
        let cb = c.broadcast(a.raw_dim()).expect("checked by the lowering");
        Zip::from(&mut a).and(&cb).for_each(|x, &y| *x = x.wrapping_mul(y));
        a
    }

    fn truncate(&mut self, a: ArrayD<u64>) -> ArrayD<u64> {
        let f = self.ctx.fixed_point().frac_bits();
        protocols::truncate(self.share(a), f).into_data()
    }

    fn linear(&mut self, kind: &LinearKind, _w: WeightSource, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let id: LayerId = self.next_layer;
        self.next_layer += 1;
        let planned = self.plan.layers.get(id).map(|l| &l.kind);
        if planned != Some(kind) {
            return Err(MpcError::PreprocessingMismatch {
                op: "linear".into(),
                expected: format!("layer {id} as planned ({planned:?})"),
                found: format!("{kind:?}"),
            });
        }
        let x = self.share(x);
        Ok(protocols::linear(self.ctx, id, &x)?.into_data())
    }

    fn relu(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let x = self.share(x);
        Ok(protocols::relu(self.ctx, &x, self.bits, self.plan.cmp_mode)?.into_data())
    }

    fn mul(&mut self, x: ArrayD<u64>, y: &ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let (x, y) = (self.share(x), self.share(y.clone()));
        Ok(protocols::mul(self.ctx, &x, &y)?.into_data())
    }

    fn square(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let x = self.share(x);
        Ok(protocols::square(self.ctx, &x)?.into_data())
    }

    fn drelu(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let x = self.share(x);
        Ok(protocols::drelu(self.ctx, &x, self.bits, self.plan.cmp_mode)?.into_data())
    }

    fn matmul(&mut self, x: ArrayD<u64>, y: &ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let (x, y) = (self.share(x), self.share(y.clone()));
        Ok(protocols::matmul(self.ctx, &x, &y)?.into_data())
    }

    fn masked_act(&mut self, x: ArrayD<u64>, mask: &[u8], r: &MpcReplacement) -> masq_mpc::Result<ArrayD<u64>> {
        let x = self.share(x);
        Ok(protocols::masked_act(self.ctx, &x, mask, r, self.bits, self.plan.cmp_mode)?.into_data())
    }

    fn maxpool(&mut self, x: ArrayD<u64>, p: &PoolParams) -> masq_mpc::Result<ArrayD<u64>> {
        let x = self.share(x);
        Ok(protocols::maxpool(self.ctx, &x, p, self.bits, self.plan.cmp_mode)?.into_data())
    }

    fn avgpool(&mut self, x: ArrayD<u64>, p: &PoolParams, cip: bool) -> masq_mpc::Result<ArrayD<u64>> {
        let x = self.share(x);
        Ok(protocols::avgpool(self.ctx, &x, p, cip)?.into_data())
    }

    fn global_avgpool(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let x = self.share(x);
        Ok(protocols::global_avgpool(self.ctx, &x)?.into_data())
    }

    fn node_start(&mut self, i: usize) {
        // This node's comparison width (calibrated, else the global one), as planned.
        self.bits = self.plan.node_bits.get(i).copied().unwrap_or(self.plan.cmp_bits);
        self.start = (self.ctx.log().len(), Instant::now());
        self.paused_at = self.ctx.paused_seconds();
    }

    fn node_end(&mut self, i: usize) {
        let (from, t) = self.start;
        let paused = self.ctx.paused_seconds() - self.paused_at;
        self.nodes[i] = Some((from, self.ctx.log().len(), (t.elapsed().as_secs_f64() - paused).max(0.0)));
        self.done += 1;
        if let Some(p) = self.progress {
            p(Progress::Node { done: self.done, total: self.total });
        }
    }
}

/// One party's whole run: model load, offline precomputation, the online pass and the reveal.
/// `ready` (in-process runs): a barrier both parties meet at before the online phase.
pub(crate) fn party<T: Transport>(
    ctx: &mut Ctx<T>,
    plan: &Plan,
    model: ModelMaterial,
    weights: Vec<(LayerId, Share)>,
    x: ArrayD<u64>,
    ready: Option<&Barrier>,
    progress: Option<&(dyn Fn(Progress) + Sync)>,
) -> Result<PartyOut> {
    let party = ctx.party();
    let at = |what: &str| {
        let what = what.to_string();
        move |source| RuntimeError::Mpc { at: what, source }
    };
    let offline = || -> Result<(f64, f64)> {
        let t = Instant::now();
        protocols::setup_layers(ctx, model, weights).map_err(at("model load"))?;
        let setup_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        protocols::precompute(ctx).map_err(at("offline precomputation"))?;
        Ok((setup_seconds, t.elapsed().as_secs_f64()))
    };
    let offline = offline();
    // Both parties start the online phase together (offline work is long done in a deployment);
    // otherwise the first online step would time the slower party's offline work. Every party
    // reaches this point, failed or not, so nobody waits forever.
    if let Some(ready) = ready {
        ready.wait();
    }
    let (setup_seconds, precompute_seconds) = offline?;
    let setup_log = ctx.take_log();
    if let Some(p) = progress {
        p(Progress::Phase("online"));
    }
    let t = Instant::now();
    let (paused0, precompute0, refills0) = (ctx.paused_seconds(), ctx.refill_precompute_seconds(), ctx.refills());
    let total = plan.program.tails.iter().filter(|t| !**t).count();
    let mut ex = Exec {
        ctx,
        party,
        bits: plan.cmp_bits,
        plan,
        next_layer: 0,
        start: (0, Instant::now()),
        paused_at: paused0,
        nodes: vec![None; plan.graph.nodes.len()],
        progress,
        done: 0,
        total,
    };
    let values = plan.program.walk(&mut ex, &plan.graph, &plan.shapes, plan.fixed_point, x)?;
    let nodes = std::mem::take(&mut ex.nodes);
    let t_reveal = Instant::now();
    let paused_reveal = ctx.paused_seconds();
    let from = ctx.log().len();
    let mut outputs = Vec::with_capacity(values.len());
    for v in values {
        if let Some(y) = protocols::reveal(ctx, &Share::new(party, v), Party::P1).map_err(at("reveal"))? {
            outputs.push(y);
        }
    }
    let reveal_seconds = t_reveal.elapsed().as_secs_f64() - (ctx.paused_seconds() - paused_reveal);
    let reveal = (from, ctx.log().len(), reveal_seconds.max(0.0));
    let paused_seconds = ctx.paused_seconds() - paused0;
    let online_seconds = (t.elapsed().as_secs_f64() - paused_seconds).max(0.0);
    let precompute_seconds = precompute_seconds + ctx.refill_precompute_seconds() - precompute0;
    let refills = ctx.refills() - refills0;
    let log = ctx.take_log();
    Ok(PartyOut {
        setup_log,
        setup_seconds,
        precompute_seconds,
        paused_seconds,
        refills,
        log,
        nodes,
        reveal,
        online_seconds,
        outputs,
    })
}
