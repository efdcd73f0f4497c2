//! Criterion benches of the online protocols: both parties in one process, one thread each,
//! in-memory transport (bytes and rounds come from `masq bench mpc`, not from here).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use masq_mpc::FixedPoint;
use masq_mpc::bench::{BenchConfig, BenchOp, run};

fn protocols(c: &mut Criterion) {
    let mut g = c.benchmark_group("protocols");
    g.sample_size(10);
    for (op, n, elements) in
        [(BenchOp::Relu, 100_000, 100_000u64), (BenchOp::Square, 100_000, 100_000), (BenchOp::Conv, 32, 64 * 32 * 32)]
    {
        let cfg = BenchConfig {
            op,
            n,
            reps: 1,
            fp: FixedPoint::default(),
            bits: 64,
            mode: Default::default(),
            threads: 1,
            seed: 1,
            layout: Default::default(),
        };
        g.throughput(Throughput::Elements(elements));
        // Each iteration deals fresh material and runs the online phase once; criterion's time
        // therefore includes the dealer. `masq bench mpc` reports online and offline apart.
        g.bench_function(format!("{op}/{n}"), |b| b.iter(|| run(&cfg, |_| {}).expect("bench runs")));
    }
    g.finish();
}

criterion_group!(benches, protocols);
criterion_main!(benches);
