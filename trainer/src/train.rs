//! The training loop: shuffled, augmented batches; SGD or Adam on a cosine schedule with optional
//! warm-up; weight decay, label smoothing and gradient clipping as options; evaluation after every
//! epoch; `best.safetensors` and `last.safetensors` checkpoints (atomic writes; the last one also
//! holds the optimiser state so `resume` continues exactly); a JSONL log per run (`log.jsonl`).
//!
//! Progress is reported through a callback of [`Event`]s, so the caller draws the bars.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use masq_ir::Graph;
use masq_ir::checkpoint::{self, Facts};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tch::{Device, Kind, Reduction, Tensor};

use crate::data::{Augment, Dataset, Loader, Normalisation, Splits};
use crate::device::device_name;
use crate::error::{Result, TrainerError};
use crate::model::TchModel;
use crate::optim::{Optimizer, OptimizerKind, STATE_PREFIX, cosine_lr};

/// Everything a training run needs besides the model and the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine schedule.
    pub min_lr: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    /// Linear warm-up, in epochs (may be fractional).
    pub warmup_epochs: f64,
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    pub seed: u64,
    pub augment: Augment,
    pub norm: Normalisation,
    /// Where checkpoints and the log go; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Continue from `out_dir/last.safetensors`.
    pub resume: bool,
    /// Dataset name recorded in checkpoints.
    pub dataset: String,
    /// Stop each epoch after this many batches (quick runs and benchmarks).
    pub max_batches: Option<usize>,
    /// Stop after this epoch (the schedule still spans `epochs`; `resume` continues the run).
    pub stop_after_epoch: Option<usize>,
    pub eval_batch_size: usize,
}

impl TrainConfig {
    /// Defaults for a dataset: SGD 0.1 (momentum 0.9), weight decay 5e-4, cosine to 0, batch 128.
    pub fn new(dataset: &str, norm: Normalisation, augment: Augment) -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 128,
            lr: 0.1,
            min_lr: 0.0,
            optimizer: OptimizerKind::sgd(),
            weight_decay: 5e-4,
            warmup_epochs: 0.0,
            label_smoothing: 0.0,
            grad_clip: None,
            seed: 0,
            augment,
            norm,
            out_dir: None,
            resume: false,
            dataset: dataset.to_string(),
            max_batches: None,
            stop_after_epoch: None,
            eval_batch_size: 500,
        }
    }
}

/// Progress of a run, handed to the caller's callback.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Training starts (or resumes) at `start_epoch` (1-based).
    Start { start_epoch: usize, epochs: usize, batches_per_epoch: usize, relu_count: u64 },
    /// A training batch finished; `loss` and `accuracy` are running means over the epoch.
    Batch { epoch: usize, batch: usize, loss: f64, accuracy: f64, lr: f64 },
    /// Evaluation of an epoch starts.
    Evaluating { epoch: usize },
    /// An epoch finished (after evaluation and checkpoints).
    Epoch(EpochRecord),
}

/// One epoch's figures (also one line of `log.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub lr: f64,
    pub relu_count: u64,
    pub train_seconds: f64,
    pub images_per_second: f64,
    /// Whether this epoch is the best so far (and was saved as `best.safetensors`).
    pub best: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSummary {
    pub epochs: usize,
    pub final_accuracy: f64,
    pub best_accuracy: f64,
    pub best_epoch: usize,
    pub relu_count: u64,
    pub best_checkpoint: Option<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// Mean training throughput over the epochs run.
    pub images_per_second: f64,
}

/// Accuracy and loss of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalResult {
    pub accuracy: f64,
    pub loss: f64,
    pub images: usize,
}

