//! Smooth and piecewise-linear activations, each in f64 and rounded once to f32.

use ndarray::ArrayD;

use masq_ir::{GeluConfig, HardSigmoidConfig};

/// The error function, |error| < 1.2e-7 (Numerical Recipes' `erfc` Chebyshev fit).
pub(crate) fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

fn map(x: &ArrayD<f32>, f: impl Fn(f64) -> f64) -> ArrayD<f32> {
    x.mapv(|v| f(v as f64) as f32)
}

pub(super) fn sigmoid(x: &ArrayD<f32>) -> ArrayD<f32> {
    map(x, |v| 1.0 / (1.0 + (-v).exp()))
}

fn hard_sigmoid_f(c: &HardSigmoidConfig, v: f64) -> f64 {
    (c.alpha as f64 * v + c.beta as f64).clamp(0.0, 1.0)
}

pub(super) fn hard_sigmoid(x: &ArrayD<f32>, c: &HardSigmoidConfig) -> ArrayD<f32> {
    map(x, |v| hard_sigmoid_f(c, v))
}

pub(super) fn hard_swish(x: &ArrayD<f32>) -> ArrayD<f32> {
    let c = HardSigmoidConfig { alpha: 1.0 / 6.0, beta: 0.5 };
    map(x, |v| v * hard_sigmoid_f(&c, v))
}

pub(super) fn gelu(x: &ArrayD<f32>, c: &GeluConfig) -> ArrayD<f32> {
    if c.tanh {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        map(x, |v| 0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh()))
    } else {
        map(x, |v| 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)))
    }
}

pub(super) fn unary(x: &ArrayD<f32>, f: fn(f64) -> f64) -> ArrayD<f32> {
    map(x, f)
}

#[cfg(test)]
mod tests {
    use super::erf;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), erf(3) to 10 digits.
        for (x, want) in [(0.5, 0.5204998778), (1.0, 0.8427007929), (2.0, 0.9953222650), (3.0, 0.9999779095)] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 2e-7);
        }
        assert!(erf(0.0).abs() < 2e-7);
    }
}
