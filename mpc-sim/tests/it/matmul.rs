//! Products of two secret tensors (`protocols::matmul`, `Request::MatMul`): exact in the ring,
//! fixed point after truncation, cost prediction == measurement, material through both codecs,
//! and wrong material or shapes as typed errors.

use crate::common;

use common::{rng, two_party};
use masq_mpc::cost::{self, Cost};
use masq_mpc::dealer::codec::{
    CONFIG, decode_preprocessing, decode_preprocessing_seeded, encode_material, encode_preprocessing,
    encode_preprocessing_seeded, requests_of,
};
use masq_mpc::dealer::section_reader::{SectionPlan, open_section};
use masq_mpc::dealer::{Dealer, Material, Preprocessing, Request, SEED_BYTES};
use masq_mpc::kernel::reference;
use masq_mpc::protocols::{self, Ctx};
use masq_mpc::share::{Party, Share, share};
use masq_mpc::transport::MemTransport;
use masq_mpc::{FixedPoint, MpcError, Result};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::RngCore;

fn arr(shape: &[usize], v: Vec<u64>) -> ArrayD<u64> {
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

fn random_words(seed: u64, n: usize) -> Vec<u64> {
    let mut r = rng(seed);
    (0..n).map(|_| r.next_u64()).collect()
}

/// The plaintext product per batch, by the naive reference loop (not the fast kernel).
fn ring_matmul(batch: usize, m: usize, k: usize, n: usize, x: &[u64], y: &[u64]) -> Vec<u64> {
    (0..batch)
        .flat_map(|i| reference::gemm(m, k, n, &x[i * m * k..(i + 1) * m * k], &y[i * k * n..(i + 1) * k * n]))
        .collect()
}

/// Runs `matmul(x, y)` on secret shares of `x` and `y` with `requests` dealt (seed `seed`).
fn run_matmul(
    seed: u64,
    fp: FixedPoint,
    requests: &[Request],
    x: &ArrayD<u64>,
    y: &ArrayD<u64>,
    after: impl Fn(Share) -> Share + Sync,
) -> Result<common::Outcome> {
    let (y0, y1) = share(y, &mut rng(seed ^ 0xface));
    two_party(seed, fp, &[], requests, x, |ctx, xs| {
        let ys = if ctx.party() == Party::P0 { y0.clone() } else { y1.clone() };
        Ok(after(protocols::matmul(ctx, &xs, &ys)?))
    })
}

/// Checks one shape: exact ring product, and measured cost == `cost::matmul` (+ the deal's seeds).
fn check_exact(seed: u64, (batch, m, k, n): (usize, usize, usize, usize)) {
    let xv = random_words(seed, batch * m * k);
    let yv = random_words(seed ^ 1, batch * k * n);
    let (x, y) = (arr(&[batch, m, k], xv.clone()), arr(&[batch, k, n], yv.clone()));
    let out = run_matmul(seed, FixedPoint::default(), &[Request::MatMul { batch, m, k, n }], &x, &y, |s| s).unwrap();
    assert_eq!(out.value.shape(), &[batch, m, n], "[{batch}, {m}, {k}]·[{batch}, {k}, {n}]");
    assert_eq!(
        out.value.iter().copied().collect::<Vec<_>>(),
        ring_matmul(batch, m, k, n, &xv, &yv),
        "[{batch}, {m}, {k}]·[{batch}, {k}, {n}]"
    );
    assert_eq!(out.measured(&[]), cost::matmul(batch, m, k, n) + cost::deal_overhead(), "{batch} {m} {k} {n}");
}

#[test]
fn matmul_is_the_ring_product_for_every_shape() {
    for (i, dims) in [
        (1, 1, 1, 1),
        (1, 3, 4, 5),
        (2, 1, 7, 3),
        (3, 4, 1, 2),
        (1, 5, 3, 1),
        (4, 2, 6, 2),
        (2, 9, 17, 8),
        (1, 12, 40, 30), // more than the 8 rows where the kernel starts packing
        (1, 2, 0, 3),    // k = 0: the product is zero
    ]
    .into_iter()
    .enumerate()
    {
        check_exact(100 + i as u64, dims);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn matmul_is_exact_for_random_small_dims(batch in 1usize..4, m in 1usize..7, k in 1usize..7, n in 1usize..7,
                                             seed in any::<u64>()) {
        check_exact(seed, (batch, m, k, n));
    }
}

#[test]
fn matmul_then_truncation_matches_the_real_product() {
    let fp = FixedPoint::default();
    let f = fp.frac_bits() as i32;
    let range = 2.0;
    for (seed, (batch, m, k, n)) in [(1u64, (2, 4, 16, 3)), (2, (1, 1, 33, 7)), (3, (3, 5, 8, 5))] {
        let mut r = rng(seed);
        let mut reals = |len: usize| -> Vec<f64> {
            (0..len).map(|_| (r.next_u64() as f64 / u64::MAX as f64 * 2.0 - 1.0) * range).collect()
        };
        let (xf, yf) = (reals(batch * m * k), reals(batch * k * n));
        let x = arr(&[batch, m, k], xf.iter().map(|&v| fp.encode(v)).collect());
        let y = arr(&[batch, k, n], yf.iter().map(|&v| fp.encode(v)).collect());
        let req = [Request::MatMul { batch, m, k, n }];
        let out = run_matmul(seed, fp, &req, &x, &y, |s| protocols::truncate(s, fp.frac_bits())).unwrap();
        // Against the reals: each encoding is off by at most 2^-(f+1), so each of the k products
        // by at most 2·range·2^-(f+1) (plus a negligible square term); truncation adds 1 ulp.
        let tol_real = k as f64 * 2.0 * range * 2f64.powi(-(f + 1)) + 2.0 * 2f64.powi(-f);
        // Against the encoded values (exact in f64): only the local truncation, within 2 ulp.
        let tol_encoded = 2.0 * 2f64.powi(-f);
        let q = |v: f64| fp.decode(fp.encode(v));
        for b in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let at = |t: usize| (xf[b * m * k + i * k + t], yf[b * k * n + t * n + j]);
                    let want: f64 = (0..k).map(|t| at(t).0 * at(t).1).sum();
                    let want_q: f64 = (0..k).map(|t| q(at(t).0) * q(at(t).1)).sum();
                    let got = fp.decode(out.value[[b, i, j]]);
                    assert!((got - want).abs() <= tol_real, "[{b},{i},{j}]: got {got}, real {want}, tol {tol_real}");
                    assert!((got - want_q).abs() <= tol_encoded, "[{b},{i},{j}]: got {got}, encoded {want_q}");
                }
            }
        }
    }
}

