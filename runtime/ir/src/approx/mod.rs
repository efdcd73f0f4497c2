//! Approximations that secure protocols compute in place of a function with no exact 2PC form,
//! in one place so the cost table, the secure lowering and the tests share them.
//!
//! The sigmoid is a [`Piecewise`] approximation: a [`Clamped`] middle piece plus two mirrored
//! [`Tail`]s. A [`Clamped`] approximation of `f` computes, with `u = clamp(x, −T, T) / T`,
//! `f(x) ≈ c + u·(a₀ + a₁u² + a₂u⁴ + …)`: the clamp costs two comparisons per element (one round),
//! the odd polynomial a handful of secret × secret products (Horner in `u²`). The coefficients
//! were fitted (iteratively re-weighted least squares toward the minimax fit, on Chebyshev nodes)
//! offline; [`Clamped::max_error`] is the largest error over the whole real line, measured in
//! this module's tests on a dense grid and in the tails, before fixed-point rounding.
//!
//! The transformer ops' approximations (exp, reciprocal, 1/√x, GELU, erf) are in [`transformer`],
//! on polynomials fitted at run time ([`poly::Poly`]).

pub mod poly;
pub mod transformer;

pub use poly::Poly;

/// `f(x) ≈ constant + u·Σ odd[i]·u^(2i)`, `u = clamp(x, −bound, bound) / bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamped {
    /// The clamp `T`.
    pub bound: f64,
    pub constant: f64,
    /// Coefficients of `u, u³, u⁵, …`.
    pub odd: &'static [f64],
    /// Largest `|approximation − f|` over all reals (in exact arithmetic).
    pub max_error: f64,
}

impl Clamped {
    /// The approximation in floating point.
    pub fn eval(&self, x: f64) -> f64 {
        let u = x.clamp(-self.bound, self.bound) / self.bound;
        let u2 = u * u;
        let acc = self.odd.iter().rev().fold(0.0, |acc, &a| acc * u2 + a);
        self.constant + u * acc
    }

    /// Secret × secret products per element: `v = u²`, Horner in `v` over the remaining
    /// `odd.len() − 2` coefficients (the first step multiplies by a public coefficient), then `× u`.
    pub fn multiplications(&self) -> u64 {
        match self.odd.len() {
            0 => 0,
            1 => 0,
            k => k as u64,
        }
    }
}

/// `scale · Σ coeffs[i]·wⁱ` with `w = (clamp(x, lo, hi) − centre) / half` (`centre`, `half` the
/// interval's middle and half-width): a general polynomial on a clamped input, evaluated by
/// Horner in `w` (the first step multiplies by a public coefficient). `scale` keeps the
/// coefficients near 1 so that their fixed-point encodings stay exact to a few parts in 10⁵.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tail {
    pub lo: f64,
    pub hi: f64,
    pub scale: f64,
    pub coeffs: &'static [f64],
}

impl Tail {
    pub fn centre(&self) -> f64 {
        (self.lo + self.hi) / 2.0
    }

    pub fn half(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }

    pub fn eval(&self, x: f64) -> f64 {
        let w = (x.clamp(self.lo, self.hi) - self.centre()) / self.half();
        self.scale * self.coeffs.iter().rev().fold(0.0, |acc, &a| acc * w + a)
    }

    /// Secret × secret products per evaluated element (Horner less its public first step).
    pub fn multiplications(&self) -> u64 {
        self.coeffs.len().saturating_sub(2) as u64
    }
}

/// An odd function as a middle piece and two mirrored tails:
/// `f(x) ≈ mid(x) + tail(x) − tail(−x)`. Exact as a decomposition for the sigmoid, because
/// `σ(x) = σ(clamp(x, −a, a)) + [σ(clamp(x, a, b)) − σ(a)] − [σ(clamp(−x, a, b)) − σ(a)]` for
/// `|x| ≤ b`: each piece is smooth on a short interval, so low-degree polynomials fit it closely.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piecewise {
    pub mid: Clamped,
    pub tail: Tail,
    /// Largest `|approximation − f|` over all reals (in exact arithmetic).
    pub max_error: f64,
}

impl Piecewise {
    pub fn eval(&self, x: f64) -> f64 {
        self.mid.eval(x) + self.tail.eval(x) - self.tail.eval(-x)
    }

    /// Secret × secret products per element: the middle piece's, and the tail's at `x` and `−x`.
    pub fn multiplications(&self) -> u64 {
        self.mid.multiplications() + 2 * self.tail.multiplications()
    }

    /// Comparisons per element: two per clamp (the middle one and the two tails').
    pub fn comparisons(&self) -> u64 {
        6
    }
}

/// The logistic sigmoid `1 / (1 + e^−x)`: middle piece on [−4, 4] (odd, degree 17), tails on
/// [4, 16] (degree 10, scaled by 0.02); beyond ±16 the value is σ(±16), 1.1e-7 from 0 or 1. The
/// largest error is 9.4e-7 (the middle piece's fit; the tails' is 3.1e-7). Under 2PC it costs
/// 6 comparisons, 27 products and 10 rounds per element (the pieces' Horner steps interleaved).
pub const SIGMOID: Piecewise = Piecewise {
    mid: Clamped {
        bound: 4.0,
        constant: 0.5,
        odd: &[
            0.9999811402064404,
            -1.332047427123069,
            2.107275826081236,
            -3.206897571795939,
            4.261080887844861,
            -4.412072081930853,
            3.162561393265135,
            -1.3562695373240476,
            0.2584020927053345,
        ],
        max_error: 9.4e-7,
    },
    tail: Tail {
        lo: 4.0,
        hi: 16.0,
        scale: 0.02,
        coeffs: &[
            0.8970408517789185,
            0.013793774804728431,
            -0.0408727199749091,
            0.07800808959788816,
            -0.12204522977868114,
            0.16859524867788164,
            -0.1501406080207956,
            0.07305184566422669,
            -0.08221286028019126,
            0.11618796006299217,
            -0.052116998084877436,
        ],
    },
    max_error: 9.4e-7,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn sigmoid_error_is_within_its_stated_bound_everywhere() {
        let mut worst: f64 = 0.0;
        for i in -400_000..=400_000 {
            let x = i as f64 * 1e-4; // [-40, 40]
            worst = worst.max((SIGMOID.eval(x) - sigmoid(x)).abs());
        }
        for x in [-1e6, -100.0, 100.0, 1e6] {
            worst = worst.max((SIGMOID.eval(x) - sigmoid(x)).abs());
        }
        assert!(worst <= SIGMOID.max_error, "worst error {worst}");
        // The bound is tight, not a loose over-statement.
        assert!(worst > 0.8 * SIGMOID.max_error, "worst error {worst}");
    }

    #[test]
    fn sigmoid_is_symmetric_about_one_half() {
        for x in [0.0, 0.3, 1.0, 2.5, 6.9, 7.0, 50.0] {
            assert!((SIGMOID.eval(x) + SIGMOID.eval(-x) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn sigmoid_costs_its_pieces_products() {
        assert_eq!(SIGMOID.multiplications(), 9 + 2 * 9);
    }
}
