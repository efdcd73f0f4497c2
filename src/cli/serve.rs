//! `masq serve --model MODEL (--preprocessing DIR/p0.bin | --dealer ADDR) --listen ADDR [--auth KEYFILE] [--tls DIR]
//! [--max-clients N] [--max-connections N] [--max-sessions N] [--timeout SECS] [--json]`: the
//! model owner (P0). Serves clients concurrently, each session on its own thread with its own
//! slot of the preprocessing file; a failed session is logged and the others go on.
//!
//! Limits: at most `--max-clients` sessions past authentication at once (one more is told the
//! server is busy), at most `--max-connections` open connections in all (one more is refused at
//! once, before anything is read from it), small frames and `--handshake-timeout` per message
//! until a client has authenticated and sent its hello, `--timeout` per message after that.
//! Memory: each running session holds at most `--material-budget` of preprocessing plus its
//! activations, so the server's memory is bounded by `--max-clients` times that.
//!
//! With `--tls DIR`, every connection is mutually authenticated TLS 1.3 with the keys of `masq
//! keygen` (`masq_deploy::tls`): the handshake runs on the session's thread (a client that stalls
//! in it holds only its own thread, for at most `--handshake-timeout`), only a client certificate
//! of the same CA is accepted, and a connection over `--max-connections` is closed unanswered
//! (a refusal could only be sent after a handshake). `--auth` works with or without it.
//!
//! Prints `listening on ADDR` on stdout first (with the port the system chose for `:0`), then
//! one log line per event on stderr. With `--json`, stdout is JSON Lines instead: a `listening`
//! event, one `session` event per session, and last the result (sessions served and why it
//! stopped). Stops after N sessions (`--max-sessions`), when its preprocessing is exhausted
//! (after refusing the client that found out), or on SIGTERM / Ctrl-C: it stops accepting and
//! lets the sessions in flight finish (every wait in them is bounded by the timeout).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use masq_deploy::dealer::DealerLink;
use masq_deploy::tls::{Identity, Role};
use masq_deploy::{self, DeployError, Server, SessionOptions, auth::Key};
use masq_exporter::ModelSpec;
use masq_mpc::MpcError;
use masq_mpc::transport::TcpTransport;

use super::common::units::{fmt_bytes, fmt_seconds};
use super::common::{json, model, signals};

/// Arguments of `masq serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The model with its weights (the one dealt for): zoo:NAME[@HxW], a .onnx file, a masq
    /// checkpoint (.safetensors) or an artifact directory.
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// The server's preprocessing file (`p0.bin` from `masq deal`). Give this or `--dealer`.
    #[arg(long, value_name = "DIR/p0.bin", required_unless_present = "dealer", conflicts_with = "dealer")]
    pub preprocessing: Option<PathBuf>,
    /// A dealer service (`masq dealer`): each session opens a new inference there and receives
    /// the server's half while it runs; the client fetches the other half. Asked at start what it
    /// deals (it must deal this model). With `--tls`, the dealer must show a dealer certificate of
    /// the same CA.
    #[arg(long, value_name = "ADDR")]
    pub dealer: Option<String>,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Shared key file: clients must prove they hold it (HMAC-SHA256 challenge-response).
    #[arg(long, value_name = "KEYFILE")]
    pub auth: Option<PathBuf>,
    /// TLS: directory with `ca.pem`, `server.pem` and `server.key` from `masq keygen`. Clients
    /// must then connect with `masq query --tls` and a client certificate of the same CA; anyone
    /// else is refused in the TLS handshake.
    #[arg(long, value_name = "DIR")]
    pub tls: Option<PathBuf>,
    /// Stop after this many sessions (successful or not).
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u64>,
    /// Most sessions past authentication at once (in their handshake or running); one more
    /// client is refused with "server busy".
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_clients: usize,
    /// Most open connections in all (authenticated or not); one more is refused at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_connections: usize,
    /// Longest wait for any message from a client, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Longest wait for each message before a client has authenticated and sent its hello, in
    /// seconds (an idle connection is dropped after this).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub handshake_timeout: u64,
    /// Most preprocessing held in memory at once: the file's material for an inference is read
    /// and expanded in segments of about this size while the protocol runs (K/M/G suffixes,
    /// powers of 1024; at least one layer's material is always held).
    #[arg(long, default_value = "1G", value_name = "SIZE", value_parser = masq_runtime::secure::parse_size)]
    pub material_budget: u64,
    /// Threads for this party's secure comparisons (DCF evaluation); default: every core of
    /// this machine.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub threads: Option<usize>,
    /// Print JSON Lines on stdout instead of `listening on ADDR`: {"event":"listening","addr":..}
    /// first, one {"event":"session",..} per session; the last line is the result (sessions,
    /// served, failed, stopped). The log stays on stderr.
    #[arg(long)]
    pub json: bool,
}

