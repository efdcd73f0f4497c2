//! `masq run MODEL --input X.npy [--mode plain|ort|mpc] [--output Y.npy] [--frac-bits F] [--seed S] [--json]`:
//! evaluates a model on a batch, in the clear or under two-party computation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use masq_exporter::ModelSpec;
use masq_ir::cost::{ModelCounts, NodeCost};
use masq_ir::{Graph, format_dims, npy, report};
use masq_mpc::dealer::CmpMode;
use masq_runtime::plain;
use masq_runtime::secure::{self, Progress, SecureConfig, StreamingReport};
use ndarray::{ArrayD, Axis};
use serde::Serialize;

use super::common::batch::{self as fixed_batch, FixedBatch};
use super::common::predict::argmax_rows;
use super::common::units::{fmt_bytes, fmt_seconds};
use super::common::{json, model, progress};

/// How to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The plaintext interpreter (f32).
    Plain,
    /// onnxruntime (a cross-check of the plaintext interpreter).
    Ort,
    /// Two-party computation: P0 holds the weights, P1 the input; the output is revealed to P1.
    Mpc,
}

/// Arguments of `masq run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// zoo:NAME[@HxW] (seeded random weights), a .onnx file, a masq checkpoint (.safetensors) or an
    /// artifact directory (--mode ort needs a .onnx file or an artifact).
    #[arg(value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub model: ModelSpec,
    /// Input tensor (`.npy`, float): `[N, C, H, W]` for a batch or `[C, H, W]` for one image.
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,
    /// Evaluation mode.
    #[arg(long, value_enum, default_value_t = Mode::Mpc)]
    pub mode: Mode,
    /// Write the (first) output to this `.npy` file.
    #[arg(long, value_name = "Y.npy")]
    pub output: Option<PathBuf>,
    /// Fractional bits of the fixed-point encoding (mpc mode), 1 to 40.
    #[arg(long, default_value_t = 16, value_name = "F", value_parser = clap::value_parser!(u32).range(1..=40))]
    pub frac_bits: u32,
    /// Seed of the dealer's randomness (mpc mode).
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// How secure comparisons (ReLU, MaxPool, Clip, masked activations) run (mpc mode):
    /// one-round (1 round per comparison layer, 2,048-byte keys at 64 bits) or compact (2 rounds,
    /// 935-byte keys: half the dealer material and memory). `masq estimate` compares the two.
    #[arg(long, default_value = "one-round", value_name = "one-round|compact")]
    pub cmp_mode: CmpMode,
    /// Width of secure comparisons in bits where the model has no calibrated width (mpc mode):
    /// 64 is exact for every value; k bits are exact for |x| < 2^(k-1) in fixed point.
    #[arg(long, default_value_t = 64, value_name = "K", value_parser = clap::value_parser!(u32).range(2..=64))]
    pub bits: u32,
    /// Most dealer material held in memory at once (mpc mode), both parties together: the
    /// material is dealt in segments of at most this size while the online phase runs (a single
    /// larger layer gets a segment of its own), and a batch runs in chunks of as many images as
    /// keep the largest layer within it. Bytes, with an optional K, M, G or T suffix (powers of
    /// 1024). Smaller: less memory, more chunks (rounds add up per chunk); the outputs stay within
    /// fixed-point tolerance.
    #[arg(long, default_value = "1G", value_name = "SIZE", value_parser = secure::parse_size)]
    pub material_budget: u64,
    /// Where the two parties compute (mpc mode): shared (both at once on this machine's cores,
    /// one thread each: the single-process simulation) or own-cores (each party alone with every
    /// core, as on a machine of its own: after the run, each party runs again by itself against
    /// the messages it received and must send the same messages; the reported online seconds
    /// are then those of the lone runs, the slower party's). Bytes and rounds are the same.
    #[arg(long, default_value = "shared", value_name = "shared|own-cores")]
    pub layout: secure::Layout,
    /// Print JSON Lines instead of tables; the last line is the result (relu_count, online bytes,
    /// rounds, seconds, predictions, layers, ...).
    #[arg(long)]
    pub json: bool,
}

