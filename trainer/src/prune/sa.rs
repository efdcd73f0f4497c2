//! Simulated annealing over filter masks (docs/ALGORITHMS.md §8).
//!
//! The state is one bit per considered filter (`false` = pruned) with a fixed number of zeros;
//! every conv (a *group* here) keeps at least one filter.
//!
//! - **Start**: the zeros drawn uniformly; a conv left without filters gets one back in exchange
//!   for a filter of a conv that has two or more.
//! - **Move**: `h` random ones turn off and `h` random zeros turn on (`h` capped by the number of
//!   ones and of zeros), redrawn while the result leaves a conv empty (after 1,000 draws the last
//!   one is repaired as at the start); redrawn up to [`SaConfig::retries`] more times while it is
//!   one of the last [`SaConfig::tabu`] masks evaluated (then the last draw is taken anyway).
//! - **Objective**: the caller's, top-1 in percent (the flow: [`super::masked::MaskedModel`] at the
//!   rewind weights on a few validation batches).
//! - **Acceptance**: `Δ = (Ā − A)/100` with `Ā` the mean of the list of accepted accuracies of this
//!   temperature; the list starts each temperature as `[Ā]` of the one before, `[initial_mean]`
//!   (5) at the first. Accept when `Δ < 0`, else with probability `exp(−Δ/T)`.
//! - **Schedules**, after each temperature: `T ← cooling·T`; iterations `⌊min(cap, start·growth^t)⌋`;
//!   `h ← max(1, ⌊h_decay·h⌋)`, and when `h < h_ref/2`: `h ← ⌊h_reset·h_ref⌋`, `h_ref ← h`
//!   (`h_ref` starts at `h₀`, the number of ones unless [`SaConfig::h_start`] is given).
//! - **Result**: the state at the end of the temperature whose final `Ā` was highest (the first
//!   such temperature on ties).
//!
//! The random start is evaluated too (reported, and the first tabu entry), but, as specified, it
//! does not enter `Ā`. With `h₀` the number of ones, the first moves replace every alive filter;
//! at a sparsity of 0.5 (as many zeros as ones) such a move is the complement, so it has one
//! outcome and the tabu list can only be exhausted until `h` has decayed below the ones.

use std::collections::VecDeque;

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::select::max_dead;
use crate::error::{Result, TrainerError};

/// Draws of a move before a conv left empty is repaired instead.
const VALID_DRAWS: usize = 1000;

/// The search's settings; [`Default`] is the specification's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaConfig {
    /// Number of temperatures (1,000).
    pub temperatures: usize,
    /// Starting temperature (0.005).
    pub t0: f64,
    /// `T ← cooling·T` after each temperature (0.995).
    pub cooling: f64,
    /// Iterations at the first temperature, before truncation (2).
    pub iterations_start: f64,
    /// Factor on the iterations after each temperature (1.005).
    pub iterations_growth: f64,
    /// Most iterations at one temperature (10).
    pub iterations_cap: usize,
    /// Move size at the first temperature; `None`: the number of ones.
    pub h_start: Option<usize>,
    /// `h ← max(1, ⌊h_decay·h⌋)` (0.99).
    pub h_decay: f64,
    /// When `h < h_ref/2`: `h ← ⌊h_reset·h_ref⌋` (0.75).
    pub h_reset: f64,
    /// How many recent masks a move avoids (60).
    pub tabu: usize,
    /// Redraws to avoid them (30).
    pub retries: usize,
    /// `Ā` before the first temperature (5, in percent).
    pub initial_mean: f64,
    /// Validation batches per trial (1).
    pub num_batches: usize,
    /// Images per validation batch (256).
    pub batch_size: usize,
}

impl Default for SaConfig {
    fn default() -> Self {
        SaConfig {
            temperatures: 1000,
            t0: 0.005,
            cooling: 0.995,
            iterations_start: 2.0,
            iterations_growth: 1.005,
            iterations_cap: 10,
            h_start: None,
            h_decay: 0.99,
            h_reset: 0.75,
            tabu: 60,
            retries: 30,
            initial_mean: 5.0,
            num_batches: 1,
            batch_size: 256,
        }
    }
}

