//! TCP transport on 127.0.0.1: exchanges, metering, and every way a peer can misbehave
//! (vanish, stall, lie about frame sizes, send garbage), each of which must end in a typed error
//! well within the configured timeout.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use masq_mpc::MpcError;
use masq_mpc::transport::{
    DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, Metered, TcpOptions, TcpTransport, Traffic, Transport,
};

const SHORT: Duration = Duration::from_millis(300);
const LIMIT: Duration = Duration::from_secs(2);

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// A connected pair of transports with the given options (server, client).
fn pair(opts: TcpOptions) -> (TcpTransport, TcpTransport) {
    let (l, addr) = listener();
    let client = thread::spawn(move || TcpTransport::connect_with(addr, LIMIT, opts).unwrap());
    let server = TcpTransport::accept_with(&l, LIMIT, opts).unwrap();
    (server, client.join().unwrap())
}

/// A transport on our side and a raw socket on the other, for hand-written bytes.
fn raw_pair(opts: TcpOptions) -> (TcpTransport, TcpStream) {
    let (l, addr) = listener();
    let raw = thread::spawn(move || TcpStream::connect(addr).unwrap());
    let t = TcpTransport::accept_with(&l, LIMIT, opts).unwrap();
    (t, raw.join().unwrap())
}

fn opts(timeout: Duration) -> TcpOptions {
    TcpOptions::with_timeout(timeout)
}

#[test]
fn metered_exchanges_of_u64_vectors() {
    let (server, client) = pair(opts(LIMIT));
    let rounds = 4;
    let len = 10_000;
    let party = move |t: TcpTransport, seed: u64| {
        let mut t = Metered::new(t);
        let mut seen = Vec::new();
        for r in 0..rounds {
            let mine: Vec<u64> = (0..len as u64).map(|i| (i + r).wrapping_mul(seed)).collect();
            let theirs = t.exchange_u64s(&mine, "exchange test").unwrap();
            seen.push(theirs);
        }
        (t.traffic(), seen)
    };
    let (s0, s1) = (0x9E37_79B9_7F4A_7C15u64, 0xD1B5_4A32_D192_ED03u64);
    let c = thread::spawn(move || party(client, s1));
    let (t_server, seen_by_server) = party(server, s0);
    let (t_client, seen_by_client) = c.join().unwrap();
    for r in 0..rounds {
        let from = |seed: u64| -> Vec<u64> { (0..len as u64).map(|i| (i + r).wrapping_mul(seed)).collect() };
        assert_eq!(seen_by_server[r as usize], from(s1));
        assert_eq!(seen_by_client[r as usize], from(s0));
    }
    let per_dir = rounds * (len as u64 * 8 + FRAME_HEADER_BYTES as u64);
    let expect =
        Traffic { bytes_sent: per_dir, bytes_received: per_dir, frames_sent: rounds, frames_received: rounds, rounds };
    assert_eq!(t_server, expect);
    assert_eq!(t_client, expect);
}

#[derive(Debug, PartialEq, bincode::Encode, bincode::Decode)]
struct Hello {
    party: u8,
    shape: Vec<u32>,
    name: String,
}

#[test]
fn typed_messages_round_trip_and_garbage_is_a_decode_error() {
    let (mut server, mut client) = pair(opts(LIMIT));
    let msg = Hello { party: 1, shape: vec![1, 3, 32, 32], name: "resnet18-mask".into() };
    client.send_msg(&msg).unwrap();
    client.flush().unwrap();
    assert_eq!(server.recv_msg::<Hello>("handshake").unwrap(), msg);

    // Garbage: an invalid UTF-8 name.
    client.send(&[0, 0, 3, 0xFF, 0xFE, 0xFD]).unwrap();
    client.flush().unwrap();
    let err = server.recv_msg::<Hello>("handshake").unwrap_err();
    assert!(matches!(err, MpcError::Decode { during: "handshake", .. }), "{err:?}");

    // Trailing bytes after a valid message.
    let mut bytes = bincode::encode_to_vec(&msg, bincode::config::standard()).unwrap();
    bytes.push(0);
    client.send(&bytes).unwrap();
    client.flush().unwrap();
    let err = server.recv_msg::<Hello>("handshake").unwrap_err();
    assert!(matches!(&err, MpcError::Decode { reason, .. } if reason.contains("trailing")), "{err:?}");

    // A 12-byte message whose vector length claims 2^62 elements: refused, not allocated.
    let mut lying = vec![1u8, 253]; // varint marker: a u64 length follows
    lying.extend_from_slice(&(1u64 << 62).to_le_bytes());
    lying.push(0);
    client.send(&lying).unwrap();
    client.flush().unwrap();
    let err = server.recv_msg::<Hello>("handshake").unwrap_err();
    assert!(matches!(&err, MpcError::Decode { reason, .. } if reason.contains("announces more than")), "{err:?}");

    // The connection is still in sync afterwards.
    client.send_u64s(&[42]).unwrap();
    client.flush().unwrap();
    assert_eq!(server.exchange_u64s(&[7], "after garbage").unwrap(), vec![42]);
    assert_eq!(client.recv_u64s(1, "after garbage").unwrap(), vec![7]);
}

