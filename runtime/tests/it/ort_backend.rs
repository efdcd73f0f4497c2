//! The onnxruntime backend against masq's importer + plaintext interpreter: the ONNX zoo MNIST
//! model (and its reference outputs), and small models built in code from the prost structs.
//!
//! Needs libonnxruntime (`make setup`, or ORT_DYLIB_PATH); the MNIST test also needs
//! MASQ_MODELS_DIR. Each test fails when ONNX Runtime cannot be loaded, except that
//! `MASQ_SKIP_ORT=1` turns that into a skip (for builds without the Python environment).

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use masq_onnx::proto::*;
use masq_onnx::tensor::{encode_f32, encode_i64, read_tensor_file};
use masq_onnx::{import_bytes, import_file};
use masq_runtime::RuntimeError;
use masq_runtime::ort_backend::{OrtSession, available, run_onnx};
use masq_runtime::plain;
use ndarray::ArrayD;
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Whether to run: ONNX Runtime must load unless MASQ_SKIP_ORT=1.
pub(crate) fn ort_ready() -> bool {
    match available() {
        Ok(()) => true,
        Err(e) if std::env::var_os("MASQ_SKIP_ORT").is_some_and(|v| v == "1") => {
            eprintln!("skipping (MASQ_SKIP_ORT=1): {e}");
            false
        }
        Err(e) => panic!("{e}\n(set MASQ_SKIP_ORT=1 to skip the onnxruntime tests)"),
    }
}

