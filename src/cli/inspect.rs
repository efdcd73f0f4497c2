//! `masq inspect MODEL [--json]`: layers, parameters, MACs and ReLU counts of a model.

use anyhow::Context;

/// Arguments of `masq inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A `.onnx` file or `zoo:NAME[@HxW]` (e.g. `zoo:wrn22_8@64x64`).
    pub model: String,
    /// Print one JSON object (keys include relu_count, params, macs, layers) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let graph = masq_exporter::load_model(&args.model).with_context(|| format!("loading {}", args.model))?;
    let report = masq_ir::report::report(&graph).with_context(|| format!("analysing {}", args.model))?;
    if args.json {
        println!("{}", serde_json::to_string(&report).context("serialising the report")?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}
