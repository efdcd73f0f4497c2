//! The demo's training phases: the baseline (trained or given), each reduction, each export. Every
//! phase goes through the same library calls and files as the separate commands (`masq train`,
//! `masq reduce`, `masq export`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use masq_exporter::ModelSpec;
use masq_exporter::model_spec::LoadedModel;
use masq_ir::checkpoint::{self, Facts};
use masq_ir::facts::Normalisation;
use masq_ir::{Graph, report};
use masq_trainer::TchModel;
use masq_trainer::device::Device;
use masq_trainer::optim::OptimizerKind;
use masq_trainer::reduce::{Budget, Method, ReduceConfig};
use masq_trainer::train::{Event, TrainConfig, evaluate, train};

use super::config::{DemoArgs, DemoData, Preset};
use crate::cli::common::{model, progress};

/// The reduction methods every budget is cut with, by name.
pub const METHODS: [(&str, Method); 2] = [("autorep", Method::AutoRep), ("random", Method::Random)];

/// What every phase needs.
pub struct Ctx<'a> {
    pub args: &'a DemoArgs,
    pub preset: &'a Preset,
    pub data: &'a DemoData,
    pub device: Device,
    pub quiet: bool,
}

/// A model the demo produced: the baseline or a reduced one.
#[derive(Debug, Clone)]
pub struct Trained {
    /// `baseline`, `autorep-2867`, `random-287`, ...
    pub name: String,
    /// `baseline`, `autorep` or `random`.
    pub method: String,
    pub budget: Option<u64>,
    pub checkpoint: PathBuf,
    pub relu_count: u64,
    /// Validation accuracy the trainer measured (model selection split).
    pub val_accuracy: f64,
    /// ReLUs per activation site, in forward order.
    pub layers: Vec<(String, u64)>,
    pub seconds: f64,
}

/// ReLUs per activation site (`Relu` or `MaskedAct` node) of a graph.
pub fn site_relus(g: &Graph) -> Result<Vec<(String, u64)>> {
    let r = report::report(g)?;
    Ok(g.nodes
        .iter()
        .zip(&r.layers)
        .filter(|(n, _)| matches!(n.op, masq_ir::Op::Relu | masq_ir::Op::MaskedAct(_)))
        .map(|(_, l)| (l.name.clone(), l.relus))
        .collect())
}

fn norm_of(facts: &Facts, ctx: &Ctx) -> Normalisation {
    facts.normalisation().unwrap_or_else(|| ctx.data.kind.default_norm())
}

/// A checkpoint the demo wrote, with its facts.
fn load_checkpoint(path: &Path) -> Result<(Graph, Facts)> {
    let LoadedModel { graph, facts, .. } = model::load(&ModelSpec::Checkpoint(path.to_path_buf()))?;
    Ok((graph, facts.unwrap_or_default()))
}

fn epoch_bar(ctx: &Ctx, len: usize, msg: &str) -> ProgressBar {
    progress::bar(len as u64, msg, ctx.quiet)
}

