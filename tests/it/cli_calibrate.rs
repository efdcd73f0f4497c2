//! `masq calibrate` end to end on generated data: per-layer widths below 64 bits, no overflow on
//! the calibration images, fewer dealer bytes, and the widened model written as a checkpoint and
//! as an artifact that `masq estimate` plans on; bad flags fail cleanly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

fn masq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-cli-calibrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().expect("a result line")).expect("JSON")
}

#[test]
fn calibrate_writes_narrower_widths_that_estimate_plans_on() {
    let ckpt = tmp("cal.safetensors");
    let art = tmp("cal-art");
    let mut offline = None;
    for out in [&ckpt, &art] {
        let o = out.to_str().unwrap();
        let args = ["calibrate", "zoo:cnn_small", "--dataset", "synthetic", "--images", "6", "--holdout", "4"];
        let r = json(&masq(&[&args[..], &["--batch-size", "4", "-o", o, "--force", "--json"]].concat()));
        let layers = r["layers"].as_array().unwrap();
        assert!(!layers.is_empty());
        let widths: BTreeMap<String, u32> = layers
            .iter()
            .map(|l| (l["name"].as_str().unwrap().to_string(), l["bits"].as_u64().unwrap() as u32))
            .collect();
        assert!(widths.values().all(|&b| (2..64).contains(&b)), "{widths:?}");
        assert_eq!(r["calibration_overflows"], 0);
        assert!(r["holdout_compared"].as_u64().unwrap() > 0);
        let (b64, bcal) = (r["offline_bytes_64"].as_u64().unwrap(), r["offline_bytes_calibrated"].as_u64().unwrap());
        assert!(bcal < b64, "{bcal} >= {b64}");
        let e = json(&masq(&["estimate", o, "--json"]));
        assert_eq!(e["offline_bytes"].as_f64().unwrap() as u64, bcal);
        for l in e["layers"].as_array().unwrap() {
            if let Some(&b) = widths.get(l["name"].as_str().unwrap()) {
                assert_eq!(l["cmp_bits"], b);
            }
        }
        if let Some(prev) = offline.replace(bcal) {
            assert_eq!(prev, bcal, "the same widths either way");
        }
    }
    let (g, _) = masq_ir::checkpoint::load_checkpoint(&ckpt).unwrap();
    assert!(!g.cmp_bits.is_empty());
}

#[test]
fn calibrate_refuses_bad_flags_without_panicking() {
    let o = tmp("bad.safetensors");
    let o = o.to_str().unwrap();
    for (args, says) in [
        (vec!["--images", "0"], "--images 0"),
        (vec!["--images", "30000"], "images asked"),
        (vec!["--guard-bits", "99"], "guard-bits"),
    ] {
        let base = ["calibrate", "zoo:cnn_small", "--dataset", "synthetic", "--holdout", "0", "-o", o];
        let out = masq(&[&base[..], &args[..]].concat());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn run_warns_when_an_input_exceeds_the_calibrated_widths() {
    let ckpt = tmp("warn.safetensors");
    let o = ckpt.to_str().unwrap();
    let args = ["calibrate", "zoo:cnn_small", "--dataset", "synthetic", "--images", "4", "--holdout", "0", "-o", o];
    json(&masq(&[&args[..], &["--json"]].concat()));
    let x = ndarray::ArrayD::from_shape_fn(vec![1, 3, 32, 32], |d| {
        // Up to 40 times the synthetic images' range: past the widths (3 guard bits are 8 times),
        // within the ring's truncation headroom (larger inputs are refused before dealing).
        ((d[1] * 1024 + d[2] * 32 + d[3]) % 13) as f32 * (40.0 / 6.0) - 40.0
    });
    let input = tmp("big.npy");
    masq_ir::npy::write(&input, &x).unwrap();
    let out = masq(&["run", o, "--input", input.to_str().unwrap(), "--mode", "mpc", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let r = json(&out);
    assert!(r["range_overflows"].as_u64().unwrap() > 0, "{r}");
    assert!(err.contains("warning:") && err.contains("comparison width"), "{err}");
}
