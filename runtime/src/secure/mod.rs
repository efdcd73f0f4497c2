//! The secure executor: an IR graph evaluated under masq-mpc's two-party protocols, with a cost
//! report, and cost estimates without running.
//!
//! ```text
//!   graph ──fold BatchNorm──▶ plan (lowering on shapes: dealer requests, linear layers, cost per node)
//!         ──dealer──▶ model material + per-inference preprocessing for P0 (server) and P1 (client)
//!   P0 (holds the weights)  ⇄  P1 (holds the input)      two threads, in-memory metered transport
//!         model load (open E = W - A) → offline (op(E,[B])) → online (lowering on shares) → reveal to P1
//!   P1 ──▶ output (Softmax / LogSoftmax at the output run in the clear at the client)
//! ```
//! In process the material is streamed within [`SecureConfig::material_budget_bytes`]: the batch
//! in chunks, each deal in segments refilled during the online phase (see `chunked.rs` and
//! `masq_mpc::dealer::stream`).
//! Fixed point: values at scale `2^f`; weights are encoded at `f`, products truncated by `f`
//! (local truncation); biases and constants are added by P0. Constants of element-wise
//! multiplications, standalone BatchNorms and polynomial coefficients are public (as the
//! masks and layer shapes); weights of Conv, Gemm and MatMul stay secret.
//!
//! The planner and the executor run the same lowering ([`lower`]) on shapes and on shares, so
//! the predicted cost equals the measured one.
//!
//! ```
//! use masq_ir::zoo;
//! use masq_runtime::secure;
//! let g = zoo::build("mnist_cnn", None, 1).unwrap();
//! let x = ndarray::ArrayD::from_elem(vec![1, 1, 28, 28], 0.5f32);
//! let run = secure::run(&g, &x, &secure::SecureConfig::default()).unwrap();
//! assert!(run.report.max_abs_error < 1e-2);
//! assert_eq!(run.report.rounds, secure::plan(&g, 1, &Default::default()).unwrap().total().rounds);
//! ```

pub mod calibrate;
mod chunked;
mod estimate;
mod exec;
pub mod headroom;
pub mod lower;
mod plan;
pub mod probe;
mod program;
mod transformer;

use std::collections::HashMap;
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use ndarray::{ArrayD, Dimension as _, Ix2};
use serde::Serialize;

use masq_mpc::cost::{Cost, Network, estimate_seconds, latency::FORMULA};
use masq_mpc::dealer::{Dealer, LayerId};
use masq_mpc::protocols::{CmpMode, DEFAULT_CMP_BITS, StepRecord};
pub use masq_mpc::sim::Layout;
use masq_mpc::{FixedPoint, MpcError, Party, Share};

pub use calibrate::{Calibration, calibrate};
pub use chunked::{StreamingReport, chunk_size, parse_size, run_with_progress};
pub use estimate::{EstimateReport, estimate};
pub use exec::PartyOut;
pub use plan::{LinearLayer, Plan, PlannedNode, plan};

use crate::error::{IrError, Result, RuntimeError};
use crate::plain;
use masq_ir::cost::{ModelCounts, NodeCost};
use masq_ir::{Graph, format_dims};

/// Parameters of a secure run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecureConfig {
    /// Fractional bits of the fixed-point encoding.
    pub frac_bits: u32,
    /// Seed of the dealer (every random value of the run derives from it).
    pub seed: u64,
    /// Bit width of comparisons (64: exact for every ring element).
    pub cmp_bits: u32,
    /// How comparisons run: one round with large keys, or compact keys and two rounds.
    pub cmp_mode: CmpMode,
    /// Most bytes of dealer material (both parties, in memory) resident at once in an in-process
    /// run: the material is dealt in segments of at most this size while the online phase runs,
    /// and a batch runs in chunks of images whose largest layer fits it (see [`run_with_progress`]).
    pub material_budget_bytes: u64,
    /// Where the two parties of an in-process run compute: at once on this machine's cores
    /// (one thread each), or each alone with all of them, replayed against a recorded run, as
    /// on a machine of its own (see [`masq_mpc::sim::Layout`]).
    pub layout: Layout,
}

/// Default [`SecureConfig::material_budget_bytes`]: 1 GiB.
pub const DEFAULT_MATERIAL_BUDGET: u64 = 1 << 30;

