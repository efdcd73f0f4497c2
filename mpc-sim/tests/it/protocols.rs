//! Secure result == plaintext result for every protocol; cost prediction == measurement.

use crate::common;

use common::{rng, two_party};
use masq_mpc::cost::{self, Cost};
use masq_mpc::dealer::{CmpMode, LinearKind, Request, SEED_BYTES};
use masq_mpc::kernel::Conv2dParams;
use masq_mpc::protocols::{self, PoolParams, Replacement};
use masq_mpc::{FixedPoint, MpcError};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::{Rng, RngCore};

fn arr(shape: &[usize], v: Vec<u64>) -> ArrayD<u64> {
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

fn seeds() -> Cost {
    cost::deal_overhead()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn mul_is_exact(xs in prop::collection::vec((any::<u64>(), any::<u64>()), 1..200), seed in any::<u64>()) {
        let n = xs.len();
        let x = arr(&[n], xs.iter().map(|p| p.0).collect());
        let y: ArrayD<u64> = arr(&[n], xs.iter().map(|p| p.1).collect());
        let (y0, y1) = masq_mpc::share::share(&y, &mut rng(seed));
        let out = two_party(seed, FixedPoint::default(), &[], &[Request::Mul { n }], &x, |ctx, xs| {
            let ys = if ctx.party() == masq_mpc::Party::P0 { y0.clone() } else { y1.clone() };
            protocols::mul(ctx, &xs, &ys)
        }).unwrap();
        let want: Vec<u64> = xs.iter().map(|(a, b)| a.wrapping_mul(*b)).collect();
        prop_assert_eq!(out.value.iter().copied().collect::<Vec<_>>(), want);
        prop_assert_eq!(out.measured(&[]), cost::mul(n) + seeds());
    }

    #[test]
    fn square_is_exact(xs in prop::collection::vec(any::<u64>(), 1..200), seed in any::<u64>()) {
        let n = xs.len();
        let out = two_party(seed, FixedPoint::default(), &[], &[Request::Square { n }], &arr(&[n], xs.clone()),
            |ctx, x| protocols::square(ctx, &x)).unwrap();
        let want: Vec<u64> = xs.iter().map(|a| a.wrapping_mul(*a)).collect();
        prop_assert_eq!(out.value.iter().copied().collect::<Vec<_>>(), want);
        prop_assert_eq!(out.measured(&[]), cost::square(n) + seeds());
    }

    #[test]
    fn relu_is_exact_for_every_word(xs in prop::collection::vec(any::<u64>(), 1..300), seed in any::<u64>(),
                                    mode in prop::sample::select(CmpMode::ALL.to_vec())) {
        let n = xs.len();
        let out = two_party(seed, FixedPoint::default(), &[], &[Request::Cmp { n, bits: 64, mode }], &arr(&[n], xs.clone()),
            |ctx, x| protocols::relu(ctx, &x, 64, mode)).unwrap();
        let want: Vec<u64> = xs.iter().map(|&a| if (a as i64) >= 0 { a } else { 0 }).collect();
        prop_assert_eq!(out.value.iter().copied().collect::<Vec<_>>(), want);
        prop_assert_eq!(out.measured(&[]), cost::cmp(n, 64, mode) + seeds());
    }

    #[test]
    fn drelu_with_fewer_bits_is_exact_in_range(xs in prop::collection::vec(-(1i64 << 40) + 1..(1i64 << 40), 1..300),
                                               bits in 41u32..64, seed in any::<u64>(),
                                               mode in prop::sample::select(CmpMode::ALL.to_vec())) {
        let n = xs.len();
        let words: Vec<u64> = xs.iter().map(|&v| v as u64).collect();
        let out = two_party(seed, FixedPoint::default(), &[], &[Request::Cmp { n, bits, mode }], &arr(&[n], words),
            |ctx, x| protocols::drelu(ctx, &x, bits, mode)).unwrap();
        let want: Vec<u64> = xs.iter().map(|&v| (v >= 0) as u64).collect();
        prop_assert_eq!(out.value.iter().copied().collect::<Vec<_>>(), want);
        prop_assert_eq!(out.measured(&[]), cost::cmp(n, bits, mode) + seeds());
    }

    #[test]
    fn open_reveals(xs in prop::collection::vec(any::<u64>(), 0..100), seed in any::<u64>()) {
        let n = xs.len();
        let x = arr(&[n], xs.clone());
        let out = two_party(seed, FixedPoint::default(), &[], &[], &x, |ctx, s| {
            let v = protocols::open(ctx, &s)?;
            // Re-share the opened value trivially so the harness can reconstruct it.
            Ok(if ctx.party() == masq_mpc::Party::P0 { masq_mpc::Share::new(ctx.party(), v) } else { masq_mpc::Share::zeros(ctx.party(), &[n]) })
        }).unwrap();
        prop_assert_eq!(out.measured(&[]), cost::open(n) + seeds());
        prop_assert_eq!(out.value, x);
    }
}

/// Plain fixed-point reference of c2·x² + c1·x + c0.
fn poly(x: f64, c: (f64, f64, f64)) -> f64 {
    c.0 * x * x + c.1 * x + c.2
}

#[test]
fn masked_act_matches_plaintext_for_every_replacement() {
    let fp = FixedPoint::default();
    let (n, c, h, w) = (2, 3, 4, 5);
    let per = c * h * w;
    let mut r = rng(11);
    let mask: Vec<u8> = (0..per).map(|_| r.random_range(0..2u8)).collect();
    let xs: Vec<f64> = (0..n * per).map(|_| r.random_range(-4.0..4.0)).collect();
    let x = arr(&[n, c, h, w], xs.iter().map(|&v| fp.encode(v)).collect());
    let coeffs = (vec![0.2, 0.1, -0.05], vec![0.5, 1.0, 0.25], vec![0.2, 0.0, 0.3]);
    for (name, repl) in [
        ("identity", Replacement::Identity),
        ("poly2", Replacement::Poly { c2: coeffs.0.clone(), c1: coeffs.1.clone(), c0: coeffs.2.clone() }),
        ("poly1", Replacement::Poly { c2: vec![0.0; 3], c1: coeffs.1.clone(), c0: coeffs.2.clone() }),
    ] {
        for (m, mode) in
            [mask.clone(), vec![0; per], vec![1; per]].into_iter().flat_map(|m| CmpMode::ALL.map(|md| (m.clone(), md)))
        {
            let req = protocols::masked_act_request(&m, &repl, n, 64, mode);
            let reqs: Vec<Request> = match &req {
                Request::MaskedAct { relus: 0, squares: 0, .. } => vec![],
                _ => vec![req.clone()],
            };
            let out =
                two_party(5, fp, &[], &reqs, &x, |ctx, s| protocols::masked_act(ctx, &s, &m, &repl, 64, mode)).unwrap();
            // Reference in fixed point: quantised inputs and coefficients; what remains is truncation.
            let q = |v: f64| fp.decode(fp.encode(v));
            for (i, (&got, &v)) in out.value.iter().zip(&xs).enumerate() {
                let v = q(v);
                let j = i % per;
                let ch = j / (h * w);
                let want = if m[j] == 1 {
                    v.max(0.0)
                } else {
                    match &repl {
                        Replacement::Identity => v,
                        Replacement::Poly { c2, c1, c0 } => poly(v, (q(c2[ch]), q(c1[ch]), q(c0[ch]))),
                    }
                };
                let err = (fp.decode(got) - want).abs();
                assert!(err < 4.0 / fp.scale(), "{name}: element {i}: got {} want {want}", fp.decode(got));
            }
            let Request::MaskedAct { relus, squares, bits, .. } = req else { unreachable!() };
            assert_eq!(out.measured(&[]), cost::masked_act(relus, squares, bits, mode) + seeds(), "{name} {mode}");
        }
    }
}

#[test]
fn masked_act_rejects_bad_masks_and_shapes() {
    let fp = FixedPoint::default();
    let x = arr(&[1, 4], vec![0; 4]);
    let err = two_party(1, fp, &[], &[], &x, |ctx, s| {
        protocols::masked_act(ctx, &s, &[0, 1, 2, 0], &Replacement::Identity, 64, CmpMode::OneRound)
    });
    assert!(matches!(err, Err(MpcError::InvalidParameter { name: "mask value", .. })), "{:?}", err.err());
    let err = two_party(1, fp, &[], &[], &x, |ctx, s| {
        protocols::masked_act(ctx, &s, &[0, 1, 1], &Replacement::Identity, 64, CmpMode::Compact)
    });
    assert!(matches!(err, Err(MpcError::ShapeMismatch { .. })), "{:?}", err.err());
}

fn random_fixed(r: &mut impl RngCore, fp: FixedPoint, n: usize, range: f64) -> (Vec<f64>, Vec<u64>) {
    let v: Vec<f64> = (0..n).map(|_| (r.next_u64() as f64 / u64::MAX as f64 * 2.0 - 1.0) * range).collect();
    let e = v.iter().map(|&x| fp.encode(x)).collect();
    (v, e)
}

#[test]
fn conv_layer_is_exact_in_the_ring() {
    let fp = FixedPoint::default();
    let mut r = rng(3);
    for (params, wshape, xshape) in [
        (Conv2dParams::default(), [4, 3, 3, 3], [2, 3, 6, 6]),
        (
            Conv2dParams { stride: [2, 2], padding: [1, 0, 1, 2], dilation: [1, 1], groups: 1 },
            [5, 2, 3, 3],
            [1, 2, 7, 8],
        ),
        (
            Conv2dParams { stride: [1, 1], padding: [2, 2, 2, 2], dilation: [2, 2], groups: 2 },
            [4, 2, 3, 3],
            [1, 4, 6, 6],
        ),
        (
            Conv2dParams { stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 4 },
            [4, 1, 3, 3],
            [2, 4, 5, 5],
        ),
    ] {
        let (_, wv) = random_fixed(&mut r, fp, wshape.iter().product(), 1.0);
        let (_, xv) = random_fixed(&mut r, fp, xshape.iter().product(), 2.0);
        let w = arr(&wshape, wv);
        let x = arr(&xshape, xv);
        let kind = LinearKind::Conv2d { weight_shape: wshape, params };
        let want = protocols::linear::apply(&kind, &w, &x).unwrap();
        let reqs = [Request::Linear { layer: 0, input_shape: xshape.to_vec() }];
        let out = two_party(9, fp, &[(0, kind.clone(), w.clone())], &reqs, &x, |ctx, s| protocols::linear(ctx, 0, &s))
            .unwrap();
        assert_eq!(out.value, want, "{params:?}");
        let mut predicted = cost::linear(&kind, &xshape).unwrap() + cost::linear_setup(w.len()) + seeds();
        predicted.offline_p0 += SEED_BYTES; // the model-load deal's seeds are counted with setup_model
        predicted.offline_p1 += SEED_BYTES;
        let mut measured = out.measured(&[]);
        measured.offline_p0 += SEED_BYTES;
        measured.offline_p1 += SEED_BYTES;
        assert_eq!(measured, predicted);
    }
}

#[test]
fn matmul_layer_then_truncation_matches_fixed_point_product() {
    let fp = FixedPoint::default();
    let mut r = rng(4);
    let (m, k, n) = (3, 17, 9);
    let (wf, wv) = random_fixed(&mut r, fp, k * n, 1.0);
    let (xf, xv) = random_fixed(&mut r, fp, m * k, 3.0);
    let kind = LinearKind::MatMul { k, n };
    let out = two_party(
        8,
        fp,
        &[(0, kind, arr(&[k, n], wv))],
        &[Request::Linear { layer: 0, input_shape: vec![m, k] }],
        &arr(&[m, k], xv),
        |ctx, s| Ok(protocols::truncate(protocols::linear(ctx, 0, &s)?, fp.frac_bits())),
    )
    .unwrap();
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|t| xf[i * k + t] * wf[t * n + j]).sum();
            let got = fp.decode(out.value[[i, j]]);
            assert!((got - want).abs() < 1e-3, "[{i},{j}] got {got} want {want}");
        }
    }
}

