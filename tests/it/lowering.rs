//! Every lowered op against the plaintext interpreter (eval mode), BatchNorm's training mode, and
//! gradients of the masked activation against finite differences.

use masq_ir::Graph;
use masq_ir::*;
use masq_trainer::model::{TchModel, to_array, to_tensor};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

fn random(rng: &mut ChaCha8Rng, shape: &[usize], lo: f32, hi: f32) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(lo..hi)).collect()).unwrap()
}

/// A graph `x -> node(s) -> y` with the given input shape (batch first) and initializers.
struct Case {
    graph: Graph,
    input: Vec<usize>,
}

fn case(input: &[usize], nodes: Vec<Node>, inits: Vec<(&str, ArrayD<f32>)>) -> Case {
    case_m(input, nodes, inits, vec![])
}

fn case_m(input: &[usize], nodes: Vec<Node>, inits: Vec<(&str, ArrayD<f32>)>, masks: Vec<(&str, ArrayD<u8>)>) -> Case {
    let mut g = Graph::new("case");
    for (n, m) in masks {
        g.masks.insert(n.to_string(), m);
    }
    g.inputs.push(ValueInfo::batched("x", &input[1..]));
    let last = nodes.last().unwrap().outputs[0].clone();
    g.nodes = nodes;
    g.outputs.push(ValueInfo::new(last, vec![]));
    for (n, t) in inits {
        g.initializers.insert(n.to_string(), t);
    }
    g.finalize().unwrap_or_else(|e| panic!("{e}"));
    Case { graph: g, input: input.to_vec() }
}

/// Compare at relative tolerance `tol` (1e-5 for single ops; deep networks accumulate rounding).
fn check(name: &str, c: &Case, rng: &mut ChaCha8Rng, tol: f32) {
    let x = random(rng, &c.input, -2.0, 2.0);
    let want = masq_runtime::plain::run_single(&c.graph, x.clone()).unwrap_or_else(|e| panic!("{name}: plain: {e}"));
    let model = TchModel::from_graph(&c.graph, Device::Cpu).unwrap();
    let got = model.forward(&to_tensor(&x, Device::Cpu), false).unwrap_or_else(|e| panic!("{name}: tch: {e}"));
    let got = to_array(&got).unwrap();
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    let mut worst = 0f32;
    for (a, b) in got.iter().zip(want.iter()) {
        let err = (a - b).abs() / b.abs().max(1.0);
        worst = worst.max(err);
    }
    assert!(worst <= tol, "{name}: max relative error {worst}");
}

fn conv_cfg(k: usize, stride: usize, padding: [usize; 4], dilation: usize, groups: usize, bias: bool) -> Op {
    Op::Conv(ConvConfig {
        weight: "w".into(),
        bias: bias.then(|| "b".into()),
        kernel: [k, k],
        stride: [stride, stride],
        padding,
        dilation: [dilation, dilation],
        groups,
    })
}

fn pool_cfg(k: usize, stride: usize, padding: [usize; 4], dilation: usize, ceil: bool, cip: bool) -> PoolConfig {
    PoolConfig {
        kernel: [k, k],
        stride: [stride, stride],
        padding,
        dilation: [dilation, dilation],
        ceil_mode: ceil,
        count_include_pad: cip,
    }
}

fn one(op: Op) -> Vec<Node> {
    vec![Node::new("n", op, &["x"], &["y"])]
}

