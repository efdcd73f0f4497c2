//! CLI contract of `masq load-weights` (and `masq eval --remap`): a PyTorch-style state dict
//! (`module.` prefixes, a renamed layer, an I64 `num_batches_tracked`) round-trips into a masq
//! checkpoint; missing, unexpected and wrong-shape tensors are errors naming them. With
//! MASQ_MODELS_DIR, the akamaster ResNet-20 loads into zoo:resnet20.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use masq_ir::checkpoint::load_checkpoint;
use ndarray::ArrayD;

fn masq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_masq")).args(args).output().expect("masq runs")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-cli-loadw-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

enum T {
    F32(ArrayD<f32>),
    I64(Vec<usize>, Vec<i64>),
}

/// A safetensors file written by hand (as torch's `save_file` lays it out): u64 header length,
/// JSON header, then the tensors' little-endian bytes.
fn write_safetensors(path: &Path, tensors: &BTreeMap<String, T>) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let (dtype, shape, bytes): (&str, Vec<usize>, Vec<u8>) = match t {
            T::F32(a) => ("F32", a.shape().to_vec(), a.iter().flat_map(|v| v.to_le_bytes()).collect()),
            T::I64(s, v) => ("I64", s.clone(), v.iter().flat_map(|v| v.to_le_bytes()).collect()),
        };
        let start = data.len();
        data.extend(bytes);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// zoo:resnet20 (seed 5) as a DataParallel state dict whose classifier is called `classifier`.
fn state_dict() -> (masq_ir::Graph, BTreeMap<String, T>) {
    let g = masq_ir::zoo::build("resnet20", None, 5).unwrap();
    let mut sd = BTreeMap::new();
    for (k, v) in &g.initializers {
        let k = k.replace("linear.", "classifier.");
        sd.insert(format!("module.{k}"), T::F32(v.clone()));
    }
    sd.insert("module.bn1.num_batches_tracked".into(), T::I64(vec![], vec![391]));
    (g, sd)
}

