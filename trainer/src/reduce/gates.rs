//! [`Gates`]: the [`ActHook`] that evaluates the `MaskedAct` sites during ReLU reduction —
//! AutoReP gates (trainable `a`, binary state `m`), SNL's continuous `α`, or frozen masks (with
//! optional mask dropout) — and keeps DaPa's running statistics.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use masq_ir::masks::Site;
use masq_ir::{MaskedActConfig, Node, Replacement};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::math::{dapa_fit, gated, hysteresis, ste_mask};
use super::{GateKind, ReplacementKind};
use crate::error::{Result, TrainerError};
use crate::lower::masked::{kept, per_channel};
use crate::model::{ActHook, TchModel};

/// What the sites compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// AutoReP search: `m` from the gate parameters `a`, STE gradient to `a`.
    AutoRep,
    /// SNL search: `y = α⊙ReLU(x) + (1−α)⊙g(x)` with continuous trainable `α`.
    Snl,
    /// The model's own binary masks, not trained.
    Frozen,
}

/// DaPa: resets every this many forward passes ...
pub const DAPA_PERIOD: u64 = 10;
/// ... until the pass counter reaches this value.
pub const DAPA_UNTIL: u64 = 508;
/// Floor of the running variance used in the fit.
pub const DAPA_VAR_MIN: f64 = 0.5;

/// One site's state.
#[derive(Debug)]
pub struct GateSite {
    pub site: Site,
    /// AutoReP's `a` or SNL's `α` (requires grad), shape = the mask's.
    pub param: Tensor,
    /// AutoReP's binary state `m` (f32 0/1).
    pub m: RefCell<Tensor>,
    /// Running per-channel mean and variance of the input (DaPa).
    running: RefCell<(Tensor, Tensor)>,
}

/// The hook; see the module docs.
#[derive(Debug)]
pub struct Gates {
    pub sites: Vec<GateSite>,
    index: HashMap<String, usize>,
    pub mode: Mode,
    pub gate: GateKind,
    pub replacement: ReplacementKind,
    /// Scale of the stored `c2` (`g = scale·c2·x² + c1·x + c0`), folded in on export.
    pub c2_scale: f64,
    /// Probability that a site outputs plain ReLU for a whole training batch (frozen mode).
    pub mask_dropout: f64,
    /// Use the running variance where the fit wants a standard deviation (AutoReP's quirk).
    pub dapa_variance_quirk: bool,
    /// DaPa's pass counter (`itr_cnt`).
    pub passes: Cell<u64>,
    rng: RefCell<ChaCha8Rng>,
}

impl Gates {
    /// Sites in forward order. `param_init` gives each site's gate parameter (`None`: zeros,
    /// unused in frozen mode); `m` starts at all ones.
    pub fn new(
        sites: &[Site],
        mode: Mode,
        gate: GateKind,
        replacement: ReplacementKind,
        device: Device,
        seed: u64,
        param_init: &mut dyn FnMut(&Site) -> Tensor,
    ) -> Self {
        let mut out = Vec::new();
        let mut index = HashMap::new();
        for (i, s) in sites.iter().enumerate() {
            let shape: Vec<i64> = s.shape.iter().map(|&d| d as i64).collect();
            let param = param_init(s).to_device(device).set_requires_grad(mode != Mode::Frozen);
            let c = s.channels() as i64;
            out.push(GateSite {
                site: s.clone(),
                param,
                m: RefCell::new(Tensor::ones(shape.as_slice(), (Kind::Float, device))),
                running: RefCell::new((
                    Tensor::zeros([c], (Kind::Float, device)),
                    Tensor::ones([c], (Kind::Float, device)),
                )),
            });
            index.insert(s.node.clone(), i);
        }
        let c2_scale = replacement.c2_scale();
        Gates {
            sites: out,
            index,
            mode,
            gate,
            replacement,
            c2_scale,
            mask_dropout: 0.0,
            dapa_variance_quirk: false,
            passes: Cell::new(0),
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed ^ 0xd0_9a7e)),
        }
    }

    /// Gate parameters (for an optimiser), named `gate.<node>`.
    pub fn params(&self) -> Vec<(String, &Tensor)> {
        self.sites.iter().map(|s| (format!("gate.{}", s.site.node), &s.param)).collect()
    }

    /// Current binary state `Σm` (AutoReP) or `#{α > 1e-2}` (SNL).
    pub fn count(&self) -> Result<u64> {
        let mut n = 0i64;
        for s in &self.sites {
            let c = match self.mode {
                Mode::Snl => s.param.f_detach()?.f_gt(super::SNL_THRESHOLD)?.f_sum(Kind::Int64)?,
                _ => s.m.borrow().f_gt(0.5)?.f_sum(Kind::Int64)?,
            };
            n += i64::try_from(c)?;
        }
        Ok(n as u64)
    }

    /// Update AutoReP's binary state from `a` (done at the start of every forward pass).
    pub fn update_masks(&self) -> Result<()> {
        if self.mode != Mode::AutoRep {
            return Ok(());
        }
        for s in &self.sites {
            let new = match self.gate {
                GateKind::Ste => ste_mask(&s.param)?,
                GateKind::Hysteresis(theta) | GateKind::SpGrad(theta) => hysteresis(&s.m.borrow(), &s.param, theta)?,
            };
            *s.m.borrow_mut() = new;
        }
        Ok(())
    }

    /// Reset the DaPa coefficients of every site from its running statistics.
    pub fn dapa_reset(&self, model: &TchModel) -> Result<()> {
        let _g = tch::no_grad_guard();
        for s in &self.sites {
            let Some(names) = &s.site.coefficients else { continue };
            let (mean, var) = &*s.running.borrow();
            let mean = crate::model::to_array(mean)?;
            let var = crate::model::to_array(var)?;
            let c = mean.len();
            let mut coef = [vec![0f32; c], vec![0f32; c], vec![0f32; c]];
            for ch in 0..c {
                let v = f64::from(var[ch]).max(DAPA_VAR_MIN);
                let sigma = if self.dapa_variance_quirk { v } else { v.sqrt() };
                let w = dapa_fit(f64::from(mean[ch]), sigma);
                coef[0][ch] = (w[0] / self.c2_scale) as f32;
                coef[1][ch] = w[1] as f32;
                coef[2][ch] = w[2] as f32;
            }
            for (name, v) in names.iter().zip(coef) {
                let t = model
                    .tensor(name)
                    .ok_or_else(|| TrainerError::MissingValue { node: s.site.node.clone(), input: name.clone() })?;
                let src = Tensor::from_slice(&v).to_device(t.device());
                t.shallow_clone().f_copy_(&src)?;
            }
        }
        Ok(())
    }

    fn replacement_value(&self, model: &TchModel, node: &Node, cfg: &MaskedActConfig, x: &Tensor) -> Result<Tensor> {
        match &cfg.replacement {
            Replacement::Identity => Ok(x.shallow_clone()),
            Replacement::Poly { c2, c1, c0 } => {
                let get = |n: &String| -> Result<Tensor> {
                    let t = model
                        .tensor(n)
                        .ok_or_else(|| TrainerError::MissingValue { node: node.name.clone(), input: n.clone() })?;
                    per_channel(t, x.dim())
                };
                let a2 = get(c2)?.f_mul_scalar(self.c2_scale)?;
                let (a1, a0) = (get(c1)?, get(c0)?);
                Ok(x.f_mul(&a2)?.f_add(&a1)?.f_mul(x)?.f_add(&a0)?)
            }
        }
    }
}

