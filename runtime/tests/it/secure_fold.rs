//! BatchNorm folding keeps the plaintext outputs.

use masq_ir::fold::fold_batchnorm;
use masq_ir::zoo;
use masq_ir::{BinaryConfig, Node, Op, ValueInfo};
use masq_runtime::plain;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn folding_preserves_zoo_outputs() {
    let mut r = ChaCha8Rng::seed_from_u64(1);
    for name in ["resnet20", "resnet18_cifar", "mnist_cnn"] {
        let g = zoo::build(name, None, 3).unwrap();
        let f = fold_batchnorm(&g).unwrap();
        assert!(f.nodes.iter().all(|n| !matches!(n.op, Op::BatchNorm(_))), "{name}: every BN folds");
        let shape = g.inputs[0].shape_at(2);
        let n = shape.iter().product();
        let x = ArrayD::from_shape_vec(shape, (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()).unwrap();
        let (y, yf) = (plain::run_single(&g, x.clone()).unwrap(), plain::run_single(&f, x).unwrap());
        let scale = y.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert!(max_diff(&y, &yf) <= 1e-5 * scale, "{name}: {} (scale {scale})", max_diff(&y, &yf));
    }
}

#[test]
fn a_conv_output_read_twice_is_not_folded() {
    let mut g = zoo::build("resnet20", None, 0).unwrap();
    // Make bn1's input (conv1's output) also a second graph output.
    let conv_out = g.nodes.iter().find(|n| n.name == "conv1").unwrap().outputs[0].clone();
    g.nodes.push(Node::new("extra", Op::Add(BinaryConfig {}), &[&conv_out, &conv_out], &["extra"]));
    g.outputs.push(ValueInfo::new("extra", vec![]));
    g.finalize().unwrap();
    let f = fold_batchnorm(&g).unwrap();
    assert!(f.nodes.iter().any(|n| n.name == "bn1"), "bn1 stays");
    assert_eq!(f.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm(_))).count(), 1);
    let x = ArrayD::from_elem(vec![1, 3, 32, 32], 0.3f32);
    let (y, yf) = (
        plain::run(&g, [("input".to_string(), x.clone())].into()).unwrap(),
        plain::run(&f, [("input".to_string(), x)].into()).unwrap(),
    );
    for (k, v) in &y {
        assert!(max_diff(v, &yf[k]) < 1e-4, "{k}");
    }
}