impl Default for SecureConfig {
    fn default() -> Self {
        SecureConfig {
            frac_bits: FixedPoint::DEFAULT_FRAC_BITS,
            seed: 0,
            cmp_bits: DEFAULT_CMP_BITS,
            cmp_mode: CmpMode::OneRound,
            material_budget_bytes: DEFAULT_MATERIAL_BUDGET,
            layout: Layout::Shared,
        }
    }
}

impl SecureConfig {
    /// The fixed-point parameters (checks the range of `frac_bits`).
    pub fn fixed_point(&self) -> Result<FixedPoint> {
        FixedPoint::new(self.frac_bits).map_err(|source| RuntimeError::Mpc { at: "configuration".into(), source })
    }
}

/// Progress events of a run (for progress bars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A phase starts: `planning`, `dealing`, `model load and offline`, `online`, `plaintext reference`.
    Phase(&'static str),
    /// `done` of `total` nodes evaluated online (reported by the client).
    Node { done: usize, total: usize },
}

/// One layer (graph node) of a secure run; figures cover the whole batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerCost {
    pub name: String,
    pub op: String,
    pub output_shape: Vec<usize>,
    /// The cost table's figures for one image (`relus`, the comparisons by kind, `macs`, ...).
    #[serde(flatten)]
    pub per_image: NodeCost,
    pub online_bytes_p0_to_p1: u64,
    pub online_bytes_p1_to_p0: u64,
    pub rounds: u64,
    /// Dealer bytes for this layer (both parties).
    pub offline_bytes: u64,
    /// Online wall seconds (the slower party).
    pub seconds: f64,
    /// Width of this layer's comparisons (calibrated, else the global one).
    pub cmp_bits: u32,
    /// Compared values outside that width's exact range (`|x| ≥ 2^(bits−1)`), by the clear-text
    /// probe on the same input: nonzero means the secure result may be wrong.
    pub range_overflows: u64,
    /// Bits (signed) of the largest value this layer truncates locally, by the probe (0: none).
    pub truncated_bits: u32,
    /// Values of this layer the local truncations are expected to get wrong by about `2^(64−f)`
    /// (`Σ |x| / 2^64` over the values truncated; see [`headroom`]).
    pub expected_truncation_failures: f64,
}

/// The report of a secure run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecureReport {
    pub model: String,
    pub batch: usize,
    pub frac_bits: u32,
    pub cmp_bits: u32,
    pub cmp_mode: CmpMode,
    pub seed: u64,
    /// Per graph node, then one entry for the reveal.
    pub layers: Vec<LayerCost>,
    /// Totals for one image: `relu_count`, the comparisons by kind, `poly_elements`, `macs`.
    #[serde(flatten)]
    pub per_image: ModelCounts,
    /// Secure comparisons of the whole batch.
    pub comparisons_per_batch: u64,
    pub online_bytes_p0_to_p1: u64,
    pub online_bytes_p1_to_p0: u64,
    pub online_bytes: u64,
    pub rounds: u64,
    /// Dealer bytes of this inference (both parties, seed-compressed).
    pub offline_bytes: u64,
    /// Online wall seconds (the slower party).
    pub online_seconds: f64,
    /// Dealer time plus the parties' offline precomputation (the slower party).
    pub offline_seconds: f64,
    /// Model load: opening `E = W - A` (once per model).
    pub setup_bytes: u64,
    pub setup_rounds: u64,
    pub setup_seconds: f64,
    /// What the planner predicted for this inference.
    pub predicted: Cost,
    /// What the metered transport and the dealer measured.
    pub measured: Cost,
    pub est_lan_seconds: f64,
    pub est_wan_seconds: f64,
    /// The latency formula of the estimates.
    pub formula: &'static str,
    /// Largest absolute difference from the plaintext interpreter over all outputs.
    pub max_abs_error: f64,
    /// Compared values outside their layer's width range (all layers; see [`LayerCost`]).
    pub range_overflows: u64,
    /// Values the local truncations are expected to get wrong (all layers; see [`headroom`]).
    pub expected_truncation_failures: f64,
    pub output_shape: Vec<usize>,
    /// The first output, flattened (row-major).
    pub output: Vec<f32>,
    /// How the run was streamed: chunks, segments, resident material.
    #[serde(flatten)]
    pub streaming: StreamingReport,
}

