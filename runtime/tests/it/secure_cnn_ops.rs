//! 2PC of the CNN ops beyond ReLU (issue #14 part 3): Sigmoid (and SiLU = x·Sigmoid(x)),
//! HardSigmoid, HardSwish, Pow 1 and 2, ReduceMean / ReduceSum, and ceil-mode MaxPool /
//! AveragePool with partial last windows. Each op: the planner's prediction == the measured
//! cost (per node and in total, dealer bytes included), the cost written out from the protocol
//! (rounds, words, comparisons, products per element), and randomised cases against the
//! plaintext interpreter within a stated fixed-point bound.

use masq_ir::approx::SIGMOID;
use masq_ir::*;
use masq_mpc::cost::{self, Cost, Network, Protocol};
use masq_runtime::RuntimeError;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One unit in the last place at the default 16 fractional bits.
const ULP: f64 = 1.0 / 65536.0;
const BITS: u32 = 64;

fn random(shape: &[usize], lo: f32, hi: f32, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(lo..hi)).collect()).unwrap()
}

/// A graph under construction: one input `x` of `[N, dims...]`.
struct G {
    g: Graph,
}

impl G {
    fn new(name: &str, dims: &[usize]) -> G {
        let mut g = Graph::new(name);
        g.inputs.push(ValueInfo::batched("x", dims));
        G { g }
    }
    fn init(&mut self, name: &str, t: ArrayD<f32>) -> String {
        self.g.initializers.insert(name.into(), t);
        name.into()
    }
    fn push(&mut self, name: &str, op: Op, inputs: &[&str]) -> String {
        self.g.nodes.push(Node::new(name, op, inputs, &[name]));
        name.into()
    }
    fn finish(mut self, out: &str) -> Graph {
        self.g.outputs.push(ValueInfo::new(out, vec![]));
        self.g.finalize().unwrap();
        self.g
    }
}

/// A graph of one op applied to `x`.
fn single(name: &str, dims: &[usize], op: Op) -> Graph {
    let mut g = G::new(name, dims);
    let y = g.push("op", op, &["x"]);
    g.finish(&y)
}

/// Secure run; checks prediction == measurement (total, dealer bytes included, and per node)
/// and returns the report and the largest error against plaintext.
fn run(g: &Graph, x: &ArrayD<f32>, seed: u64) -> secure::SecureReport {
    let cfg = SecureConfig { seed, ..SecureConfig::default() };
    let run = secure::run(g, x, &cfg).unwrap();
    let plan = secure::plan(g, x.shape()[0], &cfg).unwrap();
    assert_eq!(run.report.measured, plan.total(), "{}: prediction == measurement", g.name);
    for (l, p) in run.report.layers.iter().zip(&plan.nodes) {
        assert_eq!(
            (l.online_bytes_p0_to_p1, l.online_bytes_p1_to_p0, l.rounds),
            (p.cost.p0_to_p1, p.cost.p1_to_p0, p.cost.rounds),
            "{}: node {}",
            g.name,
            l.name
        );
    }
    run.report
}

/// The online and dealer cost of the single op node of a run (the total less the reveal of
/// `out` elements and the per-deal seeds), with the measured dealer bytes.
fn node_cost(r: &secure::SecureReport, out: usize) -> Cost {
    let rest = cost::reveal(out, masq_mpc::Party::P1) + cost::deal_overhead();
    Cost {
        p0_to_p1: r.measured.p0_to_p1 - rest.p0_to_p1,
        p1_to_p0: r.measured.p1_to_p0 - rest.p1_to_p0,
        rounds: r.measured.rounds - rest.rounds,
        offline_p0: r.measured.offline_p0 - rest.offline_p0,
        offline_p1: r.measured.offline_p1 - rest.offline_p1,
    }
}

fn sum(cs: &[Cost]) -> Cost {
    cs.iter().copied().sum()
}

