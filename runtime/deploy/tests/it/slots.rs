//! Which inference a session uses: the server decides from its own file, the client accepts
//! only an unspent slot, nobody can make the other skip or burn material, a failed handshake
//! spends nothing, one file is held by one process, a torn pair is refused, and concurrent
//! sessions of one server draw different slots.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use masq_deploy::{DeployError, Server};
use masq_mpc::Party;
use masq_mpc::transport::Transport;
use masq_runtime::secure::{self, SecureConfig};

use crate::common::{against, deal, image, model, opts, pair, session, wire};

/// Offset of the spent flag of inference `i` (see `masq_deploy::file`).
fn flag_at(i: u64) -> u64 {
    92 + i
}

/// Sets a spent flag by hand, as a crash after marking (or a hostile edit) leaves it.
fn set_flag(path: &Path, i: u64) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(flag_at(i))).unwrap();
    f.write_all(&[1]).unwrap();
}

#[test]
fn a_slot_the_server_spent_is_skipped_and_the_clients_copy_stays_unspent() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 3);
    // The server crashed after marking slot 0 (before its Go reached the client).
    set_flag(&d.p0(), 0);
    let (mut server, mut client) = (d.server(&g, None), d.client(None));
    let (ts, tc) = pair();
    let (report, result) = session(&mut server, ts, &mut client, tc, &image());
    assert_eq!((report.unwrap().index, result.unwrap().index), (1, 1));
    assert_eq!(d.spent(), (vec![true, true, false], vec![false, true, false]));
}

#[test]
fn a_client_whose_offered_slot_is_spent_refuses_and_nothing_is_spent() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 2);
    // p1.bin says slot 0 is spent while p0.bin does not: edited, or a p0.bin restored from a copy.
    set_flag(&d.p1(), 0);
    let (mut server, mut client) = (d.server(&g, None), d.client(None));
    let (ts, tc) = pair();
    let (report, result) = session(&mut server, ts, &mut client, tc, &image());
    let e = result.unwrap_err();
    assert!(matches!(&e, DeployError::Exhausted { reason } if reason.contains("out of step")), "{e}");
    assert!(matches!(report.unwrap_err(), DeployError::Refused { .. }));
    assert_eq!(d.spent(), (vec![false, false], vec![true, false]), "the server skipped nothing");
    assert_eq!(server.remaining(), 2, "the reservation was released");
}

#[test]
fn a_client_answering_for_another_slot_is_refused_and_burns_nothing() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 10);
    let header = *masq_deploy::DealerFile::open(&d.p1(), Party::P1).unwrap().header();
    let server = d.server(&g, None);
    // A raw client (no authentication on this server) that read p1.bin's header, then accepts
    // slot 9 instead of the slot offered.
    let (reason, report) = against(
        |mut t| {
            let _greeting = t.recv().unwrap();
            t.send(&wire::hello_of(&header, 9)).unwrap();
            let _offer = t.recv().unwrap();
            t.send(&wire::accept(9)).unwrap();
            wire::refusal(&t.recv().unwrap())
        },
        |t| server.serve_over(t, "a raw client", |_| panic!("no inference may start")),
    );
    assert!(report.is_err());
    assert!(reason.contains("offered inference 0, the client accepted 9"), "{reason}");
    assert_eq!(d.spent().0, vec![false; 10]);
    assert_eq!(server.remaining(), 10);
}

#[test]
fn a_connection_that_sends_nothing_reserves_nothing() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 1);
    let server = d.server(&g, None);
    let mut client = d.client(None);
    std::thread::scope(|s| {
        let (idle_s, idle_c) = pair();
        let idle = s.spawn(|| server.serve_over(idle_s, "idle", |_| panic!("no inference may start")));
        // While the idle session waits for a hello, the one slot is still free for a real client.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(server.remaining(), 1);
        let (ts, tc) = pair();
        let served = s.spawn(|| server.serve_over(ts, "real", |_| {}));
        let q = client.query_over(tc, &image(), |_| {}).unwrap();
        assert_eq!((q.index, served.join().unwrap().unwrap().index), (0, 0));
        drop(idle_c);
        assert!(idle.join().unwrap().is_err());
    });
}

