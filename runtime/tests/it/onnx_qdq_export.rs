//! masq's QDQ export: a quantized cnn_small (quantized weights, a FakeQuant in front of every layer:
//! 8-bit signed, 6-bit signed, 8-bit unsigned and, at opset 21, 12-bit sites) is written as
//! QuantizeLinear -> DequantizeLinear pairs (plus a Clip for a range narrower than its integer
//! type) and integer weights with a DequantizeLinear, imported back to the same IR (node names and
//! ops, FakeQuant parameters, `weight_quant`, bit-identical plaintext outputs), passes
//! `onnx.checker.check_model(full_check=True)` and runs in onnxruntime within 1e-5 of the
//! plaintext interpreter.

use std::collections::{BTreeMap, HashMap};

use crate::common::random;
use crate::qdq_script::{self, max_abs_diff};
use masq_ir::quant::{self, ActRange};
use masq_ir::{Graph, IrError, Op, QuantParams, ValueInfo};
use masq_onnx::proto::{ModelProto, data_type};
use masq_runtime::plain;
use prost::Message;

/// The plaintext interpreter against onnxruntime on the exported file (max |diff|). Both compute
/// the same f32 grid values through the quantizers (the scales are powers of two, so `x / scale`
/// is exact and no rounding tie can come out differently); what remains are the float summation
/// orders of Conv, Gemm, BatchNorm and the average pool.
const ORT_TOL: f32 = 1e-5;

/// cnn_small at 16×16 with weights quantized to `weight_bits` (conv1, conv2, conv3, fc) and a
/// FakeQuant in front of every layer, calibrated on two random batches: conv1's input 8-bit
/// signed, conv2's 6-bit signed (INT8 + Clip), conv3's (after a ReLU) unsigned 8-bit (UINT8) and
/// fc's 8-bit, or 12-bit with `wide` (INT16 + Clip, opset 21).
fn quantized_cnn(weight_bits: &[u32], wide: bool) -> Graph {
    let mut g = masq_ir::zoo::build("cnn_small", Some((16, 16)), 0).unwrap();
    quant::quantize_weights(&mut g, weight_bits).unwrap();
    let sites = quant::act_sites(&g);
    assert_eq!(sites.len(), 4);
    let mut probe = g.clone();
    probe.outputs = sites.iter().map(|s| ValueInfo::new(s.value.clone(), vec![])).collect();
    let mut ranges = vec![ActRange::default(); sites.len()];
    for seed in [1, 2] {
        let outs = plain::run(&probe, HashMap::from([("input".to_string(), random(&[2, 3, 16, 16], seed))])).unwrap();
        for (r, s) in ranges.iter_mut().zip(&sites) {
            r.observe(&outs[&s.value]);
        }
    }
    let mut params = BTreeMap::new();
    for (i, (s, r)) in sites.iter().zip(&ranges).enumerate() {
        let q = match i {
            1 => r.params(6),
            // Unsigned: the step of a signed 9-bit grid, [0, 255].
            2 => QuantParams { zero_point: 0, qmin: 0, qmax: 255, ..r.params(9) },
            3 if wide => r.params(12),
            _ => r.params(8),
        };
        params.insert(s.layer.clone(), q);
    }
    quant::insert_fake_quants(&mut g, &params).unwrap();
    g.finalize().unwrap();
    g
}

/// Layer name -> grid of its weight.
fn weight_grids(g: &Graph) -> BTreeMap<String, QuantParams> {
    quant::layers(g).into_iter().filter_map(|(n, w)| g.weight_quant.get(w).map(|q| (n.name.clone(), *q))).collect()
}

fn count(m: &ModelProto, op: &str) -> usize {
    m.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type == op).count()
}

fn init_type(m: &ModelProto, name: &str) -> Option<i32> {
    m.graph.as_ref().unwrap().initializer.iter().find(|t| t.name == name).map(|t| t.data_type)
}

/// The two export cases: (opset, weight bits, wide site, weights written as integers, Clips).
const CASES: &[(i64, &[u32], bool, usize, usize)] = &[
    // 12-bit conv3 weight: no INT16 before opset 21, so plain f32 (with its grid annotated).
    (17, &[8, 4, 12, 8], false, 3, 1),
    (21, &[8, 4, 12, 8], true, 4, 2),
];

