//! QDQ import: models quantized by onnxruntime's own tool (`quantize_static`, QDQ format, uint8
//! and int8 activations, int8 weights per tensor and per channel; `scripts/qdq_fixtures.py`
//! builds them at test time) against onnxruntime, hand-built QDQ patterns, and malformed or
//! unsupported quantized models (typed errors naming the node or tensor, never a panic).

use std::path::Path;

use crate::common::*;
use crate::qdq_script::{self, max_abs_diff};
use masq_ir::{Graph, IrError, Op, QuantParams};
use masq_onnx::proto::*;
use masq_onnx::tensor::{encode_f32, encode_int};
use masq_runtime::plain;
use ndarray::ArrayD;
use prost::Message;

/// masq's interpreter against onnxruntime with graph optimisations disabled (ONNX's reference
/// semantics: every QuantizeLinear, DequantizeLinear and float op as specified). Both evaluate the
/// same ops in f32; the difference left is the summation order of Conv and Gemm (onnxruntime's
/// im2col + SGEMM with FMA against masq's loops), about 1e-7 relative, which can move a value
/// across a QuantizeLinear rounding boundary and so change an output by a whole quantization step.
/// With the seeded data here no value lands that close to a boundary and the outputs agree to the
/// last bits; the bound says so, leaving room for float rounding only.
const ORT_TOL: f32 = 1e-5;

use crate::ort_backend::model;

fn import(bytes: &[u8]) -> Result<Graph, IrError> {
    masq_onnx::import_bytes(bytes, Path::new("qdq.onnx"))
}

fn scalar(name: &str, v: f32) -> TensorProto {
    encode_f32(name, &ArrayD::from_elem(vec![], v))
}

fn fake_quants(g: &Graph) -> Vec<QuantParams> {
    g.nodes.iter().filter_map(|n| if let Op::FakeQuant(q) = n.op { Some(q) } else { None }).collect()
}