/// The starting model: `--from` as given, or `--model` trained on the demo's training images.
pub fn baseline(ctx: &Ctx) -> Result<Trained> {
    let a = ctx.args;
    let t0 = std::time::Instant::now();
    let dir = a.out.join("baseline");
    let splits = &ctx.data.splits;
    let (shape, classes) = (splits.train.shape, splits.train.classes);
    let (checkpoint, graph, facts) = match &a.from {
        Some(ModelSpec::Checkpoint(path)) if a.weights.is_none() => {
            let (g, f) = load_checkpoint(path)?;
            (path.clone(), g, f)
        }
        Some(from) => {
            let mut m = model::load_for_data(from, shape, classes, a.seed)?;
            if let Some(w) = &a.weights {
                model::apply_weights(&mut m.graph, w, &[])?;
            }
            let norm = model::recorded_normalisation(&m).unwrap_or_else(|| ctx.data.kind.default_norm());
            let g = m.graph;
            let m = TchModel::from_graph(&g, ctx.device)?;
            let acc = evaluate(&m, &splits.test, &norm, 500)?.accuracy;
            let mut facts = Facts {
                dataset: Some(ctx.data.kind.name().to_string()),
                accuracy: Some(acc),
                relu_count: Some(report::report(&g)?.relu_count),
                ..Facts::default()
            };
            facts.set_normalisation(&norm);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join("model.safetensors");
            checkpoint::save_checkpoint(&path, &g, &facts).with_context(|| format!("writing {}", path.display()))?;
            (path, g, facts)
        }
        None => {
            let g = model::load_for_data(&a.model, shape, classes, a.seed)?.graph;
            let kind = ctx.data.kind;
            let mut cfg = TrainConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
            cfg.epochs = ctx.preset.epochs;
            cfg.batch_size = ctx.preset.batch_size;
            cfg.optimizer = OptimizerKind::adam();
            cfg.lr = 3e-3;
            cfg.weight_decay = 0.0;
            cfg.seed = a.seed;
            cfg.out_dir = Some(dir.clone());
            let mut bar: Option<ProgressBar> = None;
            let epochs = cfg.epochs;
            let (_, s) = train(&g, splits, &cfg, ctx.device, &mut |e| match e {
                Event::Start { batches_per_epoch, .. } => {
                    bar = Some(epoch_bar(ctx, *batches_per_epoch, "training"));
                }
                Event::Batch { epoch, batch, loss, accuracy, .. } => {
                    if let Some(b) = &bar {
                        if *batch == 1 {
                            b.reset();
                        }
                        b.set_position(*batch as u64);
                        b.set_message(format!("training {epoch}/{epochs} loss {loss:.3} acc {:.1}%", 100.0 * accuracy));
                    }
                }
                Event::Evaluating { .. } | Event::Epoch(_) => {}
            })
            .with_context(|| format!("training {}", a.model))?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let path = s.best_checkpoint.or(s.last_checkpoint).context("training wrote no checkpoint")?;
            let (g, f) = load_checkpoint(&path)?;
            (path, g, f)
        }
    };
    let val_accuracy = match facts.accuracy {
        Some(acc) => acc,
        None => {
            evaluate(&TchModel::from_graph(&graph, ctx.device)?, &splits.test, &norm_of(&facts, ctx), 500)?.accuracy
        }
    };
    Ok(Trained {
        name: "baseline".into(),
        method: "baseline".into(),
        budget: None,
        checkpoint,
        relu_count: report::report(&graph)?.relu_count,
        val_accuracy,
        layers: site_relus(&graph)?,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Reduce the baseline to `budget` ReLUs with `method` (named `label`: `autorep` or `random`).
pub fn reduce(ctx: &Ctx, base: &Trained, label: &str, method: Method, budget: u64) -> Result<Trained> {
    let t0 = std::time::Instant::now();
    let (graph, facts) = load_checkpoint(&base.checkpoint)?;
    let kind = ctx.data.kind;
    let mut cfg = ReduceConfig::new(kind.name(), norm_of(&facts, ctx), kind.default_augment(), Budget::Count(budget));
    cfg.method = method;
    cfg.replacement = ctx.args.replacement;
    cfg.mask_epochs = ctx.preset.mask_epochs;
    cfg.finetune_epochs = ctx.preset.finetune_epochs;
    cfg.batch_size = ctx.preset.batch_size;
    cfg.distill = true;
    cfg.seed = ctx.args.seed;
    let name = format!("{label}-{budget}");
    cfg.out_dir = Some(ctx.args.out.join("reduce").join(&name));
    let mut bar = progress::ReduceBar::new(&format!("{name}: "), ctx.quiet);
    let (g, s) = masq_trainer::reduce::reduce(&graph, &ctx.data.splits, &cfg, ctx.device, &mut |e| bar.update(e))
        .with_context(|| format!("reducing to {budget} ReLUs with {label}"))?;
    bar.finish();
    Ok(Trained {
        name,
        method: label.to_string(),
        budget: Some(budget),
        checkpoint: s.checkpoint.clone().context("reduce wrote no checkpoint")?,
        relu_count: s.relu_count,
        val_accuracy: s.accuracy,
        layers: site_relus(&g)?,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Export a model's checkpoint to `OUT/artifacts/<name>` (replacing an earlier demo's).
pub fn export(ctx: &Ctx, m: &Trained) -> Result<PathBuf> {
    let dir = ctx.args.out.join("artifacts").join(&m.name);
    export_checkpoint(&m.checkpoint, &dir)?;
    Ok(dir)
}

fn export_checkpoint(ckpt: &Path, dir: &Path) -> Result<()> {
    let spec = ModelSpec::Checkpoint(ckpt.to_path_buf());
    let m = model::load(&spec)?;
    let facts = model::export_facts(&spec, &m);
    let opts = masq_exporter::ExportOptions { force: true, ..masq_exporter::ExportOptions::default() };
    masq_exporter::export(&m.graph, &facts, dir, &opts)
        .with_context(|| format!("exporting {} to {}", ckpt.display(), dir.display()))?;
    Ok(())
}
