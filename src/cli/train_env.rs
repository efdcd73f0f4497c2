//! Options shared by the commands that train (`train`, `reduce`): device, seed, threads and how
//! much of the dataset to use, and the set-up they imply.

use std::path::Path;

use anyhow::{Context, Result, bail};
use masq_trainer::data::{DatasetKind, Splits};
use masq_trainer::device::{Device, parse_device};

/// Where and on how much data a training command runs.
#[derive(Debug, clap::Args)]
pub struct TrainEnv {
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Stop each epoch after N batches.
    #[arg(long)]
    pub max_batches: Option<usize>,
}

impl TrainEnv {
    /// Parses the dataset name and device, sets libtorch's thread count, and loads the dataset
    /// (trimmed to the limits).
    pub fn prepare(&self, dataset: &str, data: Option<&Path>) -> Result<(DatasetKind, Device, Splits)> {
        let kind = DatasetKind::parse(dataset)?;
        let device = parse_device(&self.device)?;
        if let Some(t) = self.threads {
            if t == 0 {
                bail!("--threads must be positive");
            }
            masq_trainer::device::set_threads(t);
        }
        let mut splits = super::train::load_data(kind, data)?;
        if let Some(n) = self.train_limit {
            splits.train.truncate(n);
        }
        if let Some(n) = self.test_limit {
            splits.test.truncate(n);
        }
        Ok((kind, device, splits))
    }
}

/// Whether a `--from` / `--model` spec names a masq checkpoint (rather than `zoo:NAME` or a `.onnx`).
pub fn is_checkpoint(spec: &str) -> bool {
    spec.to_ascii_lowercase().ends_with(".safetensors") && !spec.starts_with("zoo:")
}

/// `zoo:NAME` (built for the dataset) or a `.onnx` file, with `weights` (safetensors; `module.`
/// stripped) applied when given.
pub fn model_with_weights(
    spec: &str,
    weights: Option<&Path>,
    splits: &Splits,
    seed: u64,
) -> Result<masq_ir::Graph> {
    let mut g = super::train::model_for(spec, splits, seed).with_context(|| format!("loading {spec}"))?;
    if let Some(w) = weights {
        let t = masq_ir::weights::read_safetensors(w).with_context(|| format!("reading {}", w.display()))?;
        masq_ir::zoo::apply_weights(&mut g, &t).with_context(|| format!("applying {}", w.display()))?;
    }
    Ok(g)
}

/// The line a training command prints before it starts (`training`, `reducing`).
pub fn announce(verb: &str, model: &str, dataset: &str, splits: &Splits, device: Device, out: &Path) {
    eprintln!(
        "{verb} {model} on {dataset} ({} train / {} test images) on {}, output in {}",
        splits.train.len(),
        splits.test.len(),
        masq_trainer::device::device_name(device),
        out.display()
    );
}
