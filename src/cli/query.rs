//! `masq query --connect ADDR (--preprocessing DIR/p1.bin | --dealer ADDR) --input X.npy [--auth KEYFILE] [--tls DIR]
//! [--output Y.npy] [--timeout SECS] [--json]`: the client (P1). Gets the public model from the
//! server, checks it against its preprocessing, runs one encrypted inference on its input and
//! prints the prediction with the measured and estimated costs. With `--tls DIR` the connection
//! is mutually authenticated TLS 1.3 (`masq_deploy::tls`): the server must show a server
//! certificate of the CA in `DIR/ca.pem`, and this side shows `DIR/client.pem`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use masq_deploy::tls::{Identity, Role};
use masq_deploy::{self, SessionOptions, auth::Key};
use masq_ir::npy;
use serde::Serialize;

use super::common::json;
use super::common::predict::argmax_rows;
use super::common::units::{fmt_bytes, fmt_seconds};

/// Arguments of `masq query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The server's address (`HOST:PORT`).
    #[arg(long, value_name = "ADDR")]
    pub connect: String,
    /// The client's preprocessing file (`p1.bin` from `masq deal`). Give this or `--dealer`.
    #[arg(long, value_name = "DIR/p1.bin", required_unless_present = "dealer", conflicts_with = "dealer")]
    pub preprocessing: Option<PathBuf>,
    /// A dealer service (`masq dealer`): the client fetches its half of the inference the server
    /// opens there, with the ticket the server passes on. With `--tls`, the dealer must show a
    /// dealer certificate of the same CA.
    #[arg(long, value_name = "ADDR")]
    pub dealer: Option<String>,
    /// Input tensor (`.npy`, float): `[N, C, H, W]` or one image `[C, H, W]`.
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Shared key file (the server must prove it holds the same key).
    #[arg(long, value_name = "KEYFILE")]
    pub auth: Option<PathBuf>,
    /// TLS: directory with `ca.pem`, `client.pem` and `client.key` from `masq keygen`. The server
    /// must present a server certificate of the same CA (`masq serve --tls`); otherwise the
    /// query stops in the TLS handshake, before any protocol message.
    #[arg(long, value_name = "DIR")]
    pub tls: Option<PathBuf>,
    /// Write the (first) decoded output to this `.npy` file.
    #[arg(long, value_name = "Y.npy")]
    pub output: Option<PathBuf>,
    /// Longest wait to connect and for any message, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Most preprocessing held in memory at once: the file's material for an inference is read
    /// and expanded in segments of about this size while the protocol runs (K/M/G suffixes,
    /// powers of 1024; at least one layer's material is always held).
    #[arg(long, default_value = "1G", value_name = "SIZE", value_parser = masq_runtime::secure::parse_size)]
    pub material_budget: u64,
    /// Threads for this party's secure comparisons (DCF evaluation); default: every core of
    /// this machine.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub threads: Option<usize>,
    /// Print JSON Lines instead of text (and no progress on stderr); the last line is the result
    /// (prediction, output, measured and predicted bytes and rounds, seconds, ...).
    #[arg(long)]
    pub json: bool,
}

