//! `masq load-weights`: a zoo model (or ONNX file) with weights from a safetensors file (e.g. a
//! PyTorch state dict), keys renamed by `--remap` rules, written as a masq checkpoint.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use masq_ir::checkpoint::{Facts, save_checkpoint};
use masq_ir::zoo::{self, KeyRemap};

/// Arguments of `masq load-weights`.
#[derive(Debug, clap::Args)]
pub struct LoadWeightsArgs {
    /// zoo:NAME[@HxW] (e.g. zoo:resnet20) or a .onnx file.
    #[arg(long)]
    pub model: String,
    /// A safetensors file of f32/f64 tensors (e.g. a PyTorch state dict; `module.` is stripped and
    /// `num_batches_tracked` ignored).
    #[arg(long)]
    pub weights: PathBuf,
    /// Rename keys: every occurrence of PATTERN becomes REPLACEMENT (`^PATTERN` only at the start;
    /// the replacement may be empty). Repeatable; applied in order after `module.` is stripped.
    #[arg(long, value_name = "PATTERN=REPLACEMENT")]
    pub remap: Vec<String>,
    /// Output classes of a zoo model.
    #[arg(long, default_value_t = 10)]
    pub num_classes: usize,
    /// The checkpoint to write (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object (checkpoint, model, tensors, params, relu_count).
    #[arg(long)]
    pub json: bool,
}

/// Parse `--remap` rules.
pub(super) fn parse_remaps(rules: &[String]) -> Result<Vec<KeyRemap>> {
    rules.iter().map(|r| KeyRemap::parse(r).with_context(|| format!("bad --remap {r:?}"))).collect()
}

pub fn run(a: LoadWeightsArgs) -> Result<()> {
    let rules = parse_remaps(&a.remap)?;
    if a.out.exists() && !a.force {
        bail!("{} exists (give --force to overwrite it)", a.out.display());
    }
    if a.num_classes == 0 {
        bail!("--num-classes must be positive");
    }
    let mut graph = if let Some(rest) = a.model.strip_prefix("zoo:") {
        let z = zoo::ZooSpec::parse(rest)?;
        let mut cfg = zoo::ZooConfig::new(&z.name);
        if let Some((h, w)) = z.input_hw {
            let c = zoo::MODELS.iter().find(|(m, _)| *m == z.name).map_or(3, |(_, (c, _, _))| *c);
            cfg.input = Some((c, h, w));
        }
        cfg.num_classes = a.num_classes;
        zoo::build_with(&cfg)?
    } else {
        masq_exporter::load_model(&a.model).with_context(|| format!("loading {}", a.model))?
    };
    let tensors = masq_ir::weights::read_safetensors(&a.weights)
        .with_context(|| format!("reading {}", a.weights.display()))?;
    zoo::apply_weights_remapped(&mut graph, &tensors, &rules)
        .with_context(|| format!("loading {} into {}", a.weights.display(), a.model))?;
    let report = masq_ir::report::report(&graph).with_context(|| format!("analysing {}", a.model))?;
    let mut facts = Facts { relu_count: Some(report.relu_count), ..Facts::default() };
    facts.other.insert("model".into(), serde_json::Value::from(a.model.clone()));
    facts.other.insert("weights".into(), serde_json::Value::from(a.weights.display().to_string()));
    if !a.remap.is_empty() {
        facts.other.insert("remap".into(), serde_json::Value::from(a.remap.clone()));
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    save_checkpoint(&a.out, &graph, &facts).with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        let v = serde_json::json!({
            "checkpoint": a.out,
            "model": a.model,
            "tensors": graph.initializers.len(),
            "params": report.params,
            "relu_count": report.relu_count,
        });
        println!("{v}");
    } else {
        println!(
            "{} with {} -> {}: {} tensors, {} parameters, {} ReLUs",
            a.model,
            a.weights.display(),
            a.out.display(),
            graph.initializers.len(),
            masq_ir::report::thousands(report.params),
            masq_ir::report::thousands(report.relu_count)
        );
    }
    Ok(())
}
