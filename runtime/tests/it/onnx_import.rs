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
        node("Erf", "erf1", &["a"], &["b"], vec![]),
        node("Relu", "ok2", &["b"], &["c"], vec![]),
        node("NonMaxSuppression", "nms", &["c"], &["y"], vec![]),
    ];
    let err = import(&model(13, nodes, vec![], &[1, 4], "y")).unwrap_err();
    let IrError::UnsupportedOps { nodes } = &err else { panic!("{err}") };
    let names: Vec<(&str, &str, i64)> = nodes.iter().map(|n| (n.node.as_str(), n.op_type.as_str(), n.opset)).collect();
    assert_eq!(names, [("erf1", "Erf", 13), ("nms", "NonMaxSuppression", 13)]);
    assert!(err.to_string().contains("erf1") && err.to_string().contains("nms"));
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