/// Check that a graph takes the dataset's images and has one logit per class.
pub fn check_fit(graph: &Graph, data: &Dataset, dataset: &str) -> Result<()> {
    let bad =
        |reason: String| TrainerError::ModelDataMismatch { model: graph.name.clone(), dataset: dataset.into(), reason };
    let input = graph.data_inputs().next().ok_or_else(|| bad("the model has no input".into()))?;
    let want = [1, data.shape[0], data.shape[1], data.shape[2]];
    if input.shape_at(1) != want {
        return Err(bad(format!("model input {} vs images {:?}", masq_ir::format_dims(&input.shape), data.shape)));
    }
    let shapes = graph.infer_shapes(1)?;
    let out = graph.outputs.first().ok_or_else(|| bad("the model has no output".into()))?;
    let s = &shapes[&out.name];
    if s.len() != 2 || s[1] != data.classes {
        return Err(bad(format!("model output {s:?}, dataset has {} classes", data.classes)));
    }
    Ok(())
}

/// Top-1 accuracy and mean cross-entropy in eval mode.
pub fn evaluate(model: &TchModel, data: &Dataset, norm: &Normalisation, batch: usize) -> Result<EvalResult> {
    let loader = Loader::new(data, norm.clone(), Augment::NONE, batch, model.device())?;
    let _guard = tch::no_grad_guard();
    let order = loader.order(None);
    let (mut correct, mut loss_sum) = (0i64, 0f64);
    for idx in order.chunks(batch) {
        let (x, y) = loader.batch(idx, None)?;
        let logits = model.forward(&x, false)?;
        let loss = logits.f_cross_entropy_loss(&y, None::<Tensor>, Reduction::Sum, -100, 0.0)?;
        loss_sum += f64::try_from(loss)?;
        correct += i64::try_from(logits.f_argmax(1, false)?.f_eq_tensor(&y)?.f_sum(Kind::Int64)?)?;
    }
    let n = data.len().max(1);
    Ok(EvalResult { accuracy: correct as f64 / n as f64, loss: loss_sum / n as f64, images: data.len() })
}

/// Appends `v` as one line. The line goes out in one `write` (`writeln!` on the file wrote each
/// JSON token with its own system call, so a killed run left half a line), and the log is
/// synced, so a kill leaves whole lines only.
fn append_log(path: &Path, v: &Value) -> Result<()> {
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| TrainerError::io(path, e))?;
    let line = format!("{v}\n");
    f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).map_err(|e| TrainerError::io(path, e))
}

/// Drops a partial last line of the log (a run killed while it wrote one, before lines were
/// written whole), so the lines appended after it stay lines. Returns whether it did.
fn repair_log(path: &Path) -> Result<bool> {
    let io = |e| TrainerError::io(path, e);
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(false);
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
    f.set_len(keep as u64).and_then(|_| f.sync_data()).map_err(io)?;
    Ok(true)
}

