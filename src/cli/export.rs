//! `masq export --from MODEL --out DIR`: write a deployable artifact (model.onnx, model.safetensors,
//! manifest.json).

use std::path::PathBuf;

use anyhow::Context;
use masq_exporter::{ExportFacts, ExportOptions, RandomMasks, ReplacementKind};
use masq_exporter::artifact::Normalisation;

/// Arguments of `masq export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The model: a `.onnx` file, `zoo:NAME[@HxW]`, or a trainer checkpoint (`.safetensors`).
    #[arg(long = "from", value_name = "MODEL")]
    pub from: String,
    /// Weights for a zoo model from a safetensors file (e.g. a PyTorch state dict; `module.` is
    /// stripped), such as the pretrained akamaster ResNets.
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
    /// With --random-masks: what replaces a removed ReLU: identity, poly1 (c1·x + c0) or poly2.
    #[arg(long, default_value = "identity", requires = "random_masks")]
    pub replacement: String,
    /// With --random-masks: seed of the masks and coefficients.
    #[arg(long, default_value_t = 0, requires = "random_masks")]
    pub seed: u64,
    /// Architecture name for the manifest (default: the zoo name or the graph's name).
    #[arg(long)]
    pub arch: Option<String>,
    /// Dataset name for the manifest.
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
    /// Print one JSON object (out_dir, relu_count, files with sha256, ...) instead of text.
    #[arg(long)]
    pub json: bool,
}

const CIFAR10: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Facts the zoo models come with (the reference implementations' datasets and normalisation).
fn zoo_facts(name: &str) -> ExportFacts {
    let mut f = ExportFacts::new(name);
    if name == "mnist_cnn" {
        f.dataset = Some("mnist".into());
        f.classes = (0..10).map(|d| d.to_string()).collect();
        f.normalisation = Some(Normalisation { mean: vec![0.1307], std: vec![0.3081] });
    } else {
        f.dataset = Some("cifar10".into());
        f.classes = CIFAR10.iter().map(|s| s.to_string()).collect();
        // The akamaster ResNet-20..56 checkpoints were trained with ImageNet statistics.
        let (mean, std) = if matches!(name, "resnet20" | "resnet32" | "resnet44" | "resnet56") {
            (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])
        } else {
            (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616])
        };
        f.normalisation = Some(Normalisation { mean, std });
    }
    f
}

/// Facts a trainer checkpoint records: dataset, accuracy and the normalisation it trained with.
pub(crate) fn checkpoint_facts(g: &masq_ir::Graph, f: &masq_ir::checkpoint::Facts) -> ExportFacts {
    let base = g.name.strip_prefix("zoo:").unwrap_or(&g.name).to_string();
    let mut facts = if masq_ir::zoo::ZooSpec::parse(&format!("zoo:{base}")).is_ok() {
        zoo_facts(&base)
    } else {
        ExportFacts::new(g.name.clone())
    };
    facts.dataset = f.dataset.clone().or(facts.dataset);
    facts.accuracy = f.accuracy;
    if let Some(d) = f.dataset.as_deref() {
        facts.classes = match d {
            "cifar10" => CIFAR10.iter().map(|s| s.to_string()).collect(),
            "mnist" | "fashion-mnist" | "synthetic" => (0..10).map(|d| d.to_string()).collect(),
            _ => Vec::new(),
        };
    }
    if let Some(n) = f.other.get("normalization") {
        let get = |k: &str| n.get(k).and_then(|v| serde_json::from_value::<Vec<f32>>(v.clone()).ok());
        if let (Some(mut mean), Some(mut std)) = (get("mean"), get("std")) {
            // One value for every channel: spell it out per input channel.
            let channels = g.data_inputs().next().and_then(|i| i.shape_at(1).get(1).copied()).unwrap_or(1);
            if mean.len() == 1 && std.len() == 1 && channels > 1 {
                mean = vec![mean[0]; channels];
                std = vec![std[0]; channels];
            }
            facts.normalisation = Some(Normalisation { mean, std });
        }
    }
    facts
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let is_ckpt = args.from.to_ascii_lowercase().ends_with(".safetensors");
    let (mut graph, mut facts) = if is_ckpt {
        let (g, f) = masq_ir::checkpoint::load_checkpoint(std::path::Path::new(&args.from))
            .with_context(|| format!("loading checkpoint {}", args.from))?;
        let facts = checkpoint_facts(&g, &f);
        (g, facts)
    } else {
        let mut g = masq_exporter::load_model(&args.from).with_context(|| format!("loading {}", args.from))?;
        if let Some(w) = &args.weights {
            anyhow::ensure!(args.from.starts_with("zoo:"), "--weights applies to zoo:NAME models, not {}", args.from);
            let t = masq_ir::weights::read_safetensors(w).with_context(|| format!("reading {}", w.display()))?;
            masq_ir::zoo::apply_weights(&mut g, &t).with_context(|| format!("applying {}", w.display()))?;
        }
        let facts = match masq_ir::zoo::ZooSpec::parse(&args.from) {
            Ok(z) if args.from.starts_with("zoo:") => zoo_facts(&z.name),
            _ => ExportFacts::new(g.name.clone()),
        };
        (g, facts)
    };
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
        let replacement: ReplacementKind =
            args.replacement.parse().map_err(|e: String| anyhow::anyhow!(e)).context("bad --replacement")?;
        let cfg = RandomMasks { density, replacement, seed: args.seed };
        masq_exporter::attach_random_masks(&mut graph, &cfg).context("attaching random masks")?;
    }
    let opts = ExportOptions { opset: args.opset, fold_bn: !args.no_fold_bn, force: args.force };
    let summary = masq_exporter::export(&graph, &facts, &args.out, &opts)
        .with_context(|| format!("exporting {} to {}", args.from, args.out.display()))?;
    if args.json {
        let v = serde_json::json!({
            "out_dir": summary.out_dir,
            "relu_count": summary.relu_count,
            "sites": summary.sites,
            "bn_folded": summary.bn_folded,
            "opset": opts.opset,
            "files": summary.files,
        });
        println!("{}", serde_json::to_string(&v).context("serialising the summary")?);
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
