//! A deal sent over a transport by `Dealer::send_deal` and read by `wire::receive_deal` is the
//! dealt material, bit for bit, in bounded segments; a stream that disagrees with the reader's
//! plan is a typed error naming the item.

use masq_mpc::dealer::codec::{encode_material, encode_model_material, encode_preprocessing};
use masq_mpc::dealer::section_reader::SectionPlan;
use masq_mpc::dealer::wire::receive_deal;
use masq_mpc::dealer::{CmpMode, Dealer, LinearKind, Preprocessing, Request};
use masq_mpc::kernel::Conv2dParams;
use masq_mpc::share::Party;
use masq_mpc::transport::{Transport, mem_pair};

fn kind() -> LinearKind {
    LinearKind::Conv2d {
        weight_shape: [6, 2, 3, 3],
        params: Conv2dParams { padding: [1; 4], ..Conv2dParams::default() },
    }
}

fn requests() -> Vec<Request> {
    vec![
        Request::Linear { layer: 0, input_shape: vec![1, 2, 5, 5] },
        Request::Cmp { n: 150, bits: 64, mode: CmpMode::Compact },
        Request::MaskedAct { relus: 70, squares: 80, bits: 41, mode: CmpMode::OneRound },
        Request::Mul { n: 150 },
        Request::Square { n: 150 },
        Request::Cmp { n: 33, bits: 40, mode: CmpMode::OneRound },
        Request::MatMul { batch: 2, m: 3, k: 4, n: 5 },
    ]
}

fn plan(party: Party, requests: Vec<Request>, budget: u64) -> SectionPlan {
    SectionPlan { party, requests, layers: vec![(0, kind())], budget, name: "dealer stream".into() }
}

fn dealer() -> Dealer {
    Dealer::from_key([7; 32])
}

/// Sends `party`'s half of deal 0 on a thread; returns the receiving end.
fn sent(party: Party, requests: Vec<Request>) -> masq_mpc::transport::MemTransport {
    let (mut tx, rx) = mem_pair();
    std::thread::spawn(move || {
        let mut d = dealer();
        let (m0, m1) = d.setup_model(&[(0, kind())]).unwrap();
        let m = if party == Party::P0 { m0 } else { m1 };
        let _ = d.send_deal(&mut tx, party, &m, 0, &requests);
    });
    rx
}

fn drain(
    first: Preprocessing,
    rest: &mut Box<dyn masq_mpc::dealer::stream::Refill>,
) -> masq_mpc::Result<(Preprocessing, usize)> {
    let mut all = first;
    let mut count = 1;
    while let Some(s) = rest.refill()? {
        all.extend(s)?;
        count += 1;
    }
    Ok((all, count))
}

#[test]
fn a_deal_over_a_transport_is_the_dealt_material_in_bounded_segments() {
    let mut reference = dealer();
    let (m0, m1) = reference.setup_model(&[(0, kind())]).unwrap();
    let (p0, p1) = reference.deal(&requests()).unwrap();
    for (party, want, model) in [(Party::P0, p0, m0), (Party::P1, p1, m1)] {
        for budget in [1, 20_000, u64::MAX] {
            let (got_model, first, mut rest) =
                receive_deal(sent(party, requests()), plan(party, requests(), budget)).unwrap();
            assert_eq!(encode_model_material(&got_model), encode_model_material(&model), "{party}: model material");
            let (all, count) = drain(first, &mut rest).unwrap();
            for (i, (a, b)) in all.items().zip(want.items()).enumerate() {
                let (mut ea, mut eb) = (Vec::new(), Vec::new());
                encode_material(a, &mut ea);
                encode_material(b, &mut eb);
                assert!(ea == eb, "{party}: item {i} differs");
            }
            assert_eq!(encode_preprocessing(&all), encode_preprocessing(&want), "{party}, budget {budget}");
            match budget {
                1 => assert_eq!(count, requests().len()),
                u64::MAX => assert_eq!(count, 1),
                _ => assert!(count > 1 && count < requests().len(), "{count} segments"),
            }
        }
    }
}

#[test]
fn a_stream_that_disagrees_with_the_plan_is_refused_naming_it() {
    // The other party's material.
    let e = receive_deal(sent(Party::P0, requests()), plan(Party::P1, requests(), 1)).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("dealer stream") && e.to_string().contains("party 0"), "{e}");
    // Fewer requests than the plan.
    let mut fewer = requests();
    fewer.pop();
    let e = receive_deal(sent(Party::P1, fewer), plan(Party::P1, requests(), 1)).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("requests"), "{e}");
    // A plan whose product is larger: P1's explicit c1 is longer than the plan allows... or shorter.
    let mut bigger = requests();
    bigger[3] = Request::Mul { n: 151 };
    let r = receive_deal(sent(Party::P1, requests()), plan(Party::P1, bigger, 1))
        .and_then(|(_, first, mut rest)| drain(first, &mut rest).map(|_| ()));
    let e = r.unwrap_err().to_string();
    assert!(e.contains("item 3"), "{e}");
    // Another comparison mode.
    let mut modes = requests();
    modes[1] = Request::Cmp { n: 150, bits: 64, mode: CmpMode::OneRound };
    let r = receive_deal(sent(Party::P1, requests()), plan(Party::P1, modes, 1))
        .and_then(|(_, first, mut rest)| drain(first, &mut rest).map(|_| ()));
    assert!(r.unwrap_err().to_string().contains("item 1"));
}

#[test]
fn an_item_longer_than_the_plan_allows_is_refused_before_it_is_buffered() {
    let (mut tx, rx) = mem_pair();
    std::thread::spawn(move || {
        let mut d = dealer();
        let (_, m1) = d.setup_model(&[(0, kind())]).unwrap();
        // A real start and model, then an item announcing 2^40 bytes.
        let mut probe = masq_mpc::transport::mem_pair();
        let _ = d.send_deal(&mut probe.0, Party::P1, &m1, 0, &[]);
        let start = probe.1.recv().unwrap();
        let layer = probe.1.recv().unwrap();
        // The start frame says 0 requests; rewrite its last field (requests) to the plan's.
        let mut start = start;
        let n = start.len();
        start[n - 8..].copy_from_slice(&(requests().len() as u64).to_le_bytes());
        tx.send(&start).unwrap();
        tx.send(&layer).unwrap();
        tx.send(&(1u64 << 40).to_le_bytes()).unwrap();
        let _ = tx.flush();
        std::thread::sleep(std::time::Duration::from_millis(200));
    });
    let e = receive_deal(rx, plan(Party::P1, requests(), 1)).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("item 0") && e.contains("allows at most"), "{e}");
}

#[test]
fn a_sender_that_stops_mid_deal_is_an_error_not_a_hang() {
    let (mut tx, rx) = mem_pair();
    std::thread::spawn(move || {
        let mut d = dealer();
        let (_, m1) = d.setup_model(&[(0, kind())]).unwrap();
        let mut probe = masq_mpc::transport::mem_pair();
        let _ = d.send_deal(&mut probe.0, Party::P1, &m1, 0, &requests());
        // Forward the start, the layer and the first item only, then hang up.
        for _ in 0..4 {
            let f = probe.1.recv().unwrap();
            tx.send(&f).unwrap();
        }
        let _ = tx.flush();
    });
    let r = receive_deal(rx, plan(Party::P1, requests(), 1))
        .and_then(|(_, first, mut rest)| drain(first, &mut rest).map(|_| ()));
    assert!(r.is_err());
}
