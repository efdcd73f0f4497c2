//! Running `masq prune`: set-up, the method, progress, the checkpoint and the result.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use masq_ir::Graph;
use masq_ir::checkpoint::{self, Facts};
use masq_ir::prune::ConvChange;
use masq_trainer::data::{self, Normalisation, Splits};
use masq_trainer::device::device_name;
use masq_trainer::prune::rrelu::{self, Ranking, RreluConfig, RreluEvent, SlopeInit, Threshold, ValidationSize};
use masq_trainer::prune::{Method, PruneConfig, PruneEvent, SaEvent, Scope, prune};
use masq_trainer::train::Event;
use serde_json::{Value, json};

use super::costs::{self, Costs2pc};
use super::{DEFAULT_BATCH, DEFAULT_LR, MethodArg, PruneArgs, RankingArg, ScopeArg, SlopeInitArg};
use crate::cli::common::training;
use crate::cli::common::{json as jsonl, model, progress};

/// What every method reports, in the shape the result line and the table use.
struct Outcome {
    graph: Graph,
    method: &'static str,
    convs: Vec<ConvChange>,
    accuracy_before: f64,
    accuracy: f64,
    /// The method's own summary, whole.
    summary: Value,
    checkpoint: PathBuf,
}

pub fn run(a: PruneArgs) -> Result<()> {
    if a.method != MethodArg::Rrelu && a.slope_ranking != RankingArg::Absolute {
        bail!("--slope-ranking is a Rotated ReLU setting: it needs --method rrelu");
    }
    if a.distill && a.method != MethodArg::Rrelu && !super::sparse::is_unstructured(&a) {
        bail!(
            "--distill is for --method rrelu and the unstructured methods (reweighted-l1, or mag with \
             --weight-sparsity / --threshold), not {:?}",
            a.method
        );
    }
    if super::sparse::is_unstructured(&a) {
        return super::sparse::run(&a);
    }
    let (kind, device) = (a.dataset, a.env.device);
    if let Some(s) = a.filter_sparsity
        && !(s.is_finite() && (0.0..1.0).contains(&s))
    {
        bail!("--filter-sparsity must be in [0, 1), got {s}");
    }
    if a.zeta.is_some() && a.method != MethodArg::Rrelu {
        bail!("--zeta is a Rotated ReLU threshold: it needs --method rrelu (the others take --filter-sparsity)");
    }
    if a.method != MethodArg::Rrelu && a.filter_sparsity.is_none() {
        bail!(
            "--method {:?} needs --filter-sparsity S (the fraction of filters to remove){}",
            a.method,
            if a.method == MethodArg::Mag { " or --weight-sparsity S (of single weights)" } else { "" }
        );
    }
    let splits = a.env.prepare(kind, a.data.as_deref())?;
    let (graph, norm) = model::load_trainable(&a.from, a.weights.as_deref(), &splits, kind, a.env.seed, "prune")?;
    let method_name = format!("{:?}", a.method).to_lowercase();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("prune-{method_name}")));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if !a.json {
        training::announce("pruning", &graph.name, kind.name(), &splits, device, &out);
    }
    let costs_before = costs::of(&graph)?;
    let o = match a.method {
        MethodArg::Rrelu => run_rrelu(&a, &graph, &splits, norm, &out)?,
        _ => run_flow(&a, &graph, &splits, norm, &out)?,
    };
    let costs_after = costs::of(&o.graph)?;
    print_result(&a, &o, &graph, costs_before, costs_after, device_name(device))
}

pub(super) fn augment(a: &PruneArgs, splits: &Splits) -> data::Augment {
    if a.no_augment { data::Augment::NONE } else { a.dataset.default_augment_for(splits.train.shape) }
}