#[test]
fn each_op_costs_what_its_protocol_says() {
    let dims = [2, 3, 4];
    let n = 2 * 2 * 3 * 4; // batch 2
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = random(&[2, 2, 3, 4], -3.0, 3.0, &mut rng);
    let layer = |r: &secure::SecureReport| r.layers[0].clone();

    // Sigmoid: the three clamps (6n comparisons in one ReLU call); then nine rounds of one Beaver
    // call each on 3n elements: the middle piece's u², seven Horner steps in u² and the final
    // u·P(u²) (n elements), beside the two tails' nine Horner products (2n elements). 27 products
    // per element, 10 rounds.
    let r = run(&single("sigmoid", &dims, Op::Sigmoid), &x, 2);
    let mut parts = vec![cost::cmp(6 * n, BITS, Default::default())];
    parts.extend(std::iter::repeat_n(cost::mul(3 * n), 9));
    let want = sum(&parts);
    assert_eq!(node_cost(&r, n), want);
    assert_eq!(want.rounds, 10);
    assert_eq!(layer(&r).per_image.sigmoid_comparisons, 6 * 24);
    assert_eq!(layer(&r).per_image.macs, SIGMOID.multiplications() * 24);
    assert_eq!(SIGMOID.multiplications(), 27);
    assert_eq!(r.comparisons_per_batch, 6 * n as u64);

    // HardSigmoid: a public affine map, then the clamp: one round, 2 comparisons per element.
    let hs = Op::HardSigmoid(HardSigmoidConfig { alpha: 0.2, beta: 0.5 });
    let r = run(&single("hard_sigmoid", &dims, hs), &x, 3);
    assert_eq!(node_cost(&r, n), cost::cmp(2 * n, BITS, Default::default()));
    assert_eq!(layer(&r).per_image.clip_comparisons, 2 * 24);

    // HardSwish: the clamp, then one Beaver product: two rounds.
    let r = run(&single("hard_swish", &dims, Op::HardSwish), &x, 4);
    assert_eq!(node_cost(&r, n), cost::cmp(2 * n, BITS, Default::default()) + cost::mul(n));
    assert_eq!((layer(&r).per_image.clip_comparisons, layer(&r).per_image.macs), (2 * 24, 24));

    // Pow 2: one Beaver square; Pow 1: nothing.
    for (e, want) in [(2.0, cost::square(n)), (1.0, Cost::default())] {
        let mut g = G::new("pow", &dims);
        let c = g.init("e", ArrayD::from_elem(vec![], e));
        let y = g.push("op", Op::Pow(BinaryConfig {}), &["x", &c]);
        let r = run(&g.finish(&y), &x, 5);
        assert_eq!(node_cost(&r, n), want, "exponent {e}");
    }

    // Reductions: local.
    for (mean, keepdims) in [(true, true), (false, false)] {
        let c = ReduceConfig { axes: vec![1, 3], keepdims };
        let op = if mean { Op::ReduceMean(c) } else { Op::ReduceSum(c) };
        let r = run(&single("reduce", &dims, op), &x, 6);
        assert_eq!(node_cost(&r, 2 * 3), Cost::default());
        assert_eq!(layer(&r).per_image.macs, 24);
        assert_eq!(r.output_shape, if keepdims { vec![2, 1, 3, 1] } else { vec![2, 3] });
    }
}

/// The randomised cases of one op: `n` graphs with inputs drawn from `[-range, range]`, the
/// first elements set to `extremes`; every secure output within the case's tolerance of
/// plaintext. `graph` returns the graph, the input shape and the tolerance. Returns the largest
/// error seen.
fn cases(
    name: &str,
    n: usize,
    range: f32,
    extremes: &[f32],
    mut graph: impl FnMut(&mut ChaCha8Rng) -> (Graph, Vec<usize>, f64),
) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(name.bytes().map(u64::from).sum());
    let mut worst = 0f64;
    for case in 0..n {
        let (g, shape, tol) = graph(&mut rng);
        let mut x = random(&shape, -range, range, &mut rng);
        for (slot, &v) in x.iter_mut().zip(extremes) {
            *slot = v;
        }
        let r = run(&g, &x, case as u64);
        assert!(r.max_abs_error <= tol, "{name} case {case}: error {} > {tol}", r.max_abs_error);
        worst = worst.max(r.max_abs_error);
    }
    eprintln!("{name}: largest error {worst:.3e} over {n} cases");
    worst
}

