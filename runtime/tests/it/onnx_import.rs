//! ONNX import on small models built in code: opset differences, torch's shape chains, the masked
//! activation pattern and malformed files.

use crate::common;

use std::path::Path;

use common::*;
use masq_ir::IrError;
use masq_ir::report::report;
use masq_ir::{Dim, Op, Replacement};
use masq_onnx::proto::*;
use masq_onnx::tensor::{encode_f32, encode_i64};
use masq_onnx::{import_bytes, import_file};
use masq_runtime::plain;
use ndarray::{ArrayD, Axis};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model(opset: i64, nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: &[i64], output: &str) -> Vec<u8> {
    ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        graph: Some(GraphProto {
            name: "test".into(),
            node: nodes,
            initializer: inits,
            input: vec![value("x", Some(input))],
            output: vec![value(output, Some(&[]))],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn import(bytes: &[u8]) -> Result<masq_ir::Graph, IrError> {
    import_bytes(bytes, Path::new("test.onnx"))
}

#[test]
fn torch_flatten_chain_keeps_a_symbolic_batch() {
    let w = random(&[4, 2, 3, 3], 1);
    let fc = random(&[5, 4 * 4 * 4], 2);
    let nodes = vec![
        node(
            "Conv",
            "conv",
            &["x", "w"],
            &["c"],
            vec![attr_ints("pads", &[1, 1, 1, 1]), attr_ints("kernel_shape", &[3, 3])],
        ),
        node("Relu", "relu", &["c"], &["r"], vec![]),
        node("Shape", "shape", &["r"], &["s"], vec![]),
        node("Constant", "zero", &[], &["i0"], vec![attr_t("value", encode_i64("", &[0]))]),
        node("Gather", "gather", &["s", "i0"], &["n"], vec![attr_i("axis", 0)]),
        node("Constant", "minus1", &[], &["m1"], vec![attr_t("value", encode_i64("", &[-1]))]),
        node("Concat", "cat", &["n", "m1"], &["target"], vec![attr_i("axis", 0)]),
        node("Reshape", "flat", &["r", "target"], &["f"], vec![]),
        node("Gemm", "fc", &["f", "fcw"], &["y"], vec![attr_i("transB", 1)]),
    ];
    let bytes = model(13, nodes, vec![encode_f32("w", &w), encode_f32("fcw", &fc)], &[0, 2, 4, 4], "y");
    let g = import(&bytes).unwrap();
    assert!(g.supports_batch());
    assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(5)]);
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Conv", "Relu", "Reshape", "Gemm"]);
    let x = random(&[3, 2, 4, 4], 3);
    let y = plain::run_single(&g, x.clone()).unwrap();
    assert_eq!(y.shape(), &[3, 5]);
    // Reference: direct convolution, ReLU, then the dot product.
    for b in 0..3 {
        let mut feat = vec![0.0f32; 64];
        for o in 0..4 {
            for i in 0..4 {
                for j in 0..4 {
                    let mut acc = 0.0;
                    for c in 0..2 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (yy, xx) = (i as isize + ky as isize - 1, j as isize + kx as isize - 1);
                                if (0..4).contains(&yy) && (0..4).contains(&xx) {
                                    acc += w[[o, c, ky, kx]] * x[[b, c, yy as usize, xx as usize]];
                                }
                            }
                        }
                    }
                    feat[o * 16 + i * 4 + j] = acc.max(0.0);
                }
            }
        }
        for k in 0..5 {
            let want: f32 = (0..64).map(|i| fc[[k, i]] * feat[i]).sum();
            assert!((y[[b, k]] - want).abs() < 1e-4, "{} vs {want}", y[[b, k]]);
        }
    }
}

fn run_pair(a: Vec<u8>, b: Vec<u8>, shape: &[usize]) {
    let (ga, gb) = (import(&a).unwrap(), import(&b).unwrap());
    let x = random(shape, 9);
    let (ya, yb) = (plain::run_single(&ga, x.clone()).unwrap(), plain::run_single(&gb, x).unwrap());
    assert_eq!(ya, yb);
}

#[test]
fn clip_pad_slice_across_opsets() {
    let clip7 = model(
        7,
        vec![node("Clip", "clip", &["x"], &["y"], vec![attr_f("min", -0.2), attr_f("max", 0.3)])],
        vec![],
        &[1, 2, 3, 3],
        "y",
    );
    let clip13 = model(
        13,
        vec![node("Clip", "clip", &["x", "lo", "hi"], &["y"], vec![])],
        vec![encode_f32("lo", &ArrayD::from_elem(vec![], -0.2)), encode_f32("hi", &ArrayD::from_elem(vec![], 0.3))],
        &[1, 2, 3, 3],
        "y",
    );
    run_pair(clip7.clone(), clip13, &[1, 2, 3, 3]);
    let g = import(&clip7).unwrap();
    let y = plain::run_single(&g, random(&[1, 2, 3, 3], 4)).unwrap();
    assert!(y.iter().all(|&v| (-0.2..=0.3).contains(&v)));

    let pads = [0i64, 1, 0, 0, 0, 1, 2, 1];
    let pad7 = model(
        7,
        vec![node("Pad", "pad", &["x"], &["y"], vec![attr_ints("pads", &pads), attr_f("value", 0.5)])],
        vec![],
        &[1, 2, 3, 3],
        "y",
    );
    let pad13 = model(
        13,
        vec![node("Pad", "pad", &["x", "p", "v"], &["y"], vec![])],
        vec![encode_i64("p", &pads), encode_f32("v", &ArrayD::from_elem(vec![], 0.5))],
        &[1, 2, 3, 3],
        "y",
    );
    run_pair(pad7.clone(), pad13, &[1, 2, 3, 3]);
    let y = plain::run_single(&import(&pad7).unwrap(), random(&[1, 2, 3, 3], 5)).unwrap();
    assert_eq!(y.shape(), &[1, 4, 5, 4]);
    assert_eq!(y[[0, 0, 0, 0]], 0.5);

    let slice9 = model(
        9,
        vec![node(
            "Slice",
            "sl",
            &["x"],
            &["y"],
            vec![attr_ints("starts", &[1, 0]), attr_ints("ends", &[100, -1]), attr_ints("axes", &[2, 3])],
        )],
        vec![],
        &[1, 2, 4, 4],
        "y",
    );
    let slice13 = model(
        13,
        vec![node("Slice", "sl", &["x", "s", "e", "a", "st"], &["y"], vec![])],
        vec![
            encode_i64("s", &[1, 0]),
            encode_i64("e", &[100, -1]),
            encode_i64("a", &[2, 3]),
            encode_i64("st", &[1, 1]),
        ],
        &[1, 2, 4, 4],
        "y",
    );
    run_pair(slice9.clone(), slice13, &[1, 2, 4, 4]);
    let g = import(&slice9).unwrap();
    let x = random(&[1, 2, 4, 4], 6);
    let y = plain::run_single(&g, x.clone()).unwrap();
    assert_eq!(y.shape(), &[1, 2, 3, 3]);
    assert_eq!(y[[0, 1, 0, 2]], x[[0, 1, 1, 2]]);
}

