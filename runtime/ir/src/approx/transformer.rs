//! The approximations of the ops transformers need, shared by the secure lowering, the cost table
//! and the tests. Each has an `eval` that runs the same algorithm in floating point (the secure
//! version adds fixed-point rounding), its comparisons and products per element, and a stated
//! input range and error bound that this module's tests check on dense grids.
//!
//! | function | method | comparisons | products | rounds | range | max error |
//! |---|---|---|---|---|---|---|
//! | `exp` in Softmax | `max(x, −16)`, then `p(x/4)⁴`, `p` degree 8 on [−4, 0] | 1 | 9 | 10 | x ≤ 0 | 4.1e-6 |
//! | `exp` (Exp op) | `clamp(x, −16, 4)`, then `p(x/8)⁸`, `p` degree 8 on [−2, 0.5] | 2 | 10 | 11 | [−16, 4] | 2.0e-5 relative |
//! | `1/x` | sign `s`, bits `abs(x) ≥ 2^j` give `c = 2^−⌊log₂abs(x)⌋`; `p(abs(x)c)` degree 2 on [1, 2]; 2 Newton steps; `× cs` | `jhi − jlo + 1` | 9 | 10 | `abs(x)` in [2^jlo, 2^jhi] | 2e-8 relative |
//! | `1/√x` | bits `x ≥ 4^j` give `c = 4^−k`, `c' = 2^−k`; `p(xc)` degree 3 on [1, 4]; 2 Newton steps; `× c'` | `jhi − jlo` | 10 | 11 | [4^jlo, 4^jhi] | 1e-7 relative |
//! | GELU | `x/2 + E(clamp(x, ±4.5)) + (abs(x) − 4.5)⁺/2`, `E(x) = x·erf(x/√2)/2` even, degree 10 in x² | 2 | 10 | 11 | all reals | 2.5e-5 |
//! | erf | `u·h(u²)`, `u = clamp(x, ±3.5)/3.5`, `h` degree 11 | 2 | 12 | 13 | all reals | 5.5e-6 |
//!
//! Rounds count the products' rounds plus one for each batch of comparisons; the table in
//! `runtime/src/secure/transformer.rs` adds the ops built on these (Softmax, LayerNorm).

use std::sync::OnceLock;

use super::poly::Poly;
use crate::special::erf;

/// `e^x` by range reduction: `x` clamped to `[lo, hi]` (the upper clamp only where `hi` is
/// set), then `(p(x / 2^s))^(2^s)` with `p ≈ e^w` on `[lo/2^s, hi/2^s]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exp {
    pub lo: f64,
    /// `None`: the input is known to be at most `poly.hi·2^s` (Softmax after subtracting the
    /// maximum), no upper clamp.
    pub hi: Option<f64>,
    pub squarings: u32,
    pub poly: Poly,
}

impl Exp {
    fn new(lo: f64, hi: Option<f64>, top: f64, squarings: u32, degree: usize) -> Exp {
        let k = f64::from(1u32 << squarings);
        Exp { lo, hi, squarings, poly: Poly::fit(f64::exp, lo / k, top / k, degree) }
    }

    /// The algorithm in floating point.
    pub fn eval(&self, x: f64) -> f64 {
        let c = match self.hi {
            Some(hi) => x.clamp(self.lo, hi),
            None => x.max(self.lo),
        };
        let mut y = self.poly.eval(c / f64::from(1u32 << self.squarings));
        for _ in 0..self.squarings {
            y *= y;
        }
        y
    }

    pub fn comparisons(&self) -> u64 {
        1 + u64::from(self.hi.is_some())
    }

    pub fn multiplications(&self) -> u64 {
        self.poly.multiplications() + u64::from(self.squarings)
    }
}

/// The exponential inside Softmax, on `x − max ≤ 0`.
pub fn softmax_exp() -> &'static Exp {
    static E: OnceLock<Exp> = OnceLock::new();
    E.get_or_init(|| Exp::new(-16.0, None, 0.0, 2, 8))
}