#[test]
fn qdq_export_round_trips_to_the_same_ir() {
    let x = random(&[2, 3, 16, 16], 9);
    for &(opset, bits, wide, int_weights, clips) in CASES {
        let g = quantized_cnn(bits, wide);
        let model = masq_onnx::export::encode(&g, opset, "").unwrap();
        // The QDQ pattern: one Q/DQ pair per site, one DQ per integer weight, a Clip per narrow site.
        assert_eq!(count(&model, "QuantizeLinear"), 4, "opset {opset}");
        assert_eq!(count(&model, "DequantizeLinear"), 4 + int_weights, "opset {opset}");
        assert_eq!(count(&model, "Clip"), clips, "opset {opset}");
        assert_eq!(init_type(&model, "conv1.weight_quantized"), Some(data_type::INT8));
        assert_eq!(init_type(&model, "conv2.weight_quantized"), Some(data_type::INT8), "4-bit weight in INT8");
        assert_eq!(init_type(&model, "fc.weight_quantized"), Some(data_type::INT8));
        assert_eq!(init_type(&model, "conv1.weight"), None, "a DequantizeLinear produces it");
        if opset < 21 {
            assert_eq!(init_type(&model, "conv3.weight"), Some(data_type::FLOAT));
        } else {
            assert_eq!(init_type(&model, "conv3.weight_quantized"), Some(data_type::INT16));
        }
        assert_eq!(init_type(&model, "conv3.act_quant.zero_point"), Some(data_type::UINT8));
        assert_eq!(init_type(&model, "conv2.act_quant.zero_point"), Some(data_type::INT8));
        assert_eq!(
            init_type(&model, "fc.act_quant.zero_point"),
            Some(if wide { data_type::INT16 } else { data_type::INT8 })
        );

        let back = masq_onnx::import_bytes(&model.encode_to_vec(), "qdq.onnx".as_ref()).unwrap();
        let ops = |g: &Graph| g.nodes.iter().map(|n| (n.name.clone(), n.op.name())).collect::<Vec<_>>();
        assert_eq!(ops(&back), ops(&g), "opset {opset}: nodes");
        assert_eq!(quant::fake_quants(&back), quant::fake_quants(&g), "opset {opset}: activation quantizers");
        assert_eq!(weight_grids(&back), weight_grids(&g), "opset {opset}: weight grids");
        assert_eq!(back.weight_quant.len(), 4);
        let (want, got) = (plain::run_single(&g, x.clone()).unwrap(), plain::run_single(&back, x.clone()).unwrap());
        assert_eq!(want, got, "opset {opset}: plaintext outputs");
    }
}

#[test]
fn qdq_export_refuses_what_the_opset_cannot_express() {
    let g = quantized_cnn(&[8], true);
    let err = masq_onnx::export::encode(&g, 20, "").unwrap_err();
    let IrError::CannotExport { node, op, opset, reason } = &err else { panic!("{err}") };
    assert_eq!((node.as_str(), op.as_str(), *opset), ("fc.act_quant", "FakeQuant", 20));
    assert!(reason.contains("INT16") && reason.contains("opset 21"), "{err}");
    // A range no 16-bit type holds.
    let mut g = quantized_cnn(&[8], false);
    let fq = g.nodes.iter_mut().find(|n| n.name == "fc.act_quant").unwrap();
    fq.op = Op::FakeQuant(QuantParams { scale: 1.0, zero_point: 0, qmin: -70000, qmax: 70000 });
    let err = masq_onnx::export::encode(&g, 21, "").unwrap_err();
    assert!(matches!(&err, IrError::CannotExport { node, .. } if node == "fc.act_quant"), "{err}");
    assert!(err.to_string().contains("fits no 8- or 16-bit"), "{err}");
}

#[test]
fn qdq_export_passes_the_checker_and_matches_onnxruntime() {
    if !crate::ort_backend::ort_ready() {
        return;
    }
    let py = match qdq_script::python() {
        Ok(py) => Some(py),
        Err(why) => {
            eprintln!("skipping onnx.checker (no Python with onnx and onnxruntime: {why})");
            None
        }
    };
    let dir = qdq_script::scratch("export");
    let x = random(&[2, 3, 16, 16], 11);
    let input = dir.join("input.npy");
    masq_ir::npy::write(&input, &x).unwrap();
    for &(opset, bits, wide, _, _) in CASES {
        let g = quantized_cnn(bits, wide);
        let path = dir.join(format!("cnn_small_qdq_opset{opset}.onnx"));
        std::fs::write(&path, masq_onnx::export::encode(&g, opset, "").unwrap().encode_to_vec()).unwrap();
        let want = plain::run_single(&g, x.clone()).unwrap();
        // onnxruntime in this process, with its default (all) graph optimisations.
        let outs = masq_runtime::ort_backend::run_onnx(&path, &[("input".to_string(), x.clone())]).unwrap();
        let d = max_abs_diff(&want, &outs[0].1);
        eprintln!("opset {opset}: plain vs onnxruntime (all optimisations): max |diff| {d:e}");
        assert!(d <= ORT_TOL, "opset {opset}: plain vs onnxruntime {d}");
        if let Some(py) = &py {
            // onnx.checker (full), and onnxruntime with graph optimisations off and on.
            eprint!("{}", qdq_script::run(py, &["check".as_ref(), "--out".as_ref(), &dir, &path, &input]));
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            for suffix in ["ort", "ort_optimized"] {
                let y = masq_ir::npy::read_f32(dir.join(format!("{stem}.{suffix}.npy"))).unwrap();
                let d = max_abs_diff(&want, &y);
                eprintln!("opset {opset}: plain vs Python onnxruntime ({suffix}): max |diff| {d:e}");
                assert!(d <= ORT_TOL, "opset {opset}: plain vs {suffix} {d}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
