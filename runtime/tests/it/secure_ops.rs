//! Secure evaluation of small hand-built graphs covering every lowering (Clip, LeakyRelu, Concat,
//! Pad, pools, standalone BatchNorm, element-wise ops, MatMul, Softmax at the output, MaskedAct),
//! against the plaintext interpreter, with the planner's prediction == the measured cost.

use masq_ir::*;
use masq_ir::{Graph, IrError};
use masq_runtime::RuntimeError;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], lo: f32, hi: f32, seed: u64) -> ArrayD<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| r.random_range(lo..hi)).collect()).unwrap()
}

/// A graph under construction: one input `x` of `[N, dims...]`.
struct B {
    g: Graph,
    seed: u64,
}

impl B {
    fn new(name: &str, dims: &[usize]) -> B {
        let mut g = Graph::new(name);
        g.inputs.push(ValueInfo::batched("x", dims));
        B { g, seed: 100 }
    }
    fn init(&mut self, name: &str, t: ArrayD<f32>) -> String {
        self.g.initializers.insert(name.into(), t);
        name.into()
    }
    fn rand(&mut self, name: &str, shape: &[usize], lo: f32, hi: f32) -> String {
        self.seed += 1;
        let t = random(shape, lo, hi, self.seed);
        self.init(name, t)
    }
    fn push(&mut self, name: &str, op: Op, inputs: &[&str]) -> String {
        self.g.nodes.push(Node::new(name, op, inputs, &[name]));
        name.into()
    }
    #[allow(clippy::too_many_arguments)] // mirrors the Conv fields the tests vary
    fn conv(&mut self, name: &str, x: &str, cin: usize, cout: usize, k: usize, pad: usize, groups: usize) -> String {
        let w = self.rand(&format!("{name}.w"), &[cout, cin / groups, k, k], -0.4, 0.4);
        let b = self.rand(&format!("{name}.b"), &[cout], -0.1, 0.1);
        let cfg = ConvConfig {
            weight: w,
            bias: Some(b),
            kernel: [k, k],
            stride: [1, 1],
            padding: [pad; 4],
            dilation: [1, 1],
            groups,
        };
        self.push(name, Op::Conv(cfg), &[x])
    }
    fn finish(mut self, out: &str) -> Graph {
        self.g.outputs.push(ValueInfo::new(out, vec![]));
        self.g.finalize().unwrap();
        self.g
    }
}

fn pool(k: usize, s: usize, pad: usize, cip: bool) -> PoolConfig {
    PoolConfig {
        kernel: [k, k],
        stride: [s, s],
        padding: [pad; 4],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: cip,
    }
}

/// Secure run == plaintext within `tol`, prediction == measurement; returns the report.
fn check(g: &Graph, x: &ArrayD<f32>, tol: f64) -> secure::SecureReport {
    let cfg = SecureConfig { seed: 9, ..SecureConfig::default() };
    let run = secure::run(g, x, &cfg).unwrap();
    assert!(run.report.max_abs_error <= tol, "{}: max abs error {}", g.name, run.report.max_abs_error);
    let plan = secure::plan(g, x.shape()[0], &cfg).unwrap();
    assert_eq!(run.report.measured, plan.total(), "{}: prediction == measurement", g.name);
    for (l, p) in run.report.layers.iter().zip(&plan.nodes) {
        assert_eq!(
            (l.online_bytes_p0_to_p1, l.online_bytes_p1_to_p0, l.rounds),
            (p.cost.p0_to_p1, p.cost.p1_to_p0, p.cost.rounds),
            "{}",
            l.name
        );
    }
    run.report
}

#[test]
fn clip_relu6_and_one_sided_bounds_use_one_round_each() {
    let mut b = B::new("clip", &[3, 4, 4]);
    let c = b.conv("c", "x", 3, 3, 3, 1, 1);
    let a = b.push("relu6", Op::Clip(ClipConfig { min: Some(0.0), max: Some(6.0) }), &[&c]);
    let s = b.rand("scale", &[1], 8.0, 8.0001);
    let m = b.push("m", Op::Mul(BinaryConfig {}), &[&a, &s]);
    let lo = b.push("lo", Op::Clip(ClipConfig { min: Some(-1.0), max: None }), &[&m]);
    let hi = b.push("hi", Op::Clip(ClipConfig { min: None, max: Some(20.0) }), &[&lo]);
    let none = b.push("none", Op::Clip(ClipConfig { min: None, max: None }), &[&hi]);
    let g = b.finish(&none);
    let x = random(&[2, 3, 4, 4], -4.0, 4.0, 1);
    let r = check(&g, &x, 2e-2);
    // Per image: a clip to [0, c] (ReLU6) counts a ReLU and a clip comparison per element (it is
    // the site ReLU reduction masks); other clips count clip comparisons only.
    let n = 3 * 4 * 4;
    let layer = |name: &str| r.layers.iter().find(|l| l.name == name).unwrap();
    let figures =
        |name: &str| (layer(name).rounds, layer(name).per_image.clip_comparisons, layer(name).per_image.relus);
    assert_eq!(figures("relu6"), (1, n as u64, n as u64));
    assert_eq!(figures("lo"), (1, n as u64, 0));
    assert_eq!(figures("hi"), (1, n as u64, 0));
    assert_eq!(figures("none"), (0, 0, 0));
    assert_eq!(r.per_image.relu_count, n as u64);
    assert_eq!(r.per_image.clip_comparisons, 3 * n as u64);
    assert_eq!(r.comparisons_per_batch, 2 * 4 * n as u64);
}

