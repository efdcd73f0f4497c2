//! The learning-rate schedules of the two phases and the penalty's refresh epochs, scaled from the
//! specification's 300-epoch runs (docs/ALGORITHMS.md §7). Epochs are 1-based, iterations 0-based.
//!
//! Phase 1 (reweighting, `E1` epochs):
//! - **Refresh epochs** `R = {⌊k·E1/5⌋ + 1 : k = 1, 2, 3, 4} ∩ [2, E1]` (integer arithmetic,
//!   duplicates dropped): the epochs that start at the fractions 0.2, 0.4, 0.6, 0.8 of the run.
//!   E1 = 300 gives the specification's 61, 121, 181, 241; E1 = 10 gives 3, 5, 7, 9; E1 = 5 gives
//!   2, 3, 4, 5; E1 = 1 none. `P` is computed from the starting weights at the first batch of
//!   epoch 1 and recomputed at the first batch of every refresh epoch.
//! - **Learning rate** constant within an epoch: epoch 1 runs at `lr`; every later epoch runs at
//!   the previous epoch's rate times 1.6 when it is a refresh epoch and times `0.98^(300/E1)`
//!   otherwise: the specification's per-epoch 0.98 over 300 epochs, stretched so that one epoch of
//!   the shorter run decays as much as `300/E1` epochs of the specification's. Over the run the
//!   decay is `0.98^(300·n/E1)` with `n = E1 − 1 − |R|` decaying epochs: `0.98^295` for E1 = 300
//!   (the specification's run exactly, factor 0.98), `0.98^150` for E1 = 10 (the four refresh
//!   epochs take a larger share of a short run); the bumps are `1.6^|R|` in both.
//!
//! Phase 2 (retrain with a fixed mask, `T = E2·B` iterations, `B` batches per epoch):
//! - **Warm-up** `W = min(max(⌈5·T/300⌉, B), ⌊T/4⌋)` iterations: the specification's 5 of 300
//!   epochs, at least one epoch's worth, but never more than a quarter of the run (so a run of
//!   fewer than four epochs still spends most of its iterations after the warm-up; `T < 4`: none).
//!   E2 = 300: 5 epochs; E2 = 10: one epoch; E2 = 2: half an epoch.
//! - **Learning rate** per iteration: `warm + (peak − warm)·t/W` for `t < W` (from 1e-4 to 1e-3
//!   by default), then `final + ½(peak − final)(1 + cos(π·(t − W)/(T − W)))` for `W ≤ t < T`
//!   (from 1e-3 down towards 4e-8, which the cosine would reach at `t = T`).

use serde::Serialize;

/// The specification's run length, in epochs.
pub const SPEC_EPOCHS: usize = 300;
/// Learning-rate factor at a refresh epoch.
pub const REFRESH_BUMP: f64 = 1.6;
/// The specification's per-epoch decay (for a 300-epoch run).
pub const SPEC_DECAY: f64 = 0.98;
/// The specification's warm-up of the retrain, in epochs of [`SPEC_EPOCHS`].
pub const SPEC_WARMUP_EPOCHS: usize = 5;

/// Phase 1's refresh epochs for a run of `e1` epochs, ascending.
pub fn refresh_epochs(e1: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (1..=4).map(|k| k * e1 / 5 + 1).filter(|&e| e >= 2 && e <= e1).collect();
    out.dedup();
    out
}

/// Phase 1's per-epoch decay `0.98^(300/e1)` (1 for `e1 = 0`).
pub fn decay_factor(e1: usize) -> f64 {
    if e1 == 0 { 1.0 } else { SPEC_DECAY.powf(SPEC_EPOCHS as f64 / e1 as f64) }
}

/// Phase 1's learning rate of every epoch (index `e − 1` for epoch `e`).
pub fn phase1_lrs(lr: f64, e1: usize) -> Vec<f64> {
    let refresh = refresh_epochs(e1);
    let decay = decay_factor(e1);
    let mut out = Vec::with_capacity(e1);
    let mut cur = lr;
    for epoch in 1..=e1 {
        if epoch > 1 {
            cur *= if refresh.contains(&epoch) { REFRESH_BUMP } else { decay };
        }
        out.push(cur);
    }
    out
}

/// Phase 2's warm-up length in iterations, for `total` iterations of `per_epoch` per epoch.
pub fn warmup_iterations(total: usize, per_epoch: usize) -> usize {
    let spec = (SPEC_WARMUP_EPOCHS * total).div_ceil(SPEC_EPOCHS);
    spec.max(per_epoch).min(total / 4)
}

/// Phase 2's per-iteration schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetrainSchedule {
    /// The rate the warm-up reaches and the cosine starts from.
    pub peak: f64,
    /// The warm-up's first rate.
    pub warm: f64,
    /// Where the cosine ends.
    pub final_lr: f64,
    /// Iterations in all.
    pub total: usize,
    /// Warm-up iterations.
    pub warmup: usize,
}

impl RetrainSchedule {
    /// The schedule of `epochs` epochs of `per_epoch` iterations.
    pub fn new(peak: f64, warm: f64, final_lr: f64, per_epoch: usize, epochs: usize) -> Self {
        let total = per_epoch * epochs;
        RetrainSchedule { peak, warm, final_lr, total, warmup: warmup_iterations(total, per_epoch) }
    }

    /// The learning rate of iteration `t`.
    pub fn lr(&self, t: usize) -> f64 {
        if t < self.warmup {
            return self.warm + (self.peak - self.warm) * t as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((t - self.warmup) as f64 / span).min(1.0);
        self.final_lr + 0.5 * (self.peak - self.final_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}
