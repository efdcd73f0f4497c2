//! The entry function of every fuzz target, one per untrusted input format of masq.
//!
//! Each takes arbitrary bytes and must return on every input: an error is a fine answer, a panic,
//! an abort (failed allocation, stack overflow) or a hang is a bug. Three users compile this one
//! file: the fuzz targets (`fuzz/fuzz_targets/*.rs`, through `masq_fuzz`), the seed corpus
//! generator (`fuzz/src/bin/fuzz_corpus.rs`) and the regression test that replays
//! `fuzz/regressions/<target>/*` (`tests/it/fuzz_regressions.rs`, with `#[path]`). It uses only
//! public APIs of the masq crates, and the dataset decoders through `super::data_decode`: in the
//! fuzz crate that is `trainer/src/data/decode.rs` compiled without libtorch, in the test the
//! same module of `masq_trainer`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use masq_deploy::auth::Key;
use masq_deploy::{Client, DealerFile, Server, SessionOptions};
use masq_ir::{
    BinaryConfig, ConvConfig, FlattenConfig, GemmConfig, Graph, MaskedActConfig, Node, Op, PoolConfig, Replacement,
    ValueInfo,
};
use masq_mpc::transport::Transport;
use masq_mpc::{MpcError, Party};
use masq_runtime::secure::SecureConfig;
use ndarray::ArrayD;

use super::data_decode;

/// The entry function of a target.
pub type Entry = fn(&[u8]);

/// Every target: its name (the directory of its corpus and regressions) and entry function.
pub const TARGETS: &[(&str, Entry)] = &[
    ("onnx_import", onnx_import),
    ("checkpoint", checkpoint),
    ("artifact", artifact),
    ("npy", npy),
    ("dealer_file", dealer_file),
    ("handshake", handshake),
    ("datasets", datasets),
    ("dealer_stream", dealer_stream),
];

// ---------------------------------------------------------------------------------------------
// Scratch files

/// A directory of this thread's own, removed when the thread ends: under `$MASQ_FUZZ_SCRATCH`,
/// else in `/dev/shm` when there is one (several targets write their input to a file on every
/// run), else in the temporary directory.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// This thread's scratch directory.
pub fn scratch() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(Scratch(dir)) = &*s
            && dir.is_dir()
        {
            return dir.clone();
        }
        let shm = Path::new("/dev/shm");
        let base = match std::env::var_os("MASQ_FUZZ_SCRATCH") {
            Some(dir) => PathBuf::from(dir),
            None if shm.is_dir() => shm.to_path_buf(),
            None => std::env::temp_dir(),
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("masq-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        *s = Some(Scratch(dir.clone()));
        dir
    })
}

/// Writes `bytes` to `name` in the scratch directory.
fn put(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("writing a scratch file");
    path
}

/// Splits `data` into `N` parts, each but the last prefixed by its length (u32 little-endian,
/// clamped to what is left).
pub fn split<const N: usize>(mut data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    for part in out.iter_mut().take(N - 1) {
        let (len, rest) = match data.split_first_chunk::<4>() {
            Some((l, rest)) => (u32::from_le_bytes(*l) as usize, rest),
            None => (0, &[][..]),
        };
        let (p, rest) = rest.split_at(len.min(rest.len()));
        *part = p;
        data = rest;
    }
    out[N - 1] = data;
    out
}

/// The inverse of [`split`].
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(p);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A tiny model (for the seeds and the dealer files)

fn tensor(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let v = (0..n as u64).map(|i| (((i * 37 + seed * 11) % 17) as f32 - 8.0) / 16.0).collect();
    ArrayD::from_shape_vec(shape.to_vec(), v).expect("sizes agree")
}

