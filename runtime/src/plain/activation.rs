//! Smooth and piecewise-linear activations, each in f64 and rounded once to f32.

use ndarray::ArrayD;

use masq_ir::{GeluConfig, HardSigmoidConfig};

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
        map(x, |v| 0.5 * v * (1.0 + masq_ir::special::erf(v / std::f64::consts::SQRT_2)))
    }
}

pub(super) fn unary(x: &ArrayD<f32>, f: fn(f64) -> f64) -> ArrayD<f32> {
    map(x, f)
}
