//! Fake quantization (`QuantizeLinear` then `DequantizeLinear`) on shares, exactly.
//!
//! `Q(x) = clamp(round(x/s), qmin − z, qmax − z)·s`. The clamp runs first
//! ([`masq_ir::quant::clamp_clip`]: a ReLU and a cap where the quantizer floors at 0, two clip
//! comparisons elsewhere, at the node's calibrated width); then the rounding, as an **exact**
//! floor of `x/s + 1/2`:
//!
//! ```text
//!   X = x·2^f (the share words), S = s·2^f (the grid step in units of 2^-f)
//!   S = 2^k (k ≥ 1):   y = X + 2^(k−1)                        (public add)
//!   otherwise:        y = X·M + 2^(k−1), M = round(2^k / S), k chosen so that M ≈ 2^24
//!   t = trunc_k(y)     local truncation: t ∈ {⌊y/2^k⌋, ⌊y/2^k⌋ + 1}
//!   ρ = y − t·2^k      |ρ| ≤ 2^k, so ρ < 0 exactly when t is one too high
//!   q = t − 1 + 1{ρ ≥ 0}                                       one comparison on k + 2 bits
//!   Q = q·2^k (exact)   or   trunc_f(q·round(s·2^2f))          (within 1 unit in the last place)
//! ```
//!
//! The comparison's width is fixed by `k`, not by the data, so it needs no calibration and can
//! never overflow. Cost per element: one comparison of `k + 2` bits (1 round one-round, 2
//! compact), which is narrow: `k = f − sf`, 10–12 bits for 8-bit activations at `f = 16`.
//! Differences from the clear text: ties round up, not to even (a tie needs `x/s` to be exactly
//! half-way, which only happens when `x` is itself on a finer grid), and the local truncation's
//! wrap (probability about `|y|/2^63`), as everywhere in the engine. A grid finer than 2 units in
//! the last place (`S < 2`) is refused, naming the node: raise the fractional bits.

use ndarray::{ArrayD, IxDyn};

use masq_ir::{Node, QuantParams};
use masq_mpc::FixedPoint;

use super::lower::{Backend, clip, mpc_err, unsupported};
use crate::error::Result;

/// Bits of the multiplier `M` for a grid step that is not a power of two.
const MULT_BITS: i32 = 24;

/// How a grid step is rounded to: multiply by `mult`, then floor by `shift` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GridShift {
    pub mult: u64,
    pub shift: u32,
    /// `S = 2^shift` exactly (`mult == 1`): the result is `q·2^shift`, exact.
    pub exact: bool,
}

/// The rounding of grid step `scale` at `fp`, or `None` when the grid is finer than 2 units in the
/// last place (or not a positive finite step).
pub(crate) fn grid_shift(scale: f64, fp: FixedPoint) -> Option<GridShift> {
    let s = scale * fp.scale();
    if !(s.is_finite() && s >= 2.0) {
        return None;
    }
    let e = s.log2();
    if e.fract() == 0.0 && s == 2f64.powi(e as i32) {
        return Some(GridShift { mult: 1, shift: e as u32, exact: true });
    }
    // 2^k / S ≈ 2^MULT_BITS, and k ≤ 62 − MULT_BITS keeps y = X·M inside the ring for values
    // within 2^(61 − k) grid steps.
    let k = (MULT_BITS + e.ceil() as i32).clamp(1, 40) as u32;
    let mult = (2f64.powi(k as i32) / s).round() as u64;
    Some(GridShift { mult: mult.max(1), shift: k, exact: false })
}

/// The width of the rounding comparison of `g`: `|ρ| ≤ 2^k` needs `k + 2` bits.
pub(crate) fn rounding_bits(g: GridShift) -> u32 {
    g.shift + 2
}

fn filled<B: Backend>(b: &B, w: u64, shape: &[usize]) -> ArrayD<B::T> {
    b.public(&ArrayD::from_elem(IxDyn(shape), w))
}

/// `[Q(x)]` of the quantizer `q` (see the module docs).
pub(super) fn fake_quant<B: Backend>(
    b: &mut B,
    node: &Node,
    fp: FixedPoint,
    x: ArrayD<B::T>,
    q: &QuantParams,
) -> Result<ArrayD<B::T>> {
    let x = clip(b, node, fp, x, &masq_ir::quant::clamp_clip(q))?;
    let Some(g) = grid_shift(q.scale as f64, fp) else {
        return Err(unsupported(
            node,
            format!(
                "quantizer step {} is finer than 2 units of the fixed point's 2^-{} (raise --frac-bits)",
                q.scale,
                fp.frac_bits()
            ),
        ));
    };
    let shape = x.shape().to_vec();
    let k = g.shift;
    let y = if g.mult == 1 { x } else { b.mul_public(x, &ndarray::arr0(g.mult).into_dyn()) };
    let y = b.add(y, &filled(b, 1u64 << (k - 1), &shape));
    let t = b.truncate_by(y.clone(), k);
    let tk = b.mul_public(t.clone(), &ndarray::arr0(1u64 << k).into_dyn());
    let rho = b.sub(y, &tk);
    let d = b.drelu_bits(rho, rounding_bits(g)).map_err(mpc_err(node))?;
    let one = filled(b, 1, &shape);
    let td = b.add(t, &d);
    let q_int = b.sub(td, &one);
    if g.exact {
        return Ok(b.mul_public(q_int, &ndarray::arr0(1u64 << k).into_dyn()));
    }
    let step = (q.scale as f64 * fp.scale() * fp.scale()).round() as i64 as u64;
    let v = b.mul_public(q_int, &ndarray::arr0(step).into_dyn());
    Ok(b.truncate(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_two_steps_shift_exactly_and_others_multiply() {
        let fp = FixedPoint::default();
        assert_eq!(grid_shift(2f64.powi(-5), fp), Some(GridShift { mult: 1, shift: 11, exact: true }));
        assert_eq!(grid_shift(2f64.powi(-15), fp), Some(GridShift { mult: 1, shift: 1, exact: true }));
        assert_eq!(grid_shift(2f64.powi(-16), fp), None);
        assert_eq!(grid_shift(0.0, fp), None);
        assert_eq!(grid_shift(f64::NAN, fp), None);
        let g = grid_shift(0.0123, fp).unwrap();
        assert!(!g.exact);
        let s = 0.0123 * fp.scale();
        let rel = (g.mult as f64 * s / 2f64.powi(g.shift as i32) - 1.0).abs();
        assert!(rel < 2f64.powi(-MULT_BITS), "M·S/2^k off by {rel}");
        assert_eq!(rounding_bits(g), g.shift + 2);
    }
}
