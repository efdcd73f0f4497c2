//! `masq demo`: the whole path in one command. Train a small CNN (or take a given model), cut its
//! ReLUs to several budgets with AutoReP and with random masks, export every model as an artifact,
//! evaluate each in the clear and under 2PC on held-out images, and write a table, a JSON summary and
//! plots (accuracy versus ReLUs, per-layer ReLUs) into one directory.

mod evaluate;
mod output;
mod phases;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use masq_trainer::data::{self, DatasetKind, Splits, SyntheticConfig};
use masq_trainer::device::parse_device;

/// Arguments of `masq demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// synthetic (built in, needs no files) | mnist | fashion-mnist | cifar10 | cifar100 (with --data).
    #[arg(long, default_value = "synthetic")]
    pub dataset: String,
    /// Directory of the dataset's files (not needed for synthetic).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Start from this model instead of training one: a masq checkpoint (.safetensors), a .onnx file
    /// or zoo:NAME with --weights.
    #[arg(long)]
    pub from: Option<String>,
    /// Weights for --from zoo:NAME (safetensors; `module.` is stripped).
    #[arg(long, requires = "from")]
    pub weights: Option<PathBuf>,
    /// The network trained when no --from is given.
    #[arg(long, default_value = "zoo:cnn_small")]
    pub model: String,
    /// ReLU budgets, comma separated (default: 2%, 0.5% and 0.1% of the model's ReLUs).
    #[arg(long, value_delimiter = ',')]
    pub budgets: Vec<u64>,
    /// What replaces a removed ReLU: poly1 (per-channel a·x + b; linear, so free under 2PC) |
    /// identity | poly2 (a·x² + b·x + c: one secure square per element, which costs as much online
    /// as a ReLU under masq's protocol and saves only dealer bytes and compute) | dapa.
    #[arg(long, default_value = "poly1")]
    pub replacement: String,
    /// Output directory (artifacts, summary.json, plots); re-running replaces what it wrote.
    #[arg(long, default_value = "masq-demo")]
    pub out: PathBuf,
    /// A seconds-long configuration (small data, few epochs) for tests and a first look.
    #[arg(long)]
    pub quick: bool,
    /// Training epochs of the baseline.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// AutoReP search epochs per budget.
    #[arg(long)]
    pub mask_epochs: Option<usize>,
    /// Finetune epochs (frozen masks) per reduced model.
    #[arg(long)]
    pub finetune_epochs: Option<usize>,
    /// Training images used (default: 6,000; quick: 1,000).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Held-out images evaluated in the clear and under 2PC (default: 256; quick: 32); taken from
    /// the end of the test split and never used for training or model selection.
    #[arg(long)]
    pub secure_images: Option<usize>,
    /// auto | cpu | cuda | cuda:N (training only; 2PC runs on the CPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// The default budgets, as fractions of the model's ReLUs.
pub const DEFAULT_FRACTIONS: [f64; 3] = [0.02, 0.005, 0.001];

/// Sizes of one demo run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preset {
    pub train_images: usize,
    /// Validation images (model selection during training and reduction).
    pub val_images: usize,
    pub secure_images: usize,
    pub epochs: usize,
    pub mask_epochs: usize,
    pub finetune_epochs: usize,
    pub batch_size: usize,
}

impl Preset {
    fn new(a: &DemoArgs) -> Self {
        let mut p = if a.quick {
            Preset {
                train_images: 1_000,
                val_images: 200,
                secure_images: 32,
                epochs: 2,
                mask_epochs: 2,
                finetune_epochs: 1,
                batch_size: 100,
            }
        } else {
            Preset {
                train_images: 6_000,
                val_images: 1_000,
                secure_images: 256,
                epochs: 4,
                mask_epochs: 4,
                finetune_epochs: 2,
                batch_size: 128,
            }
        };
        p.train_images = a.train_limit.unwrap_or(p.train_images);
        p.secure_images = a.secure_images.unwrap_or(p.secure_images);
        p.epochs = a.epochs.unwrap_or(p.epochs);
        p.mask_epochs = a.mask_epochs.unwrap_or(p.mask_epochs);
        p.finetune_epochs = a.finetune_epochs.unwrap_or(p.finetune_epochs);
        p
    }
}

/// The data of a demo: training, validation (model selection) and held-out (final figures) images.
pub struct DemoData {
    pub kind: DatasetKind,
    /// `train` and `test` (= validation) as the trainer sees them.
    pub splits: Splits,
    pub held_out: data::Dataset,
}

