//! CIFAR-10/100 binary records: CIFAR-10 `label, 3072 pixels`; CIFAR-100 `coarse, fine, 3072
//! pixels` (the fine label is used). Files may be gzipped and may hold any number of records.

use std::path::{Path, PathBuf};

use super::decode::decode_cifar;
use super::{Dataset, DatasetKind, Split, read_maybe_gz};
use crate::error::{Result, TrainerError};

/// Parse one record file.
pub fn read_cifar_file(kind: DatasetKind, path: &Path) -> Result<Dataset> {
    let bytes = read_maybe_gz(path)?;
    let label_bytes = if kind == DatasetKind::Cifar100 { 2 } else { 1 };
    let classes = kind.classes();
    let d = decode_cifar(&bytes, label_bytes, classes)
        .map_err(|reason| TrainerError::DataFile { file: path.to_path_buf(), reason })?;
    Ok(Dataset { images: d.images, labels: d.labels, shape: d.shape, classes })
}

fn existing(dir: &Path, names: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in names {
        for cand in [dir.join(n), dir.join(format!("{n}.gz"))] {
            if cand.is_file() {
                out.push(cand);
                break;
            }
        }
    }
    out
}

fn glob_sorted(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(&pred))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The files of one split, by preference:
/// - CIFAR-10 train: `data_batch_{1..5}.bin[.gz]`, else `jpeg_data_batch_*.bin.gz`, else
///   `exact_data_batch_*`; test: `test_batch.bin[.gz]`, else `exact_test_batch*` (the byte-exact
///   subset used for accuracy claims), else `jpeg_test_batch.bin.gz`.
/// - CIFAR-100: `train.bin[.gz]`, `test.bin[.gz]`.
pub fn resolve_cifar_files(kind: DatasetKind, dir: &Path, split: Split) -> Result<Vec<PathBuf>> {
    let not_found = |what: &str| TrainerError::Data {
        dataset: kind.name().to_string(),
        reason: format!("no {what} files in {}", dir.display()),
    };
    if !dir.is_dir() {
        return Err(TrainerError::Data {
            dataset: kind.name().to_string(),
            reason: format!("{} is not a directory", dir.display()),
        });
    }
    let files = match (kind, split) {
        (DatasetKind::Cifar100, Split::Train) => existing(dir, &["train.bin".to_string()]),
        (DatasetKind::Cifar100, Split::Test) => existing(dir, &["test.bin".to_string()]),
        (_, Split::Train) => {
            let std: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
            let mut f = existing(dir, &std);
            if f.is_empty() {
                f = glob_sorted(dir, |n| n.starts_with("jpeg_data_batch_") && n.contains(".bin"));
            }
            if f.is_empty() {
                f = glob_sorted(dir, |n| n.starts_with("exact_data_batch_") && n.contains(".bin"));
            }
            f
        }
        (_, Split::Test) => {
            let mut f = existing(dir, &["test_batch.bin".to_string()]);
            if f.is_empty() {
                f = glob_sorted(dir, |n| n.starts_with("exact_test_batch") && n.contains(".bin"));
            }
            if f.is_empty() {
                f = glob_sorted(dir, |n| n.starts_with("jpeg_test_batch") && n.contains(".bin"));
            }
            f
        }
    };
    if files.is_empty() {
        return Err(not_found(if split == Split::Train { "training" } else { "test" }));
    }
    Ok(files)
}