impl ActHook for Gates {
    fn begin_forward(&self, model: &TchModel, _train: bool) -> Result<()> {
        self.update_masks()?;
        if self.replacement == ReplacementKind::Dapa {
            let n = self.passes.get();
            if n < DAPA_UNTIL {
                self.passes.set(n + 1);
                if (n + 1).is_multiple_of(DAPA_PERIOD) {
                    self.dapa_reset(model)?;
                }
            }
        }
        Ok(())
    }

    fn masked_act(
        &self,
        model: &TchModel,
        node: &Node,
        cfg: &MaskedActConfig,
        x: &Tensor,
        train: bool,
    ) -> Result<Option<Tensor>> {
        let Some(&i) = self.index.get(&node.name) else { return Ok(None) };
        let site = &self.sites[i];
        if train && self.replacement == ReplacementKind::Dapa {
            let _g = tch::no_grad_guard();
            let dims: Vec<i64> = (0..x.dim() as i64).filter(|&d| d != 1).collect();
            let xd = x.f_detach()?;
            let mean = xd.f_mean_dim(dims.as_slice(), false, Kind::Float)?;
            let var = xd.f_var_dim(dims.as_slice(), true, false)?;
            let mut r = site.running.borrow_mut();
            let m = momentum_update(&r.0, &mean, model.bn_momentum)?;
            let v = momentum_update(&r.1, &var, model.bn_momentum)?;
            *r = (m, v);
        }
        let g = self.replacement_value(model, node, cfg, x)?;
        let spgrad = matches!(self.gate, GateKind::SpGrad(_));
        let y = match self.mode {
            Mode::AutoRep => gated(x, cfg.cap, &g, &site.m.borrow(), Some(&site.param), spgrad)?,
            Mode::Snl => g.f_add(&kept(x, cfg.cap)?.f_sub(&g)?.f_mul(&site.param)?)?,
            Mode::Frozen => {
                if train && self.mask_dropout > 0.0 && self.rng.borrow_mut().random_bool(self.mask_dropout.min(1.0)) {
                    kept(x, cfg.cap)?
                } else {
                    let m = model.mask(&cfg.mask).ok_or_else(|| TrainerError::MissingValue {
                        node: node.name.clone(),
                        input: cfg.mask.clone(),
                    })?;
                    gated(x, cfg.cap, &g, m, None, spgrad)?
                }
            }
        };
        Ok(Some(y))
    }
}

fn momentum_update(old: &Tensor, new: &Tensor, momentum: f64) -> Result<Tensor> {
    Ok(old.f_mul_scalar(1.0 - momentum)?.f_add(&new.f_mul_scalar(momentum)?)?)
}
