//! One training stage: SGD with momentum and weight decay on whatever the model marks trainable,
//! a cosine schedule to 0 with optional linear warm-up, the optional L1 push on the slopes, and
//! optional distillation from the starting model, and a test evaluation with slope statistics
//! after every epoch.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Reduction, Tensor};

use super::select::{SlopeStats, Slopes};
use super::{RreluConfig, RreluEpoch, RreluEvent, Stage};
use crate::data::{Dataset, Loader};
use crate::error::{Result, TrainerError};
use crate::model::{TchModel, to_array};
use crate::optim::{Optimizer, OptimizerKind, cosine_lr};
use crate::reduce::math::kd_loss;
use crate::train::evaluate;

/// What a stage trains with.
pub(super) struct StageSpec<'a> {
    pub stage: Stage,
    pub epochs: usize,
    pub lr: f64,
    pub warmup_epochs: f64,
    /// `grad_a += s·sign(a)` on these slope tensors before every step.
    pub l1: Option<f64>,
    /// The slope sites (relu names, slope tensor names): L1 targets and epoch statistics.
    pub slopes: &'a [(String, String)],
    /// Distil from this model (evaluation mode) at `RreluConfig::temperature`.
    pub teacher: Option<&'a TchModel>,
}

/// The model's current slopes by relu name.
pub(super) fn model_slopes(model: &TchModel, slopes: &[(String, String)]) -> Result<Slopes> {
    let mut out = Slopes::new();
    for (relu, name) in slopes {
        let t =
            model.tensor(name).ok_or_else(|| TrainerError::MissingValue { node: relu.clone(), input: name.clone() })?;
        out.insert(relu.clone(), to_array(t)?.iter().copied().collect());
    }
    Ok(out)
}

/// Train `model` for `spec.epochs` epochs on `train`, evaluating on `test` after each; returns
/// the last test accuracy (`None` when no epoch ran).
pub(super) fn train_stage(
    model: &TchModel,
    spec: &StageSpec<'_>,
    train: &Dataset,
    test: &Dataset,
    cfg: &RreluConfig,
    on_event: &mut dyn FnMut(&RreluEvent),
) -> Result<Option<f64>> {
    if spec.epochs == 0 {
        return Ok(None);
    }
    let device = model.device();
    let loader = Loader::new(train, cfg.norm.clone(), cfg.augment, cfg.batch_size, device)?;
    let full = loader.batches();
    let per_epoch = cfg.max_batches.map_or(full, |m| m.min(full)).max(1);
    let total = per_epoch * spec.epochs;
    let warmup = (spec.warmup_epochs * per_epoch as f64).round() as usize;
    on_event(&RreluEvent::Stage { stage: spec.stage, epochs: spec.epochs, batches_per_epoch: per_epoch });
    let mut optim = Optimizer::new(OptimizerKind::Sgd { momentum: cfg.momentum, nesterov: false }, cfg.weight_decay);
    let tag = spec.stage as u64 * 100_003;
    let mut last = None;
    for epoch in 1..=spec.epochs {
        let t0 = Instant::now();
        let order = loader.order(Some(cfg.seed.wrapping_mul(1_000_003).wrapping_add(tag + epoch as u64)));
        let mut aug_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_a06e ^ tag);
        aug_rng.set_stream(epoch as u64);
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0i64, 0usize);
        let mut lr = spec.lr;
        for (b, idx) in order.chunks(cfg.batch_size).take(per_epoch).enumerate() {
            let step = (epoch - 1) * per_epoch + b;
            lr = cosine_lr(spec.lr, 0.0, step, total, warmup);
            let (x, y) = loader.batch(idx, Some(&mut aug_rng))?;
            let logits = model.forward(&x, true)?;
            let mut loss = logits.f_cross_entropy_loss(&y, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
            if let Some(t) = spec.teacher {
                let tl = tch::no_grad(|| t.forward(&x, false))?;
                loss = loss.f_add(&kd_loss(&logits, &tl, cfg.temperature)?)?;
            }
            optim.zero_grad(model);
            loss.f_backward()?;
            if let Some(s) = spec.l1 {
                add_l1(model, spec.slopes, s)?;
            }
            optim.step(model, lr)?;
            let l = f64::try_from(&loss)?;
            if !l.is_finite() {
                return Err(TrainerError::BadConfig {
                    reason: format!(
                        "loss became {l} in the {} stage, epoch {epoch}, batch {b}; lower the lr",
                        spec.stage.name()
                    ),
                });
            }
            loss_sum += l * idx.len() as f64;
            correct += i64::try_from(logits.f_argmax(1, false)?.f_eq_tensor(&y)?.f_sum(Kind::Int64)?)?;
            seen += idx.len();
            on_event(&RreluEvent::Batch {
                stage: spec.stage,
                epoch,
                batch: b + 1,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
                lr,
            });
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let acc = evaluate(model, test, &cfg.norm, cfg.eval_batch_size)?.accuracy;
        last = Some(acc);
        let slopes =
            if spec.slopes.is_empty() { None } else { Some(SlopeStats::of(&model_slopes(model, spec.slopes)?)) };
        on_event(&RreluEvent::Epoch(RreluEpoch {
            stage: spec.stage,
            epoch,
            epochs: spec.epochs,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            test_accuracy: acc,
            lr,
            slopes,
            train_seconds,
        }));
    }
    Ok(last)
}

/// `grad_a += s·sign(a)` for every trainable slope with a gradient.
fn add_l1(model: &TchModel, slopes: &[(String, String)], s: f64) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for (_, name) in slopes {
        if !model.is_trainable(name) {
            continue;
        }
        let Some(p) = model.tensor(name) else { continue };
        let mut g = p.grad();
        if g.defined() {
            let _ = g.f_add_(&p.f_sign()?.f_mul_scalar(s)?)?;
        }
    }
    Ok(())
}
