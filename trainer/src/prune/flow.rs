//! The pruning run: optional training, scoring or search, surgery at the rewind point, retraining,
//! and the figures before and after.
//!
//! 1. `θ0` is the given graph's weights. With `train_epochs > 0` it trains that long
//!    ([`crate::train::train`] with [`PruneConfig::train`]), keeping `θ0`, the state after epoch `k`
//!    (for [`Rewind::Epoch`]; the run stops after epoch `k` and resumes from its checkpoint, so the
//!    schedule spans all epochs) and the final state.
//! 2. The dead set: [`Method::Mag`] scores the final weights, [`Method::MagSign`] the final weights
//!    against `θ0`, [`Method::Snip`] `θ0` on one training batch, [`Method::Random`] a seed, each
//!    selected at the sparsity in its [`Scope`]; [`Method::Sa`] anneals a mask whose objective is
//!    the network at the rewind weights on batches of a validation split carved from the training
//!    split (never the test split). The search is over all considered filters at once, so it
//!    ignores the scope.
//! 3. `masq_ir::prune::prune_channels` at the rewind weights.
//! 4. Retraining for `epochs` epochs ([`PruneConfig::retrain`]; 0: none).
//!
//! Everything trains on the training split less the validation images (held out for
//! [`Method::Sa`] only); accuracies are on the test split. MagSign needs `train_epochs ≥ 1`: without
//! training the final weights are `θ0` and it would equal magnitude.

use std::path::PathBuf;
use std::time::Instant;

use masq_ir::Graph;
use masq_ir::checkpoint::{self, Facts};
use masq_ir::prune::count::{SeedCount, seed_count};
use masq_ir::prune::{ConvChange, DeadSet, prune_channels};
use serde::Serialize;
use serde_json::json;
use tch::Device;

use super::holdout::hold_out;
use super::masked::{MaskedModel, eval_batches};
use super::sa::{SaConfig, SaEvent, SaStats, anneal};
use super::scores::{considered_sites, magnitude, magsign, random, snip};
use super::select::{Scope, check_sparsity, dead_len, dead_target, mask_to_dead, max_dead, select};
use crate::data::{Augment, Normalisation, Splits};
use crate::error::{Result, TrainerError};
use crate::model::TchModel;
use crate::train::{Event, TrainConfig, check_fit, evaluate, train};

/// Seed offsets of the run's random choices (all derived from [`PruneConfig::seed`]).
const HOLDOUT_SEED: u64 = 0x7661_6c69;
const SNIP_SEED: u64 = 0x736e_6970;
const RANDOM_SEED: u64 = 0x7261_6e64;
const SA_SEED: u64 = 0x5341_5341;

/// How the dead filters are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Smallest L1 norm of the final weights.
    Mag,
    /// Smallest L1 norm over the weights whose sign training kept.
    MagSign,
    /// Smallest SNIP sensitivity at initialisation.
    Snip,
    /// Seeded random scores.
    Random,
    /// Simulated annealing (docs/ALGORITHMS.md §8).
    Sa,
    /// Reweighted L1, unstructured (docs/ALGORITHMS.md §7): not a filter method; it runs through
    /// [`super::sparse::run`], which also runs [`Method::Mag`] at a weight sparsity.
    #[serde(rename = "reweighted-l1")]
    ReweightedL1,
}

impl Method {
    pub const NAMES: &'static [&'static str] = &["mag", "magsign", "snip", "random", "sa", "reweighted-l1"];

    /// A name of [`Self::NAMES`] (also `magnitude`, `mag-sign`, `anneal`, `reweighted`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "mag" | "magnitude" | "l1" => Ok(Method::Mag),
            "magsign" | "mag-sign" => Ok(Method::MagSign),
            "snip" => Ok(Method::Snip),
            "random" => Ok(Method::Random),
            "sa" | "anneal" | "simulated-annealing" => Ok(Method::Sa),
            "reweighted-l1" | "reweighted" | "rl1" => Ok(Method::ReweightedL1),
            _ => Err(bad(format!("unknown pruning method {s:?} ({})", Self::NAMES.join(", ")))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Mag => "mag",
            Method::MagSign => "magsign",
            Method::Snip => "snip",
            Method::Random => "random",
            Method::Sa => "sa",
            Method::ReweightedL1 => "reweighted-l1",
        }
    }
}

