//! The transformer ops under 2PC against the plaintext interpreter, over each approximation's
//! stated range (`masq_ir::approx::transformer`): random shapes and values; every case also
//! checks prediction == measurement (bytes per direction, rounds, dealer bytes).

use masq_ir::approx::transformer::{self as approx, bounds};
use masq_ir::*;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::ArrayD;
use proptest::prelude::*;

use crate::common::repeated as input;

const ULP: f64 = 1.0 / 65536.0;

/// `x` through `nodes` (the last one's output `y` read by an Identity, so that no op is the
/// client-side tail of the graph), with the given initializers.
fn graph(dims: &[usize], nodes: Vec<Node>, inits: Vec<(&str, ArrayD<f32>)>) -> Graph {
    let mut g = Graph::new("transformer-prop");
    g.inputs.push(ValueInfo::batched("x", dims));
    for (name, t) in inits {
        g.initializers.insert(name.into(), t);
    }
    g.nodes.extend(nodes);
    g.nodes.push(Node::new("out", Op::Identity, &["y"], &["z"]));
    g.outputs.push(ValueInfo::new("z", vec![]));
    g.finalize().unwrap();
    g
}

fn one(op: Op, dims: &[usize]) -> Graph {
    graph(dims, vec![Node::new("op", op, &["x"], &["y"])], vec![])
}

/// Runs `g` under 2PC: (secure output, plaintext output) after checking the planner.
fn run(g: &Graph, x: &ArrayD<f32>, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let cfg = SecureConfig { seed, ..SecureConfig::default() };
    let run = secure::run(g, x, &cfg).unwrap();
    let plan = secure::plan(g, x.shape()[0], &cfg).unwrap();
    assert_eq!(run.report.measured, plan.total(), "prediction == measurement");
    assert_eq!(run.report.per_image.comparisons, plan.per_image().comparisons);
    let plain = masq_runtime::plain::run_single(g, x.clone()).unwrap();
    (run.report.output.clone(), plain.iter().copied().collect())
}