impl SaConfig {
    /// Reject settings that make no sense (with the field named).
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(TrainerError::BadConfig { reason: format!("simulated annealing: {reason}") });
        if self.temperatures == 0 {
            return bad("needs at least one temperature".into());
        }
        if !(self.t0.is_finite() && self.t0 > 0.0) {
            return bad(format!("starting temperature {} must be positive", self.t0));
        }
        if !(self.cooling.is_finite() && self.cooling > 0.0) {
            return bad(format!("cooling factor {} must be positive", self.cooling));
        }
        if !(self.iterations_start.is_finite() && self.iterations_start >= 1.0) {
            return bad(format!("iterations per temperature start at {}, must be at least 1", self.iterations_start));
        }
        if !(self.iterations_growth.is_finite() && self.iterations_growth > 0.0) || self.iterations_cap == 0 {
            return bad("iteration growth must be positive and the cap at least 1".into());
        }
        if self.h_start == Some(0) {
            return bad("the move size h must be at least 1".into());
        }
        if !(self.h_decay.is_finite() && self.h_decay > 0.0 && self.h_decay <= 1.0) {
            return bad(format!("h decay {} must be in (0, 1]", self.h_decay));
        }
        if !(self.h_reset.is_finite() && self.h_reset > 0.0 && self.h_reset <= 1.0) {
            return bad(format!("h reset {} must be in (0, 1]", self.h_reset));
        }
        if !self.initial_mean.is_finite() {
            return bad("the initial mean accuracy must be a number".into());
        }
        if self.num_batches == 0 || self.batch_size == 0 {
            return bad("needs at least one validation batch of at least one image".into());
        }
        Ok(())
    }

    /// Iterations at temperature `t` (0-based).
    pub fn iterations_at(&self, t: usize) -> usize {
        let it = self.iterations_start * self.iterations_growth.powi(t.min(i32::MAX as usize) as i32);
        it.min(self.iterations_cap as f64) as usize
    }
}

/// Progress of the search.
#[derive(Debug, Clone, PartialEq)]
pub enum SaEvent<'a> {
    /// The random start was evaluated.
    Start { filters: usize, zeros: usize, temperatures: usize, accuracy: f64, mask: &'a [bool] },
    /// One trial (a proposed mask) was evaluated.
    Trial {
        /// Temperature index (0-based).
        temperature: usize,
        /// Iteration within the temperature (0-based).
        iteration: usize,
        /// `h` of this temperature (the move flips `min(h, ones, zeros)` of each).
        h: usize,
        accuracy: f64,
        /// `Ā` the trial was compared with.
        mean: f64,
        accepted: bool,
        /// Every redraw hit a recent mask, so this one repeats one.
        tabu_exhausted: bool,
        mask: &'a [bool],
    },
    /// A temperature ended.
    Temperature {
        index: usize,
        temperature: f64,
        h: usize,
        iterations: usize,
        accepted: usize,
        rejected: usize,
        /// `Ā` at its end.
        mean: f64,
        /// The best end-of-temperature `Ā` so far.
        best_mean: f64,
    },
}

/// What the search did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaStats {
    pub filters: usize,
    pub zeros: usize,
    /// Temperatures run.
    pub temperatures: usize,
    pub trials: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Trials that repeat a recent mask because every redraw did.
    pub tabu_exhausted: usize,
    /// Objective of the random start (percent).
    pub start_accuracy: f64,
    /// The best end-of-temperature `Ā` (percent): the kept mask's.
    pub best_mean: f64,
    /// The temperature (0-based) that reached it.
    pub best_temperature: usize,
    /// The highest objective of any evaluated mask (percent).
    pub best_trial_accuracy: f64,
    /// The temperature after the last one.
    pub final_temperature: f64,
}

/// The kept mask and the statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct SaOutcome {
    pub mask: Vec<bool>,
    pub stats: SaStats,
}

/// Whether every group of `groups` (sizes, in mask order) keeps a `true`.
pub fn groups_alive(groups: &[usize], mask: &[bool]) -> bool {
    let mut off = 0;
    groups.iter().all(|&g| {
        let ok = mask[off..off + g].iter().any(|&b| b);
        off += g;
        ok
    })
}

/// Group index of every filter.
fn group_of(groups: &[usize]) -> Vec<usize> {
    groups.iter().enumerate().flat_map(|(i, &g)| std::iter::repeat_n(i, g)).collect()
}

/// Give each empty group one filter back, taking one from a group with two or more (the number of
/// zeros is kept). Needs `zeros ≤ F − #groups`.
fn repair(groups: &[usize], of: &[usize], mask: &mut [bool], rng: &mut ChaCha8Rng) {
    let mut alive = vec![0usize; groups.len()];
    for (i, &b) in mask.iter().enumerate() {
        alive[of[i]] += usize::from(b);
    }
    let mut off = 0;
    for (gi, &g) in groups.iter().enumerate() {
        if alive[gi] == 0 {
            mask[off + rng.random_range(0..g)] = true;
            alive[gi] = 1;
            let donors: Vec<usize> = (0..mask.len()).filter(|&i| mask[i] && alive[of[i]] >= 2).collect();
            let d = donors[rng.random_range(0..donors.len())];
            mask[d] = false;
            alive[of[d]] -= 1;
        }
        off += g;
    }
}