/// A secure run's outputs and report.
#[derive(Debug, Clone)]
pub struct SecureRun {
    pub report: SecureReport,
    /// Graph outputs by name, as the client decoded them.
    pub outputs: Vec<(String, ArrayD<f32>)>,
    /// The plaintext interpreter's outputs on the same input.
    pub plain: Vec<(String, ArrayD<f32>)>,
}

/// Runs `graph` on `x` (`[batch, ...]`) under 2PC: P0 holds the weights, P1 the input.
pub fn run(graph: &Graph, x: &ArrayD<f32>, cfg: &SecureConfig) -> Result<SecureRun> {
    run_with_progress(graph, x, cfg, None)
}

/// Bits of headroom above an input's encoding: `|x| · 2^(2f)` must stay below `2^INPUT_RANGE_BITS`.
/// A product of two encodings carries `2f` fractional bits in the 64-bit ring; the 13 bits left
/// below 2^63 cover weight magnitudes and a layer's accumulation, and keep the parties' local
/// truncation from failing. Measured on `mnist_cnn`: inputs within the bound give the plaintext
/// class at `f` = 16, 20 and 24; inputs 2^5 times beyond it give a wrong class.
pub const INPUT_RANGE_BITS: i32 = 50;

/// The largest input magnitude accepted at `frac_bits` fractional bits (see [`INPUT_RANGE_BITS`]).
pub fn input_bound(frac_bits: u32) -> f64 {
    2f64.powi(INPUT_RANGE_BITS - 2 * frac_bits as i32)
}

/// Checks an input for the secure run: its shape against the graph's input, finite values, and
/// every value within [`input_bound`] (beyond it the fixed-point result would be silently wrong).
/// The error names the input, and the first offending element with its value.
pub fn check_input(graph: &Graph, x: &ArrayD<f32>, frac_bits: u32) -> Result<()> {
    let input = graph.data_inputs().next().ok_or_else(|| IrError::InvalidGraph { reason: "no input".into() })?;
    let batch = x.shape().first().copied().unwrap_or(0);
    if x.ndim() != input.shape.len() || batch == 0 || x.shape() != input.shape_at(batch).as_slice() {
        return Err(IrError::BadInput {
            name: input.name.clone(),
            expected: format_dims(&input.shape),
            got: x.shape().to_vec(),
        }
        .into());
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(IrError::BadInput {
            name: input.name.clone(),
            expected: "finite values (found NaN or infinity)".into(),
            got: x.shape().to_vec(),
        }
        .into());
    }
    let bound = input_bound(frac_bits);
    if let Some((at, v)) = x.indexed_iter().find(|(_, v)| (**v as f64).abs() > bound) {
        return Err(IrError::BadInput {
            name: input.name.clone(),
            expected: format!(
                "values within ±{bound} for {frac_bits} fractional bits (element {:?} is {v}): beyond it the \
                 fixed-point result would be wrong; scale the input, or use fewer --frac-bits",
                at.slice()
            ),
            got: x.shape().to_vec(),
        }
        .into());
    }
    Ok(())
}

fn encode_weight(graph: &Graph, l: &LinearLayer, fp: FixedPoint) -> Result<ArrayD<u64>> {
    let w = graph
        .initializers
        .get(&l.weight.name)
        .ok_or_else(|| IrError::NotFound { kind: "weight initializer", name: l.weight.name.clone() })?;
    let w = if l.weight.transpose {
        let w2 = w.view().into_dimensionality::<Ix2>().map_err(|_| IrError::BadInitializer {
            node: l.node.clone(),
            op: "Gemm".into(),
            name: l.weight.name.clone(),
            reason: "expected a 2-D weight".into(),
        })?;
        w2.t().as_standard_layout().into_owned().into_dyn()
    } else {
        w.as_standard_layout().into_owned()
    };
    Ok(w.mapv(|v| fp.encode(v as f64)))
}

