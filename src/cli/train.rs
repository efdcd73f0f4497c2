//! `masq train`: train a model (zoo or file) on a dataset with tch, writing checkpoints and a log.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use masq_exporter::ModelSpec;
use masq_trainer::data::{self, DatasetKind};
use masq_trainer::device::device_name;
use masq_trainer::optim::OptimizerKind;
use masq_trainer::train::{Event, TrainConfig, train};

use super::common::training::{self, TrainEnv};
use super::common::{args, json, model, progress};

/// The optimiser of `masq train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Optimizer {
    /// SGD with momentum (--momentum).
    Sgd,
    /// Adam (β = 0.9, 0.999).
    Adam,
}

/// Arguments of `masq train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// zoo:NAME (built for the dataset's input size and classes), a .onnx file, an artifact
    /// directory or a masq checkpoint (.safetensors) to continue training from.
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder (DIR/train/<class>/*.jpg|png,
    /// DIR/val/<class>/...) | synthetic (built in, needs no files). tiny-imagenet and folder take @SIZE
    /// or @HxW to resize every image (folder@64).
    #[arg(long, value_name = "DATASET", value_parser = args::dataset)]
    pub dataset: DatasetKind,
    /// Directory of the dataset's files (or a parent holding e.g. cifar10/).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 10, value_parser = args::positive_count)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128, value_parser = args::positive_count)]
    pub batch_size: usize,
    /// Peak learning rate (default: 0.1 for sgd, 1e-3 for adam).
    #[arg(long, value_parser = args::positive_number)]
    pub lr: Option<f64>,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 0.0, value_parser = args::non_negative_number)]
    pub min_lr: f64,
    /// The optimiser.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Optimizer::Sgd)]
    pub optimizer: Optimizer,
    /// Momentum of sgd.
    #[arg(long, default_value_t = 0.9, value_parser = args::unit_fraction)]
    pub momentum: f64,
    /// L2 weight decay (default: 5e-4 for sgd, 0 for adam).
    #[arg(long, value_parser = args::non_negative_number)]
    pub weight_decay: Option<f64>,
    /// Linear learning-rate warm-up, in epochs.
    #[arg(long, default_value_t = 0.0, value_parser = args::non_negative_number)]
    pub warmup_epochs: f64,
    #[arg(long, default_value_t = 0.0, value_parser = args::unit_fraction)]
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value.
    #[arg(long, value_parser = args::positive_number)]
    pub grad_clip: Option<f64>,
    /// No training augmentation (default for colour images: random crop with padding size/8, 4 for
    /// CIFAR, and horizontal flip).
    #[arg(long)]
    pub no_augment: bool,
    /// Output directory for best.safetensors, last.safetensors and log.jsonl
    /// (default: runs/<model>-<dataset>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last.safetensors.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start a new run in an --out that already holds one (its checkpoints and log are replaced).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub env: TrainEnv,
    /// Print JSON Lines: one line per epoch, and the last line is the result (accuracy,
    /// relu_count, checkpoint, ...).
    #[arg(long)]
    pub json: bool,
}

/// Files of a run directory that a new run would replace.
const RUN_FILES: &[&str] = &["best.safetensors", "last.safetensors", "log.jsonl"];

/// Refuse to start a new run over an existing one unless `--resume` or `--force` says what to do
/// with it, and `--resume` of a directory without `last.safetensors`.
fn check_run_dir(out: &std::path::Path, resume: bool, force: bool) -> Result<()> {
    if resume && !out.join("last.safetensors").exists() {
        bail!(
            "{} holds no last.safetensors to resume (a run saves it at the end of each epoch; one \
             stopped before its first epoch ended has none): start it again with --force",
            out.display()
        );
    }
    if resume || force {
        return Ok(());
    }
    let found: Vec<&str> = RUN_FILES.iter().copied().filter(|f| out.join(f).exists()).collect();
    if !found.is_empty() {
        bail!(
            "{} already holds a run ({}): pass --resume to continue it or --force to replace it, or choose another --out",
            out.display(),
            found.join(", ")
        );
    }
    Ok(())
}

/// `--force`: removes the run in `out` just before the new one starts (data and model loaded), so
/// that a new run stopped before its first checkpoint leaves no checkpoint of the old one for
/// `--resume` to continue. `last.safetensors` goes first: a kill in between leaves no run to resume.
fn replace_run(out: &std::path::Path) -> Result<()> {
    for name in ["last.safetensors", "best.safetensors", "log.jsonl"] {
        let path = out.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("replacing the run in {}: {}", out.display(), path.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Holds an exclusive lock on the run directory (created if missing) for the whole command, so
/// two `masq train` cannot write one run, and removes what a killed run's atomic writes left:
/// temporary files `.masq-tmp-*` (a checkpoint being written when the run was killed; the
/// checkpoint itself is the old one or the new one, never part of either).
fn lock_run_dir(out: &std::path::Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let lock = std::fs::File::open(out).with_context(|| format!("opening {}", out.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("{}: another `masq train` is writing into this run directory", out.display())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", out.display()));
        }
    }
    for entry in std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let entry = entry.with_context(|| format!("reading {}", out.display()))?;
        let stale = entry.file_name().to_str().is_some_and(|n| n.starts_with(".masq-tmp-"));
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(lock)
}

/// The run directory: `--out`, or `runs/<model>-<dataset>`.
fn run_dir(a: &TrainArgs) -> PathBuf {
    let model_tag: String = a
        .model
        .to_string()
        .trim_start_matches("zoo:")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{model_tag}-{}", a.dataset.name())))
}

pub fn run(a: TrainArgs) -> Result<()> {
    let (kind, device) = (a.dataset, a.env.device);
    // Before any data or model is loaded.
    let out = run_dir(&a);
    check_run_dir(&out, a.resume, a.force)?;
    let _lock = lock_run_dir(&out)?;
    let optimizer = match a.optimizer {
        Optimizer::Sgd => OptimizerKind::Sgd { momentum: a.momentum, nesterov: false },
        Optimizer::Adam => OptimizerKind::adam(),
    };
    let is_sgd = a.optimizer == Optimizer::Sgd;
    let splits = a.env.prepare(kind, a.data.as_deref())?;
    let graph = model::load_for_data(&a.model, splits.train.shape, splits.train.classes, a.env.seed)?.graph;

    let mut cfg = TrainConfig::new(kind.name(), kind.default_norm(), kind.default_augment_for(splits.train.shape));
    if a.no_augment {
        cfg.augment = data::Augment::NONE;
    }
    cfg.epochs = a.epochs;
    cfg.batch_size = a.batch_size;
    cfg.lr = a.lr.unwrap_or(if is_sgd { 0.1 } else { 1e-3 });
    cfg.min_lr = a.min_lr;
    cfg.optimizer = optimizer;
    cfg.weight_decay = a.weight_decay.unwrap_or(if is_sgd { 5e-4 } else { 0.0 });
    cfg.warmup_epochs = a.warmup_epochs;
    cfg.label_smoothing = a.label_smoothing;
    cfg.grad_clip = a.grad_clip;
    cfg.seed = a.env.seed;
    cfg.out_dir = Some(out.clone());
    cfg.resume = a.resume;
    cfg.max_batches = a.env.max_batches;
    if !(0.0..1.0).contains(&cfg.label_smoothing) || cfg.warmup_epochs < 0.0 || cfg.weight_decay < 0.0 {
        bail!("--label-smoothing must be in [0, 1), --warmup-epochs and --weight-decay non-negative");
    }

    if !a.json {
        training::announce("training", &graph.name, kind.name(), &splits, device, &out);
    }

    let quiet = a.json;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut relus = 0u64;
    let as_json = a.json;
    let mut on_event = |e: &Event| match e {
        Event::Start { epochs, batches_per_epoch, relu_count, start_epoch } => {
            relus = *relu_count;
            bar = Some(progress::bar(*batches_per_epoch as u64, &format!("epoch {start_epoch}/{epochs}"), quiet));
        }
        Event::Batch { epoch, batch, loss, accuracy, .. } => {
            if let Some(b) = &bar {
                if *batch == 1 {
                    b.reset();
                }
                b.set_position(*batch as u64);
                b.set_message(format!(
                    "epoch {epoch}/{} loss {loss:.3} acc {:.1}% relus {relus}",
                    a.epochs,
                    100.0 * accuracy
                ));
            }
        }
        Event::Evaluating { .. } => {
            if let Some(b) = &bar {
                b.set_message("evaluating");
            }
        }
        Event::Epoch(r) => {
            let line = if as_json {
                json::to_line(r).unwrap_or_default()
            } else {
                format!(
                    "epoch {:>3}/{}  train loss {:.4} acc {:5.2}%  test loss {:.4} acc {:5.2}%  lr {:.2e}  {:.0} img/s{}",
                    r.epoch,
                    a.epochs,
                    r.train_loss,
                    100.0 * r.train_accuracy,
                    r.test_loss,
                    100.0 * r.test_accuracy,
                    r.lr,
                    r.images_per_second,
                    if r.best { "  *best" } else { "" }
                )
            };
            match &bar {
                Some(b) => b.suspend(|| println!("{line}")),
                None => println!("{line}"),
            }
        }
    };
    if a.force {
        replace_run(&out)?;
    }
    let (_model, s) = train(&graph, &splits, &cfg, device, &mut on_event).context("training")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let checkpoint = s.best_checkpoint.clone().or(s.last_checkpoint.clone());
    if a.json {
        json::print(&serde_json::json!({
            "accuracy": s.best_accuracy,
            "final_accuracy": s.final_accuracy,
            "best_epoch": s.best_epoch,
            "epochs": s.epochs,
            "relu_count": s.relu_count,
            "checkpoint": checkpoint,
            "last_checkpoint": s.last_checkpoint,
            "log": s.log,
            "images_per_second": s.images_per_second,
            "device": device_name(device),
            "dataset": kind.name(),
            "model": a.model.to_string(),
        }))?;
    } else {
        println!(
            "best test accuracy {:.2}% (epoch {}), final {:.2}%, {} ReLUs, {:.0} img/s",
            100.0 * s.best_accuracy,
            s.best_epoch,
            100.0 * s.final_accuracy,
            s.relu_count,
            s.images_per_second
        );
        if let Some(c) = checkpoint {
            println!("checkpoint: {}", c.display());
        }
    }
    Ok(())
}
