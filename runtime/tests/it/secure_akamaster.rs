//! The pretrained akamaster ResNet-20 under 2PC on the first 100 images of the exact CIFAR-10 test
//! subset: the secure top-1 equals the plaintext top-1 on every image.
//! Needs MASQ_DATA_DIR and MASQ_MODELS_DIR (e.g. ../shared/data, ../shared/models); skips with a
//! message when either is unset.

use std::io::Read;
use std::path::PathBuf;

use masq_ir::{weights::read_safetensors, zoo};
use masq_runtime::secure::{self, SecureConfig};
use ndarray::{ArrayD, Axis};

const RECORD: usize = 1 + 3 * 32 * 32;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

fn argmax(row: ndarray::ArrayViewD<f32>) -> usize {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

#[test]
fn resnet20_secure_top1_equals_plaintext_on_100_cifar_images() {
    let (Some(data), Some(models)) = (std::env::var_os("MASQ_DATA_DIR"), std::env::var_os("MASQ_MODELS_DIR")) else {
        eprintln!(
            "skipping: set MASQ_DATA_DIR and MASQ_MODELS_DIR (e.g. ../shared/data, ../shared/models) to run this test"
        );
        return;
    };
    let file = PathBuf::from(data).join("cifar10/exact_test_batch_first1000.bin.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()).read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len(), 1000 * RECORD, "{}: 1000 records", file.display());
    let n = 100;
    let mut x = ArrayD::<f32>::zeros(vec![n, 3, 32, 32]);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let rec = &bytes[i * RECORD..(i + 1) * RECORD];
        labels.push(rec[0] as usize);
        for (j, &p) in rec[1..].iter().enumerate() {
            let c = j / 1024;
            x[[i, c, (j / 32) % 32, j % 32]] = (p as f32 / 255.0 - MEAN[c]) / STD[c];
        }
    }
    let dir = PathBuf::from(models).join("akamaster");
    let ckpt = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with("resnet20-") && f.ends_with(".safetensors"))
        })
        .unwrap_or_else(|| panic!("no resnet20-*.safetensors in {}", dir.display()));
    let mut g = zoo::build("resnet20", None, 0).unwrap();
    zoo::apply_weights(&mut g, &read_safetensors(&ckpt).unwrap()).unwrap();

    let (mut agree, mut correct, mut worst) = (0, 0, 0f64);
    let chunk = 2;
    for start in (0..n).step_by(chunk) {
        let xb = x.slice_axis(Axis(0), (start..start + chunk).into()).to_owned();
        let run = secure::run(&g, &xb, &SecureConfig { seed: start as u64, ..SecureConfig::default() }).unwrap();
        worst = worst.max(run.report.max_abs_error);
        let (y, p) = (&run.outputs[0].1, &run.plain[0].1);
        for i in 0..chunk {
            let (s, t) = (argmax(y.index_axis(Axis(0), i)), argmax(p.index_axis(Axis(0), i)));
            agree += (s == t) as usize;
            correct += (s == labels[start + i]) as usize;
        }
    }
    eprintln!("secure == plaintext top-1 on {agree}/{n}; secure accuracy {correct}/{n}; max |logit error| {worst:.2e}");
    assert_eq!(agree, n);
    assert!(correct >= 85, "a pretrained ResNet-20 scores about 91% here");
    assert!(worst < 5e-2);
}
