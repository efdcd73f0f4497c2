//! Dealing into a temporary folder, running both sides over the in-memory pair, and transports
//! that record or close.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use masq_deploy::{Client, QueryResult, Result, Server, SessionOptions, SessionReport, auth::Key};
use masq_ir::Graph;
use masq_mpc::MpcError;
use masq_mpc::transport::{DEFAULT_MAX_FRAME_BYTES, MemTransport, Transport, mem_pair_with};
use masq_runtime::secure::SecureConfig;
use ndarray::{ArrayD, IxDyn};
use tempfile::TempDir;

/// Longest wait of a receive: far above a session's length, so a test that would hang fails by
/// the time it is reached, and a disconnection seen quickly is not a timeout.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The model of these tests.
pub fn model() -> Graph {
    masq_ir::zoo::build("mnist_cnn", None, 0).unwrap()
}

/// A pair of dealer files in a temporary folder.
pub struct Dealt {
    pub dir: TempDir,
}

impl Dealt {
    pub fn p0(&self) -> PathBuf {
        self.dir.path().join("p0.bin")
    }

    pub fn p1(&self) -> PathBuf {
        self.dir.path().join("p1.bin")
    }

    /// The spent flags of (p0.bin, p1.bin), as on disk.
    pub fn spent(&self) -> (Vec<bool>, Vec<bool>) {
        (masq_deploy::file::read_spent(&self.p0()).unwrap(), masq_deploy::file::read_spent(&self.p1()).unwrap())
    }

    pub fn server(&self, graph: &Graph, key: Option<&Key>) -> Server {
        Server::new(graph, &self.p0(), opts(key)).unwrap()
    }

    pub fn client(&self, key: Option<&Key>) -> Client {
        Client::new(&self.p1(), opts(key)).unwrap()
    }
}

pub fn deal(graph: &Graph, cfg: &SecureConfig, batch: usize, count: u64) -> Dealt {
    let dir = tempfile::tempdir().unwrap();
    let summary = masq_deploy::deal(graph, cfg, batch, count, dir.path()).unwrap();
    assert_eq!(summary.count, count);
    Dealt { dir }
}

pub fn opts(key: Option<&Key>) -> SessionOptions {
    SessionOptions { timeout: TIMEOUT, key: key.cloned(), ..SessionOptions::default() }
}

pub fn key(tag: &str) -> Key {
    Key::new(format!("a shared key for the tests: {tag}").into_bytes()).unwrap()
}

/// Two ends of an in-memory connection (server's, client's).
pub fn pair() -> (MemTransport, MemTransport) {
    mem_pair_with(TIMEOUT, DEFAULT_MAX_FRAME_BYTES)
}

/// One image of the model's input shape, `[1, 1, 28, 28]`, with values spread over [0, 1).
pub fn image() -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(&[1, 1, 28, 28]), |i| ((i[2] * 28 + i[3]) * 37 % 101) as f32 / 101.0)
}

/// Runs the server (in a thread) and the client (here) over `(ts, tc)`.
pub fn session<A: Transport, B: Transport>(
    server: &mut Server,
    ts: A,
    client: &mut Client,
    tc: B,
    x: &ArrayD<f32>,
) -> (Result<SessionReport>, Result<QueryResult>) {
    std::thread::scope(|s| {
        let served = s.spawn(move || server.serve_over(ts, "in-memory client", |_| {}));
        let queried = client.query_over(tc, x, |_| {});
        (served.join().expect("the server panicked"), queried)
    })
}

/// Runs `peer` (a hand-written other side, in a thread) against `side` (here), over a fresh pair.
pub fn against<R: Send, S>(
    peer: impl FnOnce(MemTransport) -> R + Send,
    side: impl FnOnce(MemTransport) -> S,
) -> (R, S) {
    let (a, b) = pair();
    std::thread::scope(|s| {
        let p = s.spawn(move || peer(a));
        let mine = side(b);
        (p.join().expect("the hand-written peer panicked"), mine)
    })
}

/// Frames, in the order sent.
pub type Frames = Arc<Mutex<Vec<Vec<u8>>>>;

/// Records the frames sent through it.
pub struct Record<T> {
    pub inner: T,
    pub sent: Frames,
}

impl<T> Record<T> {
    pub fn new(inner: T) -> (Self, Frames) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        (Record { inner, sent: sent.clone() }, sent)
    }
}

