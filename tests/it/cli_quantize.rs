//! `masq quantize` end to end on generated data: the checkpoint's weights lie on the reported
//! grids with a FakeQuant in front of every layer, `masq inspect --score micronet` scores it
//! below the float model, it runs under 2PC with predictions equal to the clear text's, and bad
//! widths fail with a message naming the flag or the layer count.

use std::path::PathBuf;
use std::process::{Command, Output};

use masq_ir::Op;

fn masq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-cli-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().expect("a result line")).expect("JSON")
}

const QUICK: &[&str] = &[
    "--dataset",
    "synthetic",
    "--threads",
    "1",
    "--train-limit",
    "256",
    "--test-limit",
    "100",
    "--calib-batches",
    "2",
];

#[test]
fn quantize_score_and_run_under_2pc() {
    let out = tmp("q8");
    let o = out.to_str().unwrap();
    let r = json(&masq(
        &[&["quantize", "--from", "zoo:cnn_small", "--layer-bits", "8,8,6,8"][..], QUICK, &["--out", o, "--json"]]
            .concat(),
    ));
    let ckpt = out.join("quantized.safetensors");
    assert_eq!(r["checkpoint"].as_str().unwrap(), ckpt.to_str().unwrap());
    let (g, facts) = masq_ir::checkpoint::load_checkpoint(&ckpt).unwrap();
    g.check_weight_quant().unwrap();
    assert_eq!(g.weight_quant["conv3.weight"].qmin, -32);
    let fq = g.nodes.iter().filter(|n| matches!(n.op, Op::FakeQuant(_))).count();
    assert_eq!(fq, 4);
    assert_eq!(r["weights"].as_array().unwrap().len(), 4);
    assert!(facts.accuracy.is_some());
    assert!(facts.other.contains_key("quantize_activations"));
    let (before, after) = (r["score_before"]["score"].as_f64().unwrap(), r["score_after"]["score"].as_f64().unwrap());
    assert!(after < before, "{before} -> {after}");

    // The score of the checkpoint, from masq inspect, is the one quantize reported.
    let i = json(&masq(&["inspect", ckpt.to_str().unwrap(), "--score", "micronet", "--json"]));
    assert_eq!(i["micronet"]["score"].as_f64().unwrap(), after);
    let bits: Vec<u64> =
        i["micronet"]["layers"].as_array().unwrap().iter().map(|l| l["weight_bits"].as_u64().unwrap()).collect();
    assert_eq!(bits, [8, 8, 6, 8]);

    // Under 2PC: equal predictions on a few generated images.
    let x = tmp("x.npy");
    let xs = x.to_str().unwrap();
    assert!(masq(&["cifar-npy", "--synthetic", "3", "--count", "4", "--out", xs]).status.success());
    let plain = json(&masq(&["run", ckpt.to_str().unwrap(), "--input", xs, "--mode", "plain", "--json"]));
    let mpc = json(&masq(&["run", ckpt.to_str().unwrap(), "--input", xs, "--mode", "mpc", "--json"]));
    assert_eq!(plain["predictions"], mpc["predictions"]);
    assert!(mpc["online_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn bad_widths_fail_clearly() {
    let o = tmp("bad");
    let o = o.to_str().unwrap();
    for (flags, needle) in [
        (vec!["--bits", "1"], "bits"),
        (vec!["--bits", "17"], "bits"),
        (vec!["--layer-bits", "8,8"], "4 Conv/Gemm layers"),
        (vec!["--bits", "8", "--layer-bits", "8,8,8,8"], "cannot be used with"),
        (vec![], "--bits"),
    ] {
        let out = masq(&[&["quantize", "--from", "zoo:cnn_small"][..], &flags, QUICK, &["--out", o]].concat());
        assert!(!out.status.success(), "{flags:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{flags:?}: {err}");
        assert!(!err.contains("panicked"), "{flags:?}: {err}");
    }
    // Scoring flags.
    let out = masq(&["inspect", "zoo:cnn_small", "--score", "micronet", "--assume-sparsity", "1.5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("assumed sparsity"));
}