#[test]
fn every_op_matches_the_plaintext_interpreter() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let r = &mut rng;
    let x4 = [2usize, 4, 7, 6];
    let mut cases: Vec<(&str, Case)> = Vec::new();
    for (label, op, wshape, bias) in [
        ("conv 3x3 pad 1", conv_cfg(3, 1, [1; 4], 1, 1, true), [5, 4, 3, 3], true),
        ("conv stride 2 no bias", conv_cfg(3, 2, [1; 4], 1, 1, false), [5, 4, 3, 3], false),
        ("conv asymmetric pad", conv_cfg(3, 1, [0, 1, 2, 1], 1, 1, true), [5, 4, 3, 3], true),
        ("conv dilation 2", conv_cfg(3, 1, [2; 4], 2, 1, true), [5, 4, 3, 3], true),
        ("conv groups 2", conv_cfg(3, 1, [1; 4], 1, 2, true), [6, 2, 3, 3], true),
        ("conv 1x1", conv_cfg(1, 1, [0; 4], 1, 1, false), [3, 4, 1, 1], false),
    ] {
        let mut inits = vec![("w", random(r, &wshape, -0.5, 0.5))];
        if bias {
            inits.push(("b", random(r, &[wshape[0]], -0.5, 0.5)));
        }
        cases.push((label, case(&x4, one(op), inits)));
    }
    cases.push((
        "gemm",
        case(
            &[3, 5],
            one(Op::Gemm(GemmConfig { weight: "w".into(), bias: Some("b".into()) })),
            vec![("w", random(r, &[4, 5], -1.0, 1.0)), ("b", random(r, &[4], -1.0, 1.0))],
        ),
    ));
    cases.push((
        "matmul 2-D",
        case(
            &[3, 5],
            vec![Node::new("n", Op::MatMul(MatMulConfig {}), &["x", "k"], &["y"])],
            vec![("k", random(r, &[5, 2], -1.0, 1.0))],
        ),
    ));
    cases.push((
        "matmul 3-D",
        case(
            &[2, 3, 5],
            vec![Node::new("n", Op::MatMul(MatMulConfig {}), &["x", "k"], &["y"])],
            vec![("k", random(r, &[5, 4], -1.0, 1.0))],
        ),
    ));
    for (label, op) in [
        ("add", Op::Add(BinaryConfig {})),
        ("sub", Op::Sub(BinaryConfig {})),
        ("mul", Op::Mul(BinaryConfig {})),
        ("div", Op::Div(BinaryConfig {})),
    ] {
        let k = random(r, &[4, 1, 1], 0.5, 2.0);
        cases.push((label, case(&x4, vec![Node::new("n", op, &["x", "k"], &["y"])], vec![("k", k)])));
    }
    // Both operands computed (residual-style add).
    cases.push((
        "add of two values",
        case(
            &x4,
            vec![
                Node::new("r", Op::Relu, &["x"], &["r"]),
                Node::new("n", Op::Add(BinaryConfig {}), &["r", "x"], &["y"]),
            ],
            vec![],
        ),
    ));
    cases.push(("relu", case(&x4, one(Op::Relu), vec![])));
    cases.push(("clip both", case(&x4, one(Op::Clip(ClipConfig { min: Some(-0.5), max: Some(1.0) })), vec![])));
    cases.push(("clip min", case(&x4, one(Op::Clip(ClipConfig { min: Some(0.0), max: None })), vec![])));
    cases.push(("clip max", case(&x4, one(Op::Clip(ClipConfig { min: None, max: Some(6.0) })), vec![])));
    cases.push(("leaky relu", case(&x4, one(Op::LeakyRelu(LeakyReluConfig { alpha: 0.1 })), vec![])));
    cases.push((
        "batchnorm",
        case(
            &x4,
            one(Op::BatchNorm(BatchNormConfig {
                scale: "s".into(),
                bias: "b".into(),
                mean: "m".into(),
                var: "v".into(),
                epsilon: 1e-5,
            })),
            vec![
                ("s", random(r, &[4], 0.5, 1.5)),
                ("b", random(r, &[4], -0.5, 0.5)),
                ("m", random(r, &[4], -0.5, 0.5)),
                ("v", random(r, &[4], 0.5, 2.0)),
            ],
        ),
    ));
    for (label, cfg) in [
        ("maxpool 2x2", pool_cfg(2, 2, [0; 4], 1, false, false)),
        ("maxpool 3x3 s2 pad 1", pool_cfg(3, 2, [1; 4], 1, false, false)),
        ("maxpool ceil", pool_cfg(2, 2, [0; 4], 1, true, false)),
        ("maxpool asymmetric pad", pool_cfg(3, 1, [0, 1, 1, 0], 1, false, false)),
        ("maxpool dilation 2", pool_cfg(2, 1, [0; 4], 2, false, false)),
    ] {
        cases.push((label, case(&x4, one(Op::MaxPool(cfg)), vec![])));
    }
    for (label, cfg) in [
        ("avgpool 2x2", pool_cfg(2, 2, [0; 4], 1, false, false)),
        ("avgpool pad 1 exclude pad", pool_cfg(3, 2, [1; 4], 1, false, false)),
        ("avgpool pad 1 include pad", pool_cfg(3, 2, [1; 4], 1, false, true)),
        ("avgpool ceil", pool_cfg(2, 2, [0; 4], 1, true, false)),
        ("avgpool ceil include pad", pool_cfg(3, 2, [1; 4], 1, true, true)),
        ("avgpool asymmetric exclude pad", pool_cfg(3, 1, [0, 1, 2, 1], 1, false, false)),
        ("avgpool asymmetric include pad", pool_cfg(3, 1, [0, 1, 2, 1], 1, false, true)),
    ] {
        cases.push((label, case(&x4, one(Op::AveragePool(cfg)), vec![])));
    }
    cases.push(("global avgpool", case(&x4, one(Op::GlobalAveragePool), vec![])));
    cases.push(("flatten", case(&x4, one(Op::Flatten(FlattenConfig { axis: 1 })), vec![])));
    cases.push(("reshape", case(&x4, one(Op::Reshape(ReshapeConfig { shape: vec![0, -1, 6] })), vec![])));
    cases.push(("transpose", case(&x4, one(Op::Transpose(TransposeConfig { perm: vec![0, 2, 3, 1] })), vec![])));
    cases.push((
        "concat",
        case(
            &x4,
            vec![
                Node::new("r", Op::Relu, &["x"], &["r"]),
                Node::new("n", Op::Concat(ConcatConfig { axis: 1 }), &["x", "r", "x"], &["y"]),
            ],
            vec![],
        ),
    ));
    cases.push((
        "pad",
        case(&x4, one(Op::Pad(PadConfig { pads: vec![(0, 0), (2, 1), (0, 3), (1, 0)], value: 0.5 })), vec![]),
    ));
    cases.push((
        "slice strided",
        case(
            &x4,
            one(Op::Slice(SliceConfig {
                axes: vec![2, 3, 1],
                starts: vec![0, 1, 1],
                ends: vec![usize::MAX, 5, 3],
                steps: vec![2, 2, 1],
            })),
            vec![],
        ),
    ));
    cases.push(("identity", case(&x4, one(Op::Identity), vec![])));
    cases.push(("softmax", case(&[3, 7], one(Op::Softmax(SoftmaxConfig { axis: 1 })), vec![])));
    cases.push(("log softmax", case(&[3, 7], one(Op::LogSoftmax(SoftmaxConfig { axis: 1 })), vec![])));
    cases.push(("softmax axis 2", case(&x4, one(Op::Softmax(SoftmaxConfig { axis: 2 })), vec![])));
    for poly in [false, true] {
        let replacement = if poly {
            Replacement::Poly { c2: "c2".into(), c1: "c1".into(), c0: "c0".into() }
        } else {
            Replacement::Identity
        };
        let m: Vec<u8> = (0..4 * 7 * 6).map(|_| u8::from(r.random_bool(0.5))).collect();
        let mask = ArrayD::from_shape_vec(vec![4, 7, 6], m).unwrap();
        let c = case_m(
            &x4,
            one(Op::MaskedAct(MaskedActConfig { mask: "mask".into(), replacement, cap: None })),
            if poly {
                vec![
                    ("c2", random(r, &[4], 0.0, 0.3)),
                    ("c1", random(r, &[4], 0.3, 1.0)),
                    ("c0", random(r, &[4], -0.2, 0.2)),
                ]
            } else {
                vec![]
            },
            vec![("mask", mask)],
        );
        cases.push((if poly { "masked act poly" } else { "masked act identity" }, c));
    }
    for (name, c) in &cases {
        check(name, c, r, 1e-5);
    }
    // The zoo's networks end to end.
    for name in ["resnet20", "mnist_cnn", "resnet18_small", "vit_cifar"] {
        let g = masq_ir::zoo::build(name, None, 3).unwrap();
        let input = g.inputs[0].shape_at(2);
        check(name, &Case { graph: g, input }, r, 1e-4);
    }
}

