//! `masq inspect MODEL [--json]`: layers, parameters, MACs and ReLU counts of a model.

use anyhow::Context;
use masq_exporter::ModelSpec;

use super::common::{json, model};

/// Arguments of `masq inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// zoo:NAME[@HxW] (e.g. zoo:wrn22_8@64x64), a .onnx file, a masq checkpoint (.safetensors) or an
    /// artifact directory.
    #[arg(value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// Print JSON Lines instead of a table; the last line is the result (relu_count, params, macs,
    /// layers, ...).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let graph = model::load_graph(&args.model)?;
    let report = masq_ir::report::report(&graph).with_context(|| format!("analysing {}", args.model))?;
    if args.json {
        json::print(&report)?;
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}
