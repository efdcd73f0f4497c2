//! Fixed batches baked in at export (`masq_ir::batch`): ONNX models built in code with a fixed
//! leading dimension import with a symbolic batch where every node agrees, run at any batch with
//! the results of one image at a time, and are refused (naming the node) where a node mixes the
//! images.

use crate::common;

use std::path::Path;

use common::*;
use masq_ir::batch::{self, Outcome};
use masq_ir::{Dim, Graph, Op};
use masq_onnx::import_bytes;
use masq_onnx::proto::*;
use masq_onnx::tensor::{encode_f32, encode_i64};
use masq_runtime::{plain, secure};
use ndarray::{ArrayD, Axis, concatenate};
use prost::Message;

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: &[i64]) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            name: "fixed".into(),
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

fn import(bytes: &[u8]) -> Graph {
    import_bytes(bytes, Path::new("model.onnx")).unwrap()
}

/// Conv -> Relu -> MaxPool -> Reshape([B, 64]) -> Gemm, as torch exports `x.view(x.size(0), -1)`
/// at a fixed batch `b` (`b` = 0: a symbolic batch with the target `[0, -1]`).
fn cnn(b: i64) -> Vec<u8> {
    let target = if b == 0 { vec![0, -1] } else { vec![b, 64] };
    let nodes = vec![
        node("Conv", "conv", &["x", "w", "wb"], &["c"], vec![attr_ints("pads", &[1, 1, 1, 1])]),
        node("Relu", "relu", &["c"], &["r"], vec![]),
        node(
            "MaxPool",
            "pool",
            &["r"],
            &["p"],
            vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])],
        ),
        node("Reshape", "flatten", &["p", "target"], &["f"], vec![]),
        node("Gemm", "fc", &["f", "fcw", "fcb"], &["y"], vec![attr_i("transB", 1)]),
    ];
    let inits = vec![
        encode_f32("w", &random(&[4, 3, 3, 3], 1)),
        encode_f32("wb", &random(&[4], 2)),
        encode_f32("fcw", &random(&[5, 64], 3)),
        encode_f32("fcb", &random(&[5], 4)),
        encode_i64("target", &target),
    ];
    model(nodes, inits, &[b, 3, 8, 8])
}

/// The graph's output on `x`, and on each image of `x` alone (concatenated): they must agree.
fn run_and_per_image(g: &Graph, x: &ArrayD<f32>) -> (ArrayD<f32>, ArrayD<f32>) {
    let whole = plain::run_single(g, x.clone()).unwrap();
    let singles: Vec<ArrayD<f32>> =
        x.axis_iter(Axis(0)).map(|img| plain::run_single(g, img.to_owned().insert_axis(Axis(0))).unwrap()).collect();
    let views: Vec<_> = singles.iter().map(|a| a.view()).collect();
    (whole, concatenate(Axis(0), &views).unwrap())
}

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn a_model_exported_at_batch_4_runs_at_any_batch() {
    let g = import(&cnn(4));
    assert!(g.supports_batch());
    assert_eq!(g.inputs[0].shape, vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(8)]);
    assert_eq!(g.outputs[0].shape, vec![Dim::Batch, Dim::Fixed(5)]);
    let reshape = g.nodes.iter().find(|n| n.name == "flatten").unwrap();
    assert!(matches!(&reshape.op, Op::Reshape(c) if c.shape == [0, 64]), "{:?}", reshape.op);
    assert_eq!(batch::diagnose(&g), None);
    // The same network exported with a symbolic batch is the reference.
    let reference = import(&cnn(0));
    for n in [1, 3, 4] {
        let x = random(&[n, 3, 8, 8], 10 + n as u64);
        let (whole, singles) = run_and_per_image(&g, &x);
        assert_eq!(whole.shape(), [n, 5]);
        assert!(max_diff(&whole, &singles) < 1e-5, "batch {n}");
        assert!(max_diff(&whole, &plain::run_single(&reference, x).unwrap()) < 1e-6, "batch {n}");
    }
    // The cost table is per image.
    let r = masq_ir::report::report(&g).unwrap();
    assert_eq!(r.relu_count, 4 * 8 * 8);
    assert!(r.supports_batch);
}

#[test]
fn a_model_exported_at_batch_1_with_a_baked_view_runs_at_batch_5() {
    let g = import(&cnn(1));
    assert!(g.supports_batch());
    let x = random(&[5, 3, 8, 8], 7);
    let (whole, singles) = run_and_per_image(&g, &x);
    assert_eq!(whole.shape(), [5, 5]);
    assert!(max_diff(&whole, &singles) < 1e-5);
}

