//! A session end to end, and every refusal of the handshake, over the in-memory pair.

use masq_deploy::DeployError;
use masq_runtime::secure::{self, SecureConfig};

use crate::common::{against, deal, image, model, pair, session, wire};

#[test]
fn a_session_gives_the_in_process_output_bit_for_bit_and_spends_one_inference() {
    let g = model();
    let cfg = SecureConfig { seed: 5, ..SecureConfig::default() };
    let d = deal(&g, &cfg, 1, 2);
    let (mut server, mut client) = (d.server(&g, None), d.client(None));
    let x = image();

    let (ts, tc) = pair();
    let (report, result) = session(&mut server, ts, &mut client, tc, &x);
    let (report, result) = (report.unwrap(), result.unwrap());
    assert_eq!((report.index, result.index), (0, 0));
    assert_eq!(report.peer, "in-memory client");
    assert_eq!(d.spent(), (vec![true, false], vec![true, false]));

    // Inference 0 was dealt with the material of an in-process run with the same seed.
    let reference = secure::run(&g, &x, &cfg).unwrap();
    assert_eq!(result.outputs.len(), reference.outputs.len());
    for ((name, y), (ref_name, y_ref)) in result.outputs.iter().zip(&reference.outputs) {
        assert_eq!(name, ref_name);
        assert_eq!(y.shape(), y_ref.shape(), "{name}");
        assert!(y.iter().zip(y_ref).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: {y:?} vs {y_ref:?}");
    }
    assert!(reference.report.max_abs_error < 0.05, "{}", reference.report.max_abs_error);

    // Both sides measured the same traffic, and it is what the planner predicted.
    let (m, p) = (result.measured, result.predicted);
    assert!(m.p0_to_p1 > 0 && m.p1_to_p0 > 0 && m.rounds > 0, "{m:?}");
    assert_eq!((m.p0_to_p1, m.p1_to_p0, m.rounds), (p.p0_to_p1, p.p1_to_p0, p.rounds));
    assert_eq!(
        (report.online_bytes_p0_to_p1, report.online_bytes_p1_to_p0, report.rounds),
        (m.p0_to_p1, m.p1_to_p0, m.rounds)
    );
    assert_eq!(result.model_hash, masq_deploy::hex(&server.public_model().hash));
    assert!(result.server_online_seconds.is_some());

    // The next session uses the next inference: other randomness, the same answer up to rounding.
    let (ts, tc) = pair();
    let (report, second) = session(&mut server, ts, &mut client, tc, &x);
    assert_eq!((report.unwrap().index, second.as_ref().unwrap().index), (1, 1));
    let (y0, y1) = (&result.outputs[0].1, &second.unwrap().outputs[0].1);
    assert!(y0.iter().zip(y1).all(|(a, b)| (a - b).abs() < 0.05), "{y0:?} vs {y1:?}");
    assert_eq!(d.spent(), (vec![true, true], vec![true, true]));

    // Then the preprocessing is exhausted: the server refuses, and says why.
    let (ts, tc) = pair();
    let (report, third) = session(&mut server, ts, &mut client, tc, &x);
    let e = report.unwrap_err();
    assert!(matches!(e, DeployError::Exhausted { .. }), "{e}");
    let e = third.unwrap_err();
    assert!(matches!(&e, DeployError::Refused { reason } if reason.contains("preprocessing exhausted")), "{e}");
    assert_eq!(d.spent(), (vec![true, true], vec![true, true]));
}

/// A session between the server of `server_side` and the client of a deal with `client_cfg`,
/// `client_batch` (and `client_graph`): both sides must refuse with the same mismatch, naming
/// `field`, and spend nothing.
fn refused(client_graph: &masq_ir::Graph, client_cfg: &SecureConfig, client_batch: usize, field: &str, values: &str) {
    let g = model();
    let server_side = deal(&g, &SecureConfig::default(), 1, 1);
    let client_side = deal(client_graph, client_cfg, client_batch, 1);
    let mut server = server_side.server(&g, None);
    let mut client = client_side.client(None);
    let (ts, tc) = pair();
    let x = ndarray::ArrayD::zeros(ndarray::IxDyn(&[client_batch, 1, 28, 28]));
    let (report, result) = session(&mut server, ts, &mut client, tc, &x);
    for (side, e) in [("server", report.unwrap_err()), ("client", result.unwrap_err())] {
        match &e {
            DeployError::Mismatch { field: f, .. } if f.contains(field) => {}
            _ => panic!("{side}: expected a mismatch of {field}, got {e:?}"),
        }
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("handshake refused: {field}")) && msg.contains(values), "{side}: {msg}");
    }
    assert_eq!(server_side.spent().0, vec![false]);
    assert_eq!(client_side.spent().1, vec![false]);
}

