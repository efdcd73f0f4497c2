//! Naive reference implementations (triple loops, no blocking): slow, obviously correct, used
//! to test the fast kernels. They assume valid shapes and panic otherwise.

use ndarray::{Array4, ArrayView4};

use super::Conv2dParams;

/// `A[m×k]·B[k×n]`, row-major, wrapping.
pub fn gemm(m: usize, k: usize, n: usize, a: &[u64], b: &[u64]) -> Vec<u64> {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    let mut c = vec![0u64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0u64;
            for p in 0..k {
                s = s.wrapping_add(a[i * k + p].wrapping_mul(b[p * n + j]));
            }
            c[i * n + j] = s;
        }
    }
    c
}

/// `A[m×k]·Bᵀ` with `B` of shape `n×k`, row-major, wrapping.
pub fn gemm_bt(m: usize, k: usize, n: usize, a: &[u64], b: &[u64]) -> Vec<u64> {
    assert_eq!(b.len(), n * k);
    let mut bt = vec![0u64; k * n];
    for j in 0..n {
        for p in 0..k {
            bt[p * n + j] = b[j * k + p];
        }
    }
    gemm(m, k, n, a, &bt)
}

/// Direct 2-D convolution, NCHW × OIHW → NOHW, wrapping, straight from the definition.
pub fn conv2d(input: ArrayView4<u64>, weight: ArrayView4<u64>, p: &Conv2dParams) -> Array4<u64> {
    let (n, c, h, w) = input.dim();
    let (o, cg, kh, kw) = weight.dim();
    let g = p.groups;
    assert_eq!(c, cg * g);
    let og = o / g;
    let [ho, wo] = p.output_hw([h, w], [kh, kw]).expect("reference conv2d: valid shapes");
    let mut out = Array4::<u64>::zeros((n, o, ho, wo));
    for b in 0..n {
        for oc in 0..o {
            let grp = oc / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = 0u64;
                    for ci in 0..cg {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (oy * p.stride[0] + ki * p.dilation[0]) as isize - p.padding[0] as isize;
                                let ix = (ox * p.stride[1] + kj * p.dilation[1]) as isize - p.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let x = input[[b, grp * cg + ci, iy as usize, ix as usize]];
                                s = s.wrapping_add(x.wrapping_mul(weight[[oc, ci, ki, kj]]));
                            }
                        }
                    }
                    out[[b, oc, oy, ox]] = s;
                }
            }
        }
    }
    out
}
