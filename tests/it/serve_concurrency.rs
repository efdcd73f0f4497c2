//! `masq serve` with many clients: concurrent sessions on distinct slots, the limits on
//! sessions and connections, idle connections that delay nobody, one process per dealer file,
//! and a graceful stop on SIGTERM.

use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::two_process::{Lines, MODEL, SLOW_BATCH, Server, dir, failure, flags, input, json, masq, ok, run, s};

/// Sends a signal (`-STOP`, `-CONT`, `-TERM`) to a process.
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// The server's peak resident memory (VmHWM, KiB) from /proc.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A small model for many clients: each client holds its own copy of p1.bin (clients × slots
/// files' worth of material on disk).
const SMALL: &str = "zoo:mnist_cnn@8x8";

/// Clients of the concurrency test: `MASQ_SERVE_CLIENTS` (`make serve-load` sets 20), else 8.
fn clients() -> u64 {
    std::env::var("MASQ_SERVE_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(8)
}

#[test]
fn many_clients_at_once_are_served_or_refused_busy_and_no_slot_is_used_twice() {
    let d = dir("many");
    let clients = clients();
    crate::two_process::deal(SMALL, &d, clients, 21, &["--cmp-mode", "compact"]);
    let x = input(&d, &[1, 1, 8, 8]);
    // Each client process holds its own copy of p1.bin (a file is locked by the process using it).
    let copies: Vec<_> = (0..clients)
        .map(|k| {
            let p = d.join(format!("p1-{k}.bin"));
            std::fs::copy(d.join("p1.bin"), &p).unwrap();
            p
        })
        .collect();
    let mut server =
        Server::start(SMALL, &d.join("p0.bin"), &["--max-clients", "4", "--threads", "1", "--material-budget", "16M"]);
    let children: Vec<_> = copies
        .iter()
        .map(|p1| {
            masq()
                .args(["query", "--connect", &server.addr, "--preprocessing", s(p1), "--input", s(&x), "--json"])
                .args(["--threads", "1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let plain = json(&run(&["run", SMALL, "--input", s(&x), "--mode", "plain", "--json"]));
    let want = plain["predictions"][0].as_u64().unwrap_or_else(|| panic!("{plain}"));
    let (mut used, mut busy) = (Vec::new(), 0);
    for (k, out) in outs.iter().enumerate() {
        if out.status.success() {
            let q = json(out);
            assert_eq!(q["prediction"].as_u64().unwrap(), want, "client {k}");
            used.push(q["inference_index"].as_u64().unwrap());
        } else {
            let err = failure(out);
            assert!(err.contains("server busy"), "client {k}: {err}");
            busy += 1;
        }
    }
    let mut sorted = used.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), used.len(), "a slot was used twice: {used:?}");
    assert!(!used.is_empty(), "nobody was served: {}", server.log.text());
    // The server spent exactly the slots it served; each client copy spent only its own.
    let (f0, _) = flags(&d);
    let spent: Vec<u64> = (0..clients).filter(|&i| f0[i as usize]).collect();
    assert_eq!(spent, sorted, "server flags");
    for (k, p1) in copies.iter().enumerate() {
        let f = masq_deploy::file::read_spent(p1).unwrap();
        assert!(f.iter().filter(|b| **b).count() <= 1, "client {k}: {f:?}");
    }
    if let Some(kib) = peak_rss_kib(server.child.id()) {
        eprintln!(
            "{clients} clients, --max-clients 4: {} served, {busy} refused busy; server peak RSS {:.1} MiB",
            used.len(),
            kib as f64 / 1024.0
        );
    }
    assert!(server.alive());
}

#[test]
fn many_clients_with_a_dealer_service_are_served_or_refused_and_no_inference_is_used_twice() {
    let d = dir("many-dealer");
    let clients = clients();
    let keys = d.join("keys");
    ok(&run(&["keygen", "--out", s(&keys)]));
    let x = input(&d, &[1, 1, 8, 8]);
    let state = d.join("dealer-state");
    let dealer = Server::spawn(&[
        "dealer",
        "--model",
        SMALL,
        "--state",
        s(&state),
        "--listen",
        "127.0.0.1:0",
        "--tls",
        s(&keys),
        "--cmp-mode",
        "compact",
    ]);
    let mut server = Server::spawn(&[
        "serve",
        "--model",
        SMALL,
        "--dealer",
        &dealer.addr,
        "--tls",
        s(&keys),
        "--listen",
        "127.0.0.1:0",
        "--max-clients",
        "4",
        "--threads",
        "1",
        "--material-budget",
        "16M",
    ]);
    let children: Vec<_> = (0..clients)
        .map(|_| {
            masq()
                .args(["query", "--connect", &server.addr, "--dealer", &dealer.addr, "--tls", s(&keys)])
                .args(["--input", s(&x), "--json", "--threads", "1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let y_plain = d.join("y-plain.npy");
    let plain = json(&run(&["run", SMALL, "--input", s(&x), "--mode", "plain", "--json", "--output", s(&y_plain)]));
    let want = plain["predictions"][0].as_u64().unwrap_or_else(|| panic!("{plain}"));
    let logits: Vec<f64> = masq_ir::npy::read_f32(&y_plain).unwrap().iter().map(|&v| v as f64).collect();
    let (mut used, mut busy, mut max_err) = (Vec::new(), 0, 0f64);
    for (k, out) in outs.iter().enumerate() {
        if out.status.success() {
            let q = json(out);
            assert_eq!(q["prediction"].as_u64().unwrap(), want, "client {k}");
            let y: Vec<f64> = q["output"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(y.len(), logits.len(), "client {k}: output length");
            max_err = y.iter().zip(&logits).map(|(a, b)| (a - b).abs()).fold(max_err, f64::max);
            used.push(q["inference_index"].as_u64().unwrap());
        } else {
            let err = failure(out);
            assert!(err.contains("server busy"), "client {k}: {err}");
            busy += 1;
        }
    }
    assert!(max_err < 1e-2, "largest logit error against plaintext {max_err}");
    let mut sorted = used.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), used.len(), "an inference was used twice: {used:?}");
    assert!(!used.is_empty(), "nobody was served: {}", server.log.text());
    // The dealer sent each half of each served inference once.
    let log = dealer.log.text();
    for i in &used {
        for party in ["P0", "P1"] {
            let n = log.matches(&format!("inference {i}: {party}'s half sent")).count();
            assert_eq!(n, 1, "inference {i}, {party}: sent {n} times\n{log}");
        }
    }
    if let (Some(s_kib), Some(d_kib)) = (peak_rss_kib(server.child.id()), peak_rss_kib(dealer.child.id())) {
        eprintln!(
            "{clients} clients, --max-clients 4, dealer service: {} served, {busy} refused busy; peak RSS server {:.1} MiB, dealer {:.1} MiB; max logit error {max_err:.2e}",
            used.len(),
            s_kib as f64 / 1024.0,
            d_kib as f64 / 1024.0
        );
    }
    assert!(server.alive());
}

#[test]
fn an_idle_connection_delays_no_client_and_is_dropped_after_the_handshake_timeout() {
    let d = dir("idle");
    crate::two_process::deal(MODEL, &d, 1, 4, &[]);
    let x = input(&d, &[1, 1, 28, 28]);
    let server = Server::start(MODEL, &d.join("p0.bin"), &["--handshake-timeout", "30", "--max-clients", "3"]);
    // Two connections that send nothing (they used to block every other client for the whole
    // timeout: the server served one connection at a time).
    let idle: Vec<_> = (0..2).map(|_| TcpStream::connect(&server.addr).unwrap()).collect();
    assert!(server.log.wait_for("session 2: client"), "{}", server.log.text());
    let q = json(&server.query(&d.join("p1.bin"), &x, &["--json"]));
    assert_eq!(q["inference_index"], 0);
    // The client was served while both idle connections were still open and waiting.
    // (The server logs "done" after it sent the result: wait for the line, the client may be first.)
    assert!(server.log.wait_for("session 3: inference 0 done"), "{}", server.log.text());
    let log = server.log.text();
    assert!(!log.contains("session 1 failed") && !log.contains("session 2 failed"), "{log}");
    drop(idle);
    assert!(server.log.wait_for("session 2 failed"), "{}", server.log.text());
}

#[test]
fn a_full_server_refuses_at_once_and_serves_again_when_free() {
    let d = dir("full");
    crate::two_process::deal(MODEL, &d, 2, 5, &["--batch", SLOW_BATCH]);
    let x = input(&d, &[4, 1, 28, 28]);
    let p1 = d.join("p1.bin");
    let copy = d.join("p1-copy.bin");
    std::fs::copy(&p1, &copy).unwrap();
    let server = Server::start(MODEL, &d.join("p0.bin"), &["--max-clients", "1", "--max-connections", "3"]);
    // A session in progress holds the only session place: its client is stopped (SIGSTOP) as
    // soon as it runs, so the session stays open until the client is continued.
    let mut running = masq()
        .args(["query", "--connect", &server.addr, "--preprocessing", s(&p1), "--input", s(&x)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running_log = Lines::collect(running.stderr.take().unwrap());
    assert!(running_log.wait_for("running inference 0"), "{}", running_log.text());
    signal(running.id(), "-STOP");
    assert!(server.log.wait_for("session 1: inference 0 started"), "{}", server.log.text());
    let err = failure(&server.query(&copy, &x, &[]));
    assert!(err.contains("server busy") && err.contains("sessions in progress"), "{err}");
    // Two idle connections fill the connection limit: the next one is refused before anything.
    let idle: Vec<_> = (0..2).map(|_| TcpStream::connect(&server.addr).unwrap()).collect();
    assert!(server.log.wait_for("session 4: client"), "{}", server.log.text());
    let err = failure(&server.query(&copy, &x, &[]));
    assert!(err.contains("too many open connections"), "{err}");
    signal(running.id(), "-CONT");
    let out = ok(&running.wait_with_output().unwrap());
    assert!(out.starts_with("inference 0 "), "{out}");
    assert_eq!(flags(&d).0, vec![true, false], "nothing spent by refusals");
    drop(idle);
    assert!(server.log.wait_for("session 4 failed"), "{}", server.log.text());
    let q = json(&server.query(&copy, &x, &["--json"]));
    assert_eq!(q["inference_index"], 1);
}

#[test]
fn a_second_server_on_the_same_file_refuses_to_start_naming_it() {
    let d = dir("two-servers");
    crate::two_process::deal(MODEL, &d, 1, 6, &[]);
    let server = Server::start(MODEL, &d.join("p0.bin"), &[]);
    let p0 = d.join("p0.bin");
    let err = failure(&run(&["serve", "--model", MODEL, "--preprocessing", s(&p0), "--listen", "127.0.0.1:0"]));
    assert!(err.contains("p0.bin") && err.contains("in use"), "{err}");
    drop(server);
}

#[test]
fn sigterm_lets_the_session_in_flight_finish() {
    let d = dir("sigterm");
    crate::two_process::deal(MODEL, &d, 1, 7, &["--batch", SLOW_BATCH]);
    let x = input(&d, &[4, 1, 28, 28]);
    let mut server = Server::start(MODEL, &d.join("p0.bin"), &[]);
    let client = masq()
        .args(["query", "--connect", &server.addr, "--preprocessing", s(&d.join("p1.bin")), "--input", s(&x)])
        .args(["--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(server.log.wait_for("inference 0 started"), "{}", server.log.text());
    signal(server.child.id(), "-TERM");
    let out = client.wait_with_output().unwrap();
    let q: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(q["inference_index"], 0);
    assert!(server.exit_status().success(), "{}", server.log.text());
    let log = server.log.text();
    assert!(log.contains("stopping on a signal") && log.contains("inference 0 done"), "{log}");
}
