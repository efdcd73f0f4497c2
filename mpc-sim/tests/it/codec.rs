//! Preprocessing survives a trip through bytes, and corrupt bytes are typed errors, never panics.


use masq_mpc::dealer::codec::{
    decode_model_material, decode_preprocessing, encode_model_material, encode_preprocessing, requests_of,
};
use masq_mpc::dealer::{Dealer, LinearKind, Request};
use masq_mpc::kernel::Conv2dParams;
use masq_mpc::protocols::{self, Ctx};
use masq_mpc::share::{Party, Share, reconstruct, share};
use masq_mpc::sim::run_pair;
use masq_mpc::{FixedPoint, MpcError};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;

fn plan() -> Vec<Request> {
    vec![
        Request::Linear { layer: 0, input_shape: vec![1, 2, 5, 5] },
        Request::Cmp { n: 150, bits: 64 },
        Request::MaskedAct { relus: 70, squares: 80, bits: 41 },
        Request::Mul { n: 150 },
        Request::Square { n: 150 },
    ]
}

fn kind() -> LinearKind {
    LinearKind::Conv2d {
        weight_shape: [6, 2, 3, 3],
        params: Conv2dParams { padding: [1; 4], ..Conv2dParams::default() },
    }
}

#[test]
fn decoded_preprocessing_gives_bit_identical_results() {
    let fp = FixedPoint::default();
    let run = |through_bytes: bool| {
        let mut dealer = Dealer::new(42);
        let (m0, m1) = dealer.setup_model(&[(0, kind())]).unwrap();
        let (p0, p1) = dealer.deal(&plan()).unwrap();
        let (m0, m1, p0, p1) = if through_bytes {
            assert_eq!(requests_of(&p0), plan());
            (
                decode_model_material(Party::P0, &encode_model_material(&m0)).unwrap(),
                decode_model_material(Party::P1, &encode_model_material(&m1)).unwrap(),
                decode_preprocessing(Party::P0, &encode_preprocessing(&p0)).unwrap(),
                decode_preprocessing(Party::P1, &encode_preprocessing(&p1)).unwrap(),
            )
        } else {
            (m0, m1, p0, p1)
        };
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(9);
        let x = ArrayD::from_shape_fn(IxDyn(&[1, 2, 5, 5]), |d| {
            fp.encode((d[1] * 25 + d[2] * 5 + d[3]) as f64 / 7.0 - 3.0)
        });
        let w = ArrayD::from_shape_fn(IxDyn(&[6, 2, 3, 3]), |d| fp.encode(((d[0] + d[3]) as f64 - 2.5) / 4.0));
        let (x0, x1) = share(&x, &mut rng);
        let mask: Vec<u8> = (0..150).map(|i| (i % 15 < 7) as u8).collect();
        let body = |ctx: &mut Ctx<_>, m, wshare: Share, x: Share| -> masq_mpc::Result<Share> {
            protocols::setup_layers(ctx, m, vec![(0, wshare)])?;
            protocols::precompute(ctx)?;
            let y = protocols::truncate(protocols::linear(ctx, 0, &x)?, 16);
            let y = protocols::relu(ctx, &y, 64)?;
            let repl = protocols::Replacement::Poly { c2: vec![0.1; 6], c1: vec![0.5; 6], c0: vec![0.2; 6] };
            let y = protocols::masked_act(ctx, &y, &mask, &repl, 41)?;
            let y2 = y.clone().reshape(&[150])?;
            let z = protocols::truncate(protocols::mul(ctx, &y2, &y2)?, 16);
            Ok(protocols::truncate(protocols::square(ctx, &z)?, 16))
        };
        let w0 = Share::new(Party::P0, w.clone());
        let w1 = Share::zeros(Party::P1, w.shape());
        let (r0, r1) = run_pair((p0, p1), fp, |c| body(c, m0, w0, x0), |c| body(c, m1, w1, x1)).unwrap();
        (reconstruct(&r0.output, &r1.output).unwrap(), r0.output.into_data(), r1.output.into_data())
    };
    let direct = run(false);
    let decoded = run(true);
    assert_eq!(direct, decoded, "same shares, bit for bit");
}

#[test]
fn corrupt_or_truncated_bytes_are_decode_errors() {
    let (p0, _) = Dealer::new(1).deal(&[Request::Cmp { n: 20, bits: 64 }, Request::Square { n: 3 }]).unwrap();
    let bytes = encode_preprocessing(&p0);
    for cut in [0, 1, 8, 17, 30, bytes.len() / 2, bytes.len() - 1] {
        let err = decode_preprocessing(Party::P0, &bytes[..cut]).unwrap_err();
        assert!(matches!(err, MpcError::Decode { .. }), "cut at {cut}: {err}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(decode_preprocessing(Party::P0, &extra).is_err(), "trailing byte");
    // A huge length prefix must not allocate: item count field set to 2^60.
    let mut huge = bytes.clone();
    huge[17..25].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(decode_preprocessing(Party::P0, &huge).is_err());
    // Flip every byte of the header region and a sample of the body: never a panic.
    for i in (0..bytes.len()).step_by(97).chain(0..40) {
        let mut b = bytes.clone();
        b[i] ^= 0xa5;
        let _ = decode_preprocessing(Party::P0, &b);
    }
}

#[test]
fn exhausting_decoded_material_is_a_typed_error() {
    let (p0, p1) = Dealer::new(2).deal(&[Request::Cmp { n: 4, bits: 64 }]).unwrap();
    let p0 = decode_preprocessing(Party::P0, &encode_preprocessing(&p0)).unwrap();
    let p1 = decode_preprocessing(Party::P1, &encode_preprocessing(&p1)).unwrap();
    let x = ArrayD::from_elem(IxDyn(&[4]), 3u64);
    let res = run_pair(
        (p0, p1),
        FixedPoint::default(),
        |c| {
            let s = Share::new(Party::P0, x.clone());
            let _ = protocols::relu(c, &s, 64)?;
            protocols::relu(c, &s, 64)
        },
        |c| {
            let s = Share::zeros(Party::P1, &[4]);
            let _ = protocols::relu(c, &s, 64)?;
            protocols::relu(c, &s, 64)
        },
    );
    assert!(matches!(res, Err(MpcError::PreprocessingExhausted { .. })), "{:?}", res.err());
}
