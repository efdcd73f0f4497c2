//! Layer-wise linear quantization (docs/ALGORITHMS.md §7): quantized weights and fake-quantized
//! activations, as graph edits.
//!
//! - A weight of `b` bits gets `sf = b − 1 − ⌈log2(max|W| + 1e-12)⌉`, step `Δ = 2^−sf`, and
//!   `Q(W) = clamp(⌊W/Δ + 0.5⌋, −2^(b−1), 2^(b−1) − 1)·Δ` ([`quantize_weights`]); the initializer
//!   keeps the dequantized values and [`Graph::weight_quant`] records the grid.
//! - An activation site is the data input of a Conv or Gemm ([`act_sites`]); its `sf` is the
//!   smallest one seen over the calibration passes ([`ActRange`]), and [`insert_fake_quants`] puts
//!   a [`Op::FakeQuant`] node in front of the layer.
//!
//! Layer `i` (of [`layers`], Conv and Gemm nodes in graph order) takes `bits[i]`; a single entry
//! applies to every layer.

use std::collections::BTreeMap;

use ndarray::ArrayD;

use crate::error::{IrError, Result};
use crate::{Graph, Node, Op, QuantParams};

/// The smallest and largest supported bit widths of a quantized tensor.
pub const BITS: std::ops::RangeInclusive<u32> = 2..=16;

/// `sf = b − 1 − ⌈log2(v + 1e-12)⌉` for the largest magnitude `v` (§7, overflow rate 0).
pub fn sf_for(max_abs: f32, bits: u32) -> i32 {
    let v = f64::from(max_abs.abs()) + 1e-12;
    bits as i32 - 1 - v.log2().ceil() as i32
}

/// The quantized layers: Conv and Gemm nodes in graph order, with their weight names.
pub fn layers(graph: &Graph) -> Vec<(&Node, &str)> {
    graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Conv(c) => Some((n, c.weight.as_str())),
            Op::Gemm(c) => Some((n, c.weight.as_str())),
            _ => None,
        })
        .collect()
}

/// Per-layer bit widths: one entry for every layer, or a single entry for all of them. Each width
/// must be in [`BITS`].
pub fn layer_bits(graph: &Graph, bits: &[u32]) -> Result<Vec<u32>> {
    let n = layers(graph).len();
    let bad = |reason: String| IrError::InvalidParameter { name: "bits", reason };
    if let Some(b) = bits.iter().find(|b| !BITS.contains(b)) {
        return Err(bad(format!("{b} bits: each width must be {} to {}", BITS.start(), BITS.end())));
    }
    match bits.len() {
        1 => Ok(vec![bits[0]; n]),
        k if k == n => Ok(bits.to_vec()),
        k => Err(bad(format!("{k} widths for a model with {n} Conv/Gemm layers (give 1 or {n})"))),
    }
}

/// §7's quantizer for a weight: `clamp(⌊x/Δ + 0.5⌋, qmin, qmax)·Δ` (round half up).
pub fn quantize_weight_value(q: &QuantParams, x: f32) -> f32 {
    let k = (f64::from(x) / f64::from(q.scale) + 0.5).floor();
    (k.clamp(f64::from(q.qmin), f64::from(q.qmax)) * f64::from(q.scale)) as f32
}

/// One quantized weight.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WeightReport {
    pub layer: String,
    pub weight: String,
    pub bits: u32,
    pub sf: i32,
    pub max_abs: f32,
    /// Largest |Q(w) − w|.
    pub max_error: f32,
}

/// Quantizes every layer's weight to its width (`bits`, see [`layer_bits`]) in place and records
/// the grids in [`Graph::weight_quant`]. Biases stay f32.
pub fn quantize_weights(graph: &mut Graph, bits: &[u32]) -> Result<Vec<WeightReport>> {
    let widths = layer_bits(graph, bits)?;
    let targets: Vec<(String, String)> =
        layers(graph).into_iter().map(|(n, w)| (n.name.clone(), w.to_string())).collect();
    let mut out = Vec::with_capacity(targets.len());
    for ((layer, weight), bits) in targets.into_iter().zip(widths) {
        let w = graph
            .initializers
            .get_mut(&weight)
            .ok_or_else(|| IrError::NotFound { kind: "weight initializer", name: weight.clone() })?;
        let max_abs = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let sf = sf_for(max_abs, bits);
        let q = QuantParams::linear(bits, sf);
        let mut max_error = 0f32;
        w.mapv_inplace(|v| {
            let r = quantize_weight_value(&q, v);
            max_error = max_error.max((r - v).abs());
            r
        });
        graph.weight_quant.insert(weight.clone(), q);
        out.push(WeightReport { layer, weight, bits, sf, max_abs, max_error });
    }
    Ok(out)
}

/// An activation site: the data input of a Conv or Gemm layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActSite {
    /// The layer (Conv or Gemm node) the activation feeds.
    pub layer: String,
    /// The value quantized (the layer's data input).
    pub value: String,
}