#[test]
fn onnxruntime_quantized_models_import_and_match_onnxruntime() {
    let py = match qdq_script::python() {
        Ok(py) => py,
        Err(why) => {
            eprintln!("skipping: no Python with onnx and onnxruntime ({why}); run make setup");
            return;
        }
    };
    let dir = qdq_script::scratch("ort-tool");
    eprint!("{}", qdq_script::run(&py, &["ort-quantized".as_ref(), "--out".as_ref(), &dir]));
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 4);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let path = |k: &str| std::path::PathBuf::from(c[k].as_str().unwrap());
        let bytes = std::fs::read(path("onnx")).unwrap();
        let onnx = ModelProto::decode(bytes.as_slice()).unwrap();
        let q_nodes = onnx.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type == "QuantizeLinear").count();
        let g = import(&bytes).unwrap_or_else(|e| panic!("{name}: import: {e}"));
        // One FakeQuant per QuantizeLinear of an activation; the weights fold to f32 constants,
        // recorded on their grid when quantized per tensor (Conv, Conv, Gemm).
        assert_eq!(fake_quants(&g).len(), q_nodes, "{name}");
        let per_channel = c["per_channel"].as_bool().unwrap();
        assert_eq!(g.weight_quant.len(), if per_channel { 0 } else { 3 }, "{name}: {:?}", g.weight_quant);
        let unsigned = c["activation_type"] == "quint8";
        for q in fake_quants(&g) {
            assert_eq!((q.qmin, q.qmax), if unsigned { (0, 255) } else { (-128, 127) }, "{name}");
        }
        assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Clip(_))), "{name}");

        let x = masq_ir::npy::read_f32(path("input")).unwrap();
        let got = plain::run_single(&g, x.clone()).unwrap();
        let reference = masq_ir::npy::read_f32(path("ort")).unwrap();
        let optimized = masq_ir::npy::read_f32(path("ort_optimized")).unwrap();
        let (d, d_opt) = (max_abs_diff(&got, &reference), max_abs_diff(&got, &optimized));
        eprintln!("{name}: plain vs onnxruntime max |diff| {d:e} (with its graph optimisations {d_opt:e})");
        assert!(d <= ORT_TOL, "{name}: plain vs onnxruntime {d}\nplain {got:?}\nonnxruntime {reference:?}");

        // Under 2PC. onnxruntime's quantizer drops the ReLU in front of a quantizer whose zero
        // point sits at the bottom of its range and lets the saturation do its work: those
        // quantizers must run as ReLUs on shares (`quant::saturating_clip`), costed as such.
        let floors = fake_quants(&g).iter().filter(|q| masq_ir::quant::saturating_clip(q).is_some()).count();
        assert!(floors > 0, "{name}: the fixture has no quantizer standing in for a ReLU");
        let run = masq_runtime::secure::run(&g, &x, &masq_runtime::secure::SecureConfig::default()).unwrap();
        assert!(run.report.per_image.relu_count > 0, "{name}");
        let ds = max_abs_diff(&run.outputs[0].1, &got);
        let scale = got.iter().fold(0f32, |m, v| m.max(v.abs()));
        eprintln!("{name}: 2PC vs plain max |diff| {ds:e} (max |y| {scale})");
        // The shares skip the rounding (at most half a step per activation), not the floor.
        assert!(ds <= 0.1 * scale.max(1.0), "{name}: 2PC vs plain {ds}");

        // masq's own export of the imported model passes onnx.checker and runs in onnxruntime to
        // the same outputs. (Per-channel grids are no IR fact, so those weights are written as f32
        // constants; onnxruntime's graph optimisations, from the basic level on, then quantize a
        // float weight between a DequantizeLinear input and a QuantizeLinear output themselves
        // (per tensor, int8: its WeightBiasQuantization pass) to fuse a QLinearConv, which changes
        // the weights: that figure is reported, not asserted.)
        let out = dir.join(format!("{name}.masq.onnx"));
        std::fs::write(&out, masq_onnx::export::encode(&g, 17, "").unwrap().encode_to_vec()).unwrap();
        eprint!("{}", qdq_script::run(&py, &["check".as_ref(), "--out".as_ref(), &dir, &out, &path("input")]));
        let y = |suffix: &str| masq_ir::npy::read_f32(dir.join(format!("{name}.masq.{suffix}.npy"))).unwrap();
        let (d, d_opt) = (max_abs_diff(&got, &y("ort")), max_abs_diff(&got, &y("ort_optimized")));
        eprintln!("{name}: re-exported by masq, plain vs onnxruntime max |diff| {d:e} (optimised {d_opt:e})");
        assert!(d <= ORT_TOL, "{name}: re-export {d}");
        if !per_channel {
            assert!(d_opt <= ORT_TOL, "{name}: re-export, optimised onnxruntime {d_opt}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `x -> QuantizeLinear(uint8, zp 128) -> DequantizeLinear -> Clip(-4, clip_max) -> Conv`, the
/// Conv's weight an int8 DequantizeLinear without zero point; the Clip's `doc_string` is `doc`.
fn pattern(clip_max: f32, doc: &str) -> Vec<u8> {
    let w: Vec<i32> = (0..8).map(|i| i * 9 - 40).collect();
    let inits = vec![
        scalar("s", 0.25),
        encode_int("zp", &[], data_type::UINT8, &[128]),
        scalar("lo", -4.0),
        scalar("hi", clip_max),
        encode_int("w_q", &[2, 4, 1, 1], data_type::INT8, &w),
        scalar("w_s", 0.125),
    ];
    let nodes = vec![
        node("QuantizeLinear", "q", &["x", "s", "zp"], &["xq"], vec![]),
        node("DequantizeLinear", "dq", &["xq", "s", "zp"], &["xd"], vec![]),
        NodeProto { doc_string: doc.into(), ..node("Clip", "clip", &["xd", "lo", "hi"], &["xc"], vec![]) },
        node("DequantizeLinear", "w_dq", &["w_q", "w_s"], &["w"], vec![]),
        node("Conv", "conv", &["xc", "w"], &["y"], vec![]),
    ];
    model(13, nodes, inits, &[1, 4, 3, 3])
}

const RANGE: &str = r#"{"masq.fake_quant_range": [112, 160]}"#;

#[test]
fn qdq_pattern_becomes_fake_quant_and_the_exporters_clip_narrows_it() {
    let g = import(&pattern(8.0, RANGE)).unwrap();
    // The annotated Clip to [-4, 8] = [(112 - 128)·0.25, (160 - 128)·0.25] narrows [0, 255] to
    // [112, 160].
    let q = QuantParams { scale: 0.25, zero_point: 128, qmin: 112, qmax: 160 };
    assert_eq!(fake_quants(&g), [q]);
    let names: Vec<(&str, &str)> = g.nodes.iter().map(|n| (n.name.as_str(), n.op.name())).collect();
    assert_eq!(names, [("clip", "FakeQuant"), ("conv", "Conv")]);
    // The int8 weight (default zero point 0) is recorded on its grid.
    let w = &g.nodes[1];
    let Op::Conv(c) = &w.op else { panic!() };
    assert_eq!(g.weight_quant[&c.weight], QuantParams { scale: 0.125, zero_point: 0, qmin: -128, qmax: 127 });
    assert_eq!(g.initializers[&c.weight].iter().next(), Some(&-5.0));
    // Values: rounding half to even, saturation to the narrowed range.
    let x = ArrayD::from_shape_vec(vec![1, 4, 3, 3], (0..36).map(|i| i as f32 * 0.3 - 6.0).collect()).unwrap();
    let y = plain::run_single(&g, x.clone()).unwrap();
    let wv = g.initializers[&c.weight].clone();
    for (i, &v) in y.iter().enumerate() {
        let (o, p) = (i / 9, i % 9);
        let want: f32 = (0..4)
            .map(|k| (x[[0, k, p / 3, p % 3]] / 0.25).round_ties_even().clamp(-16.0, 32.0) * 0.25 * wv[[o, k, 0, 0]])
            .sum();
        assert!((v - want).abs() <= 1e-5, "{i}: {v} vs {want}");
    }
    // A Clip without the annotation (the model's own clamp), one off the grid or one that
    // disagrees with its annotation stays a Clip node.
    let full = QuantParams { scale: 0.25, zero_point: 128, qmin: 0, qmax: 255 };
    for (max, doc) in [(8.0, ""), (8.1, RANGE), (7.75, RANGE)] {
        let g = import(&pattern(max, doc)).unwrap();
        assert_eq!(fake_quants(&g), [full], "{max} {doc}");
        assert!(g.nodes.iter().any(|n| matches!(n.op, Op::Clip(_))), "{max} {doc}");
    }
    let err = import(&pattern(8.0, r#"{"masq.fake_quant_range": "six bits"}"#)).unwrap_err();
    assert!(
        matches!(&err, IrError::BadAttribute { node, attr, .. } if node == "clip" && attr == "doc_string"),
        "{err}"
    );
}

/// Constant DequantizeLinear forms: typed int32_data, uint16, int32 bias, per-axis weights, and a
/// QuantizeLinear -> DequantizeLinear of an f32 weight (torch's fake-quantized export) all fold.
#[test]
fn constant_dequantize_linear_folds() {
    let mut w_typed = encode_int("w_q", &[3, 2], data_type::INT16, &[0; 6]);
    w_typed.raw_data.clear();
    w_typed.int32_data = vec![-300, -30, 0, 7, 1270, 32767];
    let inits = vec![
        w_typed,
        scalar("w_s", 0.5),
        encode_int("w_zp", &[], data_type::INT16, &[-10]),
        encode_int("b_q", &[3], data_type::INT32, &[100, -7, 0]),
        encode_f32("b_s", &ArrayD::from_shape_vec(vec![3], vec![0.5, 0.25, 2.0]).unwrap()),
        encode_f32("w2_f", &random(&[2, 3], 4)),
        scalar("w2_s", 0.0625),
        encode_int("w2_zp", &[], data_type::INT8, &[0]),
    ];
    let nodes = vec![
        node("DequantizeLinear", "w_dq", &["w_q", "w_s", "w_zp"], &["w"], vec![]),
        node("DequantizeLinear", "b_dq", &["b_q", "b_s"], &["b"], vec![attr_i("axis", 0)]),
        node("Gemm", "fc", &["x", "w", "b"], &["h"], vec![attr_i("transB", 1)]),
        node("QuantizeLinear", "w2_q", &["w2_f", "w2_s", "w2_zp"], &["w2_i"], vec![]),
        node("DequantizeLinear", "w2_dq", &["w2_i", "w2_s", "w2_zp"], &["w2"], vec![]),
        node("Gemm", "fc2", &["h", "w2"], &["y"], vec![attr_i("transB", 1)]),
    ];
    let g = import(&model(21, nodes, inits, &[1, 2])).unwrap();
    let weight = |layer: &str| match &g.nodes.iter().find(|n| n.name == layer).unwrap().op {
        Op::Gemm(c) => (c.weight.clone(), c.bias.clone()),
        op => panic!("{op:?}"),
    };
    let (w, b) = weight("fc");
    let wv: Vec<f32> = g.initializers[&w].iter().copied().collect();
    assert_eq!(wv, [-145.0, -10.0, 5.0, 8.5, 640.0, 16388.5]);
    assert_eq!(g.weight_quant[&w], QuantParams { scale: 0.5, zero_point: -10, qmin: -32768, qmax: 32767 });
    let bv: Vec<f32> = g.initializers[&b.unwrap()].iter().copied().collect();
    assert_eq!(bv, [50.0, -1.75, 0.0]);
    let (w2, _) = weight("fc2");
    assert_eq!(g.weight_quant[&w2], QuantParams { scale: 0.0625, zero_point: 0, qmin: -128, qmax: 127 });
    assert!(g.initializers[&w2].iter().all(|v| (v / 0.0625).fract() == 0.0));
    assert_eq!(g.weight_quant.len(), 2, "the bias is not recorded");
}

fn expect_err(bytes: &[u8]) -> IrError {
    match import(bytes) {
        Ok(_) => panic!("imported"),
        Err(e) => e,
    }
}

/// A Conv whose weight is `DequantizeLinear(w_q, scale)` of an int8 `[2, 4, 1, 1]` tensor.
fn dq_weight_model(w_q: TensorProto, scale: f32) -> Vec<u8> {
    let nodes = vec![
        node("DequantizeLinear", "w_dq", &["w_q", "w_s"], &["w"], vec![]),
        node("Conv", "conv", &["x", "w"], &["y"], vec![]),
    ];
    model(13, nodes, vec![w_q, scalar("w_s", scale)], &[1, 4, 3, 3])
}

#[test]
fn malformed_quantized_models_fail_naming_the_node_or_tensor() {
    let w = || encode_int("w_q", &[2, 4, 1, 1], data_type::INT8, &[1, 2, 3, 4, 5, 6, 7, 8]);
    for s in [0.0, -0.5, f32::NAN, f32::INFINITY] {
        let err = expect_err(&dq_weight_model(w(), s));
        assert!(matches!(&err, IrError::MalformedNode { node, .. } if node.contains("w_dq")), "{s}: {err}");
        assert!(err.to_string().contains("x_scale") && err.to_string().contains("finite positive"), "{err}");
    }
    // Data that does not fit the dimensions (raw and typed), values outside the type, and
    // dimensions whose product overflows.
    let mut short = w();
    short.raw_data.truncate(7);
    let mut typed = w();
    typed.raw_data.clear();
    typed.int32_data = vec![1, 2, 3];
    let mut wide = w();
    wide.raw_data.clear();
    wide.int32_data = vec![300; 8];
    let mut huge = w();
    huge.dims = vec![1 << 40, 1 << 40, 1 << 40, 1];
    for (t, what) in
        [(short, "data bytes"), (typed, "values for shape"), (wide, "outside the range of INT8"), (huge, "overflow")]
    {
        let err = expect_err(&dq_weight_model(t, 0.5));
        assert!(
            matches!(&err, IrError::Malformed { reason, .. } if reason.contains("tensor w_q") && reason.contains(what)),
            "{what}: {err}"
        );
    }
    // 4-bit integers and 8-bit floats are refused by type, naming the tensor.
    for (elem, name) in [(22, "INT4"), (17, "FLOAT8E4M3FN")] {
        let t = TensorProto {
            name: "w_q".into(),
            dims: vec![2, 4, 1, 1],
            data_type: elem,
            raw_data: vec![0; 8],
            ..Default::default()
        };
        let err = expect_err(&dq_weight_model(t, 0.5));
        assert!(matches!(&err, IrError::UnsupportedDtype { name: n, dtype } if n == "w_q" && dtype == name), "{err}");
    }
}

/// A two-node model `x -> QuantizeLinear q (scale s, zero point zp) -> next`.
fn q_then(next: Vec<NodeProto>, zp: TensorProto, scale: TensorProto, q_attrs: Vec<AttributeProto>) -> Vec<u8> {
    let mut nodes = vec![node("QuantizeLinear", "q", &["x", "s", "zp"], &["xq"], q_attrs)];
    nodes.extend(next);
    model(21, nodes, vec![scale, zp], &[1, 4, 3, 3])
}

fn config_err(err: &IrError, want_node: &str, words: &[&str]) {
    let IrError::UnsupportedConfig { node, reason, .. } = err else { panic!("{err}") };
    assert_eq!(node, want_node, "{err}");
    for w in words {
        assert!(reason.contains(w), "{w:?} not in: {err}");
    }
}

#[test]
fn unsupported_quantized_models_are_refused_clearly() {
    let s = || scalar("s", 0.5);
    let zp = || encode_int("zp", &[], data_type::INT8, &[0]);
    let dq = || node("DequantizeLinear", "dq", &["xq", "s", "zp"], &["y"], vec![]);
    // QOperator format: the QLinearConv is listed with a hint to use the QDQ format.
    let qconv = node("QLinearConv", "qconv", &["xq", "s", "zp", "w", "s", "zp", "s", "zp"], &["y"], vec![]);
    let err = expect_err(&q_then(vec![qconv], zp(), s(), vec![]));
    assert!(matches!(&err, IrError::UnsupportedOps { nodes } if nodes[0].node == "qconv"), "{err}");
    assert!(err.to_string().contains("QuantFormat.QDQ"), "{err}");
    // The integers read by something else than DequantizeLinear, or as the graph output.
    let relu = node("Relu", "relu", &["xq"], &["y"], vec![]);
    config_err(&expect_err(&q_then(vec![relu], zp(), s(), vec![])), "q", &["Relu node relu", "QDQ"]);
    let mut m = ModelProto::decode(q_then(vec![], zp(), s(), vec![]).as_slice()).unwrap();
    m.graph.as_mut().unwrap().output[0].name = "xq".into();
    config_err(&expect_err(&m.encode_to_vec()), "q", &["graph output"]);
    // DequantizeLinear with other parameters than its QuantizeLinear's: not a fake quantization.
    let other = node("DequantizeLinear", "dq", &["xq", "s2", "zp"], &["y"], vec![]);
    let mut m = ModelProto::decode(q_then(vec![other], zp(), s(), vec![]).as_slice()).unwrap();
    m.graph.as_mut().unwrap().initializer.push(scalar("s2", 0.25));
    config_err(&expect_err(&m.encode_to_vec()), "dq", &["differ", "not a fake quantization"]);
    // Per-channel quantization of an activation.
    let per_axis = encode_f32("s", &ArrayD::from_shape_vec(vec![4], vec![0.5; 4]).unwrap());
    let zp4 = encode_int("zp", &[4], data_type::INT8, &[0; 4]);
    config_err(&expect_err(&q_then(vec![dq()], zp4, per_axis, vec![])), "q", &["per tensor"]);
    // 4-bit output type and a zero point of another type than the integers.
    let no_zp = |attrs| {
        let nodes = vec![
            node("QuantizeLinear", "q", &["x", "s"], &["xq"], attrs),
            node("DequantizeLinear", "dq", &["xq", "s"], &["y"], vec![]),
        ];
        model(21, nodes, vec![scalar("s", 0.5)], &[1, 4])
    };
    config_err(&expect_err(&no_zp(vec![attr_i("output_dtype", 22)])), "q", &["INT4"]);
    let uint8 = encode_int("zp_u", &[], data_type::UINT8, &[3]);
    let mismatched = node("DequantizeLinear", "dq", &["xq", "s", "zp_u"], &["y"], vec![]);
    let mut m = ModelProto::decode(q_then(vec![mismatched], zp(), s(), vec![]).as_slice()).unwrap();
    m.graph.as_mut().unwrap().initializer.push(uint8);
    config_err(&expect_err(&m.encode_to_vec()), "dq", &["UINT8", "INT8"]);
    // A float-8 zero point is refused by type.
    let f8 = TensorProto { name: "zp".into(), data_type: 17, raw_data: vec![0], ..Default::default() };
    let err = expect_err(&q_then(vec![dq()], f8, s(), vec![]));
    assert!(matches!(&err, IrError::UnsupportedDtype { name, .. } if name == "zp"), "{err}");
}
