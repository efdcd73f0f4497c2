//! The MicroNet challenge's score (docs/ALGORITHMS.md §7): parameter storage and arithmetic
//! operations, each normalised by WideResNet-28-10 (36.5 M parameters, 10.49 B operations).
//!
//! **Storage** is counted in 32-bit units: a tensor of `n` non-zeros at `b` bits is `n·b/32`,
//! f32 tensors count 16 bits (the challenge's free 16-bit quantization). A Conv/Gemm weight is
//! stored sparse (its non-zeros plus a 1-bit mask per weight) when that is smaller than dense. Conv/Gemm weights count at their quantized width
//! ([`Graph::weight_quant`]); biases, BatchNorm scale and shift, polynomial coefficients at 16
//! bits; BatchNorm mean and variance not at all (they fold into the layer).
//!
//! **Operations.** A Conv makes `k²·c_in/groups·(1 − s)·H_out·W_out·c_out` multiplications and
//! that minus `H_out·W_out·c_out` additions (plus `H_out·W_out·c_out` with a bias), `s` being the
//! layer's measured weight sparsity or an assumed uniform one (the published example assumes
//! 0.5); a Gemm is a 1×1 conv on a 1×1 image. A `b`-bit multiplication counts `min(b, 16)/32`
//! (8 bits: ¼; f32: ½), where `b` is the larger of the weight's and the input activation's width
//! (an input without a FakeQuant in front is f32). Additions of `b`-bit products accumulate as a
//! binary tree: ½ at `2b` bits, ¼ at `2b + 1`, ⅛ at `2b + 2`, 1/16 at `2b + 3`, 1/32 at `2b + 4`
//! and the last 1/32 at 32 bits (each width capped at 32), the sum divided by 32; f32 additions
//! count ½. Every ReLU output is one multiplication; BatchNorm a multiplication and an addition
//! per element; Add/Sub an addition per element; average pools an addition per input element and
//! a multiplication per output; other ops their multiply-accumulates as multiplications. These
//! ops run in f32 (½ each).

use std::collections::HashMap;

use serde::Serialize;

use crate::cost::node_cost;
use crate::error::{IrError, Result};
use crate::{Graph, Node, Op};

/// WideResNet-28-10's parameters, the CIFAR-100 track's storage reference.
pub const REFERENCE_PARAMS: f64 = 36.5e6;
/// WideResNet-28-10's math operations, the CIFAR-100 track's compute reference.
pub const REFERENCE_OPS: f64 = 10.49e9;

/// What one `bits`-bit multiplication counts (f32 is `bits = 32`).
pub fn mult_factor(bits: u32) -> f64 {
    f64::from(bits.min(16)) / 32.0
}

/// What one addition of two `bits`-bit products counts (f32: ½, the 16-bit freebie).
pub fn add_factor(bits: u32) -> f64 {
    if bits >= 16 {
        return 0.5;
    }
    let w = |k: u32| f64::from((2 * bits + k).min(32));
    (0.5 * w(0) + 0.25 * w(1) + 0.125 * w(2) + 0.0625 * w(3) + 0.03125 * w(4) + 0.03125 * 32.0) / 32.0
}

/// Storage of `count` values at `bits` bits, in 32-bit units (f32 counts 16 bits).
pub fn storage_units(count: u64, bits: u32) -> f64 {
    count as f64 * f64::from(bits.min(16)) / 32.0
}

/// The score of given totals: `params/36.5M + ops/10.49B`.
pub fn score(params: f64, ops: f64) -> f64 {
    params / REFERENCE_PARAMS + ops / REFERENCE_OPS
}

/// Options of [`micronet`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ScoreOptions {
    /// Assume this weight sparsity in every Conv/Gemm when counting operations (the published
    /// example uses 0.5); `None`: each layer's measured sparsity.
    pub assumed_sparsity: Option<f64>,
}

/// One Conv or Gemm layer's share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerScore {
    pub layer: String,
    pub weights: u64,
    pub nonzeros: u64,
    pub weight_bits: u32,
    pub act_bits: u32,
    /// Sparsity used for its operations (measured or assumed).
    pub sparsity: f64,
    /// Whether the weight is stored sparse (non-zeros plus a mask).
    pub sparse: bool,
    /// Storage of the weight (mask included) and its bias, 32-bit units.
    pub params: f64,
    /// Multiplications and additions before the width factors.
    pub mults: f64,
    pub adds: f64,
    /// Operations after the width factors.
    pub ops: f64,
}

