//! `masq eval`: top-1 accuracy of a trained model (or a model with given weights) on a test split.

use std::path::PathBuf;

use anyhow::{Context, Result};
use masq_exporter::ModelSpec;
use masq_ir::zoo::KeyRemap;
use masq_trainer::data::{DatasetKind, Split, load_split};
use masq_trainer::device::{Device, device_name};
use masq_trainer::model::TchModel;
use masq_trainer::train::{check_fit, evaluate};

use super::common::{args, json, model};

/// Arguments of `masq eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A trained model: a masq checkpoint (.safetensors written by `masq train` or `masq reduce`)
    /// or an artifact directory; the normalisation it records is used.
    #[arg(long, value_name = "MODEL", conflicts_with = "model", required_unless_present = "model",
          value_parser = args::trained_model)]
    pub from: Option<ModelSpec>,
    /// Instead of --from: zoo:NAME (built for the dataset) or a .onnx file ...
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: Option<ModelSpec>,
    /// ... with weights from a safetensors file (e.g. a PyTorch state dict; `module.` is stripped).
    #[arg(long, requires = "model")]
    pub weights: Option<PathBuf>,
    /// Rename the keys of --weights (see `masq load-weights --help`); repeatable.
    #[arg(long, requires = "weights", value_name = "PATTERN=REPLACEMENT", value_parser = args::key_remap)]
    pub remap: Vec<KeyRemap>,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder | synthetic (tiny-imagenet
    /// and folder take @SIZE or @HxW to resize every image).
    #[arg(long, value_name = "DATASET", value_parser = args::dataset)]
    pub dataset: DatasetKind,
    /// Directory of the dataset's files (the test split is used).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// auto (the first CUDA device if there is one, else the CPU) | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto", value_parser = args::device)]
    pub device: Device,
    /// Print JSON Lines instead of text; the last line is the result (accuracy as a fraction, loss,
    /// images, relu_count, ...).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let (kind, device) = (a.dataset, a.device);
    let mut test = load_split(kind, a.data.as_deref(), Split::Test)
        .with_context(|| format!("loading the {} test split", kind.name()))?;
    if let Some(n) = a.limit {
        test.truncate(n);
    }
    // clap guarantees exactly one of --from and --model.
    let spec = a.from.as_ref().or(a.model.as_ref()).context("give --from MODEL or --model MODEL")?;
    let mut loaded = model::load_for_data(spec, test.shape, test.classes, 0)?;
    if let Some(w) = &a.weights {
        model::apply_weights(&mut loaded.graph, w, &a.remap)?;
    }
    let norm = model::recorded_normalisation(&loaded).unwrap_or_else(|| kind.default_norm());
    let graph = loaded.graph;
    check_fit(&graph, &test, kind.name())?;
    let model = TchModel::from_graph(&graph, device)?;
    let relu_count = model.relu_count()?;
    let r = evaluate(&model, &test, &norm, a.batch_size.max(1)).context("evaluating")?;
    if a.json {
        json::print(&serde_json::json!({
            "accuracy": r.accuracy,
            "loss": r.loss,
            "images": r.images,
            "relu_count": relu_count,
            "model": spec.to_string(),
            "dataset": kind.name(),
            "device": device_name(device),
        }))?;
    } else {
        println!(
            "{spec} on {} ({} images): top-1 {:.2}%, loss {:.4}, {relu_count} ReLUs",
            kind.name(),
            r.images,
            100.0 * r.accuracy,
            r.loss
        );
    }
    Ok(())
}