fn shape(rng: &mut ChaCha8Rng) -> Vec<usize> {
    vec![rng.random_range(1..3), rng.random_range(1..4), rng.random_range(1..6)]
}

#[test]
fn sigmoid_and_silu_match_plaintext_within_the_approximation_bound() {
    // Bound: the approximation's 9.4e-7 plus 16 units in the last place of fixed-point error
    // (the truncations of u, u², the Horner steps, u·P and the tails, and the coefficients'
    // encodings), which dominates at 16 fractional bits.
    let tol = SIGMOID.max_error + 16.0 * ULP;
    let edges = [0.0, 4.0, -4.0, 4.4, -4.4, 3.99, 16.0, -16.0, 15.9, 1e3, -1e3, 3e4, -3e4];
    let worst = cases("sigmoid", 10, 12.0, &edges, |rng| {
        let s = shape(rng);
        (single("sigmoid", &s[1..], Op::Sigmoid), s, tol)
    });
    assert!(worst > SIGMOID.max_error, "fixed-point rounding shows: {worst}");
    // SiLU = x·Sigmoid(x) (two secrets): |x| ≤ 4 scales the sigmoid error by up to 4.
    cases("silu", 6, 4.0, &[0.0, 4.0, -4.0], |rng| {
        let s = shape(rng);
        let mut g = G::new("silu", &s[1..]);
        let sg = g.push("sig", Op::Sigmoid, &["x"]);
        let y = g.push("silu", Op::Mul(BinaryConfig {}), &["x", &sg]);
        (g.finish(&y), s, 4.0 * tol + 4.0 * ULP)
    });
}

#[test]
fn hard_sigmoid_hard_swish_and_pow_match_plaintext() {
    let edges = [0.0, 8.0, -8.0, 3.0, -3.0, 2.5, -2.5];
    // HardSigmoid: α·x truncated (α's encoding off by ≤ 1/2 ulp, times |x| ≤ 8) plus β: ≤ 8 ulp.
    cases("hard_sigmoid", 10, 8.0, &edges, |rng| {
        let s = shape(rng);
        let c = HardSigmoidConfig { alpha: rng.random_range(-0.5..0.5), beta: rng.random_range(-0.5..1.5) };
        (single("hard_sigmoid", &s[1..], Op::HardSigmoid(c)), s, 8.0 * ULP)
    });
    // HardSwish: h = clip(x/6 + 1/2) off by ≤ 4 ulp, times |x| ≤ 8, plus one truncation: 40 ulp.
    cases("hard_swish", 10, 8.0, &edges, |rng| {
        let s = shape(rng);
        (single("hard_swish", &s[1..], Op::HardSwish), s, 40.0 * ULP)
    });
    // x² with |x| ≤ 8: the input's encoding error (1/2 ulp) times 2|x| plus one truncation.
    cases("pow", 8, 8.0, &edges, |rng| {
        let s = shape(rng);
        let mut g = G::new("pow", &s[1..]);
        let e = rng.random_range(1..3) as f32;
        let eshape: Vec<usize> = if rng.random_bool(0.5) { vec![] } else { vec![1; s.len()] };
        let c = g.init("e", ArrayD::from_elem(eshape, e));
        let y = g.push("pow", Op::Pow(BinaryConfig {}), &["x", &c]);
        (g.finish(&y), s, 10.0 * ULP)
    });
}

