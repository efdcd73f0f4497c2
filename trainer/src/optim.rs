//! Optimisers (SGD with momentum, Adam; PyTorch's update rules with L2 weight decay), the cosine
//! learning-rate schedule with linear warm-up, and gradient-norm clipping.
//!
//! The state (momentum buffers, Adam moments, step count) can be exported as named f32 tensors for
//! a checkpoint and loaded back, so `--resume` continues exactly.

use std::collections::BTreeMap;

use ndarray::ArrayD;
use tch::Tensor;

use crate::error::{Result, TrainerError};
use crate::model::{TchModel, to_array, to_tensor};

/// Which optimiser, with its hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd { momentum: f64, nesterov: bool },
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

impl OptimizerKind {
    pub fn sgd() -> Self {
        OptimizerKind::Sgd { momentum: 0.9, nesterov: false }
    }

    pub fn adam() -> Self {
        OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    fn slots(&self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Sgd { .. } => &["momentum"],
            OptimizerKind::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// An optimiser over a model's trainable parameters.
#[derive(Debug)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub weight_decay: f64,
    /// Steps taken so far.
    pub steps: u64,
    state: BTreeMap<String, Vec<Tensor>>,
}

/// Prefix of optimiser-state tensor names in a checkpoint.
pub const STATE_PREFIX: &str = "optim.";

impl Optimizer {
    pub fn new(kind: OptimizerKind, weight_decay: f64) -> Self {
        Optimizer { kind, weight_decay, steps: 0, state: BTreeMap::new() }
    }

    /// Clear the gradients of every trainable parameter.
    pub fn zero_grad(&self, model: &TchModel) {
        for (_, p) in model.trainable() {
            let mut p = p.shallow_clone();
            p.zero_grad();
        }
    }

    /// Global L2 norm of the gradients; when `max` is given and exceeded, scale them down to it.
    pub fn clip_grad_norm(&self, model: &TchModel, max: Option<f64>) -> Result<f64> {
        let _guard = tch::no_grad_guard();
        let mut total = 0f64;
        let grads: Vec<Tensor> = model.trainable().iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).collect();
        for g in &grads {
            let n = f64::try_from(g.f_norm()?)?;
            total += n * n;
        }
        let norm = total.sqrt();
        if let Some(max) = max
            && norm > max
        {
            let scale = max / (norm + 1e-6);
            for g in &grads {
                let mut g = g.shallow_clone();
                let _ = g.f_mul_scalar_(scale)?;
            }
        }
        Ok(norm)
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, model: &TchModel, lr: f64) -> Result<()> {
        self.step_params(&model.trainable(), lr)
    }

    /// One update of an explicit parameter group (e.g. gate parameters that live outside the model).
    pub fn step_params(&mut self, params: &[(&str, &Tensor)], lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.steps += 1;
        let t = self.steps as i32;
        for &(name, p) in params {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let mut g = if self.weight_decay != 0.0 { grad.f_add(&p.f_mul_scalar(self.weight_decay)?)? } else { grad };
            let slots = self.kind.slots().len();
            let state =
                self.state.entry(name.to_string()).or_insert_with(|| (0..slots).map(|_| p.zeros_like()).collect());
            let mut p = p.shallow_clone();
            match self.kind {
                OptimizerKind::Sgd { momentum, nesterov } => {
                    if momentum != 0.0 {
                        let buf = &mut state[0];
                        if t == 1 {
                            buf.f_copy_(&g)?;
                        } else {
                            let _ = buf.f_mul_scalar_(momentum)?.f_add_(&g)?;
                        }
                        g = if nesterov { g.f_add(&buf.f_mul_scalar(momentum)?)? } else { buf.shallow_clone() };
                    }
                    let _ = p.f_sub_(&g.f_mul_scalar(lr)?)?;
                }
                OptimizerKind::Adam { beta1, beta2, eps } => {
                    let (m, v) = state.split_at_mut(1);
                    let (m, v) = (&mut m[0], &mut v[0]);
                    let _ = m.f_mul_scalar_(beta1)?.f_add_(&g.f_mul_scalar(1.0 - beta1)?)?;
                    let _ = v.f_mul_scalar_(beta2)?.f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - beta2)?)?;
                    let bc1 = 1.0 - beta1.powi(t);
                    let bc2 = 1.0 - beta2.powi(t);
                    let denom = v.f_div_scalar(bc2)?.f_sqrt()?.f_add_scalar(eps)?;
                    let _ = p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(lr / bc1)?)?;
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (`optim.<slot>.<param>`, plus `optim.steps`).
    pub fn state_tensors(&self) -> Result<BTreeMap<String, ArrayD<f32>>> {
        let mut out = BTreeMap::new();
        for (name, slots) in &self.state {
            for (slot, t) in self.kind.slots().iter().zip(slots) {
                out.insert(format!("{STATE_PREFIX}{slot}.{name}"), to_array(t)?);
            }
        }
        // f32 holds integers exactly up to 2^24; split the step count to be safe.
        let (hi, lo) = ((self.steps >> 20) as f32, (self.steps & 0xFFFFF) as f32);
        out.insert(format!("{STATE_PREFIX}steps"), ArrayD::from_shape_vec(vec![2], vec![hi, lo]).expect("2 elements"));
        Ok(out)
    }

    /// Restore the state written by [`Optimizer::state_tensors`] for `model`'s parameters.
    pub fn load_state(&mut self, model: &TchModel, tensors: &BTreeMap<String, ArrayD<f32>>) -> Result<()> {
        let bad = |reason: String| TrainerError::BadConfig { reason: format!("optimiser state: {reason}") };
        let steps = tensors.get(&format!("{STATE_PREFIX}steps")).ok_or_else(|| bad("no step count".into()))?;
        if steps.len() != 2 {
            return Err(bad("malformed step count".into()));
        }
        self.steps = ((steps[[0]] as u64) << 20) | steps[[1]] as u64;
        self.state.clear();
        for (name, p) in model.trainable() {
            let mut slots = Vec::new();
            for slot in self.kind.slots() {
                let key = format!("{STATE_PREFIX}{slot}.{name}");
                match tensors.get(&key) {
                    Some(a) if a.shape().iter().map(|&d| d as i64).eq(p.size()) => {
                        slots.push(to_tensor(a, model.device()))
                    }
                    Some(a) => return Err(bad(format!("{key}: shape {:?}, parameter {:?}", a.shape(), p.size()))),
                    None => break,
                }
            }
            if slots.len() == self.kind.slots().len() {
                self.state.insert(name.to_string(), slots);
            } else if !slots.is_empty() || self.steps > 0 && tensors.keys().any(|k| k.ends_with(&format!(".{name}"))) {
                return Err(bad(format!("incomplete state for {name}")));
            }
        }
        Ok(())
    }
}

/// Learning rate at step `t` of `total`: linear warm-up over `warmup` steps from `base/warmup`,
/// then cosine decay from `base` to `min`.
pub fn cosine_lr(base: f64, min: f64, t: usize, total: usize, warmup: usize) -> f64 {
    if t < warmup {
        return base * (t + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((t - warmup) as f64 / span).min(1.0);
    min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        assert!((cosine_lr(0.1, 0.0, 0, 100, 0) - 0.1).abs() < 1e-12);
        assert!((cosine_lr(0.1, 0.0, 50, 100, 0) - 0.05).abs() < 1e-12);
        assert!(cosine_lr(0.1, 1e-5, 100, 100, 0) - 1e-5 < 1e-12);
        assert!((cosine_lr(0.1, 0.0, 0, 100, 10) - 0.01).abs() < 1e-12);
        assert!((cosine_lr(0.1, 0.0, 9, 100, 10) - 0.1).abs() < 1e-12);
        assert!((cosine_lr(0.1, 0.0, 10, 100, 10) - 0.1).abs() < 1e-12);
    }
}
