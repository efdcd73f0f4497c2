//! Dataset readers on generated files (gzip or not, truncated record counts, corrupt input), the
//! loader's augmentation and normalisation, and the real files when MASQ_DATA_DIR is set.

use std::io::Write;
use std::path::{Path, PathBuf};

use masq_trainer::data::{Augment, DatasetKind, Loader, Normalisation, Split, load_split, read_cifar_file};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Device;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn cifar_records(n: usize, label_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        for _ in 0..label_bytes {
            out.push((i % 10) as u8);
        }
        out.extend((0..3072).map(|p| ((i * 31 + p) % 256) as u8));
    }
    out
}

#[test]
fn cifar_files_plain_and_gzipped_with_any_record_count() {
    let d = tmpdir("cifar");
    std::fs::write(d.join("data_batch_1.bin"), cifar_records(7, 1)).unwrap();
    std::fs::write(d.join("data_batch_2.bin.gz"), gz(&cifar_records(5, 1))).unwrap();
    std::fs::write(d.join("test_batch.bin.gz"), gz(&cifar_records(3, 1))).unwrap();
    let train = load_split(DatasetKind::Cifar10, Some(&d), Split::Train).unwrap();
    assert_eq!(train.len(), 12);
    assert_eq!(train.labels[7], 0);
    assert_eq!(train.images[3072 + 5], 36);
    let test = load_split(DatasetKind::Cifar10, Some(&d), Split::Test).unwrap();
    assert_eq!((test.len(), test.shape, test.classes), (3, [3, 32, 32], 10));
    // CIFAR-100: fine label is the second byte.
    let mut rec = cifar_records(2, 2);
    rec[1] = 42;
    std::fs::write(d.join("train.bin"), &rec).unwrap();
    let c100 = read_cifar_file(DatasetKind::Cifar100, &d.join("train.bin")).unwrap();
    assert_eq!((c100.labels[0], c100.classes), (42, 100));
    // A truncated file and an out-of-range label are errors naming the file.
    std::fs::write(d.join("bad.bin"), &cifar_records(2, 1)[..5000]).unwrap();
    let e = read_cifar_file(DatasetKind::Cifar10, &d.join("bad.bin")).unwrap_err().to_string();
    assert!(e.contains("bad.bin") && e.contains("records"), "{e}");
    let mut r = cifar_records(1, 1);
    r[0] = 10;
    std::fs::write(d.join("label.bin"), &r).unwrap();
    assert!(read_cifar_file(DatasetKind::Cifar10, &d.join("label.bin")).is_err());
    // A directory with no test files.
    let empty = tmpdir("cifar-empty");
    assert!(load_split(DatasetKind::Cifar10, Some(&empty), Split::Test).is_err());
    std::fs::remove_dir_all(&d).unwrap();
    std::fs::remove_dir_all(&empty).unwrap();
}

fn idx(dir: &Path, prefix: &str, n: usize, gzip: bool) {
    let mut im = vec![0, 0, 8, 3];
    for v in [n as u32, 28, 28] {
        im.extend(v.to_be_bytes());
    }
    im.extend((0..n * 784).map(|i| (i % 251) as u8));
    let mut lb = vec![0, 0, 8, 1];
    lb.extend((n as u32).to_be_bytes());
    lb.extend((0..n).map(|i| (i % 10) as u8));
    let (im, lb, ext) = if gzip { (gz(&im), gz(&lb), ".gz") } else { (im, lb, "") };
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), im).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), lb).unwrap();
}

#[test]
fn idx_files() {
    let d = tmpdir("idx");
    let sub = d.join("fashion-mnist");
    std::fs::create_dir_all(&sub).unwrap();
    idx(&sub, "train", 9, true);
    idx(&sub, "t10k", 4, false);
    // The parent directory works too (the dataset's sub-directory is found).
    let train = load_split(DatasetKind::FashionMnist, Some(&d), Split::Train).unwrap();
    assert_eq!((train.len(), train.shape), (9, [1, 28, 28]));
    assert_eq!(train.labels[3], 3);
    let test = load_split(DatasetKind::FashionMnist, Some(&sub), Split::Test).unwrap();
    assert_eq!(test.len(), 4);
    // Wrong magic.
    std::fs::write(sub.join("t10k-labels-idx1-ubyte"), [0u8, 0, 8, 3, 0, 0, 0, 0]).unwrap();
    assert!(load_split(DatasetKind::FashionMnist, Some(&sub), Split::Test).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn loader_normalises_and_augments() {
    let d = tmpdir("loader");
    std::fs::write(d.join("test_batch.bin"), cifar_records(4, 1)).unwrap();
    let data = load_split(DatasetKind::Cifar10, Some(&d), Split::Test).unwrap();
    let norm = Normalisation { mean: vec![0.5, 0.4, 0.3], std: vec![0.2, 0.25, 0.5] };
    let plain = Loader::new(&data, norm.clone(), Augment::NONE, 2, Device::Cpu).unwrap();
    let (x, y) = plain.batch(&[1, 3], None).unwrap();
    assert_eq!(x.size(), vec![2, 3, 32, 32]);
    assert_eq!(Vec::<i64>::try_from(&y).unwrap(), vec![1, 3]);
    let v = f64::try_from(x.get(0).get(1).get(2).get(5)).unwrap();
    let raw = data.images[3072 + 1024 + 2 * 32 + 5] as f64;
    assert!((v - (raw / 255.0 - 0.4) / 0.25).abs() < 1e-5);
    // Flip only: every row is reversed or not.
    let flip = Loader::new(&data, norm.clone(), Augment { crop_padding: 0, flip: true }, 2, Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut flipped = 0;
    for _ in 0..20 {
        let (xf, _) = flip.batch(&[1], Some(&mut rng)).unwrap();
        let a = x.get(0);
        if xf.get(0).equal(&a) {
            continue;
        }
        assert!(xf.get(0).equal(&a.flip([2])));
        flipped += 1;
    }
    assert!((3..=17).contains(&flipped), "{flipped} flips of 20");
    // Crop: shifted content with zero (black) borders, same shape.
    let crop = Loader::new(&data, norm, Augment { crop_padding: 4, flip: false }, 2, Device::Cpu).unwrap();
    let (xc, _) = crop.batch(&[0, 1, 2, 3], Some(&mut rng)).unwrap();
    assert_eq!(xc.size(), vec![4, 3, 32, 32]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn real_files_when_available() {
    let Some(dir) = std::env::var_os("MASQ_DATA_DIR").map(PathBuf::from) else {
        println!("skipped: set MASQ_DATA_DIR (e.g. ../shared/data)");
        return;
    };
    let m = load_split(DatasetKind::Mnist, Some(&dir), Split::Train).unwrap();
    assert_eq!(m.len(), 60_000);
    let m = load_split(DatasetKind::Mnist, Some(&dir), Split::Test).unwrap();
    assert_eq!(m.len(), 10_000);
    // The CIFAR-10 test split of the shared folder is the byte-exact 1000-image subset.
    let c = load_split(DatasetKind::Cifar10, Some(&dir), Split::Test).unwrap();
    assert_eq!(c.len(), 1000);
    let t = load_split(DatasetKind::Cifar10, Some(&dir), Split::Train).unwrap();
    assert_eq!(t.len(), 20_000);
}