fn run_rrelu(a: &PruneArgs, graph: &Graph, splits: &Splits, norm: Normalisation, out: &Path) -> Result<Outcome> {
    let mut cfg = RreluConfig::new(a.dataset.name(), norm.clone(), augment(a, splits));
    cfg.init = match a.slope_init {
        SlopeInitArg::Random => SlopeInit::Random,
        SlopeInitArg::Ones => SlopeInit::Ones,
    };
    cfg.epochs = a.epochs;
    cfg.slope_epochs = a.two_step;
    cfg.lr = a.lr.unwrap_or(DEFAULT_LR);
    if let Some(wd) = a.weight_decay {
        cfg.weight_decay = wd;
    }
    cfg.warmup_epochs = a.warmup_epochs;
    cfg.l1 = a.l1;
    cfg.threshold = match (a.zeta, a.filter_sparsity) {
        (Some(z), _) => Threshold::Zeta(z),
        (None, Some(s)) => Threshold::FilterSparsity(s),
        (None, None) => Threshold::Validation { tolerance: a.tolerance },
    };
    if let Some(n) = a.val_images {
        cfg.validation = ValidationSize::Images(n);
    }
    cfg.ranking = match a.slope_ranking {
        RankingArg::Absolute => Ranking::Absolute,
        RankingArg::Site => Ranking::Site,
    };
    cfg.distill = a.distill;
    cfg.temperature = a.kd_temperature;
    cfg.finetune_epochs = a.finetune_epochs;
    cfg.finetune_lr = a.finetune_lr;
    cfg.batch_size = a.batch_size.unwrap_or(DEFAULT_BATCH);
    cfg.seed = a.env.seed;
    cfg.max_batches = a.env.max_batches;
    let mut bar = Bar::new(a.json);
    let (pruned, s) = rrelu::run(graph, splits, &cfg, a.env.device, &mut |e| match e {
        RreluEvent::Stage { stage, epochs, batches_per_epoch } => bar.stage(stage.name(), *epochs, *batches_per_epoch),
        RreluEvent::Batch { stage, epoch, batch, loss, accuracy, .. } => bar.batch(
            *batch,
            &format!("{} {epoch}/{} loss {loss:.3} acc {:.1}%", stage.name(), bar.epochs, 100.0 * accuracy),
        ),
        RreluEvent::Epoch(e) if a.json => bar.println(&jsonl::to_line(e).unwrap_or_default()),
        RreluEvent::Epoch(e) => bar.println(&format!(
            "{:>8} epoch {:>3}  loss {:.4}  test acc {:5.2}%{}",
            e.stage.name(),
            e.epoch,
            e.train_loss,
            100.0 * e.test_accuracy,
            e.slopes
                .as_ref()
                .map(|s| format!("  |a| median {:.3} min {:.4}", s.median_abs, s.min_abs))
                .unwrap_or_default()
        )),
        RreluEvent::Probe(p) if !a.json => bar.println(&format!(
            "  ζ {:.4}: {} channels removed, validation {:.2}%{}",
            p.zeta,
            p.removed,
            100.0 * p.accuracy,
            if p.ok { "" } else { "  (outside the tolerance)" }
        )),
        RreluEvent::Threshold { zeta, removed, channels } if !a.json => {
            bar.println(&format!("ζ = {zeta:.4}: {removed} of {channels} slope channels removed"))
        }
        _ => {}
    })
    .context("Rotated ReLU pruning")?;
    bar.finish();
    let accuracy = s.accuracy_finetuned.unwrap_or(s.accuracy_pruned);
    let summary = serde_json::to_value(&s)?;
    let path = out.join("pruned.safetensors");
    let mut facts = Facts {
        dataset: Some(a.dataset.name().to_string()),
        accuracy: Some(accuracy),
        relu_count: Some(s.report_after.relu_count),
        ..Facts::default()
    };
    facts.other.insert("prune_method".into(), json!("rrelu"));
    facts.other.insert("prune_zeta".into(), json!(s.zeta));
    facts.other.insert("prune_settings".into(), serde_json::to_value(&cfg)?);
    facts.other.insert("prune_convs".into(), serde_json::to_value(&s.convs)?);
    facts.other.insert("seed_count_before".into(), serde_json::to_value(s.seed_before)?);
    facts.other.insert("seed_count_after".into(), serde_json::to_value(s.seed_after)?);
    facts.other.insert("accuracy_unpruned".into(), json!(s.accuracy_start));
    facts.set_normalisation(&norm);
    checkpoint::save_checkpoint(&path, &pruned, &facts).with_context(|| format!("writing {}", path.display()))?;
    Ok(Outcome {
        graph: pruned,
        method: "rrelu",
        convs: s.convs.clone(),
        accuracy_before: s.accuracy_start,
        accuracy,
        summary,
        checkpoint: path,
    })
}

