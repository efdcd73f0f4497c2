//! DCF correctness: exhaustive for small n, boundary-focused random tests for n = 63 and 64,
//! batch vs single evaluation, every AES backend against the portable one, serialisation.

use masq_mpc::dcf::{self, AesBackend, DcfKeyBatch};
use masq_mpc::share::Party;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

fn add2(a: [u64; 2], b: [u64; 2]) -> [u64; 2] {
    [a[0].wrapping_add(b[0]), a[1].wrapping_add(b[1])]
}

fn mask(n: u32) -> u64 {
    if n == 64 { u64::MAX } else { (1u64 << n) - 1 }
}

fn want(alpha: u64, beta: [u64; 2], x: u64, n: u32) -> [u64; 2] {
    if x & mask(n) < alpha & mask(n) { beta } else { [0, 0] }
}

/// Both parties' outputs of one batch evaluation.
type SharePair = (Vec<[u64; 2]>, Vec<[u64; 2]>);

fn backends() -> Vec<AesBackend> {
    AesBackend::ALL.into_iter().filter(|b| b.is_available()).collect()
}

/// Every alpha in [0, 2^n) as one batch, evaluated at every x (one eval_batch call per x).
fn exhaustive(n: u32, backend: AesBackend, seed: u64) {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let alphas: Vec<u64> = (0..1u64 << n).collect();
    let betas: Vec<[u64; 2]> = alphas.iter().map(|_| [rng.next_u64(), rng.next_u64()]).collect();
    let (k0, k1) = dcf::gen_batch_with(backend, n, &alphas, &betas, &mut rng).unwrap();
    let m = alphas.len();
    let (mut y0, mut y1) = (vec![[0u64; 2]; m], vec![[0u64; 2]; m]);
    for x in 0..1u64 << n {
        let xs = vec![x; m];
        dcf::eval_batch_with(backend, Party::P0, &k0, &xs, &mut y0).unwrap();
        dcf::eval_batch_with(backend, Party::P1, &k1, &xs, &mut y1).unwrap();
        for i in 0..m {
            assert_eq!(
                add2(y0[i], y1[i]),
                want(alphas[i], betas[i], x, n),
                "n {n} alpha {} x {x} {backend:?}",
                alphas[i]
            );
        }
    }
}

#[test]
fn exhaustive_n6_to_10_fastest_backend() {
    for n in 6..=10 {
        exhaustive(n, AesBackend::detect(), 100 + n as u64);
    }
}

#[test]
fn exhaustive_n6_to_8_every_backend() {
    for b in backends() {
        for n in 6..=8 {
            exhaustive(n, b, 200 + n as u64);
        }
    }
}

#[test]
fn exhaustive_small_n_edge_payloads() {
    for n in 1..=5 {
        for beta in [[0, 0], [1, 0], [0, 1], [u64::MAX, u64::MAX], [1 << 63, 12345]] {
            let mut rng = ChaCha12Rng::seed_from_u64((n as u64 * 7).wrapping_add(beta[1]));
            for alpha in 0..1u64 << n {
                let (k0, k1) = dcf::gen_key(n, alpha, beta, &mut rng).unwrap();
                for x in 0..1u64 << n {
                    let y = add2(dcf::eval(Party::P0, &k0, x).unwrap(), dcf::eval(Party::P1, &k1, x).unwrap());
                    assert_eq!(y, want(alpha, beta, x, n), "n {n} alpha {alpha} x {x} beta {beta:?}");
                }
            }
        }
    }
}

/// Random and boundary alphas; for each key the xs alpha-1, alpha, alpha+1, 0, 2^n-1, plus a random
/// x and an x with junk above bit n. Checks batch eval on every backend and single eval.
fn boundary(n: u32, seed: u64) {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let m = mask(n);
    let mut alphas = vec![0, 1, 2, m, m - 1, 1u64 << (n - 1), (1u64 << (n - 1)) - 1, (1u64 << (n - 1)) + 1];
    while alphas.len() < 300 {
        alphas.push(rng.next_u64() & m);
    }
    let betas: Vec<[u64; 2]> = alphas.iter().map(|_| [rng.next_u64(), rng.next_u64()]).collect();
    let (k0, k1) = dcf::gen_batch(n, &alphas, &betas, &mut rng).unwrap();
    let junk = if n == 64 { 0 } else { rng.next_u64() & !m };
    let offsets: [fn(u64, u64, u64) -> u64; 8] = [
        |a, _, _| a.wrapping_sub(1),
        |a, _, _| a,
        |a, _, _| a.wrapping_add(1),
        |_, _, _| 0,
        |_, m, _| m,
        |_, _, r| r,
        |a, _, j| a.wrapping_sub(1) | j,
        |a, _, j| a | j,
    ];
    for (oi, off) in offsets.iter().enumerate() {
        let r = rng.next_u64();
        let xs: Vec<u64> = alphas
            .iter()
            .map(|&a| off(a, m, if oi >= 6 { junk } else { r }) & if oi >= 6 { u64::MAX } else { m })
            .collect();
        let len = alphas.len();
        let mut reference: Option<SharePair> = None;
        for b in backends() {
            let (mut y0, mut y1) = (vec![[0; 2]; len], vec![[0; 2]; len]);
            dcf::eval_batch_with(b, Party::P0, &k0, &xs, &mut y0).unwrap();
            dcf::eval_batch_with(b, Party::P1, &k1, &xs, &mut y1).unwrap();
            for i in 0..len {
                assert_eq!(
                    add2(y0[i], y1[i]),
                    want(alphas[i], betas[i], xs[i], n),
                    "n {n} alpha {} x {}",
                    alphas[i],
                    xs[i]
                );
            }
            match &reference {
                None => reference = Some((y0, y1)),
                Some((r0, r1)) => assert!(r0 == &y0 && r1 == &y1, "backend {b:?} differs from portable"),
            }
        }
        let (r0, r1) = reference.unwrap();
        for i in (0..len).step_by(7) {
            assert_eq!(k0.key(i).eval(xs[i]), r0[i]);
            assert_eq!(k1.key(i).eval(xs[i]), r1[i]);
        }
    }
}