/// One input `x`, one output `y` (no declared shape: onnxruntime infers it).
pub(crate) fn model(opset: i64, nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: &[i64]) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        graph: Some(GraphProto {
            name: "test".into(),
            node: nodes,
            initializer: inits,
            input: vec![value("x", Some(input))],
            output: vec![value("y", None)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Largest |a - b| / max(1, |b|), element-wise.
fn max_rel_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f32::max)
}

/// Largest |a - b| relative to the tensor's scale max(1, max |b|): the measure for outputs whose
/// small entries come from cancelling large partial sums.
fn max_scaled_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

/// Write the model to a temporary file (onnxruntime runs files; the error path names them).
fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-ort-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Run `bytes` through onnxruntime and through import + plain on `x`; they must agree within
/// `tol` (relative to max(1, |onnxruntime|)). Returns the onnxruntime output.
fn cross_check(name: &str, bytes: &[u8], x: ArrayD<f32>, tol: f32) -> ArrayD<f32> {
    let path = write_temp(name, bytes);
    let g = import_file(&path).unwrap_or_else(|e| panic!("{name}: import: {e}"));
    let want = run_onnx(&path, &[("x".to_string(), x.clone())]).unwrap_or_else(|e| panic!("{name}: ort: {e}"));
    assert_eq!(want.len(), 1);
    assert_eq!(want[0].0, "y");
    let want = want.into_iter().next().unwrap().1;
    let got = plain::run_single(&g, x).unwrap_or_else(|e| panic!("{name}: plain: {e}"));
    let d = max_rel_diff(&got, &want);
    eprintln!("{name}: shape {:?}, max relative difference {d:e}", want.shape());
    assert!(d <= tol, "{name}: max relative difference {d} > {tol}\nplain {got:?}\nort {want:?}");
    std::fs::remove_file(&path).ok();
    want
}

#[test]
fn mnist8_ort_vs_plain_vs_reference() {
    if !ort_ready() {
        return;
    }
    let Some(dir) = std::env::var_os("MASQ_MODELS_DIR").map(PathBuf::from) else {
        eprintln!("skipping: MASQ_MODELS_DIR is unset (set it to the shared models folder to run this test)");
        return;
    };
    let dir = dir.join("onnx-zoo-mnist-8");
    let path = dir.join("model.onnx");
    let g = import_file(&path).unwrap();
    let mut session = OrtSession::open_with_threads(&path, Some(1)).unwrap();
    assert_eq!(session.input_names(), ["Input3"]);
    assert_eq!(session.output_names(), ["Plus214_Output_0"]);
    for set in 0..3 {
        let x = read_tensor_file(dir.join(format!("test_data_set_{set}/input_0.pb"))).unwrap();
        let reference = read_tensor_file(dir.join(format!("test_data_set_{set}/output_0.pb"))).unwrap();
        let outs = session.run(&[("Input3".to_string(), x.clone())]).unwrap();
        assert_eq!(outs.len(), 1);
        let (name, ort) = &outs[0];
        assert_eq!(name, "Plus214_Output_0");
        let plain = plain::run_single(&g, x).unwrap();
        // Logits reach ~6.6e3 (one f32 ulp is 4.9e-4 there) and smaller ones come from cancelling
        // sums of that size: compare relative to the output's scale, and element-wise more loosely.
        let (d_ort_ref, d_plain_ort) = (max_scaled_diff(ort, &reference), max_scaled_diff(&plain, ort));
        let elementwise = max_rel_diff(&plain, ort);
        eprintln!(
            "set {set}: ort vs reference {d_ort_ref:e}, plain vs ort {d_plain_ort:e} (element-wise {elementwise:e})"
        );
        assert!(d_ort_ref < 1e-5, "set {set}: ort vs output_0.pb {d_ort_ref}");
        assert!(d_plain_ort < 1e-5, "set {set}: plain vs ort {d_plain_ort}");
        assert!(elementwise < 1e-4, "set {set}: plain vs ort element-wise {elementwise}");
    }
}

#[test]
fn small_cnn_with_batch_norm_pools_and_softmax() {
    if !ort_ready() {
        return;
    }
    let c = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut pos = |n: usize| {
        ArrayD::from_shape_vec(vec![n], (0..n).map(|_| rng.random_range(0.5f32..1.5)).collect::<Vec<_>>()).unwrap()
    };
    let inits = vec![
        encode_f32("w1", &random(&[c, 3, 3, 3], 1)),
        encode_f32("b1", &random(&[c], 2)),
        encode_f32("bn_s", &pos(c)),
        encode_f32("bn_b", &random(&[c], 3)),
        encode_f32("bn_m", &random(&[c], 4)),
        encode_f32("bn_v", &pos(c)),
        encode_f32("w2", &random(&[2 * c, c / 2, 3, 3], 5)),
        encode_f32("fc", &random(&[10, 2 * c * 2 * 2], 6)),
        encode_f32("fcb", &random(&[10], 7)),
    ];
    let nodes = vec![
        node("Conv", "conv1", &["x", "w1", "b1"], &["c1"], vec![attr_ints("pads", &[1, 1, 1, 1])]),
        node(
            "BatchNormalization",
            "bn",
            &["c1", "bn_s", "bn_b", "bn_m", "bn_v"],
            &["n1"],
            vec![attr_f("epsilon", 1e-3)],
        ),
        node("Relu", "relu1", &["n1"], &["r1"], vec![]),
        node(
            "MaxPool",
            "mp",
            &["r1"],
            &["p1"],
            vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])],
        ),
        // Grouped, strided, dilated conv with asymmetric padding.
        node(
            "Conv",
            "conv2",
            &["p1", "w2"],
            &["c2"],
            vec![
                attr_i("group", 2),
                attr_ints("strides", &[2, 2]),
                attr_ints("dilations", &[2, 1]),
                attr_ints("pads", &[2, 1, 1, 0]),
            ],
        ),
        node("LeakyRelu", "lrelu", &["c2"], &["r2"], vec![attr_f("alpha", 0.1)]),
        node(
            "AveragePool",
            "ap",
            &["r2"],
            &["p2"],
            vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("pads", &[0, 0, 1, 1]), attr_i("count_include_pad", 1)],
        ),
        node("Flatten", "flat", &["p2"], &["f"], vec![attr_i("axis", 1)]),
        node("Gemm", "fc", &["f", "fc", "fcb"], &["logits"], vec![attr_i("transB", 1), attr_f("alpha", 0.5)]),
        node("Softmax", "sm", &["logits"], &["y"], vec![attr_i("axis", -1)]),
    ];
    let bytes = model(13, nodes, inits, &[0, 3, 8, 8]);
    for batch in [1, 3] {
        let y = cross_check(&format!("small_cnn_b{batch}"), &bytes, random(&[batch, 3, 8, 8], 10 + batch as u64), 1e-5);
        assert_eq!(y.shape(), &[batch, 10]);
    }
}