#[test]
fn maxpool_is_exact_and_costs_what_is_predicted() {
    let fp = FixedPoint::default();
    let mut r = rng(6);
    for (p, mode) in [
        PoolParams::square(2, 2),
        PoolParams::square(3, 2),
        PoolParams { kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1] },
        PoolParams { kernel: [2, 3], stride: [2, 1], padding: [0, 1, 0, 0], dilation: [2, 1] },
    ]
    .into_iter()
    .flat_map(|p| CmpMode::ALL.map(|m| (p, m)))
    {
        let shape = [2, 3, 7, 6];
        let (xf, xv) = random_fixed(&mut r, fp, shape.iter().product(), 5.0);
        let x = arr(&shape, xv);
        let reqs = protocols::maxpool_requests(&shape, &p, 64, mode).unwrap();
        let out = two_party(2, fp, &[], &reqs, &x, |ctx, s| protocols::maxpool(ctx, &s, &p, 64, mode)).unwrap();
        // plaintext max over valid positions
        let [ho, wo] = p.output_hw(7, 6).unwrap();
        for pl in 0..6 {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut best = f64::NEG_INFINITY;
                    for ky in 0..p.kernel[0] {
                        for kx in 0..p.kernel[1] {
                            let y = (oy * p.stride[0] + ky * p.dilation[0]) as isize - p.padding[0] as isize;
                            let xx = (ox * p.stride[1] + kx * p.dilation[1]) as isize - p.padding[1] as isize;
                            if y >= 0 && xx >= 0 && y < 7 && xx < 6 {
                                best = best.max(xf[pl * 42 + y as usize * 6 + xx as usize]);
                            }
                        }
                    }
                    let got = fp.decode(out.value.as_slice().unwrap()[pl * ho * wo + oy * wo + ox]);
                    assert!((got - best).abs() <= 1.0 / fp.scale(), "{p:?}: got {got} want {best}");
                }
            }
        }
        assert_eq!(out.measured(&[]), cost::maxpool(&shape, &p, 64, mode).unwrap() + seeds(), "{p:?} {mode}");
    }
}

