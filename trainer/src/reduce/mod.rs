//! ReLU reduction: cut a trained model's ReLUs to a budget (docs/ALGORITHMS.md §1–5, §9–11).
//!
//! - [`Method::AutoRep`]: every `Relu` becomes a `MaskedAct` site with per-element gate parameters
//!   `a ~ U(0,1)` and a binary state `m` (all ones). Forward `y = m⊙ReLU(x) + (1−m)⊙g(x)`; the STE
//!   gives `∂L/∂a = softplus(a)·Σ_batch ∂L/∂y·(ReLU(x) − g(x))`. Loss `CE (+ KD) + λ·max(0, D −
//!   budget/N)` with `D = Σm/N` (STE gradient `softplus(a)/N`). Gates: `ste` (`m = 1[a>0]`),
//!   `hysteresis:θ` and `spgrad` (hysteresis with θ; identity forward where masked, ReLU gradient).
//!   After every epoch the model is evaluated; the best-accuracy state whose count is ≤ budget is
//!   kept. **If no epoch reaches the budget**, the budget is forced at the end: the `budget`
//!   elements with the largest `a` keep their ReLU (ties broken by position), all others are
//!   replaced. The kept state is then finetuned with frozen masks.
//! - [`Method::Snl`]: continuous `α` (init 1), `y = α⊙ReLU(x) + (1−α)⊙g(x)`, loss `CE (+ KD) +
//!   η·Σ|α|` with η = 1e-5 growing ×1.1 per epoch once the count stops decreasing (epoch ≥ 5); count
//!   `#{α > 1e-2}`; stops once count ≤ budget (or after `mask_epochs`), keeps the top-`budget` α as
//!   the binary mask, then finetunes.
//! - [`Method::Random`]: a uniformly random mask with exactly `budget` ones, then the finetune.
//!
//! Both stages use Adam (no weight decay) on a cosine schedule to `min(1e-5, lr)`; gate parameters
//! have their own Adam (`mask_lr`). Polynomial replacements store `c2` divided by 0.1 (AutoReP's
//! `scale_x2`) while training; the written checkpoint holds the effective coefficients.
//! The checkpoint's facts: `relu_count`, `accuracy`, `dataset`, and `relu_before`, `relu_budget`,
//! `relu_layers` (per site: before/after), `method`, `normalization`.

pub mod gates;
pub mod math;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use masq_ir::Graph;
use masq_ir::Op;
use masq_ir::checkpoint::{self, Facts};
use masq_ir::masks::{Site, SiteReplacement, relu_to_masked};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use tch::{Device, Kind, Reduction, Tensor};

pub use gates::{Gates, Mode};

use crate::data::{Augment, Loader, Normalisation, Splits};
use crate::error::{Result, TrainerError};
use crate::model::TchModel;
use crate::optim::{Optimizer, OptimizerKind, cosine_lr};
use crate::train::{check_fit, evaluate};

/// SNL's count threshold: an element counts while `α > 1e-2`.
pub const SNL_THRESHOLD: f64 = 1e-2;
/// AutoReP's `scale_x2`.
pub const SCALE_X2: f64 = 0.1;

/// Reduction method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    AutoRep,
    Snl,
    Random,
}

impl Method {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "autorep" => Ok(Method::AutoRep),
            "snl" => Ok(Method::Snl),
            "random" => Ok(Method::Random),
            _ => Err(bad(format!("unknown method {s:?} (autorep, snl or random)"))),
        }
    }
}

/// AutoReP gate kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum GateKind {
    /// `m = 1[a>0]`.
    Ste,
    /// `m ← m·1[a>−θ] + (1−m)·1[a>θ]` at the start of every forward pass.
    Hysteresis(f64),
    /// Hysteresis state; identity forward where masked, ReLU gradient backward.
    SpGrad(f64),
}

/// Default weight of the budget hinge.
pub const DEFAULT_LAMBDA: f64 = 100.0;

/// The gate learning rate when none is given: `max(1e-3, 3/steps)` for a search of `steps` optimiser
/// steps. Adam moves a gate by about one learning rate per step, and gates start in `U(0,1)`: with
/// AutoReP's 1e-3 a short search cannot carry them below zero (its runs take tens of thousands of
/// steps), while long searches keep the published 1e-3.
pub fn auto_mask_lr(steps: usize) -> f64 {
    (3.0 / steps.max(1) as f64).max(1e-3)
}