/// The Exp op, on `[−16, 4]` (clamped there).
pub fn exp() -> &'static Exp {
    static E: OnceLock<Exp> = OnceLock::new();
    E.get_or_init(|| Exp::new(-16.0, Some(4.0), 4.0, 3, 8))
}

/// `1/x` for `|x| ∈ [2^jlo, 2^jhi]`: comparisons `b_j = [|x| ≥ 2^j]` for `j = jlo+1 ..= jhi`
/// give `c = 2^−⌊log₂|x|⌋ = 2^−jlo − Σ b_j 2^−j` (linear in the bits, no products), then
/// `x' = |x|·c ∈ [1, 2)`, `y = p(x')`, `newton` steps `y ← y(2 − x'y)`, and `1/x = y·c·sign(x)`.
/// With `signed`, the sign `s = 2·[x ≥ 0] − 1` costs one comparison and `|x| = x·s` one product
/// (both exact: `s` is an integer share) and `c·s` shares the round of `x'`; without it (a
/// Softmax's sum) the input is taken as positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Reciprocal {
    pub jlo: i32,
    pub jhi: i32,
    pub newton: u32,
    pub signed: bool,
    pub poly: Poly,
}

impl Reciprocal {
    /// Over `[2^jlo, 2^jhi]`.
    pub fn new(jlo: i32, jhi: i32) -> Reciprocal {
        assert!(jhi > jlo, "a range [2^{jlo}, 2^{jhi}]");
        Reciprocal { jlo, jhi, newton: 2, signed: true, poly: Poly::fit(|x| 1.0 / x, 1.0, 2.0, 2) }
    }

    /// For a Softmax over `len` elements: its sum is positive, in `[1 − ε, len]`.
    pub fn softmax(len: usize) -> Reciprocal {
        let top = (len.max(2) as f64).log2().ceil() as i32;
        Reciprocal { signed: false, ..Reciprocal::new(-1, top) }
    }

    /// The exponents `j` compared against (`x ≥ 2^j`).
    pub fn thresholds(&self) -> impl Iterator<Item = i32> + use<> {
        self.jlo + 1..=self.jhi
    }

    pub fn eval(&self, x: f64) -> f64 {
        let s = if self.signed && x < 0.0 { -1.0 } else { 1.0 };
        let a = x * s;
        let c: f64 =
            2f64.powi(-self.jlo) - self.thresholds().filter(|&j| a >= 2f64.powi(j)).map(|j| 2f64.powi(-j)).sum::<f64>();
        let xs = a * c;
        let mut y = self.poly.eval(xs);
        for _ in 0..self.newton {
            y *= 2.0 - xs * y;
        }
        y * c * s
    }

    pub fn comparisons(&self) -> u64 {
        (self.jhi - self.jlo) as u64 + u64::from(self.signed)
    }

    /// (`x·s`, `c·s`,) `x·c`, the polynomial, two per Newton step, `y·c`.
    pub fn multiplications(&self) -> u64 {
        2 + self.poly.multiplications() + 2 * u64::from(self.newton) + 2 * u64::from(self.signed)
    }
}

/// The Reciprocal op and a division by a computed value: `|x|` in `[2^−6, 2^14]`, either sign.
pub fn reciprocal() -> &'static Reciprocal {
    static R: OnceLock<Reciprocal> = OnceLock::new();
    R.get_or_init(|| Reciprocal::new(-6, 14))
}

/// `1/√x` for `x ∈ [4^jlo, 4^jhi]`: comparisons `b_j = [x ≥ 4^j]` give `k = ⌊log₄ x⌋` through
/// `c = 4^−k = 4^−jlo − Σ b_j·3·4^−j` and `c' = 2^−k = 2^−jlo − Σ b_j 2^−j`; then `x' = x·c ∈
/// [1, 4)`, `y = p(x')`, `newton` steps `y ← y(3 − x'y²)/2`, and `1/√x = y·c'`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rsqrt {
    pub jlo: i32,
    pub jhi: i32,
    pub newton: u32,
    pub poly: Poly,
}

