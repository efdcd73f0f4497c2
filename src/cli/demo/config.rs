//! What a demo run is given and works on: its arguments, the sizes they imply, and its data split
//! into training, validation and held-out images.

use std::path::PathBuf;

use anyhow::{Result, bail};
use masq_exporter::ModelSpec;
use masq_trainer::data::{self, DatasetKind, Splits, SyntheticConfig};
use masq_trainer::device::Device;
use masq_trainer::reduce::ReplacementKind;

use crate::cli::common::{args, training};

/// Arguments of `masq demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// synthetic (built in, needs no files) | mnist | fashion-mnist | cifar10 | cifar100 | tiny-imagenet
    /// | folder[@SIZE] (with --data).
    #[arg(long, default_value = "synthetic", value_name = "DATASET", value_parser = args::dataset)]
    pub dataset: DatasetKind,
    /// Directory of the dataset's files (not needed for synthetic).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Start from this model instead of training one: a masq checkpoint (.safetensors), an artifact
    /// directory, a .onnx file or zoo:NAME (built for the dataset) with --weights.
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub from: Option<ModelSpec>,
    /// Weights for --from (safetensors, e.g. a PyTorch state dict; `module.` is stripped).
    #[arg(long, requires = "from")]
    pub weights: Option<PathBuf>,
    /// The network trained when no --from is given (a zoo model is built for the dataset).
    #[arg(long, default_value = "zoo:cnn_small", value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// ReLU budgets, comma separated (default: 2%, 0.5% and 0.1% of the model's ReLUs).
    #[arg(long, value_delimiter = ',')]
    pub budgets: Vec<u64>,
    /// What replaces a removed ReLU: poly1 (per-channel a·x + b; linear, so free under 2PC) |
    /// identity | poly2 (a·x² + b·x + c: one secure square per element, which costs as much online
    /// as a ReLU under masq's protocol and saves only dealer bytes and compute) | dapa.
    #[arg(long, default_value = "poly1", value_name = "REPLACEMENT", value_parser = args::reduce_replacement)]
    pub replacement: ReplacementKind,
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
    /// auto (the first CUDA device if there is one, else the CPU) | cpu | cuda | cuda:N (training
    /// only; 2PC runs on the CPU).
    #[arg(long, default_value = "auto", value_parser = args::device)]
    pub device: Device,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON Lines instead of the table; the last (here the only) line is the result: the
    /// summary (rows, files, ...), as in summary.json.
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
    pub fn new(a: &DemoArgs) -> Self {
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

/// The demo's data: `p.train_images` training images, and the test split cut into validation and
/// held-out images.
pub fn load_data(a: &DemoArgs, p: &Preset) -> Result<DemoData> {
    let kind = a.dataset;
    let mut splits = if kind == DatasetKind::Synthetic {
        data::synthetic(&SyntheticConfig {
            train: p.train_images,
            test: p.val_images + p.secure_images,
            seed: a.seed,
            ..SyntheticConfig::default()
        })
    } else {
        training::load_data(kind, a.data.as_deref())?
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