/// Which weights the pruned network starts from (and SA's objective runs at).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rewind {
    /// `θ0`, the given graph's weights.
    Init,
    /// The state after this many training epochs (0 = `Init`, `train_epochs` = `Final`).
    Epoch(usize),
    /// The state after `train_epochs`.
    Final,
}

impl Rewind {
    /// `init`, `final`, `epoch:K` or `K`.
    pub fn parse(s: &str) -> Result<Self> {
        let l = s.trim().to_ascii_lowercase();
        match l.as_str() {
            "init" | "initial" => return Ok(Rewind::Init),
            "final" | "last" => return Ok(Rewind::Final),
            _ => {}
        }
        let k = l.strip_prefix("epoch:").or_else(|| l.strip_prefix("epoch")).unwrap_or(&l);
        k.trim()
            .parse::<usize>()
            .map(Rewind::Epoch)
            .map_err(|_| bad(format!("unknown rewind point {s:?} (init, final, epoch:K)")))
    }

    /// The epoch it names for a run of `train_epochs`.
    pub fn epoch(self, train_epochs: usize) -> usize {
        match self {
            Rewind::Init => 0,
            Rewind::Epoch(k) => k,
            Rewind::Final => train_epochs,
        }
    }
}

/// Everything a pruning run needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneConfig {
    pub method: Method,
    /// Fraction of the considered filters removed, in `[0, 1)`: `⌊S·F⌋` per conv, or `⌊S·ΣF⌋` in
    /// all (global scope and SA), at most `ΣF − #convs` as every conv keeps a filter.
    pub sparsity: f64,
    /// Where the lowest scores are taken (not used by [`Method::Sa`]).
    pub scope: Scope,
    /// Score every conv, also those whose filters cannot be removed on their own (they are zeroed).
    pub include_all_convs: bool,
    /// Training before pruning (0: the given weights are `θ0` and final at once).
    pub train_epochs: usize,
    /// Retraining after pruning (0: none).
    pub epochs: usize,
    pub rewind: Rewind,
    /// Settings of the training before pruning; its `epochs`, `resume`, `stop_after_epoch` and
    /// `out_dir` are set by the run. Its normalisation is used everywhere.
    pub train: TrainConfig,
    /// Settings of the retraining; `epochs`, `resume`, `stop_after_epoch` and `out_dir` set by the
    /// run.
    pub retrain: TrainConfig,
    /// Images held out of the training split for [`Method::Sa`]'s objective; `None`: what the
    /// objective reads, `sa.num_batches × sa.batch_size`.
    pub val_images: Option<usize>,
    pub sa: SaConfig,
    /// Images of SNIP's batch.
    pub snip_images: usize,
    pub seed: u64,
    /// Where `train/`, `retrain/` (the training runs' checkpoints and logs) and
    /// `pruned.safetensors` go; `None`: nothing written.
    pub out_dir: Option<PathBuf>,
}

impl PruneConfig {
    /// Defaults: magnitude per layer at sparsity 0.7 (§8's ratio), no training, rewind to `θ0`,
    /// 10 retraining epochs with [`TrainConfig::new`]'s settings, the specification's annealing.
    pub fn new(dataset: &str, norm: Normalisation, augment: Augment) -> Self {
        let train = TrainConfig::new(dataset, norm, augment);
        PruneConfig {
            method: Method::Mag,
            sparsity: 0.7,
            scope: Scope::PerLayer,
            include_all_convs: false,
            train_epochs: 0,
            epochs: train.epochs,
            rewind: Rewind::Init,
            retrain: train.clone(),
            train,
            val_images: None,
            sa: SaConfig::default(),
            snip_images: 128,
            seed: 0,
            out_dir: None,
        }
    }

    /// The validation images [`Method::Sa`] holds out.
    pub fn validation_images(&self) -> usize {
        self.val_images.unwrap_or(self.sa.num_batches * self.sa.batch_size)
    }