/// Sum of the steps `from..to` of both parties' logs.
fn measure(l0: &[StepRecord], l1: &[StepRecord], r0: (usize, usize), r1: (usize, usize)) -> Result<Cost> {
    let (s0, s1) = (&l0[r0.0..r0.1], &l1[r1.0..r1.1]);
    if s0.len() != s1.len() || s0.iter().zip(s1).any(|(a, b)| a.op != b.op) {
        return Err(RuntimeError::Mpc {
            at: "cost accounting".into(),
            source: MpcError::PreprocessingMismatch {
                op: "step logs".into(),
                expected: format!("{:?}", s0.iter().map(|s| s.op).collect::<Vec<_>>()),
                found: format!("{:?}", s1.iter().map(|s| s.op).collect::<Vec<_>>()),
            },
        });
    }
    let mut c = Cost::default();
    for (a, b) in s0.iter().zip(s1) {
        c.p0_to_p1 += a.traffic.bytes_sent;
        c.p1_to_p0 += b.traffic.bytes_sent;
        c.rounds += a.traffic.rounds.max(b.traffic.rounds);
    }
    Ok(c)
}

/// Decodes the outputs revealed to the client (P1); Softmax / LogSoftmax at the output run in the clear.
pub fn decode_outputs(plan: &Plan, revealed: &[ArrayD<u64>]) -> Result<Vec<(String, ArrayD<f32>)>> {
    let fp = plan.fixed_point;
    let mut outputs = Vec::with_capacity(revealed.len());
    for (r, y) in plan.program.reveals.iter().zip(revealed) {
        let mut v = y.mapv(|w| fp.decode(w) as f32);
        if let Some(i) = r.tail {
            v = plain::eval_node(&plan.graph, &plan.graph.nodes[i], &[&v])?;
        }
        outputs.push((r.output.clone(), v));
    }
    Ok(outputs)
}

/// One party of a secure inference over any transport (two processes, or two machines): model
/// load with `model`, offline precomputation, the online pass and the reveal, with the
/// preprocessing already in `ctx`. P0 (`ctx.party()`) takes its weights from `plan.graph`; P1
/// gives the input `x` (`[batch, ...]`, checked) and gets the revealed outputs in
/// [`PartyOut::outputs`] (decode them with [`decode_outputs`]). No barrier: each party starts
/// its online phase when its own offline work is done.
pub fn run_party<T: masq_mpc::transport::Transport>(
    ctx: &mut masq_mpc::protocols::Ctx<T>,
    plan: &Plan,
    model: masq_mpc::dealer::ModelMaterial,
    x: Option<&ArrayD<f32>>,
) -> Result<PartyOut> {
    let fp = plan.fixed_point;
    let input_shape = plan.shapes.get(&plan.program.input).cloned().unwrap_or_default();
    let (weights, x) = match ctx.party() {
        Party::P0 => {
            let w = plan
                .layers
                .iter()
                .map(|l| Ok((l.id, Share::new(Party::P0, encode_weight(&plan.graph, l, fp)?))))
                .collect::<Result<Vec<_>>>()?;
            (w, ArrayD::<u64>::zeros(input_shape))
        }
        Party::P1 => {
            let x = x.ok_or_else(|| IrError::BadInput {
                name: "input".into(),
                expected: "the client's input".into(),
                got: vec![],
            })?;
            if x.shape() != input_shape.as_slice() {
                return Err(IrError::BadInput {
                    name: plan.program.input.clone(),
                    expected: format!("{input_shape:?}"),
                    got: x.shape().to_vec(),
                }
                .into());
            }
            let w = plan.layers.iter().map(|l| (l.id, Share::zeros(Party::P1, &l.kind.weight_shape()))).collect();
            (w, x.mapv(|v| fp.encode(v as f64)))
        }
    };
    exec::party(ctx, plan, model, weights, x, None, None)
}

/// A lone party's start for deal `deal`: its model material and the first segment of a fresh
/// stream with its refill hook. The dealer is deterministic in its seed, so this is the material
/// of the recorded run.
fn lone_start(
    cfg: &SecureConfig,
    deal: u64,
    plan: &Plan,
    party: Party,
) -> Result<(masq_mpc::dealer::ModelMaterial, masq_mpc::dealer::stream::StreamStart)> {
    let dealer_err = |source| RuntimeError::Mpc { at: "dealer (replaying a party alone)".into(), source };
    let mut dealer = Dealer::new(cfg.seed);
    let kinds: Vec<_> = plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
    let (m0, m1) = dealer.setup_model(&kinds).map_err(dealer_err)?;
    dealer.skip_deals(deal);
    let stream = dealer.stream(plan.requests.clone(), cfg.material_budget_bytes).map_err(dealer_err)?;
    let start = stream.start_solo(party).map_err(dealer_err)?;
    Ok((if party == Party::P0 { m0 } else { m1 }, start))
}

