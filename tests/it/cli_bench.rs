//! `masq bench mpc` and `masq inspect` as users call them.

use std::process::Command;

fn masq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

#[test]
fn bench_mpc_json_has_the_promised_keys_and_consistent_figures() {
    for op in ["relu", "square", "mul", "matmul", "conv", "maxpool", "avgpool"] {
        let n = match op {
            "relu" | "square" | "mul" => "2000",
            "matmul" => "32",
            _ => "8",
        };
        let out = masq(&["bench", "mpc", "--op", op, "--n", n, "--reps", "2", "--json"]);
        assert!(out.status.success(), "{op}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        for key in [
            "op",
            "n",
            "online_bytes",
            "online_bytes_p0_to_p1",
            "online_bytes_p1_to_p0",
            "rounds",
            "offline_bytes",
            "seconds",
            "offline_seconds",
            "est_lan_seconds",
            "est_wan_seconds",
            "max_abs_error",
        ] {
            assert!(v.get(key).is_some(), "{op}: missing {key} in {stdout}");
        }
        let total = v["online_bytes"].as_u64().unwrap();
        assert_eq!(total, v["online_bytes_p0_to_p1"].as_u64().unwrap() + v["online_bytes_p1_to_p0"].as_u64().unwrap());
        assert_eq!(total, v["predicted"]["p0_to_p1"].as_u64().unwrap() + v["predicted"]["p1_to_p0"].as_u64().unwrap());
        assert_eq!(v["rounds"], v["predicted"]["rounds"]);
        assert!(v["max_abs_error"].as_f64().unwrap() < 1e-3, "{op}: {stdout}");
        assert!(v["est_wan_seconds"].as_f64().unwrap() >= v["est_lan_seconds"].as_f64().unwrap());
    }
}

#[test]
fn relu_costs_at_most_32_bytes_and_2_rounds() {
    let out = masq(&["bench", "mpc", "--op", "relu", "--n", "20000", "--reps", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["online_bytes"].as_f64().unwrap() / 20000.0 <= 32.0);
    assert!(v["rounds"].as_u64().unwrap() <= 2);
    assert_eq!(v["max_abs_error"].as_f64().unwrap(), 0.0, "ReLU on shares is exact");
}

#[test]
fn own_cores_layout_replays_each_party_alone_with_the_same_costs() {
    // Every op kind: comparisons in both modes, products, a linear layer with its model load.
    for (op, n, mode) in [
        ("relu", "5000", "one-round"),
        ("relu", "5000", "compact"),
        ("mul", "3000", "one-round"),
        ("conv", "8", "one-round"),
        ("maxpool", "8", "compact"),
    ] {
        let run = |layout: &str| {
            let out = masq(&[
                "bench",
                "mpc",
                "--op",
                op,
                "--n",
                n,
                "--cmp-mode",
                mode,
                "--reps",
                "2",
                "--layout",
                layout,
                "--json",
            ]);
            assert!(out.status.success(), "{op} {layout}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        let (shared, own) = (run("shared"), run("own-cores"));
        assert_eq!(own["layout"], "own-cores");
        assert!(shared["party_seconds"].is_null());
        let [p0, p1] = [0, 1].map(|i| own["party_seconds"][i].as_f64().unwrap());
        assert!(p0 > 0.0 && p1 > 0.0, "{own}");
        // The online time is the slower party's median over the reps: at least the smaller median.
        assert!(own["seconds"].as_f64().unwrap() >= p0.min(p1), "{own}");
        for key in ["online_bytes_p0_to_p1", "online_bytes_p1_to_p0", "rounds", "offline_bytes", "max_abs_error"] {
            assert_eq!(own[key], shared[key], "{op} {mode}: {key}");
        }
        assert_eq!(own["rounds"], own["predicted"]["rounds"]);
    }
}

#[test]
fn bad_values_are_clear_errors_not_panics() {
    for (args, needle) in [
        (vec!["bench", "mpc", "--op", "softmax"], "op"),
        (vec!["bench", "mpc", "--op", "relu", "--n", "0"], "n"),
        (vec!["bench", "mpc", "--reps", "0"], "reps"),
        (vec!["bench", "mpc", "--frac-bits", "60"], "frac_bits"),
        (vec!["bench", "mpc", "--bits", "1"], "comparison bits"),
        (vec!["bench", "mpc", "--n", "-3"], "-3"),
        (vec!["bench", "mpc", "--layout", "two-hosts"], "own-cores"),
        (vec!["inspect", "zoo:nosuchnet"], "nosuchnet"),
        (vec!["inspect", "/nonexistent/model.onnx"], "model.onnx"),
    ] {
        let out = masq(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(err.contains(needle), "{args:?}: error should mention {needle:?}: {err}");
    }
}

#[test]
fn inspect_reports_the_zoo_relu_count() {
    let out = masq(&["inspect", "zoo:resnet20", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["relu_count"], 188_416);
    for key in ["params", "macs", "layers"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
}
