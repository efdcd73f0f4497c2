//! Rotated ReLU channel pruning (docs/ALGORITHMS.md §6).
//!
//! Every ReLU that `masq_ir::prune::slopes::slope_sites` accepts gets a trainable slope per
//! channel, `y = a_c·ReLU(x)`, as a `Mul` after the ReLU. The network trains with the slopes; a
//! channel whose slope ends up small contributes little, and at `|a_c| <= ζ` it is declared dead:
//! its slope becomes 0, which makes the producing conv filter (with its BatchNorm channel and the
//! consumers' input slice) removable. The surviving slopes fold into the next layer's weights, so
//! the result is an ordinary, narrower graph with plain ReLUs.
//!
//! A [`run`]:
//! 1. inserts the slopes ([`SlopeInit::Random`]: a random sign times `1 + √3·z` redrawn until it
//!    lies in `[tan 35°, tan 55°]`; [`SlopeInit::Ones`] for a start from pretrained weights, where
//!    the slope graph computes what the given graph does);
//! 2. trains with SGD (momentum, weight decay on every trained tensor, slopes included) on a cosine
//!    schedule to 0 with an optional linear warm-up, and optionally pushes the slopes towards 0 by
//!    adding `s·sign(a)` to their gradients before each step. The two-step variant
//!    ([`RreluConfig::slope_epochs`]) first trains the slopes alone, thresholds them, freezes them
//!    (the dead ones at 0), and then trains the weights. With [`RreluConfig::distill`] every
//!    stage, the finetune included, also learns the starting model's softened outputs;
//! 3. picks ζ, compared with `|a|` or with `|a|` over its site's mean ([`Ranking`]), by
//!    [`Threshold`]: given; the one that removes a fraction of the sites' channels; or
//!    the largest one whose accuracy on a validation split held out from the training images
//!    stays within a tolerance of the unthresholded accuracy. The candidates are the sorted `|a|`;
//!    the search bisects on the number of removed channels (the accuracy need not be monotone in
//!    it: bisection keeps a count that passes next to one that fails). The test split is never
//!    looked at. Every site keeps at least one channel, its largest `|a|`, whatever ζ;
//! 4. zeroes the dead slopes, folds the slopes away (`fold_slopes`) and removes the dead filters
//!    (`prune_channels`); optionally finetunes the pruned graph;
//! 5. reports, in [`RreluSummary`], ζ and how it was chosen, channels per site, the per-conv
//!    changes, the seed code's parameter and FLOP counts (`masq_ir::prune::count`) and the
//!    `masq_ir::report` figures before and after, test accuracies along the way and the slopes'
//!    statistics.
//!
//! The thresholded slope graph and the pruned graph compute the same function (to float
//! rounding); [`run_detailed`] returns both, next to the trained slope graph.

mod init;
mod select;
mod stage;

use std::collections::BTreeSet;
use std::time::Instant;

use masq_ir::Graph;
use masq_ir::prune::count::{SeedCount, seed_count};
use masq_ir::prune::slopes::{SlopeSite, fold_slopes, insert_slopes, slope_name, slope_sites};
use masq_ir::prune::{ConvChange, DeadSet, prune_channels};
use serde::Serialize;
use tch::Device;

pub use init::{SLOPE_MAX, SLOPE_MIN, SlopeInit, init_slopes};
pub use select::{
    Channel, Ranking, Selection, SlopeStats, Slopes, UNDER_THRESHOLDS, Under, ValidationSize, apply_selection,
    removal_order, select_count, select_zeta, validation_split,
};

use crate::data::{Augment, Dataset, Normalisation, Splits};
use crate::error::{Result, TrainerError};
use crate::model::TchModel;
use crate::train::{check_fit, evaluate};
use stage::{StageSpec, model_slopes, train_stage};