/// Runs `party` again, alone on every core, against what it received in the recorded run
/// `mine`; what it sends must equal what its peer received (`peer`) and its result the
/// recorded one, or the replay is refused as unfaithful.
fn run_alone(
    (model, start): (masq_mpc::dealer::ModelMaterial, masq_mpc::dealer::stream::StreamStart),
    plan: &Plan,
    party: Party,
    weights: Vec<(LayerId, Share)>,
    x: ArrayD<u64>,
    mine: &masq_mpc::sim::PartyRun<exec::PartyOut>,
    peer: &[Vec<u8>],
) -> Result<exec::PartyOut> {
    let failure: Mutex<Option<RuntimeError>> = Mutex::new(None);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let at = |source| RuntimeError::Mpc { at: format!("{party:?} alone (--layout own-cores)"), source };
    let run = masq_mpc::sim::run_solo_streamed(party, start, plan.fixed_point, mine.received.clone(), |ctx| {
        ctx.set_threads(cores);
        exec::party(ctx, plan, model, weights, x, None, None).map_err(|e| {
            *failure.lock().expect("not poisoned") = Some(e);
            MpcError::PeerDisconnected { during: "stopping on an error" }
        })
    });
    let (solo, sent) = match run {
        Ok(r) => r,
        Err(source) => return Err(failure.into_inner().expect("not poisoned").unwrap_or_else(|| at(source))),
    };
    if sent != peer || solo.output.outputs != mine.output.outputs {
        return Err(at(MpcError::UnexpectedMessage {
            during: "replaying a party alone",
            expected: format!("{party:?}'s messages and outputs of the recorded run"),
            got: "different ones: the replay is not faithful".into(),
        }));
    }
    Ok(solo.output)
}

