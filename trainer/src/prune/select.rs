//! From scores to a dead set at a filter sparsity `S ∈ [0, 1)`, and between dead sets and the flat
//! filter masks the search works on.
//!
//! - [`Scope::PerLayer`]: each conv of `F` filters loses its `⌊S·F⌋` lowest-scored ones (never all
//!   of them, as `S < 1`);
//! - [`Scope::Global`]: the `⌊S·ΣF⌋` lowest scores over all considered convs die, scores compared
//!   across layers as they are; a filter whose death would leave its conv without any is skipped
//!   (the next lowest dies instead), so every conv keeps at least one. When `⌊S·ΣF⌋` exceeds
//!   `ΣF − #convs` only that many can die.
//!
//! Ties go to the earlier conv, then the lower channel (deterministic); NaN scores rank highest.

use std::collections::BTreeSet;
use std::fmt;

use masq_ir::prune::{ConvSite, DeadSet};
use serde::Serialize;

use super::scores::FilterScores;
use crate::error::{Result, TrainerError};

/// Where the lowest scores are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    PerLayer,
    Global,
}

impl Scope {
    /// `layer` / `per-layer` or `global`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "layer" | "per-layer" | "layerwise" => Ok(Scope::PerLayer),
            "global" => Ok(Scope::Global),
            _ => Err(TrainerError::BadConfig { reason: format!("unknown pruning scope {s:?} (per-layer or global)") }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::PerLayer => "per-layer",
            Scope::Global => "global",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Check that a filter sparsity is a number in `[0, 1)`.
pub fn check_sparsity(sparsity: f64) -> Result<()> {
    if sparsity.is_finite() && (0.0..1.0).contains(&sparsity) {
        Ok(())
    } else {
        Err(TrainerError::BadConfig {
            reason: format!("filter sparsity {sparsity} is not in [0, 1) (the fraction of filters removed)"),
        })
    }
}

/// `⌊sparsity·filters⌋`.
pub fn dead_target(sparsity: f64, filters: usize) -> usize {
    ((sparsity * filters as f64).floor().max(0.0) as usize).min(filters)
}

/// The most filters that can die over convs of these sizes while each keeps one.
pub fn max_dead(sizes: &[usize]) -> usize {
    sizes.iter().map(|&f| f.saturating_sub(1)).sum()
}

/// The dead set at `sparsity` (see the module docs). Convs losing nothing have no entry.
pub fn select(scores: &[FilterScores], sparsity: f64, scope: Scope) -> Result<DeadSet> {
    check_sparsity(sparsity)?;
    let mut dead = DeadSet::new();
    match scope {
        Scope::PerLayer => {
            for s in scores {
                let n = s.scores.len();
                let k = dead_target(sparsity, n).min(n.saturating_sub(1));
                let mut idx: Vec<usize> = (0..n).collect();
                idx.sort_by(|&a, &b| s.scores[a].total_cmp(&s.scores[b]).then(a.cmp(&b)));
                if k > 0 {
                    dead.insert(s.conv.clone(), idx[..k].iter().copied().collect());
                }
            }
        }
        Scope::Global => {
            let sizes: Vec<usize> = scores.iter().map(|s| s.scores.len()).collect();
            let total: usize = sizes.iter().sum();
            let k = dead_target(sparsity, total).min(max_dead(&sizes));
            let mut all: Vec<(f32, usize, usize)> = Vec::with_capacity(total);
            for (si, s) in scores.iter().enumerate() {
                all.extend(s.scores.iter().enumerate().map(|(f, &v)| (v, si, f)));
            }
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut alive = sizes;
            let mut killed = 0;
            for &(_, si, f) in &all {
                if killed == k {
                    break;
                }
                if alive[si] > 1 {
                    alive[si] -= 1;
                    killed += 1;
                    dead.entry(scores[si].conv.clone()).or_insert_with(BTreeSet::new).insert(f);
                }
            }
        }
    }
    Ok(dead)
}

/// Number of dead filters in a dead set.
pub fn dead_len(dead: &DeadSet) -> usize {
    dead.values().map(BTreeSet::len).sum()
}

/// The dead set of a flat mask over `sites` (site by site, channel by channel; `false` = dead).
pub fn mask_to_dead(sites: &[ConvSite], mask: &[bool]) -> Result<DeadSet> {
    let total: usize = sites.iter().map(|s| s.out_channels).sum();
    if mask.len() != total {
        return Err(TrainerError::BadConfig {
            reason: format!("a filter mask of {} entries for convs with {total} filters", mask.len()),
        });
    }
    let mut dead = DeadSet::new();
    let mut off = 0;
    for s in sites {
        let d: BTreeSet<usize> = (0..s.out_channels).filter(|&c| !mask[off + c]).collect();
        if !d.is_empty() {
            dead.insert(s.conv.clone(), d);
        }
        off += s.out_channels;
    }
    Ok(dead)
}

/// The flat mask of a dead set over `sites` (errors name a conv or channel that does not fit).
pub fn dead_to_mask(sites: &[ConvSite], dead: &DeadSet) -> Result<Vec<bool>> {
    let mut mask = Vec::new();
    for s in sites {
        let d = dead.get(&s.conv);
        if let Some(c) = d.and_then(|d| d.iter().find(|&&c| c >= s.out_channels)) {
            return Err(TrainerError::BadConfig {
                reason: format!("dead filter {c} of conv {}, which has {} filters", s.conv, s.out_channels),
            });
        }
        mask.extend((0..s.out_channels).map(|c| !d.is_some_and(|d| d.contains(&c))));
    }
    if let Some(name) = dead.keys().find(|k| !sites.iter().any(|s| &s.conv == *k)) {
        return Err(TrainerError::BadConfig {
            reason: format!("dead filters of {name}, which is not a considered conv"),
        });
    }
    Ok(mask)
}