#[test]
fn avgpools_match_plaintext() {
    let fp = FixedPoint::default();
    let mut r = rng(7);
    let shape = [1, 2, 6, 6];
    let (xf, xv) = random_fixed(&mut r, fp, 72, 3.0);
    let x = arr(&shape, xv);
    let out = two_party(1, fp, &[], &[], &x, |ctx, s| protocols::global_avgpool(ctx, &s)).unwrap();
    for c in 0..2 {
        let want: f64 = xf[c * 36..(c + 1) * 36].iter().sum::<f64>() / 36.0;
        let got = fp.decode(out.value.as_slice().unwrap()[c]);
        assert!((got - want).abs() < 4.0 / fp.scale(), "gap channel {c}: {got} vs {want}");
    }
    assert_eq!(out.measured(&[]).online_bytes(), 0, "average pooling is local");
    let p = PoolParams { kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1], dilation: [1, 1] };
    let out = two_party(1, fp, &[], &[], &x, |ctx, s| protocols::avgpool(ctx, &s, &p, false)).unwrap();
    let got = fp.decode(out.value.as_slice().unwrap()[0]);
    let want = (xf[0] + xf[1] + xf[6] + xf[7]) / 4.0; // top-left window: 2x2 valid positions
    assert!((got - want).abs() < 4.0 / fp.scale(), "{got} vs {want}");
}