#[test]
fn data_movement_and_arithmetic() {
    if !ort_ready() {
        return;
    }
    let inits = vec![
        encode_f32("w", &random(&[6, 5], 20)),
        encode_f32("bias", &random(&[5], 21)),
        encode_f32("k", &random(&[1, 4, 1], 22)),
        encode_f32("d", &ArrayD::from_elem(vec![], 4.0f32)),
        encode_f32("lo", &ArrayD::from_elem(vec![], -0.5f32)),
        encode_f32("hi", &ArrayD::from_elem(vec![], 0.75f32)),
        encode_i64("pads", &[0, 1, 0, 0, 2, 1]),
        encode_i64("starts", &[1, 0]),
        encode_i64("ends", &[100, 5]),
        encode_i64("axes", &[1, 2]),
        encode_i64("steps", &[1, 2]),
        encode_i64("shape", &[0, -1]),
    ];
    let nodes = vec![
        // x: [N, 4, 6] -> MatMul with [6, 5] -> [N, 4, 5]
        node("MatMul", "mm", &["x", "w"], &["m"], vec![]),
        node("Add", "add", &["m", "bias"], &["a"], vec![]),
        node("Mul", "mul", &["a", "k"], &["b"], vec![]),
        node("Sub", "sub", &["b", "a"], &["s"], vec![]),
        node("Div", "div", &["s", "d"], &["q"], vec![]),
        node("Clip", "clip", &["q", "lo", "hi"], &["cl"], vec![]),
        node("Transpose", "tr", &["cl"], &["t"], vec![attr_ints("perm", &[0, 2, 1])]),
        node("Concat", "cat", &["t", "t"], &["cat"], vec![attr_i("axis", 2)]),
        node("Pad", "pad", &["cat", "pads"], &["pd"], vec![attr_s("mode", "constant")]),
        node("Slice", "slice", &["pd", "starts", "ends", "axes", "steps"], &["sl"], vec![]),
        node("Reshape", "rs", &["sl", "shape"], &["flat"], vec![]),
        node("LogSoftmax", "lsm", &["flat"], &["y"], vec![attr_i("axis", 1)]),
    ];
    let bytes = model(13, nodes, inits, &[0, 4, 6]);
    for batch in [1, 2] {
        cross_check(&format!("data_movement_b{batch}"), &bytes, random(&[batch, 4, 6], 30 + batch as u64), 1e-5);
    }
}

#[test]
fn masked_activation_pattern() {
    if !ort_ready() {
        return;
    }
    let c = 3;
    let mut rng = ChaCha8Rng::seed_from_u64(40);
    let mask = TensorProto {
        name: "mask".into(),
        dims: vec![1, c as i64, 4, 4],
        data_type: data_type::BOOL,
        int32_data: (0..c * 16).map(|_| rng.random_range(0..2)).collect(),
        ..Default::default()
    };
    let inits = vec![
        mask,
        encode_f32("w", &random(&[c, 2, 3, 3], 41)),
        encode_f32("c2", &ArrayD::from_shape_vec(vec![1, c, 1, 1], vec![0.1, -0.2, 0.3]).unwrap()),
        encode_f32("c1", &ArrayD::from_shape_vec(vec![1, c, 1, 1], vec![0.5, 0.6, 0.7]).unwrap()),
        encode_f32("c0", &ArrayD::from_elem(vec![], 0.25f32)),
    ];
    let nodes = vec![
        node("Conv", "conv", &["x", "w"], &["h"], vec![attr_ints("pads", &[1, 1, 1, 1])]),
        node("Relu", "act/relu", &["h"], &["r"], vec![]),
        node("Mul", "act/sq", &["h", "h"], &["sq"], vec![]),
        node("Mul", "act/m2", &["sq", "c2"], &["t2"], vec![]),
        node("Mul", "act/m1", &["h", "c1"], &["t1"], vec![]),
        node("Add", "act/a1", &["t2", "t1"], &["s1"], vec![]),
        node("Add", "act/a0", &["s1", "c0"], &["g"], vec![]),
        node("Where", "act", &["mask", "r", "g"], &["y"], vec![]),
    ];
    let bytes = model(13, nodes, inits, &[0, 2, 4, 4]);
    let g = import_bytes(&bytes, Path::new("masked.onnx")).unwrap();
    assert_eq!(g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>(), ["Conv", "MaskedAct"]);
    cross_check("masked_act", &bytes, random(&[2, 2, 4, 4], 42), 1e-5);
}

