//! Graph transform for tests and demos: replace every `Relu` with a `MaskedAct` carrying a seeded
//! random mask of a given density (exactly `round(density · elements)` ones per site).

use std::str::FromStr;

use masq_ir::Graph;
use masq_ir::{MaskedActConfig, Op, Replacement};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::ExportError;
use masq_ir::fold::fresh_name as fresh;

/// What a random masked activation computes where its mask is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacementKind {
    /// `x`.
    Identity,
    /// `c1·x + c0` (a polynomial with `c2 = 0`).
    Poly1,
    /// `c2·x² + c1·x + c0`.
    Poly2,
}

impl FromStr for ReplacementKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "identity" => Ok(ReplacementKind::Identity),
            "poly1" => Ok(ReplacementKind::Poly1),
            "poly2" => Ok(ReplacementKind::Poly2),
            other => Err(format!("unknown replacement {other:?} (expected identity, poly1 or poly2)")),
        }
    }
}

/// Settings of [`attach_random_masks`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomMasks {
    /// Fraction of activations that keep their ReLU, in `0..=1`.
    pub density: f64,
    pub replacement: ReplacementKind,
    pub seed: u64,
}

/// Replace every `Relu` node by a `MaskedAct` (same node name; mask `<site>.mask`, coefficients
/// `<site>.c2/.c1/.c0` of shape `[C]`). Returns the number of sites.
pub fn attach_random_masks(graph: &mut Graph, cfg: &RandomMasks) -> Result<usize, ExportError> {
    if !(0.0..=1.0).contains(&cfg.density) {
        return Err(ExportError::invalid(format!("mask density {} is outside 0..=1", cfg.density)));
    }
    let shapes = graph.infer_shapes(1)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut sites = 0;
    for i in 0..graph.nodes.len() {
        if !matches!(graph.nodes[i].op, Op::Relu) {
            continue;
        }
        let node = &graph.nodes[i];
        let x = &shapes[&node.inputs[0]];
        if x.len() < 2 {
            return Err(ExportError::invalid(format!(
                "Relu {} has an input of shape {x:?} (no channel axis) and cannot carry a mask",
                node.name
            )));
        }
        let site = node.name.clone();
        let per_image = x[1..].to_vec();
        let n: usize = per_image.iter().product();
        let ones = (cfg.density * n as f64).round() as usize;
        let mut data = vec![0u8; n];
        for k in rand::seq::index::sample(&mut rng, n, ones.min(n)) {
            data[k] = 1;
        }
        let mask = ArrayD::from_shape_vec(per_image, data).expect("n values");
        let mask_name = fresh(graph, &format!("{site}.mask"));
        graph.masks.insert(mask_name.clone(), mask);
        let c = x[1];
        let replacement = match cfg.replacement {
            ReplacementKind::Identity => Replacement::Identity,
            kind => {
                let mut coef = |lo: f32, hi: f32| -> ArrayD<f32> {
                    ArrayD::from_shape_vec(vec![c], (0..c).map(|_| rng.random_range(lo..=hi)).collect())
                        .expect("c values")
                };
                let c2 = if kind == ReplacementKind::Poly2 { coef(0.002, 0.01) } else { ArrayD::zeros(vec![c]) };
                let c1 = coef(0.6, 0.9);
                let c0 = coef(-0.05, 0.05);
                let mut name = |s: &str, t: ArrayD<f32>| {
                    let n = fresh(graph, &format!("{site}.{s}"));
                    graph.initializers.insert(n.clone(), t);
                    n
                };
                Replacement::Poly { c2: name("c2", c2), c1: name("c1", c1), c0: name("c0", c0) }
            }
        };
        graph.nodes[i].op = Op::MaskedAct(MaskedActConfig { mask: mask_name, replacement, cap: None });
        sites += 1;
    }
    Ok(sites)
}