#[test]
fn the_generalised_model_runs_under_2pc_at_a_new_batch() {
    let g = import(&cnn(4));
    let x = random(&[3, 3, 8, 8], 21);
    let run = secure::run(&g, &x, &secure::SecureConfig::default()).unwrap();
    let want = plain::run_single(&g, x).unwrap();
    let got = &run.outputs[0].1;
    assert!(max_diff(got, &want) < 5e-3, "{}", max_diff(got, &want));
    assert_eq!(run.report.per_image.relu_count, 4 * 8 * 8);
    assert_eq!(run.report.comparisons_per_batch, 3 * run.report.per_image.comparisons);
}

#[test]
fn a_reshape_that_mixes_the_images_is_refused_by_name() {
    // [4, 3, 4, 4] -> [1, 12, 4, 4]: the four images become the channels of one.
    let nodes = vec![
        node("Reshape", "stack_images", &["x", "target"], &["s"], vec![]),
        node("Conv", "conv", &["s", "w"], &["c"], vec![]),
        node("Relu", "relu", &["c"], &["y"], vec![]),
    ];
    let inits = vec![encode_i64("target", &[1, 12, 4, 4]), encode_f32("w", &random(&[2, 12, 1, 1], 1))];
    let g = import(&model(nodes, inits, &[4, 3, 4, 4]));
    assert!(!g.supports_batch());
    assert_eq!(g.inputs[0].shape[0], Dim::Fixed(4));
    assert_eq!(batch::fixed_batch(&g), Some(4));
    let r = batch::diagnose(&g).unwrap();
    assert_eq!((r.batch, r.node.as_str(), r.op.as_str()), (4, "stack_images", "Reshape"));
    assert_eq!(
        r.to_string(),
        "node stack_images (Reshape) reshapes the batch axis: [4, 3, 4, 4] into [1, 12, 4, 4], mixing the images"
    );
    // It still runs at its own batch.
    let y = plain::run_single(&g, random(&[4, 3, 4, 4], 2)).unwrap();
    assert_eq!(y.shape(), [1, 2, 4, 4]);
}

/// `x` [B, 5, 8] (tokens) with a class token expanded to the batch, as torch's exporter folds
/// `cls.expand(B, -1, -1)`, concatenated in front: Concat -> Relu -> Reshape([B, 48]) -> Gemm.
fn with_class_token(b: usize, cls: &ArrayD<f32>) -> Vec<u8> {
    let nodes = vec![
        node("Concat", "cat", &["cls", "x"], &["t"], vec![attr_i("axis", 1)]),
        node("Relu", "relu", &["t"], &["r"], vec![]),
        node("Reshape", "flatten", &["r", "target"], &["f"], vec![]),
        node("Gemm", "fc", &["f", "fcw"], &["y"], vec![attr_i("transB", 1)]),
    ];
    let inits =
        vec![encode_f32("cls", cls), encode_i64("target", &[b as i64, 48]), encode_f32("fcw", &random(&[3, 48], 5))];
    model(nodes, inits, &[b as i64, 5, 8])
}

#[test]
fn an_expanded_class_token_is_taken_per_image() {
    let token = random(&[1, 1, 8], 3);
    for b in [1, 4] {
        let cls = token.broadcast(vec![b, 1, 8]).unwrap().to_owned();
        let g = import(&with_class_token(b, &cls));
        assert!(g.supports_batch(), "batch {b}");
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(ops, ["Pad", "Add", "Relu", "Reshape", "Gemm"], "batch {b}");
        // At the export batch the result is the original Concat's.
        let x = random(&[b, 5, 8], 4);
        let mut want = concatenate(Axis(1), &[cls.view(), x.view()]).unwrap().mapv(|v| v.max(0.0));
        want = want.as_standard_layout().into_owned().into_shape_with_order(vec![b, 48]).unwrap();
        let fcw = random(&[3, 48], 5).into_dimensionality::<ndarray::Ix2>().unwrap();
        let want = want.into_dimensionality::<ndarray::Ix2>().unwrap().dot(&fcw.t()).into_dyn();
        assert!(max_diff(&plain::run_single(&g, x).unwrap(), &want) < 1e-5);
        for n in [2, 3] {
            let x = random(&[n, 5, 8], 6);
            let (whole, singles) = run_and_per_image(&g, &x);
            assert!(max_diff(&whole, &singles) < 1e-6);
        }
        let x = random(&[2, 5, 8], 7);
        let run = secure::run(&g, &x, &secure::SecureConfig::default()).unwrap();
        assert!(max_diff(&run.outputs[0].1, &plain::run_single(&g, x).unwrap()) < 5e-3);
    }
    // Different rows for different images cannot be generalised.
    let g = import(&with_class_token(4, &random(&[4, 1, 8], 9)));
    assert!(!g.supports_batch());
    let r = batch::diagnose(&g).unwrap();
    assert_eq!(r.node, "cat");
    assert!(r.reason.contains("rows differ between the 4 images"), "{r}");
}