/// The JSON object `masq query --json` prints (keys are only ever added).
#[derive(Debug, Serialize)]
struct QueryOutput {
    inference_index: u64,
    model_hash: String,
    batch: usize,
    /// Argmax of the first image's output, and of every image's.
    prediction: usize,
    predictions: Vec<usize>,
    output_shape: Vec<usize>,
    /// The first output, flattened.
    output: Vec<f32>,
    /// Totals for one image: `relu_count` (ReLU elements), comparisons by kind, `macs`, ...
    #[serde(flatten)]
    per_image: masq_ir::cost::ModelCounts,
    /// Secure comparisons of the whole batch.
    comparisons_per_batch: u64,
    online_bytes_p0_to_p1: u64,
    online_bytes_p1_to_p0: u64,
    rounds: u64,
    /// Online wall seconds (client), and the server's.
    seconds: f64,
    server_seconds: Option<f64>,
    /// Connect to result (handshake, model load, offline precomputation, online).
    total_seconds: f64,
    setup_bytes: u64,
    setup_seconds: f64,
    predicted_online_bytes_p0_to_p1: u64,
    predicted_online_bytes_p1_to_p0: u64,
    predicted_rounds: u64,
    predicted_offline_bytes: u64,
    est_lan_seconds: f64,
    est_wan_seconds: f64,
    formula: &'static str,
}

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    if args.timeout == 0 {
        bail!("--timeout 0: must be at least 1 second");
    }
    let key = args.auth.as_deref().map(Key::read).transpose()?;
    let tls = args.tls.as_deref().map(|d| Identity::load(d, Role::Client)).transpose()?;
    let x = npy::read_f32(&args.input).with_context(|| format!("reading input {}", args.input.display()))?;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!("{}: element {i} is not a finite number", args.input.display());
    }
    let opts = SessionOptions {
        timeout: Duration::from_secs(args.timeout),
        key,
        material_budget_bytes: args.material_budget,
        threads: args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        tls,
        ..SessionOptions::default()
    };
    let quiet = args.json;
    let on_event = |m: &str| {
        if !quiet {
            eprintln!("[masq query] {m}");
        }
    };
    let r = match (&args.preprocessing, &args.dealer) {
        (Some(p1), _) => masq_deploy::query(&args.connect, p1, &x, &opts, on_event).map_err(anyhow::Error::from),
        (None, Some(dealer)) => masq_deploy::query_with_dealer(&args.connect, dealer, &x, &opts, on_event)
            .with_context(|| format!("with the dealer at {dealer}")),
        (None, None) => bail!("give --preprocessing DIR/p1.bin or --dealer ADDR"),
    }
    .with_context(|| format!("encrypted inference with {}", args.connect))?;
    let y = r.outputs.first().map(|o| o.1.clone()).context("the model has no output")?;
    if let Some(path) = &args.output {
        npy::write(path, &y).with_context(|| format!("writing output {}", path.display()))?;
    }
    let predictions = argmax_rows(&y);
    let o = QueryOutput {
        inference_index: r.index,
        model_hash: r.model_hash.clone(),
        batch: r.batch,
        prediction: predictions.first().copied().unwrap_or(0),
        predictions,
        output_shape: y.shape().to_vec(),
        output: y.iter().copied().collect(),
        per_image: r.per_image,
        comparisons_per_batch: r.comparisons_per_batch,
        online_bytes_p0_to_p1: r.measured.p0_to_p1,
        online_bytes_p1_to_p0: r.measured.p1_to_p0,
        rounds: r.measured.rounds,
        seconds: r.online_seconds,
        server_seconds: r.server_online_seconds,
        total_seconds: r.total_seconds,
        setup_bytes: r.setup_bytes,
        setup_seconds: r.setup_seconds,
        predicted_online_bytes_p0_to_p1: r.predicted.p0_to_p1,
        predicted_online_bytes_p1_to_p0: r.predicted.p1_to_p0,
        predicted_rounds: r.predicted.rounds,
        predicted_offline_bytes: r.predicted.offline_bytes(),
        est_lan_seconds: r.est_lan_seconds,
        est_wan_seconds: r.est_wan_seconds,
        formula: r.formula,
    };
    if args.json {
        return json::print(&o);
    }
    println!("inference {} (model hash {}…), batch {}", o.inference_index, &o.model_hash[..16], o.batch);
    for (i, p) in o.predictions.iter().enumerate() {
        println!("image {i}: class {p}");
    }
    println!("output shape {:?}", o.output_shape);
    println!("{:<22} {:>14} {:>14}", "", "measured", "predicted");
    println!(
        "{:<22} {:>14} {:>14}",
        "online P0->P1",
        fmt_bytes(o.online_bytes_p0_to_p1),
        fmt_bytes(o.predicted_online_bytes_p0_to_p1)
    );
    println!(
        "{:<22} {:>14} {:>14}",
        "online P1->P0",
        fmt_bytes(o.online_bytes_p1_to_p0),
        fmt_bytes(o.predicted_online_bytes_p1_to_p0)
    );
    println!("{:<22} {:>14} {:>14}", "rounds", o.rounds, o.predicted_rounds);
    println!(
        "time: online {} (server {}), total {} (model load {}, {})",
        fmt_seconds(o.seconds),
        o.server_seconds.map_or("?".into(), fmt_seconds),
        fmt_seconds(o.total_seconds),
        fmt_seconds(o.setup_seconds),
        fmt_bytes(o.setup_bytes)
    );
    println!(
        "estimated latency: LAN {}, WAN {}  ({})",
        fmt_seconds(o.est_lan_seconds),
        fmt_seconds(o.est_wan_seconds),
        o.formula
    );
    Ok(())
}
