//! The CLI under hostile use (issue #18): a stdout closed early ends a command quietly, errors say
//! each cause once, bad `masq train` flag values are usage errors naming the flag and the value,
//! and a second `masq train` into a run directory is refused unless --resume or --force says how.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use masq_onnx::proto::*;
use prost::Message;

fn masq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-cli-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A chain of `n` Relu nodes on a [N, 4] input: `masq inspect` prints a line per layer, far more
/// than a pipe buffer holds.
fn long_model(path: &Path, n: usize) {
    let value = |name: &str, dims: &[Option<i64>]| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| Dimension { dim_value: d, ..Default::default() }).collect(),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |i: usize| NodeProto {
        op_type: "Relu".into(),
        name: format!("relu_with_a_long_name_{i}"),
        input: vec![if i == 0 { "x".into() } else { format!("v{i}") }],
        output: vec![if i + 1 == n { "y".into() } else { format!("v{}", i + 1) }],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            name: "long".into(),
            node: (0..n).map(node).collect(),
            input: vec![value("x", &[None, Some(4)])],
            output: vec![value("y", &[None, Some(4)])],
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

/// Run `masq args`, read 100 bytes of its stdout, close the pipe, and check it ended quietly.
fn head_100(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_masq"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("masq runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).expect("100 bytes of output");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    #[cfg(unix)]
    let by_sigpipe = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(13);
    #[cfg(not(unix))]
    let by_sigpipe = false;
    assert!(out.status.success() || by_sigpipe, "{args:?}: {:?}\n{stderr}", out.status);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let root = scratch("pipe");
    let model = root.join("big.onnx");
    long_model(&model, 4000);
    let m = model.to_str().unwrap();
    head_100(&["inspect", m, "--json"]);
    head_100(&["inspect", m]);
    head_100(&["estimate", m]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_error_prints_each_cause_once() {
    let root = scratch("twice");
    // The output directory would go below a regular file: the OS error is the cause.
    std::fs::write(root.join("file"), b"x").unwrap();
    for out in [root.join("file"), root.join("file").join("sub")] {
        let o = masq(&["deal", "--model", "zoo:mnist_cnn", "--count", "1", "--out", out.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{stderr}");
        assert!(stderr.matches("(os error").count() <= 1, "a cause printed twice: {stderr}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[cfg(feature = "train")]
#[test]
fn bad_train_numbers_are_usage_errors_naming_the_flag_and_value() {
    let base = ["train", "--model", "zoo:cnn_small", "--dataset", "synthetic", "--max-batches", "1"];
    for (flag, value) in [
        ("--lr", "NaN"),
        ("--lr", "-0.1"),
        ("--lr", "inf"),
        ("--batch-size", "0"),
        ("--epochs", "0"),
        ("--momentum", "NaN"),
        ("--weight-decay", "-1"),
        ("--min-lr", "NaN"),
        ("--grad-clip", "0"),
        ("--label-smoothing", "1.5"),
    ] {
        let mut args = base.to_vec();
        let arg = format!("{flag}={value}");
        args.push(&arg);
        let o = masq(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(value), "{flag} {value}: {stderr}");
    }
}

#[cfg(feature = "train")]
#[test]
fn a_second_train_into_a_run_directory_needs_resume_or_force() {
    let root = scratch("rundir");
    let run = root.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("best.safetensors"), b"the first run's best model").unwrap();
    let out = run.to_str().unwrap();
    let o = masq(&["train", "--model", "zoo:cnn_small", "--dataset", "synthetic", "--epochs", "1", "--out", out]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains(out) && stderr.contains("--resume") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(run.join("best.safetensors")).unwrap(), b"the first run's best model");
    // --resume and --force together is a usage error.
    let o = masq(&["train", "--model", "zoo:cnn_small", "--dataset", "synthetic", "--out", out, "--resume", "--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn export_twice_with_source_date_epoch_is_byte_identical() {
    let root = scratch("sde");
    let mut trees = Vec::new();
    for i in 0..2 {
        let out = root.join(format!("a{i}"));
        let o = Command::new(env!("CARGO_BIN_EXE_masq"))
            .args(["export", "--from", "zoo:mnist_cnn", "--out", out.to_str().unwrap()])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect();
        files.sort();
        trees.push(files);
    }
    assert_eq!(trees[0].len(), 3);
    for (a, b) in trees[0].iter().zip(&trees[1]) {
        assert!(a == b, "{} differs between two exports", a.0);
    }
    let manifest = String::from_utf8_lossy(&trees[0].iter().find(|f| f.0 == "manifest.json").unwrap().1).into_owned();
    assert!(manifest.contains("2023-11-14T22:13:20Z"), "{manifest}");
    // A malformed value is an error naming it.
    let o = Command::new(env!("CARGO_BIN_EXE_masq"))
        .args(["export", "--from", "zoo:mnist_cnn", "--out", root.join("bad").to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("SOURCE_DATE_EPOCH"));
    std::fs::remove_dir_all(&root).unwrap();
}
