//! Per-layer and total figures of a graph for one image: parameters, MACs, ReLUs and the other
//! comparisons, all from the cost table in [`crate::cost`] (its docs give the rules).

use serde::Serialize;

use crate::cost::{NodeCost, node_costs};
use crate::error::Result;
use crate::{Dim, Graph};

/// One node's figures (one image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: String,
    /// Output shape at batch 1.
    pub output_shape: Vec<usize>,
    pub params: u64,
    pub macs: u64,
    /// ReLU elements (for a masked activation: the ones in its mask).
    pub relus: u64,
    pub maxpool_comparisons: u64,
    pub clip_comparisons: u64,
    pub leaky_relu_comparisons: u64,
    pub sigmoid_comparisons: u64,
    /// Comparisons of the transformer ops' approximations.
    pub approx_comparisons: u64,
    pub poly_elements: u64,
}

/// A whole graph's figures (one image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub model: String,
    pub inputs: Vec<(String, Vec<Dim>)>,
    pub outputs: Vec<(String, Vec<Dim>)>,
    /// Whether the graph runs at batch sizes above 1.
    pub supports_batch: bool,
    pub params: u64,
    pub macs: u64,
    /// ReLU elements per image.
    pub relu_count: u64,
    pub maxpool_comparisons: u64,
    pub clip_comparisons: u64,
    pub leaky_relu_comparisons: u64,
    pub sigmoid_comparisons: u64,
    pub approx_comparisons: u64,
    /// Every secure comparison per image: ReLUs plus the five kinds above.
    pub comparisons: u64,
    pub poly_elements: u64,
    pub layers: Vec<LayerReport>,
}

impl Report {
    /// The totals as one cost record.
    pub fn totals(&self) -> NodeCost {
        NodeCost {
            macs: self.macs,
            relus: self.relu_count,
            maxpool_comparisons: self.maxpool_comparisons,
            clip_comparisons: self.clip_comparisons,
            leaky_relu_comparisons: self.leaky_relu_comparisons,
            sigmoid_comparisons: self.sigmoid_comparisons,
            approx_comparisons: self.approx_comparisons,
            poly_elements: self.poly_elements,
        }
    }
}

/// Compute the report of a graph.
pub fn report(graph: &Graph) -> Result<Report> {
    let shapes = graph.infer_shapes(1)?;
    let costs = node_costs(graph)?;
    let layers: Vec<LayerReport> = graph
        .nodes
        .iter()
        .zip(&costs)
        .map(|(node, c)| LayerReport {
            name: node.name.clone(),
            op: node.op.name().to_string(),
            output_shape: shapes[&node.outputs[0]].clone(),
            params: graph.node_params(node) as u64,
            macs: c.macs,
            relus: c.relus,
            maxpool_comparisons: c.maxpool_comparisons,
            clip_comparisons: c.clip_comparisons,
            leaky_relu_comparisons: c.leaky_relu_comparisons,
            sigmoid_comparisons: c.sigmoid_comparisons,
            approx_comparisons: c.approx_comparisons,
            poly_elements: c.poly_elements,
        })
        .collect();
    let t: NodeCost = costs.iter().copied().sum();
    Ok(Report {
        model: graph.name.clone(),
        inputs: graph.data_inputs().map(|v| (v.name.clone(), v.shape.clone())).collect(),
        outputs: graph.outputs.iter().map(|v| (v.name.clone(), v.shape.clone())).collect(),
        supports_batch: graph.supports_batch(),
        params: graph.initializers.values().map(|t| t.len() as u64).sum(),
        macs: t.macs,
        relu_count: t.relus,
        maxpool_comparisons: t.maxpool_comparisons,
        clip_comparisons: t.clip_comparisons,
        leaky_relu_comparisons: t.leaky_relu_comparisons,
        sigmoid_comparisons: t.sigmoid_comparisons,
        approx_comparisons: t.approx_comparisons,
        comparisons: t.comparisons(),
        poly_elements: t.poly_elements,
        layers,
    })
}

/// Group digits in threes: `1359872` -> `1,359,872`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl Report {
    /// A human-readable table with a totals line.
    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let name_w = self.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 48);
        let mut s = String::new();
        let _ = writeln!(s, "model {}", self.model);
        for (n, d) in &self.inputs {
            let _ = writeln!(s, "input  {n}: {}", crate::format_dims(d));
        }
        for (n, d) in &self.outputs {
            let _ = writeln!(s, "output {n}: {}", crate::format_dims(d));
        }
        let _ = writeln!(
            s,
            "{:<name_w$}  {:<18}  {:<18}  {:>12}  {:>15}  {:>11}",
            "name", "op", "output", "params", "MACs", "ReLUs"
        );
        for l in &self.layers {
            let shape = format!("{:?}", l.output_shape);
            let _ = writeln!(
                s,
                "{:<name_w$}  {:<18}  {:<18}  {:>12}  {:>15}  {:>11}",
                l.name,
                l.op,
                shape,
                thousands(l.params),
                thousands(l.macs),
                thousands(l.relus)
            );
        }
        let _ = writeln!(
            s,
            "total: params {}, MACs {}, ReLUs {}, max-pool comparisons {}, Clip comparisons {}, LeakyReLU comparisons {}, Sigmoid comparisons {}, approximation comparisons {}",
            thousands(self.params),
            thousands(self.macs),
            thousands(self.relu_count),
            thousands(self.maxpool_comparisons),
            thousands(self.clip_comparisons),
            thousands(self.leaky_relu_comparisons),
            thousands(self.sigmoid_comparisons),
            thousands(self.approx_comparisons)
        );
        s
    }
}