/// A neighbour of `state` with `h` ones turned off and `h` zeros turned on, every group alive.
fn neighbour(groups: &[usize], of: &[usize], state: &[bool], h: usize, rng: &mut ChaCha8Rng) -> Vec<bool> {
    let ones: Vec<usize> = (0..state.len()).filter(|&i| state[i]).collect();
    let zeros: Vec<usize> = (0..state.len()).filter(|&i| !state[i]).collect();
    let h = h.min(ones.len()).min(zeros.len());
    let mut cand = state.to_vec();
    for _ in 0..VALID_DRAWS {
        cand.copy_from_slice(state);
        for i in sample(rng, ones.len(), h) {
            cand[ones[i]] = false;
        }
        for j in sample(rng, zeros.len(), h) {
            cand[zeros[j]] = true;
        }
        if groups_alive(groups, &cand) {
            return cand;
        }
    }
    repair(groups, of, &mut cand, rng);
    cand
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Anneal a mask over `groups` (filters per conv, in mask order) with exactly `zeros` zeros.
/// `objective` returns top-1 in percent; `seed` drives every random choice.
pub fn anneal(
    groups: &[usize],
    zeros: usize,
    cfg: &SaConfig,
    seed: u64,
    objective: &mut dyn FnMut(&[bool]) -> Result<f64>,
    on_event: &mut dyn FnMut(&SaEvent<'_>),
) -> Result<SaOutcome> {
    cfg.check()?;
    if groups.is_empty() || groups.contains(&0) {
        return Err(TrainerError::BadConfig { reason: "simulated annealing needs convs with filters".into() });
    }
    let filters: usize = groups.iter().sum();
    if zeros > max_dead(groups) {
        return Err(TrainerError::BadConfig {
            reason: format!(
                "{zeros} of {filters} filters cannot be pruned while each of the {} convs keeps one",
                groups.len()
            ),
        });
    }
    let of = group_of(groups);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state = vec![true; filters];
    for i in sample(&mut rng, filters, zeros) {
        state[i] = false;
    }
    repair(groups, &of, &mut state, &mut rng);
    let start_accuracy = objective(&state)?;
    on_event(&SaEvent::Start {
        filters,
        zeros,
        temperatures: cfg.temperatures,
        accuracy: start_accuracy,
        mask: &state,
    });
    let mut tabu: VecDeque<Vec<bool>> = VecDeque::with_capacity(cfg.tabu + 1);
    let remember = |tabu: &mut VecDeque<Vec<bool>>, m: &[bool]| {
        if cfg.tabu > 0 {
            if tabu.len() == cfg.tabu {
                tabu.pop_front();
            }
            tabu.push_back(m.to_vec());
        }
    };
    remember(&mut tabu, &state);

    let ones = filters - zeros;
    let mut stats = SaStats {
        filters,
        zeros,
        temperatures: 0,
        trials: 0,
        accepted: 0,
        rejected: 0,
        tabu_exhausted: 0,
        start_accuracy,
        best_mean: f64::NEG_INFINITY,
        best_temperature: 0,
        best_trial_accuracy: start_accuracy,
        final_temperature: cfg.t0,
    };
    let mut best = state.clone();
    let mut abar = cfg.initial_mean;
    let mut temp = cfg.t0;
    let mut h = cfg.h_start.unwrap_or(ones).max(1);
    let mut h_ref = h;
    // With no zeros (or nothing to swap with) there is one state only.
    let movable = zeros > 0 && ones > 0 && filters > groups.len();
    for t in 0..cfg.temperatures {
        let iterations = if movable { cfg.iterations_at(t) } else { 0 };
        let mut accepted_list = vec![abar];
        let (mut acc, mut rej) = (0usize, 0usize);
        for it in 0..iterations {
            let mut cand = neighbour(groups, &of, &state, h, &mut rng);
            let mut redraws = 0;
            while redraws < cfg.retries && tabu.contains(&cand) {
                cand = neighbour(groups, &of, &state, h, &mut rng);
                redraws += 1;
            }
            let exhausted = tabu.contains(&cand);
            let a = objective(&cand)?;
            remember(&mut tabu, &cand);
            let m = mean(&accepted_list);
            let delta = (m - a) / 100.0;
            let accepted = delta < 0.0 || rng.random::<f64>() < (-delta / temp).exp();
            on_event(&SaEvent::Trial {
                temperature: t,
                iteration: it,
                h,
                accuracy: a,
                mean: m,
                accepted,
                tabu_exhausted: exhausted,
                mask: &cand,
            });
            stats.trials += 1;
            stats.tabu_exhausted += usize::from(exhausted);
            stats.best_trial_accuracy = stats.best_trial_accuracy.max(a);
            if accepted {
                state = cand;
                accepted_list.push(a);
                acc += 1;
            } else {
                rej += 1;
            }
        }
        abar = mean(&accepted_list);
        if abar > stats.best_mean {
            stats.best_mean = abar;
            stats.best_temperature = t;
            best.clone_from(&state);
        }
        stats.temperatures = t + 1;
        stats.accepted += acc;
        stats.rejected += rej;
        on_event(&SaEvent::Temperature {
            index: t,
            temperature: temp,
            h,
            iterations,
            accepted: acc,
            rejected: rej,
            mean: abar,
            best_mean: stats.best_mean,
        });
        temp *= cfg.cooling;
        h = ((cfg.h_decay * h as f64).floor() as usize).max(1);
        if (h as f64) < h_ref as f64 / 2.0 {
            h = ((cfg.h_reset * h_ref as f64).floor() as usize).max(1);
            h_ref = h;
        }
    }
    stats.final_temperature = temp;
    Ok(SaOutcome { mask: best, stats })
}