#[test]
fn batchnorm_training_mode_uses_and_updates_batch_statistics() {
    let mut r = ChaCha8Rng::seed_from_u64(2);
    let c = 3;
    let g = case(
        &[8, c, 4, 4],
        one(Op::BatchNorm(BatchNormConfig {
            scale: "s".into(),
            bias: "b".into(),
            mean: "m".into(),
            var: "v".into(),
            epsilon: 1e-5,
        })),
        vec![
            ("s", random(&mut r, &[c], 0.5, 1.5)),
            ("b", random(&mut r, &[c], -0.5, 0.5)),
            ("m", ArrayD::zeros(vec![c])),
            ("v", ArrayD::ones(vec![c])),
        ],
    )
    .graph;
    let model = TchModel::from_graph(&g, Device::Cpu).unwrap();
    let x = random(&mut r, &[8, c, 4, 4], -1.0, 3.0);
    let y = to_array(&model.forward(&to_tensor(&x, Device::Cpu), true).unwrap()).unwrap();
    let back = model.to_graph().unwrap();
    for ch in 0..c {
        let vals: Vec<f64> = x.index_axis(ndarray::Axis(1), ch).iter().map(|&v| f64::from(v)).collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let (s, b) = (f64::from(g.initializers["s"][[ch]]), f64::from(g.initializers["b"][[ch]]));
        for (xi, yi) in x.index_axis(ndarray::Axis(1), ch).iter().zip(y.index_axis(ndarray::Axis(1), ch).iter()) {
            let want = (f64::from(*xi) - mean) / (var + 1e-5).sqrt() * s + b;
            assert!((want - f64::from(*yi)).abs() < 1e-4, "normalised with batch statistics");
        }
        // Running statistics: momentum 0.1, unbiased variance.
        let rm = f64::from(back.initializers["m"][[ch]]);
        let rv = f64::from(back.initializers["v"][[ch]]);
        assert!((rm - 0.1 * mean).abs() < 1e-5, "running mean {rm} vs {}", 0.1 * mean);
        assert!((rv - (0.9 + 0.1 * var * n / (n - 1.0))).abs() < 1e-4, "running var {rv}");
    }
    // Parameters require gradients, running statistics do not.
    assert!(model.is_trainable("s") && model.is_trainable("b"));
    assert!(!model.is_trainable("m") && !model.is_trainable("v"));
}

