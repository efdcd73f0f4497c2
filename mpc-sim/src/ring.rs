//! The ring Z_2^64 (wrapping `u64` arithmetic) and the fixed-point encoding of reals in it.
//!
//! A real `v` is encoded as `round(v · 2^f) mod 2^64`; decoding reads the word as a signed
//! `i64` and divides by `2^f`. `f` is [`FixedPoint::frac_bits`] (default 16).

use crate::error::{MpcError, Result};

/// A ring element. All arithmetic on it is wrapping.
pub type Elem = u64;

/// Fixed-point parameters: the number of fractional bits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode, serde::Serialize, serde::Deserialize,
)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        FixedPoint { frac_bits: Self::DEFAULT_FRAC_BITS }
    }
}

impl FixedPoint {
    /// The default number of fractional bits.
    pub const DEFAULT_FRAC_BITS: u32 = 16;

    /// Fixed point with `frac_bits` fractional bits; 1 to 40 are accepted (products of two
    /// encodings need `2f` bits plus the integer part to stay far below 2^63).
    pub fn new(frac_bits: u32) -> Result<Self> {
        if !(1..=40).contains(&frac_bits) {
            return Err(MpcError::InvalidParameter {
                name: "frac_bits",
                value: frac_bits.to_string(),
                reason: "must be between 1 and 40".into(),
            });
        }
        Ok(FixedPoint { frac_bits })
    }

    /// Number of fractional bits `f`.
    pub fn frac_bits(self) -> u32 {
        self.frac_bits
    }

    /// `2^f` as a float.
    pub fn scale(self) -> f64 {
        (1u64 << self.frac_bits) as f64
    }

    /// Encodes a real number (saturating at the i64 range).
    pub fn encode(self, v: f64) -> Elem {
        let scaled = (v * self.scale()).round();
        (scaled as i64) as u64
    }

    /// Decodes a ring element as a signed fixed-point number.
    pub fn decode(self, x: Elem) -> f64 {
        (x as i64) as f64 / self.scale()
    }

    /// Encodes every element of a slice.
    pub fn encode_slice(self, vs: &[f32]) -> Vec<Elem> {
        vs.iter().map(|&v| self.encode(v as f64)).collect()
    }

    /// Decodes every element of a slice.
    pub fn decode_slice(self, xs: &[Elem]) -> Vec<f32> {
        xs.iter().map(|&x| self.decode(x) as f32).collect()
    }

    /// Arithmetic right shift by `f` of a plaintext product (the plaintext reference for truncation).
    pub fn truncate_plain(self, x: Elem) -> Elem {
        ((x as i64) >> self.frac_bits) as u64
    }
}

/// Reads a ring element as a signed integer.
#[inline]
pub fn signed(x: Elem) -> i64 {
    x as i64
}

/// Most significant bit of a ring element (1 for negative signed values).
#[inline]
pub fn msb(x: Elem) -> u64 {
    x >> 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let fp = FixedPoint::default();
        for v in [0.0, 1.0, -1.0, 3.25, -1234.5, 1e-4] {
            let back = fp.decode(fp.encode(v));
            assert!((back - v).abs() <= 0.5 / fp.scale(), "{v} -> {back}");
        }
    }

    #[test]
    fn frac_bits_range_is_checked() {
        assert!(FixedPoint::new(0).is_err());
        assert!(FixedPoint::new(41).is_err());
        assert_eq!(FixedPoint::new(12).unwrap().frac_bits(), 12);
    }

    #[test]
    fn truncate_plain_is_arithmetic_shift() {
        let fp = FixedPoint::new(8).unwrap();
        assert_eq!(fp.truncate_plain(fp.encode(-2.0) << 8), fp.encode(-2.0));
    }
}
