//! The engine's benchmark: one protocol, both parties in one process (one thread each, in-memory
//! transport), random fixed-point data, measured against the cost model and plaintext.

use std::fmt;
use std::str::FromStr;
use std::sync::Barrier;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::cost::{self, Cost, Network, estimate_seconds};
use crate::dealer::{CmpMode, Dealer, LinearKind, Request};
use crate::error::{MpcError, Result};
use crate::kernel::Conv2dParams;
use crate::protocols::{self, Ctx, DEFAULT_CMP_BITS, PoolParams};
use crate::ring::FixedPoint;
use crate::share::{Party, Share, reconstruct, share};
pub use crate::sim::Layout;
use crate::sim::{run_pair, run_solo};
use crate::transport::MemTransport;

/// The protocols `masq bench mpc` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchOp {
    /// N ReLUs.
    Relu,
    /// N Beaver squares (fixed point, truncated).
    Square,
    /// N Beaver products (fixed point, truncated).
    Mul,
    /// An N×N by N×N matrix product (matrix triple, weight mask reused).
    Matmul,
    /// A 3×3 convolution, 64 → 64 channels, padding 1, on a 1×64×N×N input.
    Conv,
    /// A 3×3 stride-2 padding-1 max pool on a 1×64×N×N input.
    Maxpool,
    /// A 3×3 stride-2 padding-1 average pool on a 1×64×N×N input.
    Avgpool,
}

impl BenchOp {
    /// All ops.
    pub const ALL: [BenchOp; 7] = [
        BenchOp::Relu,
        BenchOp::Square,
        BenchOp::Mul,
        BenchOp::Matmul,
        BenchOp::Conv,
        BenchOp::Maxpool,
        BenchOp::Avgpool,
    ];

    /// CLI name.
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::Relu => "relu",
            BenchOp::Square => "square",
            BenchOp::Mul => "mul",
            BenchOp::Matmul => "matmul",
            BenchOp::Conv => "conv",
            BenchOp::Maxpool => "maxpool",
            BenchOp::Avgpool => "avgpool",
        }
    }

    /// The default size for this op.
    pub fn default_n(self) -> usize {
        match self {
            BenchOp::Relu | BenchOp::Square | BenchOp::Mul => 100_000,
            BenchOp::Matmul => 256,
            BenchOp::Conv | BenchOp::Maxpool | BenchOp::Avgpool => 32,
        }
    }

    /// The largest accepted size (keeps memory bounded on small machines).
    fn max_n(self) -> usize {
        match self {
            BenchOp::Relu | BenchOp::Square | BenchOp::Mul => 20_000_000,
            BenchOp::Matmul => 2048,
            BenchOp::Conv | BenchOp::Maxpool | BenchOp::Avgpool => 256,
        }
    }

    fn input_shape(self, n: usize) -> Vec<usize> {
        match self {
            BenchOp::Relu | BenchOp::Square | BenchOp::Mul => vec![n],
            BenchOp::Matmul => vec![n, n],
            BenchOp::Conv | BenchOp::Maxpool | BenchOp::Avgpool => vec![1, 64, n, n],
        }
    }
}

impl fmt::Display for BenchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BenchOp {
    type Err = MpcError;
    fn from_str(s: &str) -> Result<BenchOp> {
        BenchOp::ALL.into_iter().find(|o| o.name() == s.trim().to_ascii_lowercase()).ok_or_else(|| {
            MpcError::InvalidParameter {
                name: "op",
                value: s.into(),
                reason: format!("expected one of {}", BenchOp::ALL.map(|o| o.name()).join(", ")),
            }
        })
    }
}

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The protocol.
    pub op: BenchOp,
    /// Its size (see [`BenchOp`]).
    pub n: usize,
    /// Repetitions (the median is reported).
    pub reps: usize,
    /// Fixed point.
    pub fp: FixedPoint,
    /// Comparison bits (ReLU, MaxPool).
    pub bits: u32,
    /// Comparison mode (ReLU, MaxPool).
    pub mode: CmpMode,
    /// Threads each party's comparison evaluation may use.
    pub threads: usize,
    /// Seed of the dealer and the data.
    pub seed: u64,
    /// Where the parties compute.
    pub layout: Layout,
}