/// Train `graph` on `data` and return the trained model and a summary.
pub fn train(
    graph: &Graph,
    data: &Splits,
    cfg: &TrainConfig,
    device: Device,
    on_event: &mut dyn FnMut(&Event),
) -> Result<(TchModel, TrainSummary)> {
    if cfg.epochs == 0 || cfg.batch_size == 0 || !cfg.lr.is_finite() || cfg.lr <= 0.0 {
        return Err(TrainerError::BadConfig { reason: "epochs, batch size and learning rate must be positive".into() });
    }
    if data.train.is_empty() || data.test.is_empty() {
        return Err(TrainerError::BadConfig { reason: "empty training or test split".into() });
    }
    check_fit(graph, &data.train, &cfg.dataset)?;
    check_fit(graph, &data.test, &cfg.dataset)?;
    tch::manual_seed(cfg.seed as i64);

    let out_dir = cfg.out_dir.clone();
    if let Some(d) = &out_dir {
        std::fs::create_dir_all(d).map_err(|e| TrainerError::io(d, e))?;
    }
    let last_path = out_dir.as_ref().map(|d| d.join("last.safetensors"));
    let best_path = out_dir.as_ref().map(|d| d.join("best.safetensors"));
    let log_path = out_dir.as_ref().map(|d| d.join("log.jsonl"));

    let mut optim = Optimizer::new(cfg.optimizer, cfg.weight_decay);
    let mut start_epoch = 1;
    let (mut best_acc, mut best_epoch) = (f64::NEG_INFINITY, 0usize);
    let model = if cfg.resume {
        let path = last_path
            .clone()
            .ok_or_else(|| TrainerError::BadConfig { reason: "resume needs an output directory".into() })?;
        let bad = |reason: String| TrainerError::Resume { path: path.clone(), reason };
        let ck = checkpoint::read_checkpoint(&path).map_err(|e| bad(e.to_string()))?;
        if ck.graph.nodes != graph.nodes || ck.graph.inputs != graph.inputs {
            return Err(bad("the checkpoint holds a different model".into()));
        }
        if ck.facts.dataset.as_deref() != Some(cfg.dataset.as_str()) {
            return Err(bad(format!("trained on {:?}, this run uses {:?}", ck.facts.dataset, cfg.dataset)));
        }
        let model = TchModel::from_graph(&ck.graph, device)?;
        let opt_kind: Option<OptimizerKind> =
            ck.facts.other.get("optimizer").and_then(|v| serde_json::from_value(v.clone()).ok());
        if opt_kind.is_some_and(|k| std::mem::discriminant(&k) != std::mem::discriminant(&cfg.optimizer)) {
            return Err(bad("the checkpoint was trained with another optimiser".into()));
        }
        optim.load_state(&model, &ck.extra).map_err(|e| bad(e.to_string()))?;
        start_epoch = ck.facts.epoch.unwrap_or(0) + 1;
        best_acc = ck.facts.other.get("best_accuracy").and_then(Value::as_f64).unwrap_or(f64::NEG_INFINITY);
        best_epoch = ck.facts.other.get("best_epoch").and_then(Value::as_u64).unwrap_or(0) as usize;
        model
    } else {
        TchModel::from_graph(graph, device)?
    };

    let loader = Loader::new(&data.train, cfg.norm.clone(), cfg.augment, cfg.batch_size, device)?;
    let full = loader.batches();
    let per_epoch = cfg.max_batches.map_or(full, |m| m.min(full)).max(1);
    let total_steps = per_epoch * cfg.epochs;
    let warmup = (cfg.warmup_epochs * per_epoch as f64).round() as usize;
    let relu_count = model.relu_count()?;
    if let Some(p) = &log_path {
        repair_log(p)?;
        append_log(
            p,
            &json!({"event": if cfg.resume { "resume" } else { "start" }, "start_epoch": start_epoch,
                    "model": graph.name, "device": device_name(device), "relu_count": relu_count,
                    "train_images": data.train.len(), "test_images": data.test.len(), "config": cfg}),
        )?;
    }
    on_event(&Event::Start { start_epoch, epochs: cfg.epochs, batches_per_epoch: per_epoch, relu_count });

    let mut last = EvalResult { accuracy: 0.0, loss: 0.0, images: 0 };
    let (mut imgs_total, mut secs_total) = (0usize, 0f64);
    let end_epoch = cfg.stop_after_epoch.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    for epoch in start_epoch..=end_epoch {
        let order = loader.order(Some(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64)));
        let mut aug_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_a06e);
        aug_rng.set_stream(epoch as u64);
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0i64, 0usize);
        let mut lr = cfg.lr;
        for (b, idx) in order.chunks(cfg.batch_size).take(per_epoch).enumerate() {
            let step = (epoch - 1) * per_epoch + b;
            lr = cosine_lr(cfg.lr, cfg.min_lr, step, total_steps, warmup);
            let (x, y) = loader.batch(idx, Some(&mut aug_rng))?;
            let logits = model.forward(&x, true)?;
            let loss = logits.f_cross_entropy_loss(&y, None::<Tensor>, Reduction::Mean, -100, cfg.label_smoothing)?;
            optim.zero_grad(&model);
            loss.f_backward()?;
            if cfg.grad_clip.is_some() {
                optim.clip_grad_norm(&model, cfg.grad_clip)?;
            }
            optim.step(&model, lr)?;
            let l = f64::try_from(&loss)?;
            if !l.is_finite() {
                return Err(TrainerError::BadConfig {
                    reason: format!("loss became {l} at epoch {epoch}, batch {b}; lower --lr"),
                });
            }
            loss_sum += l * idx.len() as f64;
            correct += i64::try_from(logits.f_argmax(1, false)?.f_eq_tensor(&y)?.f_sum(Kind::Int64)?)?;
            seen += idx.len();
            on_event(&Event::Batch {
                epoch,
                batch: b + 1,
                loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
                lr,
            });
        }
        let secs = t0.elapsed().as_secs_f64();
        imgs_total += seen;
        secs_total += secs;
        on_event(&Event::Evaluating { epoch });
        last = evaluate(&model, &data.test, &cfg.norm, cfg.eval_batch_size)?;
        let is_best = last.accuracy > best_acc;
        if is_best {
            best_acc = last.accuracy;
            best_epoch = epoch;
        }
        let rec = EpochRecord {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            test_loss: last.loss,
            test_accuracy: last.accuracy,
            lr,
            relu_count,
            train_seconds: secs,
            images_per_second: seen as f64 / secs.max(1e-9),
            best: is_best,
        };
        if let (Some(lp), Some(bp)) = (&last_path, &best_path) {
            let g = model.to_graph()?;
            let mut facts = Facts {
                dataset: Some(cfg.dataset.clone()),
                accuracy: Some(last.accuracy),
                relu_count: Some(relu_count),
                epoch: Some(epoch),
                ..Facts::default()
            };
            facts.other.insert("best_accuracy".into(), json!(best_acc));
            facts.other.insert("best_epoch".into(), json!(best_epoch));
            facts.other.insert("optimizer".into(), serde_json::to_value(cfg.optimizer).unwrap_or(Value::Null));
            facts.set_normalisation(&cfg.norm);
            if is_best {
                checkpoint::save_checkpoint(bp, &g, &facts)?;
            }
            let mut state = optim.state_tensors()?;
            state.retain(|k, _| k.starts_with(STATE_PREFIX));
            checkpoint::save_checkpoint_with(lp, &g, &facts, &state)?;
        }
        if let Some(p) = &log_path {
            let mut v = serde_json::to_value(&rec).unwrap_or(Value::Null);
            v["event"] = json!("epoch");
            append_log(p, &v)?;
        }
        on_event(&Event::Epoch(rec));
    }
    if start_epoch > end_epoch {
        last = evaluate(&model, &data.test, &cfg.norm, cfg.eval_batch_size)?;
    }
    let summary = TrainSummary {
        epochs: end_epoch,
        final_accuracy: last.accuracy,
        best_accuracy: best_acc.max(last.accuracy),
        best_epoch,
        relu_count,
        best_checkpoint: best_path.filter(|p| p.exists()),
        last_checkpoint: last_path.filter(|p| p.exists()),
        log: log_path,
        images_per_second: imgs_total as f64 / secs_total.max(1e-9),
    };
    Ok((model, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_whole_and_a_torn_last_line_is_dropped_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.jsonl");
        assert!(!repair_log(&log).unwrap(), "no log: nothing to do");
        append_log(&log, &json!({"event": "start", "n": 1})).unwrap();
        append_log(&log, &json!({"event": "epoch", "epoch": 1})).unwrap();
        let whole = std::fs::read(&log).unwrap();
        assert!(!repair_log(&log).unwrap());
        // A run killed in the middle of its third line (as `writeln!`, token by token, left them).
        let mut torn = whole.clone();
        torn.extend_from_slice(br#"{"event":"epoch","epo"#);
        std::fs::write(&log, &torn).unwrap();
        assert!(repair_log(&log).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), whole);
        append_log(&log, &json!({"event": "resume"})).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["event"], "resume");
        // Only a partial line: the log becomes empty.
        std::fs::write(&log, b"{\"ev").unwrap();
        assert!(repair_log(&log).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), b"");
    }
}
