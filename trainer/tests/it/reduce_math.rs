//! The differentiable pieces of ReLU reduction against their analytic values.

use masq_trainer::reduce::math::{budget_penalty, dapa_fit, density, gated, hysteresis, softplus, ste_mask};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

fn vals(t: &Tensor) -> Vec<f32> {
    let t = t.detach().to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&t).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

/// STE gradient of `a` for a gate, vs `softplus(a)·Σ_batch ∂L/∂y·(relu(x) − g(x))`.
fn check_ste(m: &Tensor, a: &Tensor, poly: bool, spgrad: bool) {
    tch::manual_seed(3);
    let x = Tensor::randn([4, 3, 5, 5], (Kind::Double, tch::Device::Cpu)).set_requires_grad(true);
    let (c2, c1, c0) = (0.2, 0.5, 0.1);
    let g = if poly { &x * &x * c2 + &x * c1 + c0 } else { x.shallow_clone() };
    let w = Tensor::randn([4, 3, 5, 5], (Kind::Double, tch::Device::Cpu));
    let y = gated(&x, None, &g, m, Some(a), spgrad).unwrap();
    // value: m·relu + (1−m)·g (up to rounding; the STE term adds exactly 0)
    let want = m * x.relu() + (1.0 - m) * &g;
    assert!(max_diff(&y, &want) < 1e-14);
    assert_eq!(max_diff(&y, &gated(&x, None, &g, m, None, spgrad).unwrap()), 0.0);
    (&y * &w).sum(Kind::Double).backward();
    let analytic = softplus(&a.detach()).unwrap()
        * (&w * (x.relu() - &g)).detach().sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
    let got = a.grad();
    assert!(max_diff(&got, &analytic) <= 1e-12, "STE gradient differs by {}", max_diff(&got, &analytic));
    // gradient to x
    let gx = x.grad();
    let pos = x.gt(0.0).to_kind(Kind::Double);
    let want_gx = if spgrad {
        &w * &pos
    } else {
        let gp = if poly { &x * (2.0 * c2) + c1 } else { x.ones_like() };
        &w * (m * &pos + (1.0 - m) * gp.detach())
    };
    assert!(max_diff(&gx, &want_gx) <= 1e-12, "x gradient differs by {}", max_diff(&gx, &want_gx));
}

fn gate_param() -> Tensor {
    tch::manual_seed(5);
    (Tensor::rand([3, 5, 5], (Kind::Double, tch::Device::Cpu)) - 0.5).set_requires_grad(true)
}

#[test]
fn ste_gate_gradient_is_exact() {
    let a = gate_param();
    let m = ste_mask(&a).unwrap().to_kind(Kind::Double);
    assert!(vals(&m).contains(&0.0) && vals(&m).contains(&1.0));
    check_ste(&m, &a, true, false);
    let a = gate_param();
    check_ste(&m, &a, false, false);
}

#[test]
fn hysteresis_gate_gradient_is_exact() {
    let a = gate_param();
    let m0 = Tensor::rand([3, 5, 5], (Kind::Double, tch::Device::Cpu)).gt(0.5).to_kind(Kind::Double);
    let m = hysteresis(&m0, &a, 3e-3).unwrap().to_kind(Kind::Double);
    check_ste(&m, &a, true, false);
}

#[test]
fn spgrad_gradient_is_relu_whatever_the_mask() {
    let a = gate_param();
    let m = ste_mask(&a).unwrap().to_kind(Kind::Double);
    check_ste(&m, &a, false, true);
    let a = gate_param();
    check_ste(&m.zeros_like(), &a, false, true);
}

#[test]
fn hysteresis_state_machine() {
    let theta = 3e-3;
    let cases: [(f64, f64, f64); 8] = [
        // (m, a, new m)
        (1.0, 0.5, 1.0),
        (1.0, -0.002, 1.0), // inside the band: stays on
        (1.0, -0.004, 0.0), // below −θ: off
        (0.0, 0.002, 0.0),  // inside the band: stays off
        (0.0, 0.004, 1.0),  // above θ: on
        (0.0, -0.5, 0.0),
        (1.0, -0.003, 0.0), // a > −θ is strict
        (0.0, 0.003, 0.0),  // a > θ is strict
    ];
    let m = Tensor::from_slice(&cases.map(|c| c.0));
    let a = Tensor::from_slice(&cases.map(|c| c.1));
    let new = hysteresis(&m, &a, theta).unwrap();
    let want: Vec<f32> = cases.iter().map(|c| c.2 as f32).collect();
    assert_eq!(vals(&new), want);
    // θ = 0 is the plain STE gate.
    assert_eq!(vals(&hysteresis(&m, &a, 0.0).unwrap()), vals(&ste_mask(&a).unwrap()));
}

