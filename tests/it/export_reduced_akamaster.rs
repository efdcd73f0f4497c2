//! An exported reduced akamaster ResNet-20 keeps its accuracy through export: the same top-1 on
//! the exact 1000-image CIFAR-10 test subset from the trainer's checkpoint (`masq reduce` reports
//! it) and from the artifact (`masq run --mode plain`). Needs MASQ_DATA_DIR and MASQ_MODELS_DIR.
#![cfg(feature = "train")]

use std::path::PathBuf;
use std::process::Command;

fn masq(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs");
    assert!(out.status.success(), "masq {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The JSON object a `--json` command printed: the whole output, or its last line (after progress).
fn last_json(s: &str) -> serde_json::Value {
    serde_json::from_str(s)
        .or_else(|_| serde_json::from_str(s.lines().last().unwrap_or_default()))
        .expect("a JSON object on stdout")
}

#[test]
fn reduced_resnet20_keeps_its_top1_through_export() {
    let (Some(data), Some(models)) = (std::env::var_os("MASQ_DATA_DIR"), std::env::var_os("MASQ_MODELS_DIR")) else {
        eprintln!("skipping: set MASQ_DATA_DIR and MASQ_MODELS_DIR (../shared/data, ../shared/models)");
        return;
    };
    let cifar = PathBuf::from(data).join("cifar10");
    let weights = PathBuf::from(models).join("akamaster/resnet20-12fca82f.safetensors");
    let exact = cifar.join("exact_test_batch_first1000.bin.gz");
    assert!(weights.is_file() && exact.is_file(), "missing {} or {}", weights.display(), exact.display());
    let tmp = std::env::temp_dir().join(format!("masq-reduced-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let t = |p: &str| tmp.join(p).to_str().unwrap().to_string();

    // A reduced model (random masks at 150,000 of 188,416 ReLUs, no training: fast and deterministic).
    let red = last_json(&masq(&[
        "reduce",
        "--from",
        "zoo:resnet20",
        "--weights",
        weights.to_str().unwrap(),
        "--dataset",
        "cifar10",
        "--data",
        cifar.to_str().unwrap(),
        "--relu-budget",
        "150000",
        "--method",
        "random",
        "--mask-epochs",
        "0",
        "--finetune-epochs",
        "0",
        "--seed",
        "5",
        "--out",
        &t("red"),
        "--json",
    ]));
    let ckpt = red["checkpoint"].as_str().unwrap().to_string();
    let acc_ckpt = red["accuracy"].as_f64().unwrap();
    assert_eq!(red["relu_count"], 150_000);

    let exp = last_json(&masq(&["export", "--from", &ckpt, "--out", &t("art"), "--json"]));
    assert_eq!(exp["relu_count"], 150_000);

    let labels: Vec<usize> =
        masq(&["cifar-npy", "--file", exact.to_str().unwrap(), "--count", "1000", "--out", &t("x.npy")])
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
    assert_eq!(labels.len(), 1000);
    let run = last_json(&masq(&["run", &t("art"), "--input", &t("x.npy"), "--mode", "plain", "--json"]));
    let preds: Vec<usize> =
        run["predictions"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let correct = preds.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let acc_art = correct as f64 / 1000.0;
    eprintln!("reduced ResNet-20 (150,000 ReLUs): checkpoint {acc_ckpt:.3}, artifact {acc_art:.3} on the exact subset");
    assert_eq!((acc_ckpt * 1000.0).round() as usize, correct, "top-1 from checkpoint and artifact differ");
    let _ = std::fs::remove_dir_all(&tmp);
}
