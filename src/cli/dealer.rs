//! `masq dealer --model MODEL --state DIR --listen ADDR [--tls DIR] [--batch B] [--frac-bits F]
//! [--bits 64] [--cmp-mode M] [--max-connections N] [--max-requests N] [--json]`: the trusted
//! dealer as a service. `masq serve --dealer ADDR` opens a new inference here for every session
//! and receives its half; the server's client (`masq query --dealer ADDR`) fetches the other half
//! with the ticket the server passes on. Nothing is dealt ahead of time and nothing is copied
//! between hosts; each inference's material exists only in the two streams
//! (`masq_deploy::dealer`).
//!
//! The state directory holds the dealer's secret and the next inference number, written before
//! a number is announced, so a restarted dealer never deals a number twice; it is locked while the
//! dealer runs. With `--tls DIR` (files from `masq keygen`: `ca.pem`, `dealer.pem`,
//! `dealer.key`), only a server certificate may open an inference and only a client certificate
//! may fetch one. Each connection runs on its own thread; at most `--max-connections` at once
//! (one more is refused at once). Stops on SIGTERM / Ctrl-C (connections in flight finish) or
//! after `--max-requests` answered connections.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use masq_deploy::dealer::{DealerOptions, DealerService, Served};
use masq_deploy::tls::{Identity, Role};
use masq_deploy::{DeployError, hex};
use masq_exporter::ModelSpec;
use masq_mpc::MpcError;
use masq_mpc::transport::{TcpOptions, TcpTransport};
use masq_runtime::secure::SecureConfig;

use super::common::units::{fmt_bytes, fmt_seconds};
use super::common::{json, model, signals};

/// Arguments of `masq dealer`.
#[derive(Debug, clap::Args)]
pub struct DealerArgs {
    /// The model (its structure and shapes; the dealer never needs its weights): zoo:NAME[@HxW],
    /// a .onnx file, a masq checkpoint or an artifact directory.
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// State directory (created if missing): the dealer's secret and the next inference number.
    /// Keep it across restarts; one dealer at a time may use it.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// TLS: directory with `ca.pem`, `dealer.pem` and `dealer.key` from `masq keygen`. Servers
    /// and clients must then connect with `--tls` too. Without it, connections are plain TCP and
    /// any peer that can connect may open or fetch inferences (one host, tests).
    #[arg(long, value_name = "DIR")]
    pub tls: Option<PathBuf>,
    /// Images per inference (server and client must use the same).
    #[arg(long, default_value_t = 1, value_name = "B")]
    pub batch: usize,
    /// Fractional bits of the fixed-point encoding, 1 to 40.
    #[arg(long, default_value_t = 16, value_name = "F", value_parser = clap::value_parser!(u32).range(1..=40))]
    pub frac_bits: u32,
    /// Bit width of secure comparisons (64: exact for every ring element).
    #[arg(long, default_value_t = 64)]
    pub bits: u32,
    /// Comparison mode: one-round or compact (see `masq run --help`).
    #[arg(long, default_value = "one-round", value_name = "one-round|compact")]
    pub cmp_mode: masq_mpc::dealer::CmpMode,
    /// Most connections at once; one more is refused at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_connections: usize,
    /// Longest wait for a request and for each write to a party, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Longest time between a server opening an inference and its client fetching it, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub ticket_ttl: u64,
    /// Most inferences opened and not yet fetched; one more open is refused as busy.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_pending: usize,
    /// Stop after this many answered connections (successful or not).
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// Print JSON Lines on stdout: {"event":"listening",..} first, one {"event":"request",..}
    /// per connection, and last the result. The log stays on stderr.
    #[arg(long)]
    pub json: bool,
}

fn log(msg: &str) {
    eprintln!("[masq dealer] {msg}");
}

struct Ended {
    n: u64,
    peer: String,
    result: Result<Served, DeployError>,
}