#[test]
fn reductions_over_any_axes_match_plaintext() {
    // Sums are exact on shares: the error is the inputs' encoding (1/2 ulp each, `count` inputs
    // per output) plus, for the mean, two truncations; 2 more ulp for plaintext's f32 rounding.
    cases("reduce", 16, 4.0, &[4.0, -4.0], |rng| {
        let s = vec![rng.random_range(1..3), rng.random_range(1..4), rng.random_range(1..4), rng.random_range(1..8)];
        let axes: Vec<usize> = (0..4).filter(|_| rng.random_bool(0.5)).collect();
        let count: usize = axes.iter().map(|&a| s[a]).product();
        let mean = rng.random_bool(0.5);
        let c = ReduceConfig { axes, keepdims: rng.random_bool(0.5) };
        let (op, tol) = if mean { (Op::ReduceMean(c), 4.0) } else { (Op::ReduceSum(c), 0.5 * count as f64 + 2.0) };
        (single("reduce", &s[1..], op), s, tol * ULP)
    });
    // A mean over many elements keeps its precision (1/count resolved beyond 2^-16).
    let g = single("mean_big", &[3, 50, 50], Op::ReduceMean(ReduceConfig { axes: vec![2, 3], keepdims: false }));
    let x = ArrayD::from_elem(vec![1, 3, 50, 50], 3.0f32);
    let r = run(&g, &x, 1);
    assert!(r.max_abs_error <= 3.0 * ULP, "mean of 2,500 elements: error {}", r.max_abs_error);
}

fn pool_cfg(k: usize, s: usize, pad: [usize; 4], dil: usize, cip: bool) -> PoolConfig {
    PoolConfig {
        kernel: [k, k],
        stride: [s, s],
        padding: pad,
        dilation: [dil, dil],
        ceil_mode: true,
        count_include_pad: cip,
    }
}

#[test]
fn ceil_mode_pools_with_partial_windows_match_plaintext() {
    // GoogLeNet's 3×3 stride 2 ceil-mode max pool on 6×6: 3×3 outputs, the last row and column
    // of windows partial (2×3, 3×2, 2×2 valid inputs).
    let g = single("mp_ceil", &[2, 6, 6], Op::MaxPool(pool_cfg(3, 2, [0; 4], 1, false)));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random(&[1, 2, 6, 6], -2.0, 2.0, &mut rng);
    let r = run(&g, &x, 1);
    assert_eq!(r.output_shape, vec![1, 2, 3, 3]);
    assert!(r.max_abs_error <= 0.5 * ULP); // the inputs' encoding only
    // Per plane: 4 windows of 9, 2 + 2 of 6, 1 of 4 valid inputs.
    assert_eq!(r.per_image.maxpool_comparisons, 2 * (4 * 8 + 4 * 5 + 3));
    assert_eq!(r.layers[0].rounds, 4);
    // Average pools: the divisor counts explicit padding (count_include_pad) but never the
    // ceil-mode overflow. 3×3 stride 2, pads [1, 1, 0, 0] on 5×5: 3×3 outputs (floor mode: 2×2);
    // per axis the windows cover 3, 3, 2 positions of the padded input, of which 2, 3, 2 valid.
    let x = ArrayD::from_elem(vec![1, 1, 5, 5], 1.0f32);
    let (p, v) = ([3.0, 3.0, 2.0], [2.0, 3.0, 2.0]);
    let incl: Vec<f64> = (0..9).map(|i| v[i / 3] * v[i % 3] / (p[i / 3] * p[i % 3])).collect();
    for (cip, want) in [(true, incl), (false, vec![1.0; 9])] {
        let g = single("ap_ceil", &[1, 5, 5], Op::AveragePool(pool_cfg(3, 2, [1, 1, 0, 0], 1, cip)));
        let r = run(&g, &x, 2);
        assert_eq!(r.output_shape, vec![1, 1, 3, 3]);
        for (got, want) in r.output.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 4.0 * ULP, "cip={cip}: {:?} vs {want:?}", r.output);
        }
        assert!(r.max_abs_error < 4.0 * ULP);
        assert_eq!(r.layers[0].rounds, 0);
    }
    // Pads [1, 1, 1, 1] on 6×6: 4×4 outputs, the last window per axis 2 padded positions of 3
    // with 1 valid (onnxruntime 1.31 gives these values).
    let x = ArrayD::from_elem(vec![1, 1, 6, 6], 1.0f32);
    let g = single("ap_ceil_sym", &[1, 6, 6], Op::AveragePool(pool_cfg(3, 2, [1; 4], 1, true)));
    let r = run(&g, &x, 3);
    let axis = [2.0 / 3.0, 1.0, 1.0, 0.5];
    for (i, got) in r.output.iter().enumerate() {
        let want = axis[i / 4] * axis[i % 4];
        assert!((*got as f64 - want).abs() < 4.0 * ULP, "{:?}", r.output);
    }
    // Random geometries, floor and ceil mode, both pools: exact comparisons (max); window means
    // within 1/count's encoding (1/2 ulp times a sum of at most 9 inputs ≤ 2) plus one truncation.
    cases("pools", 24, 2.0, &[2.0, -2.0], |rng| {
        let k: usize = rng.random_range(1..4);
        let s = rng.random_range(1..4);
        let dil = if rng.random_bool(0.25) { 2 } else { 1 };
        let pad = [0; 4].map(|_| rng.random_range(0..k.div_ceil(2).max(1)));
        let cip = rng.random_bool(0.5);
        let mut c = pool_cfg(k, s, pad, dil, cip);
        c.ceil_mode = rng.random_bool(0.75);
        let span = dil * (k - 1) + 1;
        let (h, w) = (rng.random_range(span..span + 5), rng.random_range(span..span + 5));
        let op = if rng.random_bool(0.5) { Op::MaxPool(c) } else { Op::AveragePool(c) };
        (single("pool", &[2, h, w], op), vec![rng.random_range(1..3), 2, h, w], 12.0 * ULP)
    });
}