fn run_flow(a: &PruneArgs, graph: &Graph, splits: &Splits, norm: Normalisation, out: &Path) -> Result<Outcome> {
    let mut cfg = PruneConfig::new(a.dataset.name(), norm, augment(a, splits));
    cfg.method = match a.method {
        MethodArg::Sa => Method::Sa,
        MethodArg::Mag => Method::Mag,
        MethodArg::Magsign => Method::MagSign,
        MethodArg::Snip => Method::Snip,
        MethodArg::Random => Method::Random,
        MethodArg::Rrelu | MethodArg::ReweightedL1 => unreachable!("run_rrelu and sparse::run take these"),
    };
    cfg.sparsity = a.filter_sparsity.expect("checked by run");
    cfg.scope = match a.scope.unwrap_or(ScopeArg::Layer) {
        ScopeArg::Layer => Scope::PerLayer,
        ScopeArg::Global => Scope::Global,
    };
    cfg.include_all_convs = a.all_convs;
    cfg.train_epochs = a.train_epochs;
    cfg.epochs = a.epochs;
    cfg.rewind = a.rewind;
    for t in [&mut cfg.train, &mut cfg.retrain] {
        t.lr = a.lr.unwrap_or(DEFAULT_LR);
        if let Some(wd) = a.weight_decay {
            t.weight_decay = wd;
        }
        t.warmup_epochs = a.warmup_epochs;
        t.batch_size = a.batch_size.unwrap_or(DEFAULT_BATCH);
        t.seed = a.env.seed;
        t.max_batches = a.env.max_batches;
    }
    cfg.val_images = a.val_images;
    cfg.sa.temperatures = a.sa_temperatures;
    cfg.sa.num_batches = a.sa_batches;
    cfg.snip_images = a.snip_images;
    cfg.seed = a.env.seed;
    cfg.out_dir = Some(out.to_path_buf());
    let mut bar = Bar::new(a.json);
    let mut sa_bar: Option<ProgressBar> = None;
    let (pruned, s) = prune(graph, splits, &cfg, a.env.device, &mut |e| match e {
        PruneEvent::Stage { stage } if !a.json => bar.println(&format!("{stage}")),
        PruneEvent::Train { stage, event } => match event {
            Event::Start { epochs, batches_per_epoch, .. } => bar.stage(stage, *epochs, *batches_per_epoch),
            Event::Batch { epoch, batch, loss, accuracy, .. } => {
                bar.batch(*batch, &format!("{stage} {epoch}/{} loss {loss:.3} acc {:.1}%", bar.epochs, 100.0 * accuracy))
            }
            Event::Epoch(r) if a.json => bar.println(&jsonl::to_line(&json!({"stage": stage, "epoch": r})).unwrap_or_default()),
            Event::Epoch(r) => bar.println(&format!(
                "{stage:>8} epoch {:>3}  loss {:.4}  test acc {:5.2}%  {:.0} img/s",
                r.epoch,
                r.train_loss,
                100.0 * r.test_accuracy,
                r.images_per_second
            )),
            _ => {}
        },
        PruneEvent::Search(SaEvent::Start { temperatures, accuracy, filters, zeros, .. }) => {
            let b = progress::bar(*temperatures as u64, "annealing", a.json);
            b.set_message(format!("annealing {zeros}/{filters} filters off, start {accuracy:.2}%"));
            sa_bar = Some(b);
        }
        PruneEvent::Search(SaEvent::Temperature { index, temperature, accepted, rejected, mean, best_mean, .. }) => {
            if let Some(b) = &sa_bar {
                b.set_position(*index as u64 + 1);
                b.set_message(format!(
                    "annealing T {temperature:.2e} accepted {accepted} rejected {rejected} Ā {mean:.2}% best {best_mean:.2}%"
                ));
            }
            if a.json {
                let line = json!({"stage": "search", "temperature": index, "t": temperature, "accepted": accepted,
                    "rejected": rejected, "mean": mean, "best_mean": best_mean});
                println!("{line}");
            }
        }
        PruneEvent::Pruned { dead, convs } if !a.json => {
            if let Some(b) = sa_bar.take() {
                b.finish_and_clear();
            }
            let removed: usize = convs.iter().map(|c| c.before - c.after).sum();
            bar.println(&format!("surgery: {dead} dead filters, {removed} removed from the graph"));
        }
        _ => {}
    })
    .context("pruning")?;
    bar.finish();
    Ok(Outcome {
        graph: pruned,
        method: s.method.name(),
        convs: s.convs.clone(),
        accuracy_before: s.accuracy_unpruned,
        accuracy: s.accuracy,
        summary: serde_json::to_value(&s)?,
        checkpoint: s.checkpoint.clone().unwrap_or_else(|| out.join("pruned.safetensors")),
    })
}

