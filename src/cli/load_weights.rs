//! `masq load-weights`: a zoo model (or ONNX file) with weights from a safetensors file (e.g. a
//! PyTorch state dict), keys renamed by `--remap` rules, written as a masq checkpoint.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use masq_exporter::ModelSpec;
use masq_ir::checkpoint::{Facts, save_checkpoint};
use masq_ir::zoo::{self, KeyRemap};

use super::common::{args, json, model};

/// Arguments of `masq load-weights`.
#[derive(Debug, clap::Args)]
pub struct LoadWeightsArgs {
    /// zoo:NAME[@HxW] (e.g. zoo:resnet20; built with --num-classes), a .onnx file, a masq checkpoint
    /// (.safetensors) or an artifact directory.
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// A safetensors file of f32/f64 tensors (e.g. a PyTorch state dict; `module.` is stripped and
    /// `num_batches_tracked` ignored).
    #[arg(long)]
    pub weights: PathBuf,
    /// Rename keys: every occurrence of PATTERN becomes REPLACEMENT (`^PATTERN` only at the start;
    /// the replacement may be empty). Repeatable; applied in order after `module.` is stripped.
    #[arg(long, value_name = "PATTERN=REPLACEMENT", value_parser = args::key_remap)]
    pub remap: Vec<KeyRemap>,
    /// Output classes of a zoo model.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub num_classes: usize,
    /// The checkpoint to write (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print JSON Lines instead of text; the last line is the result (checkpoint, model, tensors,
    /// params, relu_count).
    #[arg(long)]
    pub json: bool,
}

/// A `--remap` rule as it was given.
fn rule_text(r: &KeyRemap) -> String {
    format!("{}{}={}", if r.prefix { "^" } else { "" }, r.pattern, r.replacement)
}

pub fn run(a: LoadWeightsArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        bail!("{} exists (give --force to overwrite it)", a.out.display());
    }
    let mut graph = match &a.model {
        ModelSpec::Zoo(z) => {
            let mut cfg = model::zoo_config(z);
            cfg.num_classes = a.num_classes;
            zoo::build_with(&cfg).with_context(|| format!("building {}", a.model))?
        }
        spec => model::load_graph(spec)?,
    };
    model::apply_weights(&mut graph, &a.weights, &a.remap)
        .with_context(|| format!("loading weights into {}", a.model))?;
    let report = masq_ir::report::report(&graph).with_context(|| format!("analysing {}", a.model))?;
    let mut facts = Facts { relu_count: Some(report.relu_count), ..Facts::default() };
    facts.other.insert("model".into(), serde_json::Value::from(a.model.to_string()));
    facts.other.insert("weights".into(), serde_json::Value::from(a.weights.display().to_string()));
    if !a.remap.is_empty() {
        facts.other.insert("remap".into(), serde_json::Value::from(a.remap.iter().map(rule_text).collect::<Vec<_>>()));
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    save_checkpoint(&a.out, &graph, &facts).with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        json::print(&serde_json::json!({
            "checkpoint": a.out,
            "model": a.model.to_string(),
            "tensors": graph.initializers.len(),
            "params": report.params,
            "relu_count": report.relu_count,
        }))?;
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