/// The L1 push's default strength `s` (`grad_a += s·sign(a)`).
pub const DEFAULT_L1: f64 = 1e-4;
/// The validation rule's default tolerance, in accuracy points.
pub const DEFAULT_TOLERANCE: f64 = 0.5;

/// How ζ is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// This ζ: channels with `|a| <= ζ` die.
    Zeta(f32),
    /// The ζ that removes this fraction (in `[0, 1]`, rounded to a whole number of channels) of
    /// the slope sites' channels; exactly that many die (ties in `|a|`: earlier site and channel
    /// first). An error when it would empty a site.
    FilterSparsity(f64),
    /// The largest ζ whose validation accuracy is within `tolerance` accuracy points (0.5: half a
    /// percentage point) of the unthresholded slope graph's validation accuracy.
    Validation { tolerance: f64 },
}

/// Everything a run needs besides the graph and the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RreluConfig {
    pub init: SlopeInit,
    /// Epochs of joint training (weights and slopes); in the two-step variant, of the weights
    /// after the slopes are frozen.
    pub epochs: usize,
    /// Two-step variant: train the slopes alone for this many epochs first, then threshold and
    /// freeze them.
    pub slope_epochs: Option<usize>,
    /// Peak learning rate of SGD (cosine to 0).
    pub lr: f64,
    pub momentum: f64,
    /// L2 weight decay of every trained tensor, slopes included.
    pub weight_decay: f64,
    /// Linear warm-up of each training stage, in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// The L1 push on the slopes: `grad_a += s·sign(a)` before every step (see [`DEFAULT_L1`]).
    pub l1: Option<f64>,
    pub threshold: Threshold,
    /// What ζ is compared with: raw `|a|` or `|a|` relative to its site.
    pub ranking: Ranking,
    /// Train every stage against the given graph's outputs too: loss `CE + T²·KL(softmax(t/T) ‖
    /// softmax(s/T))` with the teacher `t` the starting model in evaluation mode.
    pub distill: bool,
    /// The distillation temperature `T`.
    pub temperature: f64,
    /// Size of the validation split held out from the training images; only the
    /// [`Threshold::Validation`] rule carves one (the others train on every training image).
    pub validation: ValidationSize,
    /// Epochs of training the pruned graph (0: none), on the same images as the slope training
    /// (the validation split stays held out).
    pub finetune_epochs: usize,
    /// Peak learning rate of the finetune (cosine to 0, no warm-up).
    pub finetune_lr: f64,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub seed: u64,
    /// Stop each epoch after this many batches (quick runs).
    pub max_batches: Option<usize>,
    pub augment: Augment,
    pub norm: Normalisation,
    /// Dataset name (for error messages).
    pub dataset: String,
}

impl RreluConfig {
    /// Defaults: random slopes, SGD 0.1 (momentum 0.9, weight decay 1e-4), 10 epochs, batch 128,
    /// no warm-up, no L1, one step, ζ on raw `|a|` by validation (0.5 points, 10% of the training
    /// images), no distillation (T = 4 when asked for), no finetune (its lr 0.01 when asked for).
    pub fn new(dataset: &str, norm: Normalisation, augment: Augment) -> Self {
        RreluConfig {
            init: SlopeInit::Random,
            epochs: 10,
            slope_epochs: None,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            warmup_epochs: 0.0,
            l1: None,
            threshold: Threshold::Validation { tolerance: DEFAULT_TOLERANCE },
            ranking: Ranking::Absolute,
            distill: false,
            temperature: 4.0,
            validation: ValidationSize::Fraction(0.1),
            finetune_epochs: 0,
            finetune_lr: 0.01,
            batch_size: 128,
            eval_batch_size: 500,
            seed: 0,
            max_batches: None,
            augment,
            norm,
            dataset: dataset.to_string(),
        }
    }
}

/// A training stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Weights and slopes together.
    Joint,
    /// Two-step, first step: the slopes alone.
    Slopes,
    /// Two-step, second step: the weights, slopes frozen.
    Weights,
    /// The pruned graph.
    Finetune,
}

