//! Unstructured weight pruning (docs/ALGORITHMS.md §7): reweighted L1 with a fixed-mask retrain,
//! and unstructured magnitude pruning as its baseline.
//!
//! A [`run`]:
//! 1. **Phase 1** ([`reweighted`], `train_epochs` = E1 epochs from the given weights): Adam on
//!    `CE + α·Σ_conv Σ|P ⊙ W|`, `P = 1/(|W_old| + ε)` refreshed at the epochs starting at 0.2,
//!    0.4, 0.6 and 0.8 of the run, learning rate ×1.6 there and ×`0.98^(300/E1)` at every other
//!    epoch ([`schedule`] has the exact rounding). [`Method::Mag`] runs the same phase with
//!    `α = 0` (plain Adam on the same schedule; E1 may be 0 for it, pruning the given weights);
//!    [`Method::ReweightedL1`] needs E1 ≥ 1.
//! 2. **Threshold** ([`mask`]): zero every Conv and Gemm weight with `|w| < T` (default 1e-4), or
//!    exactly `⌊S·N⌋` of them, the smallest (globally by default, or `⌊S·N_l⌋` per tensor).
//!    Biases and BatchNorm are never zeroed.
//! 3. **Phase 2** ([`retrain`], `epochs` = E2 epochs): Adam with the mask `W ≠ 0` fixed
//!    (gradients masked before every step, weights re-masked after it), warm-up from 1e-4 to 1e-3,
//!    then a per-iteration cosine to 4e-8.
//! 4. The result has the structure of the given graph with zeros in its weights; [`report`]
//!    measures them per tensor and in all ([`WeightSparsity`]), and with `out_dir` the run writes
//!    `out_dir/pruned.safetensors` (atomically) whose facts carry that table under
//!    `masq.weight_sparsity`, next to the method, target and accuracies.
//!
//! Everything trains on the training split; accuracies are on the test split. With secret weights
//! a zero costs a 2PC inference what any weight costs, so unstructured pruning does not change the
//! secure costs (it saves storage and plaintext work only).
//!
//! ```no_run
//! use masq_trainer::data::{DatasetKind, SyntheticConfig, synthetic};
//! use masq_trainer::prune::sparse::{SparseConfig, Target, run};
//! let splits = synthetic(&SyntheticConfig::default());
//! let graph = masq_ir::zoo::build("cnn_small", None, 0).unwrap();
//! let kind = DatasetKind::Synthetic;
//! let mut cfg = SparseConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
//! cfg.target = Target::WeightSparsity(0.8);
//! cfg.train_epochs = 10;
//! cfg.epochs = 10;
//! let (pruned, s) = run(&graph, &splits, &cfg, tch::Device::Cpu, &mut |_| {}).unwrap();
//! println!("{:.1}% of the weights are 0, accuracy {:.2}%", 100.0 * s.sparsity.sparsity, 100.0 * s.accuracy);
//! # let _ = pruned;
//! ```

pub mod mask;
pub mod report;
pub mod retrain;
pub mod reweighted;
pub mod schedule;
mod stage;

use std::path::PathBuf;
use std::time::Instant;

use masq_ir::Graph;
use masq_ir::checkpoint::{self, Facts};
use serde::Serialize;
use serde_json::json;
use tch::Device;

pub use mask::{DEFAULT_THRESHOLD, Selection, Target, WeightLayer, apply, conv_l1, select, weight_layers};
pub use report::{LayerSparsity, SPARSITY_FACT, WeightSparsity};
pub use retrain::{retrain, retrain_schedule};
pub use reweighted::reweight;
pub use schedule::{RetrainSchedule, phase1_lrs, refresh_epochs, warmup_iterations};

use super::flow::Method;
use super::select::Scope;
use crate::data::{Augment, Normalisation, Splits};
use crate::error::{Result, TrainerError};
use crate::model::TchModel;
use crate::train::{check_fit, evaluate};

