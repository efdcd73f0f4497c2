//! `masq eval`: top-1 accuracy of a checkpoint (or a model with given weights) on a test split.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use masq_ir::checkpoint;
use masq_trainer::data::{DatasetKind, Normalisation, Split, load_split};
use masq_trainer::device::{device_name, parse_device};
use masq_trainer::model::TchModel;
use masq_trainer::train::{check_fit, evaluate};

/// Arguments of `masq eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A masq checkpoint (.safetensors written by `masq train`).
    #[arg(long, conflicts_with = "model")]
    pub from: Option<PathBuf>,
    /// Instead of --from: zoo:NAME or a .onnx file ...
    #[arg(long)]
    pub model: Option<String>,
    /// ... with weights from a safetensors file (e.g. a PyTorch state dict; `module.` is stripped).
    #[arg(long, requires = "model")]
    pub weights: Option<PathBuf>,
    /// Rename the keys of --weights (see `masq load-weights --help`); repeatable.
    #[arg(long, requires = "weights", value_name = "PATTERN=REPLACEMENT")]
    pub remap: Vec<String>,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder | synthetic (tiny-imagenet
    /// and folder take @SIZE or @HxW to resize every image).
    #[arg(long)]
    pub dataset: String,
    /// Directory of the dataset's files (the test split is used).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Use only the first N test images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// auto | cpu | cuda | cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print one JSON object (accuracy as a fraction, loss, images, relu_count).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let kind = DatasetKind::parse(&a.dataset)?;
    let device = parse_device(&a.device)?;
    let mut test = load_split(kind, a.data.as_deref(), Split::Test)
        .with_context(|| format!("loading the {} test split", kind.name()))?;
    if let Some(n) = a.limit {
        test.truncate(n);
    }
    let mut norm = kind.default_norm();
    let (graph, label) = match (&a.from, &a.model) {
        (Some(path), None) => {
            let (g, facts) =
                checkpoint::load_checkpoint(path).with_context(|| format!("loading checkpoint {}", path.display()))?;
            if let Some(n) =
                facts.other.get("normalization").and_then(|v| serde_json::from_value::<Normalisation>(v.clone()).ok())
            {
                norm = n;
            }
            (g, path.display().to_string())
        }
        (None, Some(spec)) => {
            let mut g = if let Some(rest) = spec.strip_prefix("zoo:") {
                let z = masq_ir::zoo::ZooSpec::parse(rest)?;
                let mut cfg = masq_ir::zoo::ZooConfig::new(&z.name);
                let [c, h, w] = test.shape;
                cfg.input = Some((c, z.input_hw.map_or(h, |x| x.0), z.input_hw.map_or(w, |x| x.1)));
                cfg.num_classes = test.classes;
                masq_ir::zoo::build_with(&cfg)?
            } else {
                masq_exporter::load_model(spec).with_context(|| format!("loading {spec}"))?
            };
            if let Some(w) = &a.weights {
                let t =
                    masq_ir::weights::read_safetensors(w).with_context(|| format!("reading {}", w.display()))?;
                let rules = super::load_weights::parse_remaps(&a.remap)?;
                masq_ir::zoo::apply_weights_remapped(&mut g, &t, &rules)
                    .with_context(|| format!("applying {}", w.display()))?;
            }
            (g, spec.clone())
        }
        _ => bail!("give --from CHECKPOINT or --model MODEL [--weights FILE]"),
    };
    check_fit(&graph, &test, kind.name())?;
    let model = TchModel::from_graph(&graph, device)?;
    let relu_count = model.relu_count()?;
    let r = evaluate(&model, &test, &norm, a.batch_size.max(1)).context("evaluating")?;
    if a.json {
        let v = serde_json::json!({
            "accuracy": r.accuracy,
            "loss": r.loss,
            "images": r.images,
            "relu_count": relu_count,
            "model": label,
            "dataset": kind.name(),
            "device": device_name(device),
        });
        println!("{v}");
    } else {
        println!(
            "{label} on {} ({} images): top-1 {:.2}%, loss {:.4}, {relu_count} ReLUs",
            kind.name(),
            r.images,
            100.0 * r.accuracy,
            r.loss
        );
    }
    Ok(())
}