#[test]
fn where_relu_poly_becomes_masked_act() {
    let c = 3;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mask: Vec<i32> = (0..c * 4 * 4).map(|_| rng.random_range(0..2)).collect();
    let ones = mask.iter().filter(|&&m| m == 1).count() as u64;
    let mask_t = TensorProto {
        name: "mask".into(),
        dims: vec![1, c as i64, 4, 4],
        data_type: 9,
        int32_data: mask.clone(),
        ..Default::default()
    };
    let c2 = ArrayD::from_shape_vec(vec![1, c, 1, 1], vec![0.1, 0.2, 0.3]).unwrap();
    let c1 = ArrayD::from_shape_vec(vec![1, c, 1, 1], vec![0.5, 0.6, 0.7]).unwrap();
    let c0 = ArrayD::from_elem(vec![], 0.25f32);
    // g(x) = (x*x)*c2 + x*c1 + c0, as an exporter writes it.
    let nodes = vec![
        node("Relu", "act/relu", &["x"], &["r"], vec![]),
        node("Mul", "act/sq", &["x", "x"], &["sq"], vec![]),
        node("Mul", "act/m2", &["sq", "c2"], &["t2"], vec![]),
        node("Mul", "act/m1", &["x", "c1"], &["t1"], vec![]),
        node("Add", "act/a1", &["t2", "t1"], &["s1"], vec![]),
        node("Add", "act/a0", &["s1", "c0"], &["g"], vec![]),
        node("Where", "act", &["mask", "r", "g"], &["y"], vec![]),
    ];
    let inits = vec![mask_t, encode_f32("c2", &c2), encode_f32("c1", &c1), encode_f32("c0", &c0)];
    let g = import(&model(13, nodes, inits, &[0, c as i64, 4, 4], "y")).unwrap();
    assert_eq!(g.nodes.len(), 1, "relu and polynomial branches are pruned: {:?}", g.nodes);
    let Op::MaskedAct(cfg) = &g.nodes[0].op else { panic!("expected MaskedAct, got {:?}", g.nodes[0].op) };
    let Replacement::Poly { c2: n2, .. } = &cfg.replacement else { panic!("expected a polynomial") };
    assert_eq!(g.initializers[n2].as_slice().unwrap(), &[0.1, 0.2, 0.3]);
    assert_eq!(report(&g).unwrap().relu_count, ones);
    let x = random(&[2, c, 4, 4], 12);
    let y = plain::run_single(&g, x.clone()).unwrap();
    for ((idx, &v), &out) in x.indexed_iter().zip(y.iter()) {
        let ch = idx[1];
        let m = mask[(ch * 4 + idx[2]) * 4 + idx[3]];
        let want = if m == 1 {
            v.max(0.0)
        } else {
            c2.as_slice().unwrap()[ch] * v * v + c1.as_slice().unwrap()[ch] * v + 0.25
        };
        assert!((out - want).abs() < 1e-6);
    }
    // Identity replacement: Where(mask, Relu(x), x).
    let nodes =
        vec![node("Relu", "r", &["x"], &["r"], vec![]), node("Where", "act", &["mask", "r", "x"], &["y"], vec![])];
    let mask_t = TensorProto {
        name: "mask".into(),
        dims: vec![c as i64, 4, 4],
        data_type: 9,
        int32_data: mask,
        ..Default::default()
    };
    let g = import(&model(13, nodes, vec![mask_t], &[1, c as i64, 4, 4], "y")).unwrap();
    assert!(matches!(&g.nodes[0].op, Op::MaskedAct(m) if m.replacement == Replacement::Identity));
    let y = plain::run_single(&g, x.index_axis(Axis(0), 0).insert_axis(Axis(0)).to_owned()).unwrap();
    assert_eq!(y.shape(), &[1, c, 4, 4]);
}

#[test]
fn batchnorm_pool_softmax() {
    let c = 2;
    let inits = vec![
        encode_f32("s", &ArrayD::from_shape_vec(vec![c], vec![1.5, 0.5]).unwrap()),
        encode_f32("b", &ArrayD::from_shape_vec(vec![c], vec![0.1, -0.1]).unwrap()),
        encode_f32("m", &ArrayD::from_shape_vec(vec![c], vec![0.2, 0.0]).unwrap()),
        encode_f32("v", &ArrayD::from_shape_vec(vec![c], vec![4.0, 1.0]).unwrap()),
    ];
    let nodes = vec![
        node("BatchNormalization", "bn", &["x", "s", "b", "m", "v"], &["n"], vec![attr_f("epsilon", 0.0)]),
        node(
            "AveragePool",
            "ap",
            &["n"],
            &["a"],
            vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])],
        ),
        node("MaxPool", "mp", &["a"], &["p"], vec![attr_ints("kernel_shape", &[2, 2])]),
        node("GlobalAveragePool", "gap", &["p"], &["q"], vec![]),
        node("Flatten", "fl", &["q"], &["f"], vec![attr_i("axis", 1)]),
        node("Softmax", "sm", &["f"], &["y"], vec![attr_i("axis", 1)]),
    ];
    let g = import(&model(11, nodes, inits, &[0, c as i64, 6, 6], "y")).unwrap();
    let x = ArrayD::from_elem(vec![2, c, 6, 6], 1.0f32);
    let y = plain::run_single(&g, x).unwrap();
    // Constant input: per channel 1.5*(1-0.2)/2+0.1 = 0.7 and 0.5*1-0.1 = 0.4.
    let (e0, e1) = (0.7f32.exp(), 0.4f32.exp());
    assert!((y[[1, 0]] - e0 / (e0 + e1)).abs() < 1e-6, "{y:?}");
    let r = report(&g).unwrap();
    assert_eq!(r.maxpool_comparisons, (c * 2 * 2 * 3) as u64);
}