#[test]
fn local_truncation_error_rate_is_small_and_measured() {
    // Products of two encodings in [-8, 8): error beyond 1 ulp should essentially never happen
    // at f = 16 (probability about |x|/2^63 per element); count it over 200,000 elements.
    let fp = FixedPoint::default();
    let mut r = rng(12);
    let n = 200_000;
    let (af, av) = random_fixed(&mut r, fp, n, 8.0);
    let (bf, bv) = random_fixed(&mut r, fp, n, 8.0);
    let b = arr(&[n], bv);
    let (b0, b1) = masq_mpc::share::share(&b, &mut rng(13));
    let out = two_party(3, fp, &[], &[Request::Mul { n }], &arr(&[n], av), |ctx, s| {
        let other = if ctx.party() == masq_mpc::Party::P0 { b0.clone() } else { b1.clone() };
        Ok(protocols::truncate(protocols::mul(ctx, &s, &other)?, fp.frac_bits()))
    })
    .unwrap();
    let mut large = 0;
    let mut max_ulps = 0i64;
    for i in 0..n {
        let exact = ((fp.encode(af[i]) as i64 as i128 * fp.encode(bf[i]) as i64 as i128) >> 16) as i64;
        let ulps = (out.value[i] as i64 - exact).abs();
        if ulps > 1 {
            large += 1;
        } else {
            max_ulps = max_ulps.max(ulps);
        }
    }
    let rate = large as f64 / n as f64;
    eprintln!(
        "local truncation: {large} of {n} elements off by more than 1 ulp (rate {rate:.2e}); others within {max_ulps} ulp"
    );
    assert!(rate < 1e-4, "truncation error rate {rate}");
}

