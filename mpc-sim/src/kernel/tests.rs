//! Differential tests: fast kernels vs the naive reference, exactly equal, on both kernels.

use ndarray::{Array4, Axis};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use super::*;
use crate::error::MpcError;

/// The kernels this machine can run (Portable always; Avx512 where detected).
fn kernels() -> Vec<Kernel> {
    [Kernel::Portable, Kernel::Avx512].into_iter().filter(|k| k.is_available()).collect()
}

fn random_vec(rng: &mut ChaCha12Rng, len: usize) -> Vec<u64> {
    (0..len).map(|_| rng.random()).collect()
}

fn random_array4(rng: &mut ChaCha12Rng, shape: (usize, usize, usize, usize)) -> Array4<u64> {
    let len = shape.0 * shape.1 * shape.2 * shape.3;
    Array4::from_shape_vec(shape, random_vec(rng, len)).unwrap()
}

/// Checks gemm and gemm_bt (both accumulate modes) against the reference on one shape.
fn check_gemm(kernel: Kernel, m: usize, k: usize, n: usize, rng: &mut ChaCha12Rng) {
    let a = random_vec(rng, m * k);
    let b = random_vec(rng, k * n);
    let c0 = random_vec(rng, m * n);
    let want = reference::gemm(m, k, n, &a, &b);
    let want_acc: Vec<u64> = want.iter().zip(&c0).map(|(w, c)| w.wrapping_add(*c)).collect();

    let mut c = c0.clone();
    gemm_with(kernel, m, k, n, &a, &b, &mut c, false).unwrap();
    assert_eq!(c, want, "gemm {kernel:?} m={m} k={k} n={n}");
    let mut c = c0.clone();
    gemm_with(kernel, m, k, n, &a, &b, &mut c, true).unwrap();
    assert_eq!(c, want_acc, "gemm accumulate {kernel:?} m={m} k={k} n={n}");

    // Same product through Bᵀ: hand gemm_bt the transpose of b.
    let mut bt = vec![0u64; n * k];
    for p in 0..k {
        for j in 0..n {
            bt[j * k + p] = b[p * n + j];
        }
    }
    assert_eq!(reference::gemm_bt(m, k, n, &a, &bt), want);
    let mut c = c0.clone();
    gemm_bt_with(kernel, m, k, n, &a, &bt, &mut c, false).unwrap();
    assert_eq!(c, want, "gemm_bt {kernel:?} m={m} k={k} n={n}");
    let mut c = c0;
    gemm_bt_with(kernel, m, k, n, &a, &bt, &mut c, true).unwrap();
    assert_eq!(c, want_acc, "gemm_bt accumulate {kernel:?} m={m} k={k} n={n}");
}

#[test]
fn gemm_matches_reference_on_edge_shapes() {
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    // Around the tile sizes (4×8 portable, 8×24 AVX-512), k around nothing special but 0/1/odd.
    let ms = [0, 1, 3, 4, 7, 8, 9, 17];
    let ks = [0, 1, 2, 5, 16, 37];
    let ns = [0, 1, 7, 8, 9, 23, 24, 25, 49];
    for kernel in kernels() {
        for &m in &ms {
            for &k in &ks {
                for &n in &ns {
                    check_gemm(kernel, m, k, n, &mut rng);
                }
            }
        }
    }
}

#[test]
fn gemm_matches_reference_across_cache_blocks() {
    // Crosses KC (256), MC (96) and NC (1536) block boundaries with ragged remainders.
    let mut rng = ChaCha12Rng::seed_from_u64(2);
    for kernel in kernels() {
        check_gemm(kernel, 101, 263, 50, &mut rng);
        check_gemm(kernel, 9, 520, 1561, &mut rng);
    }
}

