//! Evaluating one exported artifact on the held-out images: in the clear (the runtime's interpreter)
//! and under 2PC (the secure executor, both parties in one process), plus the cost of one inference
//! measured under masq and estimated under CrypTen's published costs.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use masq_exporter::ModelSpec;
use masq_ir::facts::Normalisation;
use masq_ir::{Op, report};
use masq_mpc::cost::{Network, Protocol};
use masq_runtime::plain;
use masq_runtime::secure::{self, SecureConfig};
use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

use super::config::DemoData;
use super::phases::Trained;
use crate::cli::common::model;
use crate::cli::common::predict::argmax_rows;

/// One row of the demo's table: a model and what it costs and keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    /// `baseline`, `autorep` or `random`.
    pub method: String,
    pub budget: Option<u64>,
    /// ReLUs of the exported model (the runtime's count).
    pub relu_count: u64,
    /// Σ masks of the artifact's sites plus the ReLUs outside them (must equal `relu_count`).
    pub relu_count_from_masks: u64,
    /// Validation accuracy the trainer measured (model selection).
    pub val_accuracy: f64,
    /// Held-out images evaluated.
    pub images: usize,
    /// Held-out top-1 accuracy in the clear (runtime interpreter on the artifact).
    pub plain_accuracy: f64,
    /// Held-out top-1 accuracy under 2PC.
    pub secure_accuracy: f64,
    /// Fraction of held-out images whose secure top-1 equals the plaintext top-1.
    pub agreement: f64,
    /// Largest |secure − plain| logit difference over the held-out images.
    pub max_logit_error: f64,
    /// One inference under masq (measured at batch 1): online bytes both directions, rounds,
    /// dealer bytes, online seconds (both parties in one process), estimated LAN / WAN latency.
    pub online_bytes: u64,
    pub rounds: u64,
    pub offline_bytes: u64,
    pub online_seconds: f64,
    pub lan_seconds: f64,
    pub wan_seconds: f64,
    /// The held-out batch under masq: online bytes and seconds for all images together.
    pub batch_online_bytes: u64,
    pub batch_online_seconds: f64,
    /// The same model under CrypTen's published costs (communication only).
    pub crypten_online_bytes: f64,
    pub crypten_rounds: u64,
    pub crypten_lan_seconds: f64,
    pub crypten_wan_seconds: f64,
    /// ReLUs per site (forward order).
    pub layers: Vec<(String, u64)>,
    pub artifact: String,
    pub train_seconds: f64,
}

/// The held-out images as a normalised `[n, c, h, w]` batch, and their labels.
pub fn held_out_batch(data: &DemoData, norm: Option<&Normalisation>) -> Result<(ArrayD<f32>, Vec<i64>)> {
    let d = &data.held_out;
    let [c, h, w] = d.shape;
    let default = data.kind.default_norm();
    let (mean, std) = match norm {
        Some(n) => (n.mean.clone(), n.std.clone()),
        None => (default.mean.clone(), default.std.clone()),
    };
    let per = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    ensure!(mean.len() == 1 || mean.len() == c, "normalisation has {} means for {c} channels", mean.len());
    ensure!(std.len() == 1 || std.len() == c, "normalisation has {} stds for {c} channels", std.len());
    let x = ArrayD::from_shape_fn(IxDyn(&[d.len(), c, h, w]), |i| {
        let v = d.images[((i[0] * c + i[1]) * h + i[2]) * w + i[3]];
        (f32::from(v) / 255.0 - per(&mean, i[1])) / per(&std, i[1])
    });
    Ok((x, d.labels.clone()))
}

fn accuracy(pred: &[usize], labels: &[i64]) -> f64 {
    let right = pred.iter().zip(labels).filter(|(p, l)| **p as i64 == **l).count();
    right as f64 / labels.len().max(1) as f64
}

/// Evaluate the artifact in `dir` (exported from `m`) on the held-out images.
pub fn evaluate(m: &Trained, dir: &Path, data: &DemoData, images: usize) -> Result<Row> {
    let art = model::load(&ModelSpec::Artifact(dir.to_path_buf()))?;
    let norm = art.manifest.as_ref().and_then(|man| man.normalisation.as_ref());
    let (mut x, mut labels) = held_out_batch(data, norm)?;
    let graph = art.graph;
    let n = images.min(labels.len());
    x = x.slice_axis(ndarray::Axis(0), (0..n).into()).to_owned();
    labels.truncate(n);

    let plain_out =
        plain::run_single(&graph, x.clone()).with_context(|| format!("plaintext evaluation of {}", dir.display()))?;
    let plain_pred = argmax_rows(&plain_out);

    let cfg = SecureConfig::default();
    let run = secure::run(&graph, &x, &cfg).with_context(|| format!("secure evaluation of {}", dir.display()))?;
    let secure_out = run.outputs.into_iter().next().map(|o| o.1).context("the model has no output")?;
    let secure_pred = argmax_rows(&secure_out);
    let max_logit_error =
        plain_out.iter().zip(secure_out.iter()).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);

    let one = x.slice_axis(ndarray::Axis(0), (0..1).into()).to_owned();
    let single = secure::run(&graph, &one, &cfg).with_context(|| format!("secure inference of {}", dir.display()))?;
    let s = single.report;
    let crypten_lan = secure::estimate(&graph, Protocol::CrypTen, &Network::LAN, 1, &Default::default())?;
    let crypten_wan = secure::estimate(&graph, Protocol::CrypTen, &Network::WAN, 1, &Default::default())?;

    // The count two ways: the runtime's report, and Σ masks plus the elements of unmasked ReLUs.
    let rep = report::report(&graph)?;
    let mut from_masks = 0u64;
    for (node, layer) in graph.nodes.iter().zip(&rep.layers) {
        match &node.op {
            Op::Relu => from_masks += layer.relus,
            Op::MaskedAct(c) => {
                let mask = graph.masks.get(&c.mask).with_context(|| format!("site {} has no mask", node.name))?;
                from_masks += mask.iter().filter(|&&v| v != 0).count() as u64;
            }
            _ => {}
        }
    }
    let agreement = plain_pred.iter().zip(&secure_pred).filter(|(a, b)| a == b).count() as f64 / n.max(1) as f64;
    Ok(Row {
        name: m.name.clone(),
        method: m.method.clone(),
        budget: m.budget,
        relu_count: rep.relu_count,
        relu_count_from_masks: from_masks,
        val_accuracy: m.val_accuracy,
        images: n,
        plain_accuracy: accuracy(&plain_pred, &labels),
        secure_accuracy: accuracy(&secure_pred, &labels),
        agreement,
        max_logit_error,
        online_bytes: s.online_bytes,
        rounds: s.rounds,
        offline_bytes: s.offline_bytes,
        online_seconds: s.online_seconds,
        lan_seconds: s.est_lan_seconds,
        wan_seconds: s.est_wan_seconds,
        batch_online_bytes: run.report.online_bytes,
        batch_online_seconds: run.report.online_seconds,
        crypten_online_bytes: crypten_lan.online_bytes,
        crypten_rounds: crypten_lan.rounds,
        crypten_lan_seconds: crypten_lan.est_seconds,
        crypten_wan_seconds: crypten_wan.est_seconds,
        layers: m.layers.clone(),
        artifact: dir.display().to_string(),
        train_seconds: m.seconds,
    })
}