#[test]
fn matmul_costs_what_the_model_predicts() {
    // The formula itself: one frame of batch·(m·k + k·n) words each way, one round, C1 to P1.
    let c = cost::matmul(2, 3, 4, 5);
    let words = 2 * (3 * 4 + 4 * 5) as u64;
    assert_eq!(
        c,
        Cost { p0_to_p1: 4 + 8 * words, p1_to_p0: 4 + 8 * words, rounds: 1, offline_p0: 0, offline_p1: 8 * 2 * 3 * 5 }
    );
    assert_eq!(cost::matmul(2, 3, 4, 5), cost::exchange(64) + Cost { offline_p1: 240, ..Cost::default() });
    for (seed, (batch, m, k, n)) in [(1u64, (1, 1, 1, 1)), (2, (3, 2, 5, 4)), (3, (1, 16, 8, 16))] {
        let x = arr(&[batch, m, k], random_words(seed, batch * m * k));
        let y = arr(&[batch, k, n], random_words(seed + 9, batch * k * n));
        let out =
            run_matmul(seed, FixedPoint::default(), &[Request::MatMul { batch, m, k, n }], &x, &y, |s| s).unwrap();
        // One logged step per party, one round each, the frame's bytes each way.
        for log in [&out.log0, &out.log1] {
            assert_eq!(log.len(), 1);
            assert_eq!((log[0].op, log[0].n), ("matmul", batch * m * n));
            assert_eq!(log[0].traffic.rounds, 1);
            assert_eq!(log[0].traffic.bytes_sent, 4 + 8 * (batch * (m * k + k * n)) as u64);
        }
        let predicted = cost::matmul(batch, m, k, n);
        let measured = out.measured(&[]);
        assert_eq!(measured, predicted + cost::deal_overhead());
        assert_eq!((measured.offline_p0, measured.offline_p1), (SEED_BYTES, SEED_BYTES + 8 * (batch * m * n) as u64));
    }
}

/// Both parties' queues for `requests` as deal number 1 of dealer `seed` (deal 0 is dealt too).
fn dealt(seed: u64, requests: &[Request]) -> (Dealer, Preprocessing, Preprocessing) {
    let mut dealer = Dealer::new(seed);
    dealer.deal(requests).unwrap();
    let (p0, p1) = dealer.deal(requests).unwrap();
    (dealer, p0, p1)
}

fn encoded_items(p: &Preprocessing) -> Vec<Vec<u8>> {
    p.items()
        .map(|m| {
            let mut out = Vec::new();
            encode_material(m, &mut out);
            out
        })
        .collect()
}

