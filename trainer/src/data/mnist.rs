//! MNIST and Fashion-MNIST in the IDX format (`train-images-idx3-ubyte[.gz]`, ...).

use std::path::{Path, PathBuf};

use super::decode::{IdxFile, decode_idx_pair};
use super::{Dataset, DatasetKind, Split, read_maybe_gz};
use crate::error::{Result, TrainerError};

/// Parse an images file (magic 2051) and a labels file (magic 2049).
pub fn read_idx_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    let ib = read_maybe_gz(images)?;
    let lb = read_maybe_gz(labels)?;
    let d = decode_idx_pair(&ib, &lb, classes).map_err(|(which, reason)| {
        let file = match which {
            IdxFile::Images => images,
            IdxFile::Labels => labels,
        };
        TrainerError::DataFile { file: file.to_path_buf(), reason }
    })?;
    Ok(Dataset { images: d.images, labels: d.labels, shape: d.shape, classes })
}

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [
        stem.to_string(),
        format!("{stem}.gz"),
        stem.replace("-idx", ".idx"),
        format!("{}.gz", stem.replace("-idx", ".idx")),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

pub(super) fn load(kind: DatasetKind, dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = if split == Split::Train { "train" } else { "t10k" };
    let (i, l) = (format!("{prefix}-images-idx3-ubyte"), format!("{prefix}-labels-idx1-ubyte"));
    match (find(dir, &i), find(dir, &l)) {
        (Some(i), Some(l)) => read_idx_pair(&i, &l, kind.classes()),
        _ => Err(TrainerError::Data {
            dataset: kind.name().to_string(),
            reason: format!("no {i}[.gz] / {l}[.gz] in {}", dir.display()),
        }),
    }
}