#[test]
fn kernels_agree_with_each_other() {
    let mut rng = ChaCha12Rng::seed_from_u64(3);
    let (m, k, n) = (67, 300, 131);
    let a = random_vec(&mut rng, m * k);
    let b = random_vec(&mut rng, k * n);
    let mut outs = Vec::new();
    for kernel in kernels() {
        let mut c = vec![0u64; m * n];
        gemm_with(kernel, m, k, n, &a, &b, &mut c, false).unwrap();
        outs.push(c);
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(outs[0], reference::gemm(m, k, n, &a, &b));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn gemm_random_shapes(m in 0usize..30, k in 0usize..40, n in 0usize..60, seed in any::<u64>()) {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        for kernel in kernels() {
            check_gemm(kernel, m, k, n, &mut rng);
        }
    }
}

#[test]
fn gemm_rejects_bad_lengths() {
    let a = vec![0u64; 6];
    let b = vec![0u64; 12];
    let mut c = vec![0u64; 8];
    for kernel in kernels() {
        // (m, k, n, len A, len B, len C): each one wrong in one place; the last overflows m·k.
        let cases = [(2, 3, 4, 5, 12, 8), (2, 3, 4, 6, 11, 8), (2, 3, 4, 6, 12, 9), (usize::MAX, 2, 4, 6, 12, 8)];
        for (m, k, n, al, bl, cl) in cases {
            let (aa, bb, mut cc) = (vec![0u64; al], vec![0u64; bl], vec![0u64; cl]);
            match gemm_with(kernel, m, k, n, &aa, &bb, &mut cc, false) {
                Err(MpcError::ShapeMismatch { op, expected, .. }) => {
                    assert_eq!(op, "gemm");
                    assert!(expected.contains(&format!("k={k}")), "{expected}");
                }
                other => panic!("expected ShapeMismatch for {m}×{k}×{n}, got {other:?}"),
            }
        }
        let err = gemm_bt_with(kernel, 2, 3, 4, &a, &b[..11], &mut c, false).unwrap_err();
        assert!(matches!(err, MpcError::ShapeMismatch { ref op, .. } if op == "gemm_bt"), "{err}");
        // A valid call on the same buffers succeeds.
        gemm_with(kernel, 2, 3, 4, &a, &b, &mut c, false).unwrap();
    }
}

#[test]
fn conv2d_matches_reference() {
    let mut rng = ChaCha12Rng::seed_from_u64(4);
    let p = |stride, padding, dilation, groups| Conv2dParams { stride, padding, dilation, groups };
    // (input NCHW, weight OIHW, params)
    let cases = [
        ((1, 3, 8, 8), (4, 3, 3, 3), Conv2dParams::default()),
        ((1, 3, 8, 8), (4, 3, 3, 3), p([1, 1], [1, 1, 1, 1], [1, 1], 1)),
        ((2, 4, 9, 7), (5, 4, 3, 3), p([2, 2], [1, 1, 1, 1], [1, 1], 1)),
        ((1, 2, 10, 9), (3, 2, 3, 2), p([2, 1], [0, 2, 1, 0], [1, 1], 1)),
        ((1, 3, 11, 11), (2, 3, 3, 3), p([1, 1], [2, 2, 2, 2], [2, 2], 1)),
        ((1, 4, 9, 10), (6, 2, 3, 3), p([1, 2], [1, 0, 1, 2], [2, 1], 2)),
        ((3, 6, 7, 7), (6, 1, 3, 3), p([1, 1], [1, 1, 1, 1], [1, 1], 6)),
        ((1, 6, 8, 8), (12, 1, 3, 3), p([2, 2], [1, 1, 1, 1], [1, 1], 6)),
        ((3, 8, 5, 6), (7, 8, 1, 1), Conv2dParams::default()),
        ((1, 8, 5, 6), (4, 4, 1, 1), p([1, 1], [0; 4], [1, 1], 2)),
        ((1, 8, 6, 6), (4, 8, 1, 1), p([2, 2], [1, 0, 0, 1], [1, 1], 1)),
        ((1, 2, 3, 3), (3, 2, 5, 5), p([1, 1], [2, 2, 2, 2], [1, 1], 1)),
        ((1, 1, 1, 1), (1, 1, 1, 1), Conv2dParams::default()),
        ((2, 1, 12, 12), (8, 1, 5, 5), p([1, 1], [2, 1, 2, 0], [1, 1], 1)),
        ((1, 3, 9, 9), (9, 1, 3, 3), p([2, 3], [0, 2, 1, 1], [2, 1], 3)),
        ((1, 4, 6, 6), (4, 1, 2, 3), p([1, 1], [0, 5, 0, 5], [1, 3], 4)),
        ((1, 2, 4, 4), (2, 2, 2, 2), p([3, 3], [0, 0, 3, 3], [1, 1], 1)),
        ((1, 1, 0, 3), (2, 1, 1, 1), p([1, 1], [1, 0, 1, 0], [1, 1], 1)),
        // im2col in several bands: cg·kh·kw·wo = 576·64 values per output row.
        ((1, 64, 40, 64), (2, 64, 3, 3), p([1, 1], [1, 1, 1, 1], [1, 1], 1)),
    ];
    for kernel in kernels() {
        for (xs, ws, params) in cases {
            let x = random_array4(&mut rng, xs);
            let w = random_array4(&mut rng, ws);
            let want = reference::conv2d(x.view(), w.view(), &params);
            let got = conv2d_with(kernel, x.view(), w.view(), &params).unwrap();
            assert_eq!(got, want, "{kernel:?} input {xs:?} weight {ws:?} {params:?}");
        }
    }
}

#[test]
fn conv2d_on_several_threads_matches_reference() {
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    let p = |stride, padding, groups| Conv2dParams { stride, padding, dilation: [1, 1], groups };
    // Enough output channels per group to split (16 per thread at least), uneven splits, 1×1
    // direct, grouped, strided, several images and several im2col bands.
    let cases = [
        ((1, 8, 9, 9), (40, 8, 3, 3), p([1, 1], [1, 1, 1, 1], 1)),
        ((2, 8, 6, 6), (64, 4, 3, 3), p([2, 2], [1, 1, 1, 1], 2)),
        ((1, 16, 5, 5), (48, 16, 1, 1), Conv2dParams::default()),
        ((1, 64, 40, 64), (33, 64, 3, 3), p([1, 1], [1, 1, 1, 1], 1)),
        ((1, 32, 8, 8), (32, 1, 3, 3), p([1, 1], [1, 1, 1, 1], 32)),
    ];
    for kernel in kernels() {
        for (xs, ws, params) in cases {
            let x = random_array4(&mut rng, xs);
            let w = random_array4(&mut rng, ws);
            let want = reference::conv2d(x.view(), w.view(), &params);
            for threads in [1, 2, 3, 5] {
                let got = conv2d_threads(kernel, x.view(), w.view(), &params, threads).unwrap();
                assert_eq!(got, want, "{kernel:?} {threads} threads, input {xs:?} weight {ws:?} {params:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_random_params(
        n in 1usize..3, cg in 1usize..4, og in 1usize..5, groups in 1usize..4,
        h in 1usize..9, w in 1usize..9, kh in 1usize..4, kw in 1usize..4,
        stride in [1usize..4, 1usize..4], padding in [0usize..3, 0usize..3, 0usize..3, 0usize..3],
        dilation in [1usize..3, 1usize..3], seed in any::<u64>(),
    ) {
        let p = Conv2dParams { stride, padding, dilation, groups };
        prop_assume!(p.output_hw([h, w], [kh, kw]).is_ok());
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let x = random_array4(&mut rng, (n, cg * groups, h, w));
        let wt = random_array4(&mut rng, (og * groups, cg, kh, kw));
        let want = reference::conv2d(x.view(), wt.view(), &p);
        for kernel in kernels() {
            prop_assert_eq!(&conv2d_with(kernel, x.view(), wt.view(), &p).unwrap(), &want, "{:?}", kernel);
        }
    }
}

#[test]
fn conv2d_accepts_non_standard_layouts() {
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    let x = random_array4(&mut rng, (2, 7, 7, 3)); // NHWC, viewed as NCHW below
    let w = random_array4(&mut rng, (4, 3, 3, 3));
    let xv = x.view().permuted_axes([0, 3, 1, 2]);
    let mut wv = w.view();
    wv.invert_axis(Axis(3));
    let params = Conv2dParams { padding: [1, 0, 1, 1], ..Conv2dParams::default() };
    let want = reference::conv2d(xv, wv, &params);
    assert_eq!(conv2d(xv, wv, &params).unwrap(), want);
}

#[test]
fn conv2d_rejects_bad_shapes() {
    let x = Array4::<u64>::zeros((1, 4, 5, 5));
    let conv_err = |w: (usize, usize, usize, usize), p: Conv2dParams| {
        conv2d(x.view(), Array4::<u64>::zeros(w).view(), &p).unwrap_err()
    };
    let is_conv_shape = |e: &MpcError| matches!(e, MpcError::ShapeMismatch { op, .. } if op == "conv2d");
    // Weight channels do not match the input.
    let e = conv_err((2, 3, 3, 3), Conv2dParams::default());
    assert!(is_conv_shape(&e) && e.to_string().contains("[1, 4, 5, 5]"), "{e}");
    // Groups do not divide the channels.
    let e = conv_err((2, 4, 3, 3), Conv2dParams { groups: 3, ..Conv2dParams::default() });
    assert!(is_conv_shape(&e), "{e}");
    let e = conv_err((3, 2, 3, 3), Conv2dParams { groups: 2, ..Conv2dParams::default() });
    assert!(is_conv_shape(&e), "{e}");
    // Kernel larger than the (padded) input, zero-sized kernel.
    let e = conv_err((2, 4, 6, 3), Conv2dParams::default());
    assert!(is_conv_shape(&e), "{e}");
    let e = conv_err((2, 4, 3, 3), Conv2dParams { dilation: [3, 1], ..Conv2dParams::default() });
    assert!(is_conv_shape(&e), "{e}");
    let e = conv_err((2, 4, 0, 3), Conv2dParams::default());
    assert!(is_conv_shape(&e), "{e}");
    // Zero stride, dilation, groups.
    for p in [
        Conv2dParams { stride: [0, 1], ..Conv2dParams::default() },
        Conv2dParams { dilation: [1, 0], ..Conv2dParams::default() },
        Conv2dParams { groups: 0, ..Conv2dParams::default() },
    ] {
        assert!(matches!(conv_err((2, 4, 3, 3), p), MpcError::InvalidParameter { .. }), "{p:?}");
    }
    // Huge padding overflows without panicking.
    let e = conv_err((2, 4, 3, 3), Conv2dParams { padding: [usize::MAX, 0, 1, 0], ..Conv2dParams::default() });
    assert!(is_conv_shape(&e), "{e}");
}

#[test]
fn output_hw_follows_the_formula() {
    let p = Conv2dParams { stride: [2, 3], padding: [1, 0, 2, 1], dilation: [2, 1], groups: 1 };
    // H: (10 + 3 - (2·2 + 1)) / 2 + 1 = 5; W: (10 + 1 - 3) / 3 + 1 = 3.
    assert_eq!(p.output_hw([10, 10], [3, 3]).unwrap(), [5, 3]);
    assert_eq!(Conv2dParams::default().output_hw([32, 32], [3, 3]).unwrap(), [30, 30]);
}

#[test]
fn unavailable_kernel_is_an_error_not_a_crash() {
    if !Kernel::Avx512.is_available() {
        let mut c = vec![0u64; 1];
        let e = gemm_with(Kernel::Avx512, 1, 1, 1, &[1], &[1], &mut c, false).unwrap_err();
        assert!(matches!(e, MpcError::InvalidParameter { name: "kernel", .. }));
    }
    assert!(Kernel::best().is_available());
}