#[test]
fn every_unsupported_op_is_listed() {
    let nodes = vec![
        node("Relu", "ok", &["x"], &["a"], vec![]),
        node("Resize", "up1", &["a"], &["b"], vec![]),
        node("Relu", "ok2", &["b"], &["c"], vec![]),
        node("NonMaxSuppression", "nms", &["c"], &["y"], vec![]),
    ];
    let err = import(&model(13, nodes, vec![], &[1, 4], "y")).unwrap_err();
    let IrError::UnsupportedOps { nodes } = &err else { panic!("{err}") };
    let names: Vec<(&str, &str, i64)> = nodes.iter().map(|n| (n.node.as_str(), n.op_type.as_str(), n.opset)).collect();
    assert_eq!(names, [("up1", "Resize", 13), ("nms", "NonMaxSuppression", 13)]);
    assert!(err.to_string().contains("up1") && err.to_string().contains("nms"));
}

/// A ConvNeXt-sized failure (87 nodes of 5 op types) is 5 short lines: per op type the count, the
/// first few node names, and a hint.
#[test]
fn unsupported_ops_are_grouped_by_type_with_hints() {
    let mut nodes = Vec::new();
    let mut add = |op: &str, domain: &str, count: usize, input: &str| {
        for i in 0..count {
            let mut n = node(op, &format!("/stages/stage.{i}/block/{op}"), &[input], &[&format!("{op}{i}")], vec![]);
            n.domain = domain.into();
            nodes.push(n);
        }
    };
    add("Resize", "", 20, "x");
    add("FusedConv", "com.microsoft", 30, "x");
    add("Mod", "", 16, "x"); // a fold-only op on the (computed) input
    add("Loop", "", 1, "x");
    add("NonZero", "", 20, "x");
    let mut m = ModelProto::decode(model(17, nodes, vec![], &[1, 4], "Resize0").as_slice()).unwrap();
    m.opset_import.push(OperatorSetIdProto { domain: "com.microsoft".into(), version: 1 });
    let err = import(&m.encode_to_vec()).unwrap_err();
    let IrError::UnsupportedOps { nodes } = &err else { panic!("{err}") };
    assert_eq!(nodes.len(), 87);
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(text.len() < 1500, "{} bytes:\n{text}", text.len());
    assert!(lines.iter().all(|l| l.starts_with("unsupported ONNX op ")), "{text}");
    assert!(lines[0].contains("ai.onnx::Resize (opset 17), 20 nodes") && lines[0].contains("and 15 more"), "{text}");
    assert!(lines[0].contains("/stages/stage.0/block/Resize") && lines[0].contains("not supported yet"), "{text}");
    assert!(lines[1].contains("com.microsoft::FusedConv (opset 1), 30 nodes"), "{text}");
    assert!(lines[1].contains("re-export without onnxruntime-specific fusions"), "{text}");
    assert!(lines[2].contains("Mod") && lines[2].contains("only supported when its inputs are constants"), "{text}");
    assert!(lines[3].contains("Loop (opset 17), 1 node: ") && lines[3].contains("control flow"), "{text}");
    assert!(lines[3].contains("dynamo=True"), "{text}");
    assert!(lines[4].contains("NonZero") && lines[4].contains("and 15 more") && lines[4].contains("data-dependent"));
}

