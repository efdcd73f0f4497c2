//! Preprocessing survives a trip through bytes, and corrupt bytes are typed errors, never panics
//! nor big allocations.

use std::time::{Duration, Instant};

use masq_mpc::dealer::codec::{
    CONFIG, decode_limit, decode_model_material, decode_preprocessing, decode_preprocessing_seeded,
    encode_model_material, encode_preprocessing, encode_preprocessing_seeded, requests_of,
};
use masq_mpc::dealer::{CmpMode, Dealer, LinearKind, Material, ModelMaterial, Preprocessing, Request};
use masq_mpc::kernel::Conv2dParams;
use masq_mpc::protocols::{self, Ctx};
use masq_mpc::share::{Party, Share, reconstruct, share};
use masq_mpc::sim::run_pair;
use masq_mpc::{FixedPoint, MpcError};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;

use crate::alloc_probe;

fn plan() -> Vec<Request> {
    vec![
        Request::Linear { layer: 0, input_shape: vec![1, 2, 5, 5] },
        Request::Cmp { n: 150, bits: 64, mode: CmpMode::Compact },
        Request::MaskedAct { relus: 70, squares: 80, bits: 41, mode: CmpMode::OneRound },
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
            let y = protocols::relu(ctx, &y, 64, CmpMode::Compact)?;
            let repl = protocols::Replacement::Poly { c2: vec![0.1; 6], c1: vec![0.5; 6], c0: vec![0.2; 6] };
            let y = protocols::masked_act(ctx, &y, &mask, &repl, 41, CmpMode::OneRound)?;
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

/// A small queue: comparisons (with DCF keys), then square pairs.
fn small_queue() -> Preprocessing {
    Dealer::new(1)
        .deal(&[Request::Cmp { n: 20, bits: 64, mode: CmpMode::OneRound }, Request::Square { n: 3 }])
        .unwrap()
        .0
}

fn conv_model() -> ModelMaterial {
    Dealer::new(3).setup_model(&[(0, kind()), (1, LinearKind::MatMul { k: 4, n: 3 })]).unwrap().0
}

fn decode_error(res: masq_mpc::Result<impl std::fmt::Debug>) -> String {
    match res {
        Err(MpcError::Decode { during, reason }) => format!("{during}: {reason}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn corrupt_or_truncated_bytes_are_decode_errors() {
    let bytes = encode_preprocessing(&small_queue());
    for cut in [0, 1, 8, 17, 30, bytes.len() / 2, bytes.len() - 1] {
        let err = decode_preprocessing(Party::P0, &bytes[..cut]).unwrap_err();
        assert!(matches!(err, MpcError::Decode { .. }), "cut at {cut}: {err}");
    }
    assert!(decode_error(decode_preprocessing(Party::P0, &bytes[..30])).contains("truncated"));
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(decode_error(decode_preprocessing(Party::P0, &extra)).contains("1 trailing bytes"));
    // An unknown item tag (the item's u32 variant index at byte 16).
    let mut tag = bytes.clone();
    tag[16..20].copy_from_slice(&7u32.to_le_bytes());
    assert!(decode_error(decode_preprocessing(Party::P0, &tag)).contains("tag 7"));
    // Flip every byte of the header region and a sample of the body: never a panic.
    for i in (0..bytes.len()).step_by(97).chain(0..40) {
        let mut b = bytes.clone();
        b[i] ^= 0xa5;
        let _ = decode_preprocessing(Party::P0, &b);
    }
    // Model material too.
    let model = encode_model_material(&conv_model());
    for cut in [0, 7, 16, 20, 100, model.len() / 2, model.len() - 1] {
        let err = decode_model_material(Party::P0, &model[..cut]).unwrap_err();
        assert!(matches!(err, MpcError::Decode { .. }), "cut at {cut}: {err}");
    }
    for i in (0..model.len()).step_by(7) {
        let mut b = model.clone();
        b[i] ^= 0x5a;
        let _ = decode_model_material(Party::P0, &b);
    }
}

#[test]
fn sections_are_plain_bincode_with_fixed_width_integers() {
    let (p0, _) = Dealer::new(5).deal(&[Request::Mul { n: 3 }]).unwrap();
    let bytes = encode_preprocessing(&p0);
    // Header { offline_bytes: u64, count: u64 }, then Item::Mul (variant 0) { a, b, c }.
    type MulItem = (u32, Vec<u64>, Vec<u64>, Vec<u64>);
    let ((offline, count, (tag, a, b, c)), used): ((u64, u64, MulItem), usize) =
        bincode::decode_from_slice(&bytes, CONFIG).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!((offline, count, tag), (p0.offline_bytes(), 1, 0));
    let Some(Material::Mul { a: a0, b: b0, c: c0 }) = p0.items().next() else { panic!("a mul item") };
    assert_eq!((&a, &b, &c), (a0, b0, c0));
    assert_eq!(bytes.len(), 16 + 4 + 3 * (8 + 3 * 8), "fixed-width: every word takes 8 bytes");
}

#[test]
fn model_material_round_trips_and_checks_shapes() {
    let m = conv_model();
    let bytes = encode_model_material(&m);
    let back = decode_model_material(Party::P0, &bytes).unwrap();
    assert_eq!(back.offline_bytes, m.offline_bytes);
    assert_eq!(back.layers, m.layers);
    assert_eq!(encode_model_material(&back), bytes);
    // Layer 0's weight mask shape (rank at byte 132, dims after it): 6×2×3×3 becomes 2×6×3×3,
    // same word count, so only the kind check can catch it.
    let mut wrong = bytes.clone();
    set_u64(&mut wrong, 140, 2);
    set_u64(&mut wrong, 148, 6);
    assert!(decode_error(decode_model_material(Party::P0, &wrong)).contains("kind says"));
}

/// The largest allocation a decoding of `len` bytes may make: its bincode limit.
fn allowed(len: usize) -> usize {
    decode_limit(len).unwrap()
}

#[test]
fn forged_length_fields_fail_fast_without_a_big_allocation() {
    // The probe sees a big reservation when there is one.
    let (v, big) = alloc_probe::largest_during(|| Vec::<u64>::with_capacity(1 << 20));
    assert!(big >= 8 << 20 && v.capacity() >= 1 << 20);
    let pre = encode_preprocessing(&small_queue());
    let model = encode_model_material(&conv_model());
    // (what, section, byte offset of a u64 length field, forged value). Preprocessing: header
    // count at 8; the Cmp item's tag at 16, bits at 20, r's length at 24, r's 20 words, m_r's
    // length at 192. Model: header count at 8; layer 0's id at 16, kind tag at 24, weight shape
    // 28..60, conv params 60..132, the mask's shape length at 132, its 4 dims, its word count at 172.
    let cases: [(&str, &[u8], usize, u64); 10] = [
        ("item count 2^60", &pre, 8, 1 << 60),
        ("word count 2^60", &pre, 24, 1 << 60),
        ("word count 2^30 (8 GiB)", &pre, 24, 1 << 30),
        ("word count u64::MAX", &pre, 24, u64::MAX),
        ("second word count 2^60", &pre, 192, 1 << 60),
        ("layer count 2^60", &model, 8, 1 << 60),
        ("shape length 2^60", &model, 132, 1 << 60),
        ("tensor dim 2^60", &model, 140, 1 << 60),
        ("word count 2^60", &model, 172, 1 << 60),
        ("word count 2^28 (2 GiB)", &model, 172, 1 << 28),
    ];
    for (what, section, at, value) in cases {
        let mut forged = section.to_vec();
        set_u64(&mut forged, at, value);
        let t = Instant::now();
        let (res, largest) = alloc_probe::largest_during(|| {
            if std::ptr::eq(section, &pre[..]) {
                decode_preprocessing(Party::P0, &forged).map(|_| ())
            } else {
                decode_model_material(Party::P0, &forged).map(|_| ())
            }
        });
        let err = decode_error(res);
        assert!(t.elapsed() < Duration::from_secs(5), "{what}: took {:?}", t.elapsed());
        assert!(largest <= allowed(forged.len()), "{what}: allocated {largest} bytes for {} of input", forged.len());
        if value > 1 << 40 && at != 8 {
            assert!(err.contains("length field") || err.contains("tensor of shape"), "{what}: {err}");
        }
    }
    // The legitimate sections decode under the same bound.
    let (ok, largest) = alloc_probe::largest_during(|| decode_preprocessing(Party::P0, &pre));
    ok.unwrap();
    assert!(largest <= allowed(pre.len()), "{largest} bytes for {}", pre.len());
}

#[test]
fn decode_limit_is_twice_the_section_rounded_up() {
    assert_eq!(decode_limit(0), Some(4096));
    assert_eq!(decode_limit(2048), Some(4096));
    assert_eq!(decode_limit(2049), Some(8192));
    assert_eq!(decode_limit(3 << 20), Some(8 << 20));
    assert_eq!(decode_limit(usize::MAX), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Arbitrary bytes, or a valid section with arbitrary bytes overwritten: a result or a decode
    /// error, never a panic, and never an allocation beyond the section's decode limit.
    #[test]
    fn garbage_never_panics_nor_allocates_much(
        junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        at in 0usize..4000,
    ) {
        let mut pre = encode_preprocessing(&small_queue());
        let at = at % pre.len();
        let end = (at + junk.len()).min(pre.len());
        pre[at..end].copy_from_slice(&junk[..end - at]);
        for bytes in [&junk[..], &pre[..]] {
            let (r, largest) = alloc_probe::largest_during(|| decode_preprocessing(Party::P1, bytes).map(|_| ()));
            proptest::prop_assert!(largest <= allowed(bytes.len()), "{} bytes", largest);
            if let Err(e) = r {
                proptest::prop_assert!(matches!(e, MpcError::Decode { .. }), "{}", e);
            }
            let (r, largest) = alloc_probe::largest_during(|| decode_model_material(Party::P1, bytes).map(|_| ()));
            proptest::prop_assert!(largest <= allowed(bytes.len()), "{} bytes", largest);
            if let Err(e) = r {
                proptest::prop_assert!(matches!(e, MpcError::Decode { .. }), "{}", e);
            }
        }
    }
}

#[test]
fn exhausting_decoded_material_is_a_typed_error() {
    let (p0, p1) = Dealer::new(2).deal(&[Request::Cmp { n: 4, bits: 64, mode: CmpMode::Compact }]).unwrap();
    let p0 = decode_preprocessing(Party::P0, &encode_preprocessing(&p0)).unwrap();
    let p1 = decode_preprocessing(Party::P1, &encode_preprocessing(&p1)).unwrap();
    let x = ArrayD::from_elem(IxDyn(&[4]), 3u64);
    let res = run_pair(
        (p0, p1),
        FixedPoint::default(),
        |c| {
            let s = Share::new(Party::P0, x.clone());
            let _ = protocols::relu(c, &s, 64, CmpMode::Compact)?;
            protocols::relu(c, &s, 64, CmpMode::Compact)
        },
        |c| {
            let s = Share::zeros(Party::P1, &[4]);
            let _ = protocols::relu(c, &s, 64, CmpMode::Compact)?;
            protocols::relu(c, &s, 64, CmpMode::Compact)
        },
    );
    assert!(matches!(res, Err(MpcError::PreprocessingExhausted { .. })), "{:?}", res.err());
}

/// A plan with every kind of request, both comparison modes.
fn seeded_plan() -> Vec<Request> {
    let mut p = plan();
    p.push(Request::Cmp { n: 33, bits: 40, mode: CmpMode::OneRound });
    p.push(Request::MaskedAct { relus: 21, squares: 5, bits: 64, mode: CmpMode::Compact });
    p.push(Request::MatMul { batch: 2, m: 3, k: 4, n: 5 });
    p
}

#[test]
fn seed_expanded_preprocessing_is_the_dealt_material_at_the_cost_models_size() {
    let mut dealer = Dealer::new(77);
    let (m0, _) = dealer.setup_model(&[(0, kind())]).unwrap();
    dealer.deal(&seeded_plan()).unwrap(); // deal 0
    let (p0, p1) = dealer.deal(&seeded_plan()).unwrap(); // deal 1
    let out_shape = |layer: usize, input: &[usize]| {
        m0.layers.iter().find(|l| l.0 == layer).and_then(|l| l.1.output_shape(input).ok())
    };
    for p in [p0, p1] {
        let party = p.party();
        let origin = dealer.origin(party, 1);
        let seeded = encode_preprocessing_seeded(&p, &origin);
        let full = encode_preprocessing(&p);
        let back = decode_preprocessing_seeded(party, &seeded, &seeded_plan(), &out_shape).unwrap();
        for (i, (a, b)) in back.items().zip(p.items()).enumerate() {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            masq_mpc::dealer::codec::encode_material(a, &mut ea);
            masq_mpc::dealer::codec::encode_material(b, &mut eb);
            assert!(ea == eb, "{party}: item {i} ({}) differs after seed expansion", a.describe());
        }
        assert!(encode_preprocessing(&back) == full, "{party}: the same material, bit for bit");
        // The file is the cost model's bytes plus framing: the origin, the header, and per item
        // a few length prefixes and tags (at most 64 bytes an item).
        let framing = seeded.len() as u64 - p.offline_bytes();
        assert!(framing <= 64 * seeded_plan().len() as u64 + 64, "{party}: {framing} bytes of framing");
        assert!(seeded.len() < full.len(), "{party}: seeded {} vs full {}", seeded.len(), full.len());
        // The wrong deal index expands other values: the material differs.
        let wrong = encode_preprocessing_seeded(&p, &dealer.origin(party, 0));
        let other = decode_preprocessing_seeded(party, &wrong, &seeded_plan(), &out_shape).unwrap();
        assert_ne!(encode_preprocessing(&other), full);
        // Another plan, a truncated section, trailing bytes: typed errors naming the item.
        let mut fewer = seeded_plan();
        fewer.pop();
        let e = decode_preprocessing_seeded(party, &seeded, &fewer, &out_shape).unwrap_err();
        assert!(e.to_string().contains("plan"), "{e}");
        let mut bigger = seeded_plan();
        bigger[3] = Request::Mul { n: 151 };
        // P1's explicit c1 has the dealt length; P0 holds nothing explicit for a product, so its
        // sizes are the plan's (the deployment checks both parties' plans at the handshake).
        let r = decode_preprocessing_seeded(party, &seeded, &bigger, &out_shape);
        if party == Party::P1 {
            let e = r.unwrap_err();
            assert!(matches!(e, MpcError::Decode { .. }) && e.to_string().contains("item 3"), "{e}");
        } else {
            assert_eq!(requests_of(&r.unwrap()), bigger);
        }
        let mut modes = seeded_plan();
        modes[1] = Request::Cmp { n: 150, bits: 64, mode: CmpMode::OneRound };
        let e = decode_preprocessing_seeded(party, &seeded, &modes, &out_shape).unwrap_err();
        assert!(e.to_string().contains("item 1"), "{e}");
        for cut in [0, 10, seeded.len() / 2, seeded.len() - 1] {
            assert!(decode_preprocessing_seeded(party, &seeded[..cut], &seeded_plan(), &out_shape).is_err());
        }
        let mut long = seeded.clone();
        long.push(0);
        assert!(decode_preprocessing_seeded(party, &long, &seeded_plan(), &out_shape).is_err());
    }
}

#[test]
fn a_section_read_piece_by_piece_is_the_dealt_material_in_bounded_segments() {
    use masq_mpc::dealer::section_reader::{SectionPlan, open_section};
    let mut dealer = Dealer::new(78);
    let (m0, m1) = dealer.setup_model(&[(0, kind())]).unwrap();
    let (p0, p1) = dealer.deal(&seeded_plan()).unwrap();
    for (p, m) in [(p0, m0), (p1, m1)] {
        let party = p.party();
        let seeded = encode_preprocessing_seeded(&p, &dealer.origin(party, 0));
        let plan = |budget| SectionPlan {
            party,
            requests: seeded_plan(),
            layers: m.layers.iter().map(|l| (l.0, l.1.clone())).collect(),
            budget,
            name: "test section".into(),
        };
        for budget in [1, 20_000, u64::MAX] {
            let src = std::io::Cursor::new(seeded.clone());
            let (first, mut rest) = open_section(src, seeded.len() as u64, plan(budget)).unwrap();
            let mut segments = vec![first];
            while let Some(s) = rest.refill().unwrap() {
                segments.push(s);
            }
            let mut all = segments.remove(0);
            let count = segments.len() + 1;
            for s in segments {
                all.extend(s).unwrap();
            }
            assert_eq!(encode_preprocessing(&all), encode_preprocessing(&p), "{party}, budget {budget}");
            match budget {
                1 => assert_eq!(count, seeded_plan().len(), "one request per segment"),
                u64::MAX => assert_eq!(count, 1),
                _ => assert!(count > 1 && count < seeded_plan().len(), "{count} segments"),
            }
        }
        // Cut short, or a forged length: typed errors naming the section, never a panic.
        for cut in [10, 60, seeded.len() / 2, seeded.len() - 1] {
            let src = std::io::Cursor::new(seeded[..cut].to_vec());
            let r = open_section(src, cut as u64, plan(1)).and_then(|(_, mut rest)| {
                while rest.refill()?.is_some() {}
                Ok(())
            });
            let e = r.unwrap_err().to_string();
            assert!(e.contains("test section"), "{e}");
        }
        let mut forged = seeded.clone();
        // The first item's first vector length, right after the header (16 B), the origin (40 B)
        // and the item's tag (4 B): claim 2^40 words.
        forged[60..68].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let src = std::io::Cursor::new(forged.clone());
        let e = open_section(src, forged.len() as u64, plan(1)).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("item 0"), "{e}");
    }
}