#[test]
fn leaky_relu_concat_pad_pools_and_elementwise() {
    let mut b = B::new("mix", &[4, 6, 6]);
    let c = b.conv("c", "x", 4, 4, 3, 1, 2);
    let l = b.push("leaky", Op::LeakyRelu(LeakyReluConfig { alpha: 0.1 }), &[&c]);
    let k = b.rand("k", &[1, 4, 6, 6], -0.5, 0.5);
    let cat = b.push("cat", Op::Concat(ConcatConfig { axis: 1 }), &[&l, &c, &k]);
    let p = b.push("pad", Op::Pad(PadConfig { pads: vec![(0, 0), (0, 0), (1, 1), (1, 1)], value: 0.5 }), &[&cat]);
    let ap = b.push("ap_incl", Op::AveragePool(pool(3, 1, 1, true)), &[&p]);
    let ap2 = b.push("ap_excl", Op::AveragePool(pool(3, 2, 1, false)), &[&ap]);
    let mp = b.push("mp", Op::MaxPool(pool(3, 1, 1, false)), &[&ap2]);
    // Standalone BatchNorm (after a pool: not folded) and element-wise ops with constants.
    let bn = BatchNormConfig {
        scale: b.rand("bn.s", &[12], 0.5, 1.5),
        bias: b.rand("bn.b", &[12], -0.2, 0.2),
        mean: b.rand("bn.m", &[12], -0.2, 0.2),
        var: b.rand("bn.v", &[12], 0.5, 1.5),
        epsilon: 1e-5,
    };
    let n = b.push("bn", Op::BatchNorm(bn), &[&mp]);
    let d = b.rand("d", &[12, 1, 1], 1.5, 3.0);
    let dv = b.push("div", Op::Div(BinaryConfig {}), &[&n, &d]);
    let cs = b.rand("cs", &[1], 0.25, 0.26);
    let sb = b.push("sub", Op::Sub(BinaryConfig {}), &[&cs, &dv]);
    let sq = b.push("square", Op::Mul(BinaryConfig {}), &[&sb, &sb]);
    let sl = b.push(
        "slice",
        Op::Slice(SliceConfig { axes: vec![1, 3], starts: vec![1, 0], ends: vec![11, usize::MAX], steps: vec![1, 2] }),
        &[&sq],
    );
    let t = b.push("transpose", Op::Transpose(TransposeConfig { perm: vec![0, 2, 3, 1] }), &[&sl]);
    let rs = b.push("reshape", Op::Reshape(ReshapeConfig { shape: vec![0, -1] }), &[&t]);
    let w = b.rand("mm.w", &[80, 5], -0.3, 0.3);
    let mm = b.push("matmul", Op::MatMul(MatMulConfig {}), &[&rs, &w]);
    let id = b.push("id", Op::Identity, &[&mm]);
    let gw = b.rand("fc.w", &[3, 5], -0.5, 0.5);
    let fc = b.push("fc", Op::Gemm(GemmConfig { weight: gw, bias: None }), &[&id]);
    let sm = b.push("softmax", Op::LogSoftmax(SoftmaxConfig { axis: 1 }), &[&fc]);
    let g = b.finish(&sm);
    let x = random(&[1, 4, 6, 6], -2.0, 2.0, 2); // the constant in Concat pins batch 1
    let r = check(&g, &x, 1e-2);
    assert_eq!(r.output_shape, vec![1, 3]);
    let layer = |name: &str| r.layers.iter().find(|l| l.name == name).unwrap();
    // Local ops cost nothing; Beaver square and max pool do.
    for name in ["cat", "pad", "ap_incl", "ap_excl", "bn", "div", "sub", "slice", "transpose", "reshape", "id"] {
        assert_eq!(layer(name).rounds, 0, "{name}");
    }
    assert_eq!(layer("square").rounds, 1);
    assert_eq!(layer("leaky").rounds, 1);
    assert_eq!(layer("mp").rounds, 4); // 3x3 window: ceil(log2 9) levels
}