impl<T: Transport> Transport for Record<T> {
    fn send(&mut self, payload: &[u8]) -> masq_mpc::Result<()> {
        self.sent.lock().unwrap().push(payload.to_vec());
        self.inner.send(payload)
    }
    fn recv(&mut self) -> masq_mpc::Result<Vec<u8>> {
        self.inner.recv()
    }
    fn flush(&mut self) -> masq_mpc::Result<()> {
        self.inner.flush()
    }
}

/// Passes `sends` frames on, then closes the connection (drops its end, so the peer sees it go)
/// instead of sending the next one.
pub struct CloseAfter<T> {
    inner: Option<T>,
    sends: usize,
}

impl<T> CloseAfter<T> {
    pub fn new(inner: T, sends: usize) -> Self {
        CloseAfter { inner: Some(inner), sends }
    }
}

const CLOSED: MpcError = MpcError::PeerDisconnected { during: "closing on purpose (test)" };

impl<T: Transport> Transport for CloseAfter<T> {
    fn send(&mut self, payload: &[u8]) -> masq_mpc::Result<()> {
        if self.sends == 0 {
            self.inner = None;
        }
        self.sends = self.sends.saturating_sub(1);
        self.inner.as_mut().ok_or(CLOSED)?.send(payload)
    }
    fn recv(&mut self) -> masq_mpc::Result<Vec<u8>> {
        self.inner.as_mut().ok_or(CLOSED)?.recv()
    }
    fn flush(&mut self) -> masq_mpc::Result<()> {
        self.inner.as_mut().ok_or(CLOSED)?.flush()
    }
}

/// Frames of the session protocol written by hand, for peers that break it. This pins the
/// layout of `session.rs`'s messages: bincode 2's standard encoding of an enum is the variant's
/// index (a varint) followed by its fields.
pub mod wire {
    use bincode::Encode;

    pub const AUTH: u32 = 0;
    pub const PROOF: u32 = 1;
    pub const SERVER_PROOF: u32 = 2;
    pub const HELLO: u32 = 3;
    pub const ACCEPT: u32 = 4;
    pub const GO: u32 = 5;
    pub const REFUSE: u32 = 6;

    fn enc(v: impl Encode) -> Vec<u8> {
        bincode::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    /// The server's greeting, without authentication.
    pub fn auth(version: u32) -> Vec<u8> {
        enc((AUTH, version, false, [7u8; 32]))
    }

    /// The server's greeting of this version, asking for authentication.
    pub fn auth_required() -> Vec<u8> {
        enc((AUTH, masq_deploy::PROTOCOL_VERSION, true, [7u8; 32]))
    }

    /// The server's answer to the client's proof.
    pub fn server_proof(mac: [u8; 32]) -> Vec<u8> {
        enc((SERVER_PROOF, mac))
    }

    /// The client's hello: version, pair id, model hash, frac bits, comparison bits, comparison
    /// mode (0: one-round), batch, count, slot, ticket (zero: no dealer service).
    pub fn hello(version: u32) -> Vec<u8> {
        hello_at(version, 0)
    }

    /// The client's hello answering for `slot`.
    pub fn hello_at(version: u32, slot: u64) -> Vec<u8> {
        enc((HELLO, (version, [5u8; 16], [7u8; 32], 16u32, 64u32, 0u32, 1u64, 1u64, slot, [0u8; 32]), Vec::<u8>::new()))
    }

    /// A hello with the fields of a real file's header (a raw client that read its p1.bin).
    pub fn hello_of(h: &masq_deploy::FileHeader, slot: u64) -> Vec<u8> {
        let mode = match h.cmp_mode {
            masq_mpc::dealer::CmpMode::OneRound => 0u32,
            masq_mpc::dealer::CmpMode::Compact => 1u32,
        };
        let fields = (masq_deploy::PROTOCOL_VERSION, h.pair_id, h.model_hash, h.frac_bits, h.cmp_bits, mode);
        enc((HELLO, (fields, h.batch, h.count, slot, [0u8; 32]), Vec::<u8>::new()))
    }

    /// The client's acceptance of `slot`.
    pub fn accept(slot: u64) -> Vec<u8> {
        enc((ACCEPT, slot))
    }

    /// The variant index of a frame.
    pub fn variant(frame: &[u8]) -> u32 {
        bincode::decode_from_slice::<u32, _>(frame, bincode::config::standard()).unwrap().0
    }

    /// The reason of a `Refuse` frame.
    pub fn refusal(frame: &[u8]) -> String {
        let ((variant, reason), used): ((u32, String), _) =
            bincode::decode_from_slice(frame, bincode::config::standard()).unwrap();
        assert_eq!((variant, used), (REFUSE, frame.len()), "not a Refuse frame");
        reason
    }
}