#[test]
fn opset_7_to_11_forms() {
    if !ort_ready() {
        return;
    }
    // Clip and Pad with attributes (opset < 11), Slice with attributes (opset < 10), Softmax over
    // the last axis (opset < 13 flattening rule), Reshape with a constant shape input.
    let nodes = vec![
        node("Clip", "clip", &["x"], &["c"], vec![attr_f("min", -0.3), attr_f("max", 0.4)]),
        node("Pad", "pad", &["c"], &["p"], vec![attr_ints("pads", &[0, 0, 1, 2, 0, 0, 0, 1]), attr_f("value", 0.5)]),
        node(
            "Slice",
            "sl",
            &["p"],
            &["s"],
            vec![attr_ints("starts", &[1, -3]), attr_ints("ends", &[100, 1000]), attr_ints("axes", &[2, 3])],
        ),
        node("Flatten", "fl", &["s"], &["f"], vec![]),
        node("Softmax", "sm", &["f"], &["y"], vec![]),
    ];
    for opset in [7, 9] {
        cross_check(
            &format!("opset{opset}"),
            &model(opset, nodes.clone(), vec![], &[1, 2, 3, 3]),
            random(&[1, 2, 3, 3], 50),
            1e-5,
        );
    }
}

#[test]
fn errors_name_the_file() {
    if !ort_ready() {
        return;
    }
    let missing = Path::new("/nonexistent/masq/model.onnx");
    let err = run_onnx(missing, &[]).unwrap_err();
    assert!(matches!(&err, RuntimeError::Ort { file, .. } if file == missing), "{err}");
    assert!(err.to_string().contains("/nonexistent/masq/model.onnx"), "{err}");

    let garbage = write_temp("garbage", b"this is not a protobuf");
    let err = run_onnx(&garbage, &[]).unwrap_err();
    assert!(err.to_string().contains("garbage.onnx"), "{err}");

    // A model input that is not given, and a name the model does not have.
    let good = write_temp("relu", &model(13, vec![node("Relu", "r", &["x"], &["y"], vec![])], vec![], &[1, 4]));
    let err = run_onnx(&good, &[]).unwrap_err();
    assert!(matches!(&err, RuntimeError::Model(masq_ir::IrError::NotFound { name, .. }) if name == "x"), "{err}");
    let x = ArrayD::<f32>::zeros(vec![1, 4]);
    let err = run_onnx(&good, &[("x".into(), x.clone()), ("z".into(), x)]).unwrap_err();
    assert!(matches!(&err, RuntimeError::Model(masq_ir::IrError::NotFound { name, .. }) if name == "z"), "{err}");
    // A wrong input shape is onnxruntime's error, with the file.
    let err = run_onnx(&good, &[("x".into(), ArrayD::zeros(vec![2, 3]))]).unwrap_err();
    assert!(matches!(&err, RuntimeError::Ort { file, .. } if file == &good), "{err}");
    let ok = run_onnx(&good, &[("x".into(), random(&[1, 4], 60))]).unwrap();
    assert!(ok[0].1.iter().all(|&v| v >= 0.0));
}

#[test]
fn gemm_matrix_bias_and_large_logits() {
    if !ort_ready() {
        return;
    }
    // A matrix C ([M, N], not a per-output bias) becomes Gemm + Add; LogSoftmax of logits near
    // 1e4 must keep its precision.
    let inits = vec![
        encode_f32("b", &random(&[5, 4], 70)),
        encode_f32("c", &random(&[3, 4], 71)),
        encode_f32("big", &ArrayD::from_elem(vec![], 1.0e4f32)),
    ];
    let nodes = vec![
        node("Gemm", "fc", &["x", "b", "c"], &["g"], vec![attr_f("beta", 0.5)]),
        node("Add", "shift", &["g", "big"], &["s"], vec![]),
        node("LogSoftmax", "lsm", &["s"], &["y"], vec![attr_i("axis", 1)]),
    ];
    let bytes = model(13, nodes, inits, &[3, 5]);
    let g = import_bytes(&bytes, Path::new("gemm.onnx")).unwrap();
    assert_eq!(g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>(), ["Gemm", "Add", "Add", "LogSoftmax"]);
    let x = random(&[3, 5], 72);
    let mut session = OrtSession::from_bytes(&bytes, Path::new("gemm.onnx")).unwrap();
    assert_eq!(session.input_names(), ["x"]);
    let want = session.run(&[("x".to_string(), x.clone())]).unwrap().remove(0).1;
    let got = plain::run_single(&g, x).unwrap();
    let d = max_rel_diff(&got, &want);
    assert!(d < 1e-5, "max relative difference {d}\n{got:?}\n{want:?}");
}
