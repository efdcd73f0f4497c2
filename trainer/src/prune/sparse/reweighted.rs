//! Phase 1, reweighted L1 (docs/ALGORITHMS.md §7): Adam on
//! `CE + α·Σ_conv Σ|P ⊙ W|`, `P = 1/(|W_old| + ε)`.
//!
//! - Penalised: the weight of every `Conv` node (`mask::conv_weights`); Gemm weights, biases and
//!   BatchNorm are trained but not penalised (they are still thresholded afterwards, except
//!   biases and BatchNorm).
//! - `P` is a constant (detached) tensor per penalised weight: computed from the weights at the
//!   first batch of epoch 1 and recomputed at the first batch of every refresh epoch
//!   (`schedule::refresh_epochs`). Its gradient contribution is `α·P·sign(W)`, so a weight that
//!   was small at the last refresh is pushed towards 0 hardest. The specification's code writes
//!   `1/(W_old + ε)` without the absolute value; masq takes `|W_old|`, which keeps `P` positive
//!   and bounded by `1/ε`.
//! - The learning rate is `schedule::phase1_lrs`: constant per epoch, ×1.6 at refresh epochs and
//!   ×`0.98^(300/E1)` otherwise.
//! - With `α = 0` the same phase is plain Adam training on the same schedule and batches: the
//!   magnitude baseline's optional training, and the control the penalty is measured against.

use std::collections::BTreeMap;

use masq_ir::Graph;
use tch::{Device, Kind, Tensor};

use super::mask::conv_weights;
use super::schedule::{phase1_lrs, refresh_epochs};
use super::stage::{Hooks, Phase, train_phase};
use super::{SparseConfig, SparseEvent, Stage};
use crate::data::Splits;
use crate::error::{Result, TrainerError};
use crate::model::TchModel;

/// The penalty's state.
struct Reweighting {
    alpha: f64,
    epsilon: f64,
    weights: Vec<String>,
    /// `P` per penalised weight (empty with `α = 0`).
    p: BTreeMap<String, Tensor>,
    lrs: Vec<f64>,
    refresh: Vec<usize>,
}

impl Reweighting {
    fn recompute(&mut self, model: &TchModel) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for w in &self.weights {
            let t = model
                .tensor(w)
                .ok_or_else(|| TrainerError::MissingValue { node: "reweighted L1".into(), input: w.clone() })?;
            let p = t.f_detach()?.f_abs()?.f_add_scalar(self.epsilon)?.f_reciprocal()?;
            self.p.insert(w.clone(), p);
        }
        Ok(())
    }
}

impl Hooks for Reweighting {
    fn lr(&self, epoch: usize, _step: usize) -> f64 {
        self.lrs[epoch - 1]
    }

    fn epoch_start(&mut self, model: &TchModel, epoch: usize) -> Result<bool> {
        let refresh = self.refresh.contains(&epoch);
        if self.alpha != 0.0 && (epoch == 1 || refresh) {
            self.recompute(model)?;
        }
        Ok(refresh)
    }

    fn penalty(&self, model: &TchModel) -> Result<Option<Tensor>> {
        if self.alpha == 0.0 {
            return Ok(None);
        }
        let mut sum: Option<Tensor> = None;
        for (w, p) in &self.p {
            let Some(t) = model.tensor(w) else { continue };
            let term = t.f_abs()?.f_mul(p)?.f_sum(Kind::Float)?;
            sum = Some(match sum {
                Some(s) => s.f_add(&term)?,
                None => term,
            });
        }
        sum.map(|s| s.f_mul_scalar(self.alpha)).transpose().map_err(Into::into)
    }
}

/// Run phase 1 on `graph` for `cfg.train_epochs` epochs with penalty strength `alpha` (the
/// config's own for reweighted L1, 0 for the magnitude baseline); returns the trained graph and
/// its last test accuracy. With a `teacher` every step adds the distillation term
/// ([`SparseConfig::distill`]).
pub fn reweight(
    graph: &Graph,
    data: &Splits,
    cfg: &SparseConfig,
    alpha: f64,
    teacher: Option<&Graph>,
    device: Device,
    on_event: &mut dyn FnMut(&SparseEvent),
) -> Result<(Graph, Option<f64>)> {
    let model = TchModel::from_graph(graph, device)?;
    let weights = conv_weights(graph);
    let mut hooks = Reweighting {
        alpha,
        epsilon: cfg.epsilon,
        weights: weights.clone(),
        p: BTreeMap::new(),
        lrs: phase1_lrs(cfg.lr, cfg.train_epochs),
        refresh: refresh_epochs(cfg.train_epochs),
    };
    let stage = if alpha == 0.0 { Stage::Train } else { Stage::Reweight };
    let teacher = teacher.map(|t| TchModel::from_graph(t, device)).transpose()?;
    let phase = Phase { stage, epochs: cfg.train_epochs, teacher: teacher.as_ref() };
    let acc = train_phase(&model, phase, data, cfg, &weights, &mut hooks, on_event)?;
    Ok((model.to_graph()?, acc))
}