/// A finalized CNN on `[N, 1, 4, 4]` images with every kind of layer the secure runtime plans
/// often (conv, masked activation with a polynomial, average pooling, ReLU, residual add,
/// flatten, gemm), small enough for seeds and dealer files of a few kilobytes.
pub fn tiny_model() -> Graph {
    let mut g = Graph::new("fuzz_tiny");
    g.inputs.push(ValueInfo::batched("input", &[1, 4, 4]));
    let conv = ConvConfig {
        weight: "conv.weight".into(),
        bias: Some("conv.bias".into()),
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1; 4],
        dilation: [1, 1],
        groups: 1,
    };
    g.nodes.push(Node::new("conv", Op::Conv(conv), &["input"], &["conv"]));
    let poly = Replacement::Poly { c2: "act.c2".into(), c1: "act.c1".into(), c0: "act.c0".into() };
    let act = MaskedActConfig { mask: "act.mask".into(), replacement: poly, cap: None };
    g.nodes.push(Node::new("act", Op::MaskedAct(act), &["conv"], &["act"]));
    g.nodes.push(Node::new("add", Op::Add(BinaryConfig {}), &["act", "conv"], &["add"]));
    let pool = PoolConfig {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0; 4],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    g.nodes.push(Node::new("pool", Op::AveragePool(pool), &["add"], &["pool"]));
    g.nodes.push(Node::new("relu", Op::Relu, &["pool"], &["relu"]));
    g.nodes.push(Node::new("flat", Op::Flatten(FlattenConfig { axis: 1 }), &["relu"], &["flat"]));
    let fc = GemmConfig { weight: "fc.weight".into(), bias: Some("fc.bias".into()) };
    g.nodes.push(Node::new("fc", Op::Gemm(fc), &["flat"], &["logits"]));
    g.outputs.push(ValueInfo::new("logits", Vec::new()));
    for (i, (name, shape)) in [
        ("conv.weight", &[2, 1, 3, 3][..]),
        ("conv.bias", &[2]),
        ("act.c2", &[2]),
        ("act.c1", &[2]),
        ("act.c0", &[2]),
        ("fc.weight", &[3, 8]),
        ("fc.bias", &[3]),
    ]
    .into_iter()
    .enumerate()
    {
        g.initializers.insert(name.into(), tensor(shape, i as u64));
    }
    let mask = (0..32).map(|i| u8::from(i % 3 != 0)).collect();
    g.masks.insert("act.mask".into(), ArrayD::from_shape_vec(vec![2, 4, 4], mask).expect("sizes agree"));
    g.finalize().expect("the tiny model is valid");
    g
}

/// The secure configuration of the dealer files.
pub fn tiny_config() -> SecureConfig {
    SecureConfig { cmp_bits: 24, ..SecureConfig::default() }
}

/// Inferences in each dealer file.
pub const TINY_COUNT: u64 = 2;

/// The pair id the dealer files get (a deal draws a random one; a fixed one makes every run of
/// the handshake target see the same files).
pub const FIXED_PAIR_ID: [u8; 16] = *b"masq-fuzz-pairid";

/// The two dealer files (`p0.bin`, `p1.bin`) of [`tiny_model`] at batch 1, dealt once per process.
pub fn tiny_dealer_files() -> &'static (Vec<u8>, Vec<u8>) {
    static FILES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = scratch().join("deal");
        std::fs::create_dir_all(&dir).expect("creating the deal directory");
        let s = masq_deploy::deal(&tiny_model(), &tiny_config(), 1, TINY_COUNT, &dir).expect("dealing");
        let drawn = DealerFile::open(&s.p0_path, Party::P0).expect("opening p0.bin").header().pair_id;
        let fix = |path: &Path| {
            let mut b = std::fs::read(path).expect("reading a dealt file");
            let at = b.windows(16).position(|w| w == drawn).expect("the pair id is in the file");
            b[at..at + 16].copy_from_slice(&FIXED_PAIR_ID);
            b
        };
        let files = (fix(&s.p0_path), fix(&s.p1_path));
        let _ = std::fs::remove_dir_all(&dir);
        files
    })
}

/// The key of the authenticated handshakes.
pub fn tiny_key() -> Key {
    Key::new(b"masq fuzz key, 32 bytes at least".to_vec()).expect("long enough")
}

// ---------------------------------------------------------------------------------------------
// Targets

/// ONNX importer: the bytes are the model, and also the one external-data file `weights.bin`
/// (so external references can resolve). An imported graph is reported and exported back.
pub fn onnx_import(data: &[u8]) {
    let files: [(&str, &[u8]); 1] = [("weights.bin", data)];
    let external = masq_onnx::external::Files::InMemory(&files);
    if let Ok(g) = masq_onnx::import_bytes_with(data, Path::new("fuzz/model.onnx"), external) {
        let _ = masq_ir::report::report(&g);
        let _ = masq_onnx::export::encode(&g, 17, "");
    }
}

/// Checkpoint loader and plain safetensors weights, from one file.
pub fn checkpoint(data: &[u8]) {
    let path = put("model.safetensors", data);
    let _ = masq_ir::checkpoint::read_checkpoint(&path);
    let _ = masq_ir::weights::read_safetensors(&path);
}

