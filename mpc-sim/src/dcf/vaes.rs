//! Fused AVX-512 + VAES evaluation of one chunk of [`LANES`] keys.
//!
//! Four keys share a 512-bit register (one 128-bit lane each): 4 registers of seeds (control bit
//! in bit 0), 4 of value accumulators (two u64 words per lane), 4 of shifted inputs. Per level
//! the 8 AES chains (seed block and value block of 16 keys) run interleaved, so the VAES unit
//! always has independent work; the control-bit logic uses AVX-512 mask registers.

use std::arch::x86_64::*;

use super::prg::Block;
use super::prg::x86::{RoundKeys, wide_keys};
use crate::party::Party;

/// Keys per chunk: 4 registers of 4 keys. This file is written for exactly this width, which must
/// equal the chunk width of the batch layout, [`super::LANES`]: the call in
/// [`super::eval_batch_with`] passes `[_; super::LANES]` arrays, so it only compiles while they agree.
/// (Kept here rather than imported, so that this file does not depend on its parent.)
const LANES: usize = 16;
const G: usize = LANES / 4;

/// How many levels ahead the correction words are prefetched.
const PREFETCH_LEVELS: usize = 8;

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,vaes,aes,sse2")]
pub(super) fn eval_chunk(
    rk: &RoundKeys,
    party: Party,
    n: u32,
    seeds: &[Block; LANES],
    cw: &[Block],
    fin: &[Block; LANES],
    xs: &[u64; LANES],
    out: &mut [[u64; 2]; LANES],
) {
    assert_eq!(cw.len(), n as usize * 2 * LANES);
    let k = wide_keys(rk);
    let one_lo = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let ones = _mm512_set1_epi64(1);
    let clr3 = _mm512_set_epi64(-1, !3, -1, !3, -1, !3, -1, !3);
    let clr2 = _mm512_set_epi64(-1, !2, -1, !2, -1, !2, -1, !2);
    let tb = if party == Party::P1 { one_lo } else { _mm512_setzero_si512() };
    let sp = seeds.as_ptr() as *const __m512i;
    // SAFETY: `seeds` holds 16 u128 = 4 × 64 bytes; unaligned loads.
    let mut s: [__m512i; G] = std::array::from_fn(|g| _mm512_or_si512(unsafe { _mm512_loadu_si512(sp.add(g)) }, tb));
    let sh = 64 - n;
    let mut x: [__m512i; G] = std::array::from_fn(|g| {
        let q = |i: usize| (xs[4 * g + i] << sh) as i64;
        _mm512_set_epi64(0, q(3), 0, q(2), 0, q(1), 0, q(0))
    });
    let mut v = [_mm512_setzero_si512(); G];
    let cp = cw.as_ptr() as *const __m512i;
    for l in 0..n as usize {
        // SAFETY: level l occupies cw[l*32 .. l*32 + 32] (checked by the assert above).
        let lp = unsafe { cp.add(l * 2 * G) };
        // Software prefetch PREFETCH_LEVELS levels ahead (8 cache lines per level); past the end of
        // the chunk this reaches into the next chunk, which is read next anyway.
        let pf = lp.wrapping_add(PREFETCH_LEVELS * 2 * G) as *const i8;
        for c in 0..2 * G {
            _mm_prefetch::<_MM_HINT_T0>(pf.wrapping_add(64 * c));
        }
        let mut bit = [_mm512_setzero_si512(); G];
        let mut a = [_mm512_setzero_si512(); G];
        let mut b = [_mm512_setzero_si512(); G];
        let mut t = [0u8; G];
        for g in 0..G {
            bit[g] = _mm512_srli_epi64::<63>(x[g]);
            x[g] = _mm512_slli_epi64::<1>(x[g]);
            // base = (s & clr3) | (bit << 1)
            a[g] = _mm512_ternarylogic_epi64::<0xEA>(s[g], clr3, _mm512_slli_epi64::<1>(bit[g]));
            b[g] = _mm512_or_si512(a[g], one_lo);
            t[g] = _mm512_test_epi64_mask(_mm512_shuffle_epi32::<0x44>(s[g]), ones);
        }
        let mut ya = a.map(|z| _mm512_xor_si512(z, k[0]));
        let mut yb = b.map(|z| _mm512_xor_si512(z, k[0]));
        for r in &k[1..10] {
            for g in 0..G {
                ya[g] = _mm512_aesenc_epi128(ya[g], *r);
                yb[g] = _mm512_aesenc_epi128(yb[g], *r);
            }
        }
        for g in 0..G {
            let ha = _mm512_xor_si512(_mm512_aesenclast_epi128(ya[g], k[10]), a[g]);
            let hb = _mm512_xor_si512(_mm512_aesenclast_epi128(yb[g], k[10]), b[g]);
            // SAFETY: within the level's 32 blocks.
            let (scw, vcw) = unsafe { (_mm512_loadu_si512(lp.add(g)), _mm512_loadu_si512(lp.add(G + g))) };
            let tcw = _mm512_and_si512(_mm512_srlv_epi64(scw, bit[g]), one_lo);
            // corr = (scw & clr3) | tcw
            let corr = _mm512_ternarylogic_epi64::<0xEA>(scw, clr3, tcw);
            let sa = _mm512_and_si512(ha, clr2);
            s[g] = _mm512_mask_xor_epi64(sa, t[g], sa, corr);
            v[g] = _mm512_add_epi64(v[g], hb);
            v[g] = _mm512_mask_add_epi64(v[g], t[g], v[g], vcw);
        }
    }
    let fp = fin.as_ptr() as *const __m512i;
    let op = out.as_mut_ptr() as *mut __m512i;
    for g in 0..G {
        let t = _mm512_test_epi64_mask(_mm512_shuffle_epi32::<0x44>(s[g]), ones);
        let mut y = _mm512_add_epi64(v[g], _mm512_and_si512(s[g], clr3));
        // SAFETY: `fin` and `out` hold 16 × 16 bytes.
        let f = unsafe { _mm512_loadu_si512(fp.add(g)) };
        y = _mm512_mask_add_epi64(y, t, y, f);
        if party == Party::P1 {
            y = _mm512_sub_epi64(_mm512_setzero_si512(), y);
        }
        // SAFETY: as above.
        unsafe { _mm512_storeu_si512(op.add(g), y) };
    }
}
