//! `masq prune` end to end on generated data: a magnitude prune shrinks the checkpoint's convs by
//! exactly the asked fraction, its reported figures are the pruned checkpoint's own, `masq
//! reduce` composes on it, and its export runs under 2PC; Rotated ReLU writes plain ReLUs; bad
//! flags fail with a message naming the flag.

use std::path::PathBuf;
use std::process::{Command, Output};

fn masq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-cli-prune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().expect("a result line")).expect("JSON")
}

const QUICK: &[&str] = &["--dataset", "synthetic", "--threads", "1", "--max-batches", "4", "--test-limit", "200"];

#[test]
fn mag_prune_then_reduce_then_2pc() {
    let out = tmp("mag");
    let o = out.to_str().unwrap();
    let args = ["prune", "--from", "zoo:cnn_small", "--method", "mag", "--filter-sparsity", "0.5"];
    let r = json(&masq(&[&args[..], QUICK, &["--train-epochs", "1", "--epochs", "1", "--out", o, "--json"]].concat()));
    // cnn_small has 16, 32 and 64 filters: ⌊0.5·F⌋ die in each.
    let convs: Vec<(u64, u64)> = r["convs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["before"].as_u64().unwrap(), c["after"].as_u64().unwrap()))
        .collect();
    assert_eq!(convs, vec![(16, 8), (32, 16), (64, 32)]);
    let ckpt = out.join("pruned.safetensors");
    assert_eq!(r["checkpoint"].as_str().unwrap(), ckpt.to_str().unwrap());
    let (g, facts) = masq_ir::checkpoint::load_checkpoint(&ckpt).unwrap();
    let rep = masq_ir::report::report(&g).unwrap();
    assert_eq!(r["relus"]["after"].as_u64().unwrap(), rep.relu_count);
    assert_eq!(r["params"]["after"].as_u64().unwrap(), rep.params);
    assert_eq!(r["relus"]["before"].as_u64().unwrap(), 28_672);
    assert_eq!(rep.relu_count, 28_672 / 2);
    assert_eq!(facts.other["prune_method"], "mag");
    assert!(facts.other["prune_convs"].is_array());
    let (before, after) = (&r["mpc"]["before"], &r["mpc"]["after"]);
    assert!(after["dealer_bytes"].as_u64() < before["dealer_bytes"].as_u64(), "{before} vs {after}");
    assert!(after["online_bytes"].as_u64() < before["online_bytes"].as_u64(), "{before} vs {after}");

    // Pruning and ReLU reduction compose: reduce the pruned checkpoint to half its ReLUs.
    let red = tmp("mag-reduced");
    let rr = json(&masq(
        &[
            &["reduce", "--from", ckpt.to_str().unwrap(), "--relu-budget", "7000", "--method", "random"][..],
            QUICK,
            &["--mask-epochs", "1", "--finetune-epochs", "1", "--out", red.to_str().unwrap(), "--json"],
        ]
        .concat(),
    ));
    assert_eq!(rr["relu_count"].as_u64().unwrap(), 7000);

    // The reduced, pruned model exports and runs under 2PC next to the clear run.
    let art = tmp("mag-art");
    let reduced = red.join("reduced.safetensors");
    let e = masq(&["export", "--from", reduced.to_str().unwrap(), "--out", art.to_str().unwrap()]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let x = tmp("x.npy");
    let data: Vec<f32> = (0..3 * 32 * 32).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    masq_ir::npy::write(&x, &ndarray::ArrayD::from_shape_vec(vec![1, 3, 32, 32], data).unwrap()).unwrap();
    let run = json(&masq(&["run", art.to_str().unwrap(), "--input", x.to_str().unwrap(), "--mode", "mpc", "--json"]));
    assert_eq!(run["relu_count"].as_u64().unwrap(), 7000, "{run}");
}

#[test]
fn rrelu_writes_a_narrower_model_with_plain_relus() {
    let out = tmp("rrelu");
    let args = ["prune", "--from", "zoo:cnn_small", "--method", "rrelu", "--filter-sparsity", "0.25"];
    let settings = ["--distill", "--slope-ranking", "site", "--epochs", "1", "--out", out.to_str().unwrap(), "--json"];
    let r = json(&masq(&[&args[..], QUICK, &settings].concat()));
    // round(0.25 · (16 + 32 + 64)) = 28 slope channels die.
    let removed: u64 = r["convs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["before"].as_u64().unwrap() - c["after"].as_u64().unwrap())
        .sum();
    assert_eq!(removed, 28);
    let (g, facts) = masq_ir::checkpoint::load_checkpoint(out.join("pruned.safetensors")).unwrap();
    assert!(g.nodes.iter().all(|n| n.op.name() != "Mul"), "slopes left in the graph");
    assert_eq!(facts.other["prune_method"], "rrelu");
    assert_eq!(facts.other["prune_settings"]["ranking"], "site");
    assert_eq!(facts.other["prune_settings"]["distill"], true);
    assert!(r["seed_count"]["param_saving"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_flags_are_refused_with_the_flag_named() {
    let base = ["prune", "--from", "zoo:cnn_small", "--dataset", "synthetic"];
    for (extra, needle) in [
        (&["--method", "mag"][..], "--filter-sparsity"),
        (&["--method", "mag", "--filter-sparsity", "1.5"][..], "--filter-sparsity"),
        (&["--method", "sa", "--zeta", "0.1"][..], "--zeta"),
        (&["--method", "magsign", "--filter-sparsity", "0.5", "--epochs", "0"][..], "train_epochs"),
        (&["--method", "mag", "--filter-sparsity", "0.5", "--rewind", "sometime"][..], "rewind"),
        (&["--method", "mag", "--filter-sparsity", "0.5", "--distill"][..], "--distill"),
        (
            &[
                "--method",
                "reweighted-l1",
                "--weight-sparsity",
                "0.5",
                "--train-epochs",
                "1",
                "--slope-ranking",
                "site",
            ][..],
            "--slope-ranking",
        ),
        (&["--method", "rrelu", "--kd-temperature", "2"][..], "--distill"),
        (&["--method", "rrelu", "--slope-ranking", "sideways"][..], "--slope-ranking"),
    ] {
        let o = masq(&[&base[..], extra].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn reweighted_l1_and_unstructured_mag_report_their_zeros_per_layer() {
    let out = tmp("rl1");
    let args = ["prune", "--from", "zoo:cnn_small", "--method", "reweighted-l1", "--weight-sparsity", "0.6"];
    let o = masq(
        &[&args[..], QUICK, &["--train-epochs", "2", "--epochs", "1", "--out", out.to_str().unwrap(), "--json"]]
            .concat(),
    );
    let r = json(&o);
    // Progress: one JSON line per epoch of each phase, the threshold, then the result.
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stages: Vec<&str> = lines[..lines.len() - 1].iter().map(|l| l["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["reweight", "reweight", "threshold", "retrain"]);
    assert_eq!(r["method"], "reweighted-l1");
    // cnn_small's Conv and Gemm weights: 432 + 4,608 + 18,432 + 640; exactly ⌊0.6·N⌋ are 0.
    let n = 432 + 4608 + 18432 + 640u64;
    let layers = r["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["layer"].as_str().unwrap()).collect();
    assert_eq!(names, ["conv1", "conv2", "conv3", "fc"]);
    let zeros: u64 = layers.iter().map(|l| l["zeros"].as_u64().unwrap()).sum();
    assert_eq!(zeros, (0.6 * n as f64).floor() as u64);
    assert_eq!((r["zeros"].as_u64(), r["weights"].as_u64()), (Some(zeros), Some(n)));
    assert!((r["weight_sparsity"].as_f64().unwrap() - zeros as f64 / n as f64).abs() < 1e-12);
    for l in layers {
        let (w, z) = (l["weights"].as_f64().unwrap(), l["zeros"].as_f64().unwrap());
        assert!((l["sparsity"].as_f64().unwrap() - z / w).abs() < 1e-12, "{l}");
    }
    for k in ["accuracy_before", "accuracy_thresholded", "accuracy_retrained", "accuracy"] {
        assert!(r[k].as_f64().is_some(), "{k} missing: {r}");
    }
    // The structure and the 2PC costs are what they were.
    assert_eq!(r["params"]["before"], r["params"]["after"]);
    assert_eq!(r["mpc"]["before"], r["mpc"]["after"]);
    assert_eq!(r["mpc"]["unchanged"], true);
    // The checkpoint holds the zeros and records them.
    let (g, facts) = masq_ir::checkpoint::load_checkpoint(out.join("pruned.safetensors")).unwrap();
    let stored: u64 = ["conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"]
        .iter()
        .map(|w| g.initializers[*w].iter().filter(|v| **v == 0.0).count() as u64)
        .sum();
    assert_eq!(stored, zeros);
    assert_eq!(facts.other["prune_method"], "reweighted-l1");
    assert_eq!(facts.other["weight_sparsity"]["zeros"].as_u64(), Some(zeros));
    assert_eq!(facts.other["weight_sparsity"]["layers"].as_array().unwrap().len(), 4);

    // The baseline: magnitude per layer at the same sparsity, retrained with the same mask rule.
    let out = tmp("mag-weights");
    let args = ["prune", "--from", "zoo:cnn_small", "--method", "mag", "--weight-sparsity", "0.6", "--scope", "layer"];
    let r = json(&masq(&[&args[..], QUICK, &["--epochs", "1", "--out", out.to_str().unwrap(), "--json"]].concat()));
    assert_eq!(r["method"], "mag");
    for l in r["layers"].as_array().unwrap() {
        let w = l["weights"].as_u64().unwrap();
        assert_eq!(l["zeros"].as_u64().unwrap(), (0.6 * w as f64).floor() as u64, "{l}");
    }
}

#[test]
fn unstructured_flags_conflict_clearly() {
    let base = ["prune", "--from", "zoo:cnn_small", "--dataset", "synthetic"];
    for (extra, needles) in [
        (&["--method", "reweighted-l1"][..], &["--weight-sparsity", "--threshold"][..]),
        (
            &["--method", "mag", "--weight-sparsity", "0.5", "--filter-sparsity", "0.5"][..],
            &["cannot be used with"][..],
        ),
        (&["--method", "mag", "--weight-sparsity", "0.5", "--threshold", "1e-3"][..], &["cannot be used with"][..]),
        (&["--method", "snip", "--weight-sparsity", "0.5"][..], &["--method reweighted-l1 or mag"][..]),
        (&["--method", "reweighted-l1", "--threshold", "1e-4"][..], &["--train-epochs"][..]),
        (&["--method", "mag", "--weight-sparsity", "1.5"][..], &["--weight-sparsity"][..]),
        (&["--method", "mag", "--threshold", "1e-3", "--scope", "layer"][..], &["--scope"][..]),
    ] {
        let o = masq(&[&base[..], extra].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        for needle in needles {
            assert!(err.contains(needle), "{extra:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
}
