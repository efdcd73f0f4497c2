//! `masq calibrate MODEL --dataset NAME [--data DIR] [--images N] [--holdout M] [--guard-bits G]
//! [--frac-bits F] -o OUT [--json]`: per-layer comparison widths calibrated on data.
//!
//! Runs the secure lowering in the clear on N calibration images (the first N of `--split`,
//! training by default), gives each comparing node the width of the largest value it compared
//! plus G guard bits, measures the overflow rate (values with `|x| ≥ 2^(k−1)`) on those images
//! and on M held-out ones (the first M test images; with `--split test`, the M after the first
//! N), prints a per-layer table and the dealer bytes per inference at 64 bits and calibrated, and
//! writes the model with its widths to OUT: an artifact directory, or a masq checkpoint when OUT
//! ends in `.safetensors` (both written under a temporary name and renamed into place).

use std::path::PathBuf;

use anyhow::{Context, bail};
use masq_exporter::{ExportOptions, ModelSpec};
use masq_ir::zoo::KeyRemap;
use masq_ir::{Graph, report};
use masq_runtime::secure::calibrate::{self as cal, NodeRange};
use masq_runtime::secure::{self, SecureConfig};
use masq_trainer::data::{Dataset, DatasetKind, Normalisation, Split, load_split};
use ndarray::ArrayD;
use serde::Serialize;

use super::common::units::fmt_bytes;
use super::common::{args, json, model};

/// Which split the calibration images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CalibSplit {
    Train,
    Test,
}

/// Arguments of `masq calibrate`.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// zoo:NAME (built for the dataset), a .onnx file, a masq checkpoint or an artifact directory.
    #[arg(value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// Weights from a safetensors file (e.g. a PyTorch state dict; `module.` is stripped).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Rename the keys of --weights (see `masq load-weights --help`); repeatable.
    #[arg(long, requires = "weights", value_name = "PATTERN=REPLACEMENT", value_parser = args::key_remap)]
    pub remap: Vec<KeyRemap>,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder | synthetic.
    #[arg(long, value_name = "DATASET", value_parser = args::dataset)]
    pub dataset: DatasetKind,
    /// Directory of the dataset's files.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Calibration images.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub images: usize,
    /// Held-out images the widths are checked on (0: none).
    #[arg(long, default_value_t = 1000, value_name = "M")]
    pub holdout: usize,
    /// Split of the calibration images (held-out images are always test images).
    #[arg(long, value_enum, default_value_t = CalibSplit::Train)]
    pub split: CalibSplit,
    /// Bits above the largest calibrated value.
    #[arg(long, default_value_t = cal::DEFAULT_GUARD_BITS, value_name = "G",
          value_parser = clap::value_parser!(u32).range(0..=62))]
    pub guard_bits: u32,
    /// Fractional bits of the fixed-point encoding, 1 to 40. The model records this scale with
    /// the widths; a run at another `--frac-bits` moves each width by the difference.
    #[arg(long, default_value_t = 16, value_name = "F", value_parser = clap::value_parser!(u32).range(1..=40))]
    pub frac_bits: u32,
    /// Images probed at once.
    #[arg(long, default_value_t = cal::DEFAULT_PROBE_BATCH)]
    pub batch_size: usize,
    /// Output: an artifact directory, or a masq checkpoint (`.safetensors`).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
    /// Replace an existing artifact at OUT.
    #[arg(long)]
    pub force: bool,
    /// Print JSON Lines instead of a table; the last line is the result (nodes, totals).
    #[arg(long)]
    pub json: bool,
}

/// One layer of the result.
#[derive(Debug, Serialize)]
struct Layer {
    #[serde(flatten)]
    node: cal::CalibratedNode,
    calibration_overflows: u64,
    holdout_compared: u64,
    holdout_overflows: u64,
}

/// The JSON result.
#[derive(Debug, Serialize)]
struct Output {
    model: String,
    dataset: String,
    images: usize,
    holdout: usize,
    guard_bits: u32,
    frac_bits: u32,
    layers: Vec<Layer>,
    calibration_compared: u64,
    calibration_overflows: u64,
    holdout_compared: u64,
    holdout_overflows: u64,
    /// Dealer bytes of one inference (both parties) with every comparison on 64 bits.
    offline_bytes_64: u64,
    /// ... and with the calibrated widths.
    offline_bytes_calibrated: u64,
    /// The ring's headroom on the calibration images: values truncated locally per inference,
    /// bits of the largest, expected failures per inference in Z_2^64 (a run expecting more than
    /// 1e-2 is refused) and in a 32-bit ring (masq_runtime::secure::headroom).
    truncated_per_image: u64,
    truncated_bits: u32,
    expected_truncation_failures_per_image: f64,
    expected_truncation_failures_per_image_ring32: f64,
    out: PathBuf,
}