impl Stage {
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Joint => "joint",
            Stage::Slopes => "slopes",
            Stage::Weights => "weights",
            Stage::Finetune => "finetune",
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RreluEpoch {
    pub stage: Stage,
    pub epoch: usize,
    /// Epochs of this stage.
    pub epochs: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    /// The learning rate of the epoch's last batch.
    pub lr: f64,
    /// The slopes after the epoch (`None` in the finetune, which has none).
    pub slopes: Option<SlopeStats>,
    pub train_seconds: f64,
}

/// One probe of the validation search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Probe {
    /// Channels removed (the first ones of the removal order).
    pub removed: usize,
    /// The largest `|a|` among them (0 for none).
    pub zeta: f32,
    pub accuracy: f64,
    /// Within the tolerance.
    pub ok: bool,
}

/// Progress of a run, handed to the caller's callback.
#[derive(Debug, Clone, PartialEq)]
pub enum RreluEvent {
    /// A training stage starts.
    Stage { stage: Stage, epochs: usize, batches_per_epoch: usize },
    /// A training batch finished; `loss` and `accuracy` are running means over the epoch.
    Batch { stage: Stage, epoch: usize, batch: usize, loss: f64, accuracy: f64, lr: f64 },
    /// An epoch finished (after its test evaluation).
    Epoch(RreluEpoch),
    /// The validation search evaluated one candidate.
    Probe(Probe),
    /// ζ is chosen: `removed` of `channels` slope channels die.
    Threshold { zeta: f32, removed: usize, channels: usize },
}

/// One slope site's channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteChange {
    pub relu: String,
    pub conv: String,
    pub before: usize,
    /// Channels alive after thresholding.
    pub after: usize,
}

/// `masq_ir::report` figures of a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub params: u64,
    pub macs: u64,
    pub relu_count: u64,
}

impl Counts {
    fn of(graph: &Graph) -> Result<Self> {
        let r = masq_ir::report::report(graph)?;
        Ok(Counts { params: r.params, macs: r.macs, relu_count: r.relu_count })
    }
}

/// The validation search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationOutcome {
    pub images: usize,
    /// In accuracy points.
    pub tolerance: f64,
    /// Validation accuracy of the unthresholded slope graph.
    pub baseline: f64,
    /// Validation accuracy at the chosen ζ.
    pub accuracy: f64,
    /// Every evaluated candidate, in evaluation order.
    pub probes: Vec<Probe>,
}