#[test]
fn missing_or_wrong_preprocessing_is_a_typed_error() {
    let fp = FixedPoint::default();
    let x = arr(&[4], vec![1, 2, 3, 4]);
    let one = CmpMode::OneRound;
    let err = two_party(1, fp, &[], &[], &x, |ctx, s| protocols::relu(ctx, &s, 64, one)).err().unwrap();
    assert!(matches!(err, MpcError::PreprocessingExhausted { .. }), "{err}");
    assert!(err.to_string().contains("relu"), "{err}");
    let err = two_party(1, fp, &[], &[Request::Square { n: 4 }], &x, |ctx, s| protocols::relu(ctx, &s, 64, one))
        .err()
        .unwrap();
    assert!(matches!(err, MpcError::PreprocessingMismatch { .. }), "{err}");
    let err = two_party(1, fp, &[], &[Request::Cmp { n: 5, bits: 64, mode: one }], &x, |ctx, s| {
        protocols::relu(ctx, &s, 64, one)
    })
    .err()
    .unwrap();
    assert!(matches!(err, MpcError::PreprocessingMismatch { .. }), "{err}");
    // Material of the other mode is refused, naming both.
    let err = two_party(1, fp, &[], &[Request::Cmp { n: 4, bits: 64, mode: CmpMode::Compact }], &x, |ctx, s| {
        protocols::relu(ctx, &s, 64, one)
    })
    .err()
    .unwrap();
    assert!(matches!(err, MpcError::PreprocessingMismatch { .. }) && err.to_string().contains("compact"), "{err}");
    let y = arr(&[3], vec![1, 2, 3]);
    let err = two_party(1, fp, &[], &[Request::Mul { n: 4 }], &x, |ctx, s| {
        protocols::mul(ctx, &s, &masq_mpc::Share::zeros(ctx.party(), y.shape()))
    })
    .err()
    .unwrap();
    assert!(matches!(err, MpcError::ShapeMismatch { .. }), "{err}");
    let err = two_party(1, fp, &[], &[Request::Mul { n: 4 }], &x, |ctx, s| {
        protocols::mul(ctx, &s, &masq_mpc::Share::zeros(ctx.party().other(), &[4]))
    })
    .err()
    .unwrap();
    assert!(matches!(err, MpcError::WrongParty { .. }), "{err}");
    assert!(masq_mpc::dealer::Dealer::new(1).deal(&[Request::Cmp { n: 1, bits: 1, mode: one }]).is_err());
}

