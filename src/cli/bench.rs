//! `masq bench mpc`: measure one 2PC protocol (both parties in one process).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use masq_mpc::FixedPoint;
use masq_mpc::bench::{self, BenchConfig, BenchOp, BenchReport, Layout};
use masq_mpc::dealer::CmpMode;

use super::common::units::{fmt_bytes, fmt_seconds};
use super::common::{args, json, progress};

/// Benchmarks.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Debug, Subcommand)]
enum BenchTarget {
    /// Measure one protocol of the 2PC engine: both parties in one process (one thread each,
    /// in-memory transport), random fixed-point data. Prints online bytes per direction,
    /// rounds, offline bytes, median wall time, throughput, LAN/WAN estimates and the max
    /// abs error against plaintext.
    Mpc(MpcArgs),
}

#[derive(Debug, Args)]
struct MpcArgs {
    /// Protocol: relu | square | mul (N elements), matmul (N×N by N×N), conv (3×3, 64→64
    /// channels, padding 1, on 1×64×N×N), maxpool | avgpool (3×3, stride 2, padding 1, on 1×64×N×N).
    #[arg(long, default_value = "relu", ignore_case = true,
          value_parser = args::one_of::<BenchOp>(BenchOp::ALL.map(BenchOp::name)))]
    op: BenchOp,
    /// Size (see --op). Default: 100000 for element-wise ops, 256 for matmul, 32 for conv and pools.
    #[arg(long)]
    n: Option<usize>,
    /// Repetitions; the median wall time is reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Fixed-point fractional bits.
    #[arg(long, default_value_t = FixedPoint::DEFAULT_FRAC_BITS)]
    frac_bits: u32,
    /// Comparison width in bits for relu/maxpool (64 is exact for every value; fewer bits are
    /// exact for |x| < 2^(bits-1) and make the dealer's keys smaller and evaluation faster).
    #[arg(long, default_value_t = bench::DEFAULT_BITS)]
    bits: u32,
    /// Comparison mode for relu/maxpool: one-round (1 round, 2,048-byte keys at 64 bits) or
    /// compact (2 rounds, 935-byte keys).
    #[arg(long, default_value = "one-round", value_name = "one-round|compact")]
    cmp_mode: CmpMode,
    /// Threads each party's comparison evaluation uses. With --layout shared both parties run
    /// on this machine at once, so more threads than cores/2 only measure oversubscription.
    /// Default: 1 (shared), all cores (own-cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// Where the parties compute: shared (both at once on this machine's cores, the
    /// single-process simulation) or own-cores (each party alone with every core, as on a
    /// machine of its own: a recorded run gives each party's incoming messages, then each runs
    /// again by itself against them and must send the same messages; online = the slower party).
    #[arg(long, default_value = "shared", value_name = "shared|own-cores")]
    layout: Layout,
    /// Seed of the dealer and the random data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON Lines instead of a table; the last line is the result (online bytes per
    /// direction, rounds, offline bytes, seconds, estimates, max_abs_error, ...).
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.target {
        BenchTarget::Mpc(a) => mpc(a),
    }
}

fn mpc(a: MpcArgs) -> Result<()> {
    let op = a.op;
    let cfg = BenchConfig {
        op,
        n: a.n.unwrap_or(op.default_n()),
        reps: a.reps,
        fp: FixedPoint::new(a.frac_bits).context("bad --frac-bits")?,
        bits: a.bits,
        mode: a.cmp_mode,
        threads: match (a.threads, a.layout) {
            (Some(t), _) => t as usize,
            (None, Layout::Shared) => 1,
            (None, Layout::OwnCores) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        seed: a.seed,
        layout: a.layout,
    };
    cfg.validate().context("bad benchmark settings")?;
    let bar = progress::bar(cfg.reps as u64, &format!("bench mpc {op}"), a.json);
    let report = bench::run(&cfg, |done| bar.set_position(done as u64)).context("benchmark failed")?;
    bar.finish_and_clear();
    if a.json {
        json::print(&report)?;
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &BenchReport) {
    println!(
        "masq bench mpc: {} (n = {}, input {:?}, {} reps, f = {}, {} comparisons on {} bits, {} thread(s) per party, \
         layout {})",
        r.op, r.n, r.input_shape, r.reps, r.frac_bits, r.mode, r.bits, r.threads, r.layout
    );
    let rows = [
        ("elements", r.elements.to_string()),
        ("online bytes P0->P1", fmt_bytes(r.online_bytes_p0_to_p1)),
        ("online bytes P1->P0", fmt_bytes(r.online_bytes_p1_to_p0)),
        ("online bytes per element", format!("{:.2} B", r.bytes_per_element)),
        ("rounds", r.rounds.to_string()),
        ("offline bytes (dealer)", fmt_bytes(r.offline_bytes)),
        ("online wall (median)", fmt_seconds(r.seconds)),
        (
            "per party alone (median)",
            r.party_seconds.map_or("- (--layout own-cores)".into(), |[a, b]| {
                format!("P0 {}, P1 {}", fmt_seconds(a), fmt_seconds(b))
            }),
        ),
        ("offline wall (median)", fmt_seconds(r.offline_seconds)),
        ("throughput", format!("{:.3e} elements/s", r.throughput)),
        ("est. LAN (3 Gbps, 0.3 ms)", fmt_seconds(r.est_lan_seconds)),
        ("est. WAN (400 Mbps, 40 ms)", fmt_seconds(r.est_wan_seconds)),
        ("max abs error vs plaintext", format!("{:.3e}", r.max_abs_error)),
        ("errors > 4 ulp (truncation)", format!("{} ({:.2e} of outputs)", r.large_errors, r.large_error_rate)),
        (
            "cost model prediction",
            if r.predicted.online_bytes() == r.online_bytes && r.predicted.rounds == r.rounds {
                "matches measurement".to_string()
            } else {
                format!("MISMATCH: {:?}", r.predicted)
            },
        ),
    ];
    for (k, v) in rows {
        println!("  {k:<28} {v}");
    }
    println!("  estimates: {}", r.formula);
}
