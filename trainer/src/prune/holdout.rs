//! A validation split carved from the training split (the search's objective never sees the test
//! split).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::error::{Result, TrainerError};

/// The records `idx` of `data`, in that order.
pub fn subset(data: &Dataset, idx: &[usize]) -> Dataset {
    let n = data.image_len();
    let mut images = Vec::with_capacity(idx.len() * n);
    for &i in idx {
        images.extend_from_slice(&data.images[i * n..(i + 1) * n]);
    }
    Dataset { images, labels: idx.iter().map(|&i| data.labels[i]).collect(), shape: data.shape, classes: data.classes }
}

/// `(rest, held_out)`: `images` records drawn with `ChaCha8(seed)` are held out (in the drawn
/// order), the others stay in their original order. Both parts must be non-empty.
pub fn hold_out(train: &Dataset, images: usize, seed: u64) -> Result<(Dataset, Dataset)> {
    if images == 0 || images >= train.len() {
        return Err(TrainerError::BadConfig {
            reason: format!(
                "a validation split of {images} images out of {} training images: give 1 to {}",
                train.len(),
                train.len().saturating_sub(1)
            ),
        });
    }
    let mut idx: Vec<usize> = (0..train.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let held = &idx[..images];
    let mut rest = idx[images..].to_vec();
    rest.sort_unstable();
    Ok((subset(train, &rest), subset(train, held)))
}
