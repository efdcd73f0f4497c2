//! Two exports of one model are byte-identical (issue #18): `model.onnx` and `model.safetensors`
//! always, `manifest.json` too once its creation time is pinned (`SOURCE_DATE_EPOCH`, tested
//! through the CLI in the root crate; here the manifests are compared without `created`).

use std::path::PathBuf;

use crate::scratch::scratch;
use masq_exporter::artifact::{MANIFEST_JSON, MODEL_ONNX, MODEL_SAFETENSORS};
use masq_exporter::{ExportFacts, ExportOptions, RandomMasks, ReplacementKind, attach_random_masks, export};
use masq_ir::zoo;

#[test]
fn two_exports_of_one_model_are_byte_identical() {
    let root = scratch("det-twice");
    // Masks and polynomial coefficients (many tensors with equal bytes: zero biases, equal
    // coefficients), so any order-dependent choice shows.
    let mut g = zoo::build("cnn_small", None, 3).unwrap();
    attach_random_masks(&mut g, &RandomMasks { density: 0.5, replacement: ReplacementKind::Poly2, seed: 4 }).unwrap();
    for (name, t) in g.initializers.iter_mut() {
        if name.ends_with(".bias") || name.ends_with(".c2") {
            t.fill(0.0);
        }
    }
    let facts = ExportFacts::new("cnn_small");
    let mut runs = Vec::new();
    for i in 0..4 {
        let dir = root.join(format!("a{i}"));
        export(&g, &facts, &dir, &ExportOptions::default()).unwrap();
        runs.push(dir);
    }
    for dir in &runs[1..] {
        for f in [MODEL_ONNX, MODEL_SAFETENSORS] {
            let (a, b) = (std::fs::read(runs[0].join(f)).unwrap(), std::fs::read(dir.join(f)).unwrap());
            assert!(a == b, "{f} differs between {} and {}", runs[0].display(), dir.display());
        }
        let manifest = |d: &PathBuf| {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join(MANIFEST_JSON)).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("created");
            v
        };
        assert_eq!(manifest(&runs[0]), manifest(dir));
    }
    std::fs::remove_dir_all(&root).unwrap();
}