/// Images `from..from + n` of `d`, normalised, as `[n, C, H, W]`.
fn tensor(d: &Dataset, from: usize, n: usize, norm: &Normalisation) -> anyhow::Result<ArrayD<f32>> {
    let [c, h, w] = d.shape;
    if from + n > d.len() {
        bail!("{} images asked (from {from}), the split has {}", n, d.len());
    }
    let len = d.image_len();
    let bytes = &d.images[from * len..(from + n) * len];
    let ch = |i: usize, v: &[f32]| v.get(i).or(v.first()).copied().unwrap_or(0.0);
    let vals = bytes
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let k = (i / (h * w)) % c;
            (p as f32 / 255.0 - ch(k, &norm.mean)) / ch(k, &norm.std).max(f32::MIN_POSITIVE)
        })
        .collect();
    Ok(ArrayD::from_shape_vec(vec![n, c, h, w], vals)?)
}

fn offline_bytes(graph: &Graph, cfg: &SecureConfig) -> anyhow::Result<u64> {
    let batch = if graph.supports_batch() { 1 } else { graph.data_inputs().next().map_or(1, |i| i.shape_at(1)[0]) };
    Ok(secure::plan(graph, batch, cfg).context("planning")?.total().offline_bytes())
}

pub fn run(a: CalibrateArgs) -> anyhow::Result<()> {
    if a.images == 0 {
        bail!("--images 0: must be at least 1");
    }
    let kind = a.dataset;
    let split = if a.split == CalibSplit::Train { Split::Train } else { Split::Test };
    let calib = load_split(kind, a.data.as_deref(), split).with_context(|| format!("loading {}", kind.name()))?;
    let test = if a.holdout > 0 && split == Split::Train {
        Some(
            load_split(kind, a.data.as_deref(), Split::Test)
                .with_context(|| format!("loading {} test", kind.name()))?,
        )
    } else {
        None
    };
    let mut loaded = model::load_for_data(&a.model, calib.shape, calib.classes, 0)?;
    if let Some(w) = &a.weights {
        model::apply_weights(&mut loaded.graph, w, &a.remap)?;
    }
    let norm = model::recorded_normalisation(&loaded).unwrap_or_else(|| kind.default_norm());
    let cfg = SecureConfig { frac_bits: a.frac_bits, ..SecureConfig::default() };
    let mut graph = loaded.graph.clone();
    graph.cmp_bits.clear();

    let x = tensor(&calib, 0, a.images, &norm).context("calibration images")?;
    if !a.json {
        eprintln!("probing {} calibration images of {}", a.images, kind.name());
    }
    let c = cal::calibrate_batched(&graph, &x, &cfg, a.guard_bits, a.batch_size).context("calibrating")?;
    let calib_over = c.overflows(&c.nodes.iter().map(|n| n.range.clone()).collect::<Vec<NodeRange>>());
    let held: Option<Vec<NodeRange>> = if a.holdout > 0 {
        let (d, from) = match &test {
            Some(t) => (t, 0),
            None => (&calib, a.images),
        };
        let y = tensor(d, from, a.holdout, &norm).context("held-out images")?;
        if !a.json {
            eprintln!("probing {} held-out images", a.holdout);
        }
        Some(cal::probe_ranges(&graph, &y, &cfg, a.batch_size).context("probing the held-out images")?)
    } else {
        None
    };
    let held_over = held.as_ref().map(|h| c.overflows(h));
    let bytes_64 = offline_bytes(&graph, &SecureConfig { cmp_bits: 64, ..cfg })?;
    c.apply(&mut graph);
    let bytes_cal = offline_bytes(&graph, &cfg)?;

    let layers: Vec<Layer> = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let h = held.as_ref().and_then(|h| h.iter().position(|r| r.name == n.range.name));
            Layer {
                node: n.clone(),
                calibration_overflows: calib_over[i],
                holdout_compared: h.map_or(0, |j| held.as_ref().expect("some")[j].stats.count),
                holdout_overflows: h.and_then(|j| held_over.as_ref().map(|o| o[j])).unwrap_or(0),
            }
        })
        .collect();
    write_out(&a, &loaded, &graph)?;
    let o = Output {
        model: a.model.to_string(),
        dataset: kind.name().to_string(),
        images: a.images,
        holdout: a.holdout,
        guard_bits: a.guard_bits,
        frac_bits: a.frac_bits,
        calibration_compared: layers.iter().map(|l| l.node.range.stats.count).sum(),
        calibration_overflows: calib_over.iter().sum(),
        holdout_compared: layers.iter().map(|l| l.holdout_compared).sum(),
        holdout_overflows: held_over.iter().flatten().sum(),
        layers,
        offline_bytes_64: bytes_64,
        offline_bytes_calibrated: bytes_cal,
        truncated_per_image: c.truncated_per_image,
        truncated_bits: c.truncated_bits,
        expected_truncation_failures_per_image: c.expected_truncation_failures_per_image,
        expected_truncation_failures_per_image_ring32: c.expected_truncation_failures_per_image_ring32,
        out: a.out.clone(),
    };
    if a.json {
        return json::print(&o);
    }
    print!("{}", table(&o));
    Ok(())
}