/// Sigmoid, HardSigmoid, HardSwish, Tanh, Erf, Gelu, Exp, Sqrt, Reciprocal, Pow, Neg and a float
/// Cast on activations become IR ops; on constants they fold.
#[test]
fn smooth_activations_and_pow_on_activations() {
    let unary = |op: &str, attrs: Vec<AttributeProto>, opset: i64| {
        let g = import(&model(opset, vec![node(op, "n", &["x"], &["y"], attrs)], vec![], &[0, 6], "y")).unwrap();
        let x = ArrayD::from_shape_vec(vec![2, 6], vec![-3.0, -1.5, -0.2, 0.0, 0.7, 2.5, 4.0, 0.1, 0.5, 1.0, 3.0, 9.0])
            .unwrap();
        assert!(g.supports_batch());
        (g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>(), x.clone(), plain::run_single(&g, x).unwrap())
    };
    let close =
        |a: f32, b: f64, what: &str| assert!((a as f64 - b).abs() < 1e-6 * (1.0 + b.abs()), "{what}: {a} vs {b}");
    let (ops, x, y) = unary("HardSigmoid", vec![attr_f("alpha", 0.25)], 13);
    assert_eq!(ops, ["HardSigmoid"]);
    for (&a, &b) in x.iter().zip(y.iter()) {
        close(b, (0.25 * a as f64 + 0.5).clamp(0.0, 1.0), "HardSigmoid");
    }
    let (ops, x, y) = unary("HardSwish", vec![], 14);
    assert_eq!(ops, ["HardSwish"]);
    for (&a, &b) in x.iter().zip(y.iter()) {
        close(b, a as f64 * (a as f64 / 6.0 + 0.5).clamp(0.0, 1.0), "HardSwish");
    }
    let (ops, x, y) = unary("Gelu", vec![attr_s("approximate", "tanh")], 20);
    assert_eq!(ops, ["Gelu"]);
    let k = (2.0 / std::f64::consts::PI).sqrt();
    for (&a, &b) in x.iter().zip(y.iter()) {
        let a = a as f64;
        close(b, 0.5 * a * (1.0 + (k * (a + 0.044715 * a * a * a)).tanh()), "Gelu");
    }
    for (op, f) in [
        ("Sigmoid", (|v: f64| 1.0 / (1.0 + (-v).exp())) as fn(f64) -> f64),
        ("Tanh", f64::tanh),
        ("Exp", f64::exp),
        ("Sqrt", f64::sqrt),
        ("Reciprocal", |v| 1.0 / v),
        ("Neg", |v| -v),
    ] {
        let (ops, x, y) = unary(op, vec![], 13);
        assert_eq!(ops.len(), 1, "{op}: {ops:?}");
        for (&a, &b) in x.iter().zip(y.iter()) {
            let want = f(a as f64);
            assert!(
                b as f64 == want || b.is_nan() && want.is_nan() || (b as f64 - want).abs() < 1e-6 * (1.0 + want.abs()),
                "{op}: {b} vs {want}"
            );
        }
    }
    let (ops, _, y) = unary("Erf", vec![], 13);
    assert_eq!(ops, ["Erf"]);
    assert!((y[[0, 4]] - 0.677_801_2).abs() < 1e-6, "erf(0.7) = {}", y[[0, 4]]);
    let (ops, x, y) = unary("Cast", vec![attr_i("to", 1)], 13);
    assert_eq!((ops, x), (vec!["Identity"], y));

    // Pow with a constant exponent, then with a computed one; Sqrt of a constant folds.
    let nodes = vec![
        node("Sqrt", "s", &["four"], &["two"], vec![]),
        node("Pow", "sq", &["x", "two"], &["p"], vec![]),
        node("Abs", "abs", &["four"], &["four_abs"], vec![]),
        node("Add", "pos", &["p", "four_abs"], &["q"], vec![]),
        node("Pow", "pq", &["q", "x"], &["y"], vec![]),
    ];
    let inits = vec![encode_f32("four", &ArrayD::from_elem(vec![], 4.0))];
    let g = import(&model(15, nodes, inits, &[1, 3], "y")).unwrap();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Pow", "Add", "Pow"]);
    let x = ArrayD::from_shape_vec(vec![1, 3], vec![-1.0f32, 0.5, 2.0]).unwrap();
    let y = plain::run_single(&g, x.clone()).unwrap();
    for (&a, &b) in x.iter().zip(y.iter()) {
        let want = (a as f64 * a as f64 + 4.0).powf(a as f64);
        assert!((b as f64 - want).abs() < 1e-5 * want, "{b} vs {want}");
    }
}

#[test]
fn reduce_mean_and_sum_across_opsets() {
    let x = random(&[2, 3, 4, 5], 21);
    let run = |bytes: Vec<u8>| {
        let g = import(&bytes).unwrap();
        let ops: Vec<String> = g.nodes.iter().map(|n| n.op.name().to_string()).collect();
        let y = plain::run_single(&g, x.clone()).unwrap();
        (g, ops, y)
    };
    let mean_hw = x.mean_axis(Axis(3)).unwrap().mean_axis(Axis(2)).unwrap();
    // A ReduceMean over H and W is a GlobalAveragePool: axes as attribute (opset 13) ...
    let m13 = model(
        13,
        vec![node("ReduceMean", "gap", &["x"], &["y"], vec![attr_ints("axes", &[2, 3])])],
        vec![],
        &[0, 3, 4, 5],
        "y",
    );
    let (g, ops, y) = run(m13);
    assert_eq!(ops, ["GlobalAveragePool"]);
    assert!(g.supports_batch());
    assert_eq!(y.shape(), &[2, 3, 1, 1]);
    for (idx, &v) in mean_hw.indexed_iter() {
        assert!((y[[idx[0], idx[1], 0, 0]] - v).abs() < 1e-6);
    }
    // ... or as (negative) input axes without keepdims (opset 18): GlobalAveragePool + Reshape to
    // [N, C] that keeps the batch.
    let m18 = model(
        18,
        vec![node("ReduceMean", "gap", &["x", "axes"], &["y"], vec![attr_i("keepdims", 0)])],
        vec![encode_i64("axes", &[-1, -2])],
        &[0, 3, 4, 5],
        "y",
    );
    let (g, ops, y) = run(m18);
    assert_eq!(ops, ["GlobalAveragePool", "Reshape"]);
    assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(3)]);
    assert!(y.iter().zip(mean_hw.iter()).all(|(a, b)| (a - b).abs() < 1e-6));
    // Other axes stay a ReduceMean.
    let m = model(
        18,
        vec![node("ReduceMean", "m", &["x", "axes"], &["y"], vec![])],
        vec![encode_i64("axes", &[1])],
        &[0, 3, 4, 5],
        "y",
    );
    let (_, ops, y) = run(m);
    assert_eq!(ops, ["ReduceMean"]);
    assert_eq!(y.shape(), &[2, 1, 4, 5]);
    assert!((y[[1, 0, 2, 3]] - (0..3).map(|c| x[[1, c, 2, 3]]).sum::<f32>() / 3.0).abs() < 1e-6);
    // ReduceSum: attribute before opset 13, input from 13; absent axes reduce everything;
    // noop_with_empty_axes makes it the identity.
    let sum11 = model(
        11,
        vec![node("ReduceSum", "s", &["x"], &["y"], vec![attr_ints("axes", &[-1]), attr_i("keepdims", 0)])],
        vec![],
        &[0, 3, 4, 5],
        "y",
    );
    let sum13 = model(
        13,
        vec![node("ReduceSum", "s", &["x", "axes"], &["y"], vec![attr_i("keepdims", 0)])],
        vec![encode_i64("axes", &[3])],
        &[0, 3, 4, 5],
        "y",
    );
    let ((_, ops11, y11), (_, _, y13)) = (run(sum11), run(sum13));
    assert_eq!(ops11, ["ReduceSum"]);
    assert_eq!(y11, y13);
    assert_eq!(y11.shape(), &[2, 3, 4]);
    assert!((y11[[1, 2, 3]] - (0..5).map(|w| x[[1, 2, 3, w]]).sum::<f32>()).abs() < 1e-5);
    let noop = model(
        13,
        vec![node("ReduceSum", "s", &["x"], &["y"], vec![attr_i("noop_with_empty_axes", 1)])],
        vec![],
        &[2, 3, 4, 5],
        "y",
    );
    let (_, _, y) = run(noop);
    assert_eq!(y, x);
    // All axes of a fixed-batch input, and of a symbolic-batch one (refused at any batch, so the
    // model is imported at batch 1).
    for dims in [[2i64, 3, 4, 5], [0, 3, 4, 5]] {
        let all = model(18, vec![node("ReduceSum", "s", &["x"], &["y"], vec![])], vec![], &dims, "y");
        let g = import(&all).unwrap();
        assert!(!g.supports_batch());
        assert_eq!(g.inputs[0].shape[0], Dim::Fixed(if dims[0] == 0 { 1 } else { 2 }));
        let xin = if dims[0] == 0 { x.slice_axis(Axis(0), ndarray::Slice::from(0..1)).to_owned() } else { x.clone() };
        let y = plain::run_single(&g, xin.clone()).unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 1]);
        assert!((y.iter().next().unwrap() - xin.sum()).abs() < 1e-4);
    }
}