fn log(msg: &str) {
    eprintln!("[masq serve] {msg}");
}

/// An accepted connection: a transport, or (with `--tls`) the bare socket for the session's
/// thread to set TLS up on.
enum Conn {
    Plain(TcpTransport),
    Tls(TcpStream, Identity),
}

impl Conn {
    fn peer(&self) -> String {
        let addr = match self {
            Conn::Plain(t) => t.peer_addr().ok(),
            Conn::Tls(s, _) => s.peer_addr().ok(),
        };
        addr.map_or_else(|| "?".into(), |a| a.to_string())
    }
}

/// What a session thread tells the main thread.
struct Ended {
    n: u64,
    peer: String,
    result: Result<masq_deploy::SessionReport, DeployError>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    for (flag, v) in [("--timeout", args.timeout), ("--handshake-timeout", args.handshake_timeout)] {
        if v == 0 {
            bail!("{flag} 0: must be at least 1 second");
        }
    }
    if args.max_sessions == Some(0) {
        bail!("--max-sessions 0: must be at least 1");
    }
    if args.max_clients == 0 {
        bail!("--max-clients 0: must be at least 1");
    }
    if args.max_connections < args.max_clients {
        bail!("--max-connections {}: must be at least --max-clients ({})", args.max_connections, args.max_clients);
    }
    let key = args.auth.as_deref().map(Key::read).transpose()?;
    let tls = args.tls.as_deref().map(|d| Identity::load(d, Role::Server)).transpose()?;
    let opts = SessionOptions {
        timeout: Duration::from_secs(args.timeout),
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        key,
        material_budget_bytes: args.material_budget,
        threads: args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        max_concurrent: args.max_clients,
        tls,
        ..SessionOptions::default()
    };
    let graph = model::load_graph(&args.model)?;
    let server = match (&args.preprocessing, &args.dealer) {
        (Some(p0), _) => Server::new(&graph, p0, opts)
            .with_context(|| format!("preparing to serve {} with {}", args.model, p0.display()))?,
        (None, Some(d)) => Server::with_dealer(&graph, DealerLink::new(d, opts.clone()), opts)
            .with_context(|| format!("preparing to serve {} with the dealer at {d}", args.model))?,
        (None, None) => bail!("give --preprocessing DIR/p0.bin or --dealer ADDR"),
    };
    let listener = TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    signals::install();
    if args.json {
        json::print(&serde_json::json!({"event": "listening", "addr": addr.to_string()}))?;
    } else {
        println!("listening on {addr}");
    }
    std::io::stdout().flush().context("writing to stdout")?;
    let h = server.header();
    log(&format!(
        "model {} (hash {}), batch {}, {}, authentication {}, TLS {}, up to {} clients at once",
        args.model,
        &masq_deploy::hex(&h.model_hash)[..16],
        h.batch,
        match server.dealer() {
            Some(d) => format!("preprocessing from the dealer at {d} (id {})", masq_deploy::hex(&h.pair_id)),
            None => format!("{} of {} inferences left", server.remaining(), h.count),
        },
        if server.options().key.is_some() { "on" } else { "off" },
        if server.options().tls.is_some() { "on" } else { "off" },
        args.max_clients
    ));
    let tcp = server.options().tcp();
    let handshake_timeout = server.options().handshake_timeout.min(server.options().timeout);
    let open = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Ended>();
    let (mut sessions, mut served, mut ended) = (0u64, 0u64, 0u64);
    let mut stopped = None;
    std::thread::scope(|s| -> anyhow::Result<()> {
        loop {
            // Report the sessions that ended since the last turn.
            while let Ok(e) = rx.try_recv() {
                ended += 1;
                if report(&args, &server, e, &mut served)? && stopped.is_none() {
                    log("preprocessing exhausted: stopping (deal more with `masq deal`)");
                    stopped = Some("exhausted");
                }
            }
            if stopped.is_none() && signals::stop_requested() {
                log("stopping on a signal");
                stopped = Some("signal");
            }
            if stopped.is_none() && args.max_sessions.is_some_and(|n| sessions >= n) {
                log(&format!("stopping after {sessions} session(s) (--max-sessions)"));
                stopped = Some("max-sessions");
            }
            if stopped.is_some() {
                if ended == sessions {
                    return Ok(());
                }
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(e) => {
                        ended += 1;
                        report(&args, &server, e, &mut served)?;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                }
                continue;
            }
            let accepted = match &server.options().tls {
                // TLS is set up on the session's thread, from the bare connection.
                Some(id) => {
                    TcpTransport::accept_stream(&listener, Duration::from_millis(200)).map(|s| Conn::Tls(s, id.clone()))
                }
                None => TcpTransport::accept_with(&listener, Duration::from_millis(200), tcp).map(Conn::Plain),
            };
            let conn = match accepted {
                Ok(c) => c,
                Err(MpcError::Timeout { .. }) => continue,
                Err(e) => {
                    log(&format!("accepting a connection failed: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let peer = conn.peer();
            if open.load(Ordering::SeqCst) >= args.max_connections {
                log(&format!("refused {peer}: {} connections open (--max-connections)", args.max_connections));
                match conn {
                    Conn::Plain(t) => server.turn_away(t, "server busy: too many open connections; try again later"),
                    // Nothing can be said before a handshake: the connection is closed.
                    Conn::Tls(stream, _) => drop(stream),
                }
                continue;
            }
            open.fetch_add(1, Ordering::SeqCst);
            sessions += 1;
            let n = sessions;
            log(&format!("session {n}: client {peer} connected"));
            let (tx, server, open) = (tx.clone(), &server, &open);
            std::thread::Builder::new()
                .name(format!("masq-session-{n}"))
                .spawn_scoped(s, move || {
                    let started = |i| log(&format!("session {n}: inference {i} started"));
                    let result = match conn {
                        Conn::Plain(t) => server.serve(t, started),
                        Conn::Tls(stream, id) => {
                            masq_deploy::tls::accept(stream, tcp, &id, &[Role::Client], handshake_timeout)
                                .and_then(|(t, _)| server.serve(t, started))
                        }
                    };
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = tx.send(Ended { n, peer, result });
                })
                .context("starting a session thread")?;
        }
    })?;
    if args.json {
        json::print(&serde_json::json!({
            "sessions": sessions,
            "served": served,
            "failed": sessions - served,
            "stopped": stopped.unwrap_or("signal"),
        }))?;
    }
    Ok(())
}

/// Logs (and prints, with `--json`) one ended session; true when it found the preprocessing
/// exhausted with nothing left unspent.
fn report(args: &ServeArgs, server: &Server, e: Ended, served: &mut u64) -> anyhow::Result<bool> {
    let Ended { n, peer, result } = e;
    match result {
        Ok(r) => {
            *served += 1;
            if args.json {
                json::print(&serde_json::json!({
                    "event": "session",
                    "session": n,
                    "ok": true,
                    "peer": r.peer,
                    "inference_index": r.index,
                    "online_bytes_p0_to_p1": r.online_bytes_p0_to_p1,
                    "online_bytes_p1_to_p0": r.online_bytes_p1_to_p0,
                    "rounds": r.rounds,
                    "online_seconds": r.online_seconds,
                    "setup_bytes": r.setup_bytes,
                    "seconds": r.seconds,
                }))?;
            }
            log(&format!(
                "session {n}: inference {} done: online P0->P1 {} ({} B), P1->P0 {} ({} B), {} rounds, online {}, \
                 session {}, model load {}",
                r.index,
                fmt_bytes(r.online_bytes_p0_to_p1),
                r.online_bytes_p0_to_p1,
                fmt_bytes(r.online_bytes_p1_to_p0),
                r.online_bytes_p1_to_p0,
                r.rounds,
                fmt_seconds(r.online_seconds),
                fmt_seconds(r.seconds),
                fmt_bytes(r.setup_bytes)
            ));
            Ok(false)
        }
        Err(e) => {
            let exhausted = matches!(e, DeployError::Exhausted { .. });
            let msg = format!("{:#}", anyhow::Error::from(e));
            log(&format!("session {n} failed: {msg}"));
            if args.json {
                json::print(
                    &serde_json::json!({"event": "session", "session": n, "ok": false, "peer": peer, "error": msg}),
                )?;
            }
            Ok(exhausted && server.unspent() == 0)
        }
    }
}