/// One layer in the output (the plaintext modes fill only the structural fields).
#[derive(Debug, Serialize)]
struct Layer {
    name: String,
    op: String,
    output_shape: Vec<usize>,
    /// The cost table's figures for one image (`relus`, comparisons by kind, `macs`, ...).
    #[serde(flatten)]
    per_image: NodeCost,
    online_bytes_p0_to_p1: u64,
    online_bytes_p1_to_p0: u64,
    rounds: u64,
    offline_bytes: u64,
    seconds: f64,
    /// mpc: bits (signed) of the largest value this layer truncates locally, and how many of its
    /// truncations are expected to fail (`Σ |x| / 2^64`, masq_runtime::secure::headroom).
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated_bits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_truncation_failures: Option<f64>,
}

/// The JSON object `masq run --json` prints (a stable contract: keys are only ever added).
#[derive(Debug, Serialize)]
struct RunOutput {
    mode: Mode,
    model: String,
    batch: usize,
    frac_bits: Option<u32>,
    /// mpc mode: the comparison mode and the global comparison width (calibrated nodes keep
    /// their own, listed per layer).
    cmp_mode: Option<CmpMode>,
    cmp_bits: Option<u32>,
    seed: Option<u64>,
    /// Totals for one image: `relu_count` (ReLU elements), comparisons by kind, `macs`, ...
    #[serde(flatten)]
    per_image: ModelCounts,
    /// Secure comparisons of the whole batch.
    comparisons_per_batch: u64,
    /// Set when the model only runs at this batch (it mixes its images, so it cannot be
    /// generalised): one inference is this many images, and the "per image" figures are for all
    /// of them together.
    fixed_batch: Option<usize>,
    online_bytes: u64,
    online_bytes_p0_to_p1: u64,
    online_bytes_p1_to_p0: u64,
    rounds: u64,
    offline_bytes: u64,
    /// Online wall seconds (mpc) or evaluation seconds (plain, ort).
    seconds: f64,
    offline_seconds: f64,
    setup_seconds: f64,
    est_lan_seconds: Option<f64>,
    est_wan_seconds: Option<f64>,
    formula: Option<&'static str>,
    /// mpc: largest absolute difference from the plaintext interpreter.
    max_abs_error: Option<f64>,
    /// mpc: compared values beyond their layer's comparison width (nonzero: the result may be
    /// wrong; a warning is printed).
    range_overflows: Option<u64>,
    /// mpc: local truncations expected to fail over the batch (a run expecting more than 1e-2
    /// per image is refused before it starts, above 1e-4 it is warned about).
    expected_truncation_failures: Option<f64>,
    output_shape: Vec<usize>,
    /// Argmax of each image's output.
    predictions: Vec<usize>,
    layers: Vec<Layer>,
    /// mpc: how the run was streamed (`material_budget_bytes`, `chunks`, `chunk_size`, `segments`,
    /// `peak_material_bytes`, `upfront_material_bytes`, `refill_seconds`). With several chunks, the
    /// bytes, rounds and seconds above are sums over the chunks, which run one after the other.
    #[serde(flatten)]
    streaming: Option<StreamingReport>,
    /// Human-readable remark on the fixed batch (table output only).
    #[serde(skip)]
    note: Option<String>,
}

/// Reads the input and checks it against the model's input (and the model's batch, when fixed).
fn read_input(
    graph: &Graph,
    path: &Path,
    model: &ModelSpec,
    fixed: Option<&FixedBatch>,
) -> anyhow::Result<ArrayD<f32>> {
    let x = npy::read_f32(path).with_context(|| format!("reading input {}", path.display()))?;
    let input = graph.data_inputs().next().context("the model has no input")?;
    let rank = input.shape.len();
    let x = if x.ndim() + 1 == rank { x.insert_axis(Axis(0)) } else { x };
    let batch = x.shape().first().copied().unwrap_or(0);
    if let Some(f) = fixed
        && x.ndim() == rank
        && batch != f.batch
        && x.shape()[1..] == input.shape_at(f.batch)[1..]
    {
        bail!("{}: {} image(s), but {}; {}", path.display(), batch, f.describe(model), f.give());
    }
    if x.ndim() != rank || batch == 0 || x.shape() != input.shape_at(batch).as_slice() {
        bail!(
            "{}: tensor of shape {:?} does not fit model input {} of shape {} (give [N, ...] or one image without N)",
            path.display(),
            x.shape(),
            input.name,
            format_dims(&input.shape)
        );
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!("{}: element {i} is not a finite number", path.display());
    }
    Ok(x)
}

/// The ONNX file behind MODEL, for onnxruntime: a `.onnx` path, or an artifact directory's `model.onnx`.
fn onnx_file(model: &ModelSpec) -> anyhow::Result<PathBuf> {
    match model.onnx_file() {
        Some(f) => Ok(f),
        None => bail!(
            "--mode ort needs an ONNX file or an exported artifact directory, not {model} (export it with `masq export` first)"
        ),
    }
}