pub fn run(args: DealerArgs) -> anyhow::Result<()> {
    for (flag, v) in [("--timeout", args.timeout), ("--ticket-ttl", args.ticket_ttl)] {
        if v == 0 {
            bail!("{flag} 0: must be at least 1 second");
        }
    }
    for (flag, v) in
        [("--batch", args.batch), ("--max-connections", args.max_connections), ("--max-pending", args.max_pending)]
    {
        if v == 0 {
            bail!("{flag} 0: must be at least 1");
        }
    }
    if args.max_requests == Some(0) {
        bail!("--max-requests 0: must be at least 1");
    }
    let tls = args.tls.as_deref().map(|d| Identity::load(d, Role::Dealer)).transpose()?;
    let graph = model::load_graph(&args.model)?;
    if let Some(f) = crate::cli::common::batch::fixed(&graph)
        && f.batch != args.batch
    {
        bail!("--batch {}: {}; give --batch {}", args.batch, f.describe(&args.model), f.batch);
    }
    let cfg = SecureConfig {
        frac_bits: args.frac_bits,
        cmp_bits: args.bits,
        cmp_mode: args.cmp_mode,
        ..SecureConfig::default()
    };
    let opts = DealerOptions {
        timeout: Duration::from_secs(args.timeout),
        ticket_ttl: Duration::from_secs(args.ticket_ttl),
        max_pending: args.max_pending,
    };
    let service = DealerService::new(&graph, &cfg, args.batch, &args.state, opts)
        .with_context(|| format!("preparing to deal {} with state {}", args.model, args.state.display()))?;
    let listener = TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    signals::install();
    if args.json {
        json::print(&serde_json::json!({"event": "listening", "addr": addr.to_string()}))?;
    } else {
        println!("listening on {addr}");
    }
    std::io::stdout().flush().context("writing to stdout")?;
    let plan = service.plan();
    let p = service.params();
    log(&format!(
        "model {} (hash {}), batch {}, {} comparisons per inference, next inference {}, dealer id {}, TLS {}",
        args.model,
        &hex(&p.model_hash)[..16],
        p.batch,
        plan.comparisons_per_batch(),
        service.next_slot(),
        hex(&service.id()),
        if tls.is_some() { "on" } else { "off (plain TCP)" }
    ));
    let timeout = Duration::from_secs(args.timeout);
    let tcp = TcpOptions::with_timeout(timeout);
    let open = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Ended>();
    let (mut accepted, mut ended, mut dealt) = (0u64, 0u64, 0u64);
    let mut stopped = None;
    std::thread::scope(|s| -> anyhow::Result<()> {
        loop {
            while let Ok(e) = rx.try_recv() {
                ended += 1;
                dealt += report(&args, e)? as u64;
            }
            if stopped.is_none() && signals::stop_requested() {
                log("stopping on a signal");
                stopped = Some("signal");
            }
            if stopped.is_none() && args.max_requests.is_some_and(|n| accepted >= n) {
                log(&format!("stopping after {accepted} connection(s) (--max-requests)"));
                stopped = Some("max-requests");
            }
            if stopped.is_some() {
                if ended == accepted {
                    return Ok(());
                }
                if let Ok(e) = rx.recv_timeout(Duration::from_millis(200)) {
                    ended += 1;
                    dealt += report(&args, e)? as u64;
                }
                continue;
            }
            let stream = match TcpTransport::accept_stream(&listener, Duration::from_millis(200)) {
                Ok(s) => s,
                Err(MpcError::Timeout { .. }) => continue,
                Err(e) => {
                    log(&format!("accepting a connection failed: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let peer = stream.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
            if open.load(Ordering::SeqCst) >= args.max_connections {
                log(&format!("refused {peer}: {} connections open (--max-connections)", args.max_connections));
                drop(stream);
                continue;
            }
            open.fetch_add(1, Ordering::SeqCst);
            accepted += 1;
            let n = accepted;
            let (tx, service, open, tls) = (tx.clone(), &service, &open, tls.clone());
            std::thread::Builder::new()
                .name(format!("masq-dealer-{n}"))
                .spawn_scoped(s, move || {
                    let result = (|| {
                        let (t, role) = match &tls {
                            Some(id) => {
                                let (t, role) =
                                    masq_deploy::tls::accept(stream, tcp, id, &[Role::Server, Role::Client], timeout)?;
                                (t, Some(role))
                            }
                            None => (
                                TcpTransport::from_stream_with(stream, tcp)
                                    .map_err(|e| DeployError::Mpc { at: "accepting".into(), source: e })?,
                                None,
                            ),
                        };
                        service.serve_over(t, role)
                    })();
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = tx.send(Ended { n, peer, result });
                })
                .context("starting a connection thread")?;
        }
    })?;
    if args.json {
        json::print(&serde_json::json!({
            "requests": accepted,
            "dealt": dealt,
            "next_inference": service.next_slot(),
            "stopped": stopped.unwrap_or("signal"),
        }))?;
    }
    Ok(())
}

/// Logs (and prints, with `--json`) one answered connection; true when material was sent.
fn report(args: &DealerArgs, e: Ended) -> anyhow::Result<bool> {
    let Ended { n, peer, result } = e;
    match result {
        Ok(Served::Info) => {
            log(&format!("connection {n} ({peer}): told what this dealer deals"));
            if args.json {
                json::print(
                    &serde_json::json!({"event": "request", "connection": n, "ok": true, "peer": peer, "request": "info"}),
                )?;
            }
            Ok(false)
        }
        Ok(Served::Deal { slot, party, bytes, offline_bytes, seconds }) => {
            log(&format!(
                "connection {n} ({peer}): inference {slot}: {party}'s half sent, {} on the wire ({} offline), {}",
                fmt_bytes(bytes),
                fmt_bytes(offline_bytes),
                fmt_seconds(seconds)
            ));
            if args.json {
                json::print(&serde_json::json!({
                    "event": "request", "connection": n, "ok": true, "peer": peer,
                    "request": if party == masq_mpc::Party::P0 { "open" } else { "fetch" },
                    "inference_index": slot, "party": party.to_string(), "bytes": bytes,
                    "offline_bytes": offline_bytes, "seconds": seconds,
                }))?;
            }
            Ok(true)
        }
        Err(e) => {
            let msg = format!("{:#}", anyhow::Error::from(e));
            log(&format!("connection {n} ({peer}) failed: {msg}"));
            if args.json {
                json::print(
                    &serde_json::json!({"event": "request", "connection": n, "ok": false, "peer": peer, "error": msg}),
                )?;
            }
            Ok(false)
        }
    }
}
