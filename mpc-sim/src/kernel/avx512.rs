//! AVX-512 micro-kernel: an 8×24 tile of C held in 24 zmm accumulators (8 rows × 3 vectors of
//! eight u64 lanes). Each step of the shared dimension loads three vectors of packed B, broadcasts
//! eight values of packed A and issues 24 `vpmullq` (AVX-512DQ, low 64 bits of the 64×64 product,
//! which is exactly multiplication in Z_2^64) and 24 `vpaddq`.

use std::arch::x86_64::{
    __m512i, _mm512_add_epi64, _mm512_loadu_si512, _mm512_mullo_epi64, _mm512_set1_epi64, _mm512_setzero_si512,
    _mm512_storeu_si512,
};

use super::micro::MicroKernel;

pub(crate) struct Avx512;

const MR: usize = 8;
const NR: usize = 24;

impl MicroKernel for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn run(kc: usize, a: *const u64, b: *const u64, c: *mut u64, ldc: usize, overwrite: bool) {
        // SAFETY: forwarded from the caller (panel sizes, C tile validity, CPU features).
        unsafe { kernel_8x24(kc, a, b, c, ldc, overwrite) }
    }
}

#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn kernel_8x24(kc: usize, a: *const u64, b: *const u64, c: *mut u64, ldc: usize, overwrite: bool) {
    let mut acc = [[_mm512_setzero_si512(); 3]; MR];
    for p in 0..kc {
        // SAFETY: step `p < kc` of the packed panels: NR values of B at `b + p·NR`, MR values of A
        // at `a + p·MR` (the caller guarantees `kc·NR` and `kc·MR` readable values).
        unsafe {
            let bp = b.add(p * NR);
            let b0 = _mm512_loadu_si512(bp as *const __m512i);
            let b1 = _mm512_loadu_si512(bp.add(8) as *const __m512i);
            let b2 = _mm512_loadu_si512(bp.add(16) as *const __m512i);
            let ap = a.add(p * MR);
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_epi64(*ap.add(i) as i64);
                acc_row[0] = _mm512_add_epi64(acc_row[0], _mm512_mullo_epi64(ai, b0));
                acc_row[1] = _mm512_add_epi64(acc_row[1], _mm512_mullo_epi64(ai, b1));
                acc_row[2] = _mm512_add_epi64(acc_row[2], _mm512_mullo_epi64(ai, b2));
            }
        }
    }
    for (i, acc_row) in acc.iter().enumerate() {
        for (j, v) in acc_row.iter().enumerate() {
            // SAFETY: the caller guarantees row `i` of the tile (NR values at `c + i·ldc`) is valid.
            unsafe {
                let dst = c.add(i * ldc + 8 * j) as *mut __m512i;
                let out = if overwrite { *v } else { _mm512_add_epi64(_mm512_loadu_si512(dst), *v) };
                _mm512_storeu_si512(dst, out);
            }
        }
    }
}