/// Artifact loader: the input is `manifest.json`, `model.onnx` and `model.safetensors` (see
/// [`split`]). The manifest's sizes and hashes of the two files are set to the true ones when it
/// is a JSON object that lists them, so the loader gets past its hash checks.
pub fn artifact(data: &[u8]) {
    use masq_exporter::artifact::{MANIFEST_JSON, MODEL_ONNX, MODEL_SAFETENSORS};
    let [manifest, onnx, st] = split::<3>(data);
    let dir = scratch().join("artifact");
    std::fs::create_dir_all(&dir).expect("creating the artifact directory");
    let manifest = match serde_json::from_slice::<serde_json::Value>(manifest) {
        Ok(mut m) => {
            if let Some(files) = m.get_mut("files").and_then(|f| f.as_object_mut()) {
                for (name, bytes) in [(MODEL_ONNX, onnx), (MODEL_SAFETENSORS, st)] {
                    if let Some(entry) = files.get_mut(name).and_then(|e| e.as_object_mut()) {
                        entry.insert("sha256".into(), masq_ir::atomic::sha256_hex(bytes).into());
                        entry.insert("bytes".into(), (bytes.len() as u64).into());
                    }
                }
            }
            serde_json::to_vec(&m).expect("re-encoding JSON")
        }
        Err(_) => manifest.to_vec(),
    };
    for (name, bytes) in [(MANIFEST_JSON, &manifest[..]), (MODEL_ONNX, onnx), (MODEL_SAFETENSORS, st)] {
        std::fs::write(dir.join(name), bytes).expect("writing an artifact file");
    }
    let _ = masq_exporter::artifact::load_artifact(&dir);
}

/// `.npy` reader.
pub fn npy(data: &[u8]) {
    if let Ok(a) = masq_ir::npy::from_bytes(data, "fuzz.npy") {
        let _ = a.into_f32();
    }
}

/// Dealer file: opened for either party; the model-load material and the first inferences
/// (with the tiny model's requests) are decoded, and the spent flags read.
pub fn dealer_file(data: &[u8]) {
    static REQUESTS: OnceLock<Vec<masq_mpc::dealer::Request>> = OnceLock::new();
    let requests = REQUESTS.get_or_init(|| {
        masq_runtime::secure::plan(&tiny_model(), 1, &tiny_config()).expect("planning the tiny model").requests
    });
    let path = put("p.bin", data);
    for party in [Party::P0, Party::P1] {
        let Ok(f) = DealerFile::open(&path, party) else { continue };
        let Ok(model) = f.model_material() else { continue };
        for i in 0..f.header().count.min(3) {
            let _ = f.inference(i, requests, &model);
        }
    }
    let _ = masq_deploy::file::read_spent(&path);
}

/// [`Scripted`] owning its frames (for readers that keep the transport, such as a dealer stream).
#[derive(Debug)]
pub struct OwnedScript {
    frames: std::vec::IntoIter<Vec<u8>>,
}

impl OwnedScript {
    pub fn new(frames: Vec<Vec<u8>>) -> Self {
        OwnedScript { frames: frames.into_iter() }
    }
}

impl Transport for OwnedScript {
    fn send(&mut self, _payload: &[u8]) -> masq_mpc::Result<()> {
        Ok(())
    }

    fn recv(&mut self) -> masq_mpc::Result<Vec<u8>> {
        self.frames.next().ok_or(MpcError::PeerDisconnected { during: "fuzz script" })
    }

    fn flush(&mut self) -> masq_mpc::Result<()> {
        Ok(())
    }
}

/// A transport that hands out scripted frames and swallows what is sent.
#[derive(Debug)]
pub struct Scripted<'a> {
    frames: std::vec::IntoIter<&'a [u8]>,
}

impl<'a> Scripted<'a> {
    pub fn new(frames: Vec<&'a [u8]>) -> Self {
        Scripted { frames: frames.into_iter() }
    }
}

impl Transport for Scripted<'_> {
    fn send(&mut self, _payload: &[u8]) -> masq_mpc::Result<()> {
        Ok(())
    }

    fn recv(&mut self) -> masq_mpc::Result<Vec<u8>> {
        self.frames.next().map(<[u8]>::to_vec).ok_or(MpcError::PeerDisconnected { during: "fuzz script" })
    }

    fn flush(&mut self) -> masq_mpc::Result<()> {
        Ok(())
    }
}

/// Splits handshake input into frames: each a u16 little-endian length and its bytes.
pub fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((len, rest)) = data.split_first_chunk::<2>() {
        let (f, rest) = rest.split_at((u16::from_le_bytes(*len) as usize).min(rest.len()));
        out.push(f);
        data = rest;
    }
    out
}

