//! The dealer, the server (P0) and the client (P1) as three hosts: Linux network namespaces
//! joined by veth pairs to a bridge in a fourth namespace, every connection mutually
//! authenticated TLS with the keys of one `masq keygen` (each host holding only `ca.pem` and its
//! own role's pair). One query goes direct and one through LAN-shaped `masq relay`s on every link
//! (client -> server, client -> dealer, server -> dealer); both answers equal plaintext `masq run`
//! within fixed-point tolerance, the dealer sends each inference's two halves once, and a client
//! holding keys of another `masq keygen` run is refused in the TLS handshake before any protocol
//! message (no inference is opened for it). Needs root (`ip netns add`): skipped with a message
//! otherwise. `scripts/three_hosts.sh` (`make three-hosts`) is the measuring version.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::two_process::{Lines, WAIT, dir, input, json, ok, run, s};

const MODEL: &str = "zoo:mnist_cnn";
/// Largest difference of a logit under 2PC (16 fractional bits) from plaintext (2.0e-4 seen).
const TOLERANCE: f32 = 5e-3;

fn ip(args: &[&str]) -> Result<(), String> {
    match Command::new("ip").args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("cannot run `ip`: {e}")),
    }
}

/// This test's namespaces; dropping it stops what still runs in them and deletes them (the veth
/// pairs go with the bridge's namespace).
struct Netns {
    names: Vec<String>,
}