impl Rsqrt {
    pub fn new(jlo: i32, jhi: i32) -> Rsqrt {
        assert!(jhi > jlo, "a range [4^{jlo}, 4^{jhi}]");
        Rsqrt { jlo, jhi, newton: 2, poly: Poly::fit(|x| 1.0 / x.sqrt(), 1.0, 4.0, 3) }
    }

    pub fn thresholds(&self) -> impl Iterator<Item = i32> + use<> {
        self.jlo + 1..=self.jhi
    }

    /// `(c, c')` for `x`.
    pub fn factors(&self, x: f64) -> (f64, f64) {
        let on: Vec<i32> = self.thresholds().filter(|&j| x >= 4f64.powi(j)).collect();
        let c4 = 4f64.powi(-self.jlo) - on.iter().map(|&j| 3.0 * 4f64.powi(-j)).sum::<f64>();
        let c2 = 2f64.powi(-self.jlo) - on.iter().map(|&j| 2f64.powi(-j)).sum::<f64>();
        (c4, c2)
    }

    pub fn eval(&self, x: f64) -> f64 {
        let (c4, c2) = self.factors(x);
        let xs = x * c4;
        let mut y = self.poly.eval(xs);
        for _ in 0..self.newton {
            y = y * (3.0 - xs * y * y) / 2.0;
        }
        y * c2
    }

    pub fn comparisons(&self) -> u64 {
        (self.jhi - self.jlo) as u64
    }

    /// `x·c`, the polynomial, three per Newton step (`y²`, `x'y²`, `y·(…)`), `y·c'`.
    pub fn multiplications(&self) -> u64 {
        2 + self.poly.multiplications() + 3 * u64::from(self.newton)
    }
}

/// LayerNorm's `1/√(var + ε)` (and the Sqrt op as `x·(1/√x)`): `[4^−6, 4^8]` ≈ [2.4e-4, 65536].
pub fn rsqrt() -> &'static Rsqrt {
    static R: OnceLock<Rsqrt> = OnceLock::new();
    R.get_or_init(|| Rsqrt::new(-6, 8))
}

/// `GELU(x) = x·Φ(x) = x/2 + E(x)`, `E(x) = (x/2)·erf(x/√2)`: even, and `|x|/2` to within
/// `bound·Φ(−bound)` beyond the bound. So `GELU(x) ≈ x/2 + E(c) + (|x| − |c|)/2` with
/// `c = clamp(x, −T, T)`; `E(c) = q(v)`, `v = (c/T)²`, `q` of degree 10 in `w = 2v − 1`.
/// `(|x| − |c|) = ReLU(x − T) + ReLU(−x − T)` and `ReLU(−x − T) = ReLU(x + T) − (x + T)`: the
/// clamp's two ReLUs give everything (two comparisons, one round).
#[derive(Debug, Clone, PartialEq)]
pub struct Gelu {
    pub bound: f64,
    /// `q` on `v ∈ [0, 1]`.
    pub poly: Poly,
}

impl Gelu {
    pub fn eval(&self, x: f64) -> f64 {
        let t = self.bound;
        let c = x.clamp(-t, t);
        let v = (c / t) * (c / t);
        x / 2.0 + self.poly.eval(v) + (x.abs() - c.abs()) / 2.0
    }

    pub fn comparisons(&self) -> u64 {
        2
    }

    /// `v = u²` and the polynomial in `v`.
    pub fn multiplications(&self) -> u64 {
        1 + self.poly.multiplications()
    }
}

pub fn gelu() -> &'static Gelu {
    static G: OnceLock<Gelu> = OnceLock::new();
    G.get_or_init(|| {
        let t = 4.5;
        let e = move |v: f64| {
            let x = t * v.max(0.0).sqrt();
            x / 2.0 * erf(x / std::f64::consts::SQRT_2)
        };
        Gelu { bound: t, poly: Poly::fit(e, 0.0, 1.0, 10) }
    })
}

