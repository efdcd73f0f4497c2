//! Initial slopes: a random sign times a magnitude drawn from `1 + √3·z` (z standard normal),
//! redrawn until it falls in `[tan 35°, tan 55°]`; or all ones, for a pretrained start.

use std::collections::BTreeMap;

use masq_ir::prune::slopes::SlopeSite;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// `tan 35°`, the smallest initial magnitude.
pub const SLOPE_MIN: f32 = 0.700_207_5;
/// `tan 55°`, the largest initial magnitude.
pub const SLOPE_MAX: f32 = 1.428_148;

/// How the slopes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlopeInit {
    /// Random sign, magnitude `1 + √3·z` truncated (by redrawing) to `[SLOPE_MIN, SLOPE_MAX]`.
    Random,
    /// Every slope 1: the slope graph computes exactly what the given graph does.
    Ones,
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // u1 in (0, 1] keeps the logarithm finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One magnitude of the truncated distribution.
fn magnitude(rng: &mut ChaCha8Rng) -> f32 {
    let (lo, hi) = (f64::from(SLOPE_MIN), f64::from(SLOPE_MAX));
    loop {
        let a = 1.0 + 3f64.sqrt() * standard_normal(rng);
        if (lo..=hi).contains(&a) {
            return a as f32;
        }
    }
}

/// Initial slopes of every site (relu name -> one value per channel), deterministic in `seed`:
/// sites in the given order, channels in order, each a sign then a magnitude.
pub fn init_slopes(sites: &[SlopeSite], init: SlopeInit, seed: u64) -> BTreeMap<String, Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5107_e5ee_d000_0001);
    sites
        .iter()
        .map(|s| {
            let v = (0..s.channels)
                .map(|_| match init {
                    SlopeInit::Ones => 1.0,
                    SlopeInit::Random => {
                        let negative = rng.random_bool(0.5);
                        let m = magnitude(&mut rng);
                        if negative { -m } else { m }
                    }
                })
                .collect();
            (s.relu.clone(), v)
        })
        .collect()
}
