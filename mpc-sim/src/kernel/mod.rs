//! Fast u64 (wrapping) GEMM and convolution kernels for the linear-layer protocols.
