//! Fused AVX-512 + VAES evaluation of the compact DCF ([`super::bit`]) for `NC` chunks of
//! [`LANES`] keys at once.
//!
//! Four keys share a 512-bit register (one 128-bit lane each): per register the state (seed with
//! the control bit in bit 0), the remaining path bits and the output bit. A level costs one AES
//! block per key; `4·NC` independent AES chains run interleaved so the VAES unit stays busy.
//! The control-bit logic uses mask registers; the leaf lookup is finished in scalar code.

use std::arch::x86_64::*;

use super::prg::Block;
use super::prg::x86::{RoundKeys, wide_keys};
use crate::party::Party;

/// Keys per chunk; equal to [`super::LANES`] (the caller passes `[_; LANES]`-sized slices).
const LANES: usize = 16;

/// One chunk's inputs: its level corrections `[level][LANES]`, per-key VCW words, leaf
/// corrections, root seeds and input words.
pub(super) struct Chunk<'a> {
    pub cw: &'a [Block],
    pub vcw: &'a [u64],
    pub leaf: &'a [Block],
    pub seeds: &'a [Block],
    pub xs: [u64; LANES],
}

/// Evaluates `NC` chunks; `out[c][j]` receives key `j` of chunk `c`'s output bit.
#[target_feature(enable = "avx512f,vaes,aes,sse2")]
pub(super) fn eval_chunks<const NC: usize>(
    rk: &RoundKeys,
    party: Party,
    n: u32,
    nu: usize,
    chunks: &[Chunk<'_>; NC],
    out: &mut [[u8; LANES]; NC],
) {
    let k = wide_keys(rk);
    let one_lo = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
    let ones = _mm512_set1_epi64(1);
    let clr3 = _mm512_set_epi64(-1, !3, -1, !3, -1, !3, -1, !3);
    let clr2 = _mm512_set_epi64(-1, !2, -1, !2, -1, !2, -1, !2);
    let tb = if party == Party::P1 { one_lo } else { _mm512_setzero_si512() };
    let lbits = n - nu as u32;
    // Register r = 4 keys: chunk r / 4, keys 4·(r % 4) .. +4.
    let mut s: [[__m512i; 4]; NC] = [[_mm512_setzero_si512(); 4]; NC];
    let mut x: [[__m512i; 4]; NC] = [[_mm512_setzero_si512(); 4]; NC];
    let mut vc: [[__m512i; 4]; NC] = [[_mm512_setzero_si512(); 4]; NC];
    let mut acc: [[__m512i; 4]; NC] = [[_mm512_setzero_si512(); 4]; NC];
    for c in 0..NC {
        let ch = &chunks[c];
        assert!(
            ch.cw.len() == nu * LANES && ch.vcw.len() == LANES && ch.leaf.len() == LANES && ch.seeds.len() == LANES
        );
        let sp = ch.seeds.as_ptr() as *const __m512i;
        let sh = if nu == 0 { 0 } else { 64 - n };
        for g in 0..4 {
            // SAFETY: `seeds` holds 16 u128 = 4 × 64 bytes; unaligned loads.
            s[c][g] = _mm512_or_si512(unsafe { _mm512_loadu_si512(sp.add(g)) }, tb);
            let q = |i: usize| if nu == 0 { 0 } else { (ch.xs[4 * g + i] << sh) as i64 };
            x[c][g] = _mm512_set_epi64(0, q(3), 0, q(2), 0, q(1), 0, q(0));
            let v = |i: usize| ch.vcw[4 * g + i] as i64;
            vc[c][g] = _mm512_set_epi64(0, v(3), 0, v(2), 0, v(1), 0, v(0));
        }
    }
    for l in 0..nu {
        let mut base = [[_mm512_setzero_si512(); 4]; NC];
        let mut bit = [[_mm512_setzero_si512(); 4]; NC];
        let mut t = [[0u8; 4]; NC];
        let mut y = [[_mm512_setzero_si512(); 4]; NC];
        for c in 0..NC {
            let pf = chunks[c].cw.as_ptr().wrapping_add((l + 8) * LANES) as *const i8;
            for line in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(pf.wrapping_add(64 * line));
            }
            for g in 0..4 {
                bit[c][g] = _mm512_srli_epi64::<63>(x[c][g]);
                x[c][g] = _mm512_slli_epi64::<1>(x[c][g]);
                // base = (s & clr3) | bit
                base[c][g] = _mm512_ternarylogic_epi64::<0xEA>(s[c][g], clr3, bit[c][g]);
                t[c][g] = _mm512_test_epi64_mask(_mm512_shuffle_epi32::<0x44>(s[c][g]), ones);
                y[c][g] = _mm512_xor_si512(base[c][g], k[0]);
            }
        }
        for r in &k[1..10] {
            for yc in y.iter_mut() {
                for yg in yc.iter_mut() {
                    *yg = _mm512_aesenc_epi128(*yg, *r);
                }
            }
        }
        for c in 0..NC {
            let lp = chunks[c].cw[l * LANES..].as_ptr() as *const __m512i;
            for g in 0..4 {
                let h = _mm512_xor_si512(_mm512_aesenclast_epi128(y[c][g], k[10]), base[c][g]);
                // SAFETY: level l of the chunk holds 16 blocks = 4 registers (asserted above).
                let scw = unsafe { _mm512_loadu_si512(lp.add(g)) };
                let tcw = _mm512_and_si512(_mm512_srlv_epi64(scw, bit[c][g]), one_lo);
                let vb = _mm512_slli_epi64::<1>(_mm512_and_si512(vc[c][g], one_lo));
                vc[c][g] = _mm512_srli_epi64::<1>(vc[c][g]);
                // corr = (scw & clr3) | tcw | vb
                let corr = _mm512_or_si512(_mm512_ternarylogic_epi64::<0xEA>(scw, clr3, tcw), vb);
                let z = _mm512_mask_xor_epi64(h, t[c][g], h, corr);
                acc[c][g] = _mm512_xor_si512(acc[c][g], _mm512_and_si512(_mm512_srli_epi64::<1>(z), one_lo));
                s[c][g] = _mm512_and_si512(z, clr2);
            }
        }
    }
    // Leaves: H((s & clr3) | 2), corrected where t = 1; the bit at the input's low bits.
    let two_lo = _mm512_set_epi64(0, 2, 0, 2, 0, 2, 0, 2);
    let mut base = [[_mm512_setzero_si512(); 4]; NC];
    let mut y = [[_mm512_setzero_si512(); 4]; NC];
    for c in 0..NC {
        for g in 0..4 {
            base[c][g] = _mm512_ternarylogic_epi64::<0xEA>(s[c][g], clr3, two_lo);
            y[c][g] = _mm512_xor_si512(base[c][g], k[0]);
        }
    }
    for r in &k[1..10] {
        for yc in y.iter_mut() {
            for yg in yc.iter_mut() {
                *yg = _mm512_aesenc_epi128(*yg, *r);
            }
        }
    }
    for c in 0..NC {
        let lp = chunks[c].leaf.as_ptr() as *const __m512i;
        for g in 0..4 {
            let h = _mm512_xor_si512(_mm512_aesenclast_epi128(y[c][g], k[10]), base[c][g]);
            let t = _mm512_test_epi64_mask(_mm512_shuffle_epi32::<0x44>(s[c][g]), ones);
            // SAFETY: `leaf` holds 16 blocks (asserted above).
            let lcw = unsafe { _mm512_loadu_si512(lp.add(g)) };
            let lf = _mm512_mask_xor_epi64(h, t, h, lcw);
            let mut lanes = [0u128; 4];
            let mut accs = [0u128; 4];
            // SAFETY: 4 × 16 bytes each.
            unsafe {
                _mm512_storeu_si512(lanes.as_mut_ptr() as *mut __m512i, lf);
                _mm512_storeu_si512(accs.as_mut_ptr() as *mut __m512i, acc[c][g]);
            }
            for i in 0..4 {
                let j = 4 * g + i;
                let xl = chunks[c].xs[j] & ((1u64 << lbits) - 1);
                out[c][j] = (accs[i] as u8 & 1) ^ ((lanes[i] >> xl) & 1) as u8;
            }
        }
    }
}
