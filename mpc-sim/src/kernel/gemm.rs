//! The blocked GEMM driver (BLIS loop order) and the portable micro-kernel.
//!
//! Loops, outermost first: columns of C in blocks of `NC`; the shared dimension in blocks of
//! `KC` (a `KC×NC` block of B is packed into `NR`-wide panels); rows of C in blocks of `MC`
//! (an `MC×KC` block of A is packed into `MR`-tall panels); then one micro-kernel call per
//! `MR×NR` tile of C, which keeps the whole tile in registers for the `KC` steps. Partial tiles at
//! the edges are computed on zero-padded panels into a scratch tile and merged.

use super::micro::{Kernel, MicroKernel};

/// Depth of a packed block (the shared dimension).
const KC: usize = 256;
/// Rows of A packed at once.
const MC: usize = 96;
/// Columns of B packed at once.
const NC: usize = 1536;

/// A read-only matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [u64],
    pub rs: usize,
    pub cs: usize,
}

impl MatRef<'_> {
    /// Whether every element of a `rows×cols` matrix lies inside `data`.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        let last = (rows - 1)
            .checked_mul(self.rs)
            .and_then(|r| (cols - 1).checked_mul(self.cs).and_then(|c| r.checked_add(c)));
        matches!(last, Some(l) if l < self.data.len())
    }
}

/// Runs `C[m×n] (=|+=) A[m×k]·B[k×n]`, with `C` row-major of row stride `ldc` (unit column stride).
///
/// The caller has validated the kernel's availability; shapes are re-checked here (panics on a
/// violation are internal bugs, never reachable from the public API).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [u64],
    ldc: usize,
    accumulate: bool,
) {
    if (1..=SMALL_M).contains(&m) && n > 0 && k > 0 && a.cs == 1 && (b.cs == 1 || b.rs == 1) {
        assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "gemm: C does not cover {m}×{n} (ldc {ldc})");
        assert!(a.covers(m, k) && b.covers(k, n), "gemm: A or B does not cover the shape");
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                assert!(kernel.is_available(), "AVX-512 kernel requested on a CPU without it");
                // SAFETY: AVX-512F/DQ support was just checked.
                unsafe { small_m_avx512(m, k, n, a, b, c, ldc, accumulate) }
            }
            _ => small_m_body(m, k, n, a, b, c, ldc, accumulate),
        }
        return;
    }
    match kernel {
        Kernel::Portable => driver::<Portable>(m, k, n, a, b, c, ldc, accumulate),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => {
            assert!(kernel.is_available(), "AVX-512 kernel requested on a CPU without it");
            driver::<super::avx512::Avx512>(m, k, n, a, b, c, ldc, accumulate)
        }
        #[cfg(not(target_arch = "x86_64"))]
        Kernel::Avx512 => unreachable!("AVX-512 kernel is never available off x86-64"),
    }
}

/// Products with at most this many rows skip packing and tiling (a register tile would be mostly
/// padding): each row of C is built by streaming over B once, as `axpy`s when B's rows are
/// contiguous and as dot products when its columns are (the `A·Bᵀ` case).
const SMALL_M: usize = 7;

/// The small-`m` path (see [`SMALL_M`]); needs `a.cs == 1` and `b.cs == 1 || b.rs == 1`, shapes
/// already checked. Inlined into a plain and an AVX-512 wrapper so LLVM vectorises it for each.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn small_m_body(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [u64],
    ldc: usize,
    accumulate: bool,
) {
    for i in 0..m {
        let arow = &a.data[i * a.rs..i * a.rs + k];
        let crow = &mut c[i * ldc..i * ldc + n];
        if b.cs == 1 {
            if !accumulate {
                crow.fill(0);
            }
            for (p, &ap) in arow.iter().enumerate() {
                let brow = &b.data[p * b.rs..p * b.rs + n];
                for (cv, bv) in crow.iter_mut().zip(brow) {
                    *cv = cv.wrapping_add(ap.wrapping_mul(*bv));
                }
            }
        } else {
            for (j, cv) in crow.iter_mut().enumerate() {
                let bcol = &b.data[j * b.cs..j * b.cs + k];
                let dot = arow.iter().zip(bcol).fold(0u64, |s, (x, y)| s.wrapping_add(x.wrapping_mul(*y)));
                *cv = if accumulate { cv.wrapping_add(dot) } else { dot };
            }
        }
    }
}