/// Runs the model's ONNX file through onnxruntime (the independent reference). onnxruntime runs
/// the file as exported: a file declaring a fixed batch `B` that masq generalised runs in chunks of
/// `B` images.
fn run_ort(model: &ModelSpec, graph: &Graph, x: ArrayD<f32>) -> anyhow::Result<ArrayD<f32>> {
    let file = onnx_file(model)?;
    let input = graph.data_inputs().next().context("the model has no input")?.name.clone();
    let n = x.shape()[0];
    let chunk = match fixed_batch::onnx_declared_batch(&file) {
        Some(b) if b != n && graph.supports_batch() => {
            if !n.is_multiple_of(b) {
                bail!(
                    "{}: {n} image(s), but {} declares a fixed batch of {b} and onnxruntime runs it as exported; \
                     give a multiple of {b} images for --mode ort (--mode plain and mpc run it at any batch)",
                    file.display(),
                    file.display()
                );
            }
            b
        }
        _ => n,
    };
    let mut parts = Vec::new();
    for part in x.axis_chunks_iter(Axis(0), chunk) {
        let mut outs = masq_runtime::ort_backend::run_onnx(&file, &[(input.clone(), part.to_owned())])
            .with_context(|| format!("running {} in onnxruntime", file.display()))?;
        if outs.is_empty() {
            bail!("{}: onnxruntime returned no output", file.display());
        }
        parts.push(outs.swap_remove(0).1);
    }
    if parts.len() == 1 {
        return Ok(parts.swap_remove(0));
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).context("joining onnxruntime's outputs")
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let graph = model::load_graph(&args.model)?;
    let fixed = fixed_batch::fixed(&graph);
    let x = read_input(&graph, &args.input, &args.model, fixed.as_ref())?;
    let batch = x.shape()[0];
    // A fixed-batch model's one inference is its whole batch: its figures "per image" are for
    // all of them, and no further multiplication by the batch applies.
    let inferences = if fixed.is_some() { 1 } else { batch as u64 };
    let note = fixed.as_ref().map(|f| {
        format!(
            "note: {}; one inference is all {} images, and the figures \"per image\" below are for all of them",
            f.describe(&args.model),
            f.batch
        )
    });
    let out = match args.mode {
        Mode::Plain | Mode::Ort => {
            let t = Instant::now();
            let y = if args.mode == Mode::Ort {
                run_ort(&args.model, &graph, x)?
            } else {
                plain::run_single(&graph, x).with_context(|| format!("evaluating {}", args.model))?
            };
            let seconds = t.elapsed().as_secs_f64();
            let rep = report::report(&graph).with_context(|| format!("analysing {}", args.model))?;
            let layers = rep
                .layers
                .iter()
                .map(|l| Layer {
                    name: l.name.clone(),
                    op: l.op.clone(),
                    output_shape: l.output_shape.clone(),
                    per_image: NodeCost {
                        macs: l.macs,
                        relus: l.relus,
                        maxpool_comparisons: l.maxpool_comparisons,
                        clip_comparisons: l.clip_comparisons,
                        leaky_relu_comparisons: l.leaky_relu_comparisons,
                        sigmoid_comparisons: l.sigmoid_comparisons,
                        approx_comparisons: l.approx_comparisons,
                        poly_elements: l.poly_elements,
                    },
                    online_bytes_p0_to_p1: 0,
                    online_bytes_p1_to_p0: 0,
                    rounds: 0,
                    offline_bytes: 0,
                    seconds: 0.0,
                    truncated_bits: None,
                    expected_truncation_failures: None,
                })
                .collect();
            let o = RunOutput {
                mode: args.mode,
                model: args.model.to_string(),
                batch,
                frac_bits: None,
                cmp_mode: None,
                cmp_bits: None,
                seed: None,
                per_image: rep.totals().into(),
                comparisons_per_batch: rep.comparisons * inferences,
                fixed_batch: fixed.as_ref().map(|f| f.batch),
                online_bytes: 0,
                online_bytes_p0_to_p1: 0,
                online_bytes_p1_to_p0: 0,
                rounds: 0,
                offline_bytes: 0,
                seconds,
                offline_seconds: 0.0,
                setup_seconds: 0.0,
                est_lan_seconds: None,
                est_wan_seconds: None,
                formula: None,
                max_abs_error: None,
                range_overflows: None,
                expected_truncation_failures: None,
                output_shape: y.shape().to_vec(),
                predictions: argmax_rows(&y),
                layers,
                streaming: None,
                note: note.clone(),
            };
            (o, y)
        }
        Mode::Mpc => {
            let cfg = SecureConfig {
                frac_bits: args.frac_bits,
                seed: args.seed,
                cmp_bits: args.bits,
                cmp_mode: args.cmp_mode,
                material_budget_bytes: args.material_budget,
                layout: args.layout,
                ..SecureConfig::default()
            };
            let pb = progress::bar(0, "planning", args.json);
            let on = |p: Progress| match p {
                Progress::Phase(name) => pb.set_message(name),
                Progress::Node { done, total } => {
                    pb.set_length(total as u64);
                    pb.set_position(done as u64);
                }
            };
            let run = secure::run_with_progress(&graph, &x, &cfg, Some(&on))
                .with_context(|| format!("secure evaluation of {}", args.model))?;
            pb.finish_and_clear();
            let r = run.report;
            if r.range_overflows > 0 {
                let over: Vec<String> = r
                    .layers
                    .iter()
                    .filter(|l| l.range_overflows > 0)
                    .map(|l| format!("{} ({} at {} bits)", l.name, l.range_overflows, l.cmp_bits))
                    .collect();
                eprintln!(
                    "warning: {} compared value(s) exceed their layer's comparison width, so the secure result may be \
                     wrong: {}; recalibrate the widths (masq calibrate) on inputs like this one",
                    r.range_overflows,
                    over.join(", ")
                );
            }
            let per_image = r.expected_truncation_failures / r.batch.max(1) as f64;
            if per_image > masq_runtime::secure::headroom::WARN_EXPECTED_FAILURES_PER_IMAGE {
                eprintln!(
                    "warning: about {per_image:.1e} local truncations per image are expected to fail at {} fractional \
                     bits (a failed one is off by about 2^{}); fewer --frac-bits divide that by 4 each",
                    r.frac_bits,
                    64 - r.frac_bits
                );
            }
            let y = run.outputs.into_iter().next().map(|o| o.1).context("the model has no output")?;
            if let Some(msg) = precision_warning(r.max_abs_error, &y, r.frac_bits) {
                eprintln!("{msg}");
            }
            let layers = r
                .layers
                .iter()
                .map(|l| Layer {
                    name: l.name.clone(),
                    op: l.op.clone(),
                    output_shape: l.output_shape.clone(),
                    per_image: l.per_image,
                    online_bytes_p0_to_p1: l.online_bytes_p0_to_p1,
                    online_bytes_p1_to_p0: l.online_bytes_p1_to_p0,
                    rounds: l.rounds,
                    offline_bytes: l.offline_bytes,
                    seconds: l.seconds,
                    truncated_bits: Some(l.truncated_bits),
                    expected_truncation_failures: Some(l.expected_truncation_failures),
                })
                .collect();
            let o = RunOutput {
                mode: Mode::Mpc,
                model: args.model.to_string(),
                batch,
                frac_bits: Some(r.frac_bits),
                cmp_mode: Some(r.cmp_mode),
                cmp_bits: Some(r.cmp_bits),
                seed: Some(r.seed),
                per_image: r.per_image,
                comparisons_per_batch: r.comparisons_per_batch,
                fixed_batch: fixed.as_ref().map(|f| f.batch),
                online_bytes: r.online_bytes,
                online_bytes_p0_to_p1: r.online_bytes_p0_to_p1,
                online_bytes_p1_to_p0: r.online_bytes_p1_to_p0,
                rounds: r.rounds,
                offline_bytes: r.offline_bytes,
                seconds: r.online_seconds,
                offline_seconds: r.offline_seconds,
                setup_seconds: r.setup_seconds,
                est_lan_seconds: Some(r.est_lan_seconds),
                est_wan_seconds: Some(r.est_wan_seconds),
                formula: Some(r.formula),
                max_abs_error: Some(r.max_abs_error),
                range_overflows: Some(r.range_overflows),
                expected_truncation_failures: Some(r.expected_truncation_failures),
                output_shape: y.shape().to_vec(),
                predictions: argmax_rows(&y),
                layers,
                streaming: Some(r.streaming),
                note: note.clone(),
            };
            (o, y)
        }
    };
    let (o, y) = out;
    if let Some(path) = &args.output {
        npy::write(path, &y).with_context(|| format!("writing output {}", path.display()))?;
    }
    if args.json {
        json::print(&o)?;
    } else {
        print!("{}", table(&o));
    }
    Ok(())
}