/// One pipeline (plan, streamed deal, run) on all of `x`, as deal number `deal` of the dealer.
fn run_chunk(
    graph: &Graph,
    x: &ArrayD<f32>,
    cfg: &SecureConfig,
    deal: u64,
    progress: Option<&(dyn Fn(Progress) + Sync)>,
) -> Result<SecureRun> {
    let phase = |p: &'static str| {
        if let Some(f) = progress {
            f(Progress::Phase(p));
        }
    };
    check_input(graph, x, cfg.frac_bits)?;
    let batch = x.shape()[0];
    phase("planning");
    let plan = plan::plan(graph, batch, cfg)?;
    let fp = plan.fixed_point;
    // The values every comparison and truncation will see, in the clear: refuse before dealing
    // if the ring cannot hold this input's products.
    let probed = probe::probe(&plan, x)?;
    headroom::check(&plan, &probed, batch)?;

    phase("dealing");
    let t = Instant::now();
    let dealer_err = |source| RuntimeError::Mpc { at: "dealer".into(), source };
    let mut dealer = Dealer::new(cfg.seed);
    let kinds: Vec<_> = plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
    let (m0, m1) = dealer.setup_model(&kinds).map_err(dealer_err)?;
    // The material is dealt in budget-sized segments, the first now, the others when the parties
    // run out (masq_mpc::dealer::stream).
    dealer.skip_deals(deal);
    let stream = dealer.stream(plan.requests.clone(), cfg.material_budget_bytes).map_err(dealer_err)?;
    let start = stream.start().map_err(dealer_err)?;
    let (dealt_before, first_segment_seconds) = (t.elapsed().as_secs_f64(), stream.stats().deal_seconds);
    let setup_offline = m0.offline_bytes + m1.offline_bytes;

    let w0: Vec<(LayerId, Share)> = plan
        .layers
        .iter()
        .map(|l| Ok((l.id, Share::new(Party::P0, encode_weight(&plan.graph, l, fp)?))))
        .collect::<Result<_>>()?;
    let w1: Vec<(LayerId, Share)> = w0.iter().map(|(id, w)| (*id, Share::zeros(Party::P1, w.shape()))).collect();
    let x1 = x.mapv(|v| fp.encode(v as f64));
    let x0 = ArrayD::<u64>::zeros(x1.raw_dim());

    phase("model load and offline");
    let failures: Mutex<Vec<RuntimeError>> = Mutex::new(Vec::new());
    let ready = Barrier::new(2);
    let guard = |r: Result<exec::PartyOut>| {
        r.map_err(|e| {
            failures.lock().expect("not poisoned").push(e);
            MpcError::PeerDisconnected { during: "stopping on an error" }
        })
    };
    let own_cores = cfg.layout == Layout::OwnCores;
    // A party replayed alone needs its inputs again.
    let again = own_cores.then(|| ((w0.clone(), x0.clone()), (w1.clone(), x1.clone())));
    let record = |ctx: &mut masq_mpc::protocols::Ctx<masq_mpc::transport::MemTransport>| {
        if own_cores {
            ctx.transport_mut().inner_mut().record();
        }
    };
    let pair = masq_mpc::sim::run_pair_streamed(
        start,
        fp,
        |ctx| {
            record(ctx);
            guard(exec::party(ctx, &plan, m0, w0, x0, Some(&ready), None))
        },
        |ctx| {
            record(ctx);
            guard(exec::party(ctx, &plan, m1, w1, x1, Some(&ready), progress))
        },
    );
    let root_cause = |source: MpcError, failures: Mutex<Vec<RuntimeError>>| {
        let mut f = failures.into_inner().expect("not poisoned");
        let root =
            f.iter().position(|e| !matches!(e, RuntimeError::Mpc { source: MpcError::PeerDisconnected { .. }, .. }));
        match root {
            Some(i) => f.swap_remove(i),
            None if !f.is_empty() => f.swap_remove(0),
            None => RuntimeError::Mpc { at: "two-party run".into(), source },
        }
    };
    let (p0, p1) = match pair {
        Ok((a, b)) => match again {
            None => (a.output, b.output),
            Some((in0, in1)) => {
                phase("online again, each party alone");
                let solo = |party: Party, (w, x), mine: &masq_mpc::sim::PartyRun<exec::PartyOut>, peer: &[Vec<u8>]| {
                    run_alone(lone_start(cfg, deal, &plan, party)?, &plan, party, w, x, mine, peer)
                };
                let s0 = solo(Party::P0, in0, &a, &b.received)?;
                let s1 = solo(Party::P1, in1, &b, &a.received)?;
                (s0, s1)
            }
        },
        Err(source) => return Err(root_cause(source, failures)),
    };

    let outputs = decode_outputs(&plan, &p1.outputs)?;

    phase("plaintext reference");
    let input = graph.data_inputs().next().expect("checked").name.clone();
    let mut reference = plain::run(graph, HashMap::from([(input, x.clone())]))?;
    let mut plain_outs = Vec::with_capacity(outputs.len());
    let mut max_abs_error = 0f64;
    for (name, y) in &outputs {
        let p = reference.remove(name).ok_or_else(|| IrError::NotFound { kind: "output", name: name.clone() })?;
        for (a, b) in y.iter().zip(p.iter()) {
            let d = (*a as f64 - *b as f64).abs();
            max_abs_error = max_abs_error.max(if d.is_nan() { f64::INFINITY } else { d });
        }
        plain_outs.push((name.clone(), p));
    }

    // The widths' ranges and the truncations on this input, by the clear-text probe.
    let overflows = probed.overflows(&plan);
    let range_overflows = overflows.iter().sum();
    let trunc_failures: Vec<f64> = probed.truncations.iter().map(|t| t.expected_failures()).collect();

    // Per-layer figures from both parties' logs.
    let mut layers = Vec::with_capacity(plan.nodes.len() + 1);
    let mut measured = Cost::default();
    for (i, pn) in plan.nodes.iter().enumerate() {
        let (c, secs) = match (p0.nodes[i], p1.nodes[i]) {
            (Some(a), Some(b)) => (measure(&p0.log, &p1.log, (a.0, a.1), (b.0, b.1))?, a.2.max(b.2)),
            _ => (Cost::default(), 0.0),
        };
        measured += c;
        layers.push(LayerCost {
            name: pn.name.clone(),
            op: pn.op.clone(),
            output_shape: pn.output_shape.clone(),
            per_image: pn.per_image,
            online_bytes_p0_to_p1: c.p0_to_p1,
            online_bytes_p1_to_p0: c.p1_to_p0,
            rounds: c.rounds,
            offline_bytes: pn.cost.offline_bytes(),
            seconds: secs,
            cmp_bits: pn.cmp_bits,
            range_overflows: overflows[i],
            truncated_bits: probed.truncations[i].signed_bits(),
            expected_truncation_failures: trunc_failures[i],
        });
    }
    let rc = measure(&p0.log, &p1.log, (p0.reveal.0, p0.reveal.1), (p1.reveal.0, p1.reveal.1))?;
    measured += rc;
    layers.push(LayerCost {
        name: "(reveal)".into(),
        op: "Reveal".into(),
        output_shape: outputs.first().map(|o| o.1.shape().to_vec()).unwrap_or_default(),
        per_image: NodeCost::default(),
        online_bytes_p0_to_p1: rc.p0_to_p1,
        online_bytes_p1_to_p0: rc.p1_to_p0,
        rounds: rc.rounds,
        offline_bytes: 0,
        seconds: p0.reveal.2.max(p1.reveal.2),
        cmp_bits: 0,
        range_overflows: 0,
        truncated_bits: 0,
        expected_truncation_failures: 0.0,
    });
    let streamed = stream.stats();
    if streamed.dealt != stream.segments() {
        return Err(RuntimeError::Mpc {
            at: "dealer".into(),
            source: MpcError::PreprocessingMismatch {
                op: "streamed deal".into(),
                expected: format!("{} segments consumed", stream.segments()),
                found: format!("{} dealt", streamed.dealt),
            },
        });
    }
    (measured.offline_p0, measured.offline_p1) = streamed.offline_bytes;
    // The dealer's time: model masks and the first segment before the run, the other segments in it.
    let deal_seconds = dealt_before + streamed.deal_seconds - first_segment_seconds;
    let setup_cost = measure(&p0.setup_log, &p1.setup_log, (0, p0.setup_log.len()), (0, p1.setup_log.len()))?;
    let online_seconds = p0.online_seconds.max(p1.online_seconds);
    let report = SecureReport {
        model: graph.name.clone(),
        batch,
        frac_bits: cfg.frac_bits,
        cmp_bits: cfg.cmp_bits,
        cmp_mode: cfg.cmp_mode,
        seed: cfg.seed,
        per_image: plan.per_image(),
        comparisons_per_batch: plan.comparisons_per_batch(),
        online_bytes_p0_to_p1: measured.p0_to_p1,
        online_bytes_p1_to_p0: measured.p1_to_p0,
        online_bytes: measured.online_bytes(),
        rounds: measured.rounds,
        offline_bytes: measured.offline_bytes(),
        online_seconds,
        offline_seconds: deal_seconds + p0.precompute_seconds.max(p1.precompute_seconds),
        setup_bytes: setup_cost.online_bytes() + setup_offline,
        setup_rounds: setup_cost.rounds,
        setup_seconds: p0.setup_seconds.max(p1.setup_seconds),
        predicted: plan.total(),
        measured,
        est_lan_seconds: estimate_seconds(&measured, online_seconds, &Network::LAN),
        est_wan_seconds: estimate_seconds(&measured, online_seconds, &Network::WAN),
        formula: FORMULA,
        max_abs_error,
        range_overflows,
        expected_truncation_failures: trunc_failures.iter().sum(),
        output_shape: outputs.first().map(|o| o.1.shape().to_vec()).unwrap_or_default(),
        output: outputs.first().map(|o| o.1.iter().copied().collect()).unwrap_or_default(),
        layers,
        streaming: StreamingReport {
            material_budget_bytes: cfg.material_budget_bytes,
            chunks: 1,
            chunk_size: batch,
            segments: stream.segments(),
            peak_material_bytes: stream.peak_resident_bytes(),
            upfront_material_bytes: stream.total_resident_bytes(),
            refill_seconds: p0.paused_seconds.max(p1.paused_seconds),
        },
    };
    Ok(SecureRun { report, outputs, plain: plain_outs })
}