/// The score of a model, with its parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MicronetScore {
    pub options: ScoreOptions,
    /// Storage in 32-bit units, mask included.
    pub params: f64,
    /// Mask bits: 1 per weight of every layer stored sparse.
    pub mask_bits: u64,
    /// Multiplications and additions after the width factors.
    pub mults: f64,
    pub adds: f64,
    pub ops: f64,
    pub score: f64,
    pub reference_params: f64,
    pub reference_ops: f64,
    pub layers: Vec<LayerScore>,
}

fn nonzeros(t: &ndarray::ArrayD<f32>) -> u64 {
    t.iter().filter(|v| **v != 0.0).count() as u64
}

/// Bits of the value feeding `node` (its FakeQuant's width, else 32).
fn act_bits(producers: &HashMap<&str, &Node>, node: &Node) -> u32 {
    match node.inputs.first().and_then(|i| producers.get(i.as_str())) {
        Some(Node { op: Op::FakeQuant(q), .. }) => q.bits(),
        _ => 32,
    }
}

/// Scores `graph` for one image by the rules in the module header.
pub fn micronet(graph: &Graph, options: ScoreOptions) -> Result<MicronetScore> {
    if let Some(s) = options.assumed_sparsity
        && !(0.0..1.0).contains(&s)
    {
        return Err(IrError::InvalidParameter { name: "assumed sparsity", reason: format!("{s} is not in [0, 1)") });
    }
    let shapes = graph.infer_shapes(1)?;
    let producers: HashMap<&str, &Node> =
        graph.nodes.iter().flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), n))).collect();
    let (mut params, mut mults, mut adds) = (0f64, 0f64, 0f64);
    let mut layers = Vec::new();
    let mut mask_bits = 0u64;
    for node in &graph.nodes {
        let out = shapes
            .get(&node.outputs[0])
            .ok_or_else(|| IrError::NotFound { kind: "shape of value", name: node.outputs[0].clone() })?;
        let out_elems = out.iter().product::<usize>() as f64;
        let in_elems =
            node.inputs.first().and_then(|i| shapes.get(i)).map_or(0.0, |s| s.iter().product::<usize>() as f64);
        let (weight, bias, per_output) = match &node.op {
            Op::Conv(c) => {
                let w = graph.initializer(node, &c.weight)?;
                (Some((c.weight.as_str(), w)), c.bias.as_deref(), w.len() as f64 / w.shape()[0] as f64)
            }
            Op::Gemm(c) => {
                let w = graph.initializer(node, &c.weight)?;
                (Some((c.weight.as_str(), w)), c.bias.as_deref(), w.shape()[1] as f64)
            }
            _ => (None, None, 0.0),
        };
        if let Some((wname, w)) = weight {
            let nz = nonzeros(w);
            let weight_bits = graph.weight_quant.get(wname).map_or(32, |q| q.bits());
            let a_bits = act_bits(&producers, node);
            let bits = weight_bits.max(a_bits);
            let sparsity = options.assumed_sparsity.unwrap_or(1.0 - nz as f64 / w.len().max(1) as f64);
            let m = per_output * (1.0 - sparsity) * out_elems;
            let a = m - out_elems + if bias.is_some() { out_elems } else { 0.0 };
            let bias_units = match bias {
                Some(b) => storage_units(nonzeros(graph.initializer(node, b)?), 32),
                None => 0.0,
            };
            let dense = storage_units(w.len() as u64, weight_bits);
            let sparse_units = storage_units(nz, weight_bits) + w.len() as f64 / 32.0;
            let sparse = sparse_units < dense;
            if sparse {
                mask_bits += w.len() as u64;
            }
            let p = dense.min(sparse_units) + bias_units;
            let ops = m * mult_factor(bits) + a * add_factor(bits);
            params += p;
            mults += m * mult_factor(bits);
            adds += a * add_factor(bits);
            layers.push(LayerScore {
                layer: node.name.clone(),
                weights: w.len() as u64,
                nonzeros: nz,
                weight_bits,
                act_bits: a_bits,
                sparsity,
                sparse,
                params: p,
                mults: m,
                adds: a,
                ops,
            });
            continue;
        }
        let half = mult_factor(32);
        let c = node_cost(graph, node, &shapes)?;
        match &node.op {
            Op::BatchNorm(b) => {
                params += storage_units(nonzeros(graph.initializer(node, &b.scale)?), 32)
                    + storage_units(nonzeros(graph.initializer(node, &b.bias)?), 32);
                mults += out_elems * half;
                adds += out_elems * half;
            }
            Op::Add(_) | Op::Sub(_) => adds += out_elems * half,
            Op::AveragePool(_) | Op::GlobalAveragePool | Op::ReduceMean(_) => {
                adds += in_elems * half;
                mults += out_elems * half;
            }
            Op::ReduceSum(_) => adds += in_elems * half,
            _ => {
                for p in node.op.param_names() {
                    params += storage_units(nonzeros(graph.initializer(node, p)?), 32);
                }
                mults += (c.relus + c.leaky_relu_comparisons + c.macs) as f64 * half;
            }
        }
    }
    let ops = mults + adds;
    Ok(MicronetScore {
        options,
        params,
        mask_bits,
        mults,
        adds,
        ops,
        score: score(params, ops),
        reference_params: REFERENCE_PARAMS,
        reference_ops: REFERENCE_OPS,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published CIFAR-100 entry (MobileNetV2, reweighted L1, 6/8/9-bit): 0.3510 M parameters,
    /// 61.25 M operations, score 0.0155, rebuilt from its counts.
    #[test]
    fn published_example_from_its_counts() {
        // Non-zero weights and BatchNorm parameters by width; 1 mask bit per conv/FC weight.
        let stored = [(614, 9), (245_999, 6), (644_384, 8), (160, 9), (19_712, 6), (71_200, 8)];
        let mask_bits = 3_905_632u64;
        let params: f64 =
            stored.iter().map(|&(n, b)| n as f64 * f64::from(b) / 32.0).sum::<f64>() + mask_bits as f64 / 32.0;
        assert_eq!(format!("{:.4}", params / 1e6), "0.3510");
        // 78.99 M multiplications and 76.7 M additions at uniform sparsity 0.5, 8-bit.
        let mults = 78.99e6 * mult_factor(8);
        let adds = 76.7e6 * add_factor(8);
        assert_eq!(format!("{:.2}", mults / 1e6), "19.75");
        assert_eq!(format!("{:.1}", adds / 1e6), "41.5");
        let ops = mults + adds;
        assert!((ops - 61.25e6).abs() < 0.01e6, "{ops}");
        assert_eq!(format!("{:.4}", score(params, ops)), "0.0155");
        // Unquantized operations count ½ (the 16-bit freebie).
        assert_eq!(mult_factor(32), 0.5);
        assert_eq!(add_factor(32), 0.5);
    }

    #[test]
    fn graph_counts_follow_the_cost_table() {
        let mut g = crate::zoo::build("cnn_small", None, 0).unwrap();
        let dense = micronet(&g, ScoreOptions::default()).unwrap();
        let costs = crate::cost::node_costs(&g).unwrap();
        for l in &dense.layers {
            let i = g.nodes.iter().position(|n| n.name == l.layer).unwrap();
            assert_eq!(l.mults, costs[i].macs as f64, "{}", l.layer);
            assert_eq!(l.sparsity, 0.0);
        }
        assert_eq!(dense.mask_bits, 0);
        let half = micronet(&g, ScoreOptions { assumed_sparsity: Some(0.5) }).unwrap();
        assert!((half.layers[0].mults - dense.layers[0].mults / 2.0).abs() < 1e-6);
        // 8-bit weights store a quarter of f32's 32 bits (f32 counts 16: half the units).
        crate::quant::quantize_weights(&mut g, &[8]).unwrap();
        let q = micronet(&g, ScoreOptions::default()).unwrap();
        for (a, b) in q.layers.iter().zip(&dense.layers) {
            assert_eq!(a.weight_bits, 8);
            assert!(a.nonzeros <= b.nonzeros);
        }
        assert!(q.params < dense.params);
        assert!(micronet(&g, ScoreOptions { assumed_sparsity: Some(1.0) }).is_err());
        // 90% zeros in conv3 at 8 bits: non-zeros plus a mask beat dense; rounding zeros do not.
        assert!(q.layers.iter().all(|l| !l.sparse), "{:?}", q.layers);
        let w = g.initializers.get_mut("conv3.weight").unwrap();
        let n = w.len();
        w.iter_mut().take(n * 9 / 10).for_each(|v| *v = 0.0);
        let s = micronet(&g, ScoreOptions::default()).unwrap();
        assert!(s.layers[2].sparse);
        assert_eq!(s.mask_bits, n as u64);
        let nz = s.layers[2].nonzeros as f64;
        assert!((s.layers[2].params - (nz * 8.0 / 32.0 + n as f64 / 32.0)).abs() < 1e-9);
        assert!((s.layers[2].sparsity - 0.9).abs() < 0.01);
    }

    #[test]
    fn add_factor_tree() {
        // 8-bit products: (8 + 4.25 + 2.25 + 1.1875 + 0.625 + 1) / 32.
        assert!((add_factor(8) - 17.3125 / 32.0).abs() < 1e-12);
        // 4-bit products start at 8 bits.
        assert!((add_factor(4) - (4.0 + 2.25 + 1.25 + 0.6875 + 0.375 + 1.0) / 32.0).abs() < 1e-12);
        assert_eq!(mult_factor(8), 0.25);
    }
}
