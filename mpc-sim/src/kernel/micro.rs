//! The micro-kernel family ([`Kernel`], chosen at run time) and the interface every register-tiled
//! micro-kernel implements ([`MicroKernel`]: the portable one in `gemm.rs`, the AVX-512 one in
//! `avx512.rs`). The GEMM driver and the convolution build on these; this file imports nothing
//! from the other kernel files, so they never import each other in a circle.

use crate::error::{MpcError, Result};

/// The micro-kernel family a GEMM (or convolution) runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Blocked scalar code, available on every target.
    Portable,
    /// AVX-512F + AVX-512DQ (`vpmullq`) 8×24 register-tiled kernel; x86-64 only, checked at run time.
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU supports (detected once per call; detection is cached by std).
    pub fn best() -> Kernel {
        if Kernel::Avx512.is_available() { Kernel::Avx512 } else { Kernel::Portable }
    }

    /// Whether this kernel can run on the current CPU.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 => false,
        }
    }

    /// [`MpcError::InvalidParameter`] unless [`Kernel::is_available`].
    pub(super) fn check_available(self) -> Result<()> {
        if self.is_available() {
            Ok(())
        } else {
            Err(MpcError::InvalidParameter {
                name: "kernel",
                value: format!("{self:?}"),
                reason: "this CPU does not support it (needs AVX-512F and AVX-512DQ)".into(),
            })
        }
    }
}

/// A register-tiled micro-kernel: `C[MR×NR] (=|+=) Ap·Bp` over `kc` steps.
pub(crate) trait MicroKernel {
    const MR: usize;
    const NR: usize;

    /// # Safety
    /// `a` must be readable for `kc·MR` values and `b` for `kc·NR` values (packed panels); `c` must
    /// be valid for reads and writes of `MR` rows of `NR` values, row `i` starting at `c + i·ldc`;
    /// the CPU must support the kernel's target features.
    unsafe fn run(kc: usize, a: *const u64, b: *const u64, c: *mut u64, ldc: usize, overwrite: bool);
}
