//! `masq quantize --from MODEL (--bits B | --layer-bits B1,B2,...) --dataset D [--data DIR]
//! [--calib-batches 20] [--finetune-epochs E] --out DIR [--json]`: layer-wise linear quantization
//! (docs/ALGORITHMS.md §7) of a trained model, written as a masq checkpoint
//! (`DIR/quantized.safetensors`) that `masq export` turns into a standard ONNX QDQ model.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use masq_exporter::ModelSpec;
use masq_ir::checkpoint::{self, Facts};
use masq_ir::score::{ScoreOptions, micronet};
use masq_trainer::data::DatasetKind;
use masq_trainer::optim::OptimizerKind;
use masq_trainer::quant::{QuantizeConfig, QuantizeEvent, quantize};
use masq_trainer::train::{Event, TrainConfig};
use serde_json::json;

use super::common::training::{self, TrainEnv};
use super::common::{args, json as jsonl, model, progress};

/// Arguments of `masq quantize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    masq quantize --from runs/r20/pruned.safetensors --dataset cifar10 --data DIR --bits 8 --out runs/q8\n  \
    masq quantize --from zoo:cnn_small --dataset synthetic --layer-bits 9,8,6,8 --finetune-epochs 1 --out runs/q --json\n\n\
    Weights go onto b-bit grids (sf = b - 1 - ceil(log2 max|W|)); each Conv/Gemm input gets a \
    quantizer whose sf is the smallest seen over the calibration batches. The checkpoint exports \
    as ONNX QDQ (masq export --no-fold-bn keeps the integer weights: folding BatchNorm takes them \
    off their grids) and runs under 2PC (masq run --mode mpc); masq inspect --score \
    micronet scores it.")]