/// Default hysteresis threshold (every AutoReP script uses 3e-3).
pub const DEFAULT_THETA: f64 = 3e-3;

impl GateKind {
    /// `ste`, `hysteresis[:θ]`, `spgrad[:θ]`.
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, arg) = s.split_once(':').map_or((s, None), |(k, a)| (k, Some(a)));
        let theta = match arg {
            None => DEFAULT_THETA,
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| bad(format!("gate {s:?}: θ must be a non-negative number")))?,
        };
        match kind.to_ascii_lowercase().as_str() {
            "ste" if arg.is_none() => Ok(GateKind::Ste),
            "hysteresis" => Ok(GateKind::Hysteresis(theta)),
            "spgrad" => Ok(GateKind::SpGrad(theta)),
            _ => Err(bad(format!("unknown gate {s:?} (ste, hysteresis:θ or spgrad)"))),
        }
    }
}

/// What replaces a removed ReLU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum ReplacementKind {
    Identity,
    /// `c1·x + c0`, trainable per channel.
    Poly1,
    /// `0.1·c2·x² + c1·x + c0`, trainable per channel.
    Poly2,
    /// Poly2 reset from the running input statistics every 10 passes until pass 508.
    Dapa,
    /// Fixed `a·x² + b·x + c`.
    Fixed([f32; 3]),
}

impl ReplacementKind {
    /// `identity`, `poly1`, `poly2`, `dapa`, `fixed:a,b,c`.
    pub fn parse(s: &str) -> Result<Self> {
        let l = s.to_ascii_lowercase();
        match l.as_str() {
            "identity" => return Ok(ReplacementKind::Identity),
            "poly1" => return Ok(ReplacementKind::Poly1),
            "poly2" => return Ok(ReplacementKind::Poly2),
            "dapa" => return Ok(ReplacementKind::Dapa),
            _ => {}
        }
        if let Some(rest) = l.strip_prefix("fixed:") {
            let v: Vec<f32> = rest.split(',').filter_map(|p| p.trim().parse().ok()).collect();
            if v.len() == 3 && v.iter().all(|x| x.is_finite()) && rest.split(',').count() == 3 {
                return Ok(ReplacementKind::Fixed([v[0], v[1], v[2]]));
            }
        }
        Err(bad(format!("unknown replacement {s:?} (identity, poly1, poly2, dapa or fixed:a,b,c)")))
    }

    /// The stored `c2` is multiplied by this in the forward pass.
    pub fn c2_scale(&self) -> f64 {
        match self {
            ReplacementKind::Poly2 | ReplacementKind::Dapa => SCALE_X2,
            _ => 1.0,
        }
    }

    fn site_replacement(&self) -> SiteReplacement {
        match *self {
            ReplacementKind::Identity => SiteReplacement::Identity,
            ReplacementKind::Poly1 | ReplacementKind::Poly2 => SiteReplacement::Poly { c2: 0.0, c1: 1.0, c0: 0.0 },
            ReplacementKind::Dapa => {
                let [c2, c1, c0] = math::dapa_fit(0.0, 1.0);
                SiteReplacement::Poly { c2: (c2 / SCALE_X2) as f32, c1: c1 as f32, c0: c0 as f32 }
            }
            ReplacementKind::Fixed([a, b, c]) => SiteReplacement::Poly { c2: a, c1: b, c0: c },
        }
    }

    /// Which of `[c2, c1, c0]` train.
    fn trainable(&self) -> [bool; 3] {
        match self {
            ReplacementKind::Identity | ReplacementKind::Fixed(_) => [false; 3],
            ReplacementKind::Poly1 => [false, true, true],
            ReplacementKind::Poly2 | ReplacementKind::Dapa => [true; 3],
        }
    }
}

/// The ReLU budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Budget {
    /// Absolute number of ReLUs kept.
    Count(u64),
    /// Fraction of the ReLUs removed.
    Sparsity(f64),
}