/// `erf(x) ≈ u·h(u²)`, `u = clamp(x, −T, T)/T`, `h(v) = erf(T√v)/√v` of degree 11; beyond the
/// bound the value is `±erf(T)`, `1 − erf(3.5) = 7.4e-7` from `±1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Erf {
    pub bound: f64,
    pub poly: Poly,
}

impl Erf {
    pub fn eval(&self, x: f64) -> f64 {
        let u = x.clamp(-self.bound, self.bound) / self.bound;
        u * self.poly.eval(u * u)
    }

    pub fn comparisons(&self) -> u64 {
        2
    }

    /// `u²`, the polynomial, `× u`.
    pub fn multiplications(&self) -> u64 {
        2 + self.poly.multiplications()
    }
}

pub fn erf_approx() -> &'static Erf {
    static E: OnceLock<Erf> = OnceLock::new();
    E.get_or_init(|| {
        let t = 3.5;
        let h = move |v: f64| {
            if v <= 1e-12 { 2.0 * t / std::f64::consts::PI.sqrt() } else { erf(t * v.sqrt()) / v.sqrt() }
        };
        Erf { bound: t, poly: Poly::fit(h, 0.0, 1.0, 11) }
    })
}

/// Stated error bounds (in exact arithmetic), checked by the tests below.
pub mod bounds {
    /// Softmax's exponential, absolute, on x ≤ 0.
    pub const SOFTMAX_EXP: f64 = 4.1e-6;
    /// The Exp op, relative, on [−16, 4].
    pub const EXP_RELATIVE: f64 = 2.0e-5;
    /// Reciprocal, relative, on its range.
    pub const RECIPROCAL_RELATIVE: f64 = 2e-8;
    /// 1/√x, relative, on its range.
    pub const RSQRT_RELATIVE: f64 = 1e-7;
    /// GELU, absolute, on all reals.
    pub const GELU: f64 = 2.5e-5;
    /// erf, absolute, on all reals.
    pub const ERF: f64 = 5.5e-6;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu_exact(x: f64) -> f64 {
        x / 2.0 * (1.0 + erf(x / std::f64::consts::SQRT_2))
    }

