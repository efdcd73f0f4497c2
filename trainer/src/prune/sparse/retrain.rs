//! Phase 2, the retrain with a fixed mask (docs/ALGORITHMS.md §7 "Retrain").
//!
//! The mask is `W ≠ 0` of every Conv and Gemm weight (`mask::weight_layers`) at the start of the
//! phase, i.e. after thresholding. Every step multiplies those weights' gradients by the mask
//! before Adam's update, and the weights themselves by the mask after it: the first keeps Adam's
//! moments of a pruned weight at 0, the second makes the zeros exact whatever the optimiser does
//! (weight decay, moments from an earlier phase). Biases and BatchNorm train freely. Adam starts
//! fresh; the learning rate follows `schedule::RetrainSchedule` per iteration (warm-up from
//! `warmup_lr` to `retrain_lr`, then a cosine to `final_lr`).

use masq_ir::Graph;
use tch::{Device, Kind, Tensor};

use super::mask::{WeightLayer, conv_weights};
use super::schedule::RetrainSchedule;
use super::stage::{Hooks, Phase, batches_per_epoch, train_phase};
use super::{SparseConfig, SparseEvent, Stage};
use crate::data::Splits;
use crate::error::{Result, TrainerError};
use crate::model::TchModel;

/// The masks, `(weight, W ≠ 0 as f32)`, and the schedule.
struct FixedMask {
    masks: Vec<(String, Tensor)>,
    schedule: RetrainSchedule,
}

impl FixedMask {
    fn new(model: &TchModel, layers: &[WeightLayer], schedule: RetrainSchedule) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let mut masks = Vec::with_capacity(layers.len());
        for l in layers {
            let t = model
                .tensor(&l.weight)
                .ok_or_else(|| TrainerError::MissingValue { node: l.layer.clone(), input: l.weight.clone() })?;
            masks.push((l.weight.clone(), t.f_ne(0.0)?.f_to_kind(Kind::Float)?));
        }
        Ok(FixedMask { masks, schedule })
    }
}

impl Hooks for FixedMask {
    fn lr(&self, _epoch: usize, step: usize) -> f64 {
        self.schedule.lr(step)
    }

    fn before_step(&self, model: &TchModel) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (w, m) in &self.masks {
            if let Some(t) = model.tensor(w) {
                let mut g = t.grad();
                if g.defined() {
                    let _ = g.f_mul_(m)?;
                }
            }
        }
        Ok(())
    }

    fn after_step(&self, model: &TchModel) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (w, m) in &self.masks {
            if let Some(t) = model.tensor(w) {
                let _ = t.shallow_clone().f_mul_(m)?;
            }
        }
        Ok(())
    }
}

/// The schedule phase 2 runs on `data` with `cfg`.
pub fn retrain_schedule(data: &Splits, cfg: &SparseConfig) -> RetrainSchedule {
    RetrainSchedule::new(cfg.retrain_lr, cfg.warmup_lr, cfg.final_lr, batches_per_epoch(data, cfg), cfg.epochs)
}

/// Retrain `graph` for `cfg.epochs` epochs with the zeros of `layers` fixed; returns the
/// retrained graph and its last test accuracy (`None` for 0 epochs: `graph` unchanged). With a
/// `teacher` every step adds the distillation term ([`SparseConfig::distill`]).
pub fn retrain(
    graph: &Graph,
    layers: &[WeightLayer],
    data: &Splits,
    cfg: &SparseConfig,
    teacher: Option<&Graph>,
    device: Device,
    on_event: &mut dyn FnMut(&SparseEvent),
) -> Result<(Graph, Option<f64>)> {
    if cfg.epochs == 0 {
        return Ok((graph.clone(), None));
    }
    let model = TchModel::from_graph(graph, device)?;
    let mut hooks = FixedMask::new(&model, layers, retrain_schedule(data, cfg))?;
    let conv = conv_weights(graph);
    let teacher = teacher.map(|t| TchModel::from_graph(t, device)).transpose()?;
    let phase = Phase { stage: Stage::Retrain, epochs: cfg.epochs, teacher: teacher.as_ref() };
    let acc = train_phase(&model, phase, data, cfg, &conv, &mut hooks, on_event)?;
    Ok((model.to_graph()?, acc))
}
