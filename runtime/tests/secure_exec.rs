//! Secure evaluation == plaintext (within fixed-point tolerance), and the planner's prediction ==
//! the measured cost, on zoo models and small hand-built graphs.

use masq_runtime::secure::{self, SecureConfig};
use masq_runtime::zoo;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_input(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()).unwrap()
}

/// Runs `g` securely, checks the error against plaintext and prediction == measurement.
fn check(g: &masq_runtime::Graph, x: &ArrayD<f32>, tol: f64) -> secure::SecureReport {
    let cfg = SecureConfig { seed: 3, ..SecureConfig::default() };
    let run = secure::run(g, x, &cfg).unwrap();
    let r = run.report;
    assert!(r.max_abs_error <= tol, "{}: max abs error {} > {tol}", g.name, r.max_abs_error);
    let plan = secure::plan(g, x.shape()[0], &cfg).unwrap();
    assert_eq!(r.measured, plan.total(), "{}: prediction == measurement", g.name);
    assert_eq!(r.predicted, plan.total());
    for (l, p) in r.layers.iter().zip(&plan.nodes) {
        assert_eq!(l.online_bytes_p0_to_p1, p.cost.p0_to_p1, "{} p0->p1", l.name);
        assert_eq!(l.online_bytes_p1_to_p0, p.cost.p1_to_p0, "{} p1->p0", l.name);
        assert_eq!(l.rounds, p.cost.rounds, "{} rounds", l.name);
    }
    r
}

#[test]
fn mnist_cnn_matches_plaintext() {
    let g = zoo::build("mnist_cnn", None, 1).unwrap();
    let r = check(&g, &random_input(&[1, 1, 28, 28], 1), 1e-2);
    assert_eq!(r.output_shape, vec![1, 10]);
    assert!(r.relu_count > 0);
}
