//! Layer-wise linear quantization of a trained model (docs/ALGORITHMS.md §7), on top of the IR's
//! graph edits (`masq_ir::quant`):
//!
//! 1. the weights of every Conv/Gemm go onto `b`-bit grids (`sf = b − 1 − ⌈log2 max|W|⌉`);
//! 2. [`calibrate`] runs the weight-quantized model on the first calibration batches and keeps,
//!    per activation site (each layer's data input), the largest |x|: the smallest `sf`;
//! 3. a FakeQuant node goes in front of every layer;
//! 4. optionally, a short quantization-aware finetune: ordinary training of that graph, where
//!    FakeQuant nodes and quantized weights round in the forward pass and pass the gradient
//!    straight through (the f32 shadow weights return to their grids when the model is read back).
//!
//! ```no_run
//! use masq_trainer::data::{DatasetKind, SyntheticConfig, synthetic};
//! use masq_trainer::quant::{QuantizeConfig, quantize};
//! let splits = synthetic(&SyntheticConfig::default());
//! let graph = masq_ir::zoo::build("cnn_small", None, 0).unwrap();
//! let cfg = QuantizeConfig::new(vec![8], DatasetKind::Synthetic.default_norm());
//! let (q, summary) = quantize(&graph, &splits, &cfg, tch::Device::Cpu, &mut |_| {}).unwrap();
//! println!("{:.1}% → {:.1}%", 100.0 * summary.accuracy_float, 100.0 * summary.accuracy_quantized);
//! # let _ = q;
//! ```

mod calibrate;

use std::collections::BTreeMap;

use masq_ir::Graph;
use masq_ir::quant::{self as q, WeightReport};
use serde::Serialize;
use tch::Device;

pub use calibrate::calibrate;

use crate::data::{Normalisation, Splits};
use crate::error::{Result, TrainerError};
use crate::model::TchModel;
use crate::train::{Event, TrainConfig, evaluate, train};

/// Settings of [`quantize`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizeConfig {
    /// Weight widths: one per Conv/Gemm layer in graph order, or one for all.
    pub bits: Vec<u32>,
    /// Activation widths (same convention); `None`: each layer's weight width.
    pub act_bits: Option<Vec<u32>>,
    /// Calibration batches (§7: the first 20 forward passes).
    pub calib_batches: usize,
    pub calib_batch_size: usize,
    pub norm: Normalisation,
    /// Quantization-aware finetune after calibration (`None`: none).
    pub finetune: Option<TrainConfig>,
    pub eval_batch_size: usize,
}

impl QuantizeConfig {
    /// `bits` for weights and activations, 20 calibration batches of 64 images, no finetune.
    pub fn new(bits: Vec<u32>, norm: Normalisation) -> Self {
        QuantizeConfig {
            bits,
            act_bits: None,
            calib_batches: 20,
            calib_batch_size: 64,
            norm,
            finetune: None,
            eval_batch_size: 500,
        }
    }
}

/// One activation site's quantizer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActReport {
    pub layer: String,
    pub bits: u32,
    pub sf: i32,
    /// Largest |x| seen over the calibration passes.
    pub max_abs: f32,
    pub passes: usize,
}

/// What [`quantize`] did and measured (accuracies on the test split, in [0, 1]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizeSummary {
    pub accuracy_float: f64,
    /// Weights quantized, activations f32.
    pub accuracy_weights: f64,
    /// Weights and activations quantized, before any finetune.
    pub accuracy_quantized: f64,
    /// After the quantization-aware finetune.
    pub accuracy_finetuned: Option<f64>,
    pub weights: Vec<WeightReport>,
    pub activations: Vec<ActReport>,
    pub calib_images: usize,
    pub test_images: usize,
}

impl QuantizeSummary {
    /// The accuracy of the model returned.
    pub fn final_accuracy(&self) -> f64 {
        self.accuracy_finetuned.unwrap_or(self.accuracy_quantized)
    }
}

/// Progress of [`quantize`].
#[derive(Debug, Clone, PartialEq)]
pub enum QuantizeEvent<'a> {
    /// A stage's test accuracy: `float`, `weights`, `quantized`, `finetuned`.
    Evaluated { stage: &'static str, accuracy: f64 },
    /// Calibration finished.
    Calibrated { sites: usize, images: usize },
    /// An event of the finetune's training run.
    Finetune(&'a Event),
}

fn eval(graph: &Graph, splits: &Splits, cfg: &QuantizeConfig, device: Device) -> Result<f64> {
    let m = TchModel::from_graph(graph, device)?;
    Ok(evaluate(&m, &splits.test, &cfg.norm, cfg.eval_batch_size.max(1))?.accuracy)
}

/// Quantizes `graph` (§7): weights, calibrated activations, optional finetune. Calibration uses
/// the training split; accuracies are measured on the test split.
pub fn quantize(
    graph: &Graph,
    splits: &Splits,
    cfg: &QuantizeConfig,
    device: Device,
    on_event: &mut dyn FnMut(&QuantizeEvent),
) -> Result<(Graph, QuantizeSummary)> {
    if q::is_quantized(graph) {
        return Err(TrainerError::BadConfig { reason: "the model is already quantized".into() });
    }
    let act_bits = q::layer_bits(graph, cfg.act_bits.as_deref().unwrap_or(&cfg.bits))?;
    let mut g = graph.clone();
    let accuracy_float = eval(&g, splits, cfg, device)?;
    on_event(&QuantizeEvent::Evaluated { stage: "float", accuracy: accuracy_float });
    let weights = q::quantize_weights(&mut g, &cfg.bits)?;
    let accuracy_weights = eval(&g, splits, cfg, device)?;
    on_event(&QuantizeEvent::Evaluated { stage: "weights", accuracy: accuracy_weights });

    let ranges = calibrate(&g, &splits.train, &cfg.norm, cfg.calib_batches, cfg.calib_batch_size, device)?;
    let calib_images = (cfg.calib_batches * cfg.calib_batch_size).min(splits.train.len());
    on_event(&QuantizeEvent::Calibrated { sites: ranges.len(), images: calib_images });
    let mut sites = BTreeMap::new();
    let mut activations = Vec::new();
    for (site, bits) in q::act_sites(&g).into_iter().zip(act_bits) {
        let r = ranges.get(&site.layer).copied().unwrap_or_default();
        let p = r.params(bits);
        activations.push(ActReport {
            layer: site.layer.clone(),
            bits,
            sf: q::sf_for(r.max_abs, bits),
            max_abs: r.max_abs,
            passes: r.passes,
        });
        sites.insert(site.layer, p);
    }
    q::insert_fake_quants(&mut g, &sites)?;
    g.finalize()?;
    let accuracy_quantized = eval(&g, splits, cfg, device)?;
    on_event(&QuantizeEvent::Evaluated { stage: "quantized", accuracy: accuracy_quantized });

    let mut accuracy_finetuned = None;
    if let Some(tc) = &cfg.finetune {
        let (model, _) = train(&g, splits, tc, device, &mut |e| on_event(&QuantizeEvent::Finetune(e)))?;
        // The graph read back, its weights on their grids, is what is measured and returned.
        g = model.to_graph()?;
        let a = eval(&g, splits, cfg, device)?;
        on_event(&QuantizeEvent::Evaluated { stage: "finetuned", accuracy: a });
        accuracy_finetuned = Some(a);
    }
    let summary = QuantizeSummary {
        accuracy_float,
        accuracy_weights,
        accuracy_quantized,
        accuracy_finetuned,
        weights,
        activations,
        calib_images,
        test_images: splits.test.len(),
    };
    Ok((g, summary))
}