#[test]
fn a_constant_with_equal_rows_added_to_the_batch_is_broadcast() {
    let pos = random(&[1, 5, 8], 2).broadcast(vec![4, 5, 8]).unwrap().to_owned();
    let nodes =
        vec![node("Add", "add_pos", &["x", "pos"], &["a"], vec![]), node("Relu", "relu", &["a"], &["y"], vec![])];
    let g = import(&model(nodes.clone(), vec![encode_f32("pos", &pos)], &[4, 5, 8]));
    assert!(g.supports_batch());
    let add = &g.nodes[0];
    assert_eq!(g.initializers[&add.inputs[1]].shape(), [1, 5, 8]);
    let (whole, singles) = run_and_per_image(&g, &random(&[2, 5, 8], 3));
    assert!(max_diff(&whole, &singles) < 1e-6);

    let g = import(&model(nodes, vec![encode_f32("pos", &random(&[4, 5, 8], 4))], &[4, 5, 8]));
    assert!(!g.supports_batch());
    assert_eq!(batch::diagnose(&g).unwrap().node, "add_pos");
}

#[test]
fn ops_across_the_batch_axis_are_refused() {
    let cases: Vec<(Vec<NodeProto>, Vec<TensorProto>, &str)> = vec![
        (vec![node("Softmax", "sm", &["x"], &["y"], vec![attr_i("axis", 0)])], vec![], "sm"),
        (vec![node("Flatten", "fl", &["x"], &["y"], vec![attr_i("axis", 0)])], vec![], "fl"),
        (vec![node("MatMul", "mm", &["w", "x"], &["y"], vec![])], vec![encode_f32("w", &random(&[2, 4], 1))], "mm"),
        (
            vec![node("ReduceSum", "rs", &["x", "axes"], &["y"], vec![attr_i("keepdims", 1)])],
            vec![encode_i64("axes", &[0])],
            "rs",
        ),
    ];
    for (nodes, inits, name) in cases {
        let g = import(&model(nodes, inits, &[4, 6]));
        assert!(!g.supports_batch(), "{name}");
        let r = batch::diagnose(&g).unwrap_or_else(|| panic!("{name}: no diagnosis"));
        assert_eq!(r.node, name);
    }
}

#[test]
fn a_symbolic_batch_pinned_to_1_is_diagnosed_and_left_alone() {
    // [N, 2, 4] -> [2, 4]: only works at N = 1, so the import fixes the input at 1.
    let nodes = vec![node("Reshape", "squeeze_batch", &["x", "target"], &["y"], vec![])];
    let bytes = model(nodes, vec![encode_i64("target", &[2, 4])], &[0, 2, 4]);
    let mut g = import(&bytes);
    assert!(!g.supports_batch());
    assert_eq!(batch::fixed_batch(&g), Some(1));
    assert!(matches!(batch::generalise(&mut g).unwrap(), Outcome::Refused(_)));
    assert_eq!(g.inputs[0].shape[0], Dim::Fixed(1));
    let r = batch::diagnose(&g).unwrap();
    assert_eq!((r.batch, r.node.as_str()), (1, "squeeze_batch"));
}

/// The ONNX model zoo's MNIST model (input fixed at 1x1x28x28, `Reshape([1, 256])` baked in)
/// runs at batch 3. Needs MASQ_MODELS_DIR (e.g. ../shared/models); skips when it is unset.
#[test]
fn onnx_zoo_mnist_8_runs_at_batch_3() {
    let Some(dir) = std::env::var_os("MASQ_MODELS_DIR") else {
        eprintln!("skipping: MASQ_MODELS_DIR is unset (set it to ../shared/models to run this test)");
        return;
    };
    let g = masq_onnx::import_file(&Path::new(&dir).join("onnx-zoo-mnist-8/model.onnx")).unwrap();
    assert!(g.supports_batch());
    assert_eq!(g.inputs[0].shape[0], Dim::Batch);
    let (whole, singles) = run_and_per_image(&g, &random(&[3, 1, 28, 28], 8));
    assert_eq!(whole.shape(), [3, 10]);
    assert!(max_diff(&whole, &singles) < 1e-3);
}
