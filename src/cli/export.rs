//! `masq export --from MODEL --out DIR`: write a deployable artifact (model.onnx, model.safetensors,
//! manifest.json).

use std::path::PathBuf;

use anyhow::Context;
use masq_exporter::{ExportOptions, ModelSpec, RandomMasks, ReplacementKind};
use masq_ir::facts::Normalisation;

use super::common::{args, json, model};

/// Arguments of `masq export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The model: zoo:NAME[@HxW], a .onnx file, a masq checkpoint (.safetensors; its dataset,
    /// accuracy and normalisation go into the manifest) or an artifact directory.
    #[arg(long = "from", value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub from: ModelSpec,
    /// Weights from a safetensors file (e.g. a PyTorch state dict; `module.` is stripped), such as
    /// the pretrained akamaster ResNets for zoo:resnet20.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// The artifact directory to create (written atomically).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// ONNX opset of the default domain (13..=21).
    #[arg(long, default_value_t = 17)]
    pub opset: i64,
    /// Keep BatchNormalization nodes instead of folding them into the preceding convolution.
    #[arg(long)]
    pub no_fold_bn: bool,
    /// Replace DIR if it exists (only a masq artifact or an empty directory is replaced).
    #[arg(long)]
    pub force: bool,
    /// Testing/demo: replace every ReLU by a masked activation with a random mask keeping this
    /// fraction (0..=1) of the ReLUs.
    #[arg(long, value_name = "DENSITY")]
    pub random_masks: Option<f64>,
    /// With --random-masks: what replaces a removed ReLU: identity, poly1 (c1·x + c0) or poly2
    /// (c2·x² + c1·x + c0).
    #[arg(long, default_value = "identity", requires = "random_masks",
          value_parser = args::one_of::<ReplacementKind>(["identity", "poly1", "poly2"]))]
    pub replacement: ReplacementKind,
    /// With --random-masks: seed of the masks and coefficients.
    #[arg(long, default_value_t = 0, requires = "random_masks")]
    pub seed: u64,
    /// Architecture name for the manifest (default: the zoo name or the graph's name).
    #[arg(long)]
    pub arch: Option<String>,
    /// Dataset name for the manifest (default: what the model records, e.g. cifar10 for most zoo
    /// models).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Class names, comma-separated, one per output logit.
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Per-channel input mean, comma-separated (with --std).
    #[arg(long, value_delimiter = ',', requires = "std", allow_hyphen_values = true)]
    pub mean: Option<Vec<f32>>,
    /// Per-channel input standard deviation, comma-separated (with --mean).
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Option<Vec<f32>>,
    /// Print JSON Lines instead of text; the last line is the result (out_dir, relu_count, sites,
    /// files with sha256, ...).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let mut loaded = model::load(&args.from)?;
    if let Some(w) = &args.weights {
        model::apply_weights(&mut loaded.graph, w, &[])?;
    }
    let mut facts = model::export_facts(&args.from, &loaded);
    let mut graph = loaded.graph;
    if let Some(a) = args.arch {
        facts.architecture = a;
    }
    if let Some(d) = args.dataset {
        facts.dataset = Some(d);
    }
    if let Some(c) = args.classes {
        facts.classes = c;
    }
    if let (Some(mean), Some(std)) = (args.mean, args.std) {
        facts.normalisation = Some(Normalisation { mean, std });
    }
    if let Some(density) = args.random_masks {
        let cfg = RandomMasks { density, replacement: args.replacement, seed: args.seed };
        masq_exporter::attach_random_masks(&mut graph, &cfg).context("attaching random masks")?;
    }
    let opts = ExportOptions { opset: args.opset, fold_bn: !args.no_fold_bn, force: args.force };
    let summary = masq_exporter::export(&graph, &facts, &args.out, &opts)
        .with_context(|| format!("exporting {} to {}", args.from, args.out.display()))?;
    if args.json {
        json::print(&serde_json::json!({
            "out_dir": summary.out_dir,
            "relu_count": summary.relu_count,
            "sites": summary.sites,
            "bn_folded": summary.bn_folded,
            "opset": opts.opset,
            "files": summary.files,
        }))?;
    } else {
        println!(
            "exported {} -> {}: {} ReLUs ({} masked sites), opset {}, {} BatchNorm folded",
            args.from,
            summary.out_dir.display(),
            masq_ir::report::thousands(summary.relu_count),
            summary.sites,
            opts.opset,
            summary.bn_folded
        );
        for f in &summary.files {
            println!("  {:<18} {:>12} bytes  sha256 {}", f.name, f.bytes, f.sha256);
        }
    }
    Ok(())
}