    fn grid(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f64 / n as f64)
    }

    /// `worst ≤ bound`, and the bound is not loose (over a tenth of it is reached).
    fn tight(name: &str, worst: f64, bound: f64) {
        assert!(worst <= bound, "{name}: worst error {worst:e} > stated {bound:e}");
        assert!(worst > 0.1 * bound, "{name}: worst error {worst:e} far below stated {bound:e}");
    }

    #[test]
    fn softmax_exp_is_within_its_bound_for_every_nonpositive_input() {
        let e = softmax_exp();
        let worst = grid(-40.0, 0.0, 400_000).map(|x| (e.eval(x) - x.exp()).abs()).fold(0.0, f64::max);
        tight("softmax exp", worst, bounds::SOFTMAX_EXP);
        assert_eq!((e.comparisons(), e.multiplications()), (1, 9));
    }

    #[test]
    fn exp_is_within_its_relative_bound_on_its_range() {
        let e = exp();
        let worst = grid(-16.0, 4.0, 200_000).map(|x| ((e.eval(x) - x.exp()) / x.exp()).abs()).fold(0.0, f64::max);
        tight("exp", worst, bounds::EXP_RELATIVE);
        assert_eq!((e.comparisons(), e.multiplications()), (2, 10));
        assert_eq!(e.eval(10.0), e.eval(4.0));
    }

    #[test]
    fn reciprocal_is_within_its_relative_bound_on_its_range() {
        let r = reciprocal();
        let (lo, hi) = (2f64.powi(r.jlo), 2f64.powi(r.jhi));
        // Log-spaced, plus every power of two and its neighbours (where the bits switch).
        let mut xs: Vec<f64> = (0..=100_000).map(|i| lo * (hi / lo).powf(i as f64 / 100_000.0)).collect();
        for j in r.jlo..=r.jhi {
            let p = 2f64.powi(j);
            xs.extend([p * (1.0 - 1e-9), p, p * (1.0 + 1e-9)]);
        }
        let worst =
            xs.iter().filter(|&&x| x >= lo && x <= hi).map(|&x| (r.eval(x) * x - 1.0).abs()).fold(0.0, f64::max);
        assert!(worst <= bounds::RECIPROCAL_RELATIVE, "worst {worst:e}");
        assert_eq!(r.comparisons(), 21);
        for x in [-4.0, -3e-2, -1000.0] {
            assert!((r.eval(x) * x - 1.0).abs() <= bounds::RECIPROCAL_RELATIVE, "1/{x}");
        }
        let s = Reciprocal::softmax(65);
        assert_eq!((s.jlo, s.jhi), (-1, 7));
        assert!((s.eval(0.9995) * 0.9995 - 1.0).abs() < 1e-8 && (s.eval(65.0) * 65.0 - 1.0).abs() < 1e-8);
    }

    #[test]
    fn rsqrt_is_within_its_relative_bound_on_its_range() {
        let r = rsqrt();
        let (lo, hi) = (4f64.powi(r.jlo), 4f64.powi(r.jhi));
        let mut xs: Vec<f64> = (0..=100_000).map(|i| lo * (hi / lo).powf(i as f64 / 100_000.0)).collect();
        for j in r.jlo..=r.jhi {
            let p = 4f64.powi(j);
            xs.extend([p * (1.0 - 1e-9), p, p * (1.0 + 1e-9)]);
        }
        let worst =
            xs.iter().filter(|&&x| x >= lo && x <= hi).map(|&x| (r.eval(x) * x.sqrt() - 1.0).abs()).fold(0.0, f64::max);
        assert!(worst <= bounds::RSQRT_RELATIVE, "worst {worst:e}");
        assert_eq!((r.comparisons(), r.multiplications()), (14, 10));
    }

    #[test]
    fn gelu_is_within_its_bound_everywhere() {
        let g = gelu();
        let worst = grid(-30.0, 30.0, 600_000).map(|x| (g.eval(x) - gelu_exact(x)).abs()).fold(0.0, f64::max);
        tight("gelu", worst, bounds::GELU);
        for x in [-1e4, -100.0, 100.0, 1e4] {
            assert!((g.eval(x) - gelu_exact(x)).abs() <= bounds::GELU, "x = {x}");
        }
        // The tanh form differs from the exact one by less than 5e-4: both map to this one.
        let tanh_form =
            |x: f64| 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh());
        let gap = grid(-10.0, 10.0, 100_000).map(|x| (tanh_form(x) - gelu_exact(x)).abs()).fold(0.0, f64::max);
        assert!(gap < 5e-4, "{gap}");
        assert_eq!((g.comparisons(), g.multiplications()), (2, 10));
    }

    #[test]
    fn erf_is_within_its_bound_everywhere() {
        let e = erf_approx();
        let worst = grid(-20.0, 20.0, 400_000).map(|x| (e.eval(x) - erf(x)).abs()).fold(0.0, f64::max);
        tight("erf", worst, bounds::ERF);
        assert_eq!((e.comparisons(), e.multiplications()), (2, 12));
    }

    #[test]
    fn fitted_coefficients_stay_small_enough_for_fixed_point() {
        let polys =
            [&softmax_exp().poly, &exp().poly, &reciprocal().poly, &rsqrt().poly, &gelu().poly, &erf_approx().poly];
        for p in polys {
            let big = p.coeffs.iter().fold(0.0f64, |m, c| m.max(c.abs()));
            assert!(big < 4.0, "{:?}", p.coeffs);
        }
    }
}
