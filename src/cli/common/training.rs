//! Options shared by the commands that train (`train`, `reduce`): device, seed, threads and how
//! much of the dataset to use, and the set-up they imply.

use std::path::Path;

use anyhow::{Context, Result};
use masq_trainer::data::{self, DatasetKind, Splits};
use masq_trainer::device::Device;

/// Where and on how much data a training command runs.
#[derive(Debug, clap::Args)]
pub struct TrainEnv {
    /// auto (the first CUDA device if there is one, else the CPU) | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto", value_parser = super::args::device)]
    pub device: Device,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub threads: Option<usize>,
    /// Use only the first N training images.
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Stop each epoch after N batches.
    #[arg(long, value_name = "N")]
    pub max_batches: Option<usize>,
}

impl TrainEnv {
    /// Sets libtorch's thread count and loads the dataset (trimmed to the limits).
    pub fn prepare(&self, kind: DatasetKind, data: Option<&Path>) -> Result<Splits> {
        set_threads(self.threads);
        let mut splits = load_data(kind, data)?;
        if let Some(n) = self.train_limit {
            splits.train.truncate(n);
        }
        if let Some(n) = self.test_limit {
            splits.test.truncate(n);
        }
        Ok(splits)
    }
}

/// Set libtorch's CPU thread count when one is given.
pub fn set_threads(threads: Option<usize>) {
    if let Some(t) = threads {
        masq_trainer::device::set_threads(t);
    }
}

/// Both splits of a dataset, from `dir` (or its parent holding e.g. `cifar10/`).
pub fn load_data(kind: DatasetKind, dir: Option<&Path>) -> Result<Splits> {
    data::load(kind, dir).with_context(|| format!("loading dataset {}", kind.name()))
}

/// The line a training command prints (on stderr) before it starts (`training`, `reducing`).
pub fn announce(verb: &str, model: &str, dataset: &str, splits: &Splits, device: Device, out: &Path) {
    eprintln!(
        "{verb} {model} on {dataset} ({} train / {} test images) on {}, output in {}",
        splits.train.len(),
        splits.test.len(),
        masq_trainer::device::device_name(device),
        out.display()
    );
}
