//! Weight sparsity as measured on a graph, per thresholded tensor and in all, and its place in a
//! checkpoint's facts (`masq.weight_sparsity`, a JSON object: `layers` with `layer`, `op`,
//! `weight`, `weights`, `zeros`, `sparsity` each, then the totals `weights`, `zeros`, `sparsity`).

use masq_ir::Graph;
use masq_ir::checkpoint::Facts;
use serde::{Deserialize, Serialize};

use super::mask::{WeightLayer, weight_layers};
use crate::error::{Result, TrainerError};

/// The fact key the sparsity is stored under.
pub const SPARSITY_FACT: &str = "weight_sparsity";

/// One tensor's zeros.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    pub layer: String,
    pub op: String,
    pub weight: String,
    pub weights: usize,
    /// Elements exactly 0.
    pub zeros: usize,
    /// `zeros / weights`.
    pub sparsity: f64,
}

/// Zeros of the Conv and Gemm weights (`mask::weight_layers`), per tensor and in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightSparsity {
    pub layers: Vec<LayerSparsity>,
    pub weights: usize,
    pub zeros: usize,
    /// `zeros / weights` (0 without weights).
    pub sparsity: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl WeightSparsity {
    /// Count the zeros of `layers` in `graph`.
    pub fn measure(graph: &Graph, layers: &[WeightLayer]) -> Result<Self> {
        let mut out = Vec::with_capacity(layers.len());
        for l in layers {
            let t = graph.initializers.get(&l.weight).ok_or_else(|| {
                TrainerError::Model(masq_ir::IrError::NotFound { kind: "initializer", name: l.weight.clone() })
            })?;
            let zeros = t.iter().filter(|v| **v == 0.0).count();
            out.push(LayerSparsity {
                layer: l.layer.clone(),
                op: l.op.clone(),
                weight: l.weight.clone(),
                weights: t.len(),
                zeros,
                sparsity: ratio(zeros, t.len()),
            });
        }
        let weights = out.iter().map(|l| l.weights).sum();
        let zeros = out.iter().map(|l| l.zeros).sum();
        Ok(WeightSparsity { layers: out, weights, zeros, sparsity: ratio(zeros, weights) })
    }

    /// The zeros of every Conv and Gemm weight of `graph`.
    pub fn of(graph: &Graph) -> Result<Self> {
        Self::measure(graph, &weight_layers(graph)?)
    }

    /// Record in `facts` under [`SPARSITY_FACT`].
    pub fn record(&self, facts: &mut Facts) {
        let v = serde_json::to_value(self).expect("strings, integers and finite floats serialise");
        facts.other.insert(SPARSITY_FACT.into(), v);
    }

    /// The sparsity `facts` record (`None` when absent), or an error naming a malformed one.
    pub fn from_facts(facts: &Facts) -> Result<Option<Self>> {
        facts
            .other
            .get(SPARSITY_FACT)
            .map(|v| {
                serde_json::from_value(v.clone()).map_err(|e| TrainerError::BadConfig {
                    reason: format!("checkpoint fact {SPARSITY_FACT} is malformed: {e}"),
                })
            })
            .transpose()
    }
}
