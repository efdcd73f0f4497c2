//! TLS channels: `keygen`'s files, identities checked on load, a pair of transports over TLS
//! (both directions, big simultaneous sends), every refusal before any protocol message (wrong
//! CA, a certificate of another role, a peer without TLS on either side) within the timeout, and
//! a whole session over TLS giving the in-process output.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use masq_deploy::tls::{self, Identity, Role};
use masq_deploy::{DeployError, Server, SessionOptions};
use masq_mpc::MpcError;
use masq_mpc::transport::{TcpOptions, TcpTransport, Transport};
use masq_runtime::secure::{self, SecureConfig};
use tempfile::TempDir;

use crate::common::{TIMEOUT, deal, image, key, model};

/// The handshake limit of the refusal tests: a test that hangs fails well after it.
const SHORT: Duration = Duration::from_secs(5);

fn keys() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    tls::keygen(dir.path(), false, 30).unwrap();
    dir
}

fn id(dir: &Path, role: Role) -> Identity {
    Identity::load(dir, role).unwrap()
}

fn tcp() -> TcpOptions {
    TcpOptions::with_timeout(TIMEOUT)
}

/// Runs `accept` on one connection of a fresh listener (in a thread) and `connect` to it here.
fn over<A: Send, C>(accept: impl FnOnce(TcpStream) -> A + Send, connect: impl FnOnce(&str) -> C) -> (A, C) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::scope(|s| {
        let a = s.spawn(move || accept(listener.accept().unwrap().0));
        let c = connect(&addr);
        (a.join().expect("the accepting side panicked"), c)
    })
}

fn auth_reason(e: &DeployError) -> &str {
    match e {
        DeployError::Auth { reason } => reason,
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

#[test]
fn keygen_writes_every_file_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("keys");
    let s = tls::keygen(&d, false, 7).unwrap();
    let names: Vec<String> = s.files.iter().map(|f| f.path.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(
        names,
        ["ca.pem", "ca.key", "dealer.pem", "dealer.key", "server.pem", "server.key", "client.pem", "client.key"]
    );
    assert_eq!(names, tls::file_names());
    assert_eq!((s.validity_days, s.ca_sha256.len()), (7, 64));
    for f in &s.files {
        let text = std::fs::read_to_string(&f.path).unwrap();
        let head = if f.private { "-----BEGIN PRIVATE KEY-----" } else { "-----BEGIN CERTIFICATE-----" };
        assert!(text.starts_with(head), "{}: {text}", f.path.display());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&f.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, if f.private { 0o600 } else { 0o644 }, "{}", f.path.display());
        }
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 8);
    for role in Role::ALL {
        assert_eq!(id(&d, role).role(), role);
    }

    let before = std::fs::read(d.join("ca.pem")).unwrap();
    let e = tls::keygen(&d, false, 7).unwrap_err();
    assert!(matches!(&e, DeployError::BadKey { path, .. } if path.ends_with("ca.pem")), "{e:?}");
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read(d.join("ca.pem")).unwrap(), before, "refused, so untouched");
    // One file is enough to refuse, and nothing else is written then.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("client.key"), "mine").unwrap();
    let e = tls::keygen(&partial, false, 7).unwrap_err();
    assert!(e.to_string().contains("client.key") && e.to_string().contains("1 of the 8"), "{e}");
    assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 1);

    let again = tls::keygen(&d, true, 7).unwrap();
    assert_ne!(std::fs::read(d.join("ca.pem")).unwrap(), before);
    assert_ne!(again.ca_sha256, s.ca_sha256);
    for days in [0, tls::MAX_VALIDITY_DAYS + 1] {
        let e = tls::keygen(&dir.path().join("never"), false, days).unwrap_err();
        assert!(e.to_string().contains("validity days"), "{e}");
    }
}

