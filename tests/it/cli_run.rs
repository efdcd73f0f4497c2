//! `masq run` and `masq estimate` end to end: the JSON contract, the output file, and clear errors
//! (never a panic) for bad inputs and flags.

use std::path::PathBuf;
use std::process::{Command, Output};

use ndarray::ArrayD;

fn masq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn run_plain_and_mpc_agree_and_report() {
    let x = ArrayD::from_shape_fn(vec![2, 1, 28, 28], |d| ((d[2] * 28 + d[3]) % 17) as f32 / 17.0 - 0.3 * d[0] as f32);
    let input = tmp("mnist_x.npy");
    masq_ir::npy::write(&input, &x).unwrap();
    let out_plain = tmp("y_plain.npy");
    let out_mpc = tmp("y_mpc.npy");
    let i = input.to_str().unwrap();
    let p = json(&masq(&[
        "run",
        "zoo:mnist_cnn",
        "--input",
        i,
        "--mode",
        "plain",
        "--json",
        "--output",
        out_plain.to_str().unwrap(),
    ]));
    let m = json(&masq(&[
        "run",
        "zoo:mnist_cnn",
        "--input",
        i,
        "--mode",
        "mpc",
        "--json",
        "--seed",
        "5",
        "--output",
        out_mpc.to_str().unwrap(),
    ]));
    for key in [
        "mode",
        "relu_count",
        "online_bytes",
        "rounds",
        "offline_bytes",
        "seconds",
        "offline_seconds",
        "est_lan_seconds",
        "est_wan_seconds",
        "max_abs_error",
        "output_shape",
        "layers",
    ] {
        assert!(p.get(key).is_some() && m.get(key).is_some(), "key {key}");
    }
    assert_eq!(m["mode"], "mpc");
    assert_eq!(p["mode"], "plain");
    assert_eq!(m["output_shape"], serde_json::json!([2, 10]));
    assert_eq!(m["relu_count"], p["relu_count"], "ReLU elements per image");
    assert_eq!(m["relu_count"], 8 * 28 * 28 + 16 * 14 * 14);
    assert_eq!(m["comparisons_per_batch"], p["comparisons_per_batch"]);
    assert_eq!(m["comparisons_per_batch"], 2 * m["comparisons"].as_u64().unwrap());
    assert!(m["max_abs_error"].as_f64().unwrap() < 1e-2);
    assert!(m["rounds"].as_u64().unwrap() > 4 && m["online_bytes"].as_u64().unwrap() > 0);
    assert!(m["est_wan_seconds"].as_f64().unwrap() > m["est_lan_seconds"].as_f64().unwrap());
    assert_eq!(m["predictions"], p["predictions"]);
    let yp = masq_ir::npy::read_f32(&out_plain).unwrap();
    let ym = masq_ir::npy::read_f32(&out_mpc).unwrap();
    assert_eq!(yp.shape(), &[2, 10]);
    assert!(yp.iter().zip(ym.iter()).all(|(a, b)| (a - b).abs() < 1e-2));

    // Human output: a table, totals and one prediction per image.
    let h = masq(&["run", "zoo:mnist_cnn", "--input", i, "--mode", "mpc"]);
    assert!(h.status.success());
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(text.contains("conv1") && text.contains("total per image:") && text.contains("image 1: class"), "{text}");

    // One image without the batch axis is accepted.
    let one = tmp("one.npy");
    masq_ir::npy::write(&one, &ArrayD::<f32>::zeros(vec![1, 28, 28])).unwrap();
    let o = json(&masq(&["run", "zoo:mnist_cnn", "--input", one.to_str().unwrap(), "--mode", "plain", "--json"]));
    assert_eq!(o["output_shape"], serde_json::json!([1, 10]));
}

#[test]
fn run_rejects_bad_inputs_and_flags_clearly() {
    let bad = tmp("bad_shape.npy");
    masq_ir::npy::write(&bad, &ArrayD::<f32>::zeros(vec![1, 3, 28, 28])).unwrap();
    let b = bad.to_str().unwrap();
    let err = failure(&masq(&["run", "zoo:mnist_cnn", "--input", b, "--mode", "mpc"]));
    assert!(err.contains("bad_shape.npy") && err.contains("[1, 3, 28, 28]"), "{err}");
    let err = failure(&masq(&["run", "zoo:mnist_cnn", "--input", "/nonexistent/x.npy"]));
    assert!(err.contains("/nonexistent/x.npy"), "{err}");
    let nan = tmp("nan.npy");
    masq_ir::npy::write(&nan, &ArrayD::from_elem(vec![1, 1, 28, 28], f32::NAN)).unwrap();
    let err = failure(&masq(&["run", "zoo:mnist_cnn", "--input", nan.to_str().unwrap()]));
    assert!(err.contains("nan.npy") && err.contains("finite"), "{err}");
    let ok = tmp("ok.npy");
    masq_ir::npy::write(&ok, &ArrayD::<f32>::zeros(vec![1, 1, 28, 28])).unwrap();
    let o = ok.to_str().unwrap();
    let err = failure(&masq(&["run", "zoo:mnist_cnn", "--input", o, "--frac-bits", "0"]));
    assert!(err.contains("frac-bits"), "{err}");
    let err = failure(&masq(&["run", "zoo:mnist_cnn", "--input", o, "--mode", "ort"]));
    assert!(err.contains("needs an ONNX file"), "{err}");
    failure(&masq(&["run", "zoo:mnist_cnn", "--input", o, "--mode", "gpu"]));
    let err = failure(&masq(&["run", "zoo:nosuchnet", "--input", o]));
    assert!(err.contains("nosuchnet"), "{err}");
}