impl BenchConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 || self.n > self.op.max_n() {
            return Err(MpcError::InvalidParameter {
                name: "n",
                value: self.n.to_string(),
                reason: format!("{} accepts 1 to {}", self.op, self.op.max_n()),
            });
        }
        if matches!(self.op, BenchOp::Maxpool | BenchOp::Avgpool) && self.n < 2 {
            return Err(MpcError::InvalidParameter {
                name: "n",
                value: self.n.to_string(),
                reason: "pools need N >= 2".into(),
            });
        }
        if self.reps == 0 || self.reps > 1000 {
            return Err(MpcError::InvalidParameter {
                name: "reps",
                value: self.reps.to_string(),
                reason: "must be between 1 and 1000".into(),
            });
        }
        crate::dealer::check_bits(self.bits)
    }
}

/// What one benchmark measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The protocol.
    pub op: BenchOp,
    /// Its size parameter.
    pub n: usize,
    /// Input shape.
    pub input_shape: Vec<usize>,
    /// Elements processed (outputs for products and pools, inputs for element-wise ops).
    pub elements: usize,
    /// Repetitions.
    pub reps: usize,
    /// Online bytes, both directions (framing included).
    pub online_bytes: u64,
    /// Online bytes P0 → P1.
    pub online_bytes_p0_to_p1: u64,
    /// Online bytes P1 → P0.
    pub online_bytes_p1_to_p0: u64,
    /// Online bytes per element, both directions.
    pub bytes_per_element: f64,
    /// Online rounds.
    pub rounds: u64,
    /// Bytes the dealer sends (both parties, seed-compressed).
    pub offline_bytes: u64,
    /// The cost model's prediction (must equal the measurement).
    pub predicted: Cost,
    /// Median wall seconds of the online phase (the slower party's).
    pub seconds: f64,
    /// Where the parties computed.
    pub layout: Layout,
    /// Median online seconds of P0 and of P1 alone ([`Layout::OwnCores`] only).
    pub party_seconds: Option<[f64; 2]>,
    /// Median wall seconds of the offline phase (dealer + the parties' input-independent work).
    pub offline_seconds: f64,
    /// Elements per second online.
    pub throughput: f64,
    /// Estimated seconds on a LAN (3 Gbps, 0.3 ms).
    pub est_lan_seconds: f64,
    /// Estimated seconds on a WAN (400 Mbps, 40 ms).
    pub est_wan_seconds: f64,
    /// The estimate's formula.
    pub formula: &'static str,
    /// Largest |secure - plaintext| over the outputs (decoded reals).
    pub max_abs_error: f64,
    /// Outputs off by more than 4 units in the last place, over all repetitions: the large errors
    /// of local truncation (0 for ops without truncation).
    pub large_errors: u64,
    /// `large_errors` / (elements × reps).
    pub large_error_rate: f64,
    /// Frac bits used.
    pub frac_bits: u32,
    /// Comparison bits and mode used.
    pub bits: u32,
    pub mode: CmpMode,
    /// Threads per party.
    pub threads: usize,
}

struct Problem {
    x: ArrayD<u64>,
    y: Option<ArrayD<u64>>,
    layer: Option<(LinearKind, ArrayD<u64>)>,
    requests: Vec<Request>,
    predicted: Cost,
    elements: usize,
}

fn random_fixed(rng: &mut ChaCha12Rng, fp: FixedPoint, shape: &[usize], range: f64) -> ArrayD<u64> {
    let n = shape.iter().product();
    let v: Vec<u64> = (0..n).map(|_| fp.encode(rng.random_range(-range..range))).collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("shape")
}

fn pool_params() -> PoolParams {
    PoolParams { kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1], dilation: [1, 1] }
}

fn conv_kind() -> LinearKind {
    LinearKind::Conv2d {
        weight_shape: [64, 64, 3, 3],
        params: Conv2dParams { stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 },
    }
}