/// Largest `|secure − plain| / (1 + |plain|·relative)`: absolute where `relative` is 0.
fn worst(s: &[f32], p: &[f32], relative: bool) -> f64 {
    s.iter()
        .zip(p)
        .map(|(&a, &b)| {
            let d = (a as f64 - b as f64).abs();
            if relative { d / (b as f64).abs() } else { d }
        })
        .fold(0.0, f64::max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn gelu_erf_and_tanh_match_plaintext_on_all_reals(
        batch in 1usize..3,
        dims in prop::collection::vec(1usize..5, 1..3),
        values in prop::collection::vec(-30.0f32..30.0, 1..48),
        which in 0usize..3,
        seed in any::<u64>(),
    ) {
        let (op, bound) = match which {
            0 => (Op::Gelu(GeluConfig { tanh: false }), bounds::GELU + 12.0 * ULP),
            1 => (Op::Erf, bounds::ERF + 16.0 * ULP),
            _ => (Op::Tanh, 2.0 * masq_ir::approx::SIGMOID.max_error + 40.0 * ULP),
        };
        let (s, p) = run(&one(op, &dims), &input(batch, &dims, &values), seed);
        let e = worst(&s, &p, false);
        prop_assert!(e <= bound, "error {e} > {bound}");
    }

    #[test]
    fn exp_matches_plaintext_on_its_range(
        dims in prop::collection::vec(1usize..5, 1..3),
        values in prop::collection::vec(-16.0f32..4.0, 1..48),
        seed in any::<u64>(),
    ) {
        let (s, p) = run(&one(Op::Exp, &dims), &input(1, &dims, &values), seed);
        // Relative: the three squarings multiply the polynomial's rounding by 8.
        for (&a, &b) in s.iter().zip(&p) {
            let d = (a as f64 - b as f64).abs();
            prop_assert!(d <= 2e-3 * b as f64 + 16.0 * ULP, "e^x {b}: secure {a}");
        }
    }

    #[test]
    fn reciprocal_and_sqrt_match_plaintext_on_their_ranges(
        dims in prop::collection::vec(1usize..5, 1..3),
        exps in prop::collection::vec(-5.5f64..13.5, 1..48),
        sqrt in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Either sign for the reciprocal (Sqrt takes positive inputs only).
        let values: Vec<f32> =
            exps.iter().enumerate().map(|(i, &e)| if !sqrt && i % 3 == 1 { -(2f64.powf(e) as f32) } else { 2f64.powf(e) as f32 }).collect();
        let x = input(1, &dims, &values);
        let op = if sqrt { Op::Sqrt } else { Op::Reciprocal };
        let (s, p) = run(&one(op, &dims), &x, seed);
        // Relative, plus the output's own rounding to 2^-16 and the input's (amplified by 1/x² for
        // the reciprocal of a small x).
        for ((&a, &b), &xi) in s.iter().zip(&p).zip(x.iter()) {
            let d = (a as f64 - b as f64).abs();
            let input_rounding = if sqrt { ULP / (xi as f64).sqrt() } else { ULP / (xi as f64 * xi as f64) };
            prop_assert!(d <= 2e-3 * (b as f64).abs() + 2.0 * ULP + input_rounding, "x {xi}: {b} vs secure {a}");
        }
    }

    #[test]
    fn softmax_matches_plaintext_on_any_axis(
        batch in 1usize..3,
        dims in prop::collection::vec(1usize..9, 1..4),
        values in prop::collection::vec(-8.0f32..8.0, 1..64),
        axis_pick in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let axis = 1 + axis_pick % dims.len();
        let (s, p) = run(&one(Op::Softmax(SoftmaxConfig { axis }), &dims), &input(batch, &dims, &values), seed);
        let e = worst(&s, &p, false);
        prop_assert!(e <= 2e-3, "error {e}");
    }

    #[test]
    fn layer_norm_matches_plaintext(
        batch in 1usize..3,
        rows in 1usize..5,
        n in 2usize..24,
        values in prop::collection::vec(-6.0f32..6.0, 2..64),
        shift in -20.0f32..20.0,
        params in prop::collection::vec(-2.0f32..2.0, 24),
        seed in any::<u64>(),
    ) {
        let dims = [rows, n];
        let mut vals: Vec<f32> = values.iter().map(|v| v + shift).collect();
        // At least two distinct values per row, so the variance is in range.
        vals[0] = shift - 1.0;
        vals[1] = shift + 1.0;
        let x = input(batch, &dims, &vals);
        let scale = ArrayD::from_shape_vec(vec![n], params[..n].to_vec()).unwrap();
        let bias = ArrayD::from_shape_vec(vec![n], params[24 - n..].to_vec()).unwrap();
        let op = Op::LayerNorm(LayerNormConfig { axis: 2, epsilon: 1e-5, scale: Some("s".into()), bias: Some("b".into()) });
        let g = graph(&dims, vec![Node::new("ln", op, &["x"], &["y"])], vec![("s", scale), ("b", bias)]);
        let (s, p) = run(&g, &x, seed);
        let e = worst(&s, &p, false);
        prop_assert!(e <= 5e-3, "error {e}");
    }

    #[test]
    fn products_and_quotients_of_two_computed_values_match_plaintext(
        batch in 1usize..3,
        m in 1usize..6,
        k in 1usize..9,
        values in prop::collection::vec(-3.0f32..3.0, 1..64),
        seed in any::<u64>(),
    ) {
        // y = x · xᵀ (a [B, m, m] product of two secret tensors), then y / (1 + y²).
        let dims = [m, k];
        let nodes = vec![
            Node::new("t", Op::Transpose(TransposeConfig { perm: vec![0, 2, 1] }), &["x"], &["xt"]),
            Node::new("mm", Op::MatMul(MatMulConfig {}), &["x", "xt"], &["p"]),
            Node::new("sq", Op::Mul(BinaryConfig {}), &["p", "p"], &["p2"]),
            Node::new("one", Op::Add(BinaryConfig {}), &["p2", "c1"], &["d"]),
            Node::new("div", Op::Div(BinaryConfig {}), &["p", "d"], &["y"]),
        ];
        let g = graph(&dims, nodes, vec![("c1", ArrayD::from_elem(vec![1], 1.0))]);
        let x = input(batch, &dims, &values);
        let (s, p) = run(&g, &x, seed);
        let e = worst(&s, &p, false);
        // p has k·9 in magnitude at most: its rounding is k·2^-16, amplified at most 1× by t/(1+t²).
        prop_assert!(e <= 1e-3 + (k as f64) * 4.0 * ULP, "error {e}");
    }
}

#[test]
fn a_secret_product_costs_both_openings_and_one_round() {
    // [1, 3, 4] × [1, 4, 3]: 12 + 12 words each way, in one round; 9 words of C to P1.
    let nodes = vec![
        Node::new("t", Op::Transpose(TransposeConfig { perm: vec![0, 2, 1] }), &["x"], &["xt"]),
        Node::new("mm", Op::MatMul(MatMulConfig {}), &["x", "xt"], &["y"]),
    ];
    let g = graph(&[3, 4], nodes, vec![]);
    let plan = secure::plan(&g, 1, &SecureConfig::default()).unwrap();
    let mm = plan.nodes.iter().find(|n| n.name == "mm").unwrap();
    assert_eq!(mm.cost.rounds, 1);
    assert_eq!(mm.cost.p0_to_p1, masq_mpc::cost::frame_bytes(24));
    assert_eq!(mm.cost.offline_p1, 8 * 9);
    assert_eq!(mm.per_image.comparisons(), 0);
}

#[test]
fn softmax_and_layer_norm_cost_what_the_table_says() {
    // Softmax over rows of 10: 9 + 10 + (4 + 1) comparisons per row; 3 rows.
    let g = one(Op::Softmax(SoftmaxConfig { axis: 2 }), &[3, 10]);
    let plan = secure::plan(&g, 1, &SecureConfig::default()).unwrap();
    let sm = plan.nodes.iter().find(|n| n.name == "op").unwrap();
    assert_eq!(sm.per_image.approx_comparisons, 3 * (9 + 10 + 5));
    assert_eq!(sm.cost.rounds, 4 + 19, "⌈log₂10⌉ + 19 rounds");
    // LayerNorm over rows of 8: one 1/√ per row, 14 comparisons each, 13 rounds.
    let op = Op::LayerNorm(LayerNormConfig { axis: 2, epsilon: 1e-5, scale: None, bias: None });
    let g = one(op, &[5, 8]);
    let plan = secure::plan(&g, 1, &SecureConfig::default()).unwrap();
    let ln = plan.nodes.iter().find(|n| n.name == "op").unwrap();
    assert_eq!(ln.per_image.approx_comparisons, 5 * approx::rsqrt().comparisons());
    assert_eq!(ln.cost.rounds, 13);
    // A Softmax at the output is the client's (no comparisons, no rounds).
    let mut g = Graph::new("tail");
    g.inputs.push(ValueInfo::batched("x", &[3, 10]));
    g.nodes.push(Node::new("sm", Op::Softmax(SoftmaxConfig { axis: 2 }), &["x"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    g.finalize().unwrap();
    let plan = secure::plan(&g, 1, &SecureConfig::default()).unwrap();
    assert_eq!(plan.per_image().comparisons, 0);
    assert_eq!(masq_ir::report::report(&g).unwrap().comparisons, 0);
}

#[test]
fn transformer_op_rounds_are_the_tables() {
    for (op, rounds) in
        [(Op::Gelu(GeluConfig { tanh: true }), 11), (Op::Erf, 13), (Op::Exp, 11), (Op::Reciprocal, 10), (Op::Tanh, 10)]
    {
        let g = one(op.clone(), &[4]);
        let plan = secure::plan(&g, 1, &SecureConfig::default()).unwrap();
        assert_eq!(plan.nodes[0].cost.rounds, rounds, "{}", op.name());
    }
}

/// The README's per-op table ("Transformers under 2PC"): each op family on 64 rows of 64
/// elements, its cost per element (per row for the row-wise ones) and its measured error, with
/// prediction == measurement. `cargo test -p masq-runtime --test it op_table -- --nocapture`.
#[test]
fn op_table() {
    let (rows, n) = (64usize, 64usize);
    let values: Vec<f32> = (0..rows * n).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 8.0).collect();
    let x = input(1, &[rows, n], &values);
    let mm = vec![
        Node::new("t", Op::Transpose(TransposeConfig { perm: vec![0, 2, 1] }), &["x"], &["xt"]),
        Node::new("op", Op::MatMul(MatMulConfig {}), &["x", "xt"], &["y"]),
    ];
    let ln = Op::LayerNorm(LayerNormConfig { axis: 2, epsilon: 1e-5, scale: None, bias: None });
    let cases: Vec<(&str, Graph, f64)> = vec![
        ("MatMul (secret × secret, 64×64 · 64×64)", graph(&[rows, n], mm, vec![]), f64::NAN),
        ("Softmax (rows of 64)", one(Op::Softmax(SoftmaxConfig { axis: 2 }), &[rows, n]), f64::NAN),
        ("LayerNorm (rows of 64)", one(ln, &[rows, n]), f64::NAN),
        ("GELU", one(Op::Gelu(GeluConfig { tanh: false }), &[rows, n]), bounds::GELU),
        ("Erf", one(Op::Erf, &[rows, n]), bounds::ERF),
        ("Tanh", one(Op::Tanh, &[rows, n]), 2.0 * masq_ir::approx::SIGMOID.max_error),
    ];
    println!(
        "| op | comparisons | online bytes | rounds | dealer bytes | max error (measured) | bound (exact arithmetic) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, g, bound) in cases {
        let cfg = SecureConfig { seed: 7, ..SecureConfig::default() };
        let run = secure::run(&g, &x, &cfg).unwrap();
        let plan = secure::plan(&g, 1, &cfg).unwrap();
        assert_eq!(run.report.measured, plan.total(), "{name}: prediction == measurement");
        let node = plan.nodes.iter().find(|p| p.name == "op").unwrap();
        let per = if name.starts_with("MatMul") || name.contains("rows") { rows } else { rows * n };
        let unit = if per == rows { "row" } else { "element" };
        let e = run.report.max_abs_error;
        if bound.is_finite() {
            assert!(e <= bound + 64.0 * ULP, "{name}: {e}");
        }
        println!(
            "| {name} | {:.2} per {unit} | {:.1} per {unit} | {} | {:.1} per {unit} | {e:.1e} | {} |",
            node.per_image.comparisons() as f64 / per as f64,
            node.cost.online_bytes() as f64 / per as f64,
            node.cost.rounds,
            node.cost.offline_bytes() as f64 / per as f64,
            if bound.is_finite() { format!("{bound:.1e}") } else { "—".into() },
        );
    }
}

/// The zoo's small ViT (random weights, two images) under 2PC: the estimate is the measured run,
/// and the logits stay within 1e-2 of plaintext relative to their largest magnitude.
#[test]
fn the_zoo_vit_runs_under_2pc_as_estimated() {
    let g = masq_ir::zoo::build("vit_cifar", None, 3).unwrap();
    let values: Vec<f32> = (0..2 * 3 * 32 * 32).map(|i| ((i * 7919 % 2000) as f32 / 1000.0 - 1.0) * 1.5).collect();
    let x = ArrayD::from_shape_vec(vec![2, 3, 32, 32], values).unwrap();
    let cfg = SecureConfig { seed: 11, ..SecureConfig::default() };
    let run = secure::run(&g, &x, &cfg).unwrap();
    let plan = secure::plan(&g, 2, &cfg).unwrap();
    assert_eq!(run.report.measured, plan.total(), "prediction == measurement");
    assert_eq!(run.report.range_overflows, 0);
    let plain = masq_runtime::plain::run_single(&g, x).unwrap();
    let scale = plain.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    assert!(scale > 1e-3, "logits {scale}");
    assert!(run.report.max_abs_error / scale <= 1e-2, "relative error {}", run.report.max_abs_error / scale);
    // Every op family is there: products of two secrets, Softmax, LayerNorm, GELU.
    let ops: Vec<&str> = plan.nodes.iter().filter(|n| n.cost.rounds > 0).map(|n| n.op.as_str()).collect();
    for op in ["MatMul", "Softmax", "LayerNormalization", "Gelu"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
}
