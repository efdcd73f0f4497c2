//! Datasets: CIFAR-10/100 (binary records), MNIST and Fashion-MNIST (IDX), Tiny-ImageNet-200 and
//! image folders (JPEG/PNG files in class directories), and a built-in synthetic image set that
//! needs no files. Images are kept as u8 NCHW in memory; [`Loader`] shuffles, augments
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
pub mod decode;
mod folder;
mod loader;
mod mnist;
mod synthetic;
mod tiny_imagenet;

use std::path::{Path, PathBuf};

pub use cifar::{read_cifar_file, resolve_cifar_files};
pub use folder::{decode_image, folder_classes, folder_files};
pub use loader::{Augment, Loader, Normalisation};
pub use mnist::read_idx_pair;
pub use synthetic::{SyntheticConfig, synthetic};
pub use tiny_imagenet::{TINY_IMAGENET_SIZE, read_wnids, tiny_imagenet_files};

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
    /// Tiny-ImageNet-200 (64×64), optionally resized to `image_size` (height, width).
    TinyImageNet {
        image_size: Option<(usize, usize)>,
    },
    /// JPEG/PNG files in class directories; `image_size` (height, width) resizes every image
    /// (centre crop to the aspect ratio, then bilinear), else all images must have one size.
    Folder {
        image_size: Option<(usize, usize)>,
    },
    Synthetic,
}

impl DatasetKind {
    pub const NAMES: &'static [&'static str] =
        &["cifar10", "cifar100", "mnist", "fashion-mnist", "tiny-imagenet", "folder", "synthetic"];

    /// A name of [`Self::NAMES`] (case-insensitive, `_` = `-`); the image-file datasets also take
    /// `NAME@S` or `NAME@HxW` to resize every image (`folder@64`, `tiny-imagenet@32x32`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: String| TrainerError::Data { dataset: s.to_string(), reason };
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        let (name, size) = match lower.split_once('@') {
            Some((n, sz)) => (n, Some(sz)),
            None => (lower.as_str(), None),
        };
        let image_size = match size {
            None => None,
            Some(sz) => {
                let (h, w) = sz.split_once('x').unwrap_or((sz, sz));
                match (h.trim().parse::<usize>(), w.trim().parse::<usize>()) {
                    (Ok(h), Ok(w)) if (1..=4096).contains(&h) && (1..=4096).contains(&w) => Some((h, w)),
                    _ => return Err(bad(format!("bad image size {sz:?}: give S or HxW, 1 to 4096"))),
                }
            }
        };
        let kind = match name {
            "cifar10" | "cifar-10" => DatasetKind::Cifar10,
            "cifar100" | "cifar-100" => DatasetKind::Cifar100,
            "mnist" => DatasetKind::Mnist,
            "fashion-mnist" | "fashionmnist" | "fmnist" => DatasetKind::FashionMnist,
            "tiny-imagenet" | "tinyimagenet" | "tiny-imagenet-200" => DatasetKind::TinyImageNet { image_size },
            "folder" | "image-folder" | "imagefolder" => DatasetKind::Folder { image_size },
            "synthetic" => DatasetKind::Synthetic,
            _ => return Err(bad(format!("unknown dataset; known: {}", Self::NAMES.join(", ")))),
        };
        if image_size.is_some() && kind.image_size().is_none() {
            return Err(bad("only the image-file datasets (tiny-imagenet, folder) take @SIZE".into()));
        }
        Ok(kind)
    }

    /// The resize target (height, width) of an image-file dataset.
    pub fn image_size(self) -> Option<(usize, usize)> {
        match self {
            DatasetKind::TinyImageNet { image_size } | DatasetKind::Folder { image_size } => image_size,
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::TinyImageNet { .. } => "tiny-imagenet",
            DatasetKind::Folder { .. } => "folder",
            DatasetKind::Synthetic => "synthetic",
        }
    }

    /// The nominal number of classes (a folder dataset's: 0, it comes from the directories; the
    /// loaded [`Dataset::classes`] is the one to use).
    pub fn classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            DatasetKind::TinyImageNet { .. } => 200,
            DatasetKind::Folder { .. } => 0,
            _ => 10,
        }
    }

    /// The normalisation models of this family expect: CIFAR, Tiny-ImageNet and image folders
    /// ImageNet statistics (as the akamaster ResNets), MNIST-like (0.1307, 0.3081), synthetic
    /// (0.5, 0.25).
    pub fn default_norm(self) -> Normalisation {
        match self {
            DatasetKind::Cifar10
            | DatasetKind::Cifar100
            | DatasetKind::TinyImageNet { .. }
            | DatasetKind::Folder { .. } => Normalisation::imagenet(),
            DatasetKind::Mnist => Normalisation::mnist(),
            DatasetKind::FashionMnist => Normalisation { mean: vec![0.2860], std: vec![0.3530] },
            DatasetKind::Synthetic => Normalisation { mean: vec![0.5], std: vec![0.25] },
        }
    }

    /// Training augmentation by default for the family's nominal image size (CIFAR 32, Tiny-ImageNet
    /// 64 or its `@SIZE`, a folder its `@SIZE` or else 32): see [`Self::default_augment_for`].
    pub fn default_augment(self) -> Augment {
        let (h, w) = self.image_size().unwrap_or(match self {
            DatasetKind::TinyImageNet { .. } => (TINY_IMAGENET_SIZE, TINY_IMAGENET_SIZE),
            _ => (32, 32),
        });
        self.default_augment_for([3, h, w])
    }

    /// Training augmentation by default for images of `shape`: for colour natural images (CIFAR,
    /// Tiny-ImageNet, folders) a random crop with padding `min(h, w)/8` (4 at 32×32) and a
    /// horizontal flip; none for the others.
    pub fn default_augment_for(self, shape: [usize; 3]) -> Augment {
        match self {
            DatasetKind::Cifar10
            | DatasetKind::Cifar100
            | DatasetKind::TinyImageNet { .. }
            | DatasetKind::Folder { .. } => Augment { crop_padding: (shape[1].min(shape[2]) / 8).max(1), flip: true },
            _ => Augment { crop_padding: 0, flip: false },
        }
    }
}