    /// Reject settings that do not make sense together (the data is checked by [`prune`]).
    pub fn check(&self) -> Result<()> {
        if self.method == Method::ReweightedL1 {
            return Err(bad("reweighted-l1 zeroes single weights, not filters: run it with \
                 prune::sparse::run and a SparseConfig"
                .into()));
        }
        check_sparsity(self.sparsity)?;
        if self.method == Method::MagSign && self.train_epochs == 0 {
            return Err(bad("magsign compares the trained weights' signs with the initial ones: it needs \
                 train_epochs ≥ 1 (without training it equals mag)"
                .into()));
        }
        if let Rewind::Epoch(k) = self.rewind
            && k > self.train_epochs
        {
            return Err(bad(format!("rewind to epoch {k}, but only {} training epochs run", self.train_epochs)));
        }
        if self.method == Method::Snip && self.snip_images == 0 {
            return Err(bad("SNIP needs at least one image in its batch".into()));
        }
        if self.method == Method::Sa {
            self.sa.check()?;
            if self.validation_images() == 0 {
                return Err(bad("simulated annealing needs a validation split (val images ≥ 1)".into()));
            }
        }
        if self.train.norm != self.retrain.norm {
            return Err(bad("training and retraining must use one normalisation".into()));
        }
        Ok(())
    }
}

/// Progress of a run, handed to the caller's callback.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneEvent<'a> {
    /// A stage starts: `train`, `score`, `search`, `prune`, `retrain`.
    Stage { stage: &'static str },
    /// A training event of the `train` or `retrain` stage.
    Train { stage: &'static str, event: &'a Event },
    /// Progress of the annealing.
    Search(&'a SaEvent<'a>),
    /// The surgery is done.
    Pruned { dead: usize, convs: &'a [ConvChange] },
}

/// Parameters, MACs and ReLUs of one image (`masq_ir::report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub params: u64,
    pub macs: u64,
    pub relus: u64,
}

