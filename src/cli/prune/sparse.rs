//! Unstructured `masq prune` (docs/ALGORITHMS.md §7): `--method reweighted-l1` and `--method mag`
//! with `--weight-sparsity` or `--threshold` zero single Conv/Gemm weights and retrain with the
//! zeros fixed (`masq_trainer::prune::sparse`). The graph keeps its structure, so parameters,
//! MACs, ReLUs and the 2PC costs stay what they were; the result reports the zeros per layer.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use masq_ir::Graph;
use masq_trainer::device::device_name;
use masq_trainer::prune::sparse::{self, SparseConfig, SparseEvent, SparseSummary, Target, WeightSparsity};
use masq_trainer::prune::{Method, Rewind, Scope};
use serde_json::json;

use super::costs::{self, Costs2pc};
use super::run::{Bar, augment, thousands};
use super::{MethodArg, PruneArgs, ScopeArg};
use crate::cli::common::training;
use crate::cli::common::units::fmt_bytes;
use crate::cli::common::{json as jsonl, model};

/// Whether the flags ask for unstructured pruning.
pub(super) fn is_unstructured(a: &PruneArgs) -> bool {
    a.method == MethodArg::ReweightedL1 || a.weight_sparsity.is_some() || a.threshold.is_some()
}

/// The target and method the flags ask for, or an error naming the flag.
fn check(a: &PruneArgs) -> Result<(Method, Target)> {
    let method = match a.method {
        MethodArg::ReweightedL1 => Method::ReweightedL1,
        MethodArg::Mag => Method::Mag,
        m => bail!(
            "--weight-sparsity and --threshold zero single weights: they need --method reweighted-l1 or mag \
             (--method {} takes --filter-sparsity)",
            format!("{m:?}").to_lowercase()
        ),
    };
    let target = match (a.weight_sparsity, a.threshold) {
        (Some(s), None) if s.is_finite() && (0.0..1.0).contains(&s) => Target::WeightSparsity(s),
        (Some(s), None) => bail!("--weight-sparsity must be in [0, 1), got {s}"),
        (None, Some(t)) if t.is_finite() && t >= 0.0 => Target::Threshold(t),
        (None, Some(t)) => bail!("--threshold must be a non-negative number, got {t}"),
        (None, None) => bail!("--method reweighted-l1 needs --weight-sparsity S or --threshold T"),
        (Some(_), Some(_)) => bail!("--weight-sparsity and --threshold cannot be used together"),
    };
    if method == Method::ReweightedL1 && a.train_epochs == 0 {
        bail!(
            "--method reweighted-l1 needs --train-epochs ≥ 1 (its penalised phase; without it, it is \
             --method mag --weight-sparsity)"
        );
    }
    if a.threshold.is_some() && a.scope.is_some() {
        bail!(
            "--scope chooses where --weight-sparsity takes its smallest weights; --threshold applies to every weight"
        );
    }
    if a.zeta.is_some() {
        bail!("--zeta is a Rotated ReLU threshold: it needs --method rrelu (unstructured pruning takes --threshold)");
    }
    if a.warmup_epochs != 0.0 {
        bail!(
            "--warmup-epochs does not apply to unstructured pruning: its retrain warms up over 5/300 of its \
             iterations (at least one epoch, at most a quarter of them)"
        );
    }
    if a.rewind != Rewind::Init || a.all_convs {
        bail!(
            "--rewind and --all-convs are filter-pruning options; unstructured pruning starts from the given weights"
        );
    }
    if !(a.alpha.is_finite() && a.alpha >= 0.0) {
        bail!("--alpha must be a non-negative number, got {}", a.alpha);
    }
    if !(a.epsilon.is_finite() && a.epsilon > 0.0) {
        bail!("--epsilon must be positive, got {}", a.epsilon);
    }
    if let Some(lr) = a.lr
        && !(lr.is_finite() && lr > 0.0)
    {
        bail!("--lr must be positive, got {lr}");
    }
    Ok((method, target))
}

