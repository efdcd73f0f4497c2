//! The differentiable pieces of ReLU reduction (docs/ALGORITHMS.md §1–5), as free functions on tensors
//! so they can be tested on their own.

use tch::{Kind, Tensor};

use crate::error::Result;

/// `softplus(a) = ln(1 + e^a)`, computed stably.
pub fn softplus(a: &Tensor) -> Result<Tensor> {
    // max(a, 0) + ln(1 + e^{−|a|})
    Ok(a.f_relu()?.f_add(&a.f_abs()?.f_neg()?.f_exp()?.f_log1p()?)?)
}

/// A tensor whose value is exactly 0 and whose gradient with respect to `a` is `softplus(a)·u`
/// (`u` is not differentiated): `(a − a.detach())·softplus(a).detach()·u.detach()`.
pub fn ste_term(a: &Tensor, u: &Tensor) -> Result<Tensor> {
    let sp = softplus(&a.f_detach()?)?;
    Ok(a.f_sub(&a.f_detach()?)?.f_mul(&sp)?.f_mul(&u.f_detach()?)?)
}

/// AutoReP's gated activation `y = m⊙ReLU(x) + (1−m)⊙g(x)` with the STE gradient
/// `∂L/∂a = softplus(a)·Σ_batch ∂L/∂y·(ReLU(x) − g(x))` when `a` is given.
///
/// `m` and `a` have the activation's shape without the batch dimension (broadcast over it).
/// With `spgrad`, `g` must be `x` and the gradient with respect to `x` is `1[x>0]` whatever the
/// mask is (AutoReP's `ReLU_Pruned`); otherwise it is `m·1[x>0] + (1−m)·g'(x)`.
///
/// `cap` bounds the kept activation of a clipped (ReLU6) site: `min(ReLU(x), cap)`.
pub fn gated(x: &Tensor, cap: Option<f32>, g: &Tensor, m: &Tensor, a: Option<&Tensor>, spgrad: bool) -> Result<Tensor> {
    let r = crate::lower::masked::kept(x, cap)?;
    let u = r.f_sub(g)?;
    let y = if spgrad {
        // relu(x) + ((1−m)⊙(x − relu(x))).detach(): value m·relu + (1−m)·x, gradient 1[x>0].
        let rest = m.f_neg()?.f_add_scalar(1.0)?.f_mul(&x.f_sub(&r)?)?.f_detach()?;
        r.f_add(&rest)?
    } else {
        // g + m⊙(relu − g)
        g.f_add(&u.f_mul(m)?)?
    };
    match a {
        Some(a) => Ok(y.f_add(&ste_term(a, &u)?)?),
        None => Ok(y),
    }
}

/// `m = 1[a > 0]` (the plain STE gate), as f32.
pub fn ste_mask(a: &Tensor) -> Result<Tensor> {
    Ok(a.f_detach()?.f_gt(0.0)?.f_to_kind(Kind::Float)?)
}

/// Hysteresis update `m ← m·1[a > −θ] + (1−m)·1[a > θ]`, as f32.
pub fn hysteresis(m: &Tensor, a: &Tensor, theta: f64) -> Result<Tensor> {
    let a = a.f_detach()?;
    let keep = a.f_gt(-theta)?.f_to_kind(Kind::Float)?;
    let on = a.f_gt(theta)?.f_to_kind(Kind::Float)?;
    let m = m.f_detach()?;
    Ok(m.f_mul(&keep)?.f_add(&m.f_neg()?.f_add_scalar(1.0)?.f_mul(&on)?)?)
}

/// The ReLU density `D = Σm/N` over all sites, with the STE gradient `∂D/∂a = softplus(a)/N`.
pub fn density(sites: &[(&Tensor, &Tensor)], total: usize) -> Result<Tensor> {
    let mut sum: Option<Tensor> = None;
    for (m, a) in sites {
        let sp = softplus(&a.f_detach()?)?;
        let s = m.f_detach()?.f_add(&a.f_sub(&a.f_detach()?)?.f_mul(&sp)?)?;
        let s = s.f_sum(s.kind())?;
        sum = Some(match sum {
            None => s,
            Some(t) => t.f_add(&s)?,
        });
    }
    let sum = sum.unwrap_or_else(|| Tensor::from(0f32));
    Ok(sum.f_div_scalar(total.max(1) as f64)?)
}

/// The budget hinge `λ·max(0, D − budget/N)`.
pub fn budget_penalty(d: &Tensor, budget: usize, total: usize, lambda: f64) -> Result<Tensor> {
    let target = budget as f64 / total.max(1) as f64;
    Ok(d.f_sub_scalar(target)?.f_relu()?.f_mul_scalar(lambda)?)
}

/// Distillation `T²·KL(softmax(t/T) ‖ softmax(s/T))`, batch mean.
pub fn kd_loss(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor> {
    let n = student.size()[0].max(1) as f64;
    let ls = student.f_div_scalar(temperature)?.f_log_softmax(1, Kind::Float)?;
    let lt = teacher.f_detach()?.f_div_scalar(temperature)?.f_log_softmax(1, Kind::Float)?;
    let pt = lt.f_exp()?;
    let kl = pt.f_mul(&lt.f_sub(&ls)?)?.f_sum(Kind::Float)?;
    Ok(kl.f_mul_scalar(temperature * temperature / n)?)
}

/// `erf(x)`: the Maclaurin series below |x| = 2 (error ~1e-16), Abramowitz–Stegun 7.1.26 above
/// (absolute error < 1.5e-7, where erf is within 5e-3 of ±1).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let e = if z < 2.0 {
        // erf(z) = 2/√π Σ (−1)^n z^{2n+1} / (n!(2n+1))
        let (mut term, mut sum, mut n) = (z, z, 0.0f64);
        while term.abs() > 1e-17 && n < 200.0 {
            n += 1.0;
            term *= -z * z / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        let t = 1.0 / (1.0 + 0.327_591_1 * z);
        let poly =
            t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        1.0 - poly * (-z * z).exp()
    };
    e.copysign(x)
}

/// Standard normal pdf φ.
pub fn phi(t: f64) -> f64 {
    (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal cdf Φ.
pub fn big_phi(t: f64) -> f64 {
    0.5 * (1.0 + erf(t / std::f64::consts::SQRT_2))
}

/// Least-squares quadratic fit of ReLU under `x ~ N(μ, σ²)` (docs/ALGORITHMS.md §3):
/// `[c2, c1, c0]` with `c2 = φ(t)/(2σ)`, `c1 = Φ(t) − tφ(t)`, `c0 = σφ(t)(1+t²)/2`, `t = μ/σ`.
pub fn dapa_fit(mu: f64, sigma: f64) -> [f64; 3] {
    let t = mu / sigma;
    let (p, c) = (phi(t), big_phi(t));
    [p / (2.0 * sigma), c - t * p, sigma * p * (1.0 + t * t) / 2.0]
}

/// Least-squares linear fit of ReLU under `N(μ, σ²)`: `[0, Φ(t), σφ(t)]`.
pub fn dapa_fit_linear(mu: f64, sigma: f64) -> [f64; 3] {
    let t = mu / sigma;
    [0.0, big_phi(t), sigma * phi(t)]
}
