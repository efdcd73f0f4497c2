//! The 2PC costs of one inference before and after pruning (the planner's exact figures).

use anyhow::{Context, Result};
use masq_ir::Graph;
use masq_runtime::secure::{SecureConfig, plan};
use serde::Serialize;

/// One image's secure-inference costs under the default configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Costs2pc {
    pub online_bytes: u64,
    pub rounds: u64,
    /// Dealer bytes, both parties.
    pub dealer_bytes: u64,
}

pub fn of(graph: &Graph) -> Result<Costs2pc> {
    let p = plan(graph, 1, &SecureConfig::default()).context("planning the 2PC costs")?;
    let t = p.total();
    Ok(Costs2pc { online_bytes: t.p0_to_p1 + t.p1_to_p0, rounds: t.rounds, dealer_bytes: t.offline_p0 + t.offline_p1 })
}
