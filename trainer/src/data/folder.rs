//! Image files in class directories (the torchvision `ImageFolder` layout), and the JPEG/PNG decoding
//! shared with Tiny-ImageNet.
//!
//! ```text
//! DIR/train/<class>/**/*.{jpg,jpeg,png}
//! DIR/val/<class>/**/*.{jpg,jpeg,png}     (or DIR/test/...)
//! ```
//!
//! Classes are the sorted names of the subdirectories of `train/`; a test class directory must be
//! one of them (a test split may lack some classes). Files with other extensions are skipped.
//! Every image becomes 3-channel RGB (grayscale is replicated, alpha dropped). Without a target
//! size all images must have the size of the first one; with one, each image is centre-cropped to
//! the target's aspect ratio and resized (bilinear).

use std::path::{Path, PathBuf};

use super::decode::decode_image_bytes;
use super::{Dataset, DatasetKind, Split};
use crate::error::{Result, TrainerError};

/// Whether a file name has an image extension this crate decodes (case-insensitive).
pub(super) fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["jpg", "jpeg", "png"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn data_err(kind: DatasetKind, reason: String) -> TrainerError {
    TrainerError::Data { dataset: kind.name().to_string(), reason }
}

/// Sorted entries of a directory (hidden ones skipped).
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| TrainerError::io(dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| TrainerError::io(dir, e))?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}

/// Every image file under `dir` (recursively), sorted by path.
pub(super) fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in sorted_entries(&d)? {
            if p.is_dir() {
                stack.push(p);
            } else if is_image_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decode one image file to RGB, centre-cropped and resized to `size` (height, width) when given.
pub fn decode_image(path: &Path, size: Option<(usize, usize)>) -> Result<image::RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| TrainerError::io(path, e))?;
    decode_image_bytes(&bytes, size).map_err(|reason| TrainerError::DataFile { file: path.to_path_buf(), reason })
}

/// Decode `files` into one u8 NCHW dataset of `[3, h, w]` images. `size`: resize every image to
/// it; else every image must have the size `expect` (height, width), or without one the size of
/// the first file. Decoding runs on all available cores; the first failing file (in order) is the
/// error.
pub(super) fn read_images(
    files: &[PathBuf],
    labels: Vec<i64>,
    classes: usize,
    size: Option<(usize, usize)>,
    expect: Option<(usize, usize)>,
) -> Result<Dataset> {
    debug_assert_eq!(files.len(), labels.len());
    let Some(first) = files.first() else {
        let (h, w) = size.or(expect).unwrap_or((0, 0));
        return Ok(Dataset { images: Vec::new(), labels, shape: [3, h, w], classes });
    };
    let (h, w) = match size.or(expect) {
        Some(s) => s,
        None => {
            let img = decode_image(first, None)?;
            (img.height() as usize, img.width() as usize)
        }
    };
    let img_len = 3 * h * w;
    let mut images = vec![0u8; files.len() * img_len];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let per = files.len().div_ceil(threads).max(1);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(per)
            .zip(images.chunks_mut(per * img_len))
            .map(|(fs, out)| {
                s.spawn(move || -> Result<()> {
                    for (f, dst) in fs.iter().zip(out.chunks_exact_mut(img_len)) {
                        let img = decode_image(f, size)?;
                        let (ih, iw) = (img.height() as usize, img.width() as usize);
                        if (ih, iw) != (h, w) {
                            let why = if size.is_some() {
                                format!("decoded to {iw}x{ih}, expected {w}x{h}")
                            } else if expect.is_some() {
                                format!(
                                    "image is {iw}x{ih}, expected {w}x{h} (give the dataset a size, e.g. \
                                     tiny-imagenet@{h}x{w}, to resize every image)"
                                )
                            } else {
                                format!(
                                    "image is {iw}x{ih} but {} is {w}x{h}; all images must have one size \
                                     (or give the dataset a size, e.g. folder@{h}x{w}, to resize them)",
                                    first.display()
                                )
                            };
                            return Err(TrainerError::DataFile { file: f.clone(), reason: why });
                        }
                        // HWC -> CHW.
                        let plane = h * w;
                        for (p, px) in img.pixels().enumerate() {
                            dst[p] = px.0[0];
                            dst[plane + p] = px.0[1];
                            dst[2 * plane + p] = px.0[2];
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(TrainerError::Data { dataset: "images".into(), reason: "a decoding thread panicked".into() })
                })
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(Dataset { images, labels, shape: [3, h, w], classes })
}

/// The class names of a folder dataset: the sorted subdirectory names of `DIR/train`.
pub fn folder_classes(dir: &Path) -> Result<Vec<String>> {
    let kind = DatasetKind::Folder { image_size: None };
    let train = dir.join("train");
    if !train.is_dir() {
        return Err(data_err(
            kind,
            format!(
                "{} is not a directory (expected DIR/train/<class>/*.jpg|png and DIR/val/<class>/...)",
                train.display()
            ),
        ));
    }
    let mut classes = Vec::new();
    for p in sorted_entries(&train)? {
        if p.is_dir() {
            classes.push(p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        }
    }
    if classes.is_empty() {
        return Err(data_err(kind, format!("{} has no class subdirectories", train.display())));
    }
    Ok(classes)
}

/// The files and labels of one split of a folder dataset, without decoding.
pub fn folder_files(dir: &Path, split: Split) -> Result<(Vec<String>, Vec<PathBuf>, Vec<i64>)> {
    let kind = DatasetKind::Folder { image_size: None };
    let classes = folder_classes(dir)?;
    let root = match split {
        Split::Train => dir.join("train"),
        Split::Test => match ["val", "test"].iter().map(|n| dir.join(n)).find(|p| p.is_dir()) {
            Some(p) => p,
            None => return Err(data_err(kind, format!("no val/ or test/ directory in {}", dir.display()))),
        },
    };
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for p in sorted_entries(&root)? {
        if !p.is_dir() {
            continue;
        }
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(data_err(
                kind,
                format!(
                    "class directory {} is not a class of the training split (train/ has no {name:?})",
                    p.display()
                ),
            ));
        };
        let f = image_files(&p)?;
        if f.is_empty() {
            return Err(data_err(kind, format!("class directory {} has no .jpg/.jpeg/.png images", p.display())));
        }
        labels.extend(std::iter::repeat_n(label as i64, f.len()));
        files.extend(f);
    }
    if files.is_empty() {
        return Err(data_err(kind, format!("{} has no class directories with images", root.display())));
    }
    Ok((classes, files, labels))
}

pub(super) fn load(dir: &Path, split: Split, size: Option<(usize, usize)>) -> Result<Dataset> {
    let (classes, files, labels) = folder_files(dir, split)?;
    read_images(&files, labels, classes.len(), size, None)
}