/// The inverse of [`frames`] (frames longer than `u16::MAX` are cut).
pub fn encode_frames(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let f = &f[..f.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(f.len() as u16).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Handshake messages (and what follows them): the first byte picks the side masq plays (bit 0:
/// 0 the client `Client::query_over`, 1 the server `Server::serve_over`) and whether it holds
/// the key (bit 1); the rest are the frames the peer sends ([`frames`]). Both sides use fresh
/// copies of the tiny model's dealer files.
pub fn handshake(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (p0, p1) = tiny_dealer_files();
    let opts = SessionOptions { key: (mode & 2 != 0).then(tiny_key), threads: 1, ..SessionOptions::default() };
    let t = Scripted::new(frames(rest));
    if mode & 1 == 0 {
        let path = put("p1.bin", p1);
        let Ok(mut client) = Client::new(&path, opts) else { return };
        let x = ArrayD::<f32>::zeros(vec![1, 1, 4, 4]);
        let _ = client.query_over(t, &x, |_| {});
    } else {
        let path = put("p0.bin", p0);
        let Ok(server) = Server::new(&tiny_model(), &path, opts) else { return };
        let _ = server.serve_over(t, "fuzz", |_| {});
    }
}

/// The dealer service's protocol (`masq_deploy::dealer`): the first byte picks the side, modulo 3.
/// 0 and 1: P0 or P1 reading its half of an inference of [`tiny_model`] from the frames
/// (`masq_mpc::dealer::wire::receive_deal`, in segments of one request), every segment drained;
/// 2: the dealer answering the frames as a request (its answer and material go nowhere).
pub fn dealer_stream(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 3 == 2 {
        let _ = tiny_dealer_service().serve_over(Scripted::new(frames(rest)), None);
        return;
    }
    let party = if mode % 3 == 0 { Party::P0 } else { Party::P1 };
    let plan = tiny_dealer_service().plan();
    let sp = masq_mpc::dealer::section_reader::SectionPlan {
        party,
        requests: plan.requests.clone(),
        layers: plan.layers.iter().map(|l| (l.id, l.kind.clone())).collect(),
        budget: 1,
        name: "fuzz stream".into(),
    };
    let owned = frames(rest).into_iter().map(<[u8]>::to_vec).collect();
    if let Ok((_, first, mut more)) = masq_mpc::dealer::wire::receive_deal(OwnedScript::new(owned), sp) {
        drop(first);
        while let Ok(Some(_)) = more.refill() {}
    }
}

/// A dealer service for [`tiny_model`] with [`tiny_config`], its state in a scratch directory
/// (one per process).
pub fn tiny_dealer_service() -> &'static masq_deploy::dealer::DealerService {
    static SERVICE: OnceLock<masq_deploy::dealer::DealerService> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let state = std::env::temp_dir().join(format!("masq-fuzz-dealer-{}", std::process::id()));
        let opts = masq_deploy::dealer::DealerOptions::default();
        masq_deploy::dealer::DealerService::new(&tiny_model(), &tiny_config(), 1, &state, opts)
            .expect("a dealer service for the tiny model")
    })
}

/// Dataset decoders: the first byte picks one (modulo 6): 0 an IDX images and labels pair
/// ([`split`], each maybe gzipped), 1 CIFAR-10 and 2 CIFAR-100 records (maybe gzipped), 3 a
/// JPEG/PNG image (two bytes of target size first: 0 keeps the size, else 1 to 64), 4 a
/// `wnids.txt`, 5 a `wnids.txt` and a `val_annotations.txt` (split at the first NUL byte).
pub fn datasets(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else { return };
    let gz = |b: &[u8]| data_decode::gunzip_if_gz(b.to_vec());
    match which % 6 {
        0 => {
            let [images, labels] = split::<2>(rest);
            if let (Ok(i), Ok(l)) = (gz(images), gz(labels)) {
                let _ = data_decode::decode_idx_pair(&i, &l, 10);
            }
        }
        1 | 2 => {
            let (label_bytes, classes) = if which % 6 == 1 { (1, 10) } else { (2, 100) };
            if let Ok(b) = gz(rest) {
                let _ = data_decode::decode_cifar(&b, label_bytes, classes);
            }
        }
        3 => {
            let [h, w] = [rest.first(), rest.get(1)].map(|b| b.copied().unwrap_or(0) as usize % 65);
            let size = (h != 0 || w != 0).then_some((h, w));
            let _ = data_decode::decode_image_bytes(rest.get(2..).unwrap_or(&[]), size);
        }
        4 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = data_decode::parse_wnids(text);
            }
        }
        _ => {
            let at = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (wnids, ann) = (&rest[..at], rest.get(at + 1..).unwrap_or(&[]));
            if let (Ok(w), Ok(a)) = (std::str::from_utf8(wnids), std::str::from_utf8(ann))
                && let Ok(w) = data_decode::parse_wnids(w)
            {
                let _ = data_decode::parse_val_annotations(a, &w);
            }
        }
    }
}
