//! `masq inspect MODEL [--score micronet [--assume-sparsity S]] [--json]`: layers, parameters,
//! MACs and ReLU counts of a model, and optionally the MicroNet challenge's storage/operation
//! score (docs/ALGORITHMS.md §7, `masq_ir::score`).

use anyhow::Context;
use masq_exporter::ModelSpec;
use masq_ir::score::{MicronetScore, ScoreOptions, micronet};

use super::common::{json, model};

/// A score `masq inspect` can add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreArg {
    /// MicroNet challenge (CIFAR-100 track): storage in 32-bit units and operations, each
    /// normalised by WideResNet-28-10 (36.5 M parameters, 10.49 B operations).
    Micronet,
}

/// Arguments of `masq inspect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  masq inspect zoo:resnet20\n  \
    masq inspect runs/q8/quantized.safetensors --score micronet --assume-sparsity 0.5 --json")]
pub struct InspectArgs {
    /// zoo:NAME[@HxW] (e.g. zoo:wrn22_8@64x64), a .onnx file, a masq checkpoint (.safetensors) or an
    /// artifact directory.
    #[arg(value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// Also compute this score (weights at their quantized widths, measured sparsity).
    #[arg(long, value_enum, ignore_case = true)]
    pub score: Option<ScoreArg>,
    /// micronet: count operations at this uniform weight sparsity instead of each layer's
    /// measured one (the published example assumes 0.5).
    #[arg(long, value_name = "S", requires = "score")]
    pub assume_sparsity: Option<f64>,
    /// Print JSON Lines instead of a table; the last line is the result (relu_count, params, macs,
    /// layers, ..., and `micronet` with --score micronet).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let graph = model::load_graph(&args.model)?;
    let report = masq_ir::report::report(&graph).with_context(|| format!("analysing {}", args.model))?;
    let score = match args.score {
        Some(ScoreArg::Micronet) => Some(
            micronet(&graph, ScoreOptions { assumed_sparsity: args.assume_sparsity })
                .with_context(|| format!("scoring {}", args.model))?,
        ),
        None => None,
    };
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let (Some(s), Some(obj)) = (&score, v.as_object_mut()) {
            obj.insert("micronet".into(), serde_json::to_value(s)?);
        }
        json::print(&v)?;
    } else {
        print!("{}", report.to_table());
        if let Some(s) = &score {
            print!("{}", score_table(s));
        }
    }
    Ok(())
}

fn score_table(s: &MicronetScore) -> String {
    use std::fmt::Write;
    let mut t = String::from("\nMicroNet score (CIFAR-100 track)\n");
    let _ = writeln!(
        t,
        "{:<28} {:>10} {:>10} {:>5} {:>5} {:>8} {:>11} {:>12}",
        "layer", "weights", "non-zero", "w.b", "a.b", "sparsity", "params", "ops"
    );
    for l in &s.layers {
        let _ = writeln!(
            t,
            "{:<28} {:>10} {:>10} {:>5} {:>5} {:>7.1}% {:>11.0} {:>12.0}",
            l.layer,
            l.weights,
            l.nonzeros,
            l.weight_bits,
            l.act_bits,
            100.0 * l.sparsity,
            l.params,
            l.ops
        );
    }
    let _ = writeln!(t, "mask bits {} ({:.0} units)", s.mask_bits, s.mask_bits as f64 / 32.0);
    let _ = writeln!(
        t,
        "params {:.4} M / {:.1} M + ops {:.2} M ({:.2} M mults, {:.2} M adds) / {:.2} B = score {:.4}",
        s.params / 1e6,
        s.reference_params / 1e6,
        s.ops / 1e6,
        s.mults / 1e6,
        s.adds / 1e6,
        s.reference_ops / 1e9,
        s.score
    );
    if let Some(a) = s.options.assumed_sparsity {
        let _ = writeln!(t, "operations at an assumed uniform weight sparsity of {a}");
    }
    t
}
