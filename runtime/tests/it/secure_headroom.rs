//! The ring's headroom check (`secure::headroom`): the probe records every value a local
//! truncation shifts, a run whose input is expected to see more than the limit of wrong
//! truncations is refused before dealing (naming the layer and a `--frac-bits` that fits), and
//! at that suggestion the run goes through and matches plaintext.

use masq_ir::*;
use masq_mpc::protocols::trunc::failure_probability;
use masq_runtime::RuntimeError;
use masq_runtime::secure::headroom::MAX_EXPECTED_FAILURES_PER_IMAGE;
use masq_runtime::secure::probe::probe;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::ArrayD;

/// `x [B, 4] → Gemm (weights `w`) → Relu → Gemm → y [B, 2]`.
fn mlp(w: f32) -> Graph {
    let mut g = Graph::new("headroom");
    g.inputs.push(ValueInfo::batched("x", &[4]));
    let w1 = ArrayD::from_shape_vec(vec![8, 4], (0..32).map(|i| w * (((i * 7) % 5) as f32 - 2.0) / 2.0).collect());
    g.initializers.insert("fc1.w".into(), w1.unwrap());
    let w2 = ArrayD::from_shape_vec(vec![2, 8], (0..16).map(|i| ((i % 3) as f32 - 1.0) * 0.5).collect());
    g.initializers.insert("fc2.w".into(), w2.unwrap());
    g.nodes.push(Node::new("fc1", Op::Gemm(GemmConfig { weight: "fc1.w".into(), bias: None }), &["x"], &["h"]));
    g.nodes.push(Node::new("relu", Op::Relu, &["h"], &["r"]));
    g.nodes.push(Node::new("fc2", Op::Gemm(GemmConfig { weight: "fc2.w".into(), bias: None }), &["r"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    g.finalize().unwrap();
    g
}

fn input(batch: usize, v: f32) -> ArrayD<f32> {
    ArrayD::from_shape_vec(vec![batch, 4], (0..batch * 4).map(|i| v * if i % 2 == 0 { 1.0 } else { -0.5 }).collect())
        .unwrap()
}

#[test]
fn the_probe_records_every_truncated_product() {
    let g = mlp(1.0);
    let x = input(3, 1.0);
    let cfg = SecureConfig { frac_bits: 12, ..SecureConfig::default() };
    let plan = secure::plan(&g, 3, &cfg).unwrap();
    let run = probe(&plan, &x).unwrap();
    // fc1's accumulations in the clear: Σ enc(w)·enc(x) at scale 2^24, one per output element.
    let fp = plan.fixed_point;
    let w1 = &g.initializers["fc1.w"];
    let mut sum = 0f64;
    let mut max = 0u64;
    for b in 0..3 {
        for o in 0..8 {
            let acc: i64 =
                (0..4).map(|i| fp.encode(w1[[o, i]] as f64) as i64 * fp.encode(x[[b, i]] as f64) as i64).sum();
            sum += acc.unsigned_abs() as f64;
            max = max.max(acc.unsigned_abs());
        }
    }
    let fc1 = plan.nodes.iter().position(|n| n.name == "fc1").unwrap();
    let t = &run.truncations[fc1];
    assert_eq!(t.count, 24);
    assert_eq!(t.max_abs, max);
    assert_eq!(t.sum_abs, sum);
    assert_eq!(t.expected_failures(), sum * failure_probability(1));
    // The ReLU truncates nothing; fc2 truncates its 6 outputs.
    assert_eq!(run.truncations[plan.nodes.iter().position(|n| n.name == "relu").unwrap()].count, 0);
    assert_eq!(run.truncations[plan.nodes.iter().position(|n| n.name == "fc2").unwrap()].count, 6);
}

#[test]
fn a_ring_too_small_for_the_products_is_refused_naming_the_layer() {
    // Values near 1 at 28 fractional bits: products near 2^56, one in a few hundred wrong.
    let g = mlp(64.0);
    let x = input(2, 0.01);
    let cfg = SecureConfig { frac_bits: 28, ..SecureConfig::default() };
    let err = secure::run(&g, &x, &cfg).unwrap_err();
    let RuntimeError::RingHeadroom { layer, reason, .. } = &err else { panic!("expected RingHeadroom, got {err:?}") };
    assert!(layer == "fc1" || layer == "fc2", "{err}");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains(layer.as_str()) && msg.contains("--frac-bits"), "{msg}");
    // The suggestion fits: the run at that width starts, expects at most the limit and matches.
    let fits: u32 = reason.split("--frac-bits ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(fits < 28, "{reason}");
    let ok = secure::run(&g, &x, &SecureConfig { frac_bits: fits, ..cfg }).unwrap().report;
    assert!(
        ok.expected_truncation_failures / 2.0 <= MAX_EXPECTED_FAILURES_PER_IMAGE,
        "{}",
        ok.expected_truncation_failures
    );
    assert!(ok.expected_truncation_failures > 0.0);
    assert!(
        ok.max_abs_error < 1e-2 * ok.output.iter().fold(1f32, |m, v| m.max(v.abs())) as f64,
        "{}",
        ok.max_abs_error
    );
    let per_layer: f64 = ok.layers.iter().map(|l| l.expected_truncation_failures).sum();
    assert_eq!(per_layer, ok.expected_truncation_failures);
}

#[test]
fn an_ordinary_model_at_the_default_scale_runs() {
    let g = mlp(1.0);
    let r = secure::run(&g, &input(2, 1.0), &SecureConfig::default()).unwrap().report;
    assert!(r.expected_truncation_failures < 1e-6, "{}", r.expected_truncation_failures);
    let fc1 = r.layers.iter().find(|l| l.name == "fc1").unwrap();
    assert!(fc1.truncated_bits > 32 && fc1.truncated_bits < 40, "{}", fc1.truncated_bits);
}