#[test]
fn estimate_reports_masq_and_published_protocols() {
    let m = json(&masq(&["estimate", "zoo:resnet20", "--json"]));
    assert_eq!(m["relu_count"], 188_416);
    assert_eq!(m["protocol"], "masq");
    let c = json(&masq(&["estimate", "zoo:resnet20", "--protocol", "crypten", "--network", "wan", "--json"]));
    assert!(c["online_bytes"].as_f64().unwrap() > m["online_bytes"].as_f64().unwrap());
    assert!(c["rounds"].as_u64().unwrap() > m["rounds"].as_u64().unwrap());
    let b = json(&masq(&["estimate", "zoo:resnet20", "--network", "1,10", "--batch", "2", "--json"]));
    assert_eq!(b["relu_count"], 188_416, "per image, whatever the batch");
    assert_eq!(b["comparisons_per_batch"], 2 * 188_416);
    let t = masq(&["estimate", "zoo:mnist_cnn", "--protocol", "delphi"]);
    assert!(t.status.success() && String::from_utf8_lossy(&t.stdout).contains("total:"));
    let err = failure(&masq(&["estimate", "zoo:resnet20", "--protocol", "sgx"]));
    assert!(err.contains("sgx"), "{err}");
    let err = failure(&masq(&["estimate", "zoo:resnet20", "--network", "fast"]));
    assert!(err.contains("fast"), "{err}");
    failure(&masq(&["estimate", "zoo:resnet20", "--batch", "0"]));
}

#[test]
fn mpc_refuses_an_input_beyond_the_fixed_point_range_naming_the_element() {
    let d = std::env::temp_dir().join(format!("masq-cli-run-range-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let mut x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[1, 1, 28, 28]));
    x[[0, 0, 3, 4]] = 1e7;
    let p = d.join("big.npy");
    masq_ir::npy::write(&p, &x).unwrap();
    let masq = env!("CARGO_BIN_EXE_masq");
    let out = std::process::Command::new(masq)
        .args(["run", "zoo:mnist_cnn", "--input", p.to_str().unwrap(), "--mode", "mpc"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("element [0, 0, 3, 4] is 10000000"), "{err}");
    // The same input in the clear is fine, and within the range 2PC runs.
    let plain = std::process::Command::new(masq)
        .args(["run", "zoo:mnist_cnn", "--input", p.to_str().unwrap(), "--mode", "plain"])
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    x[[0, 0, 3, 4]] = 1e4;
    masq_ir::npy::write(&p, &x).unwrap();
    let ok = std::process::Command::new(masq)
        .args(["run", "zoo:mnist_cnn", "--input", p.to_str().unwrap(), "--mode", "mpc"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn too_few_fractional_bits_are_warned_about_with_a_hint() {
    let x = ArrayD::from_shape_fn(vec![1, 1, 28, 28], |d| ((d[2] * 28 + d[3]) % 13) as f32 / 13.0);
    let input = tmp("mnist_precision.npy");
    masq_ir::npy::write(&input, &x).unwrap();
    let i = input.to_str().unwrap();
    let run = |f: &str| masq(&["run", "zoo:mnist_cnn", "--input", i, "--mode", "mpc", "--frac-bits", f, "--json"]);
    let coarse = run("4");
    let stderr = String::from_utf8_lossy(&coarse.stderr).to_string();
    let j = json(&coarse);
    assert!(j["max_abs_error"].as_f64().unwrap() > 0.0);
    assert!(stderr.contains("amplifies fixed-point rounding") && stderr.contains("--frac-bits 8"), "{stderr}");
    let fine = run("16");
    let stderr = String::from_utf8_lossy(&fine.stderr).to_string();
    json(&fine);
    assert!(!stderr.contains("fixed-point rounding"), "{stderr}");
}

#[test]
fn mpc_refuses_a_scale_the_ring_cannot_hold_naming_the_layer() {
    let x = ArrayD::from_shape_fn(vec![2, 1, 28, 28], |d| ((d[2] * 28 + d[3]) % 17) as f32 / 17.0);
    let input = tmp("headroom_x.npy");
    masq_ir::npy::write(&input, &x).unwrap();
    let i = input.to_str().unwrap();
    // 24 fractional bits: products at 2^48, about one wrong truncation in ten images (limit: 1 in 100).
    let err = failure(&masq(&["run", "zoo:mnist_cnn", "--input", i, "--mode", "mpc", "--frac-bits", "24"]));
    assert!(err.contains("layer conv1") && err.contains("too little headroom"), "{err}");
    let fits = err.split("use --frac-bits ").nth(1).and_then(|s| s.split(' ').next()).expect("a suggestion");
    let fits: u32 = fits.parse().unwrap();
    assert!((17..24).contains(&fits), "{err}");
    // At the suggestion it runs, and reports the expectation (total and per layer).
    let m = json(&masq(&[
        "run",
        "zoo:mnist_cnn",
        "--input",
        i,
        "--mode",
        "mpc",
        "--frac-bits",
        &fits.to_string(),
        "--json",
    ]));
    let total = m["expected_truncation_failures"].as_f64().unwrap();
    assert!(total > 0.0 && total <= 2.0 * 1e-2, "{total}");
    let conv1 = m["layers"].as_array().unwrap().iter().find(|l| l["name"] == "conv1").unwrap();
    assert!(conv1["expected_truncation_failures"].as_f64().unwrap() > 0.0);
    assert!(conv1["truncated_bits"].as_u64().unwrap() > 2 * fits as u64 - 4, "{conv1}");
}