pub struct QuantizeArgs {
    /// The trained model: a masq checkpoint (its normalisation is used), an artifact directory, a
    /// .onnx file or zoo:NAME (with --weights).
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub from: ModelSpec,
    /// Weights for the model (safetensors, e.g. a PyTorch state dict; `module.` is stripped).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder | synthetic.
    #[arg(long, value_name = "DATASET", value_parser = args::dataset)]
    pub dataset: DatasetKind,
    /// Directory of the dataset's files (or a parent holding e.g. cifar10/).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Width of every layer's weights and input activations (2 to 16).
    #[arg(long, value_name = "B", required_unless_present = "layer_bits", conflicts_with = "layer_bits")]
    pub bits: Option<u32>,
    /// Widths per Conv/Gemm layer in graph order (`masq inspect` lists them), e.g. 9,8,8,6,...
    #[arg(long, value_name = "B1,B2,...", value_delimiter = ',')]
    pub layer_bits: Option<Vec<u32>>,
    /// Width of every input activation (default: its layer's weight width).
    #[arg(long, value_name = "B")]
    pub act_bits: Option<u32>,
    /// Calibration batches (from the training split, in order, no augmentation).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub calib_batches: usize,
    /// Images per calibration batch.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub calib_batch_size: usize,
    /// Epochs of quantization-aware finetuning (straight-through rounding; 0: none).
    #[arg(long, default_value_t = 0)]
    pub finetune_epochs: usize,
    /// Finetune: Adam's peak learning rate (cosine to 0).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Finetune batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Finetune without training augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Output directory (quantized.safetensors); default runs/quantize.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub env: TrainEnv,
    /// Print JSON Lines (stages, finetune epochs); the last line is the result: accuracies,
    /// per-layer widths and sf, the MicroNet score before and after, the checkpoint.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    let bits = match (&a.bits, &a.layer_bits) {
        (Some(b), None) => vec![*b],
        (None, Some(l)) if !l.is_empty() => l.clone(),
        _ => bail!("give --bits B or --layer-bits B1,B2,..."),
    };
    if a.calib_batches == 0 || a.calib_batch_size == 0 {
        bail!("--calib-batches and --calib-batch-size must be at least 1");
    }
    if a.finetune_epochs > 0 && !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", a.lr);
    }
    let kind = a.dataset;
    let splits = a.env.prepare(kind, a.data.as_deref())?;
    let (graph, norm) = model::load_trainable(&a.from, a.weights.as_deref(), &splits, kind, a.env.seed, "quantize")?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join("quantize"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if !a.json {
        training::announce("quantizing", &graph.name, kind.name(), &splits, a.env.device, &out);
    }
    let mut cfg = QuantizeConfig::new(bits, norm.clone());
    cfg.act_bits = a.act_bits.map(|b| vec![b]);
    cfg.calib_batches = a.calib_batches;
    cfg.calib_batch_size = a.calib_batch_size;
    if a.finetune_epochs > 0 {
        let augment =
            if a.no_augment { masq_trainer::data::Augment::NONE } else { kind.default_augment_for(splits.train.shape) };
        let mut t = TrainConfig::new(kind.name(), norm.clone(), augment);
        t.epochs = a.finetune_epochs;
        t.lr = a.lr;
        t.optimizer = OptimizerKind::adam();
        t.weight_decay = 0.0;
        t.batch_size = a.batch_size;
        t.seed = a.env.seed;
        t.max_batches = a.env.max_batches;
        cfg.finetune = Some(t);
    }
    let mut bar = progress::bar(0, "quantizing", a.json);
    let (q, s) = quantize(&graph, &splits, &cfg, a.env.device, &mut |e| match e {
        QuantizeEvent::Evaluated { stage, accuracy } => {
            let line = if a.json {
                jsonl::to_line(&json!({"stage": stage, "accuracy": accuracy})).unwrap_or_default()
            } else {
                format!("{stage:>10}: test top-1 {:.2}%", 100.0 * accuracy)
            };
            bar.suspend(|| println!("{line}"));
        }
        QuantizeEvent::Calibrated { sites, images } if !a.json => {
            bar.suspend(|| println!("calibrated {sites} activation sites on {images} images"))
        }
        QuantizeEvent::Finetune(Event::Start { batches_per_epoch, epochs, .. }) => {
            bar = progress::bar((*batches_per_epoch * *epochs) as u64, "finetune", a.json);
        }
        QuantizeEvent::Finetune(Event::Batch { epoch, loss, accuracy, .. }) => {
            bar.inc(1);
            bar.set_message(format!("finetune epoch {epoch} loss {loss:.3} acc {:.1}%", 100.0 * accuracy));
        }
        QuantizeEvent::Finetune(Event::Epoch(r)) if a.json => {
            bar.suspend(|| println!("{}", jsonl::to_line(r).unwrap_or_default()))
        }
        _ => {}
    })
    .context("quantizing")?;
    bar.finish_and_clear();

    let score_before = micronet(&graph, ScoreOptions::default())?;
    let score_after = micronet(&q, ScoreOptions::default())?;
    let path = out.join("quantized.safetensors");
    let mut facts = Facts {
        dataset: Some(kind.name().to_string()),
        accuracy: Some(s.final_accuracy()),
        relu_count: Some(masq_ir::report::report(&q)?.relu_count),
        ..Facts::default()
    };
    facts.other.insert("quantize_settings".into(), serde_json::to_value(&cfg)?);
    facts.other.insert("quantize_weights".into(), serde_json::to_value(&s.weights)?);
    facts.other.insert("quantize_activations".into(), serde_json::to_value(&s.activations)?);
    facts.other.insert("accuracy_float".into(), json!(s.accuracy_float));
    facts.set_normalisation(&norm);
    checkpoint::save_checkpoint(&path, &q, &facts).with_context(|| format!("writing {}", path.display()))?;

    if a.json {
        return jsonl::print(&json!({
            "model": graph.name,
            "dataset": kind.name(),
            "accuracy_float": s.accuracy_float,
            "accuracy_weights": s.accuracy_weights,
            "accuracy_quantized": s.accuracy_quantized,
            "accuracy_finetuned": s.accuracy_finetuned,
            "calib_images": s.calib_images,
            "test_images": s.test_images,
            "weights": s.weights,
            "activations": s.activations,
            "score_before": score_before,
            "score_after": score_after,
            "checkpoint": path,
        }));
    }
    println!(
        "{:<28} {:>5} {:>4} {:>10} {:>10} {:>5} {:>4} {:>10}",
        "layer", "w.b", "sf", "max|W|", "max err", "a.b", "sf", "max|x|"
    );
    for (w, x) in s.weights.iter().zip(&s.activations) {
        println!(
            "{:<28} {:>5} {:>4} {:>10.4} {:>10.2e} {:>5} {:>4} {:>10.4}",
            w.layer, w.bits, w.sf, w.max_abs, w.max_error, x.bits, x.sf, x.max_abs
        );
    }
    println!(
        "test top-1 ({} images): float {:.2}%, weights quantized {:.2}%, quantized {:.2}%{}",
        s.test_images,
        100.0 * s.accuracy_float,
        100.0 * s.accuracy_weights,
        100.0 * s.accuracy_quantized,
        s.accuracy_finetuned.map(|f| format!(", finetuned {:.2}%", 100.0 * f)).unwrap_or_default()
    );
    println!(
        "MicroNet score: {:.4} -> {:.4} (params {:.4} M -> {:.4} M, ops {:.2} M -> {:.2} M)",
        score_before.score,
        score_after.score,
        score_before.params / 1e6,
        score_after.params / 1e6,
        score_before.ops / 1e6,
        score_after.ops / 1e6
    );
    println!("wrote {}", path.display());
    Ok(())
}