fn problem(cfg: &BenchConfig, rng: &mut ChaCha12Rng) -> Result<Problem> {
    let fp = cfg.fp;
    let shape = cfg.op.input_shape(cfg.n);
    let elems: usize = shape.iter().product();
    let x = random_fixed(rng, fp, &shape, 8.0);
    let seeds = cost::deal_overhead();
    Ok(match cfg.op {
        BenchOp::Relu => Problem {
            x,
            y: None,
            layer: None,
            requests: vec![Request::Cmp { n: elems, bits: cfg.bits, mode: cfg.mode }],
            predicted: cost::cmp(elems, cfg.bits, cfg.mode) + seeds,
            elements: elems,
        },
        BenchOp::Square => Problem {
            x,
            y: None,
            layer: None,
            requests: vec![Request::Square { n: elems }],
            predicted: cost::square(elems) + seeds,
            elements: elems,
        },
        BenchOp::Mul => Problem {
            y: Some(random_fixed(rng, fp, &shape, 8.0)),
            x,
            layer: None,
            requests: vec![Request::Mul { n: elems }],
            predicted: cost::mul(elems) + seeds,
            elements: elems,
        },
        BenchOp::Matmul | BenchOp::Conv => {
            let kind = if cfg.op == BenchOp::Conv { conv_kind() } else { LinearKind::MatMul { k: cfg.n, n: cfg.n } };
            let w = random_fixed(rng, fp, &kind.weight_shape(), 0.5);
            let out: usize = protocols::linear::output_shape(&kind, &shape)?.iter().product();
            Problem {
                x,
                y: None,
                requests: vec![Request::Linear { layer: 0, input_shape: shape.clone() }],
                predicted: cost::linear(&kind, &shape)? + seeds,
                layer: Some((kind, w)),
                elements: out,
            }
        }
        BenchOp::Maxpool => {
            let p = pool_params();
            let [ho, wo] = p.output_hw(cfg.n, cfg.n)?;
            Problem {
                x,
                y: None,
                layer: None,
                requests: protocols::maxpool_requests(&shape, &p, cfg.bits, cfg.mode)?,
                predicted: cost::maxpool(&shape, &p, cfg.bits, cfg.mode)? + seeds,
                elements: 64 * ho * wo,
            }
        }
        BenchOp::Avgpool => {
            let [ho, wo] = pool_params().output_hw(cfg.n, cfg.n)?;
            Problem { x, y: None, layer: None, requests: vec![], predicted: seeds, elements: 64 * ho * wo }
        }
    })
}

/// The plaintext reference of the benchmarked op, in reals.
fn plaintext(cfg: &BenchConfig, pr: &Problem) -> Result<Vec<f64>> {
    let fp = cfg.fp;
    let dec = |a: &ArrayD<u64>| a.iter().map(|&v| fp.decode(v)).collect::<Vec<f64>>();
    let x = dec(&pr.x);
    Ok(match cfg.op {
        BenchOp::Relu => x.iter().map(|v| v.max(0.0)).collect(),
        BenchOp::Square => x.iter().map(|v| v * v).collect(),
        BenchOp::Mul => x.iter().zip(dec(pr.y.as_ref().expect("mul has y"))).map(|(a, b)| a * b).collect(),
        BenchOp::Matmul | BenchOp::Conv => {
            // Exact ring product of the encodings, then decode at scale 2f (no truncation error).
            let (kind, w) = pr.layer.as_ref().expect("linear has a layer");
            let prod = protocols::linear::apply(kind, w, &pr.x)?;
            prod.iter().map(|&v| (v as i64) as f64 / (fp.scale() * fp.scale())).collect()
        }
        BenchOp::Maxpool | BenchOp::Avgpool => {
            let p = pool_params();
            let n = cfg.n;
            let [ho, wo] = p.output_hw(n, n)?;
            let mut out = Vec::with_capacity(64 * ho * wo);
            for c in 0..64 {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut vals = Vec::new();
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let y = (oy * 2 + ky) as isize - 1;
                                let xx = (ox * 2 + kx) as isize - 1;
                                if y >= 0 && xx >= 0 && (y as usize) < n && (xx as usize) < n {
                                    vals.push(x[c * n * n + y as usize * n + xx as usize]);
                                }
                            }
                        }
                        out.push(if cfg.op == BenchOp::Maxpool {
                            vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                        } else {
                            vals.iter().sum::<f64>() / vals.len() as f64
                        });
                    }
                }
            }
            out
        }
    })
}