#[test]
fn layer_normalization_over_the_last_axes() {
    let scale = random(&[4, 6], 31);
    let bias = random(&[6], 32);
    let inits = vec![encode_f32("scale", &scale), encode_f32("bias", &bias)];
    let ln = |outputs: &[&str], attrs: Vec<AttributeProto>| {
        node("LayerNormalization", "ln", &["x", "scale", "bias"], outputs, attrs)
    };
    let g = import(&model(
        17,
        vec![ln(&["y"], vec![attr_i("axis", -2), attr_f("epsilon", 1e-3)])],
        inits.clone(),
        &[0, 3, 4, 6],
        "y",
    ))
    .unwrap();
    let Op::LayerNorm(cfg) = &g.nodes[0].op else { panic!("{:?}", g.nodes) };
    assert_eq!((cfg.axis, cfg.epsilon), (2, 1e-3));
    // The bias broadcasts to the normalised shape [4, 6].
    assert_eq!(g.initializers[cfg.bias.as_ref().unwrap()].shape(), &[4, 6]);
    let x = random(&[2, 3, 4, 6], 33);
    let y = plain::run_single(&g, x.clone()).unwrap();
    let (b, c) = (1, 2);
    let row: Vec<f64> = (0..24).map(|k| x[[b, c, k / 6, k % 6]] as f64).collect();
    let mean = row.iter().sum::<f64>() / 24.0;
    let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 24.0;
    for k in 0..24 {
        let want = (row[k] - mean) / (var + 1e-3).sqrt() * scale[[k / 6, k % 6]] as f64 + bias[[k % 6]] as f64;
        assert!((y[[b, c, k / 6, k % 6]] as f64 - want).abs() < 1e-5);
    }
    // An unused Mean output is fine; a used one is refused.
    let axis = || vec![attr_i("axis", 2)];
    assert!(import(&model(17, vec![ln(&["y", "mean"], axis())], inits.clone(), &[0, 3, 4, 6], "y")).is_ok());
    let nodes = vec![ln(&["n", "mean"], axis()), node("Add", "add", &["n", "mean"], &["y"], vec![])];
    let err = import(&model(17, nodes, inits, &[0, 3, 4, 6], "y")).unwrap_err();
    assert!(matches!(&err, IrError::UnsupportedConfig { reason, .. } if reason.contains("Mean")), "{err}");
}

fn model_outs(opset: i64, nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: &[i64], outs: &[&str]) -> Vec<u8> {
    let mut m = ModelProto::decode(model(opset, nodes, inits, input, outs[0]).as_slice()).unwrap();
    m.graph.as_mut().unwrap().output = outs.iter().map(|o| value(o, Some(&[]))).collect();
    m.encode_to_vec()
}

