//! One meaning per figure: `relu_count` and every comparison count agree between `masq inspect`,
//! `masq run --mode plain`, `masq run --mode mpc` and `masq estimate`, for every zoo model and
//! for a model with Clip (ReLU6), LeakyReLU and a padded max-pool, at batch 1 and batch 2.

use std::path::PathBuf;
use std::process::{Command, Output};

use masq_ir::{ClipConfig, ConvConfig, Dim, FlattenConfig, Graph, LeakyReluConfig, Node, Op, PoolConfig, ValueInfo};
use ndarray::ArrayD;
use serde_json::Value;

const KEYS: [&str; 5] =
    ["relu_count", "maxpool_comparisons", "clip_comparisons", "leaky_relu_comparisons", "comparisons"];

fn masq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

/// The last line of stdout: every `--json` command ends with its result object on one line.
fn result(args: &[&str]) -> Value {
    let out = masq(args);
    assert!(out.status.success(), "masq {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap_or_else(|| panic!("masq {args:?} printed nothing"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("masq {args:?}: last line is not JSON ({e}): {last}"))
}

fn counts(v: &Value, what: &str) -> Vec<u64> {
    KEYS.iter().map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{what}: no {k} in {v}"))).collect()
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-relu-counts-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Checks one model; returns its `inspect` counts.
fn check(spec: &str, input: (usize, usize, usize)) -> Vec<u64> {
    let inspect = result(&["inspect", spec, "--json"]);
    let want = counts(&inspect, "inspect");
    assert_eq!(want[4], want[..4].iter().sum::<u64>(), "{spec}: comparisons is the sum of the kinds");
    for batch in [1usize, 2] {
        let (c, h, w) = input;
        let x =
            ArrayD::from_shape_fn(vec![batch, c, h, w], |d| ((d[1] * 7 + d[2] * 3 + d[3]) % 11) as f32 / 11.0 - 0.4);
        let tag = spec.replace([':', '@', '/', '.'], "_");
        let path = dir().join(format!("{tag}-{batch}.npy"));
        masq_ir::npy::write(&path, &x).unwrap();
        let p = path.to_str().unwrap();
        let b = batch.to_string();
        let runs = [
            ("run --mode plain", result(&["run", spec, "--input", p, "--mode", "plain", "--json"])),
            // 12 fractional bits: the counts do not depend on the scale, and the deep random-weight
            // ResNets' activations grow past what 16 bits leave the ring (secure::headroom).
            ("run --mode mpc", result(&["run", spec, "--input", p, "--mode", "mpc", "--frac-bits", "12", "--json"])),
            ("estimate", result(&["estimate", spec, "--batch", &b, "--json"])),
        ];
        for (what, v) in &runs {
            assert_eq!(counts(v, what), want, "{spec} batch {batch}: {what} vs inspect ({KEYS:?})");
            assert_eq!(
                v["comparisons_per_batch"].as_u64(),
                Some(want[4] * batch as u64),
                "{spec} batch {batch}: {what}"
            );
        }
        // Per layer: the plaintext run reports inspect's layers; the secure run reports the graph
        // after BatchNorm folding, whose surviving layers carry the same figures.
        let layer_relus = |v: &Value| -> Vec<(String, u64)> {
            v["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l["name"].as_str().unwrap().to_string(), l["relus"].as_u64().unwrap()))
                .collect()
        };
        let inspect_layers = layer_relus(&inspect);
        assert_eq!(layer_relus(&runs[0].1), inspect_layers, "{spec}: per-layer ReLUs, plain vs inspect");
        for (name, relus) in layer_relus(&runs[1].1) {
            if let Some((_, want)) = inspect_layers.iter().find(|(n, _)| *n == name) {
                assert_eq!(relus, *want, "{spec}: layer {name}, mpc vs inspect");
            }
        }
    }
    want
}

#[test]
fn every_zoo_model_reports_the_same_counts_everywhere() {
    for (name, (c, h, w)) in masq_ir::zoo::MODELS {
        // No ReLU (every model here must have some); its transformer ops' counts are issue #19's.
        if *name == "vit_cifar" {
            continue;
        }
        // Small inputs keep the 2PC runs and their dealer material small; the fully connected
        // heads of vgg16_cifar and mnist_cnn fix their input size.
        let (spec, hw) = match *name {
            "mnist_cnn" | "vgg16_cifar" => (format!("zoo:{name}"), (*h, *w)),
            _ => (format!("zoo:{name}@16x16"), (16, 16)),
        };
        let got = check(&spec, (*c, hw.0, hw.1));
        assert!(got[0] > 0, "{spec} has ReLUs");
    }
}

/// conv -> Clip(0, 6) -> LeakyRelu -> MaxPool 3x3 stride 2 pad 1 -> GlobalAveragePool -> Flatten.
fn clip_leaky_pool() -> Graph {
    let mut g = Graph::new("clip_leaky_pool");
    g.inputs.push(ValueInfo::new("x", vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(8), Dim::Fixed(8)]));
    let w = ArrayD::from_shape_fn(vec![4, 3, 3, 3], |d| ((d[0] + 2 * d[1] + d[2] + d[3]) % 5) as f32 * 0.1 - 0.2);
    g.initializers.insert("w".into(), w);
    let conv = ConvConfig {
        weight: "w".into(),
        bias: None,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1, 1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    g.nodes.push(Node::new("conv", Op::Conv(conv), &["x"], &["c"]));
    g.nodes.push(Node::new("relu6", Op::Clip(ClipConfig { min: Some(0.0), max: Some(6.0) }), &["c"], &["r"]));
    g.nodes.push(Node::new("leaky", Op::LeakyRelu(LeakyReluConfig { alpha: 0.1 }), &["r"], &["l"]));
    let pool = PoolConfig {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1, 1, 1],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    g.nodes.push(Node::new("pool", Op::MaxPool(pool), &["l"], &["p"]));
    g.nodes.push(Node::new("gap", Op::GlobalAveragePool, &["p"], &["a"]));
    g.nodes.push(Node::new("flat", Op::Flatten(FlattenConfig { axis: 1 }), &["a"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    g.finalize().unwrap();
    g
}

#[test]
fn clip_leaky_relu_and_padded_max_pool_are_counted_under_their_own_names() {
    let g = clip_leaky_pool();
    let model = masq_onnx::export::encode(&g, 17, "").unwrap();
    let path = dir().join("clip_leaky_pool.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&model)).unwrap();
    let got = check(path.to_str().unwrap(), (3, 8, 8));
    let elems = 4 * 8 * 8;
    // 3x3 windows on 8x8 at stride 2, pad 1: rows and columns hold 2, 3, 3, 3 valid inputs.
    let valid: u64 = 2 + 3 + 3 + 3;
    let maxpool = 4 * (valid * valid - 16);
    // ReLU6 (a clip to [0, 6]) counts one ReLU and one clip comparison per element.
    assert_eq!(got, vec![elems, maxpool, elems, elems, maxpool + 3 * elems]);
}
