//! MNIST and Fashion-MNIST in the IDX format (`train-images-idx3-ubyte[.gz]`, ...).

use std::path::{Path, PathBuf};

use super::{Dataset, DatasetKind, Split, read_maybe_gz};
use crate::error::{Result, TrainerError};

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Parse an images file (magic 2051) and a labels file (magic 2049).
pub fn read_idx_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    let bad = |file: &Path, reason: String| TrainerError::DataFile { file: file.to_path_buf(), reason };
    let ib = read_maybe_gz(images)?;
    let lb = read_maybe_gz(labels)?;
    if ib.len() < 16 || be32(&ib, 0) != 2051 {
        return Err(bad(images, "not an IDX image file (magic 2051)".into()));
    }
    if lb.len() < 8 || be32(&lb, 0) != 2049 {
        return Err(bad(labels, "not an IDX label file (magic 2049)".into()));
    }
    let (n, h, w) = (be32(&ib, 4), be32(&ib, 8), be32(&ib, 12));
    if ib.len() != 16 + n * h * w {
        return Err(bad(images, format!("{} bytes, header says {n}×{h}×{w}", ib.len())));
    }
    let nl = be32(&lb, 4);
    if nl != n || lb.len() != 8 + n {
        return Err(bad(labels, format!("{nl} labels for {n} images")));
    }
    let labels_v: Vec<i64> = lb[8..].iter().map(|&l| l as i64).collect();
    if let Some((i, l)) = labels_v.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
        return Err(bad(labels, format!("label {l} at {i} out of range")));
    }
    Ok(Dataset { images: ib[16..].to_vec(), labels: labels_v, shape: [1, h, w], classes })
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
