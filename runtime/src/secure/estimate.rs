//! Cost estimates without running: masq's exact plan, or other protocols' published costs.

use serde::Serialize;

use masq_mpc::cost::{Network, Protocol, estimate_seconds, latency::FORMULA, published};

use masq_mpc::dealer::CmpMode;

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
    /// masq only: the comparison mode these figures are for.
    pub cmp_mode: Option<CmpMode>,
    /// masq only: both comparison modes side by side on this network.
    pub modes: Vec<ModeFigures>,
    /// masq only: which mode is faster online on this network, and what the other saves.
    pub advice: Option<String>,
    /// masq only: the planner's figures per node (exact; a run measures the same).
    pub layers: Vec<PlannedNode>,
}

/// One comparison mode's totals for the estimated inference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeFigures {
    pub mode: CmpMode,
    pub online_bytes: u64,
    pub rounds: u64,
    /// Dealer bytes (both parties).
    pub offline_bytes: u64,
    /// Online communication time by the formula.
    pub est_seconds: f64,
    /// Time to move the dealer's bytes over the same network (both parties, one link).
    pub offline_transfer_seconds: f64,
}

/// Estimates `graph` at batch `batch` under `protocol` on `network`. For masq this is the
/// planner's exact prediction for `cfg` (comparison width and mode), with both comparison modes
/// side by side; for the others, their published per-operation costs applied to the same
/// workload (comparison layers, squares, linear layers).
pub fn estimate(
    graph: &Graph,
    protocol: Protocol,
    network: &Network,
    batch: usize,
    cfg: &SecureConfig,
) -> Result<EstimateReport> {
    let p = plan(graph, batch, cfg)?;
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
        cmp_mode: None,
        modes: Vec::new(),
        advice: None,
        layers: Vec::new(),
    };
    if protocol == Protocol::Masq {
        let c = p.total();
        r.online_bytes = c.online_bytes() as f64;
        r.max_direction_bytes = c.max_direction_bytes() as f64;
        r.rounds = c.rounds;
        r.offline_bytes = Some(c.offline_bytes() as f64);
        r.est_seconds = estimate_seconds(&c, 0.0, network);
        r.cmp_mode = Some(cfg.cmp_mode);
        for mode in CmpMode::ALL {
            let c = if mode == cfg.cmp_mode {
                c
            } else {
                plan(graph, batch, &SecureConfig { cmp_mode: mode, ..*cfg })?.total()
            };
            r.modes.push(ModeFigures {
                mode,
                online_bytes: c.online_bytes(),
                rounds: c.rounds,
                offline_bytes: c.offline_bytes(),
                est_seconds: estimate_seconds(&c, 0.0, network),
                offline_transfer_seconds: c.offline_bytes() as f64 * 8.0 / network.bandwidth_bps,
            });
        }
        r.advice = Some(advice(&r.modes));
        r.layers = p.nodes;
    } else {
        let e = published::estimate(protocol, &p.workload);
        r.online_bytes = e.online_bytes;
        r.max_direction_bytes = e.max_direction_bytes;
        r.rounds = e.rounds;
        r.offline_bytes = e.offline_bytes;
        r.est_seconds = masq_mpc::cost::latency::rounds_seconds(e.rounds as f64, network)
            + e.max_direction_bytes * 8.0 / network.bandwidth_bps;
    }
    Ok(r)
}

/// One sentence comparing the modes: the faster one online, and what the other saves.
fn advice(modes: &[ModeFigures]) -> String {
    let [a, b] = modes else { return String::new() };
    let (fast, slow) = if a.est_seconds <= b.est_seconds { (a, b) } else { (b, a) };
    let extra = slow.rounds.saturating_sub(fast.rounds);
    let online = format!(
        "{} is faster online by {:.3} s of communication ({extra} fewer rounds; compute not included)",
        fast.mode,
        slow.est_seconds - fast.est_seconds
    );
    if slow.offline_bytes < fast.offline_bytes {
        let saved = (fast.offline_bytes - slow.offline_bytes) as f64;
        format!(
            "{online}; {} deals {:.0}% fewer bytes ({:.1} s less to transfer at this bandwidth, and less to store and stream through the comparisons)",
            slow.mode,
            100.0 * saved / fast.offline_bytes.max(1) as f64,
            fast.offline_transfer_seconds - slow.offline_transfer_seconds
        )
    } else {
        format!("{online} and deals no more bytes")
    }
}
