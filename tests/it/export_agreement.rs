//! One model, four evaluators: the trainer (libtorch), the runtime's plaintext interpreter on the
//! exported artifact, onnxruntime on its `model.onnx`, and the secure executor — on the same
//! inputs, for zoo models with random ReLU masks of several densities and every replacement kind.

use std::path::PathBuf;

use masq_exporter::{ExportFacts, ExportOptions, RandomMasks, ReplacementKind, attach_random_masks, export};
use masq_ir::{Graph, report, zoo};
use masq_runtime::plain;
use masq_runtime::secure::{self, SecureConfig};
use masq_trainer::TchModel;
use masq_trainer::model::{to_array, to_tensor};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use tch::Device;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-export-agreement-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Largest |a - b| relative to the largest |b| (at least 1).
fn rel_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter().zip(b.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn input(g: &Graph, batch: usize, seed: u64) -> ArrayD<f32> {
    let shape = g.data_inputs().next().unwrap().shape_at(batch);
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    ArrayD::from_shape_fn(shape, |_| rng.random_range(-1.5f32..1.5))
}

#[test]
fn trainer_runtime_onnxruntime_and_2pc_agree_on_exported_artifacts() {
    // onnxruntime must load (`make setup` provides it) unless MASQ_SKIP_ORT is set, as in the
    // runtime's onnxruntime tests.
    let ort_ok = if std::env::var_os("MASQ_SKIP_ORT").is_some() {
        eprintln!("MASQ_SKIP_ORT set: checking trainer, plain and 2PC only");
        false
    } else {
        masq_runtime::ort_backend::available().expect("onnxruntime loads (run `make setup`)");
        true
    };
    for (model, batch) in [("mnist_cnn", 2), ("resnet20", 1)] {
        for density in [0.0, 0.3, 1.0] {
            for replacement in [ReplacementKind::Identity, ReplacementKind::Poly1, ReplacementKind::Poly2] {
                let what = format!("{model}, density {density}, {replacement:?}");
                let mut g = zoo::build(model, None, 7).unwrap();
                attach_random_masks(&mut g, &RandomMasks { density, replacement, seed: 11 }).unwrap();
                let dir = tmpdir(&format!("{model}-{density}-{replacement:?}"));
                let summary = export(&g, &ExportFacts::new(model), &dir, &ExportOptions::default())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let art = masq_exporter::load_model(dir.to_str().unwrap()).unwrap();
                // ReLU count in the report == ones in the masks.
                let ones: u64 = art.masks.values().map(|m| m.iter().filter(|&&v| v == 1).count() as u64).sum();
                assert_eq!(report::report(&art).unwrap().relu_count, ones, "{what}");
                assert_eq!(summary.relu_count, ones, "{what}");

                let x = input(&g, batch, 3);
                // The trainer evaluates the graph it trained (before export, BN unfolded).
                let tm = TchModel::from_graph(&g, Device::Cpu).unwrap();
                let yt = to_array(&tm.forward(&to_tensor(&x, Device::Cpu), false).unwrap()).unwrap();
                let yp = plain::run_single(&art, x.clone()).unwrap();
                let d = rel_diff(&yt, &yp);
                assert!(d < 1e-5, "{what}: trainer vs runtime plain on the artifact: {d:e}");
                if ort_ok {
                    let name = art.data_inputs().next().unwrap().name.clone();
                    let out =
                        masq_runtime::ort_backend::run_onnx(&dir.join("model.onnx"), &[(name, x.clone())]).unwrap();
                    let d = rel_diff(&out[0].1, &yp);
                    assert!(d < 1e-5, "{what}: onnxruntime vs runtime plain: {d:e}");
                }
                // 2PC, where fixed point with local truncation applies: a fully linear random-weight
                // ResNet-20 (density 0) grows activations to ~1e5, where each truncation is wrong by
                // a large amount with probability ~|x|·2^f/2^63 (see README, limitations).
                let peak = yp.iter().fold(0f32, |m, v| m.max(v.abs()));
                if model == "resnet20" && density == 0.0 && replacement == ReplacementKind::Identity {
                    eprintln!("{what}: 2PC not compared (fully linear random network, output peak {peak})");
                } else {
                    let run = secure::run(&art, &x, &SecureConfig::default()).unwrap();
                    // 16 fractional bits: ~1.5e-5 per encoding and truncation; a chain of 19
                    // polynomial (square) layers compounds that to ~1e-3 of the output's peak.
                    let err = run.report.max_abs_error / peak.max(1.0) as f64;
                    assert!(err < 5e-3, "{what}: 2PC vs plain: {} (output peak {peak})", run.report.max_abs_error);
                }
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
    }
}

#[test]
fn vit_cifar_trainer_runtime_and_onnxruntime_agree() {
    let ort_ok = if std::env::var_os("MASQ_SKIP_ORT").is_some() {
        eprintln!("MASQ_SKIP_ORT set: checking trainer and plain only");
        false
    } else {
        masq_runtime::ort_backend::available().expect("onnxruntime loads (run `make setup`)");
        true
    };
    let mut g = zoo::build("vit_cifar", None, 7).unwrap();
    // Biases, LayerNorm scales and shifts away from their initial 0 and 1, and logits of order 1
    // (the seeded head has std 0.02), so that every parameter shows in the outputs.
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(5);
    for (name, t) in g.initializers.iter_mut() {
        if t.ndim() == 1 && !name.ends_with("sqrt_head_dim") {
            t.mapv_inplace(|v| v + rng.random_range(-0.2f32..0.2));
        }
    }
    g.initializers.get_mut("head.weight").unwrap().mapv_inplace(|v| 50.0 * v);
    let dir = tmpdir("vit_cifar");
    let summary = export(&g, &ExportFacts::new("vit_cifar"), &dir, &ExportOptions::default()).unwrap();
    assert_eq!(summary.relu_count, 0);
    let art = masq_exporter::load_model(dir.to_str().unwrap()).unwrap();
    let x = input(&g, 2, 3);
    let yp = plain::run_single(&art, x.clone()).unwrap();
    assert_eq!(yp.shape(), &[2, 10]);
    let peak = yp.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(peak > 0.5, "logits too small to compare: {peak}");
    let d = rel_diff(&plain::run_single(&g, x.clone()).unwrap(), &yp);
    assert!(d < 1e-5, "runtime plain, graph vs its artifact: {d:e}");
    let tm = TchModel::from_graph(&g, Device::Cpu).unwrap();
    let yt = to_array(&tm.forward(&to_tensor(&x, Device::Cpu), false).unwrap()).unwrap();
    let d = rel_diff(&yt, &yp);
    assert!(d < 1e-5, "trainer vs runtime plain on the artifact: {d:e}");
    if ort_ok {
        let name = art.data_inputs().next().unwrap().name.clone();
        let out = masq_runtime::ort_backend::run_onnx(&dir.join("model.onnx"), &[(name, x.clone())]).unwrap();
        let d = rel_diff(&out[0].1, &yp);
        assert!(d < 1e-5, "onnxruntime vs runtime plain: {d:e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
