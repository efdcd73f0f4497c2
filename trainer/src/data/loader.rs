//! Batches: shuffling, augmentation on the u8 images, normalisation, transfer to a device.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::Dataset;
use crate::error::{Result, TrainerError};

pub use masq_ir::facts::Normalisation;

/// Training-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Random crop back to the original size from the image zero-padded by this many pixels
    /// (0: no crop).
    pub crop_padding: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
}

impl Augment {
    pub const NONE: Augment = Augment { crop_padding: 0, flip: false };

    pub fn is_none(&self) -> bool {
        self.crop_padding == 0 && !self.flip
    }
}

/// Batches of one dataset.
#[derive(Debug)]
pub struct Loader<'a> {
    data: &'a Dataset,
    norm: Normalisation,
    augment: Augment,
    batch: usize,
    device: Device,
}

impl<'a> Loader<'a> {
    pub fn new(
        data: &'a Dataset,
        mut norm: Normalisation,
        augment: Augment,
        batch: usize,
        device: Device,
    ) -> Result<Self> {
        let c = data.shape[0];
        if norm.mean.len() == 1 && norm.std.len() == 1 {
            norm = Normalisation { mean: vec![norm.mean[0]; c], std: vec![norm.std[0]; c] };
        }
        if norm.mean.len() != c || norm.std.len() != c || norm.std.iter().any(|&s| s <= 0.0) {
            return Err(TrainerError::BadConfig {
                reason: format!("normalisation needs {c} means and {c} positive stds, got {norm:?}"),
            });
        }
        if batch == 0 {
            return Err(TrainerError::BadConfig { reason: "batch size must be positive".into() });
        }
        Ok(Loader { data, norm, augment, batch, device })
    }

    /// Number of batches per pass.
    pub fn batches(&self) -> usize {
        self.data.len().div_ceil(self.batch)
    }

    /// The order of one epoch: shuffled with `ChaCha8(seed)` when `seed` is given.
    pub fn order(&self, seed: Option<u64>) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        if let Some(s) = seed {
            idx.shuffle(&mut ChaCha8Rng::seed_from_u64(s));
        }
        idx
    }

    /// Assemble the batch of the given record indices (augmented with `rng` when given).
    pub fn batch(&self, idx: &[usize], rng: Option<&mut ChaCha8Rng>) -> Result<(Tensor, Tensor)> {
        let [c, h, w] = self.data.shape;
        let plane = h * w;
        let img = c * plane;
        let mut buf = vec![0u8; idx.len() * img];
        match rng {
            Some(rng) if !self.augment.is_none() => {
                let p = self.augment.crop_padding as i64;
                for (b, &i) in idx.iter().enumerate() {
                    let src = &self.data.images[i * img..(i + 1) * img];
                    let dst = &mut buf[b * img..(b + 1) * img];
                    let (oy, ox) = if p > 0 {
                        (rng.random_range(-p..=p) as isize, rng.random_range(-p..=p) as isize)
                    } else {
                        (0, 0)
                    };
                    let flip = self.augment.flip && rng.random_bool(0.5);
                    for ch in 0..c {
                        for y in 0..h {
                            let sy = y as isize + oy;
                            if sy < 0 || sy >= h as isize {
                                continue;
                            }
                            for x in 0..w {
                                let xx = if flip { w - 1 - x } else { x };
                                let sx = xx as isize + ox;
                                if sx >= 0 && sx < w as isize {
                                    dst[ch * plane + y * w + x] = src[ch * plane + sy as usize * w + sx as usize];
                                }
                            }
                        }
                    }
                }
            }
            _ => {
                for (b, &i) in idx.iter().enumerate() {
                    buf[b * img..(b + 1) * img].copy_from_slice(&self.data.images[i * img..(i + 1) * img]);
                }
            }
        }
        let n = idx.len() as i64;
        let x = Tensor::f_from_slice(&buf)?.f_reshape([n, c as i64, h as i64, w as i64])?.f_to_device(self.device)?;
        let mean: Vec<f32> = self.norm.mean.iter().map(|m| m * 255.0).collect();
        let std: Vec<f32> = self.norm.std.iter().map(|s| s * 255.0).collect();
        let mean = Tensor::f_from_slice(&mean)?.f_reshape([1, c as i64, 1, 1])?.f_to_device(self.device)?;
        let std = Tensor::f_from_slice(&std)?.f_reshape([1, c as i64, 1, 1])?.f_to_device(self.device)?;
        let x = x.f_to_kind(Kind::Float)?.f_sub(&mean)?.f_div(&std)?;
        let labels: Vec<i64> = idx.iter().map(|&i| self.data.labels[i]).collect();
        let y = Tensor::f_from_slice(&labels)?.f_to_device(self.device)?;
        Ok((x, y))
    }
}
