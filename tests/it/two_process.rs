//! Encrypted inference between two real processes on 127.0.0.1: `masq deal`, `masq serve` (P0)
//! and `masq query` (P1) as separate processes. Every scenario ends with the expected error on
//! the right side, the server still serving where it should, and the spent flags of both
//! preprocessing files consistent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use masq_deploy::DealerFile;
use masq_deploy::file::read_spent;
use masq_mpc::Party;
use masq_mpc::dealer::Dealer;
use masq_mpc::dealer::codec::{encode_model_material, encode_preprocessing};
use masq_runtime::secure::{SecureConfig, plan};
use ndarray::{ArrayD, Dimension};

pub(crate) const MODEL: &str = "zoo:mnist_cnn";
/// A batch whose run lasts long enough (about a second) to kill a party in the middle of it.
pub(crate) const SLOW_BATCH: &str = "4";
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) fn masq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_masq"))
}

pub(crate) fn run(args: &[&str]) -> Output {
    masq().args(args).output().expect("masq runs")
}

/// A scratch directory, removed at the end of a passing test (kept for inspection after a failure).
pub(crate) struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub(crate) fn dir(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("masq-2pc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub(crate) fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    err
}

pub(crate) fn deal(model: &str, d: &Path, count: u64, seed: u64, extra: &[&str]) {
    let c = count.to_string();
    let sd = seed.to_string();
    let mut args = vec!["deal", "--model", model, "--count", &c, "--out", s(d), "--seed", &sd];
    args.extend_from_slice(extra);
    let out = ok(&run(&args));
    assert!(out.contains("server file") && out.contains("client file"), "{out}");
}

pub(crate) fn input(d: &Path, shape: &[usize]) -> PathBuf {
    let x = ArrayD::from_shape_fn(shape.to_vec(), |i| {
        let k: usize = i.slice().iter().enumerate().map(|(a, b)| (a + 3) * b).sum();
        (k % 23) as f32 / 23.0 - 0.4
    });
    let p = d.join("x.npy");
    masq_ir::npy::write(&p, &x).unwrap();
    p
}

/// Lines a child writes to stderr, collected by a thread.
#[derive(Clone)]
pub(crate) struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub(crate) fn collect(stderr: ChildStderr) -> Lines {
        let lines = Lines(Arc::new(Mutex::new(Vec::new())));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    pub(crate) fn wait_for(&self, pattern: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if self.0.lock().unwrap().iter().any(|l| l.contains(pattern)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) log: Lines,
}

impl Server {
    pub(crate) fn start(model: &str, p0: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--model", model, "--preprocessing", s(p0), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::spawn(&args)
    }

    /// Runs `masq ARGS` (a service that prints `listening on ADDR` first: serve, dealer).
    pub(crate) fn spawn(args: &[&str]) -> Server {
        let mut child = masq().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Lines::collect(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let mut r = BufReader::new(stdout);
            let _ = r.read_line(&mut first);
            let _ = tx.send(first);
            let mut rest = String::new();
            let _ = r.read_to_string(&mut rest);
        });
        let first = rx.recv_timeout(WAIT).expect("the server prints its address");
        let addr = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{first:?}: {}", log.text()));
        Server { child, addr: addr.to_string(), log }
    }

    pub(crate) fn query(&self, p1: &Path, x: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["query", "--connect", &self.addr, "--preprocessing", s(p1), "--input", s(x)];
        args.extend_from_slice(extra);
        run(&args)
    }

    pub(crate) fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the server to exit by itself.
    pub(crate) fn exit_status(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(start.elapsed() < WAIT, "the server did not stop: {}", self.log.text());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn flags(d: &Path) -> (Vec<bool>, Vec<bool>) {
    (read_spent(&d.join("p0.bin")).unwrap(), read_spent(&d.join("p1.bin")).unwrap())
}

pub(crate) fn assert_flags(d: &Path, want: &[bool]) {
    let (f0, f1) = flags(d);
    assert_eq!(f0, want, "server flags");
    assert_eq!(f1, want, "client flags");
}

pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("one JSON object")
}

#[test]
fn a_full_inference_equals_the_in_process_run_bit_for_bit() {
    let d = dir("exact");
    let seed = 11;
    deal(MODEL, &d, 2, seed, &[]);
    let x = input(&d, &[1, 1, 28, 28]);

    // The dealer's material for inference 0 is what the in-process run deals with the same seed.
    let g = masq_exporter::load_model(MODEL).unwrap();
    let cfg = SecureConfig { seed, ..SecureConfig::default() };
    let p = plan(&g, 1, &cfg).unwrap();
    let mut dealer = Dealer::new(seed);
    let kinds: Vec<_> = p.layers.iter().map(|l| (l.id, l.kind.clone())).collect();
    let (m0, m1) = dealer.setup_model(&kinds).unwrap();
    let (pre0, pre1) = dealer.deal(&p.requests).unwrap();

    let mut server = Server::start(MODEL, &d.join("p0.bin"), &["--max-sessions", "1"]);
    let y = d.join("y.npy");
    let q = json(&server.query(&d.join("p1.bin"), &x, &["--json", "--output", s(&y)]));
    assert_eq!(q["inference_index"], 0);
    for key in ["online_bytes_p0_to_p1", "online_bytes_p1_to_p0", "rounds"] {
        assert_eq!(q[key], q[format!("predicted_{key}")], "{key}: measured = predicted");
    }
    assert!(q["online_bytes_p0_to_p1"].as_u64().unwrap() > 0);
    assert!(q["est_wan_seconds"].as_f64().unwrap() > q["est_lan_seconds"].as_f64().unwrap());
    assert!(server.exit_status().success(), "{}", server.log.text());
    assert!(server.log.text().contains("inference 0 done"), "{}", server.log.text());
    assert_flags(&d, &[true, false]);

    let files = [
        DealerFile::open(&d.join("p0.bin"), Party::P0).unwrap(),
        DealerFile::open(&d.join("p1.bin"), Party::P1).unwrap(),
    ];
    let read = |k: usize| files[k].inference(0, &p.requests, &files[k].model_material().unwrap()).unwrap();
    assert_eq!(encode_preprocessing(&read(0)), encode_preprocessing(&pre0));
    assert_eq!(encode_preprocessing(&read(1)), encode_preprocessing(&pre1));
    assert_eq!(encode_model_material(&files[0].model_material().unwrap()), encode_model_material(&m0));
    assert_eq!(encode_model_material(&files[1].model_material().unwrap()), encode_model_material(&m1));

    // The same output as `masq run --mode mpc` with the same seed, bit for bit.
    let y_ref = d.join("y_ref.npy");
    let sd = seed.to_string();
    ok(&run(&["run", MODEL, "--input", s(&x), "--mode", "mpc", "--seed", &sd, "--output", s(&y_ref), "--json"]));
    let (a, b) = (masq_ir::npy::read_f32(&y).unwrap(), masq_ir::npy::read_f32(&y_ref).unwrap());
    assert_eq!(a.shape(), b.shape());
    assert!(a.iter().zip(b.iter()).all(|(u, v)| u.to_bits() == v.to_bits()), "{a:?} vs {b:?}");
    let out: Vec<f32> = serde_json::from_value(q["output"].clone()).unwrap();
    assert_eq!(out, a.iter().copied().collect::<Vec<_>>());
}

#[test]
fn a_wrong_key_is_refused_and_the_server_keeps_serving() {
    let d = dir("auth");
    deal(MODEL, &d, 2, 3, &[]);
    let x = input(&d, &[1, 28, 28]);
    let (k1, k2) = (d.join("k1"), d.join("k2"));
    std::fs::write(&k1, "correct horse battery staple\n").unwrap();
    std::fs::write(&k2, "incorrect horse battery staple\n").unwrap();
    let mut server = Server::start(MODEL, &d.join("p0.bin"), &["--auth", s(&k1)]);
    let p1 = d.join("p1.bin");

    let err = failure(&server.query(&p1, &x, &["--auth", s(&k2)]));
    assert!(err.contains("authentication failed"), "{err}");
    assert!(server.log.wait_for("session 1 failed: authentication failed"), "{}", server.log.text());
    let err = failure(&server.query(&p1, &x, &[]));
    assert!(err.contains("requires authentication"), "{err}");
    assert!(server.log.wait_for("session 2 failed"), "{}", server.log.text());
    assert_flags(&d, &[false, false]);

    let q = json(&server.query(&p1, &x, &["--auth", s(&k1), "--json"]));
    assert_eq!(q["inference_index"], 0);
    assert!(server.alive());
    assert_flags(&d, &[true, false]);

    // A client with a key refuses a server without one.
    let d2 = dir("auth-off");
    deal(MODEL, &d2, 1, 3, &[]);
    let open = Server::start(MODEL, &d2.join("p0.bin"), &[]);
    let err = failure(&open.query(&d2.join("p1.bin"), &x, &["--auth", s(&k1)]));
    assert!(err.contains("does not authenticate"), "{err}");
    assert_flags(&d2, &[false]);
}

#[test]
fn preprocessing_for_another_model_or_setting_is_refused_on_both_sides() {
    let (a, b, c) = (dir("model-a"), dir("model-b"), dir("model-c"));
    deal(MODEL, &a, 2, 1, &[]);
    deal("zoo:mnist_cnn@32x32", &b, 1, 1, &[]);
    deal(MODEL, &c, 1, 1, &["--frac-bits", "12"]);
    let mut server = Server::start(MODEL, &a.join("p0.bin"), &[]);

    let err = failure(&server.query(&b.join("p1.bin"), &input(&b, &[1, 1, 32, 32]), &[]));
    assert!(err.contains("handshake refused: model"), "{err}");
    assert!(server.log.wait_for("session 1 failed: handshake refused: model"), "{}", server.log.text());

    let x = input(&a, &[1, 1, 28, 28]);
    let err = failure(&server.query(&c.join("p1.bin"), &x, &[]));
    assert!(err.contains("fixed-point frac bits differs (server 16, client 12)"), "{err}");
    assert!(server.log.wait_for("frac bits differs (server 16, client 12)"), "{}", server.log.text());

    // The server's own p0.bin must match its model too.
    let err =
        failure(&run(&["serve", "--model", MODEL, "--preprocessing", s(&b.join("p0.bin")), "--listen", "127.0.0.1:0"]));
    assert!(err.contains("dealt for another model"), "{err}");

    assert!(server.alive());
    assert_flags(&a, &[false, false]);
    assert_flags(&b, &[false]);
    assert_flags(&c, &[false]);
    assert_eq!(json(&server.query(&a.join("p1.bin"), &x, &["--json"]))["inference_index"], 0);
    assert_flags(&a, &[true, false]);
}

#[test]
fn a_client_killed_mid_protocol_burns_its_inference_on_both_sides() {
    let d = dir("kill-client");
    deal(MODEL, &d, 2, 5, &["--batch", SLOW_BATCH]);
    let x = input(&d, &[4, 1, 28, 28]);
    let mut server = Server::start(MODEL, &d.join("p0.bin"), &["--timeout", "20"]);
    let mut client = masq()
        .args(["query", "--connect", &server.addr, "--preprocessing", s(&d.join("p1.bin")), "--input", s(&x)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client_log = Lines::collect(client.stderr.take().unwrap());
    assert!(client_log.wait_for("running inference 0"), "{}", client_log.text());
    assert!(server.log.wait_for("inference 0 started"), "{}", server.log.text());
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(server.log.wait_for("session 1 failed"), "{}", server.log.text());
    assert!(!server.log.text().contains("inference 0 done"), "{}", server.log.text());
    assert!(server.alive());
    assert_flags(&d, &[true, false]);

    // The next client gets the next inference.
    let q = json(&server.query(&d.join("p1.bin"), &x, &["--json"]));
    assert_eq!(q["inference_index"], 1);
    assert_flags(&d, &[true, true]);
}

#[test]
fn a_server_killed_mid_protocol_fails_the_client_and_a_restart_skips_the_burned_inference() {
    let d = dir("kill-server");
    deal(MODEL, &d, 2, 6, &["--batch", SLOW_BATCH]);
    let x = input(&d, &[4, 1, 28, 28]);
    let p0 = d.join("p0.bin");
    let mut server = Server::start(MODEL, &p0, &["--timeout", "20"]);
    let mut client = masq()
        .args(["query", "--connect", &server.addr, "--preprocessing", s(&d.join("p1.bin")), "--input", s(&x)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client_log = Lines::collect(client.stderr.take().unwrap());
    assert!(client_log.wait_for("running inference 0"), "{}", client_log.text());
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let st = client.wait().unwrap();
    assert!(!st.success());
    assert!(client_log.wait_for("error:"), "{}", client_log.text());
    let err = client_log.text();
    assert!(err.contains("peer disconnected") || err.contains("connection"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_flags(&d, &[true, false]);

    let server = Server::start(MODEL, &p0, &[]);
    let q = json(&server.query(&d.join("p1.bin"), &x, &["--json"]));
    assert_eq!(q["inference_index"], 1);
    assert_flags(&d, &[true, true]);
}

#[test]
fn oversized_frames_garbage_and_stalls_end_only_that_session() {
    let d = dir("garbage");
    deal(MODEL, &d, 1, 2, &[]);
    let x = input(&d, &[1, 1, 28, 28]);
    let server = Server::start(MODEL, &d.join("p0.bin"), &["--timeout", "2"]);

    // A length header of 4 GiB - 1.
    let mut raw = TcpStream::connect(&server.addr).unwrap();
    raw.write_all(&[0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
    assert!(server.log.wait_for("session 1 failed"), "{}", server.log.text());
    assert!(server.log.text().contains("exceeds the maximum frame size"), "{}", server.log.text());
    drop(raw);

    // A well-framed message that is not one.
    let mut raw = TcpStream::connect(&server.addr).unwrap();
    raw.write_all(&[5, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0x99]).unwrap();
    assert!(server.log.wait_for("session 2 failed"), "{}", server.log.text());
    assert!(server.log.text().contains("malformed message"), "{}", server.log.text());
    drop(raw);

    // A client that connects and says nothing.
    let silent = TcpStream::connect(&server.addr).unwrap();
    assert!(server.log.wait_for("session 3 failed"), "{}", server.log.text());
    assert!(server.log.text().contains("timed out"), "{}", server.log.text());
    drop(silent);

    assert_flags(&d, &[false]);
    assert_eq!(json(&server.query(&d.join("p1.bin"), &x, &["--json"]))["inference_index"], 0);
    assert_flags(&d, &[true]);
}

#[test]
fn exhausted_preprocessing_is_refused_and_stops_the_server() {
    let d = dir("exhausted");
    deal(MODEL, &d, 1, 4, &[]);
    let x = input(&d, &[1, 1, 28, 28]);
    let mut server = Server::start(MODEL, &d.join("p0.bin"), &[]);
    assert_eq!(json(&server.query(&d.join("p1.bin"), &x, &["--json"]))["inference_index"], 0);
    let err = failure(&server.query(&d.join("p1.bin"), &x, &[]));
    assert!(err.contains("preprocessing exhausted"), "{err}");
    assert!(server.exit_status().success(), "{}", server.log.text());
    assert!(server.log.text().contains("preprocessing exhausted: stopping"), "{}", server.log.text());
    assert_flags(&d, &[true]);
}

#[test]
fn a_second_deal_needs_force_and_a_torn_pair_is_refused_on_both_sides() {
    let (a, b) = (dir("redeal-a"), dir("redeal-b"));
    deal(MODEL, &a, 1, 8, &[]);
    let err = failure(&run(&["deal", "--model", MODEL, "--count", "1", "--out", s(&a)]));
    assert!(err.contains("p0.bin exists (1 of 1 inferences unspent)") && err.contains("--force"), "{err}");
    // Without --seed, two deals of the same model hold different material and pair ids.
    ok(&run(&["deal", "--model", MODEL, "--count", "1", "--out", s(&b)]));
    ok(&run(&["deal", "--model", MODEL, "--count", "1", "--out", s(&b), "--force"]));
    // A mixed pair: p0.bin of one deal beside p1.bin of another (copied by hand; a killed deal no longer leaves one).
    std::fs::copy(b.join("p0.bin"), a.join("p0.bin")).unwrap();
    let server = Server::start(MODEL, &a.join("p0.bin"), &[]);
    let x = input(&a, &[1, 1, 28, 28]);
    let err = failure(&server.query(&a.join("p1.bin"), &x, &[]));
    assert!(err.contains("handshake refused: pair id"), "{err}");
    assert!(server.log.wait_for("session 1 failed: handshake refused: pair id"), "{}", server.log.text());
    assert_flags(&a, &[false]);
}