#[test]
fn unsupported_exponents_and_constant_left_products_are_refused_by_name() {
    let mut g = G::new("pow3", &[4]);
    let c = g.init("e", ArrayD::from_elem(vec![], 3.0));
    let y = g.push("cube", Op::Pow(BinaryConfig {}), &["x", &c]);
    let e = secure::plan(&g.finish(&y), 1, &SecureConfig::default()).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::Model(IrError::UnsupportedConfig { node, op, reason })
            if node == "cube" && op == "Pow" && reason.contains("exponent") && reason.contains("1 or 2")),
        "{e}"
    );
    // A constant divided by a computed value, and a constant matrix times a computed one.
    let mut g = G::new("const_div", &[4]);
    let c = g.init("c", ArrayD::from_elem(vec![4], 2.0));
    let y = g.push("div", Op::Div(BinaryConfig {}), &[&c, "x"]);
    let e = secure::plan(&g.finish(&y), 1, &SecureConfig::default()).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::Model(IrError::UnsupportedConfig { node, reason, .. })
            if node == "div" && reason.contains("constant divided")),
        "{e}"
    );
    let mut g = G::new("const_matmul", &[4, 3]);
    let c = g.init("w", ArrayD::from_elem(vec![2, 4], 0.5));
    let y = g.push("mm", Op::MatMul(MatMulConfig {}), &[&c, "x"]);
    let e = secure::plan(&g.finish(&y), 1, &SecureConfig::default()).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::Model(IrError::UnsupportedConfig { node, reason, .. })
            if node == "mm" && reason.contains("constant left operand")),
        "{e}"
    );
}