/// The activation sites of [`layers`], in the same order.
pub fn act_sites(graph: &Graph) -> Vec<ActSite> {
    layers(graph).into_iter().map(|(n, _)| ActSite { layer: n.name.clone(), value: n.inputs[0].clone() }).collect()
}

/// The range of one activation site over calibration passes: §7 keeps the smallest `sf` seen,
/// which is the `sf` of the largest magnitude seen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ActRange {
    pub max_abs: f32,
    pub passes: usize,
}

impl ActRange {
    /// Takes one pass's values into account.
    pub fn observe(&mut self, values: &ArrayD<f32>) {
        let m = values.iter().fold(0f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
        self.max_abs = self.max_abs.max(m);
        self.passes += 1;
    }

    /// The quantizer for `bits` bits: the smallest `sf` over the passes.
    pub fn params(&self, bits: u32) -> QuantParams {
        QuantParams::linear(bits, sf_for(self.max_abs, bits))
    }
}

/// Inserts a `FakeQuant` node named `<layer>.act_quant` in front of each listed layer (by layer
/// name), rewiring only that layer's data input. Layers already preceded by one are refused.
pub fn insert_fake_quants(graph: &mut Graph, sites: &BTreeMap<String, QuantParams>) -> Result<()> {
    for (layer, q) in sites {
        q.check().map_err(|reason| IrError::InvalidParameter { name: "activation quantizer", reason })?;
        let i = graph
            .nodes
            .iter()
            .position(|n| &n.name == layer)
            .ok_or_else(|| IrError::NotFound { kind: "layer", name: layer.clone() })?;
        let name = format!("{layer}.act_quant");
        if graph.nodes.iter().any(|n| n.name == name || n.outputs.iter().any(|o| o == &name)) {
            return Err(IrError::InvalidGraph { reason: format!("layer {layer} already has an activation quantizer") });
        }
        let input = graph.nodes[i].inputs[0].clone();
        graph.nodes[i].inputs[0] = name.clone();
        graph.nodes.insert(i, Node::new(&name, Op::FakeQuant(*q), &[input.as_str()], &[name.as_str()]));
    }
    Ok(())
}

/// The clamp a quantizer applies that changes values a network produces: with the zero point at
/// the bottom of the range (`zero_point == qmin`, e.g. onnxruntime's unsigned activations after a
/// ReLU it removed) the quantizer floors at 0, a ReLU capped at the range's top. Such a
/// `FakeQuant` is evaluated under 2PC as that `Clip` to `[0, hi]` (a ReLU and a cap comparison per
/// element) and costed as one; any other quantizer's clamp acts only outside its calibrated
/// range and is not applied on shares (docs/ALGORITHMS.md §7).
pub fn saturating_clip(q: &QuantParams) -> Option<crate::ClipConfig> {
    (q.zero_point == q.qmin && q.qmax > q.qmin)
        .then(|| crate::ClipConfig { min: Some(0.0), max: Some(q.dequantize(q.qmax)) })
}

/// The activation quantizers of a graph: FakeQuant node name to its parameters.
pub fn fake_quants(graph: &Graph) -> BTreeMap<String, QuantParams> {
    graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::FakeQuant(q) => Some((n.name.clone(), *q)),
            _ => None,
        })
        .collect()
}

/// Whether the graph carries any quantization (weights or activations).
pub fn is_quantized(graph: &Graph) -> bool {
    !graph.weight_quant.is_empty() || graph.nodes.iter().any(|n| matches!(n.op, Op::FakeQuant(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_follows_the_formula() {
        // max 0.9 → ⌈log2 0.9⌉ = 0 → sf = 7 at 8 bits; max 1.0: the 1e-12 tips ⌈log2⌉ to 1;
        // max 1.5 → 1 → sf = 6.
        assert_eq!(sf_for(0.9, 8), 7);
        assert_eq!(sf_for(1.0, 8), 6);
        assert_eq!(sf_for(1.5, 8), 6);
        assert_eq!(sf_for(0.1, 6), 5 + 3);
    }

    #[test]
    fn weight_rounding_is_half_up_and_clamped() {
        let q = QuantParams::linear(8, 7);
        assert_eq!(quantize_weight_value(&q, 0.5 / 128.0), 1.0 / 128.0);
        assert_eq!(quantize_weight_value(&q, -0.5 / 128.0), 0.0);
        assert_eq!(quantize_weight_value(&q, 2.0), 127.0 / 128.0);
        assert_eq!(quantize_weight_value(&q, -2.0), -1.0);
        // ONNX's rule on activations is half to even.
        assert_eq!(q.apply(1.5 / 128.0), 2.0 / 128.0);
        assert_eq!(q.apply(2.5 / 128.0), 2.0 / 128.0);
        assert_eq!(q.bits(), 8);
    }
}
