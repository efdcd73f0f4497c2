//! Writes the seed corpus of every fuzz target: `fuzz_corpus OUT_DIR` fills `OUT_DIR/<target>/`
//! with small valid inputs (and a few near misses) made by masq's own writers, so the fuzzer
//! starts from inputs that reach deep into each decoder. Deterministic: the same build writes the
//! same files. Run by `scripts/fuzz_corpus.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use masq_deploy::{Client, Server, SessionOptions};
use masq_fuzz::entries::{self, encode_frames, join, tiny_dealer_files, tiny_key, tiny_model};
use masq_ir::Graph;
use masq_mpc::transport::{Transport, mem_pair};
use ndarray::ArrayD;
use prost::Message;

type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn add(seeds: &mut Seeds, target: &'static str, name: &str, bytes: Vec<u8>) {
    seeds.entry(target).or_default().push((name.to_string(), bytes));
}

fn onnx(g: &Graph, opset: i64) -> Vec<u8> {
    masq_onnx::export::encode(g, opset, "").expect("encoding the tiny model").encode_to_vec()
}

/// The tiny model without its masked activation (a plain ReLU network).
fn plain_model() -> Graph {
    let mut g = tiny_model();
    for n in &mut g.nodes {
        if n.name == "act" {
            n.op = masq_ir::Op::Relu;
        }
    }
    g.masks.clear();
    g.initializers.retain(|k, _| !k.starts_with("act."));
    g.finalize().expect("valid");
    g
}

fn npy_v2(v1: &[u8], version: u8) -> Vec<u8> {
    let len = u16::from_le_bytes([v1[8], v1[9]]) as u32;
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&v1[10..]);
    out
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b).expect("in memory");
    e.finish().expect("in memory")
}

fn image_bytes(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 40) as u8, (y * 40) as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, format).expect("encoding an image");
    out.into_inner()
}

/// Records every frame received through it.
struct Recorder<T> {
    inner: T,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<T: Transport> Transport for Recorder<T> {
    fn send(&mut self, payload: &[u8]) -> masq_mpc::Result<()> {
        self.inner.send(payload)
    }

    fn recv(&mut self) -> masq_mpc::Result<Vec<u8>> {
        let f = self.inner.recv()?;
        self.log.lock().expect("not poisoned").push(f.clone());
        Ok(f)
    }

    fn flush(&mut self) -> masq_mpc::Result<()> {
        self.inner.flush()
    }
}

/// One real session of the tiny model: the frames the server received and those the client
/// received.
fn transcript(dir: &Path, keyed: bool) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (p0, p1) = tiny_dealer_files();
    let (p0_path, p1_path) = (dir.join("p0.bin"), dir.join("p1.bin"));
    std::fs::write(&p0_path, p0).expect("writing p0.bin");
    std::fs::write(&p1_path, p1).expect("writing p1.bin");
    let opts = SessionOptions { key: keyed.then(tiny_key), threads: 1, ..SessionOptions::default() };
    let (a, b) = mem_pair();
    let (to_server, to_client) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    std::thread::scope(|s| {
        let server_opts = opts.clone();
        let log = to_server.clone();
        let p0_path = &p0_path;
        let server = s.spawn(move || {
            let server = Server::new(&tiny_model(), p0_path, server_opts).expect("server");
            server.serve_over(Recorder { inner: a, log }, "seed", |_| {}).map(|_| ())
        });
        let mut client = Client::new(&p1_path, opts).expect("client");
        let x = ArrayD::<f32>::from_elem(vec![1, 1, 4, 4], 0.25);
        let r = client.query_over(Recorder { inner: b, log: to_client.clone() }, &x, |_| {});
        r.expect("the seed session runs");
        server.join().expect("server thread").expect("the seed session serves");
    });
    let take = |l: Arc<Mutex<Vec<Vec<u8>>>>| std::mem::take(&mut *l.lock().expect("not poisoned"));
    (take(to_server), take(to_client))
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_corpus OUT_DIR"));
    let work = entries::scratch().join("corpus");
    std::fs::create_dir_all(&work).expect("creating a work directory");
    let mut seeds = Seeds::new();
    let (tiny, plain) = (tiny_model(), plain_model());

    // onnx_import: the tiny models at three opsets.
    for opset in [13, 17, 21] {
        add(&mut seeds, "onnx_import", &format!("tiny-opset{opset}.onnx"), onnx(&tiny, opset));
        add(&mut seeds, "onnx_import", &format!("plain-opset{opset}.onnx"), onnx(&plain, opset));
    }

