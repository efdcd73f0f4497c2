//! `masq reduce`: cut a trained model's ReLUs to a budget (AutoReP, SNL, or a random mask), writing
//! a checkpoint with `MaskedAct` nodes.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use masq_exporter::ModelSpec;
use masq_trainer::data::{self, DatasetKind};
use masq_trainer::device::device_name;
use masq_trainer::reduce::{Budget, GateKind, Method, ReduceConfig, ReduceEvent, ReplacementKind, reduce};

use super::common::training::{self, TrainEnv};
use super::common::{args, json, model, progress};

/// The reduction method of `masq reduce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// AutoReP: trainable per-element gates pushed to the budget by a hinge.
    Autorep,
    /// SNL: continuous gates with an L1 penalty, then thresholded to the budget.
    Snl,
    /// A random mask at exactly the budget (the floor every method must beat).
    Random,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Autorep => Method::AutoRep,
            MethodArg::Snl => Method::Snl,
            MethodArg::Random => Method::Random,
        }
    }
}

/// Arguments of `masq reduce`.
#[derive(Debug, clap::Args)]
pub struct ReduceArgs {
    /// The trained model: a masq checkpoint (its normalisation is used), an artifact directory, a
    /// .onnx file or zoo:NAME (built for the dataset; with --weights).
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub from: ModelSpec,
    /// Weights for the model (safetensors, e.g. a PyTorch state dict; `module.` is stripped).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder | synthetic (tiny-imagenet
    /// and folder take @SIZE or @HxW to resize every image).
    #[arg(long, value_name = "DATASET", value_parser = args::dataset)]
    pub dataset: DatasetKind,
    /// Directory of the dataset's files (or a parent holding e.g. cifar10/).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// ReLUs to keep (absolute).
    #[arg(long, conflicts_with = "relu_sparsity", required_unless_present = "relu_sparsity")]
    pub relu_budget: Option<u64>,
    /// Fraction of the ReLUs to remove.
    #[arg(long)]
    pub relu_sparsity: Option<f64>,
    /// How to choose the ReLUs to keep.
    #[arg(long, value_enum, ignore_case = true, default_value_t = MethodArg::Autorep)]
    pub method: MethodArg,
    /// AutoReP's gate: ste | hysteresis[:θ] (θ default 3e-3) | spgrad[:θ].
    #[arg(long, default_value = "hysteresis:3e-3", value_name = "GATE", value_parser = args::gate)]
    pub gate: GateKind,
    /// What replaces a removed ReLU: identity | poly1 | poly2 | dapa | fixed:a,b,c (a·x² + b·x + c)
    /// (default: poly2; identity with --gate spgrad, the only one it takes).
    #[arg(long, value_name = "REPLACEMENT", value_parser = args::reduce_replacement)]
    pub replacement: Option<ReplacementKind>,
    /// Weight λ of the budget hinge λ·max(0, ReLUs/N − budget/N) (AutoReP's scripts use 80–240).
    #[arg(long, default_value_t = masq_trainer::reduce::DEFAULT_LAMBDA)]
    pub lambda: f64,
    #[arg(long, default_value_t = 10)]
    pub mask_epochs: usize,
    #[arg(long, default_value_t = 5)]
    pub finetune_epochs: usize,
    /// Distil from the starting model (T = 4).
    #[arg(long)]
    pub distill: bool,
    /// Adam learning rate of the weights.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Adam learning rate of the gate parameters (default: max(1e-3, 3 / search steps), so that a
    /// short search can still carry gates from U(0,1) below zero).
    #[arg(long)]
    pub mask_lr: Option<f64>,
    /// SNL: the starting weight η of the L1 term on the gates (grown ×1.1 after epoch 5 whenever the
    /// ReLU count did not fall; SNL's default 1e-5).
    #[arg(long, default_value_t = 1e-5)]
    pub snl_eta: f64,
    /// Mask dropout probability in the finetune.
    #[arg(long, default_value_t = 0.0)]
    pub mask_dropout: f64,
    /// DaPa: use the running variance where the fit wants a standard deviation (AutoReP's quirk).
    #[arg(long)]
    pub dapa_variance_quirk: bool,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// No training augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Output directory (reduced.safetensors); default runs/reduce-<dataset>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub env: TrainEnv,
    /// Print JSON Lines: one line per epoch, and the last line is the result (accuracy,
    /// relu_count, checkpoint, layers, ...).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ReduceArgs) -> Result<()> {
    let (kind, device) = (a.dataset, a.env.device);
    let splits = a.env.prepare(kind, a.data.as_deref())?;
    let (graph, norm) = model::load_trainable(&a.from, a.weights.as_deref(), &splits, kind, a.env.seed, "reduce")?;
    let budget = match (a.relu_budget, a.relu_sparsity) {
        (Some(n), None) => Budget::Count(n),
        (None, Some(s)) => Budget::Sparsity(s),
        _ => bail!("give exactly one of --relu-budget and --relu-sparsity"),
    };
    let augment = if a.no_augment { data::Augment::NONE } else { kind.default_augment_for(splits.train.shape) };
    let mut cfg = ReduceConfig::new(kind.name(), norm, augment, budget);
    cfg.method = a.method.into();
    cfg.gate = a.gate;
    cfg.replacement = a.replacement.unwrap_or(match a.gate {
        GateKind::SpGrad(_) => ReplacementKind::Identity,
        _ => ReplacementKind::Poly2,
    });
    cfg.lambda = a.lambda;
    cfg.mask_epochs = a.mask_epochs;
    cfg.finetune_epochs = a.finetune_epochs;
    cfg.distill = a.distill;
    cfg.lr = a.lr;
    cfg.mask_lr = a.mask_lr;
    if !(a.snl_eta.is_finite() && a.snl_eta >= 0.0) {
        bail!("--snl-eta must be a non-negative number, got {}", a.snl_eta);
    }
    cfg.snl_eta = a.snl_eta;
    cfg.mask_dropout = a.mask_dropout;
    cfg.dapa_variance_quirk = a.dapa_variance_quirk;
    cfg.batch_size = a.batch_size;
    cfg.seed = a.env.seed;
    cfg.max_batches = a.env.max_batches;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("reduce-{}", kind.name())));
    cfg.out_dir = Some(out.clone());
    if !a.json {
        training::announce("reducing", &graph.name, kind.name(), &splits, device, &out);
    }
    let as_json = a.json;
    let mut bar = progress::ReduceBar::new("", as_json);
    let (_, s) = reduce(&graph, &splits, &cfg, device, &mut |e| {
        match e {
            ReduceEvent::Stage { stage, epochs, batches_per_epoch, mask_lr: Some(l) } if !as_json => {
                eprintln!("{stage}: {epochs} epochs of {batches_per_epoch} batches, gate learning rate {l:.3e}");
            }
            ReduceEvent::Epoch(e) if as_json => bar.println(&json::to_line(e).unwrap_or_default()),
            ReduceEvent::Epoch(e) => bar.println(&format!(
                "{:>8} epoch {:>3}  loss {:.4}  test acc {:5.2}%  relus {}  {:.1}s{}",
                e.stage,
                e.epoch,
                e.train_loss,
                100.0 * e.test_accuracy,
                e.relu_count,
                e.seconds,
                if e.kept { "  *kept" } else { "" }
            )),
            _ => {}
        }
        bar.update(e);
    })
    .context("reducing")?;
    bar.finish();
    if a.json {
        json::print(&serde_json::json!({
            "accuracy": s.accuracy,
            "accuracy_before": s.accuracy_before,
            "relu_count": s.relu_count,
            "relu_before": s.relu_before,
            "relu_budget": s.relu_budget,
            "reached_budget": s.reached_budget,
            "forced": s.forced,
            "filled": s.filled,
            "checkpoint": s.checkpoint,
            "layers": s.layers,
            "method": cfg.method,
            "mask_lr": s.mask_lr,
            "seconds": s.seconds,
            "device": device_name(device),
            "dataset": kind.name(),
        }))?;
    } else {
        for l in &s.layers {
            println!("  {:<32} {:>9} -> {:>9}", l.name, l.before, l.after);
        }
        println!(
            "{} -> {} ReLUs (budget {}{}), test accuracy {:.2}% (before {:.2}%), {:.0}s",
            s.relu_before,
            s.relu_count,
            s.relu_budget,
            if s.forced {
                ", forced by top-budget gates".to_string()
            } else if s.filled > 0 {
                format!(", {} given back after the search overshot", s.filled)
            } else {
                String::new()
            },
            100.0 * s.accuracy,
            100.0 * s.accuracy_before,
            s.seconds
        );
        if let Some(c) = &s.checkpoint {
            println!("checkpoint: {}", c.display());
        }
    }
    Ok(())
}
