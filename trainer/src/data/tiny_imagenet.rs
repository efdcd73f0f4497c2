//! Tiny-ImageNet-200 in its official layout (200 classes of 64×64 RGB JPEGs, some of them
//! grayscale, which are converted to 3 channels):
//!
//! ```text
//! DIR/wnids.txt                         one WordNet id per line
//! DIR/train/<wnid>/images/*.JPEG        500 per class
//! DIR/val/images/*.JPEG                 10,000
//! DIR/val/val_annotations.txt           file <TAB> wnid <TAB> bounding box...
//! ```
//!
//! The test split is `val/` (the official `test/` has no labels). Class indices follow the sorted
//! WordNet ids (the order of torchvision's `ImageFolder` on `train/`).

use std::path::{Path, PathBuf};

use super::decode::{parse_val_annotations, parse_wnids};
use super::folder::{image_files, read_images};
use super::{Dataset, DatasetKind, Split};
use crate::error::{Result, TrainerError};

/// Image side of the official files.
pub const TINY_IMAGENET_SIZE: usize = 64;

fn data_err(reason: String) -> TrainerError {
    TrainerError::Data { dataset: DatasetKind::TinyImageNet { image_size: None }.name().to_string(), reason }
}

/// The sorted WordNet ids of `DIR/wnids.txt`.
pub fn read_wnids(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("wnids.txt");
    if !path.is_file() {
        return Err(data_err(format!(
            "no {} (expected the Tiny-ImageNet-200 layout: wnids.txt, train/<wnid>/images/, val/images/, \
             val/val_annotations.txt)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| TrainerError::io(&path, e))?;
    parse_wnids(&text).map_err(|reason| TrainerError::DataFile { file: path, reason })
}

/// The files and labels of one split (no decoding), with the sorted WordNet ids.
pub fn tiny_imagenet_files(dir: &Path, split: Split) -> Result<(Vec<String>, Vec<PathBuf>, Vec<i64>)> {
    let wnids = read_wnids(dir)?;
    let mut files = Vec::new();
    let mut labels = Vec::new();
    match split {
        Split::Train => {
            for (label, w) in wnids.iter().enumerate() {
                let d = dir.join("train").join(w).join("images");
                if !d.is_dir() {
                    return Err(data_err(format!("{} (class {w} of wnids.txt) is not a directory", d.display())));
                }
                let f = image_files(&d)?;
                if f.is_empty() {
                    return Err(data_err(format!("{} has no .JPEG/.jpg/.png images", d.display())));
                }
                labels.extend(std::iter::repeat_n(label as i64, f.len()));
                files.extend(f);
            }
        }
        Split::Test => {
            let ann = dir.join("val").join("val_annotations.txt");
            if !ann.is_file() {
                return Err(data_err(format!("no {} (labels of the validation images)", ann.display())));
            }
            let text = std::fs::read_to_string(&ann).map_err(|e| TrainerError::io(&ann, e))?;
            let images = dir.join("val").join("images");
            let ann =
                parse_val_annotations(&text, &wnids).map_err(|reason| TrainerError::DataFile { file: ann, reason })?;
            for (file, label) in ann {
                files.push(images.join(file));
                labels.push(label);
            }
        }
    }
    Ok((wnids, files, labels))
}

pub(super) fn load(dir: &Path, split: Split, size: Option<(usize, usize)>) -> Result<Dataset> {
    let (wnids, files, labels) = tiny_imagenet_files(dir, split)?;
    read_images(&files, labels, wnids.len(), size, Some((TINY_IMAGENET_SIZE, TINY_IMAGENET_SIZE)))
}