pub(super) fn run(a: &PruneArgs) -> Result<()> {
    let (method, target) = check(a)?;
    let (kind, device) = (a.dataset, a.env.device);
    let splits = a.env.prepare(kind, a.data.as_deref())?;
    let (graph, norm) = model::load_trainable(&a.from, a.weights.as_deref(), &splits, kind, a.env.seed, "prune")?;
    let dir = if method == Method::Mag { "prune-mag-weights".to_string() } else { format!("prune-{}", method.name()) };
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(dir));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if !a.json {
        training::announce("pruning", &graph.name, kind.name(), &splits, device, &out);
    }
    let costs_before = costs::of(&graph)?;

    let mut cfg = SparseConfig::new(kind.name(), norm, augment(a, &splits));
    cfg.method = method;
    cfg.target = target;
    cfg.scope = match a.scope.unwrap_or(ScopeArg::Global) {
        ScopeArg::Layer => Scope::PerLayer,
        ScopeArg::Global => Scope::Global,
    };
    cfg.train_epochs = a.train_epochs;
    cfg.epochs = a.epochs;
    cfg.alpha = a.alpha;
    cfg.epsilon = a.epsilon;
    if let Some(lr) = a.lr {
        (cfg.lr, cfg.retrain_lr, cfg.warmup_lr) = (lr, lr, lr / 10.0);
    }
    if let Some(wd) = a.weight_decay {
        cfg.weight_decay = wd;
    }
    if let Some(b) = a.batch_size {
        cfg.batch_size = b;
    }
    cfg.seed = a.env.seed;
    cfg.max_batches = a.env.max_batches;
    cfg.distill = a.distill;
    cfg.temperature = a.kd_temperature;
    cfg.out_dir = Some(out.clone());

    let mut bar = Bar::new(a.json);
    let (pruned, s) = sparse::run(&graph, &splits, &cfg, device, &mut |e| match e {
        SparseEvent::Stage { stage, epochs, batches_per_epoch } => bar.stage(stage.name(), *epochs, *batches_per_epoch),
        SparseEvent::Batch { stage, epoch, batch, loss, accuracy, .. } => bar.batch(
            *batch,
            &format!("{} {epoch}/{} loss {loss:.3} acc {:.1}%", stage.name(), bar.epochs, 100.0 * accuracy),
        ),
        SparseEvent::Epoch(r) if a.json => bar.println(&jsonl::to_line(r).unwrap_or_default()),
        SparseEvent::Epoch(r) => bar.println(&format!(
            "{:>8} epoch {:>3}  loss {:.4}  penalty {:.4}  conv Σ|w| {:.1}  test acc {:5.2}%  lr {:.2e}{}",
            r.stage.name(),
            r.epoch,
            r.train_loss,
            r.penalty,
            r.conv_l1,
            100.0 * r.test_accuracy,
            r.lr,
            if r.refreshed { "  (P refreshed)" } else { "" }
        )),
        SparseEvent::Thresholded { threshold, zeroed, weights, accuracy } if a.json => {
            let line = json!({"stage": "threshold", "threshold": threshold, "zeroed": zeroed, "weights": weights,
                "test_accuracy": accuracy});
            bar.println(&line.to_string());
        }
        SparseEvent::Thresholded { threshold, zeroed, weights, accuracy } => bar.println(&format!(
            "threshold: {} of {} weights zeroed (|w| {} {threshold:.3e}), test acc {:.2}% before retraining",
            thousands(*zeroed as u64),
            thousands(*weights as u64),
            if matches!(target, Target::Threshold(_)) { "<" } else { "≤" },
            100.0 * accuracy
        )),
    })
    .context("unstructured pruning")?;
    bar.finish();
    let costs_after = costs::of(&pruned)?;
    print_result(a, &graph, &pruned, &s, costs_before, costs_after)
}

