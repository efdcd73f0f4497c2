//! `masq estimate MODEL [--protocol P] [--network lan|wan|GBPS,RTT_MS] [--batch B] [--json]`:
//! what one inference would cost under a protocol, without running it.

use anyhow::{Context, bail};
use masq_exporter::ModelSpec;
use masq_ir::report;
use masq_mpc::cost::{Network, Protocol};
use masq_mpc::dealer::CmpMode;
use masq_runtime::secure;

use super::common::units::{fmt_bytes, fmt_seconds};
use super::common::{args, batch as fixed_batch, json, model};

/// Arguments of `masq estimate`.
#[derive(Debug, clap::Args)]
pub struct EstimateArgs {
    /// zoo:NAME[@HxW], a .onnx file, a masq checkpoint (.safetensors) or an artifact directory.
    #[arg(value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// Whose costs: masq's (its exact plan) or a published protocol's.
    #[arg(long, default_value = "masq", ignore_case = true,
          value_parser = args::one_of::<Protocol>(Protocol::ALL.map(Protocol::name)))]
    pub protocol: Protocol,
    /// lan (3 Gbps, 0.3 ms RTT), wan (400 Mbps, 40 ms RTT) or GBPS,RTT_MS (e.g. 1,10).
    #[arg(long, default_value = "lan", value_name = "lan|wan|GBPS,RTT_MS",
          value_parser = clap::value_parser!(Network))]
    pub network: Network,
    /// Images per inference (default 1; for a model with a fixed batch that cannot be generalised,
    /// that batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// masq's comparison mode: one-round (1 round per comparison layer, large keys) or compact
    /// (2 rounds, keys about half the size); the summary compares both either way.
    #[arg(long, default_value = "one-round", value_name = "one-round|compact")]
    pub cmp_mode: CmpMode,
    /// Width of secure comparisons in bits where the model has no calibrated width.
    #[arg(long, default_value_t = 64, value_name = "K", value_parser = clap::value_parser!(u32).range(2..=64))]
    pub bits: u32,
    /// Print JSON Lines instead of a table; the last line is the result (relu_count, online_bytes,
    /// rounds, est_seconds, layers, ...).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let (protocol, network) = (args.protocol, args.network);
    if args.batch == Some(0) {
        bail!("--batch 0: must be at least 1");
    }
    let graph = model::load_graph(&args.model)?;
    // A model fixed at a batch B (it mixes its images) is costed as what it is: one inference of
    // B images, whose figures "per image" cover all B of them.
    let fixed = fixed_batch::fixed(&graph);
    if let (Some(f), Some(b)) = (&fixed, args.batch)
        && b != f.batch
    {
        bail!("--batch {b}: {}; give --batch {} or leave it out", f.describe(&args.model), f.batch);
    }
    let batch = if fixed.is_some() { 1 } else { args.batch.unwrap_or(1) };
    let cfg = secure::SecureConfig { cmp_mode: args.cmp_mode, cmp_bits: args.bits, ..Default::default() };
    let mut e = secure::estimate(&graph, protocol, &network, batch, &cfg)
        .with_context(|| format!("estimating {} under {protocol}", args.model))?;
    let note = fixed.as_ref().map(|f| {
        format!(
            "note: {}; one inference is all {} images, and the figures \"per image\" below are for all of them",
            f.describe(&args.model),
            f.batch
        )
    });
    if let Some(f) = &fixed {
        e.batch = f.batch;
    }
    if args.json {
        let mut v = serde_json::to_value(&e)?;
        if let (Some(f), Some(o)) = (&fixed, v.as_object_mut()) {
            o.insert("fixed_batch".into(), f.batch.into());
        }
        return json::print(&v);
    }
    println!("model {} under {} on {network}, batch {}", e.model, e.protocol, e.batch);
    if let Some(n) = &note {
        println!("{n}");
    }
    if !e.layers.is_empty() {
        let w = e.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 40);
        println!(
            "{:<w$}  {:<18}  {:>10}  {:>4}  {:>10}  {:>10}  {:>6}  {:>10}",
            "name", "op", "ReLUs", "bits", "P0->P1", "P1->P0", "rounds", "offline"
        );
        for l in &e.layers {
            println!(
                "{:<w$}  {:<18}  {:>10}  {:>4}  {:>10}  {:>10}  {:>6}  {:>10}",
                l.name,
                l.op,
                report::thousands(l.per_image.relus),
                if l.per_image.comparisons() > 0 { l.cmp_bits.to_string() } else { "-".into() },
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
    for m in &e.modes {
        println!(
            "  {:<10} online {:>10}, {:>4} rounds, est. {:>9}; dealer {:>10} ({} to transfer)",
            m.mode.name(),
            fmt_bytes(m.online_bytes),
            m.rounds,
            fmt_seconds(m.est_seconds),
            fmt_bytes(m.offline_bytes),
            fmt_seconds(m.offline_transfer_seconds)
        );
    }
    if let Some(a) = &e.advice {
        println!("  {a}");
    }
    Ok(())
}
