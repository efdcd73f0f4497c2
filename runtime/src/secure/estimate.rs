//! Cost estimates without running: masq's exact plan, or other protocols' published costs.

use serde::Serialize;

use masq_mpc::cost::{Network, Protocol, estimate_seconds, latency::FORMULA, published};

use super::{PlannedNode, SecureConfig, plan};
use crate::error::Result;
use masq_ir::Graph;
use masq_ir::cost::ModelCounts;

/// What one inference of a batch would cost under a protocol on a network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateReport {
    pub model: String,
    pub protocol: String,
    pub network: Network,
    pub batch: usize,
    /// Totals for one image: `relu_count`, the comparisons by kind, `poly_elements`, `macs`.
    #[serde(flatten)]
    pub per_image: ModelCounts,
    /// Secure comparisons of the whole batch.
    pub comparisons_per_batch: u64,
    /// Online bytes, both directions.
    pub online_bytes: f64,
    /// Online bytes in the busier direction.
    pub max_direction_bytes: f64,
    pub rounds: u64,
    /// Dealer / preprocessing bytes (`None` where the protocol's source publishes none).
    pub offline_bytes: Option<f64>,
    /// Communication time by the formula (local compute not included: nothing was run).
    pub est_seconds: f64,
    pub formula: &'static str,
    /// masq only: the planner's figures per node (exact; a run measures the same).
    pub layers: Vec<PlannedNode>,
}

/// Estimates `graph` at batch `batch` under `protocol` on `network`. For masq this is the
/// planner's exact prediction; for the others, their published per-operation costs applied
/// to the same workload (comparison layers, squares, linear layers).
pub fn estimate(graph: &Graph, protocol: Protocol, network: &Network, batch: usize) -> Result<EstimateReport> {
    let p = plan(graph, batch, &SecureConfig::default())?;
    let mut r = EstimateReport {
        model: graph.name.clone(),
        protocol: protocol.name().to_string(),
        network: *network,
        batch,
        per_image: p.per_image(),
        comparisons_per_batch: p.comparisons_per_batch(),
        online_bytes: 0.0,
        max_direction_bytes: 0.0,
        rounds: 0,
        offline_bytes: None,
        est_seconds: 0.0,
        formula: FORMULA,
        layers: Vec::new(),
    };
    if protocol == Protocol::Masq {
        let c = p.total();
        r.online_bytes = c.online_bytes() as f64;
        r.max_direction_bytes = c.max_direction_bytes() as f64;
        r.rounds = c.rounds;
        r.offline_bytes = Some(c.offline_bytes() as f64);
        r.est_seconds = estimate_seconds(&c, 0.0, network);
        r.layers = p.nodes;
    } else {
        let e = published::estimate(protocol, &p.workload);
        r.online_bytes = e.online_bytes;
        r.max_direction_bytes = e.max_direction_bytes;
        r.rounds = e.rounds;
        r.offline_bytes = e.offline_bytes;
        r.est_seconds = e.rounds as f64 * network.rtt_s + e.max_direction_bytes * 8.0 / network.bandwidth_bps;
    }
    Ok(r)
}
