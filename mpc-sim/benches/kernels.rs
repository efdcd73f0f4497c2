//! Throughput of the u64 GEMM and convolution kernels (elements = multiply-adds), one core.
//!
//! `cargo bench -p masq-mpc --bench kernels`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use masq_mpc::kernel::{Conv2dParams, Kernel, conv2d_with, gemm_bt_with, gemm_with};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

fn random_vec(rng: &mut ChaCha12Rng, len: usize) -> Vec<u64> {
    (0..len).map(|_| rng.random()).collect()
}

fn kernels() -> Vec<Kernel> {
    [Kernel::Avx512, Kernel::Portable].into_iter().filter(|k| k.is_available()).collect()
}

fn bench_gemm(c: &mut Criterion) {
    let mut rng = ChaCha12Rng::seed_from_u64(0);
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    for (m, k, n) in [(512, 512, 512), (64, 576, 1024)] {
        let a = random_vec(&mut rng, m * k);
        let b = random_vec(&mut rng, k * n);
        let mut out = vec![0u64; m * n];
        group.throughput(Throughput::Elements((m * k * n) as u64));
        for kernel in kernels() {
            group.bench_function(format!("{kernel:?}/{m}x{k}x{n}"), |bench| {
                bench.iter(|| gemm_with(kernel, m, k, n, black_box(&a), black_box(&b), &mut out, false).unwrap())
            });
        }
        let bt = random_vec(&mut rng, n * k);
        let kernel = Kernel::best();
        group.bench_function(format!("{kernel:?}/bt/{m}x{k}x{n}"), |bench| {
            bench.iter(|| gemm_bt_with(kernel, m, k, n, black_box(&a), black_box(&bt), &mut out, false).unwrap())
        });
    }
    // Batch-1 fully connected layers (x·Wᵀ): the small-m path.
    for (m, k, n) in [(1, 1024, 1024), (4, 1024, 1024), (8, 1024, 1024)] {
        let a = random_vec(&mut rng, m * k);
        let bt = random_vec(&mut rng, n * k);
        let mut out = vec![0u64; m * n];
        group.throughput(Throughput::Elements((m * k * n) as u64));
        for kernel in kernels() {
            group.bench_function(format!("{kernel:?}/bt/{m}x{k}x{n}"), |bench| {
                bench.iter(|| gemm_bt_with(kernel, m, k, n, black_box(&a), black_box(&bt), &mut out, false).unwrap())
            });
            group.bench_function(format!("{kernel:?}/{m}x{k}x{n}"), |bench| {
                bench.iter(|| gemm_with(kernel, m, k, n, black_box(&a), black_box(&bt), &mut out, false).unwrap())
            });
        }
    }
    group.finish();
}

fn bench_conv(c: &mut Criterion) {
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    let pad1 = Conv2dParams { padding: [1; 4], ..Conv2dParams::default() };
    // (name, input NCHW, weight OIHW, params)
    let cases = [
        ("64x32x32_3x3_o64", (1, 64, 32, 32), (64, 64, 3, 3), pad1),
        ("depthwise_128x32x32_3x3", (1, 128, 32, 32), (128, 1, 3, 3), Conv2dParams { groups: 128, ..pad1 }),
        ("1x1_128x32x32_o128", (1, 128, 32, 32), (128, 128, 1, 1), Conv2dParams::default()),
    ];
    for (name, xs, ws, p) in cases {
        let x = Array4::from_shape_vec(xs, random_vec(&mut rng, xs.0 * xs.1 * xs.2 * xs.3)).unwrap();
        let w = Array4::from_shape_vec(ws, random_vec(&mut rng, ws.0 * ws.1 * ws.2 * ws.3)).unwrap();
        let [ho, wo] = p.output_hw([xs.2, xs.3], [ws.2, ws.3]).unwrap();
        let macs = xs.0 * ws.0 * ho * wo * ws.1 * ws.2 * ws.3;
        group.throughput(Throughput::Elements(macs as u64));
        for kernel in kernels() {
            group.bench_function(format!("{kernel:?}/{name}"), |bench| {
                bench.iter(|| conv2d_with(kernel, black_box(x.view()), black_box(w.view()), &p).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_conv);
criterion_main!(benches);
