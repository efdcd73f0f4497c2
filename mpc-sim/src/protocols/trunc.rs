//! Local truncation of fixed-point products (no communication).
//!
//! P0 shifts its share arithmetically; P1 computes `-((-x1) >> f)`. The result is the true
//! `x >> f` up to one unit in the last place with high probability; with probability
//! `|x| / 2^64` per element ([`failure_probability`], x the value before the shift, shares
//! uniformly random) it is wrong by about `2^(64−f)`. The test below measures that rate.

use crate::share::{Party, Share};

/// Truncates `[x]` by `f` bits, locally.
pub fn truncate(x: Share, f: u32) -> Share {
    let party = x.party();
    let data = match party {
        Party::P0 => x.into_data().mapv_into(|v| ((v as i64) >> f) as u64),
        Party::P1 => {
            x.into_data().mapv_into(|v| (((v.wrapping_neg()) as i64) >> f) as u64).mapv_into(u64::wrapping_neg)
        }
    };
    Share::new(party, data)
}

/// Truncates one word of `party`'s share by `f` bits.
#[inline]
pub fn truncate_word(party: Party, v: u64, f: u32) -> u64 {
    match party {
        Party::P0 => ((v as i64) >> f) as u64,
        Party::P1 => ((((v.wrapping_neg()) as i64) >> f) as u64).wrapping_neg(),
    }
}

/// Probability that [`truncate`] gets a value of magnitude `abs` (before the shift) wrong by
/// about `2^(64−f)`: `abs / 2^64` for uniformly random shares (the failure happens when P0's
/// share, read as a signed word, lies within `abs` of the wrap between `2^63 − 1` and `−2^63`).
/// Measured by the test below; `masq_runtime::secure::headroom` sums it over a run's values.
pub fn failure_probability(abs: u64) -> f64 {
    abs as f64 / 2f64.powi(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn failures_occur_at_the_predicted_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let f = 16;
        for x in [1i64 << 57, -(3i64 << 55), 5i64 << 54] {
            let trials = 400_000u32;
            let mut wrong = 0u32;
            for _ in 0..trials {
                let x0 = rng.next_u64();
                let x1 = (x as u64).wrapping_sub(x0);
                let y = truncate_word(Party::P0, x0, f).wrapping_add(truncate_word(Party::P1, x1, f));
                if (y as i64).wrapping_sub(x >> f).unsigned_abs() > 1 {
                    wrong += 1;
                }
            }
            let rate = f64::from(wrong) / f64::from(trials);
            let predicted = failure_probability(x.unsigned_abs());
            eprintln!("x = {x}: {wrong} of {trials} wrong, rate {rate:.5}, predicted {predicted:.5}");
            assert!((rate / predicted - 1.0).abs() < 0.1, "x = {x}: rate {rate}, predicted {predicted}");
        }
    }
}
