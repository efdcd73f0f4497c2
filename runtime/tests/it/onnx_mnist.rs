//! The ONNX model zoo's MNIST model (opset 8) against its own test data sets.
//! Needs MASQ_MODELS_DIR (e.g. ../shared/models); skips with a message when it is unset.

use std::path::PathBuf;

use masq_ir::report::report;
use masq_onnx::{import_file, tensor::read_tensor_file};
use masq_runtime::plain;

fn models_dir() -> Option<PathBuf> {
    match std::env::var_os("MASQ_MODELS_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            eprintln!("skipping: MASQ_MODELS_DIR is unset (set it to ../shared/models to run this test)");
            None
        }
    }
}

#[test]
fn mnist8_matches_reference_outputs() {
    let Some(dir) = models_dir() else { return };
    let dir = dir.join("onnx-zoo-mnist-8");
    let g = import_file(&dir.join("model.onnx")).unwrap();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Conv", "Add", "Relu", "MaxPool", "Conv", "Add", "Relu", "MaxPool", "Reshape", "Gemm", "Add"]);
    for set in 0..3 {
        let x = read_tensor_file(dir.join(format!("test_data_set_{set}/input_0.pb"))).unwrap();
        let want = read_tensor_file(dir.join(format!("test_data_set_{set}/output_0.pb"))).unwrap();
        let got = plain::run_single(&g, x).unwrap();
        assert_eq!(got.shape(), want.shape());
        // The logits reach ~6.6e3, where one f32 ulp is 4.9e-4: compare relative to max(1, |want|).
        let diff = got.iter().zip(want.iter()).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f32, f32::max);
        eprintln!("set {set}: max relative difference {diff:e}");
        assert!(diff < 1e-4, "set {set}: max relative difference {diff}\n{got:?}\n{want:?}");
        let argmax = |t: &ndarray::ArrayD<f32>| t.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
        assert_eq!(argmax(&got), argmax(&want));
    }
    let r = report(&g).unwrap();
    // The input is fixed at 1x1x28x28; the batch pass generalises it (no node mixes images).
    assert!(r.supports_batch, "MNIST-8 is generalised to any batch");
    // Conv 8@28x28 and 16@14x14 feed the ReLUs.
    assert_eq!(r.relu_count, 8 * 28 * 28 + 16 * 14 * 14);
    // conv1 8x1x5x5 + 8, conv2 16x8x5x5 + 16, fc 256x10 + 10; the reshape shapes fold away.
    assert_eq!(r.params, 200 + 8 + 3_200 + 16 + 2_560 + 10);
}