/// Writes the widened model: a checkpoint for `.safetensors`, else an artifact directory.
fn write_out(a: &CalibrateArgs, loaded: &masq_exporter::model_spec::LoadedModel, graph: &Graph) -> anyhow::Result<()> {
    if a.out.extension().is_some_and(|e| e == "safetensors") {
        let facts = loaded.facts.clone().unwrap_or_default();
        return masq_ir::checkpoint::save_checkpoint(&a.out, graph, &facts)
            .with_context(|| format!("writing {}", a.out.display()));
    }
    let facts = model::export_facts(&a.model, loaded);
    let opts = ExportOptions { force: a.force, ..ExportOptions::default() };
    masq_exporter::export(graph, &facts, &a.out, &opts).with_context(|| format!("writing {}", a.out.display()))?;
    Ok(())
}

fn rate(n: u64, of: u64) -> String {
    match (n, of) {
        (_, 0) => "-".into(),
        (0, _) => "0".into(),
        _ => format!("{n} ({:.2e})", n as f64 / of as f64),
    }
}

fn table(o: &Output) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = o.layers.iter().map(|l| l.node.range.name.len()).max().unwrap_or(4).clamp(4, 40);
    let _ = writeln!(
        s,
        "{} on {}: {} calibration images, {} held out, guard {} bits, f = {}",
        o.model, o.dataset, o.images, o.holdout, o.guard_bits, o.frac_bits
    );
    let _ = writeln!(
        s,
        "{:<w$}  {:<12}  {:>10}  {:>12}  {:>4}  {:>16}  {:>16}",
        "node", "op", "cmp/image", "max |x|", "bits", "overflow calib", "overflow held"
    );
    for l in &o.layers {
        let _ = writeln!(
            s,
            "{:<w$}  {:<12}  {:>10}  {:>12.4}  {:>4}  {:>16}  {:>16}",
            l.node.range.name,
            l.node.range.op,
            report::thousands(l.node.range.comparisons_per_image),
            l.node.range.max_abs_real,
            l.node.bits,
            rate(l.calibration_overflows, l.node.range.stats.count),
            rate(l.holdout_overflows, l.holdout_compared)
        );
    }
    let _ = writeln!(
        s,
        "overflow: calibration {}, held out {}",
        rate(o.calibration_overflows, o.calibration_compared),
        rate(o.holdout_overflows, o.holdout_compared)
    );
    let _ = writeln!(
        s,
        "dealer bytes per inference: {} at 64 bits, {} calibrated ({:.1}%)",
        fmt_bytes(o.offline_bytes_64),
        fmt_bytes(o.offline_bytes_calibrated),
        100.0 * o.offline_bytes_calibrated as f64 / o.offline_bytes_64.max(1) as f64
    );
    let _ = writeln!(
        s,
        "truncations per inference: {} (largest {} bits), expected to fail: {:.2e} in Z_2^64 (limit {:e}), {:.2e} in a \
         32-bit ring",
        report::thousands(o.truncated_per_image),
        o.truncated_bits,
        o.expected_truncation_failures_per_image,
        masq_runtime::secure::headroom::MAX_EXPECTED_FAILURES_PER_IMAGE,
        o.expected_truncation_failures_per_image_ring32
    );
    let _ = writeln!(s, "wrote {}", o.out.display());
    s
}