#[test]
fn split_gather_squeeze_unsqueeze_keep_the_batch() {
    let x = random(&[2, 7, 3], 41);
    let part = |lo: usize, hi: usize| x.slice_axis(Axis(1), ndarray::Slice::from(lo..hi)).to_owned();
    let outs = |bytes: Vec<u8>, names: &[&str]| {
        let g = import(&bytes).unwrap();
        assert!(g.supports_batch(), "{:?}", g.nodes);
        let mut y = plain::run(&g, [("x".to_string(), x.clone())].into()).unwrap();
        names.iter().map(|n| y.remove(*n).unwrap()).collect::<Vec<_>>()
    };
    // Split: sizes as attribute (opset 11) and input (13), num_outputs (18: chunks of 3, 3, 1).
    let s11 = model_outs(
        11,
        vec![node("Split", "sp", &["x"], &["a", "b"], vec![attr_i("axis", 1), attr_ints("split", &[2, 5])])],
        vec![],
        &[0, 7, 3],
        &["a", "b"],
    );
    let s13 = model_outs(
        13,
        vec![node("Split", "sp", &["x", "sizes"], &["a", "b"], vec![attr_i("axis", -2)])],
        vec![encode_i64("sizes", &[2, 5])],
        &[0, 7, 3],
        &["a", "b"],
    );
    assert_eq!(outs(s11, &["a", "b"]), [part(0, 2), part(2, 7)]);
    assert_eq!(outs(s13, &["a", "b"]), [part(0, 2), part(2, 7)]);
    let s18 = model_outs(
        18,
        vec![node("Split", "sp", &["x"], &["a", "b", "c"], vec![attr_i("axis", 1), attr_i("num_outputs", 3)])],
        vec![],
        &[0, 7, 3],
        &["a", "b", "c"],
    );
    assert_eq!(outs(s18, &["a", "b", "c"]), [part(0, 3), part(3, 6), part(6, 7)]);
    let g = import(&model_outs(
        13,
        vec![node("Split", "sp", &["x"], &["a", "b"], vec![attr_i("axis", 2)])],
        vec![],
        &[0, 7, 4],
        &["a", "b"],
    ))
    .unwrap();
    assert!(g.nodes.iter().all(|n| matches!(n.op, Op::Slice(_))));

    // Gather with a scalar index (ViT's x[:, 0]): Slice + Reshape dropping the axis, batch kept.
    let scalar = TensorProto { name: "i".into(), data_type: 7, int64_data: vec![-7], ..Default::default() };
    let g = import(&model(
        13,
        vec![node("Gather", "g", &["x", "i"], &["y"], vec![attr_i("axis", 1)])],
        vec![scalar],
        &[0, 7, 3],
        "y",
    ))
    .unwrap();
    assert_eq!(g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>(), ["Slice", "Reshape"]);
    assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(3)]);
    assert_eq!(plain::run_single(&g, x.clone()).unwrap(), x.index_axis(Axis(1), 0).to_owned());
    // 1-D indices: a progression is one strided Slice, others a Slice each and a Concat.
    for (idx, ops) in [(vec![1i64, 3, 5], vec!["Slice"]), (vec![4, -7, 4], vec!["Slice", "Slice", "Slice", "Concat"])] {
        let g = import(&model(
            13,
            vec![node("Gather", "g", &["x", "i"], &["y"], vec![attr_i("axis", 1)])],
            vec![encode_i64("i", &idx)],
            &[0, 7, 3],
            "y",
        ))
        .unwrap();
        assert_eq!(g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>(), ops);
        let picks: Vec<usize> = idx.iter().map(|&i| if i < 0 { (i + 7) as usize } else { i as usize }).collect();
        assert_eq!(plain::run_single(&g, x.clone()).unwrap(), x.select(Axis(1), &picks));
    }
    // Unsqueeze then Squeeze (axes as input from opset 13): Reshapes that copy the batch (`0`).
    let nodes = vec![
        node("Unsqueeze", "u", &["x", "ax"], &["u"], vec![]),
        node("Relu", "r", &["u"], &["r"], vec![]),
        node("Squeeze", "s", &["r", "ax"], &["y"], vec![]),
    ];
    let g = import(&model(13, nodes, vec![encode_i64("ax", &[-2])], &[0, 7, 3], "y")).unwrap();
    let targets: Vec<Vec<i64>> = g
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Reshape(c) => Some(c.shape.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(targets, [vec![0, 7, 1, 3], vec![0, 7, 3]]);
    assert_eq!(plain::run_single(&g, x.clone()).unwrap(), x.mapv(|v| v.max(0.0)));
}

/// With a fixed leading dimension axis 0 is an ordinary axis; with a symbolic batch a node that
/// reads across it makes the importer fall back to batch 1.
#[test]
fn axis_zero_with_fixed_and_symbolic_batches() {
    let nodes = vec![node("Transpose", "t", &["x"], &["y"], vec![attr_ints("perm", &[1, 0, 2])])];
    let x = random(&[2, 3, 4], 51);
    let fixed = import(&model(13, nodes.clone(), vec![], &[2, 3, 4], "y")).unwrap();
    assert_eq!(
        plain::run_single(&fixed, x.clone()).unwrap(),
        x.clone().permuted_axes(vec![1, 0, 2]).as_standard_layout().to_owned()
    );
    let symbolic = import(&model(13, nodes, vec![], &[0, 3, 4], "y")).unwrap();
    assert_eq!(symbolic.inputs[0].shape, vec![Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(4)]);
    assert_eq!(symbolic.outputs[0].shape, vec![Dim::Fixed(3), Dim::Fixed(1), Dim::Fixed(4)]);
    // Slicing axis 0 of a fixed batch.
    let nodes = vec![node("Slice", "s", &["x", "st", "en", "ax"], &["y"], vec![])];
    let inits = vec![encode_i64("st", &[1]), encode_i64("en", &[2]), encode_i64("ax", &[0])];
    let g = import(&model(13, nodes, inits, &[2, 3, 4], "y")).unwrap();
    assert_eq!(plain::run_single(&g, x.clone()).unwrap(), x.slice_axis(Axis(0), ndarray::Slice::from(1..2)).to_owned());
}

/// The legacy exporter writes `F.pad(x, (0, 0, 0, 0, 2, 2))` (pads in torch's order, last axis
/// first) as ConstantOfShape -> Concat -> Reshape -> Slice(step -1) -> Transpose -> Reshape ->
/// Cast feeding Pad: the chain folds (a negative-step Slice of a constant) into ONNX pads.
#[test]
fn legacy_pad_chain_folds_into_pads() {
    let c = |name: &str, v: &[i64]| node("Constant", name, &[], &[name], vec![attr_t("value", encode_i64("", v))]);
    let nodes = vec![
        c("k2", &[2]),
        c("torch_pads", &[0, 0, 0, 0, 2, 2]),
        node("ConstantOfShape", "zeros", &["k2"], &["zeros"], vec![attr_t("value", encode_i64("", &[0]))]),
        node("Concat", "cat", &["torch_pads", "zeros"], &["all"], vec![attr_i("axis", 0)]),
        c("shape2", &[-1, 2]),
        node("Reshape", "pairs", &["all", "shape2"], &["pairs"], vec![]),
        c("st", &[-1]),
        c("en", &[-9223372036854775807]),
        c("ax", &[0]),
        c("step", &[-1]),
        node("Slice", "rev", &["pairs", "st", "en", "ax", "step"], &["rev"], vec![]),
        node("Transpose", "tr", &["rev"], &["tr"], vec![attr_ints("perm", &[1, 0])]),
        c("flat", &[-1]),
        node("Reshape", "onnx_pads", &["tr", "flat"], &["onnx_pads"], vec![]),
        node("Cast", "cast", &["onnx_pads"], &["pads"], vec![attr_i("to", 7)]),
        node("Pad", "pad", &["x", "pads"], &["y"], vec![attr_s("mode", "constant")]),
    ];
    let g = import(&model(13, nodes, vec![], &[0, 4, 3, 3], "y")).unwrap();
    assert_eq!(g.nodes.len(), 1);
    let Op::Pad(p) = &g.nodes[0].op else { panic!("{:?}", g.nodes) };
    assert_eq!(p.pads, [(0, 0), (2, 2), (0, 0), (0, 0)]);
    assert!(g.supports_batch());
    // A negative step on an activation is refused clearly.
    let nodes = vec![node("Slice", "rev", &["x", "st", "en", "ax", "step"], &["y"], vec![])];
    let inits =
        vec![encode_i64("st", &[-1]), encode_i64("en", &[-100]), encode_i64("ax", &[1]), encode_i64("step", &[-1])];
    let err = import(&model(13, nodes, inits, &[0, 4], "y")).unwrap_err();
    assert!(
        matches!(&err, IrError::UnsupportedConfig { reason, .. } if reason.contains("negative slice steps")),
        "{err}"
    );
}

