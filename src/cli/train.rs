//! `masq train`: train a model (zoo or file) on a dataset with tch, writing checkpoints and a log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use masq_ir::Graph;
use masq_trainer::data::{self, DatasetKind, Splits};
use masq_trainer::device::device_name;
use masq_trainer::optim::OptimizerKind;
use masq_trainer::train::{Event, TrainConfig, train};

use super::progress;

/// Arguments of `masq train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// zoo:NAME (built for the dataset's input size and classes), a .onnx file or a masq checkpoint
    /// (.safetensors) to continue training from.
    #[arg(long)]
    pub model: String,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder (DIR/train/<class>/*.jpg|png,
    /// DIR/val/<class>/...) | synthetic (built in, needs no files). tiny-imagenet and folder take @SIZE
    /// or @HxW to resize every image (folder@64).
    #[arg(long)]
    pub dataset: String,
    /// Directory of the dataset's files (or a parent holding e.g. cifar10/).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Peak learning rate (default: 0.1 for sgd, 1e-3 for adam).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f64,
    /// sgd (momentum 0.9) | adam.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay (default: 5e-4 for sgd, 0 for adam).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Linear learning-rate warm-up, in epochs.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f64,
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value.
    #[arg(long)]
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
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub env: super::train_env::TrainEnv,
    /// Print per-epoch lines as JSON; the last stdout line is one JSON object with accuracy,
    /// relu_count and checkpoint.
    #[arg(long)]
    pub json: bool,
}

/// Build the model for a dataset: zoo models get the dataset's input size and class count.
pub(super) fn model_for(spec: &str, splits: &Splits, seed: u64) -> Result<Graph> {
    if let Some(rest) = spec.strip_prefix("zoo:") {
        let z = masq_ir::zoo::ZooSpec::parse(rest)?;
        let [c, h, w] = splits.train.shape;
        if let Some(hw) = z.input_hw
            && hw != (h, w)
        {
            bail!("{spec}: input {hw:?} but the dataset's images are {h}x{w}");
        }
        let mut cfg = masq_ir::zoo::ZooConfig::new(&z.name);
        cfg.input = Some((c, h, w));
        cfg.num_classes = splits.train.classes;
        cfg.seed = seed;
        return Ok(masq_ir::zoo::build_with(&cfg)?);
    }
    Ok(masq_exporter::load_model(spec)?)
}

pub(super) fn load_data(kind: DatasetKind, dir: Option<&Path>) -> Result<Splits> {
    data::load(kind, dir).with_context(|| format!("loading dataset {}", kind.name()))
}

pub fn run(a: TrainArgs) -> Result<()> {
    let (kind, device, splits) = a.env.prepare(&a.dataset, a.data.as_deref())?;
    let optimizer = match a.optimizer.to_ascii_lowercase().as_str() {
        "sgd" => OptimizerKind::Sgd { momentum: a.momentum, nesterov: false },
        "adam" => OptimizerKind::adam(),
        other => bail!("unknown --optimizer {other:?} (sgd or adam)"),
    };
    let is_sgd = matches!(optimizer, OptimizerKind::Sgd { .. });
    let graph = model_for(&a.model, &splits, a.env.seed).with_context(|| format!("loading {}", a.model))?;
    let model_tag: String =
        a.model.trim_start_matches("zoo:").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{model_tag}-{}", kind.name())));

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
        super::train_env::announce("training", &graph.name, kind.name(), &splits, device, &out);
    }

    let quiet = a.json;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut relus = 0u64;
    let json = a.json;
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
            if let Some(b) = &bar {
                b.suspend(|| {
                    if json {
                        println!("{}", serde_json::to_string(r).unwrap_or_default());
                    } else {
                        println!(
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
                        );
                    }
                });
            }
        }
    };
    let (_model, s) = train(&graph, &splits, &cfg, device, &mut on_event).context("training")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let checkpoint = s.best_checkpoint.clone().or(s.last_checkpoint.clone());
    if a.json {
        let v = serde_json::json!({
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
            "model": a.model,
        });
        println!("{v}");
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