#[test]
fn preprocessing_for_another_model_is_refused_naming_the_model_hash() {
    let mut other = model();
    other.name = "another mnist_cnn".into();
    refused(&other, &SecureConfig::default(), 1, "model (hash of the public model", "(server ");
}

#[test]
fn another_fixed_point_is_refused_naming_the_frac_bits() {
    let cfg = SecureConfig { frac_bits: 12, ..SecureConfig::default() };
    refused(&model(), &cfg, 1, "fixed-point frac bits", "(server 16, client 12)");
}

#[test]
fn other_comparison_bits_are_refused_naming_them() {
    let cfg = SecureConfig { cmp_bits: 48, ..SecureConfig::default() };
    refused(&model(), &cfg, 1, "comparison bits", "(server 64, client 48)");
}

#[test]
fn another_batch_is_refused_naming_the_batch() {
    refused(&model(), &SecureConfig::default(), 2, "batch", "(server 1, client 2)");
}

#[test]
fn a_server_of_another_protocol_version_is_refused_by_the_client() {
    let d = deal(&model(), &SecureConfig::default(), 1, 1);
    let mut client = d.client(None);
    let (reason, result) = against(
        |mut t| {
            use masq_mpc::transport::Transport;
            t.send(&wire::auth(masq_deploy::PROTOCOL_VERSION + 1)).unwrap();
            wire::refusal(&t.recv().unwrap())
        },
        |t| client.query_over(t, &image(), |_| {}),
    );
    let e = result.unwrap_err();
    assert!(
        matches!(&e, DeployError::Mismatch { field: "protocol version", server, client }
            if *server == (masq_deploy::PROTOCOL_VERSION + 1).to_string() && *client == masq_deploy::PROTOCOL_VERSION.to_string()),
        "{e:?}"
    );
    let v = masq_deploy::PROTOCOL_VERSION;
    assert!(reason.contains(&format!("protocol version differs (server {}, client {v})", v + 1)), "{reason}");
    assert_eq!(d.spent().1, vec![false]);
}