fn plan() -> Vec<Request> {
    vec![
        Request::Mul { n: 3 },
        Request::MatMul { batch: 2, m: 3, k: 4, n: 5 },
        Request::MatMul { batch: 1, m: 1, k: 1, n: 1 },
        Request::Square { n: 2 },
        Request::MatMul { batch: 1, m: 7, k: 2, n: 9 },
    ]
}

fn add(u: &[u64], v: &[u64]) -> Vec<u64> {
    u.iter().zip(v).map(|(x, y)| x.wrapping_add(*y)).collect()
}

/// The reconstructed `(A, B, C)` of every matmul item of a deal.
fn triples(p0: &Preprocessing, p1: &Preprocessing) -> Vec<(Vec<u64>, Vec<u64>, Vec<u64>)> {
    let mut out = Vec::new();
    for (x, y) in p0.items().zip(p1.items()) {
        if let (
            Material::MatMul { batch, m, k, n, a: a0, b: b0, c: c0 },
            Material::MatMul { batch: batch1, m: m1, k: k1, n: n1, a: a1, b: b1, c: c1 },
        ) = (x, y)
        {
            assert_eq!((batch, m, k, n), (batch1, m1, k1, n1));
            let (a, b, c) = (add(a0, a1), add(b0, b1), add(c0, c1));
            assert_eq!(c, ring_matmul(*batch, *m, *k, *n, &a, &b), "C = A·B per batch");
            out.push((a, b, c));
        }
    }
    out
}

#[test]
fn dealt_matrix_triples_are_products_with_fresh_masks() {
    let (_, p0, p1) = dealt(5, &plan());
    let first = triples(&p0, &p1);
    assert_eq!(first.len(), 3);
    // Nothing reused: another deal of the same plan has other masks, and so do two requests of
    // one deal.
    let mut dealer = Dealer::new(5);
    let (q0, q1) = dealer.deal(&plan()).unwrap(); // deal 0 of the same dealer
    let other = triples(&q0, &q1);
    for (f, o) in first.iter().zip(&other) {
        assert!(f.0 != o.0 && f.1 != o.1, "deals 0 and 1 share a mask");
    }
    let twice = vec![Request::MatMul { batch: 1, m: 2, k: 2, n: 2 }; 2];
    let (r0, r1) = dealer.deal(&twice).unwrap();
    let t = triples(&r0, &r1);
    assert!(t[0].0 != t[1].0 && t[0].1 != t[1].1, "two requests of one deal share a mask");
}

#[test]
fn matmul_material_round_trips_through_both_codecs() {
    let (dealer, p0, p1) = dealt(7, &plan());
    for p in [p0, p1] {
        let party = p.party();
        assert_eq!(requests_of(&p), plan());
        // Full format.
        let full = encode_preprocessing(&p);
        let back = decode_preprocessing(party, &full).unwrap();
        assert_eq!(encoded_items(&back), encoded_items(&p), "{party}: full format");
        // Seed-expanded: the same material, bit for bit, from the stream and the explicit C1.
        let seeded = encode_preprocessing_seeded(&p, &dealer.origin(party, 1));
        let out_shape = |_: usize, _: &[usize]| None;
        let back = decode_preprocessing_seeded(party, &seeded, &plan(), &out_shape).unwrap();
        assert_eq!(encoded_items(&back), encoded_items(&p), "{party}: seed-expanded");
        assert_eq!(back.offline_bytes(), p.offline_bytes());
        // P0's file holds no words for a matmul; P1's holds C1: the cost model's bytes plus framing.
        let framing = seeded.len() as u64 - p.offline_bytes();
        assert!(framing <= 64 * plan().len() as u64 + 64, "{party}: {framing} bytes of framing");
        // Read piece by piece, one request per segment.
        let sp = SectionPlan { party, requests: plan(), layers: vec![], budget: 1, name: "matmul section".into() };
        let (first, mut rest) = open_section(std::io::Cursor::new(seeded.clone()), seeded.len() as u64, sp).unwrap();
        let mut all = first;
        while let Some(s) = rest.refill().unwrap() {
            all.extend(s).unwrap();
        }
        assert_eq!(encoded_items(&all), encoded_items(&p), "{party}: section reader");
    }
}

