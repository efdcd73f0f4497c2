//! `masq estimate MODEL [--protocol P] [--network lan|wan|GBPS,RTT_MS] [--batch B] [--json]`:
//! what one inference would cost under a protocol, without running it.

use anyhow::{Context, bail};
use masq_mpc::cost::{Network, Protocol};
use masq_ir::report;
use masq_runtime::secure;

use super::units::{fmt_bytes, fmt_seconds};

/// Arguments of `masq estimate`.
#[derive(Debug, clap::Args)]
pub struct EstimateArgs {
    /// A `.onnx` file or `zoo:NAME[@HxW]`.
    pub model: String,
    /// masq (exact plan), crypten, cryptflow2-32, cryptflow2-64, delphi or fss (published costs).
    #[arg(long, default_value = "masq")]
    pub protocol: String,
    /// lan (3 Gbps, 0.3 ms), wan (400 Mbps, 40 ms) or GBPS,RTT_MS (e.g. 1,10).
    #[arg(long, default_value = "lan")]
    pub network: String,
    /// Images per inference.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let protocol: Protocol = args.protocol.parse().context("--protocol")?;
    let network: Network = args.network.parse().context("--network")?;
    if args.batch == 0 {
        bail!("--batch 0: must be at least 1");
    }
    let graph = masq_exporter::load_model(&args.model).with_context(|| format!("loading {}", args.model))?;
    if args.batch > 1 && !graph.supports_batch() {
        bail!("--batch {}: the model only runs at batch 1", args.batch);
    }
    let e = secure::estimate(&graph, protocol, &network, args.batch)
        .with_context(|| format!("estimating {} under {protocol}", args.model))?;
    if args.json {
        println!("{}", serde_json::to_string(&e).context("serialising the estimate")?);
        return Ok(());
    }
    println!("model {} under {} on {network}, batch {}", e.model, e.protocol, e.batch);
    if !e.layers.is_empty() {
        let w = e.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 40);
        println!(
            "{:<w$}  {:<18}  {:>10}  {:>10}  {:>10}  {:>6}  {:>10}",
            "name", "op", "ReLUs", "P0->P1", "P1->P0", "rounds", "offline"
        );
        for l in &e.layers {
            println!(
                "{:<w$}  {:<18}  {:>10}  {:>10}  {:>10}  {:>6}  {:>10}",
                l.name,
                l.op,
                report::thousands(l.per_image.relus),
                fmt_bytes(l.cost.p0_to_p1),
                fmt_bytes(l.cost.p1_to_p0),
                l.cost.rounds,
                fmt_bytes(l.cost.offline_bytes())
            );
        }
    }
    println!(
        "total: ReLUs {} per image ({} comparisons), online {} (busier direction {}), {} rounds, offline {}",
        report::thousands(e.per_image.relu_count),
        report::thousands(e.per_image.comparisons),
        fmt_bytes(e.online_bytes as u64),
        fmt_bytes(e.max_direction_bytes as u64),
        e.rounds,
        e.offline_bytes.map(|b| fmt_bytes(b as u64)).unwrap_or_else(|| "not published".into())
    );
    println!("estimated communication time: {}  ({}, compute not included)", fmt_seconds(e.est_seconds), e.formula);
    Ok(())
}