/// Shape arithmetic beyond Gather/Concat (as in ViT's legacy export): Equal, Where, Mod, Range,
/// Greater, Not, Or, Max, Min, Tile, Expand and negative-step slices of constants fold into a
/// Reshape target.
#[test]
fn comparison_and_where_chains_fold() {
    let c = |name: &str, v: &[i64]| node("Constant", name, &[], &[name], vec![attr_t("value", encode_i64("", v))]);
    let slice = |name: &str, args: &[&str]| node("Slice", name, args, &[name], vec![]);
    let nodes = vec![
        node("Shape", "s", &["x"], &["s"], vec![]), // [1, 6, 4]
        c("m1", &[-1, -1, -1]),
        node("Equal", "eq", &["s", "m1"], &["eq"], vec![]),
        node("Where", "s2", &["eq", "m1", "s"], &["s2"], vec![]), // = s
        c("k3", &[3]),
        node("Mod", "r", &["s2", "k3"], &["r"], vec![]), // [1, 0, 1]
        c("zero", &[0]),
        c("one", &[1]),
        c("two", &[2]),
        node("Range", "rng", &["zero", "k3", "one"], &["rng"], vec![]), // [0, 1, 2]
        node("Greater", "gt", &["rng", "zero"], &["gt"], vec![]),
        node("Not", "ng", &["gt"], &["ng"], vec![]),
        node("Or", "all", &["ng", "gt"], &["all"], vec![]),
        node("Cast", "ones", &["all"], &["ones"], vec![attr_i("to", 7)]), // [1, 1, 1]
        node("Max", "mr", &["r", "ones"], &["mr"], vec![]),
        node("Min", "mn", &["mr", "s"], &["mn"], vec![]),
        node("Tile", "tl", &["mn", "two"], &["tl"], vec![]), // six ones
        node("Expand", "ex", &["k3", "two"], &["ex"], vec![]), // [3, 3]
        c("back", &[-1]),
        c("front", &[-100]),
        slice("rev", &["s", "back", "front", "zero", "back"]), // [4, 6, 1]
        slice("first", &["rev", "zero", "one"]),               // [4]
        slice("t1", &["tl", "zero", "one"]),
        slice("e1", &["ex", "zero", "one"]),
        node("Sub", "d", &["t1", "e1"], &["d"], vec![]), // [-2]
        node("Add", "m", &["d", "one"], &["m"], vec![]), // [-1]
        node("Concat", "target", &["first", "m"], &["target"], vec![attr_i("axis", 0)]),
        node("Reshape", "y", &["x", "target"], &["y"], vec![]),
    ];
    let g = import(&model(13, nodes, vec![], &[1, 6, 4], "y")).unwrap();
    assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
    let Op::Reshape(cfg) = &g.nodes[0].op else { panic!("{:?}", g.nodes) };
    assert_eq!(cfg.shape, [4, -1]);
}