#[test]
fn masked_act_gradients_match_finite_differences() {
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let (c, h, w) = (3usize, 4usize, 4usize);
    let m: Vec<u8> = (0..c * h * w).map(|i| u8::from(i % 3 == 0)).collect();
    let mask = ArrayD::from_shape_vec(vec![c, h, w], m).unwrap();
    let g = case_m(
        &[2, c, h, w],
        one(Op::MaskedAct(MaskedActConfig {
            mask: "mask".into(),
            replacement: Replacement::Poly { c2: "c2".into(), c1: "c1".into(), c0: "c0".into() },
            cap: None,
        })),
        vec![
            ("c2", random(&mut r, &[c], 0.0, 0.3)),
            ("c1", random(&mut r, &[c], 0.5, 1.0)),
            ("c0", random(&mut r, &[c], -0.2, 0.2)),
        ],
        vec![("mask", mask)],
    )
    .graph;
    let x = random(&mut r, &[2, c, h, w], -2.0, 2.0);
    let weights = to_tensor(&random(&mut r, &[2, c, h, w], -1.0, 1.0), Device::Cpu);
    let loss_of = |g: &Graph| -> (TchModel, Tensor) {
        let model = TchModel::from_graph(g, Device::Cpu).unwrap();
        let xt = to_tensor(&x, Device::Cpu).set_requires_grad(true);
        let y = model.forward(&xt, true).unwrap();
        let loss = (y * &weights).sum(Kind::Float);
        (model, loss)
    };
    let (model, loss) = loss_of(&g);
    loss.backward();
    for name in ["c2", "c1", "c0"] {
        let grad = to_array(&model.tensor(name).unwrap().grad()).unwrap();
        for ch in 0..c {
            let eps = 1e-2f32;
            let mut plus = g.clone();
            plus.initializers.get_mut(name).unwrap()[[ch]] += eps;
            let mut minus = g.clone();
            minus.initializers.get_mut(name).unwrap()[[ch]] -= eps;
            let lp = f64::try_from(loss_of(&plus).1).unwrap();
            let lm = f64::try_from(loss_of(&minus).1).unwrap();
            let fd = (lp - lm) / (2.0 * f64::from(eps));
            let ad = f64::from(grad[[ch]]);
            assert!(
                (fd - ad).abs() <= 1e-3 * fd.abs().max(1.0),
                "{name}[{ch}]: autograd {ad}, finite differences {fd}"
            );
        }
    }
    // The input gradient is m·1[x>0] + (1−m)·g'(x) times the upstream weights.
    let model = TchModel::from_graph(&g, Device::Cpu).unwrap();
    let xt = to_tensor(&x, Device::Cpu).set_requires_grad(true);
    (model.forward(&xt, true).unwrap() * &weights).sum(Kind::Float).backward();
    let gx = to_array(&xt.grad()).unwrap();
    let wa = to_array(&weights).unwrap();
    for ((idx, &xv), &gv) in x.indexed_iter().zip(gx.iter()) {
        let (ch, hh, ww) = (idx[1], idx[2], idx[3]);
        let m = g.masks["mask"][[ch, hh, ww]];
        let d = if m == 1 {
            if xv > 0.0 { 1.0 } else { 0.0 }
        } else {
            2.0 * g.initializers["c2"][[ch]] * xv + g.initializers["c1"][[ch]]
        };
        let want = d * wa[&idx];
        assert!((want - gv).abs() < 1e-5, "dx at {idx:?}: {gv} vs {want}");
    }
}
