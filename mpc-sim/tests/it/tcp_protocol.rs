//! Whole protocols over real TCP on 127.0.0.1: a ReLU layer, and a peer that vanishes mid-protocol.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use masq_mpc::dealer::{CmpMode, Dealer, Request};
use masq_mpc::protocols::{self, Ctx};
use masq_mpc::share::{Party, reconstruct, share};
use masq_mpc::transport::{TcpOptions, TcpTransport};
use masq_mpc::{FixedPoint, MpcError};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

fn opts() -> TcpOptions {
    TcpOptions { read_timeout: Duration::from_secs(2), write_timeout: Duration::from_secs(2), ..TcpOptions::default() }
}

#[test]
fn relu_over_tcp_matches_plaintext_and_the_cost_model() {
    for mode in CmpMode::ALL {
        relu_over_tcp(mode);
    }
}

fn relu_over_tcp(mode: CmpMode) {
    let fp = FixedPoint::default();
    let n = 10_000;
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let xs: Vec<u64> = (0..n).map(|_| fp.encode(rng.random_range(-50.0..50.0))).collect();
    let x = ArrayD::from_shape_vec(IxDyn(&[n]), xs.clone()).unwrap();
    let (x0, x1) = share(&x, &mut rng);
    let (p0, p1) = Dealer::new(7).deal(&[Request::Cmp { n, bits: 64, mode }]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let t = TcpTransport::connect_with(addr, Duration::from_secs(5), opts()).unwrap();
        let mut c = Ctx::new(Party::P1, t, p1, fp).unwrap();
        let y = protocols::relu(&mut c, &x1, 64, mode).unwrap();
        (y, c.traffic())
    });
    let t = TcpTransport::accept_with(&listener, Duration::from_secs(5), opts()).unwrap();
    let mut c = Ctx::new(Party::P0, t, p0, fp).unwrap();
    let y0 = protocols::relu(&mut c, &x0, 64, mode).unwrap();
    let (y1, t1) = client.join().unwrap();
    let y = reconstruct(&y0, &y1).unwrap();
    let want: Vec<u64> = xs.iter().map(|&v| if (v as i64) >= 0 { v } else { 0 }).collect();
    assert_eq!(y.iter().copied().collect::<Vec<_>>(), want);
    let predicted = masq_mpc::cost::cmp(n, 64, mode);
    assert_eq!(c.traffic().bytes_sent, predicted.p0_to_p1);
    assert_eq!(t1.bytes_sent, predicted.p1_to_p0);
    assert_eq!(c.traffic().rounds.max(t1.rounds), predicted.rounds);
}

#[test]
fn a_peer_that_vanishes_mid_protocol_is_a_typed_error_not_a_hang() {
    let fp = FixedPoint::default();
    let n = 1000;
    let (p0, p1) = Dealer::new(3)
        .deal(&[
            Request::Cmp { n, bits: 64, mode: CmpMode::Compact },
            Request::Cmp { n, bits: 64, mode: CmpMode::Compact },
        ])
        .unwrap();
    let x = ArrayD::from_elem(IxDyn(&[n]), 5u64);
    let (x0, x1) = share(&x, &mut ChaCha12Rng::seed_from_u64(2));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let t = TcpTransport::connect_with(addr, Duration::from_secs(5), opts()).unwrap();
        let mut c = Ctx::new(Party::P1, t, p1, fp).unwrap();
        // One ReLU, then the client disappears before the second.
        let _ = protocols::relu(&mut c, &x1, 64, CmpMode::Compact).unwrap();
    });
    let t = TcpTransport::accept_with(&listener, Duration::from_secs(5), opts()).unwrap();
    let mut c = Ctx::new(Party::P0, t, p0, fp).unwrap();
    let _ = protocols::relu(&mut c, &x0, 64, CmpMode::Compact).unwrap();
    client.join().unwrap();
    let start = Instant::now();
    let err = protocols::relu(&mut c, &x0, 64, CmpMode::Compact).unwrap_err();
    assert!(
        matches!(err, MpcError::PeerDisconnected { .. } | MpcError::Timeout { .. } | MpcError::Io(_)),
        "unexpected error: {err}"
    );
    assert!(start.elapsed() < Duration::from_secs(3), "error came within the timeout");
}