/// Runs the online op on one party.
fn online(cfg: &BenchConfig, ctx: &mut Ctx<MemTransport>, x: &Share, y: Option<&Share>) -> Result<Share> {
    let f = cfg.fp.frac_bits();
    match cfg.op {
        BenchOp::Relu => protocols::relu(ctx, x, cfg.bits, cfg.mode),
        BenchOp::Square => Ok(protocols::truncate(protocols::square(ctx, x)?, f)),
        BenchOp::Mul => Ok(protocols::truncate(protocols::mul(ctx, x, y.expect("mul has y"))?, f)),
        BenchOp::Matmul | BenchOp::Conv => protocols::linear(ctx, 0, x),
        BenchOp::Maxpool => protocols::maxpool(ctx, x, &pool_params(), cfg.bits, cfg.mode),
        BenchOp::Avgpool => protocols::avgpool(ctx, x, &pool_params(), false),
    }
}

/// How one party's run of a repetition goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Beside its peer (timed in the shared layout).
    Together,
    /// Beside its peer, keeping what it receives (own-cores layout, untimed).
    Recorded,
    /// By itself against the recording (own-cores layout, timed).
    Alone,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs the benchmark. `progress` is called after each repetition.
pub fn run(cfg: &BenchConfig, mut progress: impl FnMut(usize)) -> Result<BenchReport> {
    cfg.validate()?;
    let mut rng = ChaCha12Rng::seed_from_u64(cfg.seed);
    let pr = problem(cfg, &mut rng)?;
    let want = plaintext(cfg, &pr)?;
    let fp = cfg.fp;
    let (mut on_times, mut off_times) = (Vec::new(), Vec::new());
    let mut measured = Cost::default();
    let mut max_err = 0f64;
    let mut large = 0u64;
    let mut solo_times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for rep in 0..cfg.reps {
        let seed = cfg.seed.wrapping_add(rep as u64 + 1);
        let kinds: Vec<_> = pr.layer.iter().map(|(k, _)| (0, k.clone())).collect();
        // The dealer is deterministic in its seed: a second deal is the same material.
        let deal = || -> Result<_> {
            let mut dealer = Dealer::new(seed);
            let models = dealer.setup_model(&kinds)?;
            Ok((models, dealer.deal(&pr.requests)?))
        };
        let t_off = Instant::now();
        let ((m0, m1), (p0, p1)) = deal()?;
        let dealer_s = t_off.elapsed().as_secs_f64();
        let offline = (p0.offline_bytes(), p1.offline_bytes());
        let mut srng = ChaCha12Rng::seed_from_u64(seed ^ 0xdada);
        let (x0, x1) = share(&pr.x, &mut srng);
        let (y0, y1) = match &pr.y {
            Some(y) => {
                let (a, b) = share(y, &mut srng);
                (Some(a), Some(b))
            }
            None => (None, None),
        };
        let weights = pr.layer.as_ref().map(|(_, w)| w.clone());
        let barrier = Barrier::new(2);
        // Model load and precomputation, then (both parties together unless alone) the timed
        // online phase.
        let party =
            |ctx: &mut Ctx<MemTransport>, model, x: Share, y: Option<Share>, run: Run| -> Result<(Share, f64, f64)> {
                if run == Run::Recorded {
                    ctx.transport_mut().inner_mut().record();
                }
                let t = Instant::now();
                if let Some(w) = &weights {
                    let share = match ctx.party() {
                        Party::P0 => Share::new(Party::P0, w.clone()),
                        Party::P1 => Share::zeros(Party::P1, w.shape()),
                    };
                    protocols::setup_layers(ctx, model, vec![(0, share)])?;
                    protocols::precompute(ctx)?;
                }
                let off = t.elapsed().as_secs_f64();
                ctx.take_log();
                ctx.set_threads(cfg.threads);
                if run != Run::Alone {
                    barrier.wait();
                }
                let t = Instant::now();
                let out = online(cfg, ctx, &x, y.as_ref())?;
                Ok((out, t.elapsed().as_secs_f64(), off))
            };
        let (r0, r1) = match cfg.layout {
            Layout::Shared => run_pair(
                (p0, p1),
                fp,
                |ctx| party(ctx, m0, x0, y0, Run::Together),
                |ctx| party(ctx, m1, x1, y1, Run::Together),
            )?,
            Layout::OwnCores => {
                let (a, b) = (x0.clone(), x1.clone());
                let (c, d) = (y0.clone(), y1.clone());
                let (r0, r1) = run_pair(
                    (p0, p1),
                    fp,
                    |ctx| party(ctx, m0, a, c, Run::Recorded),
                    |ctx| party(ctx, m1, b, d, Run::Recorded),
                )?;
                let ((m0, m1), (p0, p1)) = deal()?;
                let runs = [(Party::P0, m0, p0, x0, y0, &r0, &r1), (Party::P1, m1, p1, x1, y1, &r1, &r0)];
                for (i, (who, m, p, x, y, mine, peer)) in runs.into_iter().enumerate() {
                    let (solo, sent) =
                        run_solo(who, p, fp, mine.received.clone(), |ctx| party(ctx, m, x, y, Run::Alone))?;
                    if sent != peer.received || solo.output.0.data() != mine.output.0.data() {
                        return Err(MpcError::UnexpectedMessage {
                            during: "replaying a party alone (--layout own-cores)",
                            expected: format!("{who:?}'s messages and output of the recorded run"),
                            got: "different ones: the replay is not faithful".into(),
                        });
                    }
                    solo_times[i].push(solo.output.1);
                }
                (r0, r1)
            }
        };
        on_times.push(match cfg.layout {
            Layout::Shared => r0.output.1.max(r1.output.1),
            Layout::OwnCores => solo_times[0][rep].max(solo_times[1][rep]),
        });
        off_times.push(dealer_s + r0.output.2.max(r1.output.2));
        let sum =
            |log: &[protocols::StepRecord]| log.iter().fold(crate::transport::Traffic::default(), |a, s| a + s.traffic);
        let (t0, t1) = (sum(&r0.log), sum(&r1.log));
        measured = Cost {
            p0_to_p1: t0.bytes_sent,
            p1_to_p0: t1.bytes_sent,
            rounds: t0.rounds.max(t1.rounds),
            offline_p0: offline.0,
            offline_p1: offline.1,
        };
        let out = reconstruct(&r0.output.0, &r1.output.0)?;
        let scale =
            if matches!(cfg.op, BenchOp::Matmul | BenchOp::Conv) { fp.scale() * fp.scale() } else { fp.scale() };
        for (&got, w) in out.iter().zip(&want) {
            let err = ((got as i64) as f64 / scale - w).abs();
            max_err = max_err.max(err);
            if err > 4.0 / fp.scale() {
                large += 1;
            }
        }
        progress(rep + 1);
    }
    let seconds = median(&mut on_times);
    let party_seconds = match cfg.layout {
        Layout::Shared => None,
        Layout::OwnCores => Some([median(&mut solo_times[0]), median(&mut solo_times[1])]),
    };
    let offline_seconds = median(&mut off_times);
    let online_bytes = measured.online_bytes();
    Ok(BenchReport {
        op: cfg.op,
        n: cfg.n,
        input_shape: cfg.op.input_shape(cfg.n),
        elements: pr.elements,
        reps: cfg.reps,
        online_bytes,
        online_bytes_p0_to_p1: measured.p0_to_p1,
        online_bytes_p1_to_p0: measured.p1_to_p0,
        bytes_per_element: online_bytes as f64 / pr.elements as f64,
        rounds: measured.rounds,
        offline_bytes: measured.offline_bytes(),
        predicted: pr.predicted,
        seconds,
        layout: cfg.layout,
        party_seconds,
        offline_seconds,
        throughput: pr.elements as f64 / seconds,
        est_lan_seconds: estimate_seconds(&measured, seconds, &Network::LAN),
        est_wan_seconds: estimate_seconds(&measured, seconds, &Network::WAN),
        formula: cost::latency::FORMULA,
        max_abs_error: max_err,
        large_errors: large,
        large_error_rate: large as f64 / (pr.elements * cfg.reps) as f64,
        frac_bits: fp.frac_bits(),
        bits: cfg.bits,
        mode: cfg.mode,
        threads: cfg.threads,
    })
}

/// The comparison width used by default.
pub const DEFAULT_BITS: u32 = DEFAULT_CMP_BITS;
