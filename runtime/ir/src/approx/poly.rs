//! Polynomials fitted at run time by Chebyshev interpolation, for the approximations of
//! [`super::transformer`]. A fit is deterministic (the nodes and the arithmetic are fixed), so
//! every party, the planner and the tests compute the same coefficients.

/// `Σ coeffs[i]·wⁱ` with `w = (x − centre) / half` on `[lo, hi]` (`centre`, `half` the interval's
/// middle and half-width): evaluated on shares by Horner in `w`, whose first step multiplies by a
/// public coefficient and costs no product of secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Poly {
    pub lo: f64,
    pub hi: f64,
    /// Monomial coefficients in `w`, constant first.
    pub coeffs: Vec<f64>,
}

impl Poly {
    /// The degree-`degree` interpolant of `f` at the Chebyshev nodes of `[lo, hi]`, written in the
    /// monomial basis of `w`. Near-minimax for smooth `f`; for the functions fitted here (degree
    /// ≤ 12 on intervals where `f` is analytic) the monomial coefficients stay below 2 in size, so
    /// their fixed-point encodings lose nothing that matters.
    pub fn fit(f: impl Fn(f64) -> f64, lo: f64, hi: f64, degree: usize) -> Poly {
        assert!(hi > lo, "an interval [{lo}, {hi}]");
        let n = degree + 1;
        let (centre, half) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
        let nodes: Vec<f64> = (0..n).map(|k| (std::f64::consts::PI * (k as f64 + 0.5) / n as f64).cos()).collect();
        let values: Vec<f64> = nodes.iter().map(|&t| f(centre + half * t)).collect();
        // Chebyshev coefficients c_j = (2/n) Σ_k f(t_k) T_j(t_k), c_0 halved.
        let cheb: Vec<f64> = (0..n)
            .map(|j| {
                let s: f64 = nodes.iter().zip(&values).map(|(&t, &v)| v * (j as f64 * t.acos()).cos()).sum::<f64>()
                    * 2.0
                    / n as f64;
                if j == 0 { s / 2.0 } else { s }
            })
            .collect();
        // Σ c_j T_j in the monomial basis, with T_{j+1} = 2w·T_j − T_{j−1}.
        let mut coeffs = vec![0.0; n];
        let (mut prev, mut cur) = (vec![1.0], vec![0.0, 1.0]);
        for (j, &c) in cheb.iter().enumerate() {
            let t = match j {
                0 => prev.clone(),
                1 => cur.clone(),
                _ => {
                    let mut next = vec![0.0; j + 1];
                    for (i, &a) in cur.iter().enumerate() {
                        next[i + 1] += 2.0 * a;
                    }
                    for (i, &a) in prev.iter().enumerate() {
                        next[i] -= a;
                    }
                    prev = std::mem::replace(&mut cur, next);
                    cur.clone()
                }
            };
            for (i, &a) in t.iter().enumerate() {
                coeffs[i] += c * a;
            }
        }
        Poly { lo, hi, coeffs }
    }

    pub fn centre(&self) -> f64 {
        (self.lo + self.hi) / 2.0
    }

    pub fn half(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }

    pub fn degree(&self) -> usize {
        self.coeffs.len().saturating_sub(1)
    }

    /// The polynomial at `x` in floating point (not clamped: outside `[lo, hi]` it extrapolates).
    pub fn eval(&self, x: f64) -> f64 {
        let w = (x - self.centre()) / self.half();
        self.coeffs.iter().rev().fold(0.0, |acc, &a| acc * w + a)
    }

    /// Secret × secret products of one evaluation (Horner less its public first step), each one
    /// round.
    pub fn multiplications(&self) -> u64 {
        self.degree().saturating_sub(1) as u64
    }

    /// Largest `|p − f|` on `samples + 1` equally spaced points of `[lo, hi]`.
    pub fn max_error(&self, f: impl Fn(f64) -> f64, samples: usize) -> f64 {
        (0..=samples)
            .map(|i| {
                let x = self.lo + (self.hi - self.lo) * i as f64 / samples as f64;
                (self.eval(x) - f(x)).abs()
            })
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polynomial_of_the_fitted_degree_is_reproduced_exactly() {
        let f = |x: f64| 3.0 - 2.0 * x + 0.5 * x * x * x;
        let p = Poly::fit(f, -1.0, 3.0, 3);
        assert!(p.max_error(f, 1000) < 1e-12, "{:?}", p.coeffs);
        assert_eq!(p.degree(), 3);
        assert_eq!(p.multiplications(), 2);
    }

    #[test]
    fn the_exponential_converges_geometrically_with_the_degree() {
        let errs: Vec<f64> =
            [4, 6, 8].iter().map(|&d| Poly::fit(f64::exp, -4.0, 0.0, d).max_error(f64::exp, 4000)).collect();
        assert!(errs[0] > 10.0 * errs[1] && errs[1] > 10.0 * errs[2], "{errs:?}");
        assert!(errs[2] < 2e-6, "{errs:?}");
    }
}
