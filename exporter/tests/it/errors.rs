//! Bad input: graphs and tensors that disagree, masks that are not 0/1, corrupted artifacts. Every
//! error names the tensor or file, and a failing export leaves nothing behind.

use std::path::{Path, PathBuf};

use crate::scratch::{entries, scratch};
use masq_exporter::artifact::{MANIFEST_JSON, MODEL_ONNX, MODEL_SAFETENSORS, load_artifact};
use masq_exporter::{
    ExportError, ExportFacts, ExportOptions, RandomMasks, ReplacementKind, attach_random_masks, export,
};
use masq_ir::atomic::sha256_hex;
use masq_ir::{Graph, zoo};
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

fn masked(model: &str) -> Graph {
    let mut g = zoo::build(model, None, 1).unwrap();
    let cfg = RandomMasks { density: 0.3, replacement: ReplacementKind::Poly2, seed: 2 };
    attach_random_masks(&mut g, &cfg).unwrap();
    g
}

#[test]
fn masks_other_than_zero_one_are_refused_and_nothing_is_written() {
    let root = scratch("err-mask");
    let mut g = masked("mnist_cnn");
    let m = g.masks.get_mut("relu2.mask").unwrap();
    m[[3, 1, 2]] = 2;
    let err = export(&g, &ExportFacts::new("m"), &root.join("art"), &ExportOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ExportError::BadMask { .. }), "{msg}");
    assert!(msg.contains("relu2.mask") && msg.contains("value 2"), "{msg}");
    assert!(entries(&root).is_empty(), "left behind: {:?}", entries(&root));

    // A mask of the wrong shape.
    let mut g = masked("mnist_cnn");
    g.masks.insert("relu1.mask".into(), ndarray::ArrayD::zeros(vec![8, 28, 27]));
    let err = export(&g, &ExportFacts::new("m"), &root.join("art"), &ExportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("relu1") && err.to_string().contains("[8, 28, 27]"), "{err}");
    assert!(entries(&root).is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn graph_and_tensor_shapes_that_disagree_are_refused() {
    let root = scratch("err-shape");
    let mut g = zoo::build("mnist_cnn", None, 0).unwrap();
    g.initializers.insert("conv2.weight".into(), ndarray::ArrayD::zeros(vec![16, 7, 5, 5]));
    let err = export(&g, &ExportFacts::new("m"), &root.join("art"), &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, ExportError::Graph(_)), "{err}");
    assert!(err.to_string().contains("conv2"), "{err}");
    assert!(entries(&root).is_empty());

    // Density outside 0..=1 and an opset the encoder does not write.
    let mut g = zoo::build("mnist_cnn", None, 0).unwrap();
    let cfg = RandomMasks { density: 1.5, replacement: ReplacementKind::Identity, seed: 0 };
    assert!(matches!(attach_random_masks(&mut g, &cfg), Err(ExportError::Invalid { .. })));
    let opts = ExportOptions { opset: 9, ..ExportOptions::default() };
    assert!(export(&g, &ExportFacts::new("m"), &root.join("art"), &opts).unwrap_err().to_string().contains("opset 9"));
    assert!(entries(&root).is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Replace a file of an artifact and (optionally) record its new hash in the manifest.
fn tamper(dir: &Path, file: &str, bytes: &[u8], rehash: bool) {
    std::fs::write(dir.join(file), bytes).unwrap();
    if rehash {
        let path = dir.join(MANIFEST_JSON);
        let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m["files"][file]["sha256"] = serde_json::Value::String(sha256_hex(bytes));
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    }
}

fn fresh_artifact(root: &Path, name: &str) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let dir = root.join(name);
    export(&masked("mnist_cnn"), &ExportFacts::new("m"), &dir, &ExportOptions::default()).unwrap();
    load_artifact(&dir).unwrap();
    (dir.clone(), std::fs::read(dir.join(MODEL_ONNX)).unwrap(), std::fs::read(dir.join(MODEL_SAFETENSORS)).unwrap())
}

/// The safetensors bytes with one byte of tensor `name` set to `value`.
fn with_mask_value(st: &[u8], name: &str, value: u8) -> Vec<u8> {
    let (_, meta) = SafeTensors::read_metadata(st).unwrap();
    let t = SafeTensors::deserialize(st).unwrap();
    let owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = t
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let mut data = v.data().to_vec();
            if n == name {
                data[0] = value;
            }
            (n, v.dtype(), v.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, TensorView)> =
        owned.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, meta.metadata().clone()).unwrap()
}

#[test]
fn corrupted_artifacts_are_refused_with_the_file_named() {
    let root = scratch("err-corrupt");

    let (dir, onnx, _) = fresh_artifact(&root, "flip");
    let mut bad = onnx.clone();
    let k = bad.len() / 2;
    bad[k] ^= 0x40;
    tamper(&dir, MODEL_ONNX, &bad, false);
    let msg = load_artifact(&dir).unwrap_err().to_string();
    assert!(msg.contains(MODEL_ONNX) && msg.contains("sha256 mismatch"), "{msg}");
    assert!(masq_exporter::load_model(dir.to_str().unwrap()).is_err());

    let (dir, _, st) = fresh_artifact(&root, "trunc");
    tamper(&dir, MODEL_SAFETENSORS, &st[..st.len() - 100], false);
    let msg = load_artifact(&dir).unwrap_err().to_string();
    assert!(msg.contains(MODEL_SAFETENSORS) && msg.contains("sha256 mismatch"), "{msg}");
    // Truncated with a matching hash: the safetensors parser refuses it, naming the file.
    tamper(&dir, MODEL_SAFETENSORS, &st[..st.len() - 100], true);
    let msg = load_artifact(&dir).unwrap_err().to_string();
    assert!(msg.contains(MODEL_SAFETENSORS), "{msg}");

    // A mask value of 2, and a mask that disagrees with the ONNX model.
    let (dir, _, st) = fresh_artifact(&root, "maskval");
    tamper(&dir, MODEL_SAFETENSORS, &with_mask_value(&st, "relu1.mask", 2), true);
    let msg = load_artifact(&dir).unwrap_err().to_string();
    assert!(msg.contains("relu1.mask") && msg.contains("value 2"), "{msg}");
    // The mask is stored once (model.onnx reads it from model.safetensors), so a flipped bit
    // changes the model itself: the manifest's ReLU count no longer holds.
    let first = SafeTensors::deserialize(&st).unwrap().tensor("relu1.mask").unwrap().data()[0];
    tamper(&dir, MODEL_SAFETENSORS, &with_mask_value(&st, "relu1.mask", 1 - first), true);
    let msg = load_artifact(&dir).unwrap_err().to_string();
    assert!(msg.contains(MANIFEST_JSON) && msg.contains("relu_count"), "{msg}");

    // A manifest whose ReLU count is not the model's.
    let (dir, _, _) = fresh_artifact(&root, "count");
    let path = dir.join(MANIFEST_JSON);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["relu_count"] = serde_json::json!(m["relu_count"].as_u64().unwrap() + 1);
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let msg = load_artifact(&dir).unwrap_err().to_string();
    assert!(msg.contains(MANIFEST_JSON) && msg.contains("relu_count"), "{msg}");

    // Not an artifact at all.
    std::fs::write(&path, b"{\"format\": 3}").unwrap();
    assert!(load_artifact(&dir).unwrap_err().to_string().contains(MANIFEST_JSON));
    std::fs::remove_dir_all(&root).unwrap();
}