fn load_data(a: &DemoArgs, p: &Preset) -> Result<DemoData> {
    let kind = DatasetKind::parse(&a.dataset)?;
    let mut splits = if kind == DatasetKind::Synthetic {
        data::synthetic(&SyntheticConfig {
            train: p.train_images,
            test: p.val_images + p.secure_images,
            seed: a.seed,
            ..SyntheticConfig::default()
        })
    } else {
        data::load(kind, a.data.as_deref()).with_context(|| format!("loading dataset {}", kind.name()))?
    };
    splits.train.truncate(p.train_images);
    let test = &splits.test;
    if test.len() < p.secure_images + 1 {
        bail!(
            "the {} test split has {} images: too few for {} held-out images plus validation",
            kind.name(),
            test.len(),
            p.secure_images
        );
    }
    // Held out: the last `secure_images` test images; validation: up to `val_images` before them.
    let split_at = test.len() - p.secure_images;
    let held_out = subset(test, split_at, test.len());
    let val_start = split_at.saturating_sub(p.val_images.max(1));
    splits.test = subset(test, val_start, split_at);
    Ok(DemoData { kind, splits, held_out })
}

fn subset(d: &data::Dataset, from: usize, to: usize) -> data::Dataset {
    let n = d.image_len();
    data::Dataset {
        images: d.images[from * n..to * n].to_vec(),
        labels: d.labels[from..to].to_vec(),
        shape: d.shape,
        classes: d.classes,
    }
}

pub fn run(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let preset = Preset::new(&a);
    if preset.secure_images == 0 {
        bail!("--secure-images must be at least 1");
    }
    let device = parse_device(&a.device)?;
    masq_trainer::reduce::ReplacementKind::parse(&a.replacement)?;
    if a.budgets.contains(&0) {
        bail!("budget 0: a budget is a number of ReLUs to keep, at least 1");
    }
    if let Some(t) = a.threads {
        if t == 0 {
            bail!("--threads must be positive");
        }
        masq_trainer::device::set_threads(t);
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let say = |msg: &str| {
        if !a.json {
            eprintln!("{msg}");
        }
    };
    let data = load_data(&a, &preset)?;
    say(&format!(
        "masq demo: {} ({} training, {} validation, {} held-out images), output in {}",
        data.splits.source,
        data.splits.train.len(),
        data.splits.test.len(),
        data.held_out.len(),
        a.out.display()
    ));
    let ctx = phases::Ctx { args: &a, preset: &preset, data: &data, device, quiet: a.json };

    say("[1/4] baseline");
    let base = phases::baseline(&ctx)?;
    let total = base.relu_count;
    let budgets = if a.budgets.is_empty() {
        DEFAULT_FRACTIONS.iter().map(|f| ((total as f64 * f).round() as u64).max(1)).collect()
    } else {
        a.budgets.clone()
    };
    if let Some(b) = budgets.iter().find(|&&b| b == 0 || b > total) {
        bail!("budget {b} is outside 1..={total} (the model's ReLUs)");
    }

    say(&format!("[2/4] reducing {total} ReLUs to {budgets:?} with autorep and random"));
    let mut reduced = Vec::new();
    for &b in &budgets {
        for method in ["autorep", "random"] {
            reduced.push(phases::reduce(&ctx, &base, method, b)?);
        }
    }

    say("[3/4] exporting and evaluating in the clear and under 2PC");
    let mut rows = Vec::new();
    let models: Vec<&phases::Trained> = std::iter::once(&base).chain(reduced.iter()).collect();
    let pb = super::progress::bar(models.len() as u64, "evaluating", a.json);
    for m in models {
        pb.set_message(format!("evaluating {}", m.name));
        let dir = phases::export(&ctx, m)?;
        rows.push(evaluate::evaluate(m, &dir, &data, preset.secure_images)?);
        pb.inc(1);
    }
    pb.finish_and_clear();

    say("[4/4] writing the summary and plots");
    let summary = output::Summary::new(&a, &preset, &data, rows, t0.elapsed().as_secs_f64());
    let files = output::write(&summary, &a.out)?;
    if a.json {
        println!("{}", serde_json::to_string(&summary).context("serialising the summary")?);
    } else {
        print!("{}", output::table(&summary));
        println!("wrote {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
        println!("total time {:.0} s", t0.elapsed().as_secs_f64());
    }
    Ok(())
}