fn masked_graph(mask: ArrayD<u8>, poly: bool, cap: Option<f32>) -> Graph {
    let mut b = B::new("masked", &[3, 5, 5]);
    let c = b.conv("c", "x", 3, 3, 3, 1, 1);
    let replacement = if poly {
        Replacement::Poly {
            c2: b.rand("p2", &[3], 0.05, 0.2),
            c1: b.rand("p1", &[3], 0.3, 1.0),
            c0: b.rand("p0", &[3], -0.1, 0.1),
        }
    } else {
        Replacement::Identity
    };
    b.g.masks.insert("m".into(), mask);
    let a = b.push("act", Op::MaskedAct(MaskedActConfig { mask: "m".into(), replacement, cap }), &[&c]);
    let c2 = b.conv("c2", &a, 3, 2, 3, 0, 1);
    let gp = b.push("gap", Op::GlobalAveragePool, &[&c2]);
    let f = b.push("flat", Op::Flatten(FlattenConfig { axis: 1 }), &[&gp]);
    b.finish(&f)
}

#[test]
fn masked_act_identity_and_poly_with_random_and_extreme_masks() {
    let mut r = ChaCha8Rng::seed_from_u64(4);
    let random_mask = ArrayD::from_shape_fn(vec![3, 5, 5], |_| r.random_range(0..2u8));
    let x = random(&[2, 3, 5, 5], -2.0, 2.0, 5);
    for poly in [false, true] {
        for (name, mask) in [
            ("random", random_mask.clone()),
            ("zeros", ArrayD::zeros(vec![3, 5, 5])),
            ("ones", ArrayD::from_elem(vec![3, 5, 5], 1u8)),
        ] {
            let ones = mask.iter().filter(|&&m| m == 1).count() as u64;
            let g = masked_graph(mask, poly, None);
            let rep = check(&g, &x, 1e-2);
            let act = rep.layers.iter().find(|l| l.name == "act").unwrap();
            // Per image, whatever the batch (2 here).
            assert_eq!(act.per_image.relus, ones, "{name} poly={poly}");
            assert_eq!(act.per_image.poly_elements, if poly { 75 - ones } else { 0 }, "{name}");
            let communicates = ones > 0 || poly;
            assert_eq!(act.rounds, communicates as u64, "{name} poly={poly}");
        }
    }
}

#[test]
fn capped_masked_act_relu6_sites_cost_a_relu_and_a_cap_per_kept_element() {
    let mut r = ChaCha8Rng::seed_from_u64(6);
    let mask = ArrayD::from_shape_fn(vec![3, 5, 5], |_| r.random_range(0..2u8));
    let ones = mask.iter().filter(|&&m| m == 1).count() as u64;
    let x = random(&[2, 3, 5, 5], -2.0, 2.0, 7);
    for poly in [false, true] {
        // A cap of 0.3 clips many kept elements, so a missing cap would be far outside 1e-2.
        let g = masked_graph(mask.clone(), poly, Some(0.3));
        let rep = check(&g, &x, 1e-2);
        let act = rep.layers.iter().find(|l| l.name == "act").unwrap();
        assert_eq!((act.per_image.relus, act.per_image.clip_comparisons), (ones, ones), "poly={poly}");
        assert_eq!(act.rounds, 2, "the cap's ReLUs are a second round");
    }
}

#[test]
fn unsupported_configurations_name_node_and_op() {
    // LogSoftmax inside the network (Softmax inside runs: secure_transformer.rs).
    let mut b = B::new("log_softmax_inside", &[4]);
    let s = b.push("lsm", Op::LogSoftmax(SoftmaxConfig { axis: 1 }), &["x"]);
    let r = b.push("r", Op::Relu, &[&s]);
    let g = b.finish(&r);
    let e = secure::plan(&g, 1, &SecureConfig::default()).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::Model(IrError::UnsupportedConfig { node, op, .. }) if node == "lsm" && op == "LogSoftmax"),
        "{e}"
    );
    // Bad input shape and non-finite values.
    let g = masked_graph(ArrayD::zeros(vec![3, 5, 5]), false, None);
    assert!(matches!(
        secure::run(&g, &ArrayD::zeros(vec![1, 3, 5, 4]), &SecureConfig::default()),
        Err(RuntimeError::Model(IrError::BadInput { .. }))
    ));
    assert!(matches!(
        secure::run(&g, &ArrayD::from_elem(vec![1, 3, 5, 5], f32::NAN), &SecureConfig::default()),
        Err(RuntimeError::Model(IrError::BadInput { .. }))
    ));
    // Bad fixed-point configuration.
    let cfg = SecureConfig { frac_bits: 0, ..SecureConfig::default() };
    assert!(matches!(secure::plan(&g, 1, &cfg), Err(RuntimeError::Mpc { .. })));
}