/// Everything a run needs besides the graph and the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SparseConfig {
    /// [`Method::ReweightedL1`] or [`Method::Mag`] (phase 1 with `α = 0`).
    pub method: Method,
    pub target: Target,
    /// Where a [`Target::WeightSparsity`] takes its smallest weights.
    pub scope: Scope,
    /// Phase 1 epochs (E1).
    pub train_epochs: usize,
    /// Phase 2 epochs (E2; 0: no retrain).
    pub epochs: usize,
    /// Penalty strength α (reweighted L1 only).
    pub alpha: f64,
    /// ε of `P = 1/(|W_old| + ε)`.
    pub epsilon: f64,
    /// Phase 1's learning rate at epoch 1.
    pub lr: f64,
    /// Phase 2's peak learning rate (after the warm-up).
    pub retrain_lr: f64,
    /// Phase 2's first learning rate (warm-up start).
    pub warmup_lr: f64,
    /// Phase 2's cosine end.
    pub final_lr: f64,
    /// Adam's L2 weight decay, both phases.
    pub weight_decay: f64,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub seed: u64,
    /// Stop each epoch after this many batches (quick runs).
    pub max_batches: Option<usize>,
    /// Both phases add `T²·KL(softmax(t/T) ‖ softmax(s/T))`, the teacher `t` being the starting
    /// (unpruned) model in evaluation mode.
    pub distill: bool,
    /// The distillation temperature `T`.
    pub temperature: f64,
    pub augment: Augment,
    pub norm: Normalisation,
    /// Dataset name (checkpoint facts, error messages).
    pub dataset: String,
    /// Where `pruned.safetensors` goes; `None`: nothing written.
    pub out_dir: Option<PathBuf>,
}

/// The specification's penalty strength α.
pub const DEFAULT_ALPHA: f64 = 1e-6;
/// The specification's ε.
pub const DEFAULT_EPSILON: f64 = 1e-3;

impl SparseConfig {
    /// The specification's settings: reweighted L1, threshold 1e-4 (global), α = 1e-6,
    /// ε = 1e-3, Adam 1e-3 in both phases with the retrain's warm-up from 1e-4 and cosine to 4e-8,
    /// batch 64, no weight decay; 10 epochs per phase (the specification runs 300 each).
    pub fn new(dataset: &str, norm: Normalisation, augment: Augment) -> Self {
        SparseConfig {
            method: Method::ReweightedL1,
            target: Target::Threshold(DEFAULT_THRESHOLD),
            scope: Scope::Global,
            train_epochs: 10,
            epochs: 10,
            alpha: DEFAULT_ALPHA,
            epsilon: DEFAULT_EPSILON,
            lr: 1e-3,
            retrain_lr: 1e-3,
            warmup_lr: 1e-4,
            final_lr: 4e-8,
            weight_decay: 0.0,
            batch_size: 64,
            eval_batch_size: 500,
            seed: 0,
            max_batches: None,
            distill: false,
            temperature: 4.0,
            augment,
            norm,
            dataset: dataset.to_string(),
            out_dir: None,
        }
    }

    /// Phase 1's penalty strength: α for reweighted L1, 0 for the magnitude baseline.
    pub fn phase1_alpha(&self) -> f64 {
        if self.method == Method::ReweightedL1 { self.alpha } else { 0.0 }
    }

    /// Reject settings that do not make sense (the data is checked by [`run`]).
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(TrainerError::BadConfig { reason });
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !matches!(self.method, Method::ReweightedL1 | Method::Mag) {
            return bad(format!(
                "{} is a filter-pruning method; unstructured pruning takes reweighted-l1 or mag",
                self.method.name()
            ));
        }
        self.target.check()?;
        if self.method == Method::ReweightedL1 && self.train_epochs == 0 {
            return bad("reweighted-l1 needs train_epochs ≥ 1 (the penalised phase; with 0 it is \
                        magnitude pruning, method mag)"
                .into());
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(format!("alpha {} must be a non-negative number", self.alpha));
        }
        if !positive(self.epsilon) {
            return bad(format!("epsilon {} must be positive", self.epsilon));
        }
        if !positive(self.lr) || !positive(self.retrain_lr) || !positive(self.warmup_lr) {
            return bad("learning rates must be positive".into());
        }
        if !(self.final_lr.is_finite() && self.final_lr >= 0.0) {
            return bad(format!("final learning rate {} must be non-negative", self.final_lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight decay must be non-negative".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch sizes must be positive".into());
        }
        if self.distill && !positive(self.temperature) {
            return bad(format!("the distillation temperature {} must be positive", self.temperature));
        }
        Ok(())
    }
}