#[test]
fn reveal_goes_to_one_party_only() {
    let x = arr(&[3], vec![5, u64::MAX, 7]);
    for to in [masq_mpc::Party::P0, masq_mpc::Party::P1] {
        // The receiving party returns the revealed value, the other a share of zero.
        let out = two_party(4, FixedPoint::default(), &[], &[], &x, |ctx, s| {
            let v = protocols::reveal(ctx, &s, to)?;
            assert_eq!(v.is_some(), ctx.party() == to);
            Ok(masq_mpc::Share::new(ctx.party(), v.unwrap_or_else(|| x.mapv(|_| 0))))
        })
        .unwrap();
        assert_eq!(out.measured(&[]), cost::reveal(3, to) + seeds());
        assert_eq!(out.value, x);
    }
}

#[test]
fn comparisons_are_exact_for_every_value_of_small_widths() {
    // Every in-range value of every width from 2 to 9 bits, both modes, several dealer seeds:
    // DReLU and ReLU exact, measured cost == predicted.
    for bits in 2..=9u32 {
        let half = 1i64 << (bits - 1);
        let xs: Vec<u64> = (-half..half).map(|v| v as u64).collect();
        let n = xs.len();
        for mode in CmpMode::ALL {
            for seed in 0..3 {
                let x = arr(&[n], xs.clone());
                let d = two_party(seed, FixedPoint::default(), &[], &[Request::Cmp { n, bits, mode }], &x, |ctx, s| {
                    protocols::drelu(ctx, &s, bits, mode)
                })
                .unwrap();
                let want: Vec<u64> = xs.iter().map(|&v| ((v as i64) >= 0) as u64).collect();
                assert_eq!(d.value.iter().copied().collect::<Vec<_>>(), want, "drelu, {bits} bits, {mode}");
                assert_eq!(d.measured(&[]), cost::cmp(n, bits, mode) + seeds());
                let r = two_party(seed, FixedPoint::default(), &[], &[Request::Cmp { n, bits, mode }], &x, |ctx, s| {
                    protocols::relu(ctx, &s, bits, mode)
                })
                .unwrap();
                let want: Vec<u64> = xs.iter().map(|&v| if (v as i64) >= 0 { v } else { 0 }).collect();
                assert_eq!(r.value.iter().copied().collect::<Vec<_>>(), want, "relu, {bits} bits, {mode}");
            }
        }
    }
}

#[test]
fn compact_mode_halves_the_keys_and_adds_one_round() {
    let n = 1000;
    let one = cost::cmp(n, 64, CmpMode::OneRound);
    let compact = cost::cmp(n, 64, CmpMode::Compact);
    assert_eq!((one.rounds, compact.rounds), (1, 2));
    // Per comparison and party: 935 bytes of key (+16 + 1/8 to P1) against 2,048 (+16).
    assert_eq!(compact.offline_p0, 935 * n as u64);
    assert_eq!(compact.offline_p1, (935 + 16) * n as u64 + (n as u64).div_ceil(8));
    assert_eq!(one.offline_p0, 2048 * n as u64);
    assert!(compact.offline_p1 <= 1024 * n as u64);
    // Calibrated width 40: at most 640 bytes per comparison and party.
    assert!(cost::cmp(n, 40, CmpMode::Compact).offline_p1 <= 640 * n as u64);
    // Online: the one-round exchange plus the packed select bits.
    assert_eq!(compact.p0_to_p1, one.p0_to_p1 + cost::exchange(n.div_ceil(64)).p0_to_p1);
}
