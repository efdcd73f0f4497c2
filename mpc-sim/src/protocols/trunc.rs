//! Local truncation of fixed-point products (no communication).
//!
//! P0 shifts its share arithmetically; P1 computes `-((-x1) >> f)`. The result is the true
//! `x >> f` up to one unit in the last place with high probability; with probability about
//! `|x| / 2^63` per element (x the value before the shift) it is wrong by a huge amount. The
//! engine's tests and `masq bench mpc` measure that rate.

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
