//! `masq cifar-npy --file test_batch.bin[.gz] --index I [--count N] --out x.npy` (hidden; used by
//! `make demo-2pc`): CIFAR-10 images from the binary format (records of 1 label byte and 3072
//! pixel bytes, channel-major), normalised with the ImageNet mean and deviation the pretrained
//! ResNet-20 expects, as `[N, 3, 32, 32]` f32. Prints the labels.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use masq_ir::facts::Normalisation;
use ndarray::ArrayD;

const RECORD: usize = 1 + 3 * 32 * 32;
/// Largest file read (a CIFAR-10 test batch is 30.7 MB).
const MAX_BYTES: u64 = 256 << 20;

/// Arguments of `masq cifar-npy`.
#[derive(Debug, clap::Args)]
pub struct CifarNpyArgs {
    /// CIFAR-10 binary batch, optionally gzipped (`.gz`).
    #[arg(long, required_unless_present = "synthetic")]
    pub file: Option<PathBuf>,
    /// Instead of reading a file, write seeded random pixels (label 255 = none).
    #[arg(long, value_name = "SEED", conflicts_with = "file")]
    pub synthetic: Option<u64>,
    /// First image.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Images.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Output `.npy`.
    #[arg(long)]
    pub out: PathBuf,
}

/// `count` seeded random records (label 255).
fn synthetic(seed: u64, count: usize) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    (0..count * RECORD).map(|i| if i % RECORD == 0 { 255 } else { rng.random() }).collect()
}

pub fn run(args: CifarNpyArgs) -> anyhow::Result<()> {
    let (bytes, index) = match (&args.file, args.synthetic) {
        (_, Some(seed)) => (synthetic(seed, args.count), 0),
        (Some(file), None) => (read(file)?, args.index),
        (None, None) => bail!("give --file or --synthetic"),
    };
    let name = args.file.as_ref().map_or("synthetic".into(), |f| f.display().to_string());
    let records = bytes.len() / RECORD;
    if bytes.len() % RECORD != 0 || args.count == 0 || index + args.count > records {
        bail!("{name}: {} bytes = {records} records; images {index}..{} asked", bytes.len(), index + args.count);
    }
    let Normalisation { mean, std } = Normalisation::imagenet();
    let mut x = ArrayD::<f32>::zeros(vec![args.count, 3, 32, 32]);
    let mut labels = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let rec = &bytes[(index + i) * RECORD..(index + i + 1) * RECORD];
        labels.push(rec[0]);
        for (j, &p) in rec[1..].iter().enumerate() {
            let c = j / 1024;
            x[[i, c, (j / 32) % 32, j % 32]] = (p as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    masq_ir::npy::write(&args.out, &x).with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}", labels.iter().map(u8::to_string).collect::<Vec<_>>().join(" "));
    Ok(())
}

fn read(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut bytes = Vec::new();
    let gz = file.extension().is_some_and(|e| e == "gz");
    let read = if gz {
        flate2::read::GzDecoder::new(f).take(MAX_BYTES).read_to_end(&mut bytes)
    } else {
        f.take(MAX_BYTES).read_to_end(&mut bytes)
    };
    read.with_context(|| format!("reading {}", file.display()))?;
    Ok(bytes)
}