#[test]
fn repeated_failed_handshakes_spend_nothing() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 2);
    let server = d.server(&g, None);
    for _ in 0..5 {
        let (_, report) = against(
            |mut t| {
                let _ = t.recv();
                // Gone before sending its hello.
            },
            |t| server.serve_over(t, "a client that leaves", |_| panic!("no inference may start")),
        );
        assert!(report.is_err());
    }
    assert_eq!(d.spent().0, vec![false, false]);
    assert_eq!(server.remaining(), 2);
}

#[test]
fn a_file_in_use_is_refused_naming_it() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 1);
    let _server = d.server(&g, None);
    let e = Server::new(&g, &d.p0(), opts(None)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("p0.bin") && msg.contains("in use"), "{msg}");
    let _client = d.client(None);
    let e = masq_deploy::Client::new(&d.p1(), opts(None)).unwrap_err().to_string();
    assert!(e.contains("p1.bin") && e.contains("in use"), "{e}");
    // Reading the flags (tools, tests) needs no lock.
    assert_eq!(masq_deploy::file::read_spent(&d.p0()).unwrap(), vec![false]);
    drop(_server);
    assert!(masq_deploy::DealerFile::open(&d.p0(), Party::P0).is_ok(), "the lock goes with its holder");
}

#[test]
fn a_torn_pair_is_refused_naming_the_pair_id_and_spends_nothing() {
    let g = model();
    let cfg = SecureConfig::default();
    let (a, b) = (deal(&g, &cfg, 1, 1), deal(&g, &cfg, 1, 1));
    // p0.bin of one deal, p1.bin of another with identical settings.
    let mut server = a.server(&g, None);
    let mut client = b.client(None);
    let (ts, tc) = pair();
    let (report, result) = session(&mut server, ts, &mut client, tc, &image());
    for e in [report.unwrap_err(), result.unwrap_err()] {
        assert!(matches!(&e, DeployError::Mismatch { field, .. } if field.starts_with("pair id")), "{e}");
    }
    assert_eq!((a.spent().0, b.spent().1), (vec![false], vec![false]));
}

#[test]
fn concurrent_sessions_of_one_server_draw_different_slots_and_give_the_in_process_output() {
    let g = model();
    let cfg = SecureConfig { seed: 3, ..SecureConfig::default() };
    let d = deal(&g, &cfg, 1, 4);
    let server = d.server(&g, None);
    // Two clients, each with its own copy of p1.bin's slots: the same file, opened in turn by
    // each client thread is not possible (it is locked), so both run in one client object.
    let mut client = d.client(None);
    let x = image();
    let ((r0, r1), q) = std::thread::scope(|s| {
        let (ts0, tc0) = pair();
        let (ts1, tc1) = pair();
        let h0 = s.spawn(|| server.serve_over(ts0, "first", |_| {}));
        let h1 = s.spawn(|| server.serve_over(ts1, "second", |_| {}));
        // The client runs its two sessions one after the other; the server holds both at once
        // (the second waits in its handshake while the first runs).
        let q0 = client.query_over(tc0, &x, |_| {});
        let q1 = client.query_over(tc1, &x, |_| {});
        ((h0.join().unwrap(), h1.join().unwrap()), (q0, q1))
    });
    let (r0, r1) = (r0.unwrap(), r1.unwrap());
    let (q0, q1) = (q.0.unwrap(), q.1.unwrap());
    let mut used = [r0.index, r1.index];
    used.sort();
    assert_eq!(used, [0, 1]);
    assert_eq!((q0.index, q1.index), (r0.index, r1.index));
    let reference = secure::run(&g, &x, &cfg).unwrap();
    let first = if q0.index == 0 { &q0 } else { &q1 };
    let (y, y_ref) = (&first.outputs[0].1, &reference.outputs[0].1);
    assert!(y.iter().zip(y_ref).all(|(a, b)| a.to_bits() == b.to_bits()), "{y:?} vs {y_ref:?}");
    assert_eq!(d.spent(), (vec![true, true, false, false], vec![true, true, false, false]));
}
