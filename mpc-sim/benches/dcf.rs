//! DCF throughput: batched evaluation (one party, one core) and batched key generation, for the
//! two-word-payload DCF (one-round comparisons) and the one-bit DCF (`bit/`, compact mode).
//!
//! `cargo bench -p masq-mpc --bench dcf` (filter e.g. `-- eval_batch/n63`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use masq_mpc::dcf::{self, AesBackend};
use masq_mpc::share::Party;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

const KEYS: usize = 100_000;

fn inputs(n: u32, rng: &mut ChaCha12Rng) -> (Vec<u64>, Vec<[u64; 2]>, Vec<u64>) {
    let m = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    let alphas = (0..KEYS).map(|_| rng.random::<u64>() & m).collect();
    let betas = (0..KEYS).map(|_| rng.random()).collect();
    let xs = (0..KEYS).map(|_| rng.random::<u64>() & m).collect();
    (alphas, betas, xs)
}

fn eval_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dcf/eval_batch");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.sample_size(20);
    for n in [63u32, 40] {
        let mut rng = ChaCha12Rng::seed_from_u64(n as u64);
        let (alphas, betas, xs) = inputs(n, &mut rng);
        let (_, k1) = dcf::gen_batch(n, &alphas, &betas, &mut rng).expect("gen");
        let mut out = vec![[0u64; 2]; KEYS];
        let (_, b1) = dcf::gen_bit_batch(n, &alphas, &mut rng).expect("gen");
        let mut bits = vec![0u8; KEYS];
        let best = AesBackend::detect();
        // One party with two threads (a party on its own 2-core machine).
        g.bench_function(BenchmarkId::new(format!("n{n}/2threads"), format!("{best:?}")), |bench| {
            bench.iter(|| {
                dcf::eval_batch_threads(best, Party::P1, black_box(&k1), black_box(&xs), &mut out, 2).expect("eval")
            })
        });
        g.bench_function(BenchmarkId::new(format!("bit/n{n}/2threads"), format!("{best:?}")), |bench| {
            bench.iter(|| {
                dcf::bit::eval_bit_batch_threads(best, Party::P1, black_box(&b1), black_box(&xs), &mut bits, 2)
                    .expect("eval")
            })
        });
        for b in AesBackend::ALL.into_iter().filter(|b| b.is_available()) {
            g.bench_function(BenchmarkId::new(format!("n{n}"), format!("{b:?}")), |bench| {
                bench.iter(|| {
                    dcf::eval_batch_with(b, Party::P1, black_box(&k1), black_box(&xs), &mut out).expect("eval")
                })
            });
            g.bench_function(BenchmarkId::new(format!("bit/n{n}"), format!("{b:?}")), |bench| {
                bench.iter(|| {
                    dcf::bit::eval_bit_batch_with(b, Party::P1, black_box(&b1), black_box(&xs), &mut bits)
                        .expect("eval")
                })
            });
        }
    }
    g.finish();
}

fn gen_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dcf/gen_batch");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.sample_size(10);
    for n in [63u32, 40] {
        let mut rng = ChaCha12Rng::seed_from_u64(n as u64);
        let (alphas, betas, _) = inputs(n, &mut rng);
        g.bench_function(BenchmarkId::new(format!("n{n}"), format!("{:?}", AesBackend::detect())), |bench| {
            bench.iter(|| dcf::gen_batch(n, black_box(&alphas), black_box(&betas), &mut rng).expect("gen"))
        });
    }
    g.finish();
}

criterion_group!(benches, eval_batch, gen_batch);
criterion_main!(benches);