#[test]
fn matmul_items_are_tag_5_in_both_formats() {
    let req = [Request::MatMul { batch: 2, m: 1, k: 3, n: 2 }];
    let (dealer, p0, p1) = dealt(8, &req);
    let Some(Material::MatMul { a, b, c, .. }) = p0.items().next() else { panic!("a matmul item") };
    // Full: Header, then Item::MatMul (variant 5) { batch, m, k, n, a, b, c }.
    type Item = (u32, [u64; 4], Vec<u64>, Vec<u64>, Vec<u64>);
    let bytes = encode_preprocessing(&p0);
    let ((_, count, item), used): ((u64, u64, Item), usize) = bincode::decode_from_slice(&bytes, CONFIG).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!((count, item.0, item.1), (1, 5, [2, 1, 3, 2]));
    assert_eq!((&item.2, &item.3, &item.4), (a, b, c));
    // Seed-expanded: Header, Origin (40 B), then Explicit::MatMul (variant 5) { c }: empty at P0,
    // batch·m·n words at P1.
    for (p, words) in [(&p0, 0u64), (&p1, 4)] {
        let s = encode_preprocessing_seeded(p, &dealer.origin(p.party(), 1));
        assert_eq!(u32::from_le_bytes(s[56..60].try_into().unwrap()), 5);
        assert_eq!(u64::from_le_bytes(s[60..68].try_into().unwrap()), words);
        assert_eq!(s.len() as u64, 68 + 8 * words);
    }
}

fn decode_error<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(MpcError::Decode { during, reason }) => format!("{during}: {reason}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn truncated_or_forged_matmul_sections_are_typed_errors() {
    let req = [Request::MatMul { batch: 2, m: 3, k: 4, n: 5 }];
    let (dealer, p0, p1) = dealt(9, &req);
    let out_shape = |_: usize, _: &[usize]| None;
    for p in [&p0, &p1] {
        let party = p.party();
        let full = encode_preprocessing(p);
        let seeded = encode_preprocessing_seeded(p, &dealer.origin(party, 1));
        for cut in [0, 10, 20, full.len() / 2, full.len() - 1] {
            assert!(decode_error(decode_preprocessing(party, &full[..cut])).contains("truncated"), "{party} cut {cut}");
        }
        for cut in [0, 10, 57, seeded.len() - 1] {
            let e = decode_error(decode_preprocessing_seeded(party, &seeded[..cut], &req, &out_shape));
            assert!(e.contains("truncated"), "{party} cut {cut}: {e}");
        }
        // Full format: the dims (after header 16 B and tag 4 B) no longer fit the vectors.
        let mut forged = full.clone();
        forged[28..36].copy_from_slice(&4u64.to_le_bytes()); // m = 3 -> 4
        assert!(decode_error(decode_preprocessing(party, &forged)).contains("matmul"), "{party}");
        // Dims that overflow usize when multiplied.
        let mut forged = full.clone();
        forged[20..28].copy_from_slice(&(1u64 << 40).to_le_bytes());
        forged[36..44].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode_error(decode_preprocessing(party, &forged)).contains("matmul"), "{party}");
        // A length field claiming 2^40 words: refused by the limit, nothing allocated.
        let mut forged = full.clone();
        forged[52..60].copy_from_slice(&(1u64 << 40).to_le_bytes()); // a's length
        assert!(decode_error(decode_preprocessing(party, &forged)).contains("length field"), "{party}");
        let mut forged = seeded.clone();
        forged[60..68].copy_from_slice(&(1u64 << 40).to_le_bytes()); // C1's length
        let e = decode_error(decode_preprocessing_seeded(party, &forged, &req, &out_shape));
        assert!(e.contains("length field") && e.contains("item 0"), "{party}: {e}");
        // The explicit item of another kind (tag 0, Mul { c }) where the plan has a matmul.
        let mut other = seeded.clone();
        other[56..60].copy_from_slice(&0u32.to_le_bytes());
        let e = decode_error(decode_preprocessing_seeded(party, &other, &req, &out_shape));
        assert!(e.contains("item 0") && e.contains("matmul"), "{party}: {e}");
        // A plan of other output size: P1's explicit C1 has the dealt length.
        let bigger = [Request::MatMul { batch: 2, m: 3, k: 4, n: 6 }];
        let r = decode_preprocessing_seeded(party, &seeded, &bigger, &out_shape);
        if party == Party::P1 {
            assert!(decode_error(r).contains("C: 30 words, the plan needs 36"));
        } else {
            assert_eq!(requests_of(&r.unwrap()), bigger, "P0's sizes are the plan's");
        }
        // A plan too large to expand is refused, not allocated.
        let huge = [Request::MatMul { batch: 1 << 20, m: 1 << 20, k: 1 << 20, n: 1 }];
        assert!(decode_error(decode_preprocessing_seeded(party, &seeded, &huge, &out_shape)).contains("more than"));
    }
}

