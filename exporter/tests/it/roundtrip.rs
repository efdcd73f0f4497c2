//! Export -> load round trips on zoo models with random masks, cross-checked with the plaintext
//! interpreter, the report, `onnx.checker` and onnxruntime (through the project's Python).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::scratch::scratch;
use masq_exporter::artifact::{MODEL_ONNX, load_artifact};
use masq_exporter::{ExportFacts, ExportOptions, RandomMasks, ReplacementKind, attach_random_masks, export};
use masq_ir::{Graph, report, zoo};
use masq_ir::{Op, Replacement};
use masq_runtime::plain;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The project's Python with onnx and onnxruntime, if set up (`make setup`).
fn python() -> Option<PathBuf> {
    let configured = PathBuf::from(option_env!("MASQ_PYTHON")?);
    // `.masq/python` links to the venv's interpreter; through the link Python may miss the venv,
    // so also try `.masq/venv/bin/python` beside it.
    let mut candidates = vec![configured.clone()];
    if let Some(dir) = configured.parent() {
        candidates.push(dir.join("venv").join("bin").join("python"));
    }
    candidates.into_iter().find(|py| {
        Command::new(py).args(["-c", "import onnx, onnxruntime, numpy"]).output().is_ok_and(|o| o.status.success())
    })
}

fn random_input(g: &Graph, batch: usize, seed: u64) -> ArrayD<f32> {
    let shape = g.data_inputs().next().unwrap().shape_at(batch);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape, (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()).unwrap()
}

fn max_rel_err(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

fn mask_ones(g: &Graph) -> u64 {
    g.masks.values().map(|m| m.iter().filter(|&&v| v == 1).count() as u64).sum()
}

fn sites(g: &Graph) -> Vec<(String, String, bool)> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::MaskedAct(c) => {
                Some((n.name.clone(), c.mask.clone(), matches!(c.replacement, Replacement::Poly { .. })))
            }
            _ => None,
        })
        .collect()
}

struct OrtCase {
    onnx: PathBuf,
    input: PathBuf,
    expected: PathBuf,
}

/// Export one configuration, load it back and compare; returns the onnxruntime case to check.
fn round_trip(root: &Path, model: &str, density: f64, kind: ReplacementKind, fold_bn: bool) -> OrtCase {
    let tag = format!("{model}-{density}-{kind:?}-{fold_bn}");
    let mut g = zoo::build(model, None, 3).unwrap();
    let n_relu = g.nodes.iter().filter(|n| matches!(n.op, Op::Relu)).count();
    let cfg = RandomMasks { density, replacement: kind, seed: 11 };
    assert_eq!(attach_random_masks(&mut g, &cfg).unwrap(), n_relu);
    let dir = root.join(&tag);
    let opts = ExportOptions { fold_bn, ..ExportOptions::default() };
    let summary = export(&g, &ExportFacts::new(model), &dir, &opts).unwrap();

    let (g2, manifest) = load_artifact(&dir).unwrap();
    // Same sites, masks and replacement kinds (poly1 stays a polynomial).
    assert_eq!(sites(&g2), sites(&g), "{tag}");
    for (name, m) in &g.masks {
        assert_eq!(g2.masks.get(name), Some(m), "{tag}: mask {name}");
    }
    let has_bn = g2.nodes.iter().any(|n| matches!(n.op, Op::BatchNorm(_)));
    assert_eq!(has_bn, !fold_bn && model == "resnet20", "{tag}");
    // ReLU counts: report of the loaded graph == ones in the masks == manifest == summary.
    let ones = mask_ones(&g);
    let expected_ones: u64 = g.masks.values().map(|m| (density * m.len() as f64).round() as u64).sum();
    assert_eq!(ones, expected_ones, "{tag}");
    assert_eq!(report::report(&g2).unwrap().relu_count, ones, "{tag}");
    assert_eq!(manifest.relu_count, ones, "{tag}");
    assert_eq!(summary.relu_count, ones, "{tag}");
    assert_eq!(manifest.relu_layers.iter().map(|l| l.relus).sum::<u64>(), ones, "{tag}");
    assert_eq!(masq_exporter::load_model(dir.to_str().unwrap()).unwrap(), g2, "{tag}: load_model(dir)");
    // Plaintext outputs agree.
    let x = random_input(&g, 2, 5);
    let y1 = plain::run_single(&g, x.clone()).unwrap();
    let y2 = plain::run_single(&g2, x.clone()).unwrap();
    assert!(y1.iter().all(|v| v.is_finite()), "{tag}: non-finite outputs");
    let err = max_rel_err(&y2, &y1);
    assert!(err <= 1e-5, "{tag}: plain outputs differ by {err}");
    if !fold_bn {
        assert_eq!(y1, y2, "{tag}: without folding the graphs compute the same thing");
    }
    let input = root.join(format!("{tag}.x.npy"));
    let expected = root.join(format!("{tag}.y.npy"));
    masq_ir::npy::write(&input, &x).unwrap();
    masq_ir::npy::write(&expected, &y1).unwrap();
    OrtCase { onnx: dir.join(MODEL_ONNX), input, expected }
}

