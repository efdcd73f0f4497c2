//! The ring's headroom for local truncation, checked before a run computes anything.
//!
//! Every fixed-point product (a linear layer's accumulation, a square, a pooled sum times `1/k`)
//! sits at scale `2^(2f)` and is shifted back by `f` bits locally
//! ([`masq_mpc::protocols::truncate`]). That shift is wrong by about `2^(64−f)` with
//! probability `|x| / 2^64` per value `x` (measured in masq-mpc's tests), so the expected
//! number of wrong values in a layer is `Σ |x| / 2^64` over the values it truncates. The values
//! grow with `f` twice over: going from 16 to 24 fractional bits multiplies every product by
//! `2^16`. A layer whose
//! products come near the ring's size computes garbage that no comparison width reports.
//!
//! [`check`] takes the probe's figures on the run's own input (the values the parties will
//! truncate, up to ±1 in the last place) and refuses the run, naming the layer that contributes
//! most, when the whole input is expected to see more than [`MAX_EXPECTED_FAILURES_PER_IMAGE`]
//! wrong values per image. The error says which `--frac-bits` would fit.

use super::plan::Plan;
use super::probe::ProbeRun;
use crate::error::{Result, RuntimeError};

/// Most local-truncation failures a run accepts, expected per image over all its layers (one
/// image in a hundred with a corrupted value).
pub const MAX_EXPECTED_FAILURES_PER_IMAGE: f64 = 1e-2;

/// Above this expectation per image `masq run` warns (one image in ten thousand).
pub const WARN_EXPECTED_FAILURES_PER_IMAGE: f64 = 1e-4;

/// Refuses a run whose input is expected to see more than [`MAX_EXPECTED_FAILURES_PER_IMAGE`]
/// wrong truncations per image (`batch` images), naming the layer that contributes most.
pub fn check(plan: &Plan, probed: &ProbeRun, batch: usize) -> Result<()> {
    let per_layer: Vec<f64> = probed.truncations.iter().map(|t| t.expected_failures()).collect();
    let total: f64 = per_layer.iter().sum();
    let per_image = total / batch.max(1) as f64;
    if per_image <= MAX_EXPECTED_FAILURES_PER_IMAGE {
        return Ok(());
    }
    let (worst, &expected) =
        per_layer.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("a failing run has at least one layer");
    let t = &probed.truncations[worst];
    let f = plan.fixed_point.frac_bits();
    // Each fractional bit less divides every product (scale 2^2f) by 4: the largest f that fits.
    let fits = (1..f).rev().find(|&g| per_image / 2f64.powi(2 * (f - g) as i32) <= MAX_EXPECTED_FAILURES_PER_IMAGE);
    let hint = match fits {
        Some(g) => format!("use --frac-bits {g} or fewer"),
        None => "scale the model's values down".into(),
    };
    let node = &plan.nodes[worst];
    Err(RuntimeError::RingHeadroom {
        layer: node.name.clone(),
        op: node.op.clone(),
        reason: format!(
            "its products reach {bits} bits at {f} fractional bits (scale 2^{two_f}), so local truncation in \
             Z_2^64 is expected to get {expected:.3} of its values per batch of {batch} wrong \
             ({per_image:.3e} per image over the model, limit {MAX_EXPECTED_FAILURES_PER_IMAGE:e}); {hint}",
            bits = t.signed_bits(),
            two_f = 2 * f,
        ),
    })
}
