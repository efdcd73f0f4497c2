//! Filter scores for the one-shot baselines (docs/ALGORITHMS.md §8 "Baselines"): one `f32` per
//! output filter of each considered conv, higher = more worth keeping.
//!
//! - [`magnitude`]: the L1 norm of a filter's (final) weights;
//! - [`magsign`]: the L1 norm over the filter's weights whose final sign equals their sign at
//!   initialisation (a weight whose sign flipped during training scores nothing);
//! - [`snip`]: SNIP's connection sensitivity `|∂L/∂w ⊙ w|` at initialisation on one batch, summed
//!   per filter (cross-entropy, BatchNorm in training mode, no augmentation);
//! - [`random`]: seeded uniform scores (a random selection at the same sparsity).
//!
//! Scores line up with the sites they were computed for ([`considered_sites`]).

use masq_ir::prune::{ConvSite, conv_sites};
use masq_ir::{Graph, IrError};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Device, Kind, Reduction, Tensor};

use crate::data::{Augment, Dataset, Loader, Normalisation};
use crate::error::{Result, TrainerError};
use crate::model::{TchModel, to_array};

/// The scores of one conv's filters (index = output channel).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterScores {
    /// The `Conv` node's name.
    pub conv: String,
    pub scores: Vec<f32>,
}

/// The convs whose filters are scored: by default only those where a dead filter is removed
/// physically on its own ([`ConvSite::removable`]); `include_all` takes every conv (a dead filter
/// of a non-removable one stays in the graph with zero weights).
pub fn considered_sites(graph: &Graph, include_all: bool) -> Result<Vec<ConvSite>> {
    Ok(conv_sites(graph)?.into_iter().filter(|s| include_all || s.removable).collect())
}

/// A site's weight `[out, in/groups, kh, kw]`, checked against its filter count.
fn weight<'g>(graph: &'g Graph, site: &ConvSite) -> Result<&'g ArrayD<f32>> {
    let w = graph
        .initializers
        .get(&site.weight)
        .ok_or_else(|| IrError::NotFound { kind: "initializer", name: site.weight.clone() })?;
    if w.ndim() == 0 || w.shape()[0] != site.out_channels {
        return Err(IrError::BadWeights {
            name: site.weight.clone(),
            reason: format!("shape {:?}, conv {} has {} filters", w.shape(), site.conv, site.out_channels),
        }
        .into());
    }
    Ok(w)
}

/// L1 norm of each filter of each site, from `graph`'s weights.
pub fn magnitude(graph: &Graph, sites: &[ConvSite]) -> Result<Vec<FilterScores>> {
    sites
        .iter()
        .map(|s| {
            let w = weight(graph, s)?;
            let scores = w.outer_iter().map(|f| f.iter().map(|v| f64::from(v.abs())).sum::<f64>() as f32).collect();
            Ok(FilterScores { conv: s.conv.clone(), scores })
        })
        .collect()
}

/// `-1`, `0` or `1`.
fn sign(v: f32) -> i8 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// Per filter, `Σ |w|` over the weights of `final_graph` whose sign equals that of the same weight
/// in `init` (both graphs have the same structure).
pub fn magsign(init: &Graph, final_graph: &Graph, sites: &[ConvSite]) -> Result<Vec<FilterScores>> {
    sites
        .iter()
        .map(|s| {
            let w = weight(final_graph, s)?;
            let w0 = weight(init, s)?;
            if w.shape() != w0.shape() {
                return Err(TrainerError::from(IrError::BadWeights {
                    name: s.weight.clone(),
                    reason: format!("initial shape {:?}, final shape {:?}", w0.shape(), w.shape()),
                }));
            }
            let scores = w
                .outer_iter()
                .zip(w0.outer_iter())
                .map(|(f, f0)| {
                    f.iter()
                        .zip(f0.iter())
                        .filter(|(a, b)| sign(**a) == sign(**b))
                        .map(|(a, _)| f64::from(a.abs()))
                        .sum::<f64>() as f32
                })
                .collect();
            Ok(FilterScores { conv: s.conv.clone(), scores })
        })
        .collect()
}

/// SNIP at `graph`'s weights: one batch of `images` records of `data` (drawn with `seed`, no
/// augmentation), forward in training mode, mean cross-entropy, backward; per filter
/// `Σ |∂L/∂w ⊙ w|`. A conv that does not reach the loss scores 0.
pub fn snip(
    graph: &Graph,
    sites: &[ConvSite],
    data: &Dataset,
    norm: &Normalisation,
    images: usize,
    seed: u64,
    device: Device,
) -> Result<Vec<FilterScores>> {
    if images == 0 || data.is_empty() {
        return Err(TrainerError::BadConfig { reason: "SNIP needs at least one image".into() });
    }
    for s in sites {
        weight(graph, s)?;
    }
    let model = TchModel::from_graph(graph, device)?;
    let n = images.min(data.len());
    let loader = Loader::new(data, norm.clone(), Augment::NONE, n, device)?;
    let order = loader.order(Some(seed));
    let (x, y) = loader.batch(&order[..n], None)?;
    let logits = model.forward(&x, true)?;
    let loss = logits.f_cross_entropy_loss(&y, None::<Tensor>, Reduction::Mean, -100, 0.0)?;
    loss.f_backward()?;
    let _guard = tch::no_grad_guard();
    sites
        .iter()
        .map(|s| {
            let w = model
                .tensor(&s.weight)
                .ok_or_else(|| IrError::NotFound { kind: "initializer", name: s.weight.clone() })?;
            let g = w.grad();
            let scores = if g.defined() {
                let per = g.f_mul(w)?.f_abs()?.f_reshape([s.out_channels as i64, -1])?.f_sum_dim_intlist(
                    1,
                    false,
                    Kind::Float,
                )?;
                to_array(&per)?.iter().copied().collect()
            } else {
                vec![0.0; s.out_channels]
            };
            Ok(FilterScores { conv: s.conv.clone(), scores })
        })
        .collect()
}

/// Uniform scores in `[0, 1)` from `ChaCha8(seed)`, site by site in order.
pub fn random(sites: &[ConvSite], seed: u64) -> Vec<FilterScores> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    sites
        .iter()
        .map(|s| FilterScores { conv: s.conv.clone(), scores: (0..s.out_channels).map(|_| rng.random()).collect() })
        .collect()
}