/// [`small_m_body`] compiled with AVX-512 enabled.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512DQ.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn small_m_avx512(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [u64],
    ldc: usize,
    accumulate: bool,
) {
    small_m_body(m, k, n, a, b, c, ldc, accumulate)
}

/// A zeroed `u64` buffer whose working slice starts on a 64-byte boundary.
struct AlignedBuf {
    buf: Vec<u64>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let buf = vec![0u64; len + 8];
        let offset = buf.as_ptr().align_offset(64).min(8);
        AlignedBuf { buf, offset, len }
    }

    fn as_mut_slice(&mut self) -> &mut [u64] {
        &mut self.buf[self.offset..self.offset + self.len]
    }
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

#[allow(clippy::too_many_arguments)]
fn driver<K: MicroKernel>(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [u64],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "gemm driver: C does not cover {m}×{n} (ldc {ldc})");
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0);
            }
        }
        return;
    }
    assert!(a.covers(m, k) && b.covers(k, n), "gemm driver: A or B does not cover the shape");

    let kc_max = KC.min(k);
    let mut bpack = AlignedBuf::new(kc_max * round_up(NC.min(n), K::NR));
    let mut apack = AlignedBuf::new(kc_max * round_up(MC.min(m), K::MR));
    let mut tile = AlignedBuf::new(K::MR * K::NR);
    let c_ptr = c.as_mut_ptr();

    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let overwrite = pc == 0 && !accumulate;
            pack_b::<K>(b, pc, kc, jc, nc, bpack.as_mut_slice());
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                pack_a::<K>(a, ic, mc, pc, kc, apack.as_mut_slice());
                let ap_all = apack.as_mut_slice().as_ptr();
                let bp_all = bpack.as_mut_slice().as_ptr();
                for jr in (0..nc).step_by(K::NR) {
                    let nr = K::NR.min(nc - jr);
                    // SAFETY: panel `jr / NR` of the packed B block holds `kc·NR` values.
                    let bp = unsafe { bp_all.add(jr * kc) };
                    for ir in (0..mc).step_by(K::MR) {
                        let mr = K::MR.min(mc - ir);
                        // SAFETY: panel `ir / MR` of the packed A block holds `kc·MR` values.
                        let ap = unsafe { ap_all.add(ir * kc) };
                        let (row, col) = (ic + ir, jc + jr);
                        if mr == K::MR && nr == K::NR {
                            // SAFETY: the tile rows `row..row+MR`, columns `col..col+NR` lie inside
                            // C (asserted above: (m-1)·ldc + n <= len); the kernel's features were
                            // checked by the caller.
                            unsafe { K::run(kc, ap, bp, c_ptr.add(row * ldc + col), ldc, overwrite) };
                        } else {
                            let t = tile.as_mut_slice();
                            // SAFETY: the scratch tile is MR·NR values with row stride NR.
                            unsafe { K::run(kc, ap, bp, t.as_mut_ptr(), K::NR, true) };
                            for i in 0..mr {
                                // SAFETY: row `row + i`, columns `col..col+nr` lie inside C (see above);
                                // nothing else borrows C while this slice lives.
                                let dst =
                                    unsafe { std::slice::from_raw_parts_mut(c_ptr.add((row + i) * ldc + col), nr) };
                                let src = &t[i * K::NR..i * K::NR + nr];
                                if overwrite {
                                    dst.copy_from_slice(src);
                                } else {
                                    for (d, s) in dst.iter_mut().zip(src) {
                                        *d = d.wrapping_add(*s);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs `B[pc..pc+kc, jc..jc+nc]` into `NR`-wide panels: panel `q`, step `p`, lane `j` is at
/// `q·kc·NR + p·NR + j`; columns past `nc` are zero.
fn pack_b<K: MicroKernel>(b: MatRef<'_>, pc: usize, kc: usize, jc: usize, nc: usize, dst: &mut [u64]) {
    let nr = K::NR;
    for (q, panel) in dst.chunks_exact_mut(kc * nr).take(nc.div_ceil(nr)).enumerate() {
        let j0 = jc + q * nr;
        let w = nr.min(nc - q * nr);
        if b.cs == 1 {
            for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
                let start = (pc + p) * b.rs + j0;
                out[..w].copy_from_slice(&b.data[start..start + w]);
                out[w..].fill(0);
            }
        } else if b.rs == 1 {
            // Transposed source (Bᵀ, columns of B contiguous): copy 16-step strips of each column
            // so that the strip of the panel being written stays in L1.
            for p0 in (0..kc).step_by(16) {
                let len = 16.min(kc - p0);
                for j in 0..w {
                    let start = (j0 + j) * b.cs + pc + p0;
                    for (t, v) in b.data[start..start + len].iter().enumerate() {
                        panel[(p0 + t) * nr + j] = *v;
                    }
                }
            }
            for out in panel.chunks_exact_mut(nr) {
                out[w..].fill(0);
            }
        } else {
            for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
                for (j, v) in out.iter_mut().enumerate() {
                    *v = if j < w { b.data[(pc + p) * b.rs + (j0 + j) * b.cs] } else { 0 };
                }
            }
        }
    }
}

/// Packs `A[ic..ic+mc, pc..pc+kc]` into `MR`-tall panels: panel `q`, step `p`, lane `i` is at
/// `q·kc·MR + p·MR + i`; rows past `mc` are zero.
fn pack_a<K: MicroKernel>(a: MatRef<'_>, ic: usize, mc: usize, pc: usize, kc: usize, dst: &mut [u64]) {
    let mr = K::MR;
    for (q, panel) in dst.chunks_exact_mut(kc * mr).take(mc.div_ceil(mr)).enumerate() {
        let i0 = ic + q * mr;
        let h = mr.min(mc - q * mr);
        for i in 0..mr {
            if i < h {
                let base = (i0 + i) * a.rs + pc * a.cs;
                if a.cs == 1 {
                    let src = &a.data[base..base + kc];
                    for (p, v) in src.iter().enumerate() {
                        panel[p * mr + i] = *v;
                    }
                } else {
                    for p in 0..kc {
                        panel[p * mr + i] = a.data[base + p * a.cs];
                    }
                }
            } else {
                for p in 0..kc {
                    panel[p * mr + i] = 0;
                }
            }
        }
    }
}

/// Portable micro-kernel: a 4×8 tile of wrapping accumulators, written so LLVM keeps it in
/// registers and vectorises the 8-wide rows where the target allows.
pub(crate) struct Portable;

impl Portable {
    const TILE_MR: usize = 4;
    const TILE_NR: usize = 8;
}

impl MicroKernel for Portable {
    const MR: usize = Self::TILE_MR;
    const NR: usize = Self::TILE_NR;

    unsafe fn run(kc: usize, a: *const u64, b: *const u64, c: *mut u64, ldc: usize, overwrite: bool) {
        const MR: usize = Portable::TILE_MR;
        const NR: usize = Portable::TILE_NR;
        // SAFETY: the caller guarantees `kc·MR` readable values at `a` and `kc·NR` at `b`.
        let (ap, bp) = unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
        let mut acc = [[0u64; NR]; MR];
        for (av, bv) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)) {
            for i in 0..MR {
                let ai = av[i];
                for j in 0..NR {
                    acc[i][j] = acc[i][j].wrapping_add(ai.wrapping_mul(bv[j]));
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees row `i` of the tile (NR values at `c + i·ldc`) is valid.
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
            if overwrite {
                row.copy_from_slice(acc_row);
            } else {
                for (d, s) in row.iter_mut().zip(acc_row) {
                    *d = d.wrapping_add(*s);
                }
            }
        }
    }
}