/// A small CNN of every new op: Conv → HardSwish → ceil-mode MaxPool (8×8 → 4×4, partial last
/// windows) → Conv → SiLU (Sigmoid · x) → ceil-mode AveragePool with count_include_pad (4×4 →
/// 3×3) → HardSigmoid → Pow 2 → ReduceMean over H, W → Flatten → Gemm → Softmax (at the client).
fn small_cnn() -> Graph {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut g = G::new("cnn_ops", &[2, 8, 8]);
    let mut conv = |g: &mut G, name: &str, x: &str, cin: usize, cout: usize| {
        let w = g.init(&format!("{name}.w"), random(&[cout, cin, 3, 3], -0.4, 0.4, &mut rng));
        let b = g.init(&format!("{name}.b"), random(&[cout], -0.1, 0.1, &mut rng));
        let cfg = ConvConfig {
            weight: w,
            bias: Some(b),
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1; 4],
            dilation: [1, 1],
            groups: 1,
        };
        g.push(name, Op::Conv(cfg), &[x])
    };
    let c1 = conv(&mut g, "c1", "x", 2, 4);
    let hs = g.push("hswish", Op::HardSwish, &[&c1]);
    let mp = g.push("mp", Op::MaxPool(pool_cfg(3, 2, [0; 4], 1, false)), &[&hs]);
    let c2 = conv(&mut g, "c2", &mp, 4, 4);
    let sg = g.push("sig", Op::Sigmoid, &[&c2]);
    let silu = g.push("silu", Op::Mul(BinaryConfig {}), &[&c2, &sg]);
    let ap = g.push("ap", Op::AveragePool(pool_cfg(2, 2, [1, 1, 0, 0], 1, true)), &[&silu]);
    let hsg = g.push("hsig", Op::HardSigmoid(HardSigmoidConfig { alpha: 0.3, beta: 0.4 }), &[&ap]);
    let e = g.init("two", ArrayD::from_elem(vec![], 2.0));
    let pw = g.push("pow", Op::Pow(BinaryConfig {}), &[&hsg, &e]);
    let rm = g.push("mean", Op::ReduceMean(ReduceConfig { axes: vec![2, 3], keepdims: true }), &[&pw]);
    let fl = g.push("flat", Op::Flatten(FlattenConfig { axis: 1 }), &[&rm]);
    let fw = g.init("fc.w", random(&[3, 4], -1.0, 1.0, &mut rng));
    let fc = g.push("fc", Op::Gemm(GemmConfig { weight: fw, bias: None }), &[&fl]);
    let sm = g.push("softmax", Op::Softmax(SoftmaxConfig { axis: 1 }), &[&fc]);
    g.finish(&sm)
}

#[test]
fn a_cnn_of_the_new_ops_estimates_and_runs_end_to_end() {
    let g = small_cnn();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for batch in [1, 2] {
        let x = random(&[batch, 2, 8, 8], -2.0, 2.0, &mut rng);
        let r = run(&g, &x, 7);
        assert!(r.max_abs_error < 2e-3, "batch {batch}: error {}", r.max_abs_error);
        assert_eq!(r.output_shape, vec![batch, 3]);
        // `masq estimate` (masq protocol) is the planner's prediction: equal to the run.
        let e = secure::estimate(&g, Protocol::Masq, &Network::WAN, batch, &Default::default()).unwrap();
        assert_eq!(e.rounds, r.rounds);
        assert_eq!(e.online_bytes, r.online_bytes as f64);
        assert_eq!(e.offline_bytes, Some(r.offline_bytes as f64));
        assert_eq!(e.per_image, r.per_image);
        assert_eq!(e.comparisons_per_batch, batch as u64 * r.per_image.comparisons);
        // Per image: HardSwish 2·256 and HardSigmoid 2·36 clip comparisons, Sigmoid 6·64, max
        // pool 4 planes × (9 windows of 9, 6 of 6 and 1 of 4 valid inputs), no ReLUs.
        let pi = e.per_image;
        assert_eq!(pi.clip_comparisons, 2 * 256 + 2 * 36);
        assert_eq!(pi.sigmoid_comparisons, 6 * 64);
        assert_eq!(pi.maxpool_comparisons, 4 * (9 * 8 + 6 * 5 + 3));
        assert_eq!(pi.relu_count, 0);
        let rounds = |name: &str| r.layers.iter().find(|l| l.name == name).unwrap().rounds;
        let want =
            [("hswish", 2), ("mp", 4), ("sig", 10), ("silu", 1), ("ap", 0), ("hsig", 1), ("pow", 1), ("mean", 0)];
        for (name, n) in want {
            assert_eq!(rounds(name), n, "{name}");
        }
        // Other protocols' published costs apply to the same workload.
        let c = secure::estimate(&g, Protocol::CrypTen, &Network::WAN, batch, &Default::default()).unwrap();
        assert!(c.online_bytes > e.online_bytes);
    }
}
