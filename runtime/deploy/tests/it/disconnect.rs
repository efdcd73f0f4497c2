//! A peer that goes away mid-handshake (or mid-run) is a typed error on the other side, seen at
//! once (not after the timeout), never a panic; the spent flags say what was burned.

use std::time::Instant;

use masq_deploy::{Client, DeployError, Server};
use masq_mpc::MpcError;
use masq_runtime::RuntimeError;
use masq_runtime::secure::SecureConfig;

use crate::common::{CloseAfter, Dealt, TIMEOUT, deal, image, key, model, pair, session};

fn disconnected(e: &DeployError) -> bool {
    matches!(e, DeployError::Mpc { source: MpcError::PeerDisconnected { .. }, .. })
}

/// The frames each side sends before the secure computation: the server's greeting, its proof
/// (with a key), hello and go; the client's proof (with a key), hello and acceptance.
fn handshake_frames(with_key: bool) -> (usize, usize) {
    if with_key { (4, 3) } else { (3, 2) }
}

fn parties(d: &Dealt, with_key: bool) -> (Server, Client) {
    let k = with_key.then(|| key("shared"));
    (d.server(&model(), k.as_ref()), d.client(k.as_ref()))
}

#[test]
fn a_server_closing_mid_handshake_is_a_disconnection_at_the_client() {
    for with_key in [false, true] {
        let (server_frames, _) = handshake_frames(with_key);
        let d = deal(&model(), &SecureConfig::default(), 1, 8);
        let (mut server, mut client) = parties(&d, with_key);
        for sends in 0..server_frames {
            let (ts, tc) = pair();
            let start = Instant::now();
            let (report, result) = session(&mut server, CloseAfter::new(ts, sends), &mut client, tc, &image());
            let e = result.unwrap_err();
            assert!(disconnected(&e), "key {with_key}, after {sends} frames: {e:?}");
            assert!(start.elapsed() < TIMEOUT / 2, "{:?}", start.elapsed());
            assert!(report.is_err());
        }
        // The server spent an inference when it closed instead of saying go; the client none.
        let (p0, p1) = d.spent();
        assert_eq!((p0[0], p0[1], p1[0]), (true, false, false), "key {with_key}");
        // Both go on: the next session skips what the server burned.
        let (ts, tc) = pair();
        let (report, result) = session(&mut server, ts, &mut client, tc, &image());
        assert_eq!((report.unwrap().index, result.unwrap().index), (1, 1), "key {with_key}");
    }
}

#[test]
fn a_client_closing_mid_handshake_is_a_disconnection_at_the_server() {
    for with_key in [false, true] {
        let (_, client_frames) = handshake_frames(with_key);
        let d = deal(&model(), &SecureConfig::default(), 1, 2);
        let (mut server, mut client) = parties(&d, with_key);
        for sends in 0..client_frames {
            let (ts, tc) = pair();
            let start = Instant::now();
            let (report, result) = session(&mut server, ts, &mut client, CloseAfter::new(tc, sends), &image());
            let e = report.unwrap_err();
            assert!(disconnected(&e), "key {with_key}, after {sends} frames: {e:?}");
            assert!(e.to_string().contains("peer disconnected"), "{e}");
            assert!(start.elapsed() < TIMEOUT / 2, "{:?}", start.elapsed());
            assert!(result.is_err());
        }
        assert_eq!(d.spent(), (vec![false, false], vec![false, false]), "key {with_key}");
    }
}

#[test]
fn a_peer_closing_mid_run_fails_the_other_side_and_burns_the_inference() {
    let d = deal(&model(), &SecureConfig::default(), 1, 2);
    let (mut server, mut client) = parties(&d, false);
    let (server_frames, _) = handshake_frames(false);
    let (ts, tc) = pair();
    let (report, result) = session(&mut server, CloseAfter::new(ts, server_frames + 3), &mut client, tc, &image());
    let e = result.unwrap_err();
    assert!(
        matches!(&e, DeployError::Runtime(RuntimeError::Mpc { source: MpcError::PeerDisconnected { .. }, .. })),
        "{e:?}"
    );
    assert!(report.is_err());
    assert_eq!(d.spent(), (vec![true, false], vec![true, false]));
}