#[test]
fn malformed_models_name_file_and_node() {
    let good = model(13, vec![node("Relu", "r", &["x"], &["y"], vec![])], vec![], &[1, 4], "y");
    let err = import(&good[..good.len() - 3]).unwrap_err();
    assert!(matches!(&err, IrError::Malformed { file, .. } if file == Path::new("test.onnx")), "{err}");

    let dangling = model(13, vec![node("Add", "add1", &["x", "ghost"], &["y"], vec![])], vec![], &[1, 4], "y");
    let err = import(&dangling).unwrap_err().to_string();
    assert!(err.contains("test.onnx") && err.contains("add1") && err.contains("ghost"), "{err}");

    let bad_opset = model(5, vec![node("Relu", "r", &["x"], &["y"], vec![])], vec![], &[1, 4], "y");
    assert!(import(&bad_opset).unwrap_err().to_string().contains("opset 5"));

    let bad_attr =
        model(13, vec![node("LeakyRelu", "lr", &["x"], &["y"], vec![attr_i("alpha", 2)])], vec![], &[1, 4], "y");
    let err = import(&bad_attr).unwrap_err().to_string();
    assert!(err.contains("lr") && err.contains("LeakyRelu") && err.contains("alpha"), "{err}");

    // External data that is not there.
    let dir = std::env::temp_dir().join(format!("masq-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let w = TensorProto {
        name: "w".into(),
        dims: vec![4],
        data_type: 1,
        data_location: 1,
        external_data: vec![StringStringEntryProto { key: "location".into(), value: "weights.bin".into() }],
        ..Default::default()
    };
    let ext = model(13, vec![node("Add", "add", &["x", "w"], &["y"], vec![])], vec![w.clone()], &[1, 4], "y");
    let path = dir.join("ext.onnx");
    std::fs::write(&path, &ext).unwrap();
    let err = import_file(&path).unwrap_err().to_string();
    assert!(err.contains("weights.bin") && err.contains("ext.onnx"), "{err}");
    // ... and once it is there, the model loads and runs.
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("weights.bin"), data).unwrap();
    let g = import_file(&path).unwrap();
    let y = plain::run_single(&g, ArrayD::zeros(vec![1, 4])).unwrap();
    assert_eq!(y.as_slice().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Real exports (e.g. torchvision models through both PyTorch exporters) against onnxruntime's
/// outputs, when `MASQ_REAL_ONNX_DIR` names a folder of `NAME.onnx` files, each with
/// `NAME.in.npy` (the input) and `NAME.out.npy` (onnxruntime's first output); skipped otherwise.
/// `MASQ_REAL_ONNX_FILTER` keeps the files whose name contains it. Each must import and match to
/// 1e-4 relative to the output's largest magnitude (a graph that only runs at batch 1 is run image
/// by image).
#[test]
fn real_exports_match_onnxruntime() {
    let Some(dir) = std::env::var_os("MASQ_REAL_ONNX_DIR") else {
        eprintln!("skipping: MASQ_REAL_ONNX_DIR is unset");
        return;
    };
    let filter = std::env::var("MASQ_REAL_ONNX_FILTER").unwrap_or_default();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .filter(|p| p.to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let stem = path.to_string_lossy().trim_end_matches(".onnx").to_string();
        let (inp, out) = (format!("{stem}.in.npy"), format!("{stem}.out.npy"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = (|| -> Result<f32, String> {
            let g = import_file(path).map_err(|e| format!("import: {e}"))?;
            let x = masq_ir::npy::read_f32(&inp).map_err(|e| e.to_string())?;
            let want = masq_ir::npy::read_f32(&out).map_err(|e| e.to_string())?;
            // A graph that only runs at batch 1 (e.g. a dynamic-batch ViT: attention moves axis 0)
            // runs image by image.
            let got = if x.shape()[0] > 1 && !g.supports_batch() {
                eprintln!("      {name}: batch 1 only");
                let ys = x
                    .axis_iter(Axis(0))
                    .map(|xi| plain::run_single(&g, xi.insert_axis(Axis(0)).to_owned()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("run: {e}"))?;
                let views: Vec<_> = ys.iter().map(|y| y.view()).collect();
                ndarray::concatenate(Axis(0), &views).map_err(|e| e.to_string())?
            } else {
                plain::run_single(&g, x).map_err(|e| format!("run: {e}"))?
            };
            if got.shape() != want.shape() {
                return Err(format!("shape {:?}, onnxruntime {:?}", got.shape(), want.shape()));
            }
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
            let diff = got.iter().zip(want.iter()).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            if diff.is_nan() || diff > 1e-4 * scale {
                return Err(format!("max |diff| {diff:e} vs max |y| {scale:e}"));
            }
            Ok(diff / scale)
        })();
        match result {
            Ok(rel) => eprintln!("ok    {name} (relative error {rel:.1e})"),
            Err(e) => {
                eprintln!("FAIL  {name}: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} real exports failed:\n{}", failures.len(), files.len(), failures.join("\n"));
}

/// The new ops export (opset 17 and 20) and import back to a graph that computes the same.
#[test]
fn new_ops_round_trip_through_export() {
    use masq_ir::{BinaryConfig, GeluConfig, Graph, HardSigmoidConfig, LayerNormConfig, Node, ReduceConfig, ValueInfo};
    let build = |tanh_gelu: bool| {
        let mut g = Graph::new("new_ops");
        g.inputs.push(ValueInfo::new("x", vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(4), Dim::Fixed(5)]));
        g.initializers.insert("two".into(), ArrayD::from_elem(vec![], 2.0));
        g.initializers.insert("scale".into(), random(&[5], 61));
        g.initializers.insert("bias".into(), random(&[5], 62));
        let chain: Vec<(Op, Vec<&str>)> = vec![
            (Op::Sigmoid, vec![]),
            (Op::HardSigmoid(HardSigmoidConfig { alpha: 0.3, beta: 0.4 }), vec![]),
            (Op::HardSwish, vec![]),
            (Op::Tanh, vec![]),
            (Op::Erf, vec![]),
            (Op::Gelu(GeluConfig { tanh: tanh_gelu }), vec![]),
            (Op::Exp, vec![]),
            (Op::Sqrt, vec![]),
            (Op::Reciprocal, vec![]),
            (Op::Pow(BinaryConfig {}), vec!["two"]),
            (
                Op::LayerNorm(LayerNormConfig {
                    axis: 3,
                    epsilon: 1e-5,
                    scale: Some("scale".into()),
                    bias: Some("bias".into()),
                }),
                vec![],
            ),
            (Op::ReduceSum(ReduceConfig { axes: vec![1], keepdims: true }), vec![]),
            (Op::ReduceMean(ReduceConfig { axes: vec![2, 3], keepdims: false }), vec![]),
        ];
        let mut prev = "x".to_string();
        for (i, (op, extra)) in chain.into_iter().enumerate() {
            let out = format!("v{i}");
            let mut ins = vec![prev.as_str()];
            ins.extend(extra);
            g.nodes.push(Node::new(format!("n{i}"), op, &ins, &[&out]));
            prev = out;
        }
        g.outputs.push(ValueInfo::new(prev, vec![]));
        g.finalize().unwrap();
        g
    };
    let x = random(&[2, 3, 4, 5], 63);
    for (opset, tanh) in [(17, false), (20, true)] {
        let g = build(tanh);
        let bytes = masq_onnx::export::encode(&g, opset, "").unwrap().encode_to_vec();
        let back = import(&bytes).unwrap();
        assert!(back.supports_batch());
        let (want, got) = (plain::run_single(&g, x.clone()).unwrap(), plain::run_single(&back, x.clone()).unwrap());
        assert_eq!(want.shape(), &[2, 1]);
        assert_eq!(want.shape(), got.shape());
        for (a, b) in want.iter().zip(got.iter()) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "opset {opset}: {a} vs {b}");
        }
    }
}