#[test]
fn boundaries_n63() {
    boundary(63, 63);
}

#[test]
fn boundaries_n64() {
    boundary(64, 64);
}

#[test]
fn boundaries_other_widths() {
    for n in [2, 11, 16, 31, 32, 33, 40, 62] {
        boundary(n, n as u64);
    }
}

#[test]
fn gen_is_backend_independent() {
    let mut reference = None;
    for b in backends() {
        let mut rng = ChaCha12Rng::seed_from_u64(9);
        let alphas: Vec<u64> = (0..37).map(|_| rng.random()).collect();
        let betas: Vec<[u64; 2]> = (0..37).map(|_| rng.random()).collect();
        let keys = dcf::gen_batch_with(b, 40, &alphas, &betas, &mut rng).unwrap();
        match &reference {
            None => reference = Some(keys),
            Some(r) => assert_eq!(r, &keys, "gen with {b:?} differs"),
        }
    }
}

#[test]
fn batch_matches_single_key_gen() {
    // gen_key draws its randomness exactly as a batch of one does.
    let mut r1 = ChaCha12Rng::seed_from_u64(5);
    let mut r2 = ChaCha12Rng::seed_from_u64(5);
    let (a0, a1) = dcf::gen_key(63, 77, [1, 2], &mut r1).unwrap();
    let (b0, b1) = dcf::gen_batch(63, &[77], &[[1, 2]], &mut r2).unwrap();
    assert_eq!(a0, b0.key(0));
    assert_eq!(a1, b1.key(0));
}

#[test]
fn serialisation_round_trip() {
    let mut rng = ChaCha12Rng::seed_from_u64(11);
    let len = 21;
    let alphas: Vec<u64> = (0..len).map(|_| rng.random()).collect();
    let betas: Vec<[u64; 2]> = (0..len).map(|_| rng.random()).collect();
    let (k0, k1) = dcf::gen_batch(50, &alphas, &betas, &mut rng).unwrap();
    for k in [&k0, &k1] {
        let bytes = k.to_bytes();
        assert_eq!(bytes.len(), k.serialized_bytes());
        assert_eq!(bytes.len(), len * dcf::key_bytes(50));
        let back = DcfKeyBatch::from_bytes(k.party(), 50, len, &bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let xs: Vec<u64> = (0..len).map(|_| rng.random()).collect();
        let (mut y, mut z) = (vec![[0; 2]; len], vec![[0; 2]; len]);
        dcf::eval_batch(k.party(), k, &xs, &mut y).unwrap();
        dcf::eval_batch(k.party(), &back, &xs, &mut z).unwrap();
        assert_eq!(y, z);
    }
    assert!(DcfKeyBatch::from_bytes(Party::P0, 50, len, &k0.to_bytes()[1..]).is_err());
}

#[test]
fn key_bits_look_balanced_whatever_alpha() {
    // Sanity, not a proof: the keys for alpha = 0 and alpha = 2^n - 1 both have about half their
    // bits set (seeds and sCW are 126-bit pseudorandom strings, tCW bits and VCW words uniform).
    for alpha in [0u64, (1 << 40) - 1] {
        let mut rng = ChaCha12Rng::seed_from_u64(alpha);
        let (k0, _) = dcf::gen_batch(40, &[alpha; 64], &[[1, 0]; 64], &mut rng).unwrap();
        let bytes = k0.to_bytes();
        let ones: u64 = bytes.iter().map(|b| b.count_ones() as u64).sum();
        let frac = ones as f64 / (8 * bytes.len()) as f64;
        // Each 16-byte seed and sCW has 2 fixed-zero bits (less 2 packed tCW bits): about 0.49.
        assert!((frac - 0.5).abs() < 0.02, "alpha {alpha}: fraction of ones {frac}");
    }
}