    // checkpoint: masq checkpoints with facts and an extra tensor.
    let facts = masq_ir::checkpoint::Facts {
        dataset: Some("mnist".into()),
        accuracy: Some(0.5),
        relu_count: Some(8),
        epoch: Some(3),
        ..Default::default()
    };
    for (name, g) in [("tiny", &tiny), ("plain", &plain)] {
        let path = work.join(format!("{name}.safetensors"));
        let extra = BTreeMap::from([("opt.step".to_string(), ArrayD::from_elem(vec![2], 1.0f32))]);
        masq_ir::checkpoint::save_checkpoint_with(&path, g, &facts, &extra).expect("saving a checkpoint");
        add(&mut seeds, "checkpoint", &format!("{name}.safetensors"), std::fs::read(&path).expect("reading"));
    }

    // artifact: exported artifacts, packed as manifest, model.onnx, model.safetensors.
    for (name, g, fold_bn) in [("tiny", &tiny, true), ("plain", &plain, false)] {
        let dir = work.join(format!("artifact-{name}"));
        let mut facts = masq_exporter::ExportFacts::new(name);
        facts.dataset = Some("mnist".into());
        let opts = masq_exporter::ExportOptions { fold_bn, force: true, ..Default::default() };
        masq_exporter::export(g, &facts, &dir, &opts).expect("exporting");
        let read = |f: &str| std::fs::read(dir.join(f)).expect("reading an artifact file");
        let parts = ["manifest.json", "model.onnx", "model.safetensors"].map(read);
        add(&mut seeds, "artifact", name, join(&[&parts[0], &parts[1], &parts[2]]));
        // The ONNX file of an artifact also seeds the importer, and its weights the checkpoint
        // target (plain safetensors with masq metadata).
        add(&mut seeds, "onnx_import", &format!("artifact-{name}.onnx"), parts[1].clone());
        add(&mut seeds, "checkpoint", &format!("artifact-{name}.safetensors"), parts[2].clone());
    }

    // npy: every element type, versions 1 to 3.
    let f32s =
        masq_ir::npy::to_bytes(&ArrayD::from_shape_vec(vec![2, 3], vec![1.0f32, -2.0, 3.5, 0.0, 1e-3, 7.0]).unwrap());
    add(&mut seeds, "npy", "f32-2x3-v1.npy", f32s.clone());
    add(&mut seeds, "npy", "f32-2x3-v2.npy", npy_v2(&f32s, 2));
    add(&mut seeds, "npy", "f32-2x3-v3.npy", npy_v2(&f32s, 3));
    add(&mut seeds, "npy", "f64-4.npy", masq_ir::npy::to_bytes(&ArrayD::from_elem(vec![4], 0.5f64)));
    add(&mut seeds, "npy", "i64-scalar.npy", masq_ir::npy::to_bytes(&ArrayD::from_elem(vec![], -3i64)));
    add(&mut seeds, "npy", "u8-2x2x1.npy", masq_ir::npy::to_bytes(&ArrayD::from_elem(vec![2, 2, 1], 9u8)));
    add(&mut seeds, "npy", "f32-empty.npy", masq_ir::npy::to_bytes(&ArrayD::<f32>::zeros(vec![0, 3])));

    // dealer_file: both parties' files of the tiny model.
    let (p0, p1) = tiny_dealer_files();
    add(&mut seeds, "dealer_file", "p0.bin", p0.clone());
    add(&mut seeds, "dealer_file", "p1.bin", p1.clone());

    // handshake: real sessions, without and with a key, from either side; and their first frames.
    for keyed in [false, true] {
        let (to_server, to_client) = transcript(&work, keyed);
        let k = if keyed { 2u8 } else { 0 };
        let tag = if keyed { "keyed" } else { "open" };
        for (mode, side, frames) in [(k, "client", &to_client), (k | 1, "server", &to_server)] {
            let mut bytes = vec![mode];
            bytes.extend(encode_frames(frames));
            add(&mut seeds, "handshake", &format!("{tag}-{side}-session"), bytes);
            let mut first = vec![mode];
            first.extend(encode_frames(&frames[..frames.len().min(2)]));
            add(&mut seeds, "handshake", &format!("{tag}-{side}-greeting"), first);
        }
    }

