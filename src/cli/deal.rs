//! `masq deal --model MODEL --count K --out DIR [--batch B] [--frac-bits F] [--bits 64] [--seed S]
//! [--force] [--json]`: the trusted dealer's offline phase for K inferences, written as
//! `DIR/p0.bin` (server) and `DIR/p1.bin` (client).
//!
//! The dealer's randomness is a 256-bit key from the operating system unless `--seed` is given (for
//! reproducible tests: two deals with one seed hold the same material, and using both would
//! reuse it). An existing pair in DIR is replaced only with `--force`, and as a pair: both files
//! are written to temporary names and synced, a journal in DIR commits their two renames, and a
//! deal killed at any point leaves the complete old pair (killed before the commit) or the
//! complete new one (after it) to the next `masq serve`, `masq query` or `masq deal` that opens
//! DIR, which finishes the renames or removes the leftovers (`masq_deploy::file::journal`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use masq_exporter::ModelSpec;
use masq_runtime::secure::SecureConfig;

use super::common::units::{fmt_bytes, fmt_seconds};
use super::common::{json, model};

/// Arguments of `masq deal`.
#[derive(Debug, clap::Args)]
pub struct DealArgs {
    /// The model: zoo:NAME[@HxW], a .onnx file, a masq checkpoint (.safetensors) or an artifact
    /// directory (the server must serve the same model).
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// Inferences to deal (each one is used once, then marked spent).
    #[arg(long, value_name = "K")]
    pub count: u64,
    /// Directory for p0.bin and p1.bin (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Images per inference.
    #[arg(long, default_value_t = 1, value_name = "B")]
    pub batch: usize,
    /// Fractional bits of the fixed-point encoding, 1 to 40.
    #[arg(long, default_value_t = 16, value_name = "F", value_parser = clap::value_parser!(u32).range(1..=40))]
    pub frac_bits: u32,
    /// Bit width of secure comparisons (64: exact for every ring element).
    #[arg(long, default_value_t = 64)]
    pub bits: u32,
    /// Comparison mode: one-round or compact (see `masq run --help`); server and client must
    /// run the mode their files were dealt for.
    #[arg(long, default_value = "one-round", value_name = "one-round|compact")]
    pub cmp_mode: masq_mpc::dealer::CmpMode,
    /// Seed of the dealer's randomness, for reproducible deals only (tests): it determines both
    /// parties' material, so two deals with one seed hold the same material. Default: fresh
    /// randomness from the operating system for every deal.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Replace a pair already in DIR (its unspent inferences are lost).
    #[arg(long)]
    pub force: bool,
    /// Print JSON Lines instead of text; the last line is the result (p0_path, p1_path, model_hash,
    /// bytes, ...).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DealArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.count > masq_deploy::file::MAX_COUNT {
        bail!("--count {}: must be between 1 and {}", args.count, masq_deploy::file::MAX_COUNT);
    }
    if args.batch == 0 {
        bail!("--batch 0: must be at least 1");
    }
    let graph = model::load_graph(&args.model)?;
    if let Some(f) = crate::cli::common::batch::fixed(&graph)
        && f.batch != args.batch
    {
        bail!("--batch {}: {}; give --batch {}", args.batch, f.describe(&args.model), f.batch);
    }
    refuse_overwrite(&args)?;
    let cfg = SecureConfig {
        frac_bits: args.frac_bits,
        seed: args.seed.unwrap_or(0),
        cmp_bits: args.bits,
        cmp_mode: args.cmp_mode,
        ..SecureConfig::default()
    };
    let s = match args.seed {
        Some(_) => masq_deploy::deal(&graph, &cfg, args.batch, args.count, &args.out),
        None => masq_deploy::deal_keyed(&graph, &cfg, args.batch, args.count, &args.out, rand::random()),
    }
    .with_context(|| format!("dealing {} inferences of {}", args.count, args.model))?;
    if args.json {
        return json::print(&s);
    }
    println!("dealt {} inference(s) of {} (batch {}) in {}", s.count, args.model, s.batch, fmt_seconds(s.seconds));
    println!("model hash   {}", s.model_hash);
    println!("server file  {}  {} ({} B)", s.p0_path.display(), fmt_bytes(s.p0_bytes), s.p0_bytes);
    println!("client file  {}  {} ({} B)", s.p1_path.display(), fmt_bytes(s.p1_bytes), s.p1_bytes);
    println!(
        "cost model: offline {} per inference + {} model load (seed-compressed, both parties); dealt {} in total",
        fmt_bytes(s.predicted_offline_bytes),
        fmt_bytes(s.predicted_setup_offline_bytes),
        fmt_bytes(s.dealt_offline_bytes)
    );
    Ok(())
}

/// Refuses to replace a pair in `--out` without `--force`, saying what would be lost.
fn refuse_overwrite(args: &DealArgs) -> anyhow::Result<()> {
    if args.force {
        return Ok(());
    }
    for name in ["p0.bin", "p1.bin"] {
        let path = args.out.join(name);
        if !path.exists() {
            continue;
        }
        let left = match masq_deploy::file::read_spent(&path) {
            Ok(spent) => format!("{} of {} inferences unspent", spent.iter().filter(|s| !**s).count(), spent.len()),
            Err(e) => format!("unreadable: {e}"),
        };
        bail!("{} exists ({left}); give --force to replace it, or another --out", path.display());
    }
    Ok(())
}
