//! Approximations that secure protocols compute in place of a function with no exact 2PC form,
//! in one place so the cost table, the secure lowering and the tests share them.
//!
//! A [`Clamped`] approximation of `f` computes, with `u = clamp(x, −T, T) / T`,
//! `f(x) ≈ c + u·(a₀ + a₁u² + a₂u⁴ + …)`: the clamp costs two comparisons per element (one round),
//! the odd polynomial a handful of secret × secret products (Horner in `u²`). The coefficients
//! were fitted (iteratively re-weighted least squares toward the minimax fit, on Chebyshev nodes)
//! offline; [`Clamped::max_error`] is the largest error over the whole real line, measured in
//! this module's tests on a dense grid and in the tails, before fixed-point rounding.

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

    /// Secret × secret products per element: `u²`, then Horner over the remaining
    /// `odd.len() − 2` coefficients (the first step multiplies by a public coefficient), then `× u`.
    pub fn multiplications(&self) -> u64 {
        match self.odd.len() {
            0 => 0,
            1 => 0,
            k => k as u64,
        }
    }
}

/// The logistic sigmoid `1 / (1 + e^−x)`: clamp at ±7 (σ(−7) = 9.1e-4), odd degree 13; the
/// largest error is 9.3e-4, at the clamp edges and inside alike.
pub const SIGMOID: Clamped = Clamped {
    bound: 7.0,
    constant: 0.5,
    odd: &[
        1.7334052925856154,
        -6.256448852588839,
        20.088042084215203,
        -41.98505241933654,
        51.79435348090547,
        -33.945574289056104,
        9.07129149324012,
    ],
    max_error: 9.3e-4,
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
    fn sigmoid_costs_one_product_per_odd_coefficient() {
        assert_eq!(SIGMOID.multiplications(), 7);
    }
}