#[test]
fn boxed_dyn_transport_works() {
    let (server, client) = pair(opts(LIMIT));
    let mut a: Box<dyn Transport> = Box::new(server);
    let mut b: Box<dyn Transport> = Box::new(client);
    b.send_u64s(&[1, 2, 3]).unwrap();
    b.flush().unwrap();
    assert_eq!(a.recv_u64s(3, "dyn").unwrap(), vec![1, 2, 3]);
}

#[test]
fn peer_vanishing_mid_protocol_is_a_typed_error_on_both_operations() {
    let (mut server, client) = pair(opts(LIMIT));
    let c = thread::spawn(move || {
        let mut client = client;
        client.exchange_u64s(&[1, 2], "round 1").unwrap();
        // ... and leaves before round 2.
    });
    assert_eq!(server.exchange_u64s(&[3, 4], "round 1").unwrap(), vec![1, 2]);
    c.join().unwrap();
    let start = Instant::now();
    let err = server.exchange_u64s(&[5, 6], "round 2").unwrap_err();
    assert!(matches!(err, MpcError::PeerDisconnected { .. }), "{err:?}");
    assert!(start.elapsed() < LIMIT);
    // Sending into the closed connection fails too (possibly after a few buffered frames).
    let mut send_err = None;
    for _ in 0..100 {
        if let Err(e) = server.send(&[0; 1024]).and_then(|()| server.flush()) {
            send_err = Some(e);
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let err = send_err.expect("sending to a closed peer must fail");
    assert!(matches!(err, MpcError::PeerDisconnected { .. }), "{err:?}");
    assert!(start.elapsed() < LIMIT);
}

#[test]
fn stalled_peer_times_out() {
    let (mut t, raw) = raw_pair(opts(SHORT));
    let start = Instant::now();
    let err = t.recv().unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, MpcError::Timeout { after, .. } if after == SHORT), "{err:?}");
    assert!(took >= SHORT && took < LIMIT, "{took:?}");
    drop(raw);
}

#[test]
fn stall_inside_a_frame_times_out_then_resumes() {
    let (mut t, mut raw) = raw_pair(opts(SHORT));
    raw.write_all(&10u32.to_le_bytes()).unwrap();
    raw.write_all(b"01234").unwrap();
    let start = Instant::now();
    assert!(matches!(t.recv(), Err(MpcError::Timeout { .. })));
    assert!(start.elapsed() < LIMIT);
    // The rest arrives: the frame is delivered whole.
    raw.write_all(b"56789").unwrap();
    assert_eq!(t.recv().unwrap(), b"0123456789");
}

#[test]
fn truncated_frame_from_a_raw_peer() {
    let (mut t, mut raw) = raw_pair(opts(LIMIT));
    raw.write_all(&100u32.to_le_bytes()).unwrap();
    raw.write_all(&[7; 10]).unwrap();
    drop(raw);
    let start = Instant::now();
    let err = t.recv().unwrap_err();
    assert!(matches!(err, MpcError::TruncatedFrame { expected: 100, got: 10 }), "{err:?}");
    assert!(start.elapsed() < LIMIT);
    // Afterwards the connection reports the disconnect rather than hanging.
    assert!(matches!(t.recv(), Err(MpcError::PeerDisconnected { .. })));
}

#[test]
fn truncated_header_from_a_raw_peer() {
    let (mut t, mut raw) = raw_pair(opts(LIMIT));
    raw.write_all(&[1, 0]).unwrap();
    drop(raw);
    let err = t.recv().unwrap_err();
    assert!(matches!(err, MpcError::TruncatedFrame { expected: 4, got: 2 }), "{err:?}");
}

#[test]
fn oversized_header_from_a_raw_peer() {
    let (mut t, mut raw) = raw_pair(opts(LIMIT));
    // Announces 4 GiB - 1 and sends nothing more: refused at the header, nothing allocated.
    raw.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let err = t.recv().unwrap_err();
    assert!(
        matches!(err, MpcError::FrameTooLarge { len, max } if len == u64::from(u32::MAX) && max == DEFAULT_MAX_FRAME_BYTES as u64),
        "{err:?}"
    );
    drop(raw);
}

#[test]
fn oversized_frames_refused_on_send_and_receive_with_a_small_limit() {
    let small = TcpOptions { max_frame_bytes: 64, ..opts(LIMIT) };
    let (mut t, mut raw) = raw_pair(small);
    assert!(matches!(t.send(&[0; 65]), Err(MpcError::FrameTooLarge { len: 65, max: 64 })));
    raw.write_all(&65u32.to_le_bytes()).unwrap();
    raw.write_all(&[0; 65]).unwrap();
    assert!(matches!(t.recv(), Err(MpcError::FrameTooLarge { len: 65, max: 64 })));
}

#[test]
fn frames_written_by_hand_are_received() {
    let (mut t, mut raw) = raw_pair(opts(LIMIT));
    let mut wire = Vec::new();
    for payload in [&b"abc"[..], b"", b"0123456789"] {
        wire.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        wire.extend_from_slice(payload);
    }
    // Dribble the bytes one at a time.
    for b in wire {
        raw.write_all(&[b]).unwrap();
    }
    assert_eq!(t.recv().unwrap(), b"abc");
    assert_eq!(t.recv().unwrap(), b"");
    assert_eq!(t.recv().unwrap(), b"0123456789");
}