/// Everything a reduction run needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReduceConfig {
    pub method: Method,
    pub budget: Budget,
    pub gate: GateKind,
    pub replacement: ReplacementKind,
    /// Weight λ of the budget hinge (default 100; AutoReP's scripts use 80–240, its code default 10
    /// stalls above the budget in short runs).
    pub lambda: f64,
    pub mask_epochs: usize,
    pub finetune_epochs: usize,
    /// Distil from the starting model (T = 4, KD = T²·KL).
    pub distill: bool,
    pub temperature: f64,
    /// Learning rate of the weights (Adam).
    pub lr: f64,
    /// Learning rate of the gate parameters (Adam); `None`: [`auto_mask_lr`] of the search length.
    pub mask_lr: Option<f64>,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub seed: u64,
    pub augment: Augment,
    pub norm: Normalisation,
    pub dataset: String,
    /// Mask dropout probability during the finetune.
    pub mask_dropout: f64,
    /// DaPa: use the variance where the fit wants a standard deviation.
    pub dapa_variance_quirk: bool,
    /// SNL's initial η.
    pub snl_eta: f64,
    /// When the search ends under the budget (AutoReP's kept state, or SNL's `α > 1e-2` once it
    /// reached the budget), give ReLUs back to the masked elements with the largest gates until
    /// the count equals the budget (before the finetune).
    pub fill_budget: bool,
    /// Stop each epoch after this many batches.
    pub max_batches: Option<usize>,
    /// Where `reduced.safetensors` goes (`None`: nothing written).
    pub out_dir: Option<PathBuf>,
}

impl ReduceConfig {
    pub fn new(dataset: &str, norm: Normalisation, augment: Augment, budget: Budget) -> Self {
        ReduceConfig {
            method: Method::AutoRep,
            budget,
            gate: GateKind::Hysteresis(DEFAULT_THETA),
            replacement: ReplacementKind::Poly2,
            lambda: DEFAULT_LAMBDA,
            mask_epochs: 10,
            finetune_epochs: 5,
            distill: false,
            temperature: 4.0,
            lr: 1e-3,
            mask_lr: None,
            batch_size: 128,
            eval_batch_size: 500,
            seed: 0,
            augment,
            norm,
            dataset: dataset.to_string(),
            mask_dropout: 0.0,
            dapa_variance_quirk: false,
            snl_eta: 1e-5,
            fill_budget: true,
            max_batches: None,
            out_dir: None,
        }
    }
}

/// Progress of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochInfo {
    /// `search` or `finetune`.
    pub stage: &'static str,
    pub epoch: usize,
    pub train_loss: f64,
    pub test_accuracy: f64,
    pub relu_count: u64,
    pub seconds: f64,
    /// Whether this epoch's state is the kept one so far.
    pub kept: bool,
}