/// Read a whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| TrainerError::io(path, e))?;
    decode::gunzip_if_gz(raw).map_err(|reason| TrainerError::DataFile { file: path.to_path_buf(), reason })
}

/// The directory to read a dataset from: `dir` itself, or `dir/<name>` when that exists (so both
/// `$MASQ_DATA_DIR` and `$MASQ_DATA_DIR/cifar10` work).
fn dataset_dir(kind: DatasetKind, dir: &Path) -> PathBuf {
    let names: &[&str] = match kind {
        DatasetKind::Cifar10 => &["cifar10", "cifar-10-batches-bin"],
        DatasetKind::Cifar100 => &["cifar100", "cifar-100-binary"],
        DatasetKind::Mnist => &["mnist"],
        DatasetKind::FashionMnist => &["fashion-mnist", "fashion_mnist", "fashionmnist"],
        DatasetKind::TinyImageNet { .. } => &["tiny-imagenet-200", "tiny-imagenet"],
        DatasetKind::Folder { .. } | DatasetKind::Synthetic => &[],
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
        DatasetKind::TinyImageNet { image_size } => tiny_imagenet::load(&dir, split, image_size),
        DatasetKind::Folder { image_size } => folder::load(&dir, split, image_size),
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
    if train.shape != test.shape || train.classes != test.classes {
        return Err(TrainerError::Data {
            dataset: kind.name().to_string(),
            reason: format!(
                "the training images are {:?} in {} classes but the test images {:?} in {}",
                train.shape, train.classes, test.shape, test.classes
            ),
        });
    }
    let source = dir.map(|d| d.display().to_string()).unwrap_or_default();
    Ok(Splits { train, test, source })
}
