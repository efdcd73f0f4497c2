//! CLI contract of `masq export`.

use std::process::Command;

fn masq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

#[test]
fn export_json_lists_files_and_the_artifact_loads() {
    let root = std::env::temp_dir().join(format!("masq-cli-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let out = root.join("art");
    let o = out.to_str().unwrap();
    let args = ["export", "--from", "zoo:mnist_cnn", "--out", o, "--random-masks", "0.25", "--replacement", "poly2"];
    let r = masq(&[&args[..], &["--seed", "4", "--json"]].concat());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
        assert!(out.join(f["name"].as_str().unwrap()).is_file());
    }
    // mnist_cnn has 8·28·28 + 16·14·14 ReLU inputs; a quarter of each mask is kept.
    assert_eq!(v["relu_count"].as_u64().unwrap(), 6272 / 4 + 3136 / 4);
    assert_eq!(v["sites"].as_u64().unwrap(), 2);

    // inspect reads the directory; a second export needs --force.
    let r = masq(&["inspect", o, "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rep: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(rep["relu_count"], v["relu_count"]);
    let r = masq(&["export", "--from", "zoo:mnist_cnn", "--out", o]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--force"));
    let r = masq(&["export", "--from", "zoo:mnist_cnn", "--out", o, "--force"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    // Bad values are errors, not panics: exit status 1 for what the export refuses, 2 (a usage
    // error, before any work) for what clap's parsers refuse.
    for (bad, code) in [
        (vec!["export", "--from", "zoo:mnist_cnn", "--out", o, "--force", "--random-masks", "2"], 1),
        (
            vec![
                "export",
                "--from",
                "zoo:mnist_cnn",
                "--out",
                o,
                "--force",
                "--random-masks",
                "0.5",
                "--replacement",
                "cubic",
            ],
            2,
        ),
        (vec!["export", "--from", "zoo:mnist_cnn", "--out", o, "--force", "--opset", "7"], 1),
        (vec!["export", "--from", "ckpt.safetensors", "--out", o, "--force"], 1),
        (vec!["export", "--from", "model.pt", "--out", o, "--force"], 2),
    ] {
        let r = masq(&bad);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "{bad:?}: {err}");
        assert!(!err.contains("panicked"), "{bad:?}: {err}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