    // dealer_stream: each party's half of an inference of the tiny model as the dealer sends it,
    // cut short, and the requests a party sends the dealer.
    let service = entries::tiny_dealer_service();
    let kinds: Vec<_> = service.plan().layers.iter().map(|l| (l.id, l.kind.clone())).collect();
    for (mode, party) in [(0u8, masq_mpc::Party::P0), (1, masq_mpc::Party::P1)] {
        let mut dealer = masq_mpc::dealer::Dealer::from_key([9; 32]);
        let (m0, m1) = dealer.setup_model(&kinds).expect("model material");
        let model = if mode == 0 { m0 } else { m1 };
        let (mut tx, mut rx) = mem_pair();
        dealer.send_deal(&mut tx, party, &model, 0, &service.plan().requests).expect("sending a deal");
        drop(tx);
        let mut frames = Vec::new();
        while let Ok(f) = rx.recv() {
            frames.push(f);
        }
        let mut bytes = vec![mode];
        bytes.extend(encode_frames(&frames));
        add(&mut seeds, "dealer_stream", &format!("p{mode}-half"), bytes);
        let mut first = vec![mode];
        first.extend(encode_frames(&frames[..frames.len().min(3)]));
        add(&mut seeds, "dealer_stream", &format!("p{mode}-start"), first);
    }
    let std_cfg = bincode::config::standard();
    let params = service.params();
    let requests = [
        ("info", bincode::encode_to_vec((0u32, 1u32), std_cfg).expect("encoding")),
        ("open", bincode::encode_to_vec((1u32, 1u32, params), std_cfg).expect("encoding")),
        ("fetch", bincode::encode_to_vec((2u32, 1u32, params, 0u64, [0u8; 32]), std_cfg).expect("encoding")),
    ];
    for (name, frame) in requests {
        let mut bytes = vec![2u8];
        bytes.extend(encode_frames(&[frame]));
        add(&mut seeds, "dealer_stream", &format!("request-{name}"), bytes);
    }

    // datasets: one valid file of each decoder, some gzipped.
    let images = idx(2051, &[2, 3, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    let labels = idx(2049, &[2], &[3, 9]);
    let with = |which: u8, rest: Vec<u8>| [vec![which], rest].concat();
    add(&mut seeds, "datasets", "idx-pair", with(0, join(&[&images, &labels])));
    add(&mut seeds, "datasets", "idx-pair-gz", with(0, join(&[&gzip(&images), &gzip(&labels)])));
    let record = |labels: &[u8]| [labels.to_vec(), (0..3072).map(|i| (i % 251) as u8).collect()].concat();
    add(&mut seeds, "datasets", "cifar10-record", with(1, record(&[7])));
    add(&mut seeds, "datasets", "cifar10-records-gz", with(1, gzip(&[record(&[1]), record(&[2])].concat())));
    add(&mut seeds, "datasets", "cifar100-record", with(2, record(&[3, 77])));
    let sized = |h: u8, w: u8, img: Vec<u8>| with(3, [vec![h, w], img].concat());
    add(&mut seeds, "datasets", "png-3x2", sized(0, 0, image_bytes(3, 2, image::ImageFormat::Png)));
    add(&mut seeds, "datasets", "png-5x4-to-2x3", sized(2, 3, image_bytes(5, 4, image::ImageFormat::Png)));
    add(&mut seeds, "datasets", "jpeg-8x8", sized(0, 0, image_bytes(8, 8, image::ImageFormat::Jpeg)));
    add(&mut seeds, "datasets", "jpeg-9x5-to-4x4", sized(4, 4, image_bytes(9, 5, image::ImageFormat::Jpeg)));
    add(&mut seeds, "datasets", "wnids", with(4, b"n01443537\nn01629819\n\nn01641577\n".to_vec()));
    let ann = b"n01629819\nn01443537\0val_0.JPEG\tn01443537\t0\t32\t44\t62\nval_1.JPEG\tn01629819\t52\t55\t57\t59\n";
    add(&mut seeds, "datasets", "val-annotations", with(5, ann.to_vec()));

    let mut total = 0;
    for (target, files) in &seeds {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).expect("creating a seed directory");
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).expect("writing a seed");
            total += 1;
        }
        let biggest = files.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        println!("{target:12} {:3} seeds, largest {biggest} bytes", files.len());
    }
    for (t, _) in entries::TARGETS {
        assert!(seeds.contains_key(t), "no seeds for {t}");
    }
    println!("{total} seeds in {}", out.display());
}