impl Figures {
    pub fn of(graph: &Graph) -> Result<Self> {
        let r = masq_ir::report::report(graph)?;
        Ok(Figures { params: r.params, macs: r.macs, relus: r.relu_count })
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneSummary {
    pub method: Method,
    pub settings: PruneConfig,
    /// Filters of the considered convs.
    pub filters: usize,
    /// Filter sparsity asked.
    pub sparsity: f64,
    /// Dead filters over considered filters.
    pub achieved_sparsity: f64,
    pub dead: usize,
    /// Dead filters removed from the graph (the others stay with zero weights).
    pub removed: usize,
    pub kept_zeroed: usize,
    pub dead_filters: DeadSet,
    pub convs: Vec<ConvChange>,
    /// The seed code's counting (§6) before and after.
    pub seed_before: SeedCount,
    pub seed_after: SeedCount,
    /// `1 − after/before` of the seed counting's parameters and FLOPs.
    pub param_saving: f64,
    pub flop_saving: f64,
    pub report_before: Figures,
    pub report_after: Figures,
    /// Test accuracy (fraction) of the unpruned network after the training (of `θ0` without it).
    pub accuracy_unpruned: f64,
    /// Test accuracy of the pruned network at the rewind weights, before retraining.
    pub accuracy_pruned: f64,
    /// Test accuracy after the last retraining epoch.
    pub accuracy_retrained: Option<f64>,
    /// Test accuracy of the returned graph.
    pub accuracy: f64,
    /// The validation images held out of the training split.
    pub val_images: usize,
    pub sa: Option<SaStats>,
    pub checkpoint: Option<PathBuf>,
    pub seconds: f64,
}

fn bad(reason: String) -> TrainerError {
    TrainerError::BadConfig { reason }
}

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The states the run needs from the training before pruning.
struct Trained {
    final_graph: Graph,
    rewind_graph: Graph,
    accuracy: f64,
}

fn pretrain(
    graph: &Graph,
    data: &Splits,
    cfg: &PruneConfig,
    device: Device,
    on_event: &mut dyn FnMut(&PruneEvent<'_>),
) -> Result<Trained> {
    let norm = &cfg.train.norm;
    if cfg.train_epochs == 0 {
        let accuracy = evaluate(&TchModel::from_graph(graph, device)?, &data.test, norm, cfg.train.eval_batch_size)?;
        return Ok(Trained { final_graph: graph.clone(), rewind_graph: graph.clone(), accuracy: accuracy.accuracy });
    }
    on_event(&PruneEvent::Stage { stage: "train" });
    let mut tc = cfg.train.clone();
    tc.epochs = cfg.train_epochs;
    tc.resume = false;
    tc.stop_after_epoch = None;
    tc.out_dir = cfg.out_dir.as_ref().map(|d| d.join("train"));
    let k = cfg.rewind.epoch(cfg.train_epochs);
    let mut relay = |e: &Event| on_event(&PruneEvent::Train { stage: "train", event: e });
    if k == 0 || k == cfg.train_epochs {
        let (model, s) = train(graph, data, &tc, device, &mut relay)?;
        let final_graph = model.to_graph()?;
        let rewind_graph = if k == 0 { graph.clone() } else { final_graph.clone() };
        return Ok(Trained { final_graph, rewind_graph, accuracy: s.final_accuracy });
    }
    // Stop after epoch k, keep that state, resume to the end (the resume needs a checkpoint).
    let _scratch = match &tc.out_dir {
        Some(_) => None,
        None => {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!("masq-prune-{}-{stamp}", std::process::id()));
            tc.out_dir = Some(dir.clone());
            Some(Scratch(dir))
        }
    };
    tc.stop_after_epoch = Some(k);
    let (model, _) = train(graph, data, &tc, device, &mut relay)?;
    let rewind_graph = model.to_graph()?;
    drop(model);
    tc.stop_after_epoch = None;
    tc.resume = true;
    let (model, s) = train(graph, data, &tc, device, &mut relay)?;
    Ok(Trained { final_graph: model.to_graph()?, rewind_graph, accuracy: s.final_accuracy })
}

/// Prune `graph` (see the module docs) and return the pruned (and retrained) graph.
pub fn prune(
    graph: &Graph,
    splits: &Splits,
    cfg: &PruneConfig,
    device: Device,
    on_event: &mut dyn FnMut(&PruneEvent<'_>),
) -> Result<(Graph, PruneSummary)> {
    let t0 = Instant::now();
    cfg.check()?;
    if splits.train.is_empty() || splits.test.is_empty() {
        return Err(bad("empty training or test split".into()));
    }
    check_fit(graph, &splits.train, &cfg.train.dataset)?;
    check_fit(graph, &splits.test, &cfg.train.dataset)?;
    let sites = considered_sites(graph, cfg.include_all_convs)?;
    let sizes: Vec<usize> = sites.iter().map(|s| s.out_channels).collect();
    let filters: usize = sizes.iter().sum();
    if filters == 0 {
        return Err(bad(format!(
            "model {} has no conv whose filters can be removed{}",
            graph.name,
            if cfg.include_all_convs { "" } else { " on their own (include all convs to zero the others)" }
        )));
    }
    let norm = cfg.train.norm.clone();

    let (data, val) = if cfg.method == Method::Sa {
        let (rest, val) = hold_out(&splits.train, cfg.validation_images(), cfg.seed ^ HOLDOUT_SEED)?;
        (Splits { train: rest, test: splits.test.clone(), source: splits.source.clone() }, Some(val))
    } else {
        (splits.clone(), None)
    };
    let val_images = val.as_ref().map_or(0, |v| v.len());

    let trained = pretrain(graph, &data, cfg, device, on_event)?;

    let mut sa_stats = None;
    let dead = match cfg.method {
        Method::Sa => {
            on_event(&PruneEvent::Stage { stage: "search" });
            let val = val.expect("held out above");
            let batches = eval_batches(&val, &norm, cfg.sa.batch_size, cfg.sa.num_batches, device)?;
            let mut masked = MaskedModel::new(&trained.rewind_graph, &sites, device)?;
            let zeros = dead_target(cfg.sparsity, filters).min(max_dead(&sizes));
            let mut objective = |m: &[bool]| masked.accuracy(m, &batches);
            let out = anneal(&sizes, zeros, &cfg.sa, cfg.seed ^ SA_SEED, &mut objective, &mut |e| {
                on_event(&PruneEvent::Search(e))
            })?;
            sa_stats = Some(out.stats);
            mask_to_dead(&sites, &out.mask)?
        }
        m => {
            on_event(&PruneEvent::Stage { stage: "score" });
            let scores = match m {
                Method::Mag => magnitude(&trained.final_graph, &sites)?,
                Method::MagSign => magsign(graph, &trained.final_graph, &sites)?,
                Method::Snip => snip(graph, &sites, &data.train, &norm, cfg.snip_images, cfg.seed ^ SNIP_SEED, device)?,
                Method::Random => random(&sites, cfg.seed ^ RANDOM_SEED),
                Method::Sa => unreachable!("handled above"),
                Method::ReweightedL1 => return Err(bad("reweighted-l1 has no filter scores".into())),
            };
            select(&scores, cfg.sparsity, cfg.scope)?
        }
    };
    let n_dead = dead_len(&dead);

    on_event(&PruneEvent::Stage { stage: "prune" });
    let pruned = prune_channels(&trained.rewind_graph, &dead)?;
    on_event(&PruneEvent::Pruned { dead: n_dead, convs: &pruned.convs });
    let eval_bs = cfg.retrain.eval_batch_size;
    let accuracy_pruned = evaluate(&TchModel::from_graph(&pruned.graph, device)?, &data.test, &norm, eval_bs)?.accuracy;

    let (out, accuracy_retrained) = if cfg.epochs > 0 {
        on_event(&PruneEvent::Stage { stage: "retrain" });
        let mut rc = cfg.retrain.clone();
        rc.epochs = cfg.epochs;
        rc.resume = false;
        rc.stop_after_epoch = None;
        rc.out_dir = cfg.out_dir.as_ref().map(|d| d.join("retrain"));
        let (model, s) = train(&pruned.graph, &data, &rc, device, &mut |e| {
            on_event(&PruneEvent::Train { stage: "retrain", event: e })
        })?;
        (model.to_graph()?, Some(s.final_accuracy))
    } else {
        (pruned.graph.clone(), None)
    };

    let seed_before = seed_count(graph)?;
    let seed_after = seed_count(&out)?;
    let (param_saving, flop_saving) = seed_before.savings(&seed_after);
    let kept_zeroed: usize = pruned.convs.iter().map(|c| c.kept_zeroed).sum();
    let removed: usize = pruned.convs.iter().map(|c| c.before.saturating_sub(c.after)).sum();
    let report_after = Figures::of(&out)?;
    let accuracy = accuracy_retrained.unwrap_or(accuracy_pruned);
    // The settings as run: the training configs' lengths are the run's.
    let mut settings = cfg.clone();
    settings.train.epochs = cfg.train_epochs;
    settings.retrain.epochs = cfg.epochs;
    let mut summary = PruneSummary {
        method: cfg.method,
        settings,
        filters,
        sparsity: cfg.sparsity,
        achieved_sparsity: n_dead as f64 / filters as f64,
        dead: n_dead,
        removed,
        kept_zeroed,
        dead_filters: dead,
        convs: pruned.convs,
        seed_before,
        seed_after,
        param_saving,
        flop_saving,
        report_before: Figures::of(graph)?,
        report_after,
        accuracy_unpruned: trained.accuracy,
        accuracy_pruned,
        accuracy_retrained,
        accuracy,
        val_images,
        sa: sa_stats,
        checkpoint: None,
        seconds: 0.0,
    };
    if let Some(d) = &cfg.out_dir {
        std::fs::create_dir_all(d).map_err(|e| TrainerError::io(d, e))?;
        let path = d.join("pruned.safetensors");
        let mut facts = Facts {
            dataset: Some(cfg.train.dataset.clone()),
            accuracy: Some(accuracy),
            relu_count: Some(report_after.relus),
            epoch: None,
            ..Facts::default()
        };
        facts.other.insert("prune_method".into(), json!(cfg.method.name()));
        facts.other.insert("prune_sparsity".into(), json!(summary.achieved_sparsity));
        facts.other.insert("prune_convs".into(), serde_json::to_value(&summary.convs).unwrap_or_default());
        facts.other.insert("seed_count_before".into(), serde_json::to_value(seed_before).unwrap_or_default());
        facts.other.insert("seed_count_after".into(), serde_json::to_value(seed_after).unwrap_or_default());
        facts.other.insert("accuracy_unpruned".into(), json!(summary.accuracy_unpruned));
        facts.set_normalisation(&norm);
        checkpoint::save_checkpoint(&path, &out, &facts)?;
        summary.checkpoint = Some(path);
    }
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok((out, summary))
}