/// Progress of a run, handed to the caller's callback.
#[derive(Debug, Clone, PartialEq)]
pub enum ReduceEvent {
    /// A stage (`search` or `finetune`) starts.
    Stage { stage: &'static str, epochs: usize, batches_per_epoch: usize, mask_lr: Option<f64> },
    /// A training batch finished: `loss` is the running mean over the epoch, `relu_count` the current
    /// count (for the search stage, after this batch's step).
    Batch { stage: &'static str, epoch: usize, batch: usize, loss: f64, relu_count: u64 },
    /// An epoch finished (after evaluation).
    Epoch(EpochInfo),
}

/// One site's ReLU count before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerCount {
    pub name: String,
    pub before: u64,
    pub after: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReduceSummary {
    pub method: Method,
    /// Test accuracy of the written model (fraction).
    pub accuracy: f64,
    /// Accuracy of the starting model.
    pub accuracy_before: f64,
    pub relu_count: u64,
    pub relu_before: u64,
    pub relu_budget: u64,
    /// Whether the search reached the budget by itself (AutoReP, SNL).
    pub reached_budget: bool,
    /// Whether the budget had to be forced by keeping the top-`budget` gates.
    pub forced: bool,
    /// ReLUs given back after a search that overshot below the budget (`fill_budget`).
    pub filled: u64,
    pub layers: Vec<LayerCount>,
    pub checkpoint: Option<PathBuf>,
    /// The gate learning rate the search used (AutoReP, SNL).
    pub mask_lr: Option<f64>,
    pub seconds: f64,
}

fn bad(reason: String) -> TrainerError {
    TrainerError::BadConfig { reason }
}

fn cross_entropy(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(logits.f_cross_entropy_loss(y, None::<Tensor>, Reduction::Mean, -100, 0.0)?)
}

/// Per-site mask counts of a graph (sites in node order).
fn site_counts(graph: &Graph, sites: &[Site]) -> Vec<u64> {
    sites.iter().map(|s| graph.masks.get(&s.mask).map_or(0, |m| m.iter().filter(|&&v| v != 0).count() as u64)).collect()
}

/// The masks keeping the `k` largest scores over all sites (ties: earlier position first).
pub fn top_k_masks(scores: &[Tensor], k: usize) -> Result<Vec<Tensor>> {
    let mut all: Vec<(f32, usize, usize)> = Vec::new();
    let mut arrays = Vec::new();
    for (si, s) in scores.iter().enumerate() {
        let a = crate::model::to_array(s)?;
        for (i, &v) in a.iter().enumerate() {
            all.push((v, si, i));
        }
        arrays.push(a);
    }
    all.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let mut masks: Vec<_> = arrays.iter().map(|a| a.mapv(|_| 0f32)).collect();
    for &(_, si, i) in all.iter().take(k) {
        masks[si].as_slice_mut().expect("standard layout")[i] = 1.0;
    }
    Ok(scores.iter().zip(masks).map(|(s, m)| crate::model::to_tensor(&m, s.device())).collect())
}

/// A random set of exactly `k` elements over all sites.
pub fn random_masks(sites: &[Site], k: usize, seed: u64, device: Device) -> Vec<Tensor> {
    let total: usize = sites.iter().map(Site::len).sum();
    let mut flat = vec![0f32; total];
    for i in sample(&mut ChaCha8Rng::seed_from_u64(seed), total, k.min(total)) {
        flat[i] = 1.0;
    }
    let mut out = Vec::new();
    let mut off = 0;
    for s in sites {
        let shape: Vec<i64> = s.shape.iter().map(|&d| d as i64).collect();
        out.push(Tensor::from_slice(&flat[off..off + s.len()]).reshape(shape.as_slice()).to_device(device));
        off += s.len();
    }
    out
}

struct Stage<'a> {
    cfg: &'a ReduceConfig,
    splits: &'a Splits,
    teacher: Option<&'a TchModel>,
    device: Device,
}

impl Stage<'_> {
    fn batches(&self, loader: &Loader) -> usize {
        let full = loader.batches();
        self.cfg.max_batches.map_or(full, |m| m.min(full)).max(1)
    }

    /// One training epoch; `extra` adds to the loss, `step` updates with the learning-rate factor,
    /// `on_batch` hears of every batch (its number and the running loss).
    #[allow(clippy::too_many_arguments)]
    fn epoch(
        &self,
        model: &TchModel,
        epoch: usize,
        epochs: usize,
        seed_tag: u64,
        extra: &mut dyn FnMut() -> Result<Option<Tensor>>,
        step: &mut dyn FnMut(f64) -> Result<()>,
        on_batch: &mut dyn FnMut(usize, f64) -> Result<()>,
    ) -> Result<f64> {
        let cfg = self.cfg;
        let loader = Loader::new(&self.splits.train, cfg.norm.clone(), cfg.augment, cfg.batch_size, self.device)?;
        let per = self.batches(&loader);
        let order = loader.order(Some(cfg.seed.wrapping_mul(1_000_003).wrapping_add(seed_tag)));
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_a06e ^ seed_tag);
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        for (b, idx) in order.chunks(cfg.batch_size).take(per).enumerate() {
            let step_i = (epoch - 1) * per + b;
            let factor = cosine_lr(1.0, 0.0, step_i, per * epochs, 0);
            let (x, y) = loader.batch(idx, Some(&mut rng))?;
            let logits = model.forward(&x, true)?;
            let mut loss = cross_entropy(&logits, &y)?;
            if let Some(t) = self.teacher {
                let tl = tch::no_grad(|| t.forward(&x, false))?;
                loss = loss.f_add(&math::kd_loss(&logits, &tl, cfg.temperature)?)?;
            }
            if let Some(e) = extra()? {
                loss = loss.f_add(&e)?;
            }
            loss.f_backward()?;
            step(factor)?;
            let l = f64::try_from(&loss)?;
            if !l.is_finite() {
                return Err(bad(format!("loss became {l} at epoch {epoch}, batch {b}; lower --lr")));
            }
            loss_sum += l * idx.len() as f64;
            seen += idx.len();
            on_batch(b + 1, loss_sum / seen as f64)?;
        }
        Ok(loss_sum / seen.max(1) as f64)
    }

    fn eval(&self, model: &TchModel) -> Result<f64> {
        Ok(evaluate(model, &self.splits.test, &self.cfg.norm, self.cfg.eval_batch_size)?.accuracy)
    }
}

