//! Streamed preprocessing and batch chunks (`SecureConfig::material_budget_bytes`): the outputs do
//! not depend on how the material is segmented, prediction == measurement still holds, and a small
//! budget really holds less material at once.

use masq_ir::zoo;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::{ArrayD, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_input(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()).unwrap()
}

fn cfg(budget: u64) -> SecureConfig {
    SecureConfig { seed: 5, material_budget_bytes: budget, ..SecureConfig::default() }
}

fn bits(y: &ArrayD<f32>) -> Vec<u32> {
    y.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn one_request_per_segment_is_bit_exact() {
    let g = zoo::build("resnet20", None, 1).unwrap();
    let x = random_input(&[1, 3, 32, 32], 1);
    let huge = secure::run(&g, &x, &cfg(u64::MAX)).unwrap();
    let tiny = secure::run(&g, &x, &cfg(1)).unwrap();
    let plan = secure::plan(&g, 1, &cfg(1)).unwrap();
    let (h, t) = (&huge.report, &tiny.report);
    assert_eq!(bits(&huge.outputs[0].1), bits(&tiny.outputs[0].1), "segmenting changed the outputs");
    assert_eq!(h.streaming.segments, 1);
    assert_eq!(t.streaming.segments, plan.requests.len(), "budget 1: one request per segment");
    assert!(plan.requests.len() > 3);
    assert_eq!((h.streaming.chunks, t.streaming.chunks), (1, 1));
    for r in [h, t] {
        assert_eq!(r.measured, plan.total(), "prediction == measurement");
        assert!(r.max_abs_error < 1e-2);
        assert_eq!(r.streaming.upfront_material_bytes, h.streaming.peak_material_bytes);
    }
    assert!(
        t.streaming.peak_material_bytes * 10 < h.streaming.peak_material_bytes,
        "peak {} vs {}",
        t.streaming.peak_material_bytes,
        h.streaming.peak_material_bytes
    );
    // Refill time is offline time, reported apart from the online seconds.
    assert!(t.streaming.refill_seconds > 0.0 && h.streaming.refill_seconds == 0.0);
}

#[test]
fn chunks_of_one_image() {
    let g = zoo::build("mnist_cnn", None, 1).unwrap();
    let x = random_input(&[3, 1, 28, 28], 2);
    assert_eq!(secure::chunk_size(&g, 3, &cfg(1)).unwrap(), 1);
    assert_eq!(secure::chunk_size(&g, 3, &cfg(u64::MAX)).unwrap(), 3);
    let tiny = secure::run(&g, &x, &cfg(1)).unwrap();
    let again = secure::run(&g, &x, &cfg(1)).unwrap();
    let whole = secure::run(&g, &x, &cfg(u64::MAX)).unwrap();
    let r = &tiny.report;
    assert_eq!((r.streaming.chunks, r.streaming.chunk_size, r.batch), (3, 1, 3));
    assert_eq!(bits(&tiny.outputs[0].1), bits(&again.outputs[0].1), "same seed, same result");
    assert_eq!(tiny.outputs[0].1.shape(), whole.outputs[0].1.shape());
    assert!(r.max_abs_error < 1e-2, "{}", r.max_abs_error);
    // Chunk 0 is deal 0: exactly the run of image 0 alone.
    let x0 = x.slice_axis(Axis(0), (0..1).into()).to_owned();
    let alone = secure::run(&g, &x0, &cfg(u64::MAX)).unwrap();
    let row0 = tiny.outputs[0].1.slice_axis(Axis(0), (0..1).into()).to_owned();
    assert_eq!(bits(&row0), bits(&alone.outputs[0].1));
    // Chunks run one after the other: the report sums three batch-1 inferences.
    let one = secure::plan(&g, 1, &cfg(1)).unwrap().total();
    assert_eq!(r.predicted, r.measured);
    assert_eq!(r.measured.rounds, 3 * one.rounds);
    assert_eq!(r.measured.online_bytes(), 3 * one.online_bytes());
    assert_eq!(r.measured.offline_bytes(), 3 * one.offline_bytes());
    assert_eq!(r.comparisons_per_batch, whole.report.comparisons_per_batch);
    assert_eq!(r.layers.iter().map(|l| l.rounds).sum::<u64>(), r.rounds);
    assert!(r.streaming.peak_material_bytes * 5 < whole.report.streaming.peak_material_bytes);
    assert_eq!(r.streaming.upfront_material_bytes, whole.report.streaming.upfront_material_bytes);
}

#[test]
fn each_party_alone_gives_the_shared_runs_outputs_and_costs() {
    use masq_mpc::dealer::CmpMode;
    let g = zoo::build("mnist_cnn", None, 1).unwrap();
    let x = random_input(&[2, 1, 28, 28], 4);
    for mode in [CmpMode::OneRound, CmpMode::Compact] {
        // Budget 1: one request per segment and one image per chunk, so the lone runs refill
        // from their own streams and the second chunk replays deal 1.
        let shared = SecureConfig { cmp_mode: mode, ..cfg(1) };
        let own = SecureConfig { layout: secure::Layout::OwnCores, ..shared };
        let (a, b) = (secure::run(&g, &x, &shared).unwrap(), secure::run(&g, &x, &own).unwrap());
        assert_eq!(b.report.streaming.chunks, 2);
        assert_eq!(bits(&a.outputs[0].1), bits(&b.outputs[0].1), "{mode}: the lone runs changed the outputs");
        assert_eq!(a.report.measured, b.report.measured, "{mode}: bytes, rounds and dealer bytes");
        let per_layer = |r: &secure::SecureReport| {
            r.layers.iter().map(|l| (l.online_bytes_p0_to_p1, l.online_bytes_p1_to_p0, l.rounds)).collect::<Vec<_>>()
        };
        assert_eq!(per_layer(&a.report), per_layer(&b.report));
        assert!(b.report.online_seconds > 0.0);
    }
}
