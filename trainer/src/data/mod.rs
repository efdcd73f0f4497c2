//! Datasets: CIFAR-10/100 (binary records), MNIST and Fashion-MNIST (IDX), and a built-in synthetic
//! image set that needs no files. Images are kept as u8 NCHW in memory; [`Loader`] shuffles, augments
//! (random crop with zero padding, horizontal flip), normalises and moves batches to a device.
//!
//! ```
//! use masq_trainer::data::{DatasetKind, SyntheticConfig, synthetic};
//! let s = synthetic(&SyntheticConfig { train: 100, test: 20, ..SyntheticConfig::default() });
//! assert_eq!(s.train.len(), 100);
//! assert_eq!(s.train.shape, [3, 32, 32]);
//! assert_eq!(DatasetKind::parse("cifar10").unwrap().default_norm().mean.len(), 3);
//! ```

mod cifar;
mod loader;
mod mnist;
mod synthetic;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use cifar::{read_cifar_file, resolve_cifar_files};
pub use loader::{Augment, Loader, Normalization};
pub use mnist::read_idx_pair;
pub use synthetic::{SyntheticConfig, synthetic};

use crate::error::{Result, TrainerError};

/// Labelled images in memory, u8 NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `N·C·H·W` bytes.
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    /// Channels, height, width.
    pub shape: [usize; 3],
    pub classes: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The first `n` records.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.image_len());
    }
}

/// A training and a test split.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
    /// Where the splits came from (file names, or "synthetic").
    pub source: String,
}

/// Which split to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The dataset families masq reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    Cifar10,
    Cifar100,
    Mnist,
    FashionMnist,
    Synthetic,
}

impl DatasetKind {
    pub const NAMES: &'static [&'static str] = &["cifar10", "cifar100", "mnist", "fashion-mnist", "synthetic"];

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "cifar10" | "cifar-10" => DatasetKind::Cifar10,
            "cifar100" | "cifar-100" => DatasetKind::Cifar100,
            "mnist" => DatasetKind::Mnist,
            "fashion-mnist" | "fashionmnist" | "fmnist" => DatasetKind::FashionMnist,
            "synthetic" => DatasetKind::Synthetic,
            _ => {
                return Err(TrainerError::Data {
                    dataset: s.to_string(),
                    reason: format!("unknown dataset; known: {}", Self::NAMES.join(", ")),
                });
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Synthetic => "synthetic",
        }
    }

    pub fn classes(self) -> usize {
        if self == DatasetKind::Cifar100 { 100 } else { 10 }
    }

    /// The normalisation models of this family expect: CIFAR as the akamaster ResNets (ImageNet
    /// statistics), MNIST-like (0.1307, 0.3081), synthetic (0.5, 0.25).
    pub fn default_norm(self) -> Normalization {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
                Normalization { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
            }
            DatasetKind::Mnist => Normalization { mean: vec![0.1307], std: vec![0.3081] },
            DatasetKind::FashionMnist => Normalization { mean: vec![0.2860], std: vec![0.3530] },
            DatasetKind::Synthetic => Normalization { mean: vec![0.5], std: vec![0.25] },
        }
    }

    /// Training augmentation by default: CIFAR crop (padding 4) and flip; none for the others.
    pub fn default_augment(self) -> Augment {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => Augment { crop_padding: 4, flip: true },
            _ => Augment { crop_padding: 0, flip: false },
        }
    }
}

/// Read a whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| TrainerError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| TrainerError::DataFile { file: path.to_path_buf(), reason: format!("gzip: {e}") })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The directory to read a dataset from: `dir` itself, or `dir/<name>` when that exists (so both
/// `$MASQ_DATA_DIR` and `$MASQ_DATA_DIR/cifar10` work).
fn dataset_dir(kind: DatasetKind, dir: &Path) -> PathBuf {
    let names: &[&str] = match kind {
        DatasetKind::Cifar10 => &["cifar10", "cifar-10-batches-bin"],
        DatasetKind::Cifar100 => &["cifar100", "cifar-100-binary"],
        DatasetKind::Mnist => &["mnist"],
        DatasetKind::FashionMnist => &["fashion-mnist", "fashion_mnist", "fashionmnist"],
        DatasetKind::Synthetic => &[],
    };
    names.iter().map(|n| dir.join(n)).find(|p| p.is_dir()).unwrap_or_else(|| dir.to_path_buf())
}

/// Load one split. `dir` is required except for the synthetic set (default configuration).
pub fn load_split(kind: DatasetKind, dir: Option<&Path>, split: Split) -> Result<Dataset> {
    if kind == DatasetKind::Synthetic {
        let s = synthetic(&SyntheticConfig::default());
        return Ok(if split == Split::Train { s.train } else { s.test });
    }
    let dir = dir.ok_or_else(|| TrainerError::Data {
        dataset: kind.name().to_string(),
        reason: "needs a data directory (--data DIR)".to_string(),
    })?;
    let dir = dataset_dir(kind, dir);
    match kind {
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
            let files = resolve_cifar_files(kind, &dir, split)?;
            let mut out: Option<Dataset> = None;
            for f in &files {
                let d = read_cifar_file(kind, f)?;
                match &mut out {
                    None => out = Some(d),
                    Some(o) => {
                        o.images.extend_from_slice(&d.images);
                        o.labels.extend_from_slice(&d.labels);
                    }
                }
            }
            out.ok_or_else(|| TrainerError::Data { dataset: kind.name().into(), reason: "no files".into() })
        }
        DatasetKind::Mnist | DatasetKind::FashionMnist => mnist::load(kind, &dir, split),
        DatasetKind::Synthetic => unreachable!("handled above"),
    }
}

/// Load both splits.
pub fn load(kind: DatasetKind, dir: Option<&Path>) -> Result<Splits> {
    if kind == DatasetKind::Synthetic {
        let mut s = synthetic(&SyntheticConfig::default());
        s.source = "synthetic (built in)".into();
        return Ok(s);
    }
    let train = load_split(kind, dir, Split::Train)?;
    let test = load_split(kind, dir, Split::Test)?;
    let source = dir.map(|d| d.display().to_string()).unwrap_or_default();
    Ok(Splits { train, test, source })
}