/// A phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Phase 1 with the penalty.
    Reweight,
    /// Phase 1 without it (the magnitude baseline).
    Train,
    /// Phase 2.
    Retrain,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Reweight => "reweight",
            Stage::Train => "train",
            Stage::Retrain => "retrain",
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SparseEpoch {
    pub stage: Stage,
    pub epoch: usize,
    /// Epochs of this phase.
    pub epochs: usize,
    /// The learning rate of the epoch's last batch (phase 1: of the whole epoch).
    pub lr: f64,
    /// Phase 1: a refresh epoch (`P` recomputed at its first batch, learning rate ×1.6).
    pub refreshed: bool,
    /// Mean cross-entropy over the epoch's images.
    pub train_loss: f64,
    /// Mean penalty `α·Σ|P ⊙ W|` over the epoch's batches (0 without one).
    pub penalty: f64,
    pub train_accuracy: f64,
    /// `Σ|W|` of the Conv weights after the epoch.
    pub conv_l1: f64,
    pub test_accuracy: f64,
    pub train_seconds: f64,
}

/// Progress of a run, handed to the caller's callback.
#[derive(Debug, Clone, PartialEq)]
pub enum SparseEvent {
    /// A phase starts.
    Stage { stage: Stage, epochs: usize, batches_per_epoch: usize },
    /// A batch finished; `loss` (cross-entropy, plus the distillation term when distilling) and `accuracy` are running means over the epoch.
    Batch { stage: Stage, epoch: usize, batch: usize, loss: f64, accuracy: f64, lr: f64 },
    /// An epoch finished (after its test evaluation).
    Epoch(SparseEpoch),
    /// The weights are thresholded: `zeroed` of `weights` set to 0, test accuracy before retraining.
    Thresholded { threshold: f32, zeroed: usize, weights: usize, accuracy: f64 },
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SparseSummary {
    pub method: Method,
    pub settings: SparseConfig,
    /// The threshold applied: `T`, or for a sparsity the largest `|w|` zeroed.
    pub threshold: f32,
    /// Weights the threshold zeroed (already-zero ones under it included).
    pub zeroed: usize,
    /// The zeros of the returned graph, per tensor and in all.
    pub sparsity: WeightSparsity,
    /// Phase 1's refresh epochs.
    pub refresh_epochs: Vec<usize>,
    /// Phase 2's schedule (`None` without a retrain).
    pub retrain_schedule: Option<RetrainSchedule>,
    /// `Σ|W|` of the Conv weights: given, after phase 1.
    pub conv_l1_start: f64,
    pub conv_l1_trained: f64,
    /// Test accuracy of the given graph.
    pub accuracy_start: f64,
    /// After phase 1, before thresholding (`None` without phase 1).
    pub accuracy_trained: Option<f64>,
    /// After thresholding, before retraining.
    pub accuracy_thresholded: f64,
    /// After phase 2 (`None` without it).
    pub accuracy_retrained: Option<f64>,
    /// Of the returned graph.
    pub accuracy: f64,
    pub checkpoint: Option<PathBuf>,
    pub seconds: f64,
}

/// Phase 1, threshold, phase 2 (see the module docs); returns the pruned graph and the summary.
pub fn run(
    graph: &Graph,
    splits: &Splits,
    cfg: &SparseConfig,
    device: Device,
    on_event: &mut dyn FnMut(&SparseEvent),
) -> Result<(Graph, SparseSummary)> {
    let t0 = Instant::now();
    cfg.check()?;
    if splits.train.is_empty() || splits.test.is_empty() {
        return Err(TrainerError::BadConfig { reason: "empty training or test split".into() });
    }
    check_fit(graph, &splits.train, &cfg.dataset)?;
    check_fit(graph, &splits.test, &cfg.dataset)?;
    let layers = weight_layers(graph)?;
    if layers.is_empty() {
        return Err(TrainerError::BadConfig { reason: format!("model {} has no Conv or Gemm weights", graph.name) });
    }
    tch::manual_seed(cfg.seed as i64);
    let eval = |g: &Graph| -> Result<f64> {
        Ok(evaluate(&TchModel::from_graph(g, device)?, &splits.test, &cfg.norm, cfg.eval_batch_size)?.accuracy)
    };
    let accuracy_start = eval(graph)?;
    let teacher = cfg.distill.then_some(graph);

    let (trained, accuracy_trained) = if cfg.train_epochs > 0 {
        reweight(graph, splits, cfg, cfg.phase1_alpha(), teacher, device, on_event)?
    } else {
        (graph.clone(), None)
    };

    let selection = select(&trained, &layers, cfg.target, cfg.scope)?;
    let thresholded = apply(&trained, &selection)?;
    let accuracy_thresholded = eval(&thresholded)?;
    let weights: usize = layers.iter().map(|l| l.len).sum();
    on_event(&SparseEvent::Thresholded {
        threshold: selection.threshold,
        zeroed: selection.count,
        weights,
        accuracy: accuracy_thresholded,
    });

    let (out, accuracy_retrained) = retrain(&thresholded, &layers, splits, cfg, teacher, device, on_event)?;
    let sparsity = WeightSparsity::measure(&out, &layers)?;
    let mut summary = SparseSummary {
        method: cfg.method,
        settings: cfg.clone(),
        threshold: selection.threshold,
        zeroed: selection.count,
        sparsity,
        refresh_epochs: refresh_epochs(cfg.train_epochs),
        retrain_schedule: (cfg.epochs > 0).then(|| retrain_schedule(splits, cfg)),
        conv_l1_start: conv_l1(graph),
        conv_l1_trained: conv_l1(&trained),
        accuracy_start,
        accuracy_trained,
        accuracy_thresholded,
        accuracy_retrained,
        accuracy: accuracy_retrained.unwrap_or(accuracy_thresholded),
        checkpoint: None,
        seconds: 0.0,
    };
    if let Some(d) = &cfg.out_dir {
        std::fs::create_dir_all(d).map_err(|e| TrainerError::io(d, e))?;
        let path = d.join("pruned.safetensors");
        checkpoint::save_checkpoint(&path, &out, &facts(&out, &summary)?)?;
        summary.checkpoint = Some(path);
    }
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok((out, summary))
}

/// The checkpoint facts of a run's result: dataset, accuracy, ReLU count, normalisation, and
/// `prune_method`, `prune_target`, `prune_scope`, `prune_threshold`, `weight_sparsity` (the
/// per-tensor table, [`WeightSparsity::from_facts`] reads it back), `accuracy_unpruned`,
/// `accuracy_thresholded`, `prune_settings`.
pub fn facts(graph: &Graph, s: &SparseSummary) -> Result<Facts> {
    let cfg = &s.settings;
    let mut facts = Facts {
        dataset: Some(cfg.dataset.clone()),
        accuracy: Some(s.accuracy),
        relu_count: Some(masq_ir::report::report(graph)?.relu_count),
        ..Facts::default()
    };
    let other = &mut facts.other;
    other.insert("prune_method".into(), json!(s.method.name()));
    other.insert("prune_target".into(), serde_json::to_value(cfg.target).unwrap_or_default());
    other.insert("prune_scope".into(), json!(cfg.scope.name()));
    other.insert("prune_threshold".into(), json!(s.threshold));
    other.insert("accuracy_unpruned".into(), json!(s.accuracy_start));
    other.insert("accuracy_thresholded".into(), json!(s.accuracy_thresholded));
    other.insert("prune_settings".into(), serde_json::to_value(cfg).unwrap_or_default());
    s.sparsity.record(&mut facts);
    facts.set_normalisation(&cfg.norm);
    Ok(facts)
}