fn lr_at(base: f64, factor: f64) -> f64 {
    let min = 1e-5f64.min(base);
    min + (base - min) * factor
}

fn zero_grads(ts: &[&Tensor]) {
    for t in ts {
        let mut g = t.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

fn set_coefficient_trainability(model: &mut TchModel, sites: &[Site], r: ReplacementKind) -> Result<()> {
    for s in sites {
        if let Some(names) = &s.coefficients {
            for (n, t) in names.iter().zip(r.trainable()) {
                model.set_trainable(n, t)?;
            }
        }
    }
    Ok(())
}

/// Cut the ReLUs of `graph` (a trained model) to the budget; see the module docs.
pub fn reduce(
    graph: &Graph,
    splits: &Splits,
    cfg: &ReduceConfig,
    device: Device,
    on_event: &mut dyn FnMut(&ReduceEvent),
) -> Result<(Graph, ReduceSummary)> {
    let t0 = Instant::now();
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if cfg.batch_size == 0
        || !positive(cfg.lr)
        || !cfg.mask_lr.is_none_or(positive)
        || !cfg.lambda.is_finite()
        || cfg.lambda < 0.0
    {
        return Err(bad("batch size and learning rates must be positive, lambda non-negative".into()));
    }
    if !(0.0..=1.0).contains(&cfg.mask_dropout) {
        return Err(bad("mask dropout must be in [0, 1]".into()));
    }
    if matches!(cfg.gate, GateKind::SpGrad(_)) && cfg.replacement != ReplacementKind::Identity {
        return Err(bad("the spgrad gate replaces ReLUs by the identity (use --replacement identity)".into()));
    }
    if splits.train.is_empty() || splits.test.is_empty() {
        return Err(bad("empty training or test split".into()));
    }
    check_fit(graph, &splits.train, &cfg.dataset)?;
    check_fit(graph, &splits.test, &cfg.dataset)?;
    tch::manual_seed(cfg.seed as i64);

    let (student, sites) = relu_to_masked(graph, cfg.replacement.site_replacement())?;
    if sites.is_empty() {
        return Err(bad("the model has no Relu to reduce".into()));
    }
    let total: usize = sites.iter().map(Site::len).sum();
    let budget = match cfg.budget {
        Budget::Count(n) => n as usize,
        Budget::Sparsity(s) if (0.0..=1.0).contains(&s) => ((1.0 - s) * total as f64).floor() as usize,
        Budget::Sparsity(s) => return Err(bad(format!("sparsity {s} is not in [0, 1]"))),
    };
    if budget > total {
        return Err(bad(format!("budget {budget} exceeds the model's {total} ReLUs")));
    }
    let before = site_counts(&student, &sites);
    let fixed_relus = TchModel::from_graph(&student, device)?.relu_count()? - total as u64;

    let teacher_model = TchModel::from_graph(graph, device)?;
    let stage = Stage { cfg, splits, teacher: cfg.distill.then_some(&teacher_model), device };
    let accuracy_before = stage.eval(&teacher_model)?;

    // ---- search ----
    let mut model = TchModel::from_graph(&student, device)?;
    set_coefficient_trainability(&mut model, &sites, cfg.replacement)?;
    let (mut kept, mut kept_acc): (Option<Graph>, f64) = (None, f64::NEG_INFINITY);
    let mut reached = false;
    let mut forced = false;
    let mut dapa_passes = 0;
    let mut mask_lr_used = None;
    // AutoReP: the kept epoch's masks and gate values, and its count.
    let mut kept_state: Vec<(Tensor, Tensor)> = Vec::new();
    let mut kept_count = 0usize;
    let mut filled = 0u64;
    match cfg.method {
        Method::Random => {
            for (s, m) in sites.iter().zip(random_masks(&sites, budget, cfg.seed ^ 0x7a4d, device)) {
                model.set_mask(&s.mask, m)?;
            }
            kept = Some(model.to_graph()?);
        }
        Method::AutoRep | Method::Snl => {
            let mode = if cfg.method == Method::AutoRep { Mode::AutoRep } else { Mode::Snl };
            let mut init = |s: &Site| {
                let shape: Vec<i64> = s.shape.iter().map(|&d| d as i64).collect();
                if mode == Mode::AutoRep {
                    Tensor::rand(shape.as_slice(), (Kind::Float, Device::Cpu))
                } else {
                    Tensor::ones(shape.as_slice(), (Kind::Float, Device::Cpu))
                }
            };
            let mut gates = Gates::new(&sites, mode, cfg.gate, cfg.replacement, device, cfg.seed, &mut init);
            gates.dapa_variance_quirk = cfg.dapa_variance_quirk;
            let gates = Rc::new(gates);
            model.act_hook = Some(gates.clone());
            let mut opt_w = Optimizer::new(OptimizerKind::adam(), 0.0);
            let mut opt_a = Optimizer::new(OptimizerKind::adam(), 0.0);
            let per =
                stage.batches(&Loader::new(&splits.train, cfg.norm.clone(), Augment::NONE, cfg.batch_size, device)?);
            let mask_lr = cfg.mask_lr.unwrap_or_else(|| auto_mask_lr(per * cfg.mask_epochs));
            mask_lr_used = Some(mask_lr);
            on_event(&ReduceEvent::Stage {
                stage: "search",
                epochs: cfg.mask_epochs,
                batches_per_epoch: per,
                mask_lr: Some(mask_lr),
            });
            let mut eta = cfg.snl_eta;
            let mut lowest = u64::MAX;
            let epochs = cfg.mask_epochs;
            for epoch in 1..=epochs {
                let te = Instant::now();
                let gate_params = gates.params();
                let names: Vec<(&str, &Tensor)> = gate_params.iter().map(|(n, t)| (n.as_str(), *t)).collect();
                let gref: Vec<&Tensor> = names.iter().map(|(_, t)| *t).collect();
                let mut extra = || -> Result<Option<Tensor>> {
                    Ok(Some(match mode {
                        Mode::AutoRep => {
                            let ms: Vec<Tensor> = gates.sites.iter().map(|s| s.m.borrow().shallow_clone()).collect();
                            let pairs: Vec<(&Tensor, &Tensor)> =
                                ms.iter().zip(&gates.sites).map(|(m, s)| (m, &s.param)).collect();
                            let d = math::density(&pairs, total)?;
                            math::budget_penalty(&d, budget, total, cfg.lambda)?
                        }
                        _ => {
                            let mut l1 = Tensor::zeros([], (Kind::Float, device));
                            for s in &gates.sites {
                                l1 = l1.f_add(&s.param.f_abs()?.f_sum(Kind::Float)?)?;
                            }
                            l1.f_mul_scalar(eta)?
                        }
                    }))
                };
                opt_w.zero_grad(&model);
                zero_grads(&gref);
                let mut step = |f: f64| -> Result<()> {
                    opt_w.step(&model, lr_at(cfg.lr, f))?;
                    opt_a.step_params(&names, lr_at(mask_lr, f))?;
                    opt_w.zero_grad(&model);
                    zero_grads(&gref);
                    Ok(())
                };
                let mut on_batch = |batch: usize, loss: f64| -> Result<()> {
                    let relu_count = gates.count()? + fixed_relus;
                    on_event(&ReduceEvent::Batch { stage: "search", epoch, batch, loss, relu_count });
                    Ok(())
                };
                let loss = stage.epoch(&model, epoch, epochs, epoch as u64, &mut extra, &mut step, &mut on_batch)?;
                let acc = stage.eval(&model)?;
                let count = gates.count()?;
                let mut is_kept = false;
                if mode == Mode::AutoRep && count as usize <= budget {
                    reached = true;
                    if acc > kept_acc {
                        for s in &gates.sites {
                            model.set_mask(&s.site.mask, s.m.borrow().shallow_clone())?;
                        }
                        kept = Some(model.to_graph()?);
                        kept_acc = acc;
                        is_kept = true;
                        kept_state =
                            gates.sites.iter().map(|s| (s.m.borrow().copy(), s.param.detach().copy())).collect();
                        kept_count = count as usize;
                    }
                }
                on_event(&ReduceEvent::Epoch(EpochInfo {
                    stage: "search",
                    epoch,
                    train_loss: loss,
                    test_accuracy: acc,
                    relu_count: count + fixed_relus,
                    seconds: te.elapsed().as_secs_f64(),
                    kept: is_kept,
                }));
                if mode == Mode::Snl {
                    if count < lowest {
                        lowest = count;
                    } else if epoch >= 5 {
                        eta *= 1.1;
                    }
                    if count as usize <= budget {
                        reached = true;
                        break;
                    }
                }
            }
            dapa_passes = gates.passes.get();
            if mode == Mode::Snl && reached && !cfg.fill_budget {
                // SNL's own binarisation: α ← 1[α > 1e-2] (at or under the budget once reached).
                for (s, g) in sites.iter().zip(&gates.sites) {
                    let m = g.param.detach().f_gt(SNL_THRESHOLD)?.f_to_kind(Kind::Float)?;
                    model.set_mask(&s.mask, m)?;
                }
                kept = Some(model.to_graph()?);
            } else if kept.is_none() {
                // Binarise at the budget: the top-`budget` gate values. AutoReP: forced (its search
                // never got within the budget). SNL: forced when the search ran out of epochs;
                // once it reached the budget, the elements with α > 1e-2 rank first, so this is
                // its threshold plus the ReLUs given back up to the budget (`filled`).
                forced = mode == Mode::AutoRep || !reached;
                if mode == Mode::Snl && reached {
                    filled = (budget as u64).saturating_sub(gates.count()?);
                }
                let scores: Vec<Tensor> = gates.sites.iter().map(|s| s.param.detach()).collect();
                for (s, m) in sites.iter().zip(top_k_masks(&scores, budget)?) {
                    model.set_mask(&s.mask, m)?;
                }
                kept = Some(model.to_graph()?);
            } else if mode == Mode::AutoRep && cfg.fill_budget && kept_count < budget {
                // The search overshot: give the ReLUs back to the masked elements with the largest
                // gates (the ones the loss pulled up most) until the count equals the budget.
                let mut scores = Vec::new();
                for (m, a) in &kept_state {
                    // Elements that keep their ReLU rank first; the others by gate value.
                    scores.push(a.f_where_self(&m.f_le(0.5)?, &a.f_full_like(f64::from(f32::MAX))?)?);
                }
                let mut m = TchModel::from_graph(kept.as_ref().expect("kept"), device)?;
                for (s, mask) in sites.iter().zip(top_k_masks(&scores, budget)?) {
                    m.set_mask(&s.mask, mask)?;
                }
                kept = Some(m.to_graph()?);
                filled = (budget - kept_count) as u64;
            }
            model.act_hook = None;
        }
    }

    // ---- finetune with frozen masks ----
    let start = kept.expect("set above");
    let mut model = TchModel::from_graph(&start, device)?;
    set_coefficient_trainability(&mut model, &sites, cfg.replacement)?;
    let mut frozen = Gates::new(&sites, Mode::Frozen, cfg.gate, cfg.replacement, device, cfg.seed, &mut |s| {
        Tensor::zeros([s.len() as i64], (Kind::Float, Device::Cpu))
    });
    frozen.mask_dropout = cfg.mask_dropout;
    frozen.dapa_variance_quirk = cfg.dapa_variance_quirk;
    frozen.passes.set(dapa_passes);
    let frozen = Rc::new(frozen);
    model.act_hook = Some(frozen.clone());
    let count = model.relu_count()?;
    let mut best = model.to_graph()?;
    let mut best_acc = stage.eval(&model)?;
    let mut opt = Optimizer::new(OptimizerKind::adam(), 0.0);
    if cfg.finetune_epochs > 0 {
        let per = stage.batches(&Loader::new(&splits.train, cfg.norm.clone(), Augment::NONE, cfg.batch_size, device)?);
        on_event(&ReduceEvent::Stage {
            stage: "finetune",
            epochs: cfg.finetune_epochs,
            batches_per_epoch: per,
            mask_lr: None,
        });
    }
    for epoch in 1..=cfg.finetune_epochs {
        let te = Instant::now();
        opt.zero_grad(&model);
        let mut step = |f: f64| -> Result<()> {
            opt.step(&model, lr_at(cfg.lr, f))?;
            opt.zero_grad(&model);
            Ok(())
        };
        let mut on_batch = |batch: usize, loss: f64| -> Result<()> {
            on_event(&ReduceEvent::Batch { stage: "finetune", epoch, batch, loss, relu_count: count });
            Ok(())
        };
        let loss = stage.epoch(
            &model,
            epoch,
            cfg.finetune_epochs,
            1_000 + epoch as u64,
            &mut || Ok(None),
            &mut step,
            &mut on_batch,
        )?;
        let acc = stage.eval(&model)?;
        let is_best = acc > best_acc;
        if is_best {
            best_acc = acc;
            best = model.to_graph()?;
        }
        on_event(&ReduceEvent::Epoch(EpochInfo {
            stage: "finetune",
            epoch,
            train_loss: loss,
            test_accuracy: acc,
            relu_count: count,
            seconds: te.elapsed().as_secs_f64(),
            kept: is_best,
        }));
    }

    // ---- fold c2's scale and write ----
    let scale = cfg.replacement.c2_scale();
    if scale != 1.0 {
        for s in &sites {
            if let Some(names) = &s.coefficients
                && let Some(c2) = best.initializers.get_mut(&names[0])
            {
                c2.mapv_inplace(|v| (f64::from(v) * scale) as f32);
            }
        }
    }
    let after = site_counts(&best, &sites);
    let layers: Vec<LayerCount> = sites
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(s, (&b, &a))| LayerCount { name: s.node.clone(), before: b, after: a })
        .collect();
    let relu_count = masq_ir::report::report(&best)?.relu_count;
    let final_acc = {
        let m = TchModel::from_graph(&best, device)?;
        evaluate(&m, &splits.test, &cfg.norm, cfg.eval_batch_size)?.accuracy
    };
    let mut summary = ReduceSummary {
        method: cfg.method,
        accuracy: final_acc,
        accuracy_before,
        relu_count,
        relu_before: total as u64 + fixed_relus,
        relu_budget: budget as u64,
        reached_budget: reached,
        forced,
        filled,
        layers,
        checkpoint: None,
        mask_lr: mask_lr_used,
        seconds: 0.0,
    };
    if let Some(d) = &cfg.out_dir {
        std::fs::create_dir_all(d).map_err(|e| TrainerError::io(d, e))?;
        let path = d.join("reduced.safetensors");
        let mut facts = Facts {
            dataset: Some(cfg.dataset.clone()),
            accuracy: Some(final_acc),
            relu_count: Some(relu_count),
            epoch: None,
            ..Facts::default()
        };
        let per: BTreeMap<&str, serde_json::Value> =
            summary.layers.iter().map(|l| (l.name.as_str(), json!({"before": l.before, "after": l.after}))).collect();
        facts.other.insert("relu_layers".into(), json!(per));
        facts.other.insert("relu_before".into(), json!(summary.relu_before));
        facts.other.insert("relu_budget".into(), json!(budget));
        facts.other.insert("accuracy_before".into(), json!(accuracy_before));
        facts.other.insert("mask_lr".into(), json!(mask_lr_used));
        facts.other.insert("method".into(), serde_json::to_value(cfg).unwrap_or_default());
        facts.set_normalisation(&cfg.norm);
        checkpoint::save_checkpoint(&path, &best, &facts)?;
        summary.checkpoint = Some(path);
    }
    summary.seconds = t0.elapsed().as_secs_f64();
    // Every Relu is now a MaskedAct.
    debug_assert!(best.nodes.iter().all(|n| !matches!(n.op, Op::Relu)));
    Ok((best, summary))
}
