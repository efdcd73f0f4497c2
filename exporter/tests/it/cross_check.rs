//! The artifact loader compares model.safetensors with model.onnx (issue #18): a weight whose
//! values differ between the two files is refused naming the tensor, and a good artifact (plain,
//! masked, quantized) passes. The tampered artifacts get fresh manifest hashes, so only the
//! cross-check can catch them.

use std::path::Path;

use crate::scratch::scratch;
use masq_exporter::artifact::{MANIFEST_JSON, MODEL_ONNX, load_artifact};
use masq_exporter::{ExportFacts, ExportOptions, RandomMasks, ReplacementKind, attach_random_masks, export};
use masq_ir::zoo;
use masq_onnx::proto::{ModelProto, TensorProto, data_type};
use prost::Message;

/// Rewrite model.onnx with `edit` and put its new hash and size in the manifest.
fn tamper(dir: &Path, edit: impl FnOnce(&mut ModelProto)) {
    let path = dir.join(MODEL_ONNX);
    let mut model = masq_onnx::import::decode(&std::fs::read(&path).unwrap(), &path).unwrap();
    edit(&mut model);
    let bytes = model.encode_to_vec();
    std::fs::write(&path, &bytes).unwrap();
    let mpath = dir.join(MANIFEST_JSON);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["files"][MODEL_ONNX]["sha256"] = masq_ir::atomic::sha256_hex(&bytes).into();
    m["files"][MODEL_ONNX]["bytes"] = (bytes.len() as u64).into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// The f32 initializer `name`, with its bytes moved inline and every value scaled by `by`.
fn inline_scaled(t: &mut TensorProto, st: &[u8], dir: &Path, by: f32) {
    let r = masq_onnx::external::reference(t, &dir.join(MODEL_ONNX)).unwrap();
    let bytes = masq_onnx::external::slice(t, &r, st, dir).unwrap().to_vec();
    t.raw_data = bytes
        .chunks_exact(4)
        .flat_map(|c| (f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * by + 0.25).to_le_bytes())
        .collect();
    t.data_location = 0;
    t.external_data.clear();
}

#[test]
fn weights_that_differ_between_the_two_files_are_refused() {
    let root = scratch("xcheck-weights");
    let g = zoo::build("mnist_cnn", None, 0).unwrap();
    let dir = root.join("art");
    export(&g, &ExportFacts::new("mnist_cnn"), &dir, &ExportOptions::default()).unwrap();
    assert!(load_artifact(&dir).is_ok(), "a good artifact loads");
    let st = std::fs::read(dir.join("model.safetensors")).unwrap();
    let mut changed = String::new();
    tamper(&dir, |m| {
        let g = m.graph.as_mut().unwrap();
        let t = g.initializer.iter_mut().find(|t| t.data_type == data_type::FLOAT && t.dims.len() == 4).unwrap();
        changed = t.name.clone();
        inline_scaled(t, &st, &dir, 2.0);
    });
    let e = load_artifact(&dir).unwrap_err().to_string();
    assert!(e.contains(&format!("tensor {changed}")) && e.contains(MODEL_ONNX), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_initializer_pointed_at_another_tensors_bytes_is_refused() {
    let root = scratch("xcheck-offset");
    let g = zoo::build("mnist_cnn", None, 0).unwrap();
    let dir = root.join("art");
    export(&g, &ExportFacts::new("mnist_cnn"), &dir, &ExportOptions::default()).unwrap();
    // Point the first f32 initializer at the start of the data section with its own length: the
    // hashes still match (the manifest is redone), the bytes belong to another tensor.
    tamper(&dir, |m| {
        let g = m.graph.as_mut().unwrap();
        let t = g
            .initializer
            .iter_mut()
            .filter(|t| t.data_type == data_type::FLOAT)
            .max_by_key(|t| t.dims.iter().product::<i64>())
            .unwrap();
        let e = t.external_data.iter_mut().find(|e| e.key == "offset").unwrap();
        e.value = (e.value.parse::<usize>().unwrap() + 4).to_string();
    });
    assert!(load_artifact(&dir).is_err());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn masked_and_quantized_artifacts_still_pass_the_cross_check() {
    let root = scratch("xcheck-good");
    let mut g = zoo::build("mnist_cnn", None, 1).unwrap();
    attach_random_masks(&mut g, &RandomMasks { density: 0.3, replacement: ReplacementKind::Poly2, seed: 2 }).unwrap();
    let dir = root.join("masked");
    export(&g, &ExportFacts::new("mnist_cnn"), &dir, &ExportOptions::default()).unwrap();
    load_artifact(&dir).unwrap();
    // A coefficient changed in model.onnx (where it is written broadcast, [C, 1, 1]) is caught too.
    let st = std::fs::read(dir.join("model.safetensors")).unwrap();
    tamper(&dir, |m| {
        let g = m.graph.as_mut().unwrap();
        let t = g.initializer.iter_mut().find(|t| t.name.ends_with(".c1.bcast")).unwrap();
        inline_scaled(t, &st, &dir, 3.0);
    });
    let e = load_artifact(&dir).unwrap_err().to_string();
    assert!(e.contains(".c1"), "{e}");

    // Quantized weights: model.onnx holds integers and a DequantizeLinear, model.safetensors f32.
    let mut q = zoo::build("mnist_cnn", None, 1).unwrap();
    let names: Vec<String> = q.initializers.keys().filter(|n| n.ends_with(".weight")).cloned().collect();
    for n in names {
        let p = masq_ir::QuantParams::linear(8, 7);
        let t = q.initializers[&n].mapv(|v| p.apply(v));
        q.initializers.insert(n.clone(), t);
        q.weight_quant.insert(n, p);
    }
    let dir = root.join("quant");
    export(&q, &ExportFacts::new("mnist_cnn"), &dir, &ExportOptions { fold_bn: false, ..ExportOptions::default() })
        .unwrap();
    load_artifact(&dir).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}