#[test]
fn wrong_material_or_shapes_are_typed_errors_naming_matmul() {
    let fp = FixedPoint::default();
    let x = arr(&[1, 2, 2], vec![1, 2, 3, 4]);
    let y = arr(&[1, 2, 2], vec![5, 6, 7, 8]);
    let run = |reqs: &[Request], x: &ArrayD<u64>, y: &ArrayD<u64>| run_matmul(1, fp, reqs, x, y, |s| s).err().unwrap();
    let mismatch = |e: &MpcError, found: &str| {
        matches!(e, MpcError::PreprocessingMismatch { op, .. } if op == "matmul")
            && e.to_string().contains("matmul (batch = 1, m = 2, k = 2, n = 2)")
            && e.to_string().contains(found)
    };
    // Nothing dealt.
    let e = run(&[], &x, &y);
    assert!(matches!(&e, MpcError::PreprocessingExhausted { op, .. } if op == "matmul"), "{e}");
    // A Mul of the same word count, or element-wise material of any kind.
    let e = run(&[Request::Mul { n: 4 }], &x, &y);
    assert!(mismatch(&e, "mul (n = 4)"), "{e}");
    let e = run(&[Request::Square { n: 8 }], &x, &y);
    assert!(mismatch(&e, "square"), "{e}");
    // A MatMul of other dims, even with the same three lengths (4, 4, 4).
    let e = run(&[Request::MatMul { batch: 4, m: 1, k: 1, n: 1 }], &x, &y);
    assert!(mismatch(&e, "matmul (batch = 4, m = 1, k = 1, n = 1)"), "{e}");
    let e = run(&[Request::MatMul { batch: 1, m: 2, k: 2, n: 3 }], &x, &y);
    assert!(mismatch(&e, "n = 3"), "{e}");
    // And matmul material where mul is expected.
    let e = two_party(1, fp, &[], &[Request::MatMul { batch: 1, m: 2, k: 2, n: 1 }], &arr(&[4], vec![0; 4]), |c, s| {
        protocols::mul(c, &s, &s)
    })
    .err()
    .unwrap();
    assert!(
        matches!(&e, MpcError::PreprocessingMismatch { op, found, .. } if op == "mul" && found.starts_with("matmul")),
        "{e}"
    );
    // Shapes: not 3-D, another batch, another inner dimension.
    let req = [Request::MatMul { batch: 1, m: 2, k: 2, n: 2 }];
    for (xs, ys) in [
        (vec![2, 2], vec![1, 2, 2]),
        (vec![1, 2, 2], vec![2, 2]),
        (vec![1, 2, 2], vec![1, 1, 2, 2]),
        (vec![1, 2, 2], vec![2, 2, 2]),
        (vec![1, 2, 2], vec![1, 3, 2]),
        (vec![1, 2, 2, 1], vec![1, 2, 2]),
    ] {
        let x = ArrayD::zeros(IxDyn(&xs));
        let y = ArrayD::zeros(IxDyn(&ys));
        let e = run(&req, &x, &y);
        assert!(matches!(&e, MpcError::ShapeMismatch { op, .. } if op == "matmul"), "{xs:?}·{ys:?}: {e}");
    }
    // Another party's share.
    let e = two_party(1, fp, &[], &req, &x, |ctx: &mut Ctx<MemTransport>, s| {
        protocols::matmul(ctx, &s, &Share::zeros(ctx.party().other(), &[1, 2, 2]))
    })
    .err()
    .unwrap();
    assert!(matches!(e, MpcError::WrongParty { .. }), "{e}");
}

#[test]
fn streamed_matmul_material_is_the_dealt_material() {
    let reqs = plan();
    let (d0, d1) = Dealer::new(11).deal(&reqs).unwrap();
    let stream = Dealer::new(11).stream(reqs.clone(), 1).unwrap();
    assert_eq!(stream.segments(), reqs.len());
    let ((mut p0, mut h0), (mut p1, mut h1)) = stream.start().unwrap();
    let t = std::thread::spawn(move || {
        while let Some(more) = h1.refill().unwrap() {
            p1.extend(more).unwrap();
            h1.resume();
        }
        p1
    });
    while let Some(more) = h0.refill().unwrap() {
        p0.extend(more).unwrap();
        h0.resume();
    }
    let p1 = t.join().unwrap();
    assert_eq!(encoded_items(&p0), encoded_items(&d0));
    assert_eq!(encoded_items(&p1), encoded_items(&d1));
    assert_eq!(stream.stats().offline_bytes, (d0.offline_bytes(), d1.offline_bytes()));
}
