//! Property tests of the CNN ops beyond ReLU under 2PC against the plaintext interpreter:
//! random shapes, values and op settings; every case also checks prediction == measurement.

use masq_ir::approx::SIGMOID;
use masq_ir::*;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::ArrayD;
use proptest::prelude::*;

use crate::common::repeated as input;

const ULP: f64 = 1.0 / 65536.0;

fn graph(dims: &[usize], op: Op, mask: Option<ArrayD<u8>>) -> Graph {
    let mut g = Graph::new("prop");
    g.inputs.push(ValueInfo::batched("x", dims));
    if let Some(m) = mask {
        g.masks.insert("m".into(), m);
    }
    g.nodes.push(Node::new("op", op, &["x"], &["y"]));
    g.outputs.push(ValueInfo::new("y", vec![]));
    g.finalize().unwrap();
    g
}

/// Runs `g` under 2PC; returns the largest error against plaintext after checking the planner.
fn error(g: &Graph, x: &ArrayD<f32>, seed: u64) -> f64 {
    let cfg = SecureConfig { seed, ..SecureConfig::default() };
    let run = secure::run(g, x, &cfg).unwrap();
    let plan = secure::plan(g, x.shape()[0], &cfg).unwrap();
    assert_eq!(run.report.measured, plan.total(), "prediction == measurement");
    run.report.max_abs_error
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn smooth_and_hard_activations_match_plaintext(
        batch in 1usize..3,
        dims in prop::collection::vec(1usize..5, 1..4),
        values in prop::collection::vec(-12.0f32..12.0, 1..64),
        which in 0usize..3,
        alpha in 0.05f32..0.5,
        beta in -0.5f32..1.0,
        seed in any::<u64>(),
    ) {
        let (op, bound) = match which {
            0 => (Op::Sigmoid, SIGMOID.max_error + 16.0 * ULP),
            1 => (Op::HardSigmoid(HardSigmoidConfig { alpha, beta }), 8.0 * ULP),
            _ => (Op::HardSwish, 40.0 * ULP),
        };
        let g = graph(&dims, op, None);
        let e = error(&g, &input(batch, &dims, &values), seed);
        prop_assert!(e <= bound, "error {e} > {bound}");
    }

    #[test]
    fn reductions_match_plaintext(
        batch in 1usize..3,
        dims in prop::collection::vec(1usize..6, 2..4),
        values in prop::collection::vec(-4.0f32..4.0, 1..64),
        pick in any::<u8>(),
        keepdims in any::<bool>(),
        mean in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // A non-empty set of the non-batch axes.
        let rank = dims.len() + 1;
        let mut axes: Vec<usize> = (1..rank).filter(|a| pick & (1 << a) != 0).collect();
        if axes.is_empty() {
            axes.push(1);
        }
        let count: usize = axes.iter().map(|&a| dims[a - 1]).product();
        let cfg = ReduceConfig { axes, keepdims };
        let (op, bound) = if mean {
            (Op::ReduceMean(cfg), 4.0 * ULP)
        } else {
            (Op::ReduceSum(cfg), (count as f64 / 2.0 + 2.0) * ULP)
        };
        let g = graph(&dims, op, None);
        let e = error(&g, &input(batch, &dims, &values), seed);
        prop_assert!(e <= bound, "error {e} > {bound}");
    }

    #[test]
    fn capped_masked_activations_match_plaintext(
        batch in 1usize..3,
        c in 1usize..4,
        hw in 1usize..5,
        values in prop::collection::vec(-3.0f32..3.0, 1..64),
        bits in prop::collection::vec(any::<bool>(), 1..64),
        cap in 0.1f32..2.0,
        seed in any::<u64>(),
    ) {
        let dims = [c, hw, hw];
        let n = c * hw * hw;
        let mask = ArrayD::from_shape_vec(vec![c, hw, hw], (0..n).map(|i| bits[i % bits.len()] as u8).collect()).unwrap();
        let op = Op::MaskedAct(MaskedActConfig { mask: "m".into(), replacement: Replacement::Identity, cap: Some(cap) });
        let g = graph(&dims, op, Some(mask));
        let e = error(&g, &input(batch, &dims, &values), seed);
        prop_assert!(e <= 4.0 * ULP, "error {e}");
    }
}