fn print_result(
    a: &PruneArgs,
    before: &Graph,
    after: &Graph,
    s: &SparseSummary,
    costs_before: Costs2pc,
    costs_after: Costs2pc,
) -> Result<()> {
    let rb = masq_ir::report::report(before)?;
    let ra = masq_ir::report::report(after)?;
    let zeros_before = WeightSparsity::of(before)?;
    let unchanged = costs_before == costs_after;
    let note = "the weights are secret-shared, so a zero weight costs a 2PC inference what any other weight \
                costs (unstructured pruning removes no structure)";
    let sp = &s.sparsity;
    let checkpoint = s.checkpoint.clone().unwrap_or_default();
    if a.json {
        return jsonl::print(&json!({
            "method": s.method.name(),
            "pruning": "unstructured",
            "target": s.settings.target,
            "scope": s.settings.scope.name(),
            "threshold": s.threshold,
            "accuracy_before": s.accuracy_start,
            "accuracy_trained": s.accuracy_trained,
            "accuracy_thresholded": s.accuracy_thresholded,
            "accuracy_retrained": s.accuracy_retrained,
            "accuracy": s.accuracy,
            "layers": sp.layers,
            "weights": sp.weights,
            "zeros": sp.zeros,
            "weight_sparsity": sp.sparsity,
            "weight_sparsity_before": zeros_before.sparsity,
            "params": {"before": rb.params, "after": ra.params},
            "macs": {"before": rb.macs, "after": ra.macs},
            "relus": {"before": rb.relu_count, "after": ra.relu_count},
            "mpc": {"before": costs_before, "after": costs_after, "unchanged": unchanged, "note": note},
            "checkpoint": checkpoint,
            "summary": s,
            "device": device_name(a.env.device),
            "dataset": a.dataset.name(),
        }));
    }
    println!("{} (unstructured, {}):", s.method.name(), s.settings.scope);
    println!("  {:<28} {:<5} {:>12} {:>12} {:>9}", "layer", "op", "weights", "zeros", "sparsity");
    for l in &sp.layers {
        println!(
            "  {:<28} {:<5} {:>12} {:>12} {:>8.2}%",
            l.layer,
            l.op,
            thousands(l.weights as u64),
            thousands(l.zeros as u64),
            100.0 * l.sparsity
        );
    }
    println!(
        "  {:<28} {:<5} {:>12} {:>12} {:>8.2}%",
        "total",
        "",
        thousands(sp.weights as u64),
        thousands(sp.zeros as u64),
        100.0 * sp.sparsity
    );
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
    println!(
        "  test accuracy: given {}, after {} {}, thresholded {}, retrained {}",
        pct(Some(s.accuracy_start)),
        if s.method == Method::ReweightedL1 { "reweighting" } else { "training" },
        pct(s.accuracy_trained),
        pct(Some(s.accuracy_thresholded)),
        pct(s.accuracy_retrained)
    );
    if (rb.params, rb.macs, rb.relu_count) == (ra.params, ra.macs, ra.relu_count) {
        println!(
            "  params {}, MACs {}, ReLUs {}: unchanged (the zeros stay in the graph)",
            thousands(ra.params),
            thousands(ra.macs),
            thousands(ra.relu_count)
        );
    } else {
        println!(
            "  params {} -> {}, MACs {} -> {}, ReLUs {} -> {}",
            thousands(rb.params),
            thousands(ra.params),
            thousands(rb.macs),
            thousands(ra.macs),
            thousands(rb.relu_count),
            thousands(ra.relu_count)
        );
    }
    if unchanged {
        println!(
            "  2PC costs unchanged ({} online, {} dealer, {} rounds per image): {note}",
            fmt_bytes(costs_after.online_bytes),
            fmt_bytes(costs_after.dealer_bytes),
            costs_after.rounds
        );
    } else {
        println!(
            "  2PC costs: online {} -> {}, dealer {} -> {}",
            fmt_bytes(costs_before.online_bytes),
            fmt_bytes(costs_after.online_bytes),
            fmt_bytes(costs_before.dealer_bytes),
            fmt_bytes(costs_after.dealer_bytes)
        );
    }
    println!("checkpoint: {}", checkpoint.display());
    Ok(())
}
