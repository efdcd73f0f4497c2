//! `masq demo --quick`: every promised file exists, and the table's numbers agree with the artifacts
//! (ReLU counts from the masks and from `masq inspect`, secure accuracy within one image of the
//! plaintext one, online bytes that follow the cost model's 16 B per ReLU).

#![cfg(feature = "train")]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn masq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn quick_demo_writes_consistent_table_summary_artifacts_and_plots() {
    let out = std::env::temp_dir().join(format!("masq-cli-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_str().unwrap();
    let r = masq(&["demo", "--quick", "--out", o, "--json", "--threads", "2", "--seed", "1"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout);
    let last = stdout.lines().last().expect("a JSON line");
    let s: Value = serde_json::from_str(last).unwrap();

    // summary.json holds the same rows as the printed object, and lists the plots.
    let file: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(file["rows"], s["rows"]);
    for name in ["summary.json", "table.txt", "pareto.png", "pareto.svg", "layers.png", "layers.svg"] {
        let p = out.join(name);
        assert!(p.is_file(), "{} missing", p.display());
        assert!(file["files"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().ends_with(name)));
    }
    for png in ["pareto.png", "layers.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png} is not a PNG");
    }
    let svg = std::fs::read_to_string(out.join("pareto.svg")).unwrap();
    assert!(svg.contains("autorep") && svg.contains("random"));

    let rows = s["rows"].as_array().unwrap();
    // The table has a line per model with its method, budget and ReLU count.
    let table = std::fs::read_to_string(out.join("table.txt")).unwrap();
    for row in rows {
        let thousands = |n: u64| {
            let d = n.to_string();
            let mut o = String::new();
            for (i, c) in d.chars().enumerate() {
                if i > 0 && (d.len() - i).is_multiple_of(3) {
                    o.push(',');
                }
                o.push(c);
            }
            o
        };
        let relus = thousands(u(row, "relu_count"));
        let method = row["method"].as_str().unwrap();
        assert!(
            table.lines().any(|l| l.starts_with(method) && l.split_whitespace().any(|w| w == relus)),
            "no table line for {method} with {relus} ReLUs:\n{table}"
        );
    }
    assert_eq!(rows.len(), 7, "baseline + 3 budgets x (autorep, random)");
    let base = &rows[0];
    assert_eq!(base["method"], "baseline");
    let total = u(base, "relu_count");
    assert_eq!(total, 16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8, "zoo:cnn_small at 3x32x32");
    let budgets: Vec<u64> = [0.02, 0.005, 0.001].iter().map(|x| (total as f64 * x).round() as u64).collect();

    for row in rows {
        let name = row["name"].as_str().unwrap();
        let relus = u(row, "relu_count");
        // The count from the masks equals the runtime's, the per-layer counts add up to it, and
        // `masq inspect` on the artifact agrees.
        assert_eq!(relus, u(row, "relu_count_from_masks"), "{name}");
        let layers: u64 = row["layers"].as_array().unwrap().iter().map(|l| l[1].as_u64().unwrap()).sum();
        assert_eq!(layers, relus, "{name}: per-layer counts");
        let art = Path::new(row["artifact"].as_str().unwrap());
        for file in ["model.onnx", "model.safetensors", "manifest.json"] {
            assert!(art.join(file).is_file(), "{name}: {file} missing");
        }
        let i = masq(&["inspect", art.to_str().unwrap(), "--json"]);
        assert!(i.status.success(), "{}", String::from_utf8_lossy(&i.stderr));
        let rep: Value = serde_json::from_slice(&i.stdout).unwrap();
        assert_eq!(u(&rep, "relu_count"), relus, "{name}: inspect");

        // Secure inference decides like the plaintext one (at most one image apart).
        let n = u(row, "images") as f64;
        assert_eq!(n as usize, 32);
        let (plain, secure) = (f(row, "plain_accuracy"), f(row, "secure_accuracy"));
        assert!(((plain - secure) * n).abs() <= 1.0 + 1e-9, "{name}: plain {plain} vs secure {secure}");
        assert!(f(row, "agreement") >= (n - 1.0) / n, "{name}: agreement {}", row["agreement"]);
        for k in ["plain_accuracy", "secure_accuracy", "val_accuracy"] {
            assert!((0.0..=1.0).contains(&f(row, k)), "{name}: {k}");
        }

        // Under masq's protocol a ReLU costs 16 online bytes and a linear replacement (poly1)
        // nothing; rounds follow depth, and a site left without ReLUs saves its round and that
        // round's two 4-byte frame headers. So the difference to the baseline is exact.
        let saved_rounds = u(base, "rounds") - u(row, "rounds");
        assert_eq!(u(base, "online_bytes") - u(row, "online_bytes"), 16 * (total - relus) + 8 * saved_rounds, "{name}");
        assert!(f(row, "crypten_online_bytes") > u(row, "online_bytes") as f64, "{name}: CrypTen costs more");
        assert!(f(row, "wan_seconds") > f(row, "lan_seconds"));

        if let Some(b) = row["budget"].as_u64() {
            assert!(budgets.contains(&b), "{name}: budget {b} not in {budgets:?}");
            assert!(relus <= b, "{name}: {relus} ReLUs over budget {b}");
            if row["method"] == "random" {
                assert_eq!(relus, b, "{name}: random masks hit the budget exactly");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_demo_flags_are_errors() {
    let out = std::env::temp_dir().join(format!("masq-cli-demo-bad-{}", std::process::id()));
    let o = out.to_str().unwrap();
    let r = masq(&["demo", "--quick", "--out", o, "--budgets", "0"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("budget 0"), "{}", String::from_utf8_lossy(&r.stderr));
    let r = masq(&["demo", "--quick", "--out", o, "--dataset", "imagenet-22k"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("imagenet-22k"));
    let r = masq(&["demo", "--quick", "--out", o, "--replacement", "cubic"]);
    assert!(!r.status.success());
    let _ = std::fs::remove_dir_all(&out);
}
