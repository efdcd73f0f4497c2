//! `masq keygen` and `masq serve` / `masq query` with `--tls`, as real processes: the files and
//! their refusal to be overwritten, an inference over TLS (with `--auth` too), and the refusals
//! (a client without TLS, a client of another CA, a TLS client at a server without TLS) before
//! anything is spent.

use crate::two_process::{MODEL, Server, assert_flags, deal, dir, failure, input, json, ok, run, s};

const FILES: [&str; 8] =
    ["ca.pem", "ca.key", "dealer.pem", "dealer.key", "server.pem", "server.key", "client.pem", "client.key"];

#[test]
fn keygen_writes_the_keys_refuses_to_overwrite_and_prints_json() {
    let d = dir("keygen");
    let k = d.join("keys");
    let out = ok(&run(&["keygen", "--out", s(&k)]));
    assert!(out.contains("server.key") && out.contains("the server (masq serve)"), "{out}");
    assert!(out.contains("keep it offline"), "{out}");
    for name in FILES {
        assert!(k.join(name).is_file(), "{name}");
    }
    let before = std::fs::read(k.join("ca.pem")).unwrap();
    let err = failure(&run(&["keygen", "--out", s(&k)]));
    assert!(err.contains("ca.pem: already exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(k.join("ca.pem")).unwrap(), before);

    let v = json(&run(&["keygen", "--out", s(&k), "--force", "--json", "--days", "3"]));
    assert_eq!(v["validity_days"], 3);
    assert_eq!(v["ca_sha256"].as_str().unwrap().len(), 64);
    let files = v["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap().rsplit('/').next().unwrap()).collect();
    assert_eq!(names, FILES);
    for f in files {
        let private = f["path"].as_str().unwrap().ends_with(".key");
        assert_eq!(f["private"], private, "{f}");
    }
    assert_ne!(std::fs::read(k.join("ca.pem")).unwrap(), before);

    for days in ["0", "36501", "x"] {
        let out = run(&["keygen", "--out", s(&d.join("never")), "--days", days]);
        assert_eq!(out.status.code(), Some(2), "--days {days}: a usage error");
    }
    assert!(!d.join("never").exists());
    let help = ok(&run(&["keygen", "--help"]));
    assert!(help.contains("ca.pem  client.pem  client.key") && help.contains("ca.key"), "{help}");
}

#[test]
fn serve_and_query_over_tls_refuse_strangers_before_anything_is_spent() {
    let d = dir("tls");
    deal(MODEL, &d, 2, 5, &[]);
    let x = input(&d, &[1, 1, 28, 28]);
    let (k1, k2) = (d.join("k1"), d.join("k2"));
    ok(&run(&["keygen", "--out", s(&k1)]));
    ok(&run(&["keygen", "--out", s(&k2)]));
    let key = d.join("shared.key");
    std::fs::write(&key, "a shared key for the TLS test\n").unwrap();
    let p1 = d.join("p1.bin");
    let mut server = Server::start(
        MODEL,
        &d.join("p0.bin"),
        &["--tls", s(&k1), "--auth", s(&key), "--max-sessions", "3", "--handshake-timeout", "2"],
    );
    assert!(server.log.wait_for("TLS on"), "{}", server.log.text());

    // A client without TLS says nothing first: the server's handshake times out, the client's
    // greeting never comes.
    let err = failure(&server.query(&p1, &x, &["--auth", s(&key), "--timeout", "10"]));
    assert!(err.contains("peer disconnected"), "{err}");
    assert!(server.log.wait_for("session 1 failed"), "{}", server.log.text());
    assert!(server.log.text().contains("a client without TLS"), "{}", server.log.text());

    // A client whose keys come from another `masq keygen`: refused in the handshake, on both sides.
    let err = failure(&server.query(&p1, &x, &["--tls", s(&k2), "--auth", s(&key)]));
    assert!(err.contains("authentication failed") && err.contains("not issued by this side's CA"), "{err}");
    assert!(server.log.wait_for("session 2 failed: authentication failed"), "{}", server.log.text());
    assert_flags(&d, &[false, false]);

    // The right keys: an inference, with the shared key on top.
    let q = json(&server.query(&p1, &x, &["--tls", s(&k1), "--auth", s(&key), "--json"]));
    assert_eq!(q["inference_index"], 0);
    for k in ["online_bytes_p0_to_p1", "online_bytes_p1_to_p0", "rounds"] {
        assert_eq!(q[k], q[format!("predicted_{k}")], "{k}: measured = predicted, TLS or not");
    }
    assert!(server.exit_status().success(), "{}", server.log.text());
    assert!(server.log.text().contains("inference 0 done"), "{}", server.log.text());
    assert_flags(&d, &[true, false]);

    // A TLS client at a server without TLS: the server's greeting is no TLS record.
    let mut plain = Server::start(MODEL, &d.join("p0.bin"), &["--max-sessions", "1"]);
    let err = failure(&plain.query(&p1, &x, &["--tls", s(&k1)]));
    assert!(err.contains("does not speak TLS"), "{err}");
    assert!(plain.exit_status().success(), "{}", plain.log.text());
    assert_flags(&d, &[true, false]);

    // Unusable keys are reported by file before anything starts.
    let err = failure(&run(&[
        "query",
        "--connect",
        "127.0.0.1:9",
        "--preprocessing",
        s(&p1),
        "--input",
        s(&x),
        "--tls",
        s(&d),
    ]));
    assert!(err.contains("ca.pem: missing"), "{err}");
}
