//! Models exported at a fixed batch (issue #14), through the CLI: `masq run`, `masq estimate` and
//! `masq reduce` agree on what such a model takes. A fixed batch that every node treats image by
//! image is generalised (the model runs at any batch, with the results of one image at a time);
//! one that a node mixes stays fixed, and every command says so with the same message.
//!
//! The core cases build their ONNX files in code; `torch_exports_at_a_fixed_batch_run_at_any_batch`
//! exports real models with the project's Python (`.masq/python`, torch's two exporters) and skips
//! with a message when it is absent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use masq_onnx::proto::*;
use masq_onnx::tensor::{encode_f32, encode_i64};
use ndarray::{ArrayD, Axis};
use prost::Message;

fn masq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-fixed-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().expect("a line")).expect("JSON")
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Deterministic values in [-1, 1).
fn values(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ArrayD::from_shape_fn(shape.to_vec(), |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims.iter().map(|&d| Dimension { dim_value: Some(d), ..Default::default() }).collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: data_type::FLOAT, shape: Some(TensorShapeProto { dim }) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..Default::default() }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn write_model(path: &Path, nodes: Vec<NodeProto>, inits: Vec<TensorProto>, input: &[i64]) {
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            name: "fixed".into(),
            node: nodes,
            initializer: inits,
            input: vec![value_info("x", input)],
            output: vec![ValueInfoProto { name: "y".into(), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(path, m.encode_to_vec()).unwrap();
}

/// Conv(3->4, 3x3) -> Relu -> MaxPool 2 -> Reshape([b, 4·(s/2)²]) -> Gemm(classes), the way torch
/// exports `x.view(x.size(0), -1)` at batch `b` without dynamic axes.
fn cnn(path: &Path, b: i64, size: usize, classes: usize) {
    let feat = 4 * (size / 2) * (size / 2);
    let nodes = vec![
        node("Conv", "conv", &["x", "w", "wb"], "c", vec![ints("pads", &[1, 1, 1, 1])]),
        node("Relu", "relu", &["c"], "r", vec![]),
        node("MaxPool", "pool", &["r"], "p", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]),
        node("Reshape", "flatten", &["p", "target"], "f", vec![]),
        node("Gemm", "fc", &["f", "fcw", "fcb"], "y", vec![int("transB", 1)]),
    ];
    let inits = vec![
        encode_f32("w", &values(&[4, 3, 3, 3], 1)),
        encode_f32("wb", &values(&[4], 2)),
        encode_f32("fcw", &values(&[classes, feat], 3).mapv(|v| v * 0.1)),
        encode_f32("fcb", &values(&[classes], 4)),
        encode_i64("target", &[b, feat as i64]),
    ];
    write_model(path, nodes, inits, &[b, 3, size as i64, size as i64]);
}

/// `[4, 3, 4, 4] -> [1, 12, 4, 4]` (the four images become one image's channels) -> Conv -> Relu.
fn mixing(path: &Path) {
    let nodes = vec![
        node("Reshape", "stack_images", &["x", "target"], "s", vec![]),
        node("Conv", "conv", &["s", "w"], "c", vec![]),
        node("Relu", "relu", &["c"], "y", vec![]),
    ];
    let inits = vec![encode_i64("target", &[1, 12, 4, 4]), encode_f32("w", &values(&[2, 12, 1, 1], 1))];
    write_model(path, nodes, inits, &[4, 3, 4, 4]);
}

fn write_npy(name: &str, x: &ArrayD<f32>) -> String {
    let p = tmp(name);
    masq_ir::npy::write(&p, x).unwrap();
    p.to_str().unwrap().to_string()
}

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `masq run MODEL --mode MODE` on `x`: the JSON result and the output tensor.
fn run(model: &str, x: &ArrayD<f32>, mode: &str, tag: &str) -> (serde_json::Value, ArrayD<f32>) {
    let input = write_npy(&format!("{tag}_x.npy"), x);
    let output = tmp(&format!("{tag}_y.npy"));
    let o =
        json(&masq(&["run", model, "--input", &input, "--mode", mode, "--json", "--output", output.to_str().unwrap()]));
    (o, masq_ir::npy::read_f32(&output).unwrap())
}

#[test]
fn a_batch_4_export_runs_at_any_batch_and_estimates_per_image() {
    let path = tmp("cnn4.onnx");
    cnn(&path, 4, 8, 5);
    let m = path.to_str().unwrap();
    let x = values(&[4, 3, 8, 8], 7);
    let (o4, y4) = run(m, &x, "plain", "b4");
    assert_eq!(o4["batch"], 4);
    assert_eq!(o4["relu_count"], 4 * 8 * 8);
    assert_eq!(o4["comparisons_per_batch"], 4 * o4["comparisons"].as_u64().unwrap());
    assert!(o4["fixed_batch"].is_null());
    // Batches 1 and 3 give the rows of batch 4.
    for (n, tag) in [(1usize, "b1"), (3, "b3")] {
        let xs = x.slice_axis(Axis(0), (0..n).into()).to_owned();
        let (o, y) = run(m, &xs, "plain", tag);
        assert_eq!(o["batch"], n);
        assert!(max_diff(&y, &y4.slice_axis(Axis(0), (0..n).into()).to_owned()) < 1e-5, "batch {n}");
    }
    // One image without the batch axis is batch 1.
    let (o, _) = run(m, &x.index_axis(Axis(0), 0).to_owned(), "plain", "img");
    assert_eq!(o["batch"], 1);
    // Under 2PC at batch 3 the figures are per image and per batch of 3.
    let (o, y) = run(m, &x.slice_axis(Axis(0), (0..3).into()).to_owned(), "mpc", "mpc3");
    assert!(max_diff(&y, &y4.slice_axis(Axis(0), (0..3).into()).to_owned()) < 5e-3);
    assert_eq!(o["relu_count"], 4 * 8 * 8);
    assert_eq!(o["comparisons_per_batch"], 3 * o["comparisons"].as_u64().unwrap());
    // estimate costs one image by default, and any batch on request.
    let e1 = json(&masq(&["estimate", m, "--json"]));
    assert_eq!((e1["batch"].clone(), e1["relu_count"].clone()), (1.into(), (4 * 8 * 8).into()));
    let e3 = json(&masq(&["estimate", m, "--batch", "3", "--json"]));
    assert_eq!(e3["relu_count"], e1["relu_count"]);
    assert_eq!(e3["comparisons_per_batch"], 3 * e1["comparisons_per_batch"].as_u64().unwrap());
    assert_eq!(e3["online_bytes"].as_f64(), o["online_bytes"].as_f64());
}

#[test]
fn a_batch_1_export_with_a_baked_view_runs_at_batch_5() {
    let path = tmp("cnn1.onnx");
    cnn(&path, 1, 8, 5);
    let m = path.to_str().unwrap();
    let x = values(&[5, 3, 8, 8], 9);
    let (o, y) = run(m, &x, "plain", "v5");
    assert_eq!(o["output_shape"], serde_json::json!([5, 5]));
    for i in 0..5 {
        let (_, yi) = run(m, &x.index_axis(Axis(0), i).to_owned(), "plain", &format!("v1_{i}"));
        assert!(max_diff(&yi, &y.slice_axis(Axis(0), (i..i + 1).into()).to_owned()) < 1e-5);
    }
    // onnxruntime runs the file as exported: one image at a time.
    let (_, yo) = run(m, &x, "ort", "v5ort");
    assert!(max_diff(&yo, &y) < 1e-4);
}

#[test]
fn a_model_that_mixes_its_batch_gives_one_clear_message_everywhere() {
    let path = tmp("mix4.onnx");
    mixing(&path);
    let m = path.to_str().unwrap();
    let why = format!(
        "{m} has a fixed batch of 4 that cannot be generalised (node stack_images (Reshape) reshapes the batch \
         axis: [4, 3, 4, 4] into [1, 12, 4, 4], mixing the images)"
    );
    for (n, tag) in [(1usize, "m1"), (3, "m3")] {
        let input = write_npy(&format!("{tag}.npy"), &values(&[n, 3, 4, 4], 1));
        let err = failure(&masq(&["run", m, "--input", &input, "--mode", "plain"]));
        assert!(err.contains(&why), "{err}");
        assert!(err.contains(&format!("{n} image(s), but")) && err.contains("give exactly 4 images"), "{err}");
    }
    // At its own batch it runs; one inference is the 4 images, in plain and 2PC alike.
    let x = values(&[4, 3, 4, 4], 2);
    let (p, _) = run(m, &x, "plain", "m4");
    let (s, _) = run(m, &x, "mpc", "m4mpc");
    assert_eq!(p["fixed_batch"], 4);
    assert_eq!(s["fixed_batch"], 4);
    assert_eq!(p["relu_count"], 2 * 4 * 4);
    assert_eq!(p["comparisons_per_batch"], p["comparisons"]);
    assert_eq!(s["comparisons_per_batch"], p["comparisons_per_batch"]);
    let input = write_npy("m4t.npy", &x);
    let table = masq(&["run", m, "--input", &input, "--mode", "plain"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&why) && text.contains("one inference is all 4 images"), "{text}");

    // estimate costs that inference and says so; another --batch is refused with the same reason.
    let e = json(&masq(&["estimate", m, "--json"]));
    assert_eq!((e["batch"].clone(), e["fixed_batch"].clone()), (4.into(), 4.into()));
    assert_eq!(e["online_bytes"].as_f64(), s["online_bytes"].as_f64());
    assert_eq!(json(&masq(&["estimate", m, "--batch", "4", "--json"]))["online_bytes"], e["online_bytes"]);
    let text = masq(&["estimate", m]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("one inference is all 4 images"));
    let err = failure(&masq(&["estimate", m, "--batch", "1"]));
    assert!(err.contains(&why) && err.contains("give --batch 4 or leave it out"), "{err}");
}

#[cfg(feature = "train")]
#[test]
fn reduce_trains_a_batch_1_export_and_refuses_a_mixing_one_by_name() {
    let path = tmp("cnn1_32.onnx");
    cnn(&path, 1, 32, 10);
    let out = tmp("reduced");
    let common = [
        "--dataset",
        "synthetic",
        "--relu-budget",
        "1000",
        "--mask-epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--max-batches",
        "2",
        "--batch-size",
        "8",
        "--train-limit",
        "32",
        "--test-limit",
        "16",
        "--device",
        "cpu",
        "--json",
    ];
    let mut args = vec!["reduce", "--from", path.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(common);
    let r = json(&masq(&args));
    assert!(r["relu_count"].as_u64().unwrap() <= 1000, "{r}");

    let mix = tmp("mix4_reduce.onnx");
    mixing(&mix);
    let mut args = vec!["reduce", "--from", mix.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(common);
    let err = failure(&masq(&args));
    assert!(err.contains("has a fixed batch of 4 that cannot be generalised (node stack_images (Reshape)"), "{err}");
    assert!(err.contains("masq reduce trains in mini-batches"), "{err}");
}

/// The project's Python with torch and onnx, or why not.
fn python() -> Result<PathBuf, String> {
    let configured = PathBuf::from(option_env!("MASQ_PYTHON").ok_or("MASQ_PYTHON was not set at build time")?);
    let mut candidates = vec![configured.clone()];
    if let Some(dir) = configured.parent() {
        candidates.push(dir.join("venv").join("bin").join("python"));
    }
    for py in &candidates {
        if Command::new(py)
            .args(["-c", "import torch, onnx, onnxscript, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Ok(py.clone());
        }
    }
    Err(format!("no Python with torch, onnx and onnxscript at {}", configured.display()))
}

#[test]
fn torch_exports_at_a_fixed_batch_run_at_any_batch() {
    let py = match python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipping the torch fixed-batch exports: {why}");
            return;
        }
    };
    let dir = tmp("torch");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("export.py");
    std::fs::write(&script, TORCH_SCRIPT).unwrap();
    let o = Command::new(&py).arg(&script).arg(&dir).output().unwrap();
    assert!(o.status.success(), "export failed: {}", String::from_utf8_lossy(&o.stderr));
    let f = |name: &str| dir.join(name).to_str().unwrap().to_string();
    for exporter in ["legacy", "dynamo"] {
        for (model, batches) in [("cnn4", &[1usize, 3, 4][..]), ("cnn1", &[1, 5]), ("vit4", &[1, 3, 4])] {
            let file = f(&format!("{model}_{exporter}.onnx"));
            for &n in batches {
                let want = masq_ir::npy::read_f32(dir.join(format!("{}_y{n}.npy", &model[..3]))).unwrap();
                let x = masq_ir::npy::read_f32(dir.join(format!("x{n}.npy"))).unwrap();
                let (o, y) = run(&file, &x, "plain", &format!("{model}_{exporter}_{n}"));
                assert!(o["fixed_batch"].is_null(), "{file}");
                let d = max_diff(&y, &want);
                assert!(d < 1e-4, "{file} at batch {n}: max |masq - torch| = {d}");
            }
        }
        let file = f(&format!("mix4_{exporter}.onnx"));
        let input = dir.join("x1.npy");
        let err = failure(&masq(&["run", &file, "--input", input.to_str().unwrap(), "--mode", "plain"]));
        assert!(err.contains("has a fixed batch of 4 that cannot be generalised (node "), "{err}");
        assert!(err.contains("give exactly 4 images"), "{err}");
    }
}

/// Exports with both exporters at a fixed batch (no dynamic axes): a CNN with
/// `x.view(x.size(0), -1)` at batch 4 and at batch 1, a ViT-like model whose class token is
/// expanded to the batch, and a model that folds its batch into channels; then writes inputs
/// `x{n}.npy` and torch's outputs `{cnn,vit}_y{n}.npy` at other batches.
const TORCH_SCRIPT: &str = r#"
import sys, torch, torch.nn as nn, numpy as np
out = sys.argv[1]
class Cnn(nn.Module):
    def __init__(s):
        super().__init__(); s.c = nn.Conv2d(3, 4, 3, padding=1); s.fc = nn.Linear(4 * 8 * 8, 5)
    def forward(s, x):
        x = nn.functional.max_pool2d(torch.relu(s.c(x)), 2)
        return s.fc(x.view(x.size(0), -1))
class Vit(nn.Module):
    def __init__(s):
        super().__init__(); s.p = nn.Conv2d(3, 8, 4, stride=4); s.cls = nn.Parameter(torch.randn(1, 1, 8)); s.fc = nn.Linear(8, 5)
    def forward(s, x):
        x = s.p(x).flatten(2).transpose(1, 2)
        x = torch.cat([s.cls.expand(x.shape[0], -1, -1), x], 1)
        return s.fc(torch.relu(x)[:, :1].flatten(1))
class Mix(nn.Module):
    def __init__(s):
        super().__init__(); s.c = nn.Conv2d(12, 2, 1)
    def forward(s, x):
        return torch.relu(s.c(x.reshape(1, 12, 16, 16)))
torch.manual_seed(0)
models = {"cnn": Cnn().eval(), "vit": Vit().eval(), "mix": Mix().eval()}
for name, b in [("cnn", 4), ("cnn", 1), ("vit", 4), ("mix", 4)]:
    for dynamo in [False, True]:
        tag = f"{name}{b}_{'dynamo' if dynamo else 'legacy'}"
        torch.onnx.export(models[name], torch.randn(b, 3, 16, 16), f"{out}/{tag}.onnx", dynamo=dynamo)
for n in [1, 3, 4, 5]:
    x = torch.randn(n, 3, 16, 16)
    np.save(f"{out}/x{n}.npy", x.numpy())
    with torch.no_grad():
        for name in ["cnn", "vit"]:
            np.save(f"{out}/{name}_y{n}.npy", models[name](x).numpy())
"#;
