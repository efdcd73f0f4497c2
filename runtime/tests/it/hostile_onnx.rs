//! Hostile ONNX files (issue #18): sizes that overflow or ask for huge allocations, external data
//! that escapes the model directory through a symbolic link, masks that are not 0/1. Each must be
//! a clear error naming the node or tensor, never a panic, an abort or a wrong acceptance. The
//! models are built here from the prost structs.

use crate::common::*;

use std::path::{Path, PathBuf};

use masq_ir::{ConvConfig, Graph, IrError, Node, Op, PadConfig, ValueInfo};
use masq_onnx::import_bytes;
use masq_onnx::proto::*;
use masq_onnx::tensor::{encode_f32, encode_i64, encode_int};
use masq_runtime::plain;
use ndarray::ArrayD;

/// Opset 17, input `x` of shape `input`, output `y` (`ort_backend::model`).
fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: &[i64]) -> Vec<u8> {
    crate::ort_backend::model(17, nodes, inits, input)
}

fn import_err(bytes: &[u8]) -> IrError {
    match import_bytes(bytes, Path::new("hostile.onnx")) {
        Ok(g) => panic!("accepted a hostile model with {} nodes", g.nodes.len()),
        Err(e) => e,
    }
}

fn relu() -> NodeProto {
    node("Relu", "relu", &["x"], &["y"], vec![])
}

#[test]
fn initializer_dims_whose_product_overflows_are_an_error_naming_the_tensor() {
    // A zero-length axis makes the product 0, but no array can have axes of 2^40 x 2^40.
    let zero = TensorProto {
        name: "w0".into(),
        dims: vec![0, 1 << 40, 1 << 40],
        data_type: data_type::FLOAT,
        ..Default::default()
    };
    let e = import_err(&model(vec![relu()], vec![zero], &[1, 4])).to_string();
    assert!(e.contains("w0") && e.contains("elements"), "{e}");
    let wide = TensorProto {
        name: "w1".into(),
        dims: vec![1 << 33, 1 << 33],
        data_type: data_type::FLOAT,
        ..Default::default()
    };
    let e = import_err(&model(vec![relu()], vec![wide], &[1, 4])).to_string();
    assert!(e.contains("w1"), "{e}");
}

#[test]
fn graph_input_dims_beyond_the_limit_are_an_error_naming_the_input() {
    let e = import_err(&model(vec![relu()], vec![], &[1, 1 << 20, 1 << 20])).to_string();
    assert!(e.contains("input x") && e.contains("elements"), "{e}");
}

/// Conv (1x1 kernel, `pads` on every side) -> Flatten -> Gemm on a [1, 1, 4, 4] input.
fn padded_conv(pad: i64) -> Vec<u8> {
    let w = encode_f32("w", &ArrayD::from_elem(vec![1, 1, 1, 1], 1.0));
    let gw = encode_f32("gw", &ArrayD::from_elem(vec![2, 16], 1.0));
    let nodes = vec![
        node("Conv", "conv", &["x", "w"], &["c"], vec![attr_ints("pads", &[pad; 4])]),
        node("Flatten", "flat", &["c"], &["f"], vec![]),
        node("Gemm", "fc", &["f", "gw"], &["y"], vec![attr_i("transB", 1)]),
    ];
    model(nodes, vec![w, gw], &[1, 1, 4, 4])
}

#[test]
fn conv_pads_of_1e9_are_blamed_on_the_conv_not_a_later_node() {
    let e = import_err(&padded_conv(1_000_000_000));
    let s = e.to_string();
    assert!(matches!(e, IrError::TooLarge { .. }), "{s}");
    assert!(s.contains("node conv (Conv)") && !s.contains("fc"), "{s}");
    // Near usize::MAX the window arithmetic itself must not overflow.
    let s = import_err(&padded_conv(i64::MAX / 2)).to_string();
    assert!(s.contains("conv"), "{s}");
}