#[test]
fn identities_are_checked_when_loaded_and_errors_name_the_file() {
    let a = keys();
    let b = keys();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let copy = |from: &Path, name: &str, to: &str| std::fs::copy(from.join(name), d.join(to)).unwrap();
    let err = |role| Identity::load(d, role).unwrap_err();
    let expect = |e: DeployError, file: &str, words: &str| {
        assert!(matches!(&e, DeployError::BadKey { path, .. } if path.ends_with(file)), "{e:?}");
        assert!(e.to_string().contains(words), "{e}");
    };

    expect(err(Role::Server), "ca.pem", "missing");
    copy(a.path(), "ca.pem", "ca.pem");
    expect(err(Role::Server), "server.pem", "missing");
    std::fs::write(d.join("server.pem"), "not a certificate").unwrap();
    copy(a.path(), "server.key", "server.key");
    expect(err(Role::Server), "server.pem", "no certificate");
    // A client's files under the server's names: the wrong role.
    copy(a.path(), "client.pem", "server.pem");
    copy(a.path(), "client.key", "server.key");
    expect(err(Role::Server), "server.pem", "of the client (client.masq) role, not of the server");
    // A key of another certificate.
    copy(a.path(), "server.pem", "server.pem");
    expect(err(Role::Server), "server.key", "does not belong to the certificate");
    std::fs::write(d.join("server.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    expect(err(Role::Server), "server.key", "private key");
    std::fs::write(d.join("server.key"), "").unwrap();
    expect(err(Role::Server), "server.key", "not a PEM private key");
    copy(a.path(), "server.key", "server.key");
    assert_eq!(Identity::load(d, Role::Server).unwrap().role(), Role::Server);
    // Another run's CA.
    copy(b.path(), "ca.pem", "ca.pem");
    expect(err(Role::Server), "server.pem", "not issued by the CA in ca.pem");
    // The CA's key is no certificate.
    copy(a.path(), "ca.key", "ca.pem");
    expect(err(Role::Server), "ca.pem", "no certificate");
}

#[test]
fn an_expired_certificate_is_refused_on_load() {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["server.masq".to_string()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = p.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
    let e = Identity::load(dir.path(), Role::Server).unwrap_err();
    assert!(matches!(&e, DeployError::BadKey { path, .. } if path.ends_with("server.pem")), "{e:?}");
    assert!(e.to_string().contains("expired on 2021-01-01"), "{e}");
}

#[test]
fn frames_go_both_ways_and_big_simultaneous_sends_do_not_deadlock() {
    let k = keys();
    let (server_id, client_id) = (id(k.path(), Role::Server), id(k.path(), Role::Client));
    let (accepted, connected) = over(
        |s| tls::accept(s, tcp(), &server_id, &[Role::Dealer, Role::Client], SHORT).unwrap(),
        |addr| tls::connect(addr, SHORT, tcp(), &client_id, Role::Server).unwrap(),
    );
    let ((mut a, role), mut b) = (accepted, connected);
    assert_eq!(role, Role::Client);
    assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    b.send(b"hello").unwrap();
    b.flush().unwrap();
    assert_eq!(a.recv().unwrap(), b"hello");
    a.send(b"").unwrap();
    a.send(&[7; 100_000]).unwrap();
    a.flush().unwrap();
    assert_eq!(b.recv().unwrap(), b"");
    assert_eq!(b.recv().unwrap(), vec![7; 100_000]);

    // Both push a 32 MiB frame before reading: far more than the socket buffers hold.
    let xs: Vec<u64> = (0..(4u64 << 20)).collect();
    let ys: Vec<u64> = xs.iter().map(|x| x.rotate_left(17) ^ 0xA5A5).collect();
    let (xs2, ys2) = (xs.clone(), ys.clone());
    let start = Instant::now();
    let t = std::thread::spawn(move || (b.exchange_u64s(&ys2, "big").unwrap(), b));
    assert_eq!(a.exchange_u64s(&xs2, "big").unwrap(), ys);
    let (got, mut b) = t.join().unwrap();
    assert_eq!(got, xs);
    assert!(start.elapsed() < TIMEOUT, "{:?}", start.elapsed());

    // Frame limits hold over TLS, and a peer that goes is seen going.
    b.set_max_frame_bytes(8);
    a.send(&[1; 9]).unwrap();
    a.flush().unwrap();
    assert!(matches!(b.recv(), Err(MpcError::FrameTooLarge { len: 9, max: 8 })));
    // The stream's framing is lost after that: the reader has stopped, and says so.
    assert!(matches!(b.recv(), Err(MpcError::PeerDisconnected { .. })));
}

#[test]
fn a_peer_that_goes_away_is_a_disconnection_not_a_hang() {
    let k = keys();
    let (server_id, client_id) = (id(k.path(), Role::Server), id(k.path(), Role::Client));
    let ((mut a, _), b) = over(
        |s| tls::accept(s, tcp(), &server_id, &[Role::Client], SHORT).unwrap(),
        |addr| tls::connect(addr, SHORT, tcp(), &client_id, Role::Server).unwrap(),
    );
    drop(b);
    let start = Instant::now();
    let e = a.recv().unwrap_err();
    assert!(matches!(e, MpcError::PeerDisconnected { .. }), "{e:?}");
    assert!(start.elapsed() < SHORT);
}

#[test]
fn a_wrong_ca_is_refused_on_both_sides() {
    let (k1, k2) = (keys(), keys());
    let (server_id, stranger) = (id(k1.path(), Role::Server), id(k2.path(), Role::Client));
    let start = Instant::now();
    let (accepted, connected) = over(
        |s| tls::accept(s, tcp(), &server_id, &[Role::Client], SHORT),
        |addr| tls::connect(addr, SHORT, tcp(), &stranger, Role::Server),
    );
    assert!(start.elapsed() < SHORT, "{:?}", start.elapsed());
    let e = connected.unwrap_err();
    let r = auth_reason(&e);
    assert!(r.contains("the server at 127.0.0.1:") && r.contains("not issued by this side's CA"), "{e}");
    let e = accepted.unwrap_err();
    assert!(auth_reason(&e).contains("the peer refused the handshake"), "{e}");
}

#[test]
fn a_certificate_of_another_role_is_refused() {
    let k = keys();
    // A client's identity where a server is expected: the connecting side refuses it.
    let (as_server, client_id) = (id(k.path(), Role::Client), id(k.path(), Role::Client));
    let (accepted, connected) = over(
        |s| tls::accept(s, tcp(), &as_server, &[Role::Client], SHORT),
        |addr| tls::connect(addr, SHORT, tcp(), &client_id, Role::Server),
    );
    let e = connected.unwrap_err();
    let r = auth_reason(&e);
    assert!(r.contains("(expected: server.masq) is for client.masq: a certificate of another role"), "{e}");
    assert!(auth_reason(&accepted.unwrap_err()).contains("refused the handshake"));

    // A client where only dealers may connect: the accepting side refuses it.
    let server_id = id(k.path(), Role::Server);
    let (accepted, connected) = over(
        |s| tls::accept(s, tcp(), &server_id, &[Role::Dealer], SHORT),
        |addr| tls::connect(addr, SHORT, tcp(), &client_id, Role::Server),
    );
    let e = accepted.unwrap_err();
    assert!(auth_reason(&e).contains("(allowed: dealer.masq) is for client.masq"), "{e}");
    assert!(auth_reason(&connected.unwrap_err()).contains("refused the handshake"));

    // The roles the peer holds are what the acceptor reports.
    let dealer_id = id(k.path(), Role::Dealer);
    let (accepted, connected) = over(
        |s| tls::accept(s, tcp(), &server_id, &[Role::Client, Role::Dealer], SHORT),
        |addr| tls::connect(addr, SHORT, tcp(), &dealer_id, Role::Server),
    );
    assert_eq!(accepted.unwrap().1, Role::Dealer);
    connected.unwrap();
}

#[test]
fn a_plain_client_at_a_tls_listener_fails_within_the_timeout() {
    let k = keys();
    let server_id = id(k.path(), Role::Server);
    // Silent (a masq client without TLS waits for the server's greeting): the handshake times out.
    let start = Instant::now();
    let (accepted, plain) = over(
        |s| tls::accept(s, tcp(), &server_id, &[Role::Client], Duration::from_millis(500)),
        |addr| {
            let mut t = TcpTransport::connect_with(addr, SHORT, TcpOptions::with_timeout(SHORT)).unwrap();
            t.recv()
        },
    );
    let e = accepted.unwrap_err();
    assert!(
        matches!(&e, DeployError::Mpc { source: MpcError::Timeout { .. }, .. })
            && e.to_string().contains("a client without TLS"),
        "{e}"
    );
    assert!(matches!(plain, Err(MpcError::PeerDisconnected { .. })), "{plain:?}");
    assert!(start.elapsed() < SHORT, "{:?}", start.elapsed());

    // Talking first: refused as soon as its bytes arrive.
    let start = Instant::now();
    let (accepted, _) = over(
        |s| tls::accept(s, tcp(), &server_id, &[Role::Client], SHORT),
        |addr| {
            let mut t = TcpTransport::connect_with(addr, SHORT, TcpOptions::with_timeout(SHORT)).unwrap();
            t.send(b"a plain frame").and_then(|()| t.flush()).unwrap();
            t.recv()
        },
    );
    let e = accepted.unwrap_err();
    assert!(auth_reason(&e).contains("does not speak TLS"), "{e}");
    assert!(start.elapsed() < SHORT, "{:?}", start.elapsed());
}

#[test]
fn a_tls_client_at_a_plain_listener_fails_within_the_timeout() {
    let k = keys();
    let client_id = id(k.path(), Role::Client);
    // A plain masq server greets first: its frame is no TLS record.
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 1);
    let server = d.server(&g, None);
    let start = Instant::now();
    let (served, connected) = over(
        |s| server.serve(TcpTransport::from_stream_with(s, server.options().tcp()).unwrap(), |_| {}),
        |addr| tls::connect(addr, SHORT, tcp(), &client_id, Role::Server),
    );
    let e = connected.unwrap_err();
    assert!(auth_reason(&e).contains("does not speak TLS"), "{e}");
    assert!(served.is_err());
    assert!(start.elapsed() < SHORT, "{:?}", start.elapsed());
    assert_eq!(d.spent(), (vec![false], vec![false]));

    // A listener that says nothing: the handshake times out.
    let start = Instant::now();
    let (_, connected) = over(
        |s| {
            std::thread::sleep(Duration::from_millis(800));
            drop(s)
        },
        |addr| tls::connect(addr, Duration::from_millis(300), tcp(), &client_id, Role::Server),
    );
    let e = connected.unwrap_err();
    assert!(matches!(&e, DeployError::Mpc { source: MpcError::Timeout { .. }, .. }), "{e:?}");
    assert!(start.elapsed() < SHORT, "{:?}", start.elapsed());
}

#[test]
fn connect_retries_until_the_tls_listener_appears() {
    let k = keys();
    let (server_id, client_id) = (id(k.path(), Role::Server), id(k.path(), Role::Client));
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let client = std::thread::spawn(move || tls::connect(&addr.to_string(), SHORT, tcp(), &client_id, Role::Server));
    std::thread::sleep(Duration::from_millis(100));
    let listener = TcpListener::bind(addr).unwrap();
    let (mut a, _) = tls::accept(listener.accept().unwrap().0, tcp(), &server_id, &[Role::Client], SHORT).unwrap();
    let mut b = client.join().unwrap().unwrap();
    b.send(b"late").and_then(|()| b.flush()).unwrap();
    assert_eq!(a.recv().unwrap(), b"late");
}

/// One session over TCP between a real server and `masq_deploy::query`, over TLS with the keys
/// in `keys` when given (and the HMAC key either way); the report, the result and the events.
fn tcp_session(
    keys: Option<&Path>,
    cfg: &SecureConfig,
) -> (masq_deploy::SessionReport, masq_deploy::QueryResult, Vec<String>, String) {
    let g = model();
    let d = deal(&g, cfg, 1, 1);
    let shared = key("tls");
    let opts = |role| SessionOptions {
        timeout: TIMEOUT,
        key: Some(shared.clone()),
        tls: keys.map(|k| id(k, role)),
        ..SessionOptions::default()
    };
    let server = Server::new(&g, &d.p0(), opts(Role::Server)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let x = image();
    let mut events = Vec::new();
    let (report, result) = std::thread::scope(|s| {
        let served = s.spawn(|| {
            let o = server.options();
            let stream = listener.accept().unwrap().0;
            let t = match &o.tls {
                Some(tls_id) => {
                    let (t, role) = tls::accept(stream, o.tcp(), tls_id, &[Role::Client], o.handshake_timeout).unwrap();
                    assert_eq!(role, Role::Client);
                    t
                }
                None => TcpTransport::from_stream_with(stream, o.tcp()).unwrap(),
            };
            server.serve(t, |_| {})
        });
        let r = masq_deploy::query(&addr, &d.p1(), &x, &opts(Role::Client), |e| events.push(e.to_string()));
        (served.join().unwrap(), r)
    });
    assert_eq!(d.spent(), (vec![true], vec![true]));
    (report.unwrap(), result.unwrap(), events, addr)
}

#[test]
fn a_session_over_tls_gives_the_output_and_traffic_of_one_without() {
    let k = keys();
    let cfg = SecureConfig { seed: 11, ..SecureConfig::default() };
    let (report, result, events, addr) = tcp_session(Some(k.path()), &cfg);
    assert_eq!(events, [format!("connected to {addr} (TLS)"), "running inference 0".to_string()]);
    let (plain_report, plain, plain_events, plain_addr) = tcp_session(None, &cfg);
    assert_eq!(plain_events[0], format!("connected to {plain_addr}"));
    let reference = secure::run(&model(), &image(), &cfg).unwrap();
    for y in [&result.outputs[0].1, &plain.outputs[0].1] {
        let y_ref = &reference.outputs[0].1;
        assert!(y.iter().zip(y_ref).all(|(a, b)| a.to_bits() == b.to_bits()), "{y:?} vs {y_ref:?}");
    }
    // The channel is below the transport's framing: the same frames, bytes and rounds.
    assert_eq!(result.measured, plain.measured);
    assert_eq!(
        (report.online_bytes_p0_to_p1, report.online_bytes_p1_to_p0, report.rounds, report.setup_bytes),
        (
            plain_report.online_bytes_p0_to_p1,
            plain_report.online_bytes_p1_to_p0,
            plain_report.rounds,
            plain_report.setup_bytes
        )
    );
}

#[test]
fn a_query_over_tls_to_a_server_of_another_ca_is_refused_and_spends_nothing() {
    let (k1, k2) = (keys(), keys());
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 1);
    let server = d.server(&g, None);
    let server_id = id(k1.path(), Role::Server);
    let opts = SessionOptions { timeout: SHORT, tls: Some(id(k2.path(), Role::Client)), ..SessionOptions::default() };
    let (accepted, queried) = over(
        |s| tls::accept(s, server.options().tcp(), &server_id, &[Role::Client], SHORT),
        |addr| masq_deploy::query(addr, &d.p1(), &image(), &opts, |_| {}),
    );
    assert!(accepted.is_err());
    let e = queried.unwrap_err();
    assert!(auth_reason(&e).contains("not issued by this side's CA"), "{e}");
    assert_eq!(d.spent(), (vec![false], vec![false]));
}