/// Epochs run per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct EpochsRun {
    pub joint: usize,
    pub slopes: usize,
    pub weights: usize,
    pub finetune: usize,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RreluSummary {
    /// The threshold: removed channels have `|a| <= zeta`.
    pub zeta: f32,
    /// The rule that chose it.
    pub threshold: Threshold,
    /// The validation search (the [`Threshold::Validation`] rule).
    pub validation: Option<ValidationOutcome>,
    /// Slope channels in all and removed.
    pub channels: usize,
    pub removed: usize,
    /// Channels at or under ζ kept as the last of their site.
    pub kept_by_floor: usize,
    pub sites: Vec<SiteChange>,
    /// Per conv, from `prune_channels`.
    pub convs: Vec<ConvChange>,
    pub seed_before: SeedCount,
    pub seed_after: SeedCount,
    /// `1 − pruned/full` of the seed counts.
    pub params_saving: f64,
    pub flops_saving: f64,
    pub report_before: Counts,
    pub report_after: Counts,
    /// Test accuracy of the given graph.
    pub accuracy_start: f64,
    /// Test accuracy of the slope graph after slope training, before thresholding (two-step:
    /// after the slope stage).
    pub accuracy_trained: f64,
    /// Test accuracy of the pruned graph (before the finetune).
    pub accuracy_pruned: f64,
    /// Test accuracy after the finetune, when one ran.
    pub accuracy_finetuned: Option<f64>,
    /// The slopes as initialised and after training (before thresholding).
    pub slopes_init: SlopeStats,
    pub slopes: SlopeStats,
    pub epochs: EpochsRun,
    pub seconds: f64,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RreluRun {
    /// The final graph (pruned, finetuned when asked): plain ReLUs, no slopes.
    pub graph: Graph,
    pub summary: RreluSummary,
    /// The slope sites, in node order.
    pub sites: Vec<SlopeSite>,
    /// The slope graph after training, before thresholding (two-step: with the dead slopes at 0
    /// since the slope stage).
    pub trained: Graph,
    /// `trained` with the dead channels' slopes at 0: what the pruned graph computes.
    pub thresholded: Graph,
    /// The pruned graph before the finetune.
    pub pruned: Graph,
    /// The dead filters handed to `prune_channels`.
    pub dead: DeadSet,
}

fn bad(reason: impl Into<String>) -> TrainerError {
    TrainerError::BadConfig { reason: reason.into() }
}

fn check_config(cfg: &RreluConfig) -> Result<()> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
        return Err(bad("batch sizes must be positive"));
    }
    if !positive(cfg.lr) || !positive(cfg.finetune_lr) {
        return Err(bad("learning rates must be positive"));
    }
    if !(0.0..1.0).contains(&cfg.momentum) {
        return Err(bad(format!("momentum {} is not in [0, 1)", cfg.momentum)));
    }
    if !cfg.weight_decay.is_finite() || cfg.weight_decay < 0.0 {
        return Err(bad("weight decay must be non-negative"));
    }
    if !cfg.warmup_epochs.is_finite() || cfg.warmup_epochs < 0.0 {
        return Err(bad("warm-up epochs must be non-negative"));
    }
    if cfg.distill && !positive(cfg.temperature) {
        return Err(bad(format!("the distillation temperature {} must be positive", cfg.temperature)));
    }
    if cfg.l1.is_some_and(|s| !s.is_finite() || s < 0.0) {
        return Err(bad("the L1 strength must be non-negative"));
    }
    match cfg.threshold {
        Threshold::Zeta(z) if !z.is_finite() || z < 0.0 => Err(bad(format!("ζ = {z} must be non-negative"))),
        Threshold::FilterSparsity(s) if !(0.0..=1.0).contains(&s) => {
            Err(bad(format!("filter sparsity {s} is not in [0, 1]")))
        }
        Threshold::Validation { tolerance } if !tolerance.is_finite() || tolerance < 0.0 => {
            Err(bad(format!("tolerance {tolerance} must be non-negative")))
        }
        _ => Ok(()),
    }
}

/// Put `slopes` into the model's slope tensors.
fn set_slopes(model: &mut TchModel, slopes: &Slopes) -> Result<()> {
    for (relu, v) in slopes {
        let name = slope_name(relu);
        let shape: Vec<usize> = model
            .tensor(&name)
            .ok_or_else(|| TrainerError::MissingValue { node: relu.clone(), input: name.clone() })?
            .size()
            .iter()
            .map(|&d| d as usize)
            .collect();
        let a = ndarray::ArrayD::from_shape_vec(shape, v.clone())
            .map_err(|e| bad(format!("{name}: {} slopes do not fit the tensor: {e}", v.len())))?;
        model.set_tensor(&name, &a)?;
    }
    Ok(())
}

/// `graph` with its slope initializers replaced by `slopes`.
fn with_slopes(graph: &Graph, slopes: &Slopes) -> Result<Graph> {
    let mut g = graph.clone();
    for (relu, v) in slopes {
        let name = slope_name(relu);
        let t = g.initializers.get_mut(&name).ok_or_else(|| bad(format!("the graph has no slope {name}")))?;
        if t.len() != v.len() {
            return Err(bad(format!("{name}: {} slopes for {} entries", v.len(), t.len())));
        }
        for (dst, &src) in t.iter_mut().zip(v) {
            *dst = src;
        }
    }
    Ok(g)
}

