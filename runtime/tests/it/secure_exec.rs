//! Secure evaluation == plaintext (within fixed-point tolerance), and the planner's prediction ==
//! the measured cost, on zoo models and small hand-built graphs.

use masq_ir::zoo;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_input(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()).unwrap()
}

/// Runs `g` securely, checks the error against plaintext and prediction == measurement.
fn check(g: &masq_ir::Graph, x: &ArrayD<f32>, tol: f64) -> secure::SecureReport {
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
    assert!(r.per_image.relu_count > 0);
}

#[test]
fn resnet20_batch_1_and_2_match_plaintext() {
    let g = zoo::build("resnet20", None, 2).unwrap();
    let r1 = check(&g, &random_input(&[1, 3, 32, 32], 2), 1e-2);
    let r2 = check(&g, &random_input(&[2, 3, 32, 32], 3), 1e-2);
    assert_eq!(r1.per_image.relu_count, 188_416);
    assert_eq!(r1.comparisons_per_batch, 188_416);
    assert_eq!(r2.per_image.relu_count, 188_416);
    assert_eq!(r2.comparisons_per_batch, 2 * 188_416);
    // A batch shares the rounds; bytes scale with it.
    assert_eq!(r1.rounds, r2.rounds);
    assert!(r2.online_bytes > 2 * r1.online_bytes - 1000);
}

