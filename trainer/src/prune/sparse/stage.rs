//! One training phase: Adam on shuffled, augmented batches, cross-entropy (plus distillation from
//! the starting model when asked) plus whatever the phase
//! adds, with the phase's hooks around every step, and a test evaluation after every epoch.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Reduction, Tensor};

use super::{SparseConfig, SparseEpoch, SparseEvent, Stage};
use crate::data::{Loader, Splits};
use crate::error::{Result, TrainerError};
use crate::model::TchModel;
use crate::optim::{Optimizer, OptimizerKind};
use crate::reduce::math::kd_loss;
use crate::train::evaluate;

/// What a phase adds to plain training.
pub(super) trait Hooks {
    /// The learning rate of iteration `step` (0-based over the phase), in epoch `epoch` (1-based).
    fn lr(&self, epoch: usize, step: usize) -> f64;
    /// Before the first batch of an epoch; whether the epoch is one of the phase's refresh epochs.
    fn epoch_start(&mut self, _model: &TchModel, _epoch: usize) -> Result<bool> {
        Ok(false)
    }
    /// A term added to the batch's loss (`None`: nothing).
    fn penalty(&self, _model: &TchModel) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// After the backward pass, before the optimiser step.
    fn before_step(&self, _model: &TchModel) -> Result<()> {
        Ok(())
    }
    /// After the optimiser step.
    fn after_step(&self, _model: &TchModel) -> Result<()> {
        Ok(())
    }
}

/// Batches per epoch of a phase on `data` (`max_batches` applied).
pub(super) fn batches_per_epoch(data: &Splits, cfg: &SparseConfig) -> usize {
    let full = data.train.len().div_ceil(cfg.batch_size.max(1));
    cfg.max_batches.map_or(full, |m| m.min(full)).max(1)
}

/// `Σ|w|` of the named tensors of `model`.
pub(super) fn l1_of(model: &TchModel, names: &[String]) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let mut total = 0.0;
    for n in names {
        if let Some(t) = model.tensor(n) {
            total += f64::try_from(t.f_abs()?.f_sum(Kind::Double)?)?;
        }
    }
    Ok(total)
}

/// Which phase runs, for how long, and the model it distills from (if any).
pub(super) struct Phase<'a> {
    pub stage: Stage,
    pub epochs: usize,
    pub teacher: Option<&'a TchModel>,
}

/// Train `model` for `phase.epochs` epochs of `phase.stage`; returns the last test accuracy (`None` when no
/// epoch ran). `conv` names the tensors whose `Σ|w|` each epoch reports.
#[allow(clippy::too_many_arguments)]
pub(super) fn train_phase(
    model: &TchModel,
    phase: Phase<'_>,
    data: &Splits,
    cfg: &SparseConfig,
    conv: &[String],
    hooks: &mut dyn Hooks,
    on_event: &mut dyn FnMut(&SparseEvent),
) -> Result<Option<f64>> {
    let Phase { stage, epochs, teacher } = phase;
    if epochs == 0 {
        return Ok(None);
    }
    let loader = Loader::new(&data.train, cfg.norm.clone(), cfg.augment, cfg.batch_size, model.device())?;
    let per_epoch = batches_per_epoch(data, cfg);
    on_event(&SparseEvent::Stage { stage, epochs, batches_per_epoch: per_epoch });
    let mut optim = Optimizer::new(OptimizerKind::adam(), cfg.weight_decay);
    let tag = stage as u64 * 100_003;
    let mut last = None;
    for epoch in 1..=epochs {
        let t0 = Instant::now();
        let refreshed = hooks.epoch_start(model, epoch)?;
        let order = loader.order(Some(cfg.seed.wrapping_mul(1_000_003).wrapping_add(tag + epoch as u64)));
        let mut aug_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_a06e ^ tag);
        aug_rng.set_stream(epoch as u64);
        let (mut loss_sum, mut penalty_sum, mut correct, mut seen, mut batches) = (0f64, 0f64, 0i64, 0usize, 0usize);
        let mut lr = 0.0;
        for (b, idx) in order.chunks(cfg.batch_size).take(per_epoch).enumerate() {
            lr = hooks.lr(epoch, (epoch - 1) * per_epoch + b);
            let (x, y) = loader.batch(idx, Some(&mut aug_rng))?;
            let logits = model.forward(&x, true)?;
            let mut ce = logits.f_cross_entropy_loss(&y, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
            if let Some(t) = teacher {
                let tl = tch::no_grad(|| t.forward(&x, false))?;
                ce = ce.f_add(&kd_loss(&logits, &tl, cfg.temperature)?)?;
            }
            let penalty = hooks.penalty(model)?;
            let loss = match &penalty {
                Some(p) => ce.f_add(p)?,
                None => ce.shallow_clone(),
            };
            optim.zero_grad(model);
            loss.f_backward()?;
            hooks.before_step(model)?;
            optim.step(model, lr)?;
            hooks.after_step(model)?;
            let l = f64::try_from(&ce)?;
            let p = match &penalty {
                Some(p) => f64::try_from(p)?,
                None => 0.0,
            };
            if !l.is_finite() || !p.is_finite() {
                return Err(TrainerError::BadConfig {
                    reason: format!(
                        "loss became {} in the {} phase, epoch {epoch}, batch {b}; lower the learning rate{}",
                        l + p,
                        stage.name(),
                        if p.is_finite() { "" } else { " or alpha" }
                    ),
                });
            }
            loss_sum += l * idx.len() as f64;
            penalty_sum += p;
            batches += 1;
            correct += i64::try_from(logits.f_argmax(1, false)?.f_eq_tensor(&y)?.f_sum(Kind::Int64)?)?;
            seen += idx.len();
            on_event(&SparseEvent::Batch {
                stage,
                epoch,
                batch: b + 1,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
                lr,
            });
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let acc = evaluate(model, &data.test, &cfg.norm, cfg.eval_batch_size)?.accuracy;
        last = Some(acc);
        on_event(&SparseEvent::Epoch(SparseEpoch {
            stage,
            epoch,
            epochs,
            lr,
            refreshed,
            train_loss: loss_sum / seen.max(1) as f64,
            penalty: penalty_sum / batches.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            conv_l1: l1_of(model, conv)?,
            test_accuracy: acc,
            train_seconds,
        }));
    }
    Ok(last)
}