/// Choose the dead channels by the configured rule (the validation search evaluates on `val`).
fn choose(
    cfg: &RreluConfig,
    sites: &[SlopeSite],
    slopes: &Slopes,
    trained: &Graph,
    val: Option<&Dataset>,
    device: Device,
    on_event: &mut dyn FnMut(&RreluEvent),
) -> Result<(Selection, Option<ValidationOutcome>)> {
    let order = removal_order(sites, slopes, cfg.ranking)?;
    let channels: usize = sites.iter().map(|s| s.channels).sum();
    match cfg.threshold {
        Threshold::Zeta(z) => Ok((select_zeta(sites, slopes, &order, cfg.ranking, z)?, None)),
        Threshold::FilterSparsity(s) => {
            let k = (s * channels as f64).round() as usize;
            Ok((select_count(sites, slopes, &order, cfg.ranking, k)?, None))
        }
        Threshold::Validation { tolerance } => {
            let val = val.ok_or_else(|| bad("the validation rule needs a validation split"))?;
            let (k, outcome) =
                validation_search(cfg, sites, slopes, &order, trained, val, tolerance, device, on_event)?;
            Ok((select_count(sites, slopes, &order, cfg.ranking, k)?, Some(outcome)))
        }
    }
}

/// The largest number of channels (in removal order) whose removal keeps the validation accuracy
/// within `tolerance` points of the unthresholded one, by bisection: all of them when that
/// passes, else a count that passes next to one that fails.
#[allow(clippy::too_many_arguments)]
fn validation_search(
    cfg: &RreluConfig,
    sites: &[SlopeSite],
    slopes: &Slopes,
    order: &[Channel],
    trained: &Graph,
    val: &Dataset,
    tolerance: f64,
    device: Device,
    on_event: &mut dyn FnMut(&RreluEvent),
) -> Result<(usize, ValidationOutcome)> {
    let mut model = TchModel::from_graph(trained, device)?;
    let mut accuracy_at = |k: usize| -> Result<(f64, f32)> {
        let sel = select_count(sites, slopes, order, cfg.ranking, k)?;
        set_slopes(&mut model, &apply_selection(slopes, &sel.dead))?;
        Ok((evaluate(&model, val, &cfg.norm, cfg.eval_batch_size)?.accuracy, sel.zeta))
    };
    let (baseline, _) = accuracy_at(0)?;
    let first = Probe { removed: 0, zeta: 0.0, accuracy: baseline, ok: true };
    on_event(&RreluEvent::Probe(first));
    let mut probes = vec![first];
    let mut probe = |k: usize| -> Result<bool> {
        let (accuracy, zeta) = accuracy_at(k)?;
        let p = Probe { removed: k, zeta, accuracy, ok: accuracy >= baseline - tolerance / 100.0 };
        on_event(&RreluEvent::Probe(p));
        probes.push(p);
        Ok(p.ok)
    };
    let n = order.len();
    let k = if n == 0 || probe(n)? {
        n
    } else {
        // `lo` passes, `hi` fails; every count probed once.
        let (mut lo, mut hi) = (0, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if probe(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let accuracy = probes.iter().find(|p| p.removed == k).map_or(baseline, |p| p.accuracy);
    Ok((k, ValidationOutcome { images: val.len(), tolerance, baseline, accuracy, probes }))
}

/// Insert slopes, train, threshold, fold and prune, optionally finetune; see the module docs.
/// Returns the pruned graph (plain ReLUs) and the summary.
pub fn run(
    graph: &Graph,
    splits: &Splits,
    cfg: &RreluConfig,
    device: Device,
    on_event: &mut dyn FnMut(&RreluEvent),
) -> Result<(Graph, RreluSummary)> {
    let r = run_detailed(graph, splits, cfg, device, on_event)?;
    Ok((r.graph, r.summary))
}

/// [`run`], also returning the intermediate graphs and the dead set.
pub fn run_detailed(
    graph: &Graph,
    splits: &Splits,
    cfg: &RreluConfig,
    device: Device,
    on_event: &mut dyn FnMut(&RreluEvent),
) -> Result<RreluRun> {
    let t0 = Instant::now();
    check_config(cfg)?;
    if splits.train.is_empty() || splits.test.is_empty() {
        return Err(bad("empty training or test split"));
    }
    check_fit(graph, &splits.train, &cfg.dataset)?;
    check_fit(graph, &splits.test, &cfg.dataset)?;
    tch::manual_seed(cfg.seed as i64);

    let sites = slope_sites(graph)?;
    if sites.is_empty() {
        return Err(bad(format!("{} has no ReLU whose channels can carry slopes", graph.name)));
    }
    let channels: usize = sites.iter().map(|s| s.channels).sum();
    let init = init_slopes(&sites, cfg.init, cfg.seed);
    let slopes_init = SlopeStats::of(&init);
    let slope_graph = insert_slopes(graph, &init)?;
    let names: Vec<(String, String)> = sites.iter().map(|s| (s.relu.clone(), slope_name(&s.relu))).collect();

    let accuracy_start =
        evaluate(&TchModel::from_graph(graph, device)?, &splits.test, &cfg.norm, cfg.eval_batch_size)?.accuracy;
    let held_out = match cfg.threshold {
        Threshold::Validation { .. } => Some(validation_split(&splits.train, cfg.validation, cfg.seed)?),
        _ => None,
    };
    let (train_set, val) = match &held_out {
        Some((rest, val)) => (rest, Some(val)),
        None => (&splits.train, None),
    };

    // ---- training ----
    let teacher = if cfg.distill { Some(TchModel::from_graph(graph, device)?) } else { None };
    let mut model = TchModel::from_graph(&slope_graph, device)?;
    for (_, n) in &names {
        model.set_trainable(n, true)?;
    }
    let slope_set: BTreeSet<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
    let weights: Vec<String> =
        model.trainable().iter().map(|(n, _)| n.to_string()).filter(|n| !slope_set.contains(n.as_str())).collect();
    let mut epochs = EpochsRun::default();
    let spec = |stage, epochs, l1| StageSpec {
        stage,
        epochs,
        lr: cfg.lr,
        warmup_epochs: cfg.warmup_epochs,
        l1,
        slopes: &names,
        teacher: teacher.as_ref(),
    };
    let (selection, validation, slopes, accuracy_trained, trained) = match cfg.slope_epochs {
        None => {
            let acc =
                train_stage(&model, &spec(Stage::Joint, cfg.epochs, cfg.l1), train_set, &splits.test, cfg, on_event)?;
            epochs.joint = cfg.epochs;
            let slopes = model_slopes(&model, &names)?;
            let trained = model.to_graph()?;
            let acc = match acc {
                Some(a) => a,
                None => evaluate(&model, &splits.test, &cfg.norm, cfg.eval_batch_size)?.accuracy,
            };
            let (sel, v) = choose(cfg, &sites, &slopes, &trained, val, device, on_event)?;
            (sel, v, slopes, acc, trained)
        }
        Some(slope_epochs) => {
            for w in &weights {
                model.set_trainable(w, false)?;
            }
            let acc = train_stage(
                &model,
                &spec(Stage::Slopes, slope_epochs, cfg.l1),
                train_set,
                &splits.test,
                cfg,
                on_event,
            )?;
            epochs.slopes = slope_epochs;
            let slopes = model_slopes(&model, &names)?;
            let acc = match acc {
                Some(a) => a,
                None => evaluate(&model, &splits.test, &cfg.norm, cfg.eval_batch_size)?.accuracy,
            };
            let (sel, v) = choose(cfg, &sites, &slopes, &model.to_graph()?, val, device, on_event)?;
            set_slopes(&mut model, &apply_selection(&slopes, &sel.dead))?;
            for (_, n) in &names {
                model.set_trainable(n, false)?;
            }
            for w in &weights {
                model.set_trainable(w, true)?;
            }
            train_stage(&model, &spec(Stage::Weights, cfg.epochs, None), train_set, &splits.test, cfg, on_event)?;
            epochs.weights = cfg.epochs;
            (sel, v, slopes, acc, model.to_graph()?)
        }
    };
    on_event(&RreluEvent::Threshold { zeta: selection.zeta, removed: selection.removed, channels });

    // ---- thresholding, folding, pruning ----
    let thresholded = with_slopes(&trained, &apply_selection(&slopes, &selection.dead))?;
    // Dead slopes are exactly 0 and no surviving one is: ζ = 0 folds exactly the selection.
    let (folded, dead) = fold_slopes(&thresholded, 0.0)?;
    let expected: DeadSet = sites
        .iter()
        .filter_map(|s| selection.dead.get(&s.relu).filter(|d| !d.is_empty()).map(|d| (s.conv.clone(), d.clone())))
        .collect();
    let nonempty: DeadSet = dead.iter().filter(|(_, d)| !d.is_empty()).map(|(c, d)| (c.clone(), d.clone())).collect();
    if nonempty != expected {
        return Err(TrainerError::Model(masq_ir::IrError::InvalidGraph {
            reason: format!("fold_slopes marked {nonempty:?} dead, the threshold chose {expected:?}"),
        }));
    }
    let pruned = prune_channels(&folded, &dead)?;
    if let Some(n) = pruned.graph.initializers.keys().find(|n| slope_set.contains(n.as_str())) {
        return Err(TrainerError::Model(masq_ir::IrError::InvalidGraph {
            reason: format!("slope {n} survived folding"),
        }));
    }
    let accuracy_pruned =
        evaluate(&TchModel::from_graph(&pruned.graph, device)?, &splits.test, &cfg.norm, cfg.eval_batch_size)?.accuracy;

    // ---- finetune ----
    let (graph_out, accuracy_finetuned) = if cfg.finetune_epochs > 0 {
        let ft = TchModel::from_graph(&pruned.graph, device)?;
        let fspec = StageSpec {
            stage: Stage::Finetune,
            epochs: cfg.finetune_epochs,
            lr: cfg.finetune_lr,
            warmup_epochs: 0.0,
            l1: None,
            slopes: &[],
            teacher: teacher.as_ref(),
        };
        let acc = train_stage(&ft, &fspec, train_set, &splits.test, cfg, on_event)?;
        epochs.finetune = cfg.finetune_epochs;
        (ft.to_graph()?, acc)
    } else {
        (pruned.graph.clone(), None)
    };

    let seed_before = seed_count(graph)?;
    let seed_after = seed_count(&graph_out)?;
    let (params_saving, flops_saving) = seed_before.savings(&seed_after);
    let site_changes = sites
        .iter()
        .map(|s| SiteChange {
            relu: s.relu.clone(),
            conv: s.conv.clone(),
            before: s.channels,
            after: s.channels - selection.dead.get(&s.relu).map_or(0, BTreeSet::len),
        })
        .collect();
    let summary = RreluSummary {
        zeta: selection.zeta,
        threshold: cfg.threshold,
        validation,
        channels,
        removed: selection.removed,
        kept_by_floor: selection.kept_by_floor,
        sites: site_changes,
        convs: pruned.convs.clone(),
        seed_before,
        seed_after,
        params_saving,
        flops_saving,
        report_before: Counts::of(graph)?,
        report_after: Counts::of(&graph_out)?,
        accuracy_start,
        accuracy_trained,
        accuracy_pruned,
        accuracy_finetuned,
        slopes_init,
        slopes: SlopeStats::of(&slopes),
        epochs,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(RreluRun { graph: graph_out, summary, sites, trained, thresholded, pruned: pruned.graph, dead })
}
