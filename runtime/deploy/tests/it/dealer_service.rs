//! Three processes' worth in one: a dealer service on a socket, servers and clients that get
//! their material from it. Every answer equals the in-process run's; no inference is dealt or
//! used twice, across a dealer restart; a ticket opens one fetch, once, for its own inference.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use masq_deploy::dealer::{DealerLink, DealerOptions, DealerService, Params, Served};
use masq_deploy::{Client, DeployError, Server};
use masq_mpc::Party;
use masq_mpc::dealer::CmpMode;
use masq_mpc::transport::TcpTransport;
use masq_runtime::secure::{self, SecureConfig};

use crate::common::{TIMEOUT, image, model, opts, pair, session};

/// A dealer service on a loopback socket, answering `n` connections on a thread.
struct Running {
    addr: String,
    handle: Option<std::thread::JoinHandle<Vec<masq_deploy::Result<Served>>>>,
}

impl Running {
    fn start(state: &Path, cfg: &SecureConfig, n: usize, dopts: DealerOptions) -> Running {
        let service = Arc::new(DealerService::new(&model(), cfg, 1, state, dopts).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let s = Arc::clone(&service);
        let handle = std::thread::spawn(move || {
            std::thread::scope(|scope| {
                let hs: Vec<_> = (0..n)
                    .map(|_| {
                        let (stream, _) = listener.accept().unwrap();
                        let s = &s;
                        scope.spawn(move || {
                            let t = TcpTransport::from_stream_with(
                                stream,
                                masq_mpc::transport::TcpOptions::with_timeout(TIMEOUT),
                            )
                            .unwrap();
                            s.serve_over(t, None)
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            })
        });
        Running { addr, handle: Some(handle) }
    }

    fn link(&self) -> DealerLink {
        DealerLink::new(&self.addr, opts(None))
    }

    fn join(mut self) -> Vec<masq_deploy::Result<Served>> {
        self.handle.take().unwrap().join().unwrap()
    }
}

fn cfg() -> SecureConfig {
    SecureConfig { cmp_mode: CmpMode::Compact, ..SecureConfig::default() }
}

#[test]
fn sessions_with_a_dealer_service_give_the_in_process_output_and_never_reuse_an_inference() {
    let state = tempfile::tempdir().unwrap();
    let (g, x) = (model(), image());
    // 2 infos (server, client) + 2 × (open + fetch).
    let d = Running::start(state.path(), &cfg(), 6, DealerOptions::default());
    let mut server = Server::with_dealer(&g, d.link(), opts(None)).unwrap();
    let mut client = Client::with_dealer(d.link(), opts(None)).unwrap();
    assert_eq!((server.remaining(), server.dealer()), (u64::MAX, Some(d.addr.as_str())));
    let reference = secure::run(&g, &x, &SecureConfig { seed: 1, ..cfg() }).unwrap();
    let mut indices = Vec::new();
    for _ in 0..2 {
        let (ts, tc) = pair();
        let (report, result) = session(&mut server, ts, &mut client, tc, &x);
        let (report, result) = (report.unwrap(), result.unwrap());
        assert_eq!(report.index, result.index);
        indices.push(result.index);
        // Other randomness than the in-process run, the same answer to the last bit is not
        // expected; the same prediction and a small error are.
        let (y, y_ref) = (&result.outputs[0].1, &reference.outputs[0].1);
        let err = y.iter().zip(y_ref).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-2, "max error {err}: {y:?} vs {y_ref:?}");
        assert_eq!(result.measured.rounds, result.predicted.rounds);
        assert_eq!(
            (result.measured.p0_to_p1, result.measured.p1_to_p0),
            (result.predicted.p0_to_p1, result.predicted.p1_to_p0),
            "online bytes as planned"
        );
    }
    assert_eq!(indices, [0, 1], "every session gets a new inference");
    let served = d.join();
    let mut deals: Vec<_> = served
        .into_iter()
        .filter_map(|r| match r.unwrap() {
            Served::Deal { slot, party, .. } => Some((slot, party)),
            Served::Info => None,
        })
        .collect();
    deals.sort_by_key(|&(s, p)| (s, p.index()));
    assert_eq!(deals, [(0, Party::P0), (0, Party::P1), (1, Party::P0), (1, Party::P1)], "each half once");
}

#[test]
fn the_two_halves_fit_together_the_output_is_the_plaintexts() {
    let state = tempfile::tempdir().unwrap();
    let (g, x) = (model(), image());
    let d = Running::start(state.path(), &cfg(), 4, DealerOptions::default());
    let mut server = Server::with_dealer(&g, d.link(), opts(None)).unwrap();
    let mut client = Client::with_dealer(d.link(), opts(None)).unwrap();
    let (ts, tc) = pair();
    let (_, result) = session(&mut server, ts, &mut client, tc, &x);
    let result = result.unwrap();
    let plain = masq_runtime::plain::run_single(&g, x.clone()).unwrap();
    let y = &result.outputs[0].1;
    let err = y.iter().zip(plain.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-2, "max error {err} against plaintext");
    d.join();
}

#[test]
fn a_restarted_dealer_deals_new_numbers_and_refuses_tickets_from_before() {
    let state = tempfile::tempdir().unwrap();
    let g = model();
    let want = {
        let d = Running::start(state.path(), &cfg(), 1, DealerOptions::default());
        let (params, _) = d.link().info().unwrap();
        d.join();
        params
    };
    // Open two inferences, then "crash" (drop the service: its tickets are gone).
    let (first, ticket) = {
        let d = Running::start(state.path(), &cfg(), 2, DealerOptions::default());
        let a = d.link().open(want).unwrap();
        let b = d.link().open(want).unwrap();
        drop((a.transport, b.transport));
        d.join();
        (b.slot, b.ticket)
    };
    assert_eq!(first, 1);
    let d = Running::start(state.path(), &cfg(), 2, DealerOptions::default());
    let e = d.link().fetch(want, first, ticket).unwrap_err().to_string();
    assert!(e.contains("inference 1") && e.contains("restarted"), "{e}");
    let next = d.link().open(want).unwrap();
    assert_eq!(next.slot, 2, "numbers go on above every one handed out");
    drop(next.transport);
    let _ = d.join();
    drop(g);
}

#[test]
fn a_ticket_fetches_once_only_its_own_inference_and_not_after_it_expires() {
    let state = tempfile::tempdir().unwrap();
    let dopts = DealerOptions { ticket_ttl: Duration::from_millis(300), ..DealerOptions::default() };
    let d = Running::start(state.path(), &cfg(), 8, dopts);
    let link = d.link();
    let (want, _) = link.info().unwrap();
    let a = link.open(want).unwrap();
    let b = link.open(want).unwrap();
    // b's ticket does not open a; a wrong ticket spends nothing.
    let e = link.fetch(want, a.slot, b.ticket).unwrap_err();
    assert!(matches!(&e, DeployError::Refused { reason } if reason.contains("wrong ticket")), "{e}");
    let got = link.fetch(want, a.slot, a.ticket).unwrap();
    assert_eq!(got.slot, a.slot);
    let e = link.fetch(want, a.slot, a.ticket).unwrap_err().to_string();
    assert!(e.contains("already fetched"), "{e}");
    // Another model's parameters are refused, naming the field.
    let other = Params { batch: 2, ..want };
    let e = link.open(other).unwrap_err().to_string();
    assert!(e.contains("batch"), "{e}");
    std::thread::sleep(Duration::from_millis(400));
    let e = link.fetch(want, b.slot, b.ticket).unwrap_err().to_string();
    assert!(e.contains("expired"), "{e}");
    drop((a.transport, b.transport, got.transport));
    let mut n = d.join().len();
    n -= 8;
    assert_eq!(n, 0);
}

#[test]
fn a_server_for_another_model_is_refused_before_any_session() {
    let state = tempfile::tempdir().unwrap();
    let d = Running::start(state.path(), &cfg(), 1, DealerOptions::default());
    let other = masq_ir::zoo::build("cnn_small", None, 0).unwrap();
    let e = Server::with_dealer(&other, d.link(), opts(None)).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("model") && e.contains("deals"), "{e}");
    d.join();
}

#[test]
fn a_dealer_that_goes_away_mid_stream_fails_the_session_cleanly_on_both_sides() {
    let state = tempfile::tempdir().unwrap();
    let (g, x) = (model(), image());
    let d = Running::start(state.path(), &cfg(), 3, DealerOptions::default());
    let mut server = Server::with_dealer(&g, d.link(), opts(None)).unwrap();
    // The dealer answers one more connection (the server's open) and stops listening: the
    // client's fetch finds nobody there.
    let (ts, tc) = pair();
    let short = masq_deploy::SessionOptions { timeout: Duration::from_secs(2), ..opts(None) };
    let mut client = Client::with_dealer(DealerLink::new(&d.addr, short), opts(None)).unwrap();
    let (report, result) = session(&mut server, ts, &mut client, tc, &x);
    let (es, ec) = (report.unwrap_err().to_string(), result.unwrap_err().to_string());
    assert!(ec.contains("dealer"), "client: {ec}");
    assert!(es.contains("refused") || es.contains("dealer"), "server: {es}");
    d.join();
}