#[test]
fn a_compact_mode_session_on_several_threads_matches_the_in_process_run_and_its_files_are_the_cost_models_size() {
    let g = model();
    let cfg = SecureConfig { seed: 8, cmp_mode: masq_mpc::dealer::CmpMode::Compact, ..SecureConfig::default() };
    let d = deal(&g, &cfg, 1, 1);
    // Each side reads its file one request at a time (a 1-byte material budget) and evaluates its
    // comparisons on its own thread count: the outputs stay bit-equal to the one-thread run.
    let tiny = masq_deploy::SessionOptions { material_budget_bytes: 1, ..crate::common::opts(None) };
    let server_opts = masq_deploy::SessionOptions { threads: 2, ..tiny.clone() };
    let client_opts = masq_deploy::SessionOptions { threads: 3, ..tiny };
    let mut server = masq_deploy::Server::new(&g, &d.p0(), server_opts).unwrap();
    let mut client = masq_deploy::Client::new(&d.p1(), client_opts).unwrap();
    let x = image();
    let (ts, tc) = pair();
    let (report, result) = session(&mut server, ts, &mut client, tc, &x);
    let (report, result) = (report.unwrap(), result.unwrap());
    let reference = secure::run(&g, &x, &cfg).unwrap();
    for ((_, y), (_, y_ref)) in result.outputs.iter().zip(&reference.outputs) {
        assert!(y.iter().zip(y_ref).all(|(a, b)| a.to_bits() == b.to_bits()), "{y:?} vs {y_ref:?}");
    }
    let (m, p) = (result.measured, result.predicted);
    assert_eq!((m.p0_to_p1, m.p1_to_p0, m.rounds), (p.p0_to_p1, p.p1_to_p0, p.rounds));
    assert_eq!(report.rounds, reference.report.rounds);
    // The files are seed-expanded: the model's weight-mask shares (8 bytes a weight), one
    // inference's dealer bytes as the cost model counts them, and a little framing.
    let plan = secure::plan(&g, 1, &cfg).unwrap();
    let masks: u64 = plan.layers.iter().map(|l| 8 * l.kind.weight_shape().iter().product::<usize>() as u64).sum();
    for (path, offline) in [(d.p0(), plan.total().offline_p0), (d.p1(), plan.total().offline_p1)] {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len > offline + masks && len < offline + masks + 4096, "{len} vs {offline} + {masks}");
    }
}

#[test]
fn a_client_of_another_protocol_version_is_refused_by_the_server() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 1);
    let server = d.server(&g, None);
    let (frames, report) = against(
        |mut t| {
            use masq_mpc::transport::Transport;
            let greeting = t.recv().unwrap();
            t.send(&wire::hello(9)).unwrap();
            let hello = t.recv().unwrap();
            (greeting, hello, t.recv())
        },
        |t| server.serve_over(t, "a client from the future", |_| panic!("no inference may start")),
    );
    let e = report.unwrap_err();
    assert!(
        matches!(&e, DeployError::Mismatch { field: "protocol version", server, client }
            if *server == masq_deploy::PROTOCOL_VERSION.to_string() && client == "9"),
        "{e:?}"
    );
    let (greeting, hello, after) = frames;
    // The server answers with its own hello (no public model), from which the client reports
    // the same mismatch; then it closes.
    assert_eq!((wire::variant(&greeting), wire::variant(&hello)), (wire::AUTH, wire::HELLO), "Auth, then Hello");
    assert!(hello.len() < 200, "no public model to a mismatched client: {} bytes", hello.len());
    assert!(after.is_err(), "nothing after the hello");
    assert_eq!(d.spent().0, vec![false]);
}

#[test]
fn an_input_of_the_wrong_shape_is_refused_before_anything_is_spent() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 1);
    let (mut server, mut client) = (d.server(&g, None), d.client(None));
    let x = ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 3, 28, 28]));
    let (ts, tc) = pair();
    let (report, result) = session(&mut server, ts, &mut client, tc, &x);
    let e = result.unwrap_err();
    assert!(e.to_string().contains("[1, 1, 28, 28]"), "{e}");
    let e = report.unwrap_err();
    assert!(matches!(&e, DeployError::Refused { reason } if reason.contains("[1, 1, 28, 28]")), "{e}");
    assert_eq!(d.spent(), (vec![false], vec![false]));
}

#[test]
fn an_input_beyond_the_fixed_point_range_is_refused_before_anything_is_spent() {
    let g = model();
    let d = deal(&g, &SecureConfig::default(), 1, 1);
    let (mut server, mut client) = (d.server(&g, None), d.client(None));
    // Pixel values scaled to 1e7: plaintext still classifies them, 2PC at 16 fractional bits would not.
    let x = image().mapv(|v| v * 1e7);
    let (ts, tc) = pair();
    let (report, result) = session(&mut server, ts, &mut client, tc, &x);
    let e = result.unwrap_err().to_string();
    assert!(e.contains("values within ±262144 for 16 fractional bits") && e.contains("element [0, 0,"), "{e}");
    assert!(report.is_err());
    assert_eq!(d.spent(), (vec![false], vec![false]));
}