#[test]
fn plain_conv_with_pads_of_1e9_is_an_error_not_a_capacity_overflow() {
    // Built directly (no import), so only the interpreter stands between the file and the allocation.
    let mut g = Graph::new("conv");
    g.inputs.push(ValueInfo::batched("x", &[1, 4, 4]));
    g.initializers.insert("w".into(), ArrayD::from_elem(vec![1, 1, 1, 1], 1.0));
    let cfg = ConvConfig {
        weight: "w".into(),
        bias: None,
        kernel: [1, 1],
        stride: [1, 1],
        padding: [1_000_000_000; 4],
        dilation: [1, 1],
        groups: 1,
    };
    g.nodes.push(Node::new("conv", Op::Conv(cfg.clone()), &["x"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    let e = plain::run_single(&g, ArrayD::zeros(vec![1, 1, 4, 4])).unwrap_err().to_string();
    assert!(e.contains("conv") && e.contains("elements"), "{e}");
    // The kernel guards itself too, for callers that skip `run`.
    let x = ArrayD::zeros(vec![1, 1, 4, 4]);
    let e = plain::eval_node(&g, &g.nodes[0], &[&x]).unwrap_err().to_string();
    assert!(e.contains("conv"), "{e}");
}

/// `ConstantOfShape(shape)` feeding nothing the graph needs: it is folded all the same.
fn constant_of_shape(dims: &[i64]) -> Vec<u8> {
    let nodes = vec![node("ConstantOfShape", "cos", &["s"], &["big"], vec![]), relu()];
    model(nodes, vec![encode_i64("s", dims)], &[1, 4])
}

#[test]
fn constant_of_shape_of_1e12_or_2_pow_64_elements_is_an_error_naming_the_node() {
    for dims in [&[1_000_000, 1_000_000][..], &[1 << 32, 1 << 32], &[i64::MAX, i64::MAX]] {
        let e = import_err(&constant_of_shape(dims)).to_string();
        assert!(e.contains("cos") && e.contains("ConstantOfShape"), "{dims:?}: {e}");
    }
    // A small one still folds.
    assert!(import_bytes(&constant_of_shape(&[3, 4]), Path::new("ok.onnx")).is_ok());
}

#[test]
fn folding_has_a_budget_so_many_large_constants_are_refused() {
    // 64 ConstantOfShape nodes of 2^22 elements each: every one is under the per-tensor limit,
    // together they pass the import's folding budget (2^26 plus 4 per weight element).
    let mut nodes: Vec<NodeProto> =
        (0..64).map(|i| node("ConstantOfShape", &format!("c{i}"), &["s"], &[&format!("k{i}")], vec![])).collect();
    nodes.push(relu());
    let e = import_err(&model(nodes, vec![encode_i64("s", &[1 << 11, 1 << 11])], &[1, 4])).to_string();
    assert!(e.contains("folding budget") && e.contains("ConstantOfShape"), "{e}");
}

#[test]
fn folded_range_tile_and_broadcasts_are_bounded() {
    let scalar = |name: &str, v: f32| encode_f32(name, &ArrayD::from_elem(vec![], v));
    // Range 0..1e12.
    let nodes = vec![node("Range", "range", &["a", "b", "d"], &["r"], vec![]), relu()];
    let e = import_err(&model(nodes, vec![scalar("a", 0.0), scalar("b", 1e12), scalar("d", 1.0)], &[1, 4]));
    assert!(e.to_string().contains("range"), "{e}");
    // Range to infinity.
    let nodes = vec![node("Range", "range", &["a", "b", "d"], &["r"], vec![]), relu()];
    let e = import_err(&model(nodes, vec![scalar("a", 0.0), scalar("b", f32::INFINITY), scalar("d", 1.0)], &[1, 4]));
    assert!(e.to_string().contains("range"), "{e}");
    // Tile by 2^62.
    let t = encode_f32("t", &ArrayD::from_elem(vec![2], 1.0));
    let nodes = vec![node("Tile", "tile", &["t", "reps"], &["r"], vec![]), relu()];
    let e = import_err(&model(nodes, vec![t, encode_i64("reps", &[1 << 62])], &[1, 4]));
    assert!(e.to_string().contains("tile"), "{e}");
    // [65536, 1] + [1, 65536]: two small constants, a 2^32-element sum.
    let a = encode_f32("a", &ArrayD::zeros(vec![1 << 16, 1]));
    let b = encode_f32("b", &ArrayD::zeros(vec![1, 1 << 16]));
    let nodes = vec![node("Add", "outer", &["a", "b"], &["r"], vec![]), relu()];
    let e = import_err(&model(nodes, vec![a, b], &[1, 4]));
    assert!(e.to_string().contains("outer"), "{e}");
}

/// Pad of a [1, 1, 4, 4] input by `p` on both sides of H and W.
fn padded(p: i64) -> Vec<u8> {
    let nodes = vec![node("Pad", "pad", &["x", "pads"], &["y"], vec![])];
    model(nodes, vec![encode_i64("pads", &[0, 0, p, p, 0, 0, p, p])], &[1, 1, 4, 4])
}

#[test]
fn pad_to_1e6_by_1e6_is_an_error_naming_the_pad() {
    let s = import_err(&padded(500_000)).to_string();
    assert!(s.contains("node pad (Pad)") && s.contains("elements"), "{s}");
    let s = import_err(&padded(i64::MAX)).to_string();
    assert!(s.contains("pad"), "{s}");
    // In plain mode on a graph built directly.
    let mut g = Graph::new("pad");
    g.inputs.push(ValueInfo::batched("x", &[1, 4, 4]));
    let cfg = PadConfig { pads: vec![(0, 0), (0, 0), (500_000, 500_000), (500_000, 500_000)], value: 0.0 };
    g.nodes.push(Node::new("pad", Op::Pad(cfg), &["x"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    let x = ArrayD::zeros(vec![1, 1, 4, 4]);
    let e = plain::run_single(&g, x.clone()).unwrap_err().to_string();
    assert!(e.contains("pad"), "{e}");
    let e = plain::eval_node(&g, &g.nodes[0], &[&x]).unwrap_err().to_string();
    assert!(e.contains("pad") && e.contains("elements"), "{e}");
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Add(x, w) with `w` ([4] f32) in external data at `location`.
fn external_model(location: &str) -> Vec<u8> {
    let entry = |k: &str, v: &str| StringStringEntryProto { key: k.into(), value: v.into() };
    let w = TensorProto {
        name: "w".into(),
        dims: vec![4],
        data_type: data_type::FLOAT,
        data_location: masq_onnx::external::EXTERNAL,
        external_data: vec![entry("location", location), entry("offset", "0"), entry("length", "16")],
        ..Default::default()
    };
    model(vec![node("Add", "add", &["x", "w"], &["y"], vec![])], vec![w], &[1, 4])
}

#[cfg(unix)]
#[test]
fn external_data_through_a_symlink_out_of_the_model_directory_is_refused() {
    let d = scratch("symlink");
    let passwd = if Path::new("/etc/passwd").is_file() { PathBuf::from("/etc/passwd") } else { d.join("../outside") };
    std::os::unix::fs::symlink(&passwd, d.join("weights.bin")).unwrap();
    let path = d.join("model.onnx");
    std::fs::write(&path, external_model("weights.bin")).unwrap();
    let e = masq_onnx::import_file(&path).unwrap_err().to_string();
    assert!(e.contains("weights.bin") && e.contains("outside the model directory"), "{e}");
    // A link to a directory outside, then a file below it.
    std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap();
    std::fs::write(&path, external_model("etc/passwd")).unwrap();
    let e = masq_onnx::import_file(&path).unwrap_err().to_string();
    assert!(e.contains("outside the model directory"), "{e}");
    // A link that stays inside the directory is fine.
    std::fs::write(
        d.join("real.bin"),
        [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
    )
    .unwrap();
    std::os::unix::fs::symlink("real.bin", d.join("inside.bin")).unwrap();
    std::fs::write(&path, external_model("inside.bin")).unwrap();
    let g = masq_onnx::import_file(&path).unwrap();
    assert_eq!(g.initializers["w"].as_slice().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Where(mask, Relu(x), x) over a [1, 2, 2, 2] input with a UINT8 mask of the per-image shape.
fn masked(mask: &[i32], elem: i32) -> Vec<u8> {
    let nodes =
        vec![node("Relu", "r", &["x"], &["rx"], vec![]), node("Where", "act", &["m", "rx", "x"], &["y"], vec![])];
    model(nodes, vec![encode_int("m", &[2, 2, 2], elem, mask)], &[1, 2, 2, 2])
}

#[test]
fn a_uint8_mask_holding_2_is_refused_with_its_name_and_value() {
    let e = import_err(&masked(&[1, 0, 2, 1, 0, 0, 1, 1], data_type::UINT8)).to_string();
    assert!(e.contains("mask m") && e.contains("value 2"), "{e}");
    // A 0/1 UINT8 mask is still a masked activation.
    let g = import_bytes(&masked(&[1, 0, 1, 1, 0, 0, 1, 1], data_type::UINT8), Path::new("ok.onnx")).unwrap();
    assert!(g.nodes.iter().any(|n| matches!(n.op, Op::MaskedAct(_))));
    // A BOOL tensor whose byte is 2 is malformed wherever it appears.
    let bool2 = TensorProto {
        name: "b".into(),
        dims: vec![8],
        data_type: data_type::BOOL,
        raw_data: vec![2; 8],
        ..Default::default()
    };
    let e = import_err(&model(vec![relu()], vec![bool2], &[1, 4])).to_string();
    assert!(e.contains("tensor b") && e.contains("value 2"), "{e}");
}