impl Netns {
    /// `dealer`, `server`, `client` at 10.213.X.1-3 on a bridge in a fourth namespace, or why
    /// namespaces cannot be made here (the first `ip netns add` failed: not root, no `ip`, ...).
    /// Any later failure is a test failure.
    fn create(tag: &str) -> Result<(Netns, Hosts), String> {
        let ns = |role: &str| format!("masq3t-{tag}-{role}");
        let names: Vec<String> = ["net", "dealer", "server", "client"].into_iter().map(ns).collect();
        // Left by a killed test process that had this PID: ours to remove.
        for name in &names {
            if Path::new("/run/netns").join(name).exists() {
                let _ = ip(&["netns", "del", name]);
            }
        }
        let net = names[0].clone();
        ip(&["netns", "add", &net])?;
        let mut guard = Netns { names: vec![net.clone()] };
        let must = |args: &[&str]| ip(args).unwrap_or_else(|e| panic!("{e}"));
        let sub = format!("10.213.{}", std::process::id() % 250);
        must(&["-n", &net, "link", "set", "lo", "up"]);
        must(&["-n", &net, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &net, "link", "set", "br0", "up"]);
        let mut hosts = Vec::new();
        for (k, role) in ["dealer", "server", "client"].into_iter().enumerate() {
            let name = ns(role);
            must(&["netns", "add", &name]);
            guard.names.push(name.clone());
            let (veth, addr) = (format!("v-{role}"), format!("{sub}.{}", k + 1));
            must(&["-n", &name, "link", "set", "lo", "up"]);
            must(&["-n", &net, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &name]);
            must(&["-n", &net, "link", "set", &veth, "master", "br0"]);
            must(&["-n", &net, "link", "set", &veth, "up"]);
            must(&["-n", &name, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            must(&["-n", &name, "link", "set", "eth0", "up"]);
            hosts.push(Host { ns: name, addr });
        }
        let [dealer, server, client] = <[Host; 3]>::try_from(hosts).unwrap();
        Ok((guard, Hosts { dealer, server, client }))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            if let Ok(o) = Command::new("ip").args(["netns", "pids", name]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

#[derive(Debug)]
struct Host {
    ns: String,
    addr: String,
}

struct Hosts {
    dealer: Host,
    server: Host,
    client: Host,
}

impl Host {
    /// `masq ARGS` on this host.
    fn masq(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_masq")]).args(args);
        c
    }

    /// Starts a long-running `masq ARGS` here and waits for its first stdout line, which must
    /// start with `prefix`; returns the process and the address that follows it.
    fn start(&self, args: &[&str], prefix: &str) -> (Proc, String) {
        let mut child = self.masq(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Lines::collect(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            let _ = tx.send(first);
            let mut rest = String::new();
            let _ = r.read_to_string(&mut rest);
        });
        let proc = Proc { child, log };
        let first =
            rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("masq {args:?} printed nothing: {}", proc.log.text()));
        let addr = first
            .trim()
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("masq {args:?}: {first:?}: {}", proc.log.text()))
            .to_string();
        (proc, addr)
    }

    /// A LAN-shaped relay on this host's loopback to `to`; returns it and its address.
    fn lan_relay(&self, to: &str) -> (Proc, String) {
        self.start(&["relay", "--listen", "127.0.0.1:0", "--to", to, "--network", "lan"], "relaying ")
    }
}

/// A running process, killed on drop (before the namespaces are deleted: declared after them).
struct Proc {
    child: Child,
    log: Lines,
}

impl Proc {
    /// SIGTERM, then its exit within the wait.
    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < WAIT, "did not stop: {}", self.log.text());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ca.pem` and `role`'s pair from the keygen directory `keys`, into `to` (one host's folder).
fn host_keys(keys: &Path, role: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["ca.pem".to_string(), format!("{role}.pem"), format!("{role}.key")] {
        std::fs::copy(keys.join(&f), to.join(&f)).unwrap();
    }
}

#[test]
fn dealer_server_and_client_on_three_hosts_over_tls_direct_and_through_lan_relays() {
    let tag = std::process::id().to_string();
    let (_netns, h) = match Netns::create(&tag) {
        Ok(n) => n,
        Err(why) => {
            eprintln!("skipped: three_hosts needs network namespaces (root and `ip netns add`): {why}");
            return;
        }
    };
    let started = Instant::now();
    let d = dir("three-hosts");
    let keys = d.join("keys");
    ok(&run(&["keygen", "--out", s(&keys)]));
    for role in ["dealer", "server", "client"] {
        host_keys(&keys, role, &d.join(role));
    }
    // A client with keys of another `masq keygen` run.
    let other = d.join("other-keys");
    ok(&run(&["keygen", "--out", s(&other)]));
    host_keys(&other, "client", &d.join("rogue"));

    let x = input(&d, &[1, 1, 28, 28]);
    let y_plain = d.join("y-plain.npy");
    let plain = json(&run(&["run", MODEL, "--input", s(&x), "--mode", "plain", "--output", s(&y_plain), "--json"]));
    let want = plain["predictions"][0].as_u64().unwrap_or_else(|| panic!("{plain}"));
    let y_plain: Vec<f32> = masq_ir::npy::read_f32(&y_plain).unwrap().iter().copied().collect();

    let listen = |host: &Host| format!("{}:0", host.addr);
    let (dl, sl) = (listen(&h.dealer), listen(&h.server));
    let state = d.join("dealer-state");
    let (mut dealer, dealer_addr) = h.dealer.start(
        &["dealer", "--model", MODEL, "--state", s(&state), "--listen", &dl, "--tls", s(&d.join("dealer"))],
        "listening on ",
    );
    assert!(dealer_addr.starts_with(&h.dealer.addr), "{dealer_addr}");
    let serve = |dealer: &str| {
        h.server.start(
            &["serve", "--model", MODEL, "--dealer", dealer, "--listen", &sl, "--tls", s(&d.join("server"))],
            "listening on ",
        )
    };
    let query = |server: &str, dealer: &str, tls: &Path| {
        let args = ["query", "--connect", server, "--dealer", dealer, "--input", s(&x), "--tls", s(tls), "--json"];
        h.client.masq(&args).output().unwrap()
    };
    let check = |what: &str, q: &serde_json::Value| {
        assert_eq!(q["prediction"].as_u64().unwrap(), want, "{what}: {q}");
        let y: Vec<f32> = serde_json::from_value(q["output"].clone()).unwrap();
        assert_eq!(y.len(), y_plain.len(), "{what}");
        let diff = y.iter().zip(&y_plain).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff <= TOLERANCE, "{what}: max |logit - plaintext| = {diff}: {y:?} vs {y_plain:?}");
        for key in ["online_bytes_p0_to_p1", "online_bytes_p1_to_p0", "rounds"] {
            assert_eq!(q[key], q[format!("predicted_{key}")], "{what}: {key}");
        }
        eprintln!(
            "{what}: prediction {want}, max |logit - plaintext| {diff:.2e}, online {:.3} s",
            q["seconds"].as_f64().unwrap_or(0.0)
        );
        q["inference_index"].as_u64().unwrap()
    };

    // Direct: the server and the client reach the dealer's address across the bridge.
    let (mut server, server_addr) = serve(&dealer_addr);
    assert!(server_addr.starts_with(&h.server.addr), "{server_addr}");
    let direct = check("direct", &json(&query(&server_addr, &dealer_addr, &d.join("client"))));

    // A client whose keys are of another keygen run: refused in the TLS handshake. The client asks
    // the dealer first (what it deals), so the dealer is the one that turns it away; it never
    // reaches the server, and no inference is opened for it.
    let out = query(&server_addr, &dealer_addr, &d.join("rogue"));
    assert!(!out.status.success(), "the rogue client was served: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("TLS with the dealer") && err.contains("not issued by this side's CA"), "{err}");
    assert!(dealer.log.wait_for("TLS alert"), "{}", dealer.log.text());
    let log = dealer.log.text();
    let line = log.lines().find(|l| l.contains("TLS alert")).unwrap();
    assert!(line.contains("failed: authentication failed") && line.contains(&h.client.addr), "{line}");
    assert!(!server.log.text().contains("session 2:"), "the rogue client reached the server: {}", server.log.text());
    server.stop();

    // LAN: every link through a shaping relay on the connecting side's host.
    let (_r_sd, to_dealer_s) = h.server.lan_relay(&dealer_addr);
    let (mut server, server_addr) = serve(&to_dealer_s);
    let (_r_cs, to_server) = h.client.lan_relay(&server_addr);
    let (_r_cd, to_dealer_c) = h.client.lan_relay(&dealer_addr);
    let lan = check("lan", &json(&query(&to_server, &to_dealer_c, &d.join("client"))));
    assert_ne!(direct, lan);
    server.stop();

    // The dealer sent each inference's P0 and P1 half once, and nothing for the rogue client (it
    // logs a connection when it ends: wait for the last ones before stopping it).
    for party in ["P0", "P1"] {
        assert!(dealer.log.wait_for(&format!("inference {lan}: {party}'s half sent")), "{}", dealer.log.text());
    }
    dealer.stop();
    let log = dealer.log.text();
    let mut halves: Vec<(u64, String)> = log
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(": inference ")?;
            let (slot, rest) = rest.split_once(": ")?;
            let (party, _) = rest.split_once("'s half sent")?;
            Some((slot.parse().ok()?, party.to_string()))
        })
        .collect();
    halves.sort();
    let mut expect: Vec<(u64, String)> =
        [direct, lan].iter().flat_map(|&i| [(i, "P0".to_string()), (i, "P1".to_string())]).collect();
    expect.sort();
    assert_eq!(halves, expect, "{log}");
    eprintln!("three hosts: {:.1} s", started.elapsed().as_secs_f64());
}
