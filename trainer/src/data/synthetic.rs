//! A built-in image set that needs no files: deterministic given a seed, and learnable by a small
//! CNN in seconds. Class `k` is a sinusoidal grating with orientation `(k mod 5)·36°` and spatial
//! frequency 1/8 (classes 0–4) or 1/4 (5–9) cycles per pixel, with a random phase, random contrast,
//! random per-channel gains and uniform pixel noise. A random phase defeats linear models: the
//! network has to learn oriented, frequency-tuned energy detectors.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Dataset, Splits};

/// Size and seed of the synthetic set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticConfig {
    pub train: usize,
    pub test: usize,
    /// Channels, height, width.
    pub shape: [usize; 3],
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig { train: 10_000, test: 2_000, shape: [3, 32, 32], seed: 0 }
    }
}

const CLASSES: usize = 10;

fn generate(n: usize, shape: [usize; 3], rng: &mut ChaCha8Rng) -> Dataset {
    let [c, h, w] = shape;
    let mut images = Vec::with_capacity(n * c * h * w);
    let mut labels = Vec::with_capacity(n);
    let tau = std::f32::consts::TAU;
    for i in 0..n {
        // Balanced classes in a shuffled-looking but deterministic order.
        let k = (i * 7 + rng.random_range(0..CLASSES)) % CLASSES;
        labels.push(k as i64);
        let theta = (k % 5) as f32 * std::f32::consts::PI / 5.0;
        let freq = if k < 5 { 0.125 } else { 0.25 };
        let (dx, dy) = (theta.cos() * freq * tau, theta.sin() * freq * tau);
        let phase = rng.random_range(0.0..tau);
        let contrast = rng.random_range(40.0f32..80.0);
        for _ in 0..c {
            let gain = rng.random_range(0.6f32..1.0);
            let offset = rng.random_range(100.0f32..156.0);
            for y in 0..h {
                for x in 0..w {
                    let s = (x as f32 * dx + y as f32 * dy + phase).sin();
                    let noise = rng.random_range(-40.0f32..40.0);
                    let v = offset + contrast * gain * s + noise;
                    images.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    Dataset { images, labels, shape, classes: CLASSES }
}

/// Generate both splits (independent streams of one seed).
pub fn synthetic(cfg: &SyntheticConfig) -> Splits {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(0);
    let train = generate(cfg.train, cfg.shape, &mut rng);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(1);
    let test = generate(cfg.test, cfg.shape, &mut rng);
    Splits { train, test, source: format!("synthetic (seed {})", cfg.seed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_balanced() {
        let cfg = SyntheticConfig { train: 500, test: 100, shape: [1, 28, 28], seed: 3 };
        let a = synthetic(&cfg);
        assert_eq!(a, synthetic(&cfg));
        assert_ne!(a.train.images[..784], a.test.images[..784]);
        let other = synthetic(&SyntheticConfig { seed: 4, ..cfg.clone() });
        assert_ne!(a.train.images, other.train.images);
        let mut counts = [0usize; 10];
        for &l in &a.train.labels {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 25), "{counts:?}");
        assert_eq!(a.train.images.len(), 500 * 784);
    }
}