fn table(o: &RunOutput) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = o.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 40);
    let _ = writeln!(s, "model {} (mode {:?}, batch {})", o.model, o.mode, o.batch);
    if let Some(n) = &o.note {
        let _ = writeln!(s, "{n}");
    }
    let _ = writeln!(
        s,
        "{:<w$}  {:<18}  {:<18}  {:>10}  {:>10}  {:>10}  {:>6}  {:>10}",
        "name", "op", "output", "ReLUs", "P0->P1", "P1->P0", "rounds", "time"
    );
    for l in &o.layers {
        let _ = writeln!(
            s,
            "{:<w$}  {:<18}  {:<18}  {:>10}  {:>10}  {:>10}  {:>6}  {:>10}",
            l.name,
            l.op,
            format!("{:?}", l.output_shape),
            report::thousands(l.per_image.relus),
            fmt_bytes(l.online_bytes_p0_to_p1),
            fmt_bytes(l.online_bytes_p1_to_p0),
            l.rounds,
            fmt_seconds(l.seconds)
        );
    }
    let _ = writeln!(
        s,
        "total per image: ReLUs {}, comparisons {}; batch of {}: online {} ({} P0->P1, {} P1->P0), {} rounds, offline {}",
        report::thousands(o.per_image.relu_count),
        report::thousands(o.per_image.comparisons),
        o.batch,
        fmt_bytes(o.online_bytes),
        fmt_bytes(o.online_bytes_p0_to_p1),
        fmt_bytes(o.online_bytes_p1_to_p0),
        o.rounds,
        fmt_bytes(o.offline_bytes)
    );
    let _ = writeln!(
        s,
        "time: {} {} (offline {}, model load {})",
        if o.mode == Mode::Mpc { "online" } else { "evaluation" },
        fmt_seconds(o.seconds),
        fmt_seconds(o.offline_seconds),
        fmt_seconds(o.setup_seconds)
    );
    if let (Some(lan), Some(wan), Some(f)) = (o.est_lan_seconds, o.est_wan_seconds, o.formula) {
        let _ = writeln!(s, "estimated latency: LAN {}, WAN {}  ({f})", fmt_seconds(lan), fmt_seconds(wan));
    }
    if let Some(st) = &o.streaming {
        let _ = writeln!(
            s,
            "material: {} chunk(s) of up to {} image(s), {} segment(s), peak {} resident (budget {}, {} if dealt up front)",
            st.chunks,
            st.chunk_size,
            st.segments,
            fmt_bytes(st.peak_material_bytes),
            fmt_bytes(st.material_budget_bytes),
            fmt_bytes(st.upfront_material_bytes)
        );
    }
    if let Some(e) = o.max_abs_error {
        let _ = writeln!(s, "max |secure - plaintext| = {e:.3e}");
    }
    let _ = writeln!(s, "output shape {:?}", o.output_shape);
    for (i, p) in o.predictions.iter().enumerate() {
        let _ = writeln!(s, "image {i}: class {p}");
    }
    s
}