#[test]
fn zoo_round_trips_with_random_masks() {
    let root = scratch("roundtrip");
    let mut cases = Vec::new();
    for model in ["mnist_cnn", "resnet20"] {
        for density in [0.0, 0.3, 1.0] {
            for kind in [ReplacementKind::Identity, ReplacementKind::Poly1, ReplacementKind::Poly2] {
                cases.push(round_trip(&root, model, density, kind, true));
            }
        }
    }
    cases.push(round_trip(&root, "resnet20", 0.3, ReplacementKind::Poly2, false));
    cases.push(round_trip(&root, "mnist_cnn", 0.3, ReplacementKind::Poly2, false));

    ort_check(&root, &cases);
    std::fs::remove_dir_all(&root).unwrap();
}

/// Run `onnx.checker` (full check) and onnxruntime on every case through the project's Python.
fn ort_check(root: &Path, cases: &[OrtCase]) {
    let Some(py) = python() else {
        eprintln!("SKIPPED onnx.checker / onnxruntime cross-check: no Python with onnx+onnxruntime (run make setup)");
        return;
    };
    let list: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| serde_json::json!({"onnx": c.onnx, "input": c.input, "expected": c.expected, "tol": 1e-5}))
        .collect();
    let cases_json = root.join("cases.json");
    std::fs::write(&cases_json, serde_json::to_vec(&list).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("it").join("ort_check.py");
    let out = Command::new(&py).arg(&script).arg(&cases_json).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{} ({}):\n{text}", script.display(), py.display());
    assert!(out.status.success(), "onnx checker / onnxruntime:\n{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("ok ")).count(), cases.len(), "{text}");
}

/// A hand-built graph with a masked activation on `[N, C]` values, a polynomial that happens to be
/// `x` (it must stay a polynomial), and ops the zoo does not use.
#[test]
fn rank2_sites_and_more_ops_round_trip() {
    use masq_ir::{ClipConfig, GemmConfig, MaskedActConfig, Node, PadConfig, SliceConfig, SoftmaxConfig, ValueInfo};
    let root = scratch("rank2");
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut t = |shape: &[usize]| {
        let n = shape.iter().product();
        ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(-0.5f32..0.5)).collect()).unwrap()
    };
    let mut g = Graph::new("tiny");
    g.inputs.push(ValueInfo::batched("x", &[6]));
    g.initializers.insert("fc1.weight".into(), t(&[8, 6]));
    g.initializers.insert("fc1.bias".into(), t(&[8]));
    g.initializers.insert("fc2.weight".into(), t(&[5, 11]));
    g.initializers.insert("act.c2".into(), ArrayD::zeros(vec![8]));
    g.initializers.insert("act.c1".into(), ArrayD::ones(vec![8]));
    g.initializers.insert("act.c0".into(), ArrayD::zeros(vec![8]));
    g.masks.insert("act.mask".into(), ArrayD::from_shape_vec(vec![8], vec![1, 0, 1, 1, 0, 0, 1, 0]).unwrap());
    let gemm = |w: &str, b: Option<&str>| Op::Gemm(GemmConfig { weight: w.into(), bias: b.map(String::from) });
    let poly = Replacement::Poly { c2: "act.c2".into(), c1: "act.c1".into(), c0: "act.c0".into() };
    g.nodes = vec![
        Node::new("fc1", gemm("fc1.weight", Some("fc1.bias")), &["x"], &["h"]),
        Node::new(
            "act",
            Op::MaskedAct(MaskedActConfig { mask: "act.mask".into(), replacement: poly, cap: Some(0.2) }),
            &["h"],
            &["a"],
        ),
        Node::new("clip", Op::Clip(ClipConfig { min: None, max: Some(0.3) }), &["a"], &["c"]),
        Node::new("pad", Op::Pad(PadConfig { pads: vec![(0, 0), (1, 2)], value: 0.25 }), &["c"], &["p"]),
        Node::new(
            "slice",
            Op::Slice(SliceConfig { axes: vec![1], starts: vec![0], ends: vec![usize::MAX], steps: vec![1] }),
            &["p"],
            &["s"],
        ),
        Node::new("fc2", gemm("fc2.weight", None), &["s"], &["z"]),
        Node::new("softmax", Op::Softmax(SoftmaxConfig { axis: 1 }), &["z"], &["y"]),
    ];
    g.outputs.push(ValueInfo::new("y", vec![]));
    g.finalize().unwrap();
    let dir = root.join("art");
    export(&g, &ExportFacts::new("tiny"), &dir, &ExportOptions::default()).unwrap();
    let (g2, m) = load_artifact(&dir).unwrap();
    assert_eq!(sites(&g2), vec![("act".to_string(), "act.mask".to_string(), true)]);
    assert_eq!(m.relu_count, 4);
    // A capped (ReLU6-like) site keeps its cap through ONNX.
    let caps: Vec<Option<f32>> =
        g2.nodes.iter().filter_map(|n| if let Op::MaskedAct(c) = &n.op { Some(c.cap) } else { None }).collect();
    assert_eq!(caps, vec![Some(0.2)]);
    for c in ["act.c2", "act.c1", "act.c0"] {
        assert_eq!(g2.initializers[c], g.initializers[c], "{c}");
    }
    let x = random_input(&g, 3, 1);
    let y1 = plain::run_single(&g, x.clone()).unwrap();
    let y2 = plain::run_single(&g2, x.clone()).unwrap();
    assert!(max_rel_err(&y2, &y1) <= 1e-6);
    let case = OrtCase { onnx: dir.join(MODEL_ONNX), input: root.join("x.npy"), expected: root.join("y.npy") };
    masq_ir::npy::write(&case.input, &x).unwrap();
    masq_ir::npy::write(&case.expected, &y1).unwrap();
    ort_check(&root, &[case]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_plain_model_exports_and_records_facts() {
    let root = scratch("facts");
    let g = zoo::build("mnist_cnn", None, 0).unwrap();
    let facts = ExportFacts {
        architecture: "mnist_cnn".into(),
        dataset: Some("mnist".into()),
        classes: (0..10).map(|d| d.to_string()).collect(),
        normalisation: Some(masq_exporter::artifact::Normalisation { mean: vec![0.1307], std: vec![0.3081] }),
        accuracy: Some(0.99),
    };
    let dir = root.join("art");
    let s = export(&g, &facts, &dir, &ExportOptions::default()).unwrap();
    assert_eq!(s.sites, 0);
    assert_eq!(s.relu_count, report::report(&g).unwrap().relu_count);
    let (g2, m) = load_artifact(&dir).unwrap();
    assert_eq!(m.classes.len(), 10);
    assert_eq!(m.accuracy, Some(0.99));
    assert_eq!(m.input.name, "input");
    assert_eq!(m.output.name, "logits");
    assert_eq!(serde_json::to_value(&m.input.shape).unwrap(), serde_json::json!(["batch", 1, 28, 28]));
    assert_eq!(m.created.len(), 20);
    assert!(m.created.ends_with('Z'));
    assert_eq!(g2.inputs[0].name, "input");
    assert_eq!(g2.outputs[0].name, "logits");
    // The manifest's hashes are those of the files.
    for f in &s.files[..2] {
        let bytes = std::fs::read(dir.join(&f.name)).unwrap();
        assert_eq!(masq_ir::atomic::sha256_hex(&bytes), f.sha256);
        assert_eq!(m.files[&f.name].sha256, f.sha256);
    }
    // Every tensor is stored once: model.onnx's f32 and BOOL initializers are external data
    // pointing at the identical bytes inside model.safetensors.
    let onnx = std::fs::read(dir.join(MODEL_ONNX)).unwrap();
    let st = std::fs::read(dir.join(masq_exporter::artifact::MODEL_SAFETENSORS)).unwrap();
    let model = masq_onnx::import::decode(&onnx, &dir.join(MODEL_ONNX)).unwrap();
    let inits = &model.graph.as_ref().unwrap().initializer;
    let weights: Vec<_> = inits.iter().filter(|t| t.data_type == masq_onnx::proto::data_type::FLOAT).collect();
    assert!(!weights.is_empty());
    for t in weights {
        assert_eq!(t.data_location, masq_onnx::external::EXTERNAL, "{}", t.name);
        assert!(t.raw_data.is_empty(), "{}", t.name);
        let r = masq_onnx::external::reference(t, &dir.join(MODEL_ONNX)).unwrap();
        assert_eq!(r.location, "model.safetensors");
        let bytes = masq_onnx::external::slice(t, &r, &st, &dir).unwrap();
        assert_eq!(bytes.len(), 4 * t.dims.iter().product::<i64>() as usize, "{}", t.name);
        if let Some(w) = g2.initializers.get(&t.name) {
            let want: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!(bytes, want.as_slice(), "{}", t.name);
        }
    }
    assert!(onnx.len() < st.len() / 20, "model.onnx holds {} bytes next to {} of tensors", onnx.len(), st.len());
    // A second export without force is refused and leaves the first intact; with force it replaces.
    let err = export(&g, &facts, &dir, &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, masq_exporter::ExportError::Exists { .. }), "{err}");
    let wrong = ExportFacts { classes: vec!["a".into()], ..facts.clone() };
    assert!(export(&g, &wrong, &root.join("x"), &ExportOptions::default()).is_err());
    export(&g, &facts, &dir, &ExportOptions { force: true, ..ExportOptions::default() }).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["art".to_string()], "leftovers in {root:?}");
    std::fs::remove_dir_all(&root).unwrap();
}
