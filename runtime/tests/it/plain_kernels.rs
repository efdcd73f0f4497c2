//! Plaintext kernels against direct reference loops, on shapes that exercise strides, dilations,
//! groups, asymmetric padding and ceil mode.

use masq_ir::Graph;
use masq_ir::*;
use masq_runtime::plain;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap()
}

fn single_op(op: Op, input: &[usize], inits: Vec<(&str, ArrayD<f32>)>) -> Graph {
    let mut g = Graph::new("t");
    g.inputs.push(ValueInfo::batched("x", &input[1..]));
    g.nodes.push(Node::new("n", op, &["x"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    for (k, v) in inits {
        g.initializers.insert(k.to_string(), v);
    }
    g.finalize().unwrap();
    g
}

#[test]
fn conv_matches_direct_loops() {
    // (cin, cout, groups, kernel, stride, dilation, padding t,l,b,r)
    let cases = [
        (4, 6, 2, [3, 2], [2, 1], [1, 2], [1, 0, 2, 1]),
        (3, 3, 3, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
        (2, 5, 1, [1, 1], [2, 2], [1, 1], [0, 0, 0, 0]),
    ];
    for (case, &(cin, cout, groups, kernel, stride, dilation, padding)) in cases.iter().enumerate() {
        let cg = cin / groups;
        let w = random(&[cout, cg, kernel[0], kernel[1]], case as u64);
        let b = random(&[cout], 100 + case as u64);
        let cfg = ConvConfig { weight: "w".into(), bias: Some("b".into()), kernel, stride, padding, dilation, groups };
        let g = single_op(Op::Conv(cfg), &[2, cin, 7, 6], vec![("w", w.clone()), ("b", b.clone())]);
        let x = random(&[2, cin, 7, 6], 50 + case as u64);
        let y = plain::run_single(&g, x.clone()).unwrap();
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        assert_eq!(oh, (7 + padding[0] + padding[2] - dilation[0] * (kernel[0] - 1) - 1) / stride[0] + 1);
        let og = cout / groups;
        for n in 0..2 {
            for o in 0..cout {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut acc = b[[o]];
                        for c in 0..cg {
                            for ky in 0..kernel[0] {
                                for kx in 0..kernel[1] {
                                    let yy = (i * stride[0] + ky * dilation[0]) as isize - padding[0] as isize;
                                    let xx = (j * stride[1] + kx * dilation[1]) as isize - padding[1] as isize;
                                    if (0..7).contains(&yy) && (0..6).contains(&xx) {
                                        acc += w[[o, c, ky, kx]] * x[[n, (o / og) * cg + c, yy as usize, xx as usize]];
                                    }
                                }
                            }
                        }
                        assert!((y[[n, o, i, j]] - acc).abs() < 1e-5, "case {case}: {} vs {acc}", y[[n, o, i, j]]);
                    }
                }
            }
        }
    }
}

#[test]
fn pools_with_padding_and_ceil_mode() {
    let pool = |ceil, include| PoolConfig {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1, 1, 1],
        dilation: [1, 1],
        ceil_mode: ceil,
        count_include_pad: include,
    };
    let x = random(&[1, 2, 6, 6], 7);
    // Floor mode: (6 + 2 - 3) / 2 + 1 = 3; ceil mode: 4, and the last window starts at 6 + 1 - 1 = 6,
    // inside the padded input, so it stays.
    let g = single_op(Op::MaxPool(pool(false, false)), &[1, 2, 6, 6], vec![]);
    assert_eq!(plain::run_single(&g, x.clone()).unwrap().shape(), &[1, 2, 3, 3]);
    let g = single_op(Op::MaxPool(pool(true, false)), &[1, 2, 6, 6], vec![]);
    let y = plain::run_single(&g, x.clone()).unwrap();
    assert_eq!(y.shape(), &[1, 2, 4, 4]);
    let want = (5..6).flat_map(|i| (5..6).map(move |j| (i, j))).map(|(i, j)| x[[0, 1, i, j]]).fold(f32::MIN, f32::max);
    assert_eq!(y[[0, 1, 3, 3]], want);
    // Average at the top-left corner: 4 real values; with padding counted the divisor is 9.
    let s: f32 = [(0, 0), (0, 1), (1, 0), (1, 1)].iter().map(|&(i, j)| x[[0, 0, i, j]]).sum();
    let g = single_op(Op::AveragePool(pool(false, false)), &[1, 2, 6, 6], vec![]);
    assert!((plain::run_single(&g, x.clone()).unwrap()[[0, 0, 0, 0]] - s / 4.0).abs() < 1e-6);
    let g = single_op(Op::AveragePool(pool(false, true)), &[1, 2, 6, 6], vec![]);
    assert!((plain::run_single(&g, x).unwrap()[[0, 0, 0, 0]] - s / 9.0).abs() < 1e-6);
}

#[test]
fn data_movement_ops() {
    let x = random(&[2, 3, 4, 5], 8);
    let g = single_op(Op::Transpose(TransposeConfig { perm: vec![0, 3, 1, 2] }), &[2, 3, 4, 5], vec![]);
    let y = plain::run_single(&g, x.clone()).unwrap();
    assert_eq!(y.shape(), &[2, 5, 3, 4]);
    assert_eq!(y[[1, 4, 2, 3]], x[[1, 2, 3, 4]]);
    let g = single_op(Op::Reshape(ReshapeConfig { shape: vec![0, -1, 5] }), &[2, 3, 4, 5], vec![]);
    let y = plain::run_single(&g, x.clone()).unwrap();
    assert_eq!(y.shape(), &[2, 12, 5]);
    assert_eq!(y[[1, 7, 2]], x[[1, 1, 3, 2]]);
    let g = single_op(Op::Softmax(SoftmaxConfig { axis: 1 }), &[2, 3, 4, 5], vec![]);
    let y = plain::run_single(&g, x.clone()).unwrap();
    let s: f32 = (0..3).map(|c| y[[1, c, 2, 2]]).sum();
    assert!((s - 1.0).abs() < 1e-6);
    let g = single_op(Op::LogSoftmax(SoftmaxConfig { axis: 3 }), &[2, 3, 4, 5], vec![]);
    let y = plain::run_single(&g, x.clone()).unwrap();
    let s: f32 = (0..5).map(|k| y[[0, 0, 0, k]].exp()).sum();
    assert!((s - 1.0).abs() < 1e-5);
    // A wrong input shape is an error, not a panic.
    assert!(plain::run_single(&g, random(&[2, 3, 4], 1)).is_err());
}