#[test]
fn state_dict_round_trips_into_a_checkpoint_with_remapped_names() {
    let d = tmpdir("rt");
    let (g, sd) = state_dict();
    let w = d.join("resnet20.safetensors");
    write_safetensors(&w, &sd);
    let ckpt = d.join("out/ckpt.safetensors");
    let (ws, cs) = (w.to_str().unwrap(), ckpt.to_str().unwrap());
    let args = ["load-weights", "--model", "zoo:resnet20", "--weights", ws, "--out", cs];

    // Without the rule, the renamed classifier is unexpected (and named).
    let r = masq(&args);
    assert_eq!(r.status.code(), Some(1));
    let e = stderr(&r);
    assert!(e.contains("module.classifier.weight") && e.contains("not parameters"), "{e}");
    assert!(!ckpt.exists());

    let r = masq(&[&args[..], &["--remap", "^classifier.=linear.", "--json"]].concat());
    assert!(r.status.success(), "{}", stderr(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["relu_count"].as_u64(), Some(188_416));
    assert_eq!(v["tensors"].as_u64(), Some(g.initializers.len() as u64));
    let (back, facts) = load_checkpoint(&ckpt).unwrap();
    assert_eq!(back.initializers, g.initializers);
    assert_ne!(back.initializers, masq_ir::zoo::build("resnet20", None, 0).unwrap().initializers);
    assert_eq!(facts.relu_count, Some(188_416));
    assert_eq!(facts.other["remap"], serde_json::json!(["^classifier.=linear."]));

    // The checkpoint exists: overwriting needs --force. A substring rule works as well.
    let r = masq(&[&args[..], &["--remap", "classifier=linear"]].concat());
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("--force"), "{}", stderr(&r));
    let r = masq(&[&args[..], &["--remap", "classifier=linear", "--force"]].concat());
    assert!(r.status.success(), "{}", stderr(&r));

    // A rule without '=' is refused (a usage error, before anything is read).
    let r = masq(&[&args[..], &["--remap", "classifier", "--force"]].concat());
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("PATTERN=REPLACEMENT"), "{}", stderr(&r));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn wrong_shape_missing_and_duplicate_tensors_are_named() {
    let d = tmpdir("bad");
    let w = d.join("w.safetensors");
    let ckpt = d.join("ckpt.safetensors");
    let (ws, cs) = (w.to_str().unwrap(), ckpt.to_str().unwrap());
    let args =
        ["load-weights", "--model", "zoo:resnet20", "--weights", ws, "--out", cs, "--remap", "classifier=linear"];

    let (_, mut sd) = state_dict();
    sd.insert("module.layer2.1.conv2.weight".into(), T::F32(ArrayD::zeros(vec![32, 32, 1, 1])));
    write_safetensors(&w, &sd);
    let r = masq(&args);
    assert_eq!(r.status.code(), Some(1));
    let e = stderr(&r);
    assert!(
        e.contains("module.layer2.1.conv2.weight") && e.contains("[32, 32, 1, 1]") && e.contains("[32, 32, 3, 3]"),
        "{e}"
    );

    let (_, mut sd) = state_dict();
    sd.remove("module.layer3.2.bn2.running_var");
    write_safetensors(&w, &sd);
    let e = stderr(&masq(&args));
    assert!(e.contains("layer3.2.bn2.running_var") && e.contains("missing"), "{e}");

    // Two keys that map to one parameter.
    let (g, mut sd) = state_dict();
    sd.insert("linear.bias".into(), T::F32(g.initializers["linear.bias"].clone()));
    write_safetensors(&w, &sd);
    let e = stderr(&masq(&args));
    assert!(e.contains("linear.bias") && e.contains("twice"), "{e}");

    // A file that is not safetensors.
    std::fs::write(&w, b"not a safetensors file").unwrap();
    let e = stderr(&masq(&args));
    assert!(e.contains("w.safetensors"), "{e}");
    assert!(!ckpt.exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[cfg(feature = "train")]
#[test]
fn eval_takes_remap_rules() {
    let d = tmpdir("eval");
    let (_, sd) = state_dict();
    let w = d.join("w.safetensors");
    write_safetensors(&w, &sd);
    let ws = w.to_str().unwrap();
    let base = ["eval", "--model", "zoo:resnet20", "--weights", ws, "--dataset", "synthetic", "--limit", "20"];
    let r = masq(&[&base[..], &["--device", "cpu", "--json"]].concat());
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains("classifier"), "{}", stderr(&r));
    let r = masq(&[&base[..], &["--device", "cpu", "--json", "--remap", "^classifier.=linear."]].concat());
    assert!(r.status.success(), "{}", stderr(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["images"].as_u64(), Some(20));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn akamaster_resnet20_loads_into_the_zoo_model() {
    let Some(models) = std::env::var_os("MASQ_MODELS_DIR") else {
        eprintln!("skipping: MASQ_MODELS_DIR is unset (set it to ../shared/models to run this test)");
        return;
    };
    let w = PathBuf::from(models).join("akamaster/resnet20-12fca82f.safetensors");
    assert!(w.is_file(), "missing {}", w.display());
    let d = tmpdir("aka");
    let ckpt = d.join("resnet20.safetensors");
    let r = masq(&[
        "load-weights",
        "--model",
        "zoo:resnet20",
        "--weights",
        w.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
        "--json",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let (g, _) = load_checkpoint(&ckpt).unwrap();
    let file = masq_ir::weights::read_safetensors(&w).unwrap();
    assert_eq!(g.initializers["layer1.0.conv1.weight"], file["module.layer1.0.conv1.weight"]);
    assert_eq!(g.initializers["linear.weight"], file["module.linear.weight"]);
    // With the CIFAR-10 files too, the checkpoint evaluates to the published accuracy.
    #[cfg(feature = "train")]
    if let Some(data) = std::env::var_os("MASQ_DATA_DIR") {
        let r = masq(&[
            "eval",
            "--from",
            ckpt.to_str().unwrap(),
            "--dataset",
            "cifar10",
            "--data",
            PathBuf::from(data).to_str().unwrap(),
            "--device",
            "cpu",
            "--json",
        ]);
        assert!(r.status.success(), "{}", stderr(&r));
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        let acc = v["accuracy"].as_f64().unwrap();
        assert!(acc > 0.85, "akamaster resnet20 top-1 {acc}");
        eprintln!("akamaster resnet20 from the checkpoint: top-1 {acc} on {} images", v["images"]);
    }
    std::fs::remove_dir_all(&d).unwrap();
}
