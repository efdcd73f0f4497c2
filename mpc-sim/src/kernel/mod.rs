//! Fast u64 (wrapping) GEMM and convolution kernels for the linear-layer protocols.
//!
//! All arithmetic is in the ring Z_2^64: products and sums wrap. Every matrix is row-major and
//! contiguous unless said otherwise. The kernels are single-threaded on purpose: each party of the
//! 2PC engine runs on its own core.
//!
//! - [`gemm`]: `C (=|+=) A·B`, and [`gemm_bt`]: `C (=|+=) A·Bᵀ` (what a Gemm layer computes, `x·Wᵀ`);
//!   Products with fewer than 8 rows (batch-1 layers) skip packing and stream over B instead;
//! - [`gemm_batched`]: [`gemm`] over a batch of consecutive matrices (products of two secret
//!   tensors, `[batch, m, k]·[batch, k, n]`);
//! - [`conv2d`]: 2-D convolution (NCHW input, OIHW weight) with stride, asymmetric padding,
//!   dilation and groups (depthwise included), by im2col plus the GEMM (a 1×1 convolution with
//!   stride 1 and no padding skips im2col; depthwise convolutions stream tap by tap);
//! - [`Kernel`]: the micro-kernel family. [`Kernel::Avx512`] uses 64-bit lane multiplies
//!   (`vpmullq`, AVX-512DQ) with an 8×24 register tile; [`Kernel::Portable`] is a blocked scalar
//!   kernel that runs everywhere. [`Kernel::best`] picks at run time; the `*_with` functions force
//!   one (both are tested);
//! - [`reference`](mod@reference): naive, obviously-correct versions used by the tests.
//!
//! ```
//! use masq_mpc::kernel::{gemm, reference};
//! let (m, k, n) = (3, 4, 5);
//! let a: Vec<u64> = (0..(m * k) as u64).map(|v| v.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
//! let b: Vec<u64> = (0..(k * n) as u64).map(|v| v.wrapping_sub(7)).collect();
//! let mut c = vec![0u64; m * n];
//! gemm(m, k, n, &a, &b, &mut c, false).unwrap();
//! assert_eq!(c, reference::gemm(m, k, n, &a, &b));
//! ```

mod conv;
mod gemm;
mod micro;
pub mod reference;

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests;

pub use conv::{Conv2dParams, conv2d, conv2d_threads, conv2d_with};
pub use micro::Kernel;

use crate::error::{MpcError, Result};

/// `C[m×n] = A[m×k]·B[k×n]` (or `+=` when `accumulate`), wrapping, on [`Kernel::best`].
///
/// Fails with [`MpcError::ShapeMismatch`] when a slice length does not fit the dimensions.
/// With `k == 0` the product is zero (so `C` is zeroed unless `accumulate`).
pub fn gemm(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64], accumulate: bool) -> Result<()> {
    gemm_with(Kernel::best(), m, k, n, a, b, c, accumulate)
}

/// [`gemm`] on a chosen kernel (fails with [`MpcError::InvalidParameter`] if the CPU lacks it).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[u64],
    c: &mut [u64],
    accumulate: bool,
) -> Result<()> {
    check_gemm_lens("gemm", m, k, n, a.len(), [k, n], b.len(), c.len())?;
    kernel.check_available()?;
    let a = gemm::MatRef { data: a, rs: k, cs: 1 };
    let b = gemm::MatRef { data: b, rs: n, cs: 1 };
    gemm::run(kernel, m, k, n, a, b, c, n, accumulate);
    Ok(())
}

/// `C_i[m×n] = A_i[m×k]·B_i[k×n]` for each of `batch` consecutive matrices (or `+=` when
/// `accumulate`), wrapping, by [`gemm`] per batch: `a` is `[batch, m, k]`, `b` `[batch, k, n]`
/// and `c` `[batch, m, n]`, row-major.
///
/// Fails with [`MpcError::ShapeMismatch`] when a slice length does not fit the dimensions.
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[u64],
    c: &mut [u64],
    accumulate: bool,
) -> Result<()> {
    let per = |p: usize, q: usize, len: usize, name: &str| {
        p.checked_mul(q).filter(|w| w.checked_mul(batch) == Some(len)).ok_or_else(|| MpcError::ShapeMismatch {
            op: "gemm_batched".into(),
            expected: format!("{name} of {batch}×{p}×{q} elements (batch={batch}, m={m}, k={k}, n={n})"),
            got: format!("{name} of length {len}"),
        })
    };
    let (sa, sb, sc) = (per(m, k, a.len(), "A")?, per(k, n, b.len(), "B")?, per(m, n, c.len(), "C")?);
    if sc == 0 {
        return Ok(());
    }
    for i in 0..batch {
        let (a, b) = (&a[i * sa..(i + 1) * sa], &b[i * sb..(i + 1) * sb]);
        gemm(m, k, n, a, b, &mut c[i * sc..(i + 1) * sc], accumulate)?;
    }
    Ok(())
}

/// `C[m×n] = A[m×k]·Bᵀ` where `B` is `n×k` row-major (or `+=` when `accumulate`), wrapping.
///
/// This is a fully connected layer `y = x·Wᵀ` with `x` of shape `batch×in` and `W` of shape `out×in`.
pub fn gemm_bt(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64], accumulate: bool) -> Result<()> {
    gemm_bt_with(Kernel::best(), m, k, n, a, b, c, accumulate)
}

/// [`gemm_bt`] on a chosen kernel (fails with [`MpcError::InvalidParameter`] if the CPU lacks it).
#[allow(clippy::too_many_arguments)]
pub fn gemm_bt_with(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    a: &[u64],
    b: &[u64],
    c: &mut [u64],
    accumulate: bool,
) -> Result<()> {
    check_gemm_lens("gemm_bt", m, k, n, a.len(), [n, k], b.len(), c.len())?;
    kernel.check_available()?;
    let a = gemm::MatRef { data: a, rs: k, cs: 1 };
    let b = gemm::MatRef { data: b, rs: 1, cs: k };
    gemm::run(kernel, m, k, n, a, b, c, n, accumulate);
    Ok(())
}

/// Checks `a.len() == m·k`, `b.len() == b_shape[0]·b_shape[1]`, `c.len() == m·n` (overflow-safe).
#[allow(clippy::too_many_arguments)]
fn check_gemm_lens(
    op: &str,
    m: usize,
    k: usize,
    n: usize,
    a_len: usize,
    b_shape: [usize; 2],
    b_len: usize,
    c_len: usize,
) -> Result<()> {
    let dims = format!("m={m}, k={k}, n={n}");
    let checks = [("A", [m, k], a_len), ("B", b_shape, b_len), ("C", [m, n], c_len)];
    for (name, [r, c], len) in checks {
        if r.checked_mul(c) != Some(len) {
            return Err(MpcError::ShapeMismatch {
                op: op.to_string(),
                expected: format!("{name} of {r}×{c} elements ({dims})"),
                got: format!("{name} of length {len}"),
            });
        }
    }
    Ok(())
}