fn print_result(
    a: &PruneArgs,
    o: &Outcome,
    before: &Graph,
    costs_before: Costs2pc,
    costs_after: Costs2pc,
    device: String,
) -> Result<()> {
    let rb = masq_ir::report::report(before)?;
    let ra = masq_ir::report::report(&o.graph)?;
    let sb = masq_ir::prune::count::seed_count(before)?;
    let sa = masq_ir::prune::count::seed_count(&o.graph)?;
    let (param_saving, flop_saving) = sb.savings(&sa);
    if a.json {
        return jsonl::print(&json!({
            "method": o.method,
            "accuracy_before": o.accuracy_before,
            "accuracy": o.accuracy,
            "convs": o.convs,
            "params": {"before": rb.params, "after": ra.params},
            "macs": {"before": rb.macs, "after": ra.macs},
            "relus": {"before": rb.relu_count, "after": ra.relu_count},
            "seed_count": {"before": sb, "after": sa, "param_saving": param_saving, "flop_saving": flop_saving},
            "mpc": {"before": costs_before, "after": costs_after},
            "checkpoint": o.checkpoint,
            "summary": o.summary,
            "device": device,
            "dataset": a.dataset.name(),
        }));
    }
    for c in &o.convs {
        let note = if c.kept_zeroed > 0 {
            format!("  ({} dead kept with zero weights)", c.kept_zeroed)
        } else {
            String::new()
        };
        println!("  {:<36} {:>5} -> {:>5}{note}", c.conv, c.before, c.after);
    }
    let pct = |b: f64, a: f64| if b == 0.0 { 0.0 } else { 100.0 * (1.0 - a / b) };
    let row = |name: &str, b: u64, a: u64| {
        println!("  {name:<20} {:>14} -> {:>14}  (-{:.1}%)", thousands(b), thousands(a), pct(b as f64, a as f64))
    };
    println!("{}:", o.method);
    row("params", rb.params, ra.params);
    row("MACs", rb.macs, ra.macs);
    row("ReLUs", rb.relu_count, ra.relu_count);
    row("2PC online bytes", costs_before.online_bytes, costs_after.online_bytes);
    row("2PC dealer bytes", costs_before.dealer_bytes, costs_after.dealer_bytes);
    println!(
        "  seed counting: params -{:.1}%, FLOPs -{:.1}%;  test accuracy {:.2}% -> {:.2}%",
        100.0 * param_saving,
        100.0 * flop_saving,
        100.0 * o.accuracy_before,
        100.0 * o.accuracy
    );
    println!("checkpoint: {}", o.checkpoint.display());
    Ok(())
}

pub(super) fn thousands(n: u64) -> String {
    masq_ir::report::thousands(n)
}

/// One bar per training stage, reset every epoch.
pub(super) struct Bar {
    bar: Option<ProgressBar>,
    pub(super) epochs: usize,
    quiet: bool,
}

impl Bar {
    pub(super) fn new(quiet: bool) -> Self {
        Bar { bar: None, epochs: 0, quiet }
    }

    pub(super) fn stage(&mut self, name: &str, epochs: usize, batches: usize) {
        self.finish();
        self.epochs = epochs;
        self.bar = Some(progress::bar(batches as u64, name, self.quiet));
    }

    pub(super) fn batch(&self, batch: usize, msg: &str) {
        if let Some(b) = &self.bar {
            if batch <= 1 {
                b.reset();
            }
            b.set_position(batch as u64);
            b.set_message(msg.to_string());
        }
    }

    pub(super) fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    pub(super) fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