#[test]
fn budget_hinge_and_density_gradient() {
    let a1 = Tensor::from_slice(&[0.3f64, -0.2, 0.8, -1.0]).set_requires_grad(true);
    let a2 = Tensor::from_slice(&[0.1f64, 0.2]).set_requires_grad(true);
    let m1 = Tensor::from_slice(&[1.0f64, 0.0, 1.0, 0.0]);
    let m2 = Tensor::from_slice(&[1.0f64, 1.0]);
    let n = 6;
    let d = density(&[(&m1, &a1), (&m2, &a2)], n).unwrap();
    assert!((f64::try_from(&d).unwrap() - 4.0 / 6.0).abs() < 1e-12);
    // Above budget (4 > 2): gradient λ·softplus(a)/N.
    let p = budget_penalty(&d, 2, n, 10.0).unwrap();
    assert!((f64::try_from(&p).unwrap() - 10.0 * (4.0 - 2.0) / 6.0).abs() < 1e-12);
    p.backward();
    for a in [&a1, &a2] {
        let want = softplus(&a.detach()).unwrap() * (10.0 / 6.0);
        assert!(max_diff(&a.grad(), &want) < 1e-12);
    }
    // At or below budget: no pull.
    let a3 = Tensor::from_slice(&[0.3f64, -0.2]).set_requires_grad(true);
    let m3 = Tensor::from_slice(&[1.0f64, 0.0]);
    let d = density(&[(&m3, &a3)], 2).unwrap();
    let p = budget_penalty(&d, 1, 2, 10.0).unwrap();
    assert_eq!(f64::try_from(&p).unwrap(), 0.0);
    p.backward();
    assert_eq!(f64::try_from(a3.grad().abs().sum(Kind::Double)).unwrap(), 0.0);
}

#[test]
fn dapa_closed_form_at_standard_normal() {
    let [c2, c1, c0] = dapa_fit(0.0, 1.0);
    assert!((c2 - 0.19947).abs() < 1e-4, "{c2}");
    assert!((c1 - 0.5).abs() < 1e-12, "{c1}");
    assert!((c0 - 0.19947).abs() < 1e-4, "{c0}");
    let [c2, c1, c0] = dapa_fit(0.0, 2f64.sqrt());
    assert!((c2 - 0.1410).abs() < 1e-4 && (c1 - 0.5).abs() < 1e-12 && (c0 - 0.2821).abs() < 1e-4);
}

/// Least-squares fit of relu by a quadratic on samples, via the 3×3 normal equations.
fn mc_fit(mu: f64, sigma: f64, n: usize, seed: u64) -> [f64; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ata = [[0f64; 3]; 3];
    let mut aty = [0f64; 3];
    for _ in 0..n {
        // Box–Muller
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let x = mu + sigma * z;
        let f = [x * x, x, 1.0];
        let y = x.max(0.0);
        for i in 0..3 {
            aty[i] += f[i] * y;
            for j in 0..3 {
                ata[i][j] += f[i] * f[j];
            }
        }
    }
    // Gaussian elimination
    let mut m = [[0f64; 4]; 3];
    for i in 0..3 {
        m[i][..3].copy_from_slice(&ata[i]);
        m[i][3] = aty[i];
    }
    for c in 0..3 {
        let p = (c..3).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs())).unwrap();
        m.swap(c, p);
        for r in 0..3 {
            if r != c {
                let f = m[r][c] / m[c][c];
                let pivot = m[c];
                for (x, p) in m[r].iter_mut().zip(pivot).skip(c) {
                    *x -= f * p;
                }
            }
        }
    }
    [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]]
}

#[test]
fn dapa_closed_form_matches_monte_carlo_least_squares() {
    for (mu, sigma, seed) in [(0.0, 1.0, 1), (0.7, 1.5, 2), (-0.4, 0.6, 3)] {
        let want = dapa_fit(mu, sigma);
        let got = mc_fit(mu, sigma, 1_000_000, seed);
        for k in 0..3 {
            assert!(
                (want[k] - got[k]).abs() < 1e-3,
                "N({mu},{sigma}²) c{}: closed {} vs MC {}",
                2 - k,
                want[k],
                got[k]
            );
        }
    }
}
