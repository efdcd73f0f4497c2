//! A filter mask applied to a model in place, for the search's many trials: the same zeroing as
//! `masq_ir::prune::zero_filters` (a dead filter's weight row and bias entry, and the scale and
//! shift of the BatchNorm that reads only that conv), done on tch tensors from a kept copy of the
//! starting weights, so each trial costs a few multiplies instead of a graph copy.
//!
//! [`eval_batches`] and [`MaskedModel::accuracy`] are the search's objective: top-1 in percent on
//! fixed batches, BatchNorm in eval mode.

use masq_ir::prune::ConvSite;
use masq_ir::{Graph, IrError, Op};
use tch::{Device, Kind, Tensor};

use crate::data::{Augment, Dataset, Loader, Normalisation};
use crate::error::{Result, TrainerError};
use crate::model::TchModel;

/// One tensor that a site's mask scales along its first axis.
#[derive(Debug)]
struct Scaled {
    /// Shares storage with the model's tensor.
    live: Tensor,
    /// The starting values.
    base: Tensor,
    /// `[F, 1, ...]`: how a per-filter vector broadcasts over it.
    view: Vec<i64>,
}

#[derive(Debug)]
struct SiteTensors {
    filters: usize,
    tensors: Vec<Scaled>,
}

/// A model whose considered convs' filters can be switched off and on.
#[derive(Debug)]
pub struct MaskedModel {
    model: TchModel,
    sites: Vec<SiteTensors>,
    device: Device,
}

fn not_found(kind: &'static str, name: &str) -> TrainerError {
    IrError::NotFound { kind, name: name.to_string() }.into()
}

impl MaskedModel {
    /// `graph` on `device`, with `sites` (in this order) maskable; every mask is relative to
    /// `graph`'s weights.
    pub fn new(graph: &Graph, sites: &[ConvSite], device: Device) -> Result<Self> {
        let model = TchModel::from_graph(graph, device)?;
        let mut out = Vec::with_capacity(sites.len());
        for s in sites {
            let node = graph.nodes.iter().find(|n| n.name == s.conv).ok_or_else(|| not_found("Conv node", &s.conv))?;
            let Op::Conv(c) = &node.op else {
                return Err(TrainerError::BadConfig { reason: format!("node {} is not a Conv", s.conv) });
            };
            let mut names = vec![c.weight.clone()];
            names.extend(c.bias.clone());
            if let Some(bn) = &s.batchnorm {
                let node = graph.nodes.iter().find(|n| &n.name == bn).ok_or_else(|| not_found("BatchNorm node", bn))?;
                let Op::BatchNorm(b) = &node.op else {
                    return Err(TrainerError::BadConfig { reason: format!("node {bn} is not a BatchNorm") });
                };
                names.push(b.scale.clone());
                names.push(b.bias.clone());
            }
            let mut tensors = Vec::with_capacity(names.len());
            for name in names {
                let live = model.tensor(&name).ok_or_else(|| not_found("initializer", &name))?.shallow_clone();
                let size = live.size();
                if size.first() != Some(&(s.out_channels as i64)) {
                    return Err(IrError::BadWeights {
                        name,
                        reason: format!("shape {size:?}, conv {} has {} filters", s.conv, s.out_channels),
                    }
                    .into());
                }
                let base = live.f_detach()?.copy();
                let mut view = vec![1i64; size.len()];
                view[0] = -1;
                tensors.push(Scaled { live, base, view });
            }
            out.push(SiteTensors { filters: s.out_channels, tensors });
        }
        Ok(MaskedModel { model, sites: out, device })
    }

    /// Total filters over the sites (the mask length).
    pub fn filters(&self) -> usize {
        self.sites.iter().map(|s| s.filters).sum()
    }

    /// The model with the last applied mask.
    pub fn model(&self) -> &TchModel {
        &self.model
    }

    /// Set the model's tensors to the starting values with the filters where `mask` is `false`
    /// zeroed (site by site, channel by channel). Any mask is accepted, also one that kills a conv.
    pub fn apply(&mut self, mask: &[bool]) -> Result<()> {
        if mask.len() != self.filters() {
            return Err(TrainerError::BadConfig {
                reason: format!("a filter mask of {} entries for {} filters", mask.len(), self.filters()),
            });
        }
        let _guard = tch::no_grad_guard();
        let mut off = 0;
        for s in &mut self.sites {
            let m: Vec<f32> = mask[off..off + s.filters].iter().map(|&b| f32::from(u8::from(b))).collect();
            off += s.filters;
            let m = Tensor::f_from_slice(&m)?.f_to_device(self.device)?;
            for t in &mut s.tensors {
                let v = t.base.f_mul(&m.f_view(t.view.as_slice())?.f_to_kind(t.base.kind())?)?;
                t.live.f_copy_(&v)?;
            }
        }
        Ok(())
    }

    /// Top-1 accuracy in percent of the model with `mask` applied on `batches` (eval mode).
    pub fn accuracy(&mut self, mask: &[bool], batches: &[(Tensor, Tensor)]) -> Result<f64> {
        self.apply(mask)?;
        batch_accuracy(&self.model, batches)
    }
}

/// Top-1 accuracy in percent of `model` on `batches` (eval mode, no gradients).
pub fn batch_accuracy(model: &TchModel, batches: &[(Tensor, Tensor)]) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let (mut correct, mut seen) = (0i64, 0i64);
    for (x, y) in batches {
        let logits = model.forward(x, false)?;
        correct += i64::try_from(logits.f_argmax(1, false)?.f_eq_tensor(y)?.f_sum(Kind::Int64)?)?;
        seen += y.size()[0];
    }
    Ok(if seen == 0 { 0.0 } else { 100.0 * correct as f64 / seen as f64 })
}

/// The first `num_batches` batches of `batch_size` records of `data`, in order (the last one may
/// be short), normalised and on `device`.
pub fn eval_batches(
    data: &Dataset,
    norm: &Normalisation,
    batch_size: usize,
    num_batches: usize,
    device: Device,
) -> Result<Vec<(Tensor, Tensor)>> {
    let loader = Loader::new(data, norm.clone(), Augment::NONE, batch_size, device)?;
    let order = loader.order(None);
    order.chunks(batch_size).take(num_batches).map(|idx| loader.batch(idx, None)).collect()
}
