//! The TCP entry points are the same session over a socket: [`Server::serve`] on an accepted
//! connection and [`masq_deploy::query`] connecting to an address.

use std::net::TcpListener;

use masq_mpc::transport::TcpTransport;
use masq_runtime::secure::{self, SecureConfig};

use crate::common::{TIMEOUT, deal, image, key, model};

#[test]
fn a_session_over_tcp_gives_the_in_process_output() {
    let g = model();
    let cfg = SecureConfig { seed: 9, ..SecureConfig::default() };
    let d = deal(&g, &cfg, 1, 1);
    let k = key("tcp");
    let server = d.server(&g, Some(&k));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let x = image();
    let (report, result) = std::thread::scope(|s| {
        let served = s.spawn(|| {
            let t = TcpTransport::accept_with(&listener, TIMEOUT, server.options().tcp()).unwrap();
            server.serve(t, |_| {})
        });
        let mut events = Vec::new();
        let r = masq_deploy::query(&addr, &d.p1(), &x, &crate::common::opts(Some(&k)), |e| events.push(e.to_string()));
        assert_eq!(events, [format!("connected to {addr}"), "running inference 0".to_string()]);
        (served.join().unwrap(), r)
    });
    let (report, result) = (report.unwrap(), result.unwrap());
    assert_eq!((report.index, result.index), (0, 0));
    assert!(report.peer.starts_with("127.0.0.1:"), "{}", report.peer);
    let reference = secure::run(&g, &x, &cfg).unwrap();
    let (y, y_ref) = (&result.outputs[0].1, &reference.outputs[0].1);
    assert!(y.iter().zip(y_ref).all(|(a, b)| a.to_bits() == b.to_bits()), "{y:?} vs {y_ref:?}");
    assert_eq!(d.spent(), (vec![true], vec![true]));
}