/// A small ONNX model built in code: Conv + BatchNormalization (folded) + Relu + MaxPool +
/// Flatten + Gemm + Softmax (computed by the client).
fn onnx_model() -> Vec<u8> {
    use masq_onnx::proto::*;
    use masq_onnx::tensor::encode_f32;
    use prost::Message;
    let ints = |name: &str, v: &[i64]| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    };
    let int = |name: &str, i: i64| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    };
    let node = |op: &str, ins: &[&str], out: &str, attribute: Vec<AttributeProto>| NodeProto {
        op_type: op.into(),
        name: out.into(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        attribute,
        ..Default::default()
    };
    let value = |name: &str, dims: &[i64]| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| {
                            if d == 0 {
                                Dimension { dim_param: Some("N".into()), ..Default::default() }
                            } else {
                                Dimension { dim_value: Some(d), ..Default::default() }
                            }
                        })
                        .collect(),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = |name: &str, shape: &[usize], lo: f32, hi: f32, seed: u64| {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let a = ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| r.random_range(lo..hi)).collect()).unwrap();
        encode_f32(name, &a)
    };
    let inits = vec![
        t("w", &[4, 2, 3, 3], -0.5, 0.5, 1),
        t("s", &[4], 0.5, 1.5, 2),
        t("b", &[4], -0.2, 0.2, 3),
        t("m", &[4], -0.2, 0.2, 4),
        t("v", &[4], 0.5, 1.5, 5),
        t("fw", &[3, 36], -0.3, 0.3, 6),
        t("fb", &[3], -0.1, 0.1, 7),
    ];
    let nodes = vec![
        node("Conv", &["x", "w"], "conv", vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])]),
        node("BatchNormalization", &["conv", "s", "b", "m", "v"], "bn", vec![]),
        node("Relu", &["bn"], "relu", vec![]),
        node("MaxPool", &["relu"], "pool", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]),
        node("Flatten", &["pool"], "flat", vec![int("axis", 1)]),
        node("Gemm", &["flat", "fw", "fb"], "fc", vec![int("transB", 1)]),
        node("Softmax", &["fc"], "y", vec![int("axis", 1)]),
    ];
    ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(GraphProto {
            name: "small".into(),
            node: nodes,
            initializer: inits,
            input: vec![value("x", &[0, 2, 6, 6])],
            output: vec![value("y", &[])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn imported_onnx_model_matches_plaintext_and_prediction() {
    let g = masq_onnx::import_bytes(&onnx_model(), std::path::Path::new("small.onnx")).unwrap();
    let r = check(&g, &random_input(&[3, 2, 6, 6], 4), 1e-3);
    assert_eq!(r.output_shape, vec![3, 3]);
    // Softmax rows sum to one (computed by the client after the reveal).
    for i in 0..3 {
        let s: f32 = r.output[3 * i..3 * i + 3].iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
}

#[test]
fn onnx_zoo_mnist_8_if_available() {
    let Some(dir) = std::env::var_os("MASQ_MODELS_DIR") else {
        eprintln!("skipping: MASQ_MODELS_DIR is unset (set it to ../shared/models to run this test)");
        return;
    };
    let path = std::path::PathBuf::from(dir).join("onnx-zoo-mnist-8/model.onnx");
    let g = masq_onnx::import_file(&path).unwrap();
    let x = random_input(&[1, 1, 28, 28], 5).mapv(|v| (v + 1.0) * 127.0);
    check(&g, &x, 5e-2);
}

#[test]
fn estimates_masq_exactly_and_others_sanely() {
    use masq_mpc::cost::{Network, Protocol};
    let g = zoo::build("resnet20", None, 0).unwrap();
    let plan = secure::plan(&g, 1, &SecureConfig::default()).unwrap();
    let masq = secure::estimate(&g, Protocol::Masq, &Network::LAN, 1, &Default::default()).unwrap();
    assert_eq!(masq.rounds, plan.total().rounds);
    assert_eq!(masq.online_bytes, plan.total().online_bytes() as f64);
    assert_eq!(masq.per_image.relu_count, 188_416);
    let relu_layers = plan.nodes.iter().filter(|n| n.per_image.relus > 0).count() as u64;
    let linear = plan.layers.len() as u64;
    let crypten = secure::estimate(&g, Protocol::CrypTen, &Network::LAN, 1, &Default::default()).unwrap();
    assert_eq!(crypten.rounds, 9 * relu_layers + linear);
    assert!(crypten.online_bytes > 464.0 * 188_416.0);
    let mut last = 0.0;
    for p in [Protocol::Fss, Protocol::CrypTen, Protocol::Delphi] {
        let e = secure::estimate(&g, p, &Network::WAN, 1, &Default::default()).unwrap();
        assert!(e.online_bytes > masq.online_bytes * 0.9, "{p}");
        assert!(e.est_seconds > 0.0);
        assert!(e.online_bytes >= last, "{p}: FSS < CrypTen < Delphi in bytes");
        last = e.online_bytes;
    }
    let b2 = secure::estimate(&g, Protocol::CryptFlow2L64, &Network::LAN, 2, &Default::default()).unwrap();
    let b1 = secure::estimate(&g, Protocol::CryptFlow2L64, &Network::LAN, 1, &Default::default()).unwrap();
    assert!((b2.online_bytes / b1.online_bytes - 2.0).abs() < 0.01);
}

#[test]
fn compact_comparisons_give_the_same_outputs_with_half_the_dealer_bytes_and_one_round_more_per_layer() {
    use masq_mpc::dealer::CmpMode;
    // ResNet-20 (ReLUs), a MaxPool model and masked activations all run in both modes.
    for (name, shape) in [("resnet20", vec![1, 3, 32, 32]), ("mnist_cnn", vec![1, 1, 28, 28])] {
        let g = zoo::build(name, None, 4).unwrap();
        let x = random_input(&shape, 5);
        let run = |mode| {
            let cfg = SecureConfig { seed: 9, cmp_mode: mode, ..SecureConfig::default() };
            let r = secure::run(&g, &x, &cfg).unwrap();
            let plan = secure::plan(&g, 1, &cfg).unwrap();
            assert_eq!(r.report.measured, plan.total(), "{name} {mode}: prediction == measurement");
            assert!(r.report.max_abs_error < 1e-2, "{name} {mode}: {}", r.report.max_abs_error);
            (r, plan)
        };
        let (one, plan_one) = run(CmpMode::OneRound);
        let (compact, _) = run(CmpMode::Compact);
        // The comparisons are exact in both modes and the dealer's other randomness is the same
        // stream, so the outputs differ only by truncation noise.
        for ((_, a), (_, b)) in one.outputs.iter().zip(&compact.outputs) {
            assert!(a.iter().zip(b).all(|(p, q)| (p - q).abs() < 1e-2), "{name}");
        }
        let comparison_calls = plan_one
            .requests
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    masq_mpc::dealer::Request::Cmp { .. } | masq_mpc::dealer::Request::MaskedAct { relus: 1.., .. }
                )
            })
            .count() as u64;
        assert_eq!(compact.report.rounds, one.report.rounds + comparison_calls, "{name}");
        let (o, c) = (one.report.offline_bytes, compact.report.offline_bytes);
        assert!(2 * c < o + o / 10, "{name}: compact {c} vs one-round {o} dealer bytes");
    }
}