/// Relative difference from plaintext (to the output's largest magnitude) above which `masq run
/// --mode mpc` warns.
const PRECISION_WARN: f64 = 1e-2;

/// A warning when the secure output is further from plaintext than [`PRECISION_WARN`], relative to
/// the output's largest magnitude: the model amplifies fixed-point rounding, and more fractional
/// bits reduce it (each bit halves the rounding).
fn precision_warning(max_abs_error: f64, y: &ndarray::ArrayD<f32>, frac_bits: u32) -> Option<String> {
    let scale = y.iter().fold(0f64, |m, v| m.max((*v as f64).abs()));
    if !(scale > 0.0) {
        return None;
    }
    let rel = max_abs_error / scale;
    if rel.is_nan() || rel <= PRECISION_WARN {
        return None;
    }
    let hint = if frac_bits < 24 {
        format!(
            "; --frac-bits {} divides the rounding by 16 (each bit also doubles the small chance of a local \
             truncation failure)",
            frac_bits + 4
        )
    } else {
        String::new()
    };
    Some(format!(
        "warning: the secure output is {rel:.1e} of its largest value away from plaintext (max |difference| \
         {max_abs_error:.3e}) at {frac_bits} fractional bits: this model amplifies fixed-point rounding{hint}"
    ))
}
