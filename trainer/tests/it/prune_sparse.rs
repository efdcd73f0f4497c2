//! Unstructured pruning (masq_trainer::prune::sparse): exact counts and deterministic ties of the
//! weight selection, the reweighted penalty against plain training, the fixed-mask retrain, the
//! scaled schedules as documented, and the sparsity facts of the written checkpoint.

use masq_ir::Graph;
use masq_ir::checkpoint::{Facts, load_checkpoint};
use masq_trainer::data::{DatasetKind, Splits, SyntheticConfig, synthetic};
use masq_trainer::prune::sparse::{
    RetrainSchedule, SparseConfig, SparseEvent, Stage, Target, WeightSparsity, apply, conv_l1, phase1_lrs,
    refresh_epochs, retrain, retrain_schedule, reweight, run, select, warmup_iterations, weight_layers,
};
use masq_trainer::prune::{Method, PruneConfig, Scope, prune};
use tch::Device;

fn graph(seed: u64) -> Graph {
    masq_ir::zoo::build("cnn_small", None, seed).unwrap()
}

fn data(train: usize, test: usize) -> Splits {
    synthetic(&SyntheticConfig { train, test, shape: [3, 32, 32], seed: 13 })
}

fn config(method: Method, target: Target) -> SparseConfig {
    let kind = DatasetKind::Synthetic;
    let mut cfg = SparseConfig::new(kind.name(), kind.default_norm(), masq_trainer::data::Augment::NONE);
    cfg.method = method;
    cfg.target = target;
    cfg.train_epochs = 1;
    cfg.epochs = 1;
    cfg.batch_size = 32;
    cfg.max_batches = Some(4);
    cfg.eval_batch_size = 200;
    cfg.seed = 3;
    cfg
}

fn floor(s: f64, n: usize) -> usize {
    (s * n as f64).floor() as usize
}

/// `(|w|, tensor, index)` of every thresholded weight, and which of them are 0 in `after`.
fn ranked(before: &Graph, after: &Graph) -> Vec<(f32, usize, usize, bool)> {
    let mut out = Vec::new();
    for (li, l) in weight_layers(before).unwrap().iter().enumerate() {
        let (b, a) = (&before.initializers[&l.weight], &after.initializers[&l.weight]);
        out.extend(b.iter().zip(a.iter()).enumerate().map(|(i, (x, y))| (x.abs(), li, i, *y == 0.0)));
    }
    out
}

#[test]
fn weight_selection_zeroes_exactly_floor_s_n_and_breaks_ties_deterministically() {
    let g = graph(7);
    let layers = weight_layers(&g).unwrap();
    let names: Vec<(&str, &str)> = layers.iter().map(|l| (l.layer.as_str(), l.op.as_str())).collect();
    assert_eq!(names, [("conv1", "Conv"), ("conv2", "Conv"), ("conv3", "Conv"), ("fc", "Gemm")]);
    let n: usize = layers.iter().map(|l| l.len).sum();
    assert_eq!(n, 432 + 4608 + 18432 + 640);
    for &s in &[0.0, 0.1, 0.333, 0.5, 0.77, 0.95] {
        let sel = select(&g, &layers, Target::WeightSparsity(s), Scope::Global).unwrap();
        let out = apply(&g, &sel).unwrap();
        let sp = WeightSparsity::of(&out).unwrap();
        assert_eq!((sel.count, sp.zeros), (floor(s, n), floor(s, n)), "global S = {s}");
        // The zeroed ones are the smallest.
        let r = ranked(&g, &out);
        let max_zeroed = r.iter().filter(|e| e.3).map(|e| e.0).fold(0.0, f32::max);
        let min_kept = r.iter().filter(|e| !e.3).map(|e| e.0).fold(f32::MAX, f32::min);
        assert!(max_zeroed <= min_kept, "S = {s}: zeroed up to {max_zeroed}, kept from {min_kept}");
        assert_eq!(sel.threshold, max_zeroed);
        // Biases and BatchNorm are untouched.
        for (name, t) in &g.initializers {
            if !layers.iter().any(|l| &l.weight == name) {
                assert_eq!(t, &out.initializers[name], "{name} changed");
            }
        }

        let sel = select(&g, &layers, Target::WeightSparsity(s), Scope::PerLayer).unwrap();
        let sp = WeightSparsity::of(&apply(&g, &sel).unwrap()).unwrap();
        for l in &sp.layers {
            assert_eq!(l.zeros, floor(s, l.weights), "per layer S = {s}, {}", l.layer);
        }
    }

    // A threshold zeroes exactly the |w| < T.
    let t = 0.02f32;
    let sel = select(&g, &layers, Target::Threshold(t), Scope::Global).unwrap();
    let out = apply(&g, &sel).unwrap();
    let r = ranked(&g, &out);
    assert!(r.iter().all(|e| e.3 == (e.0 < t)));
    assert_eq!(sel.count, r.iter().filter(|e| e.0 < t).count());
    assert!(sel.count > 0 && sel.count < n);

    // Ties: all weights equal, so the first ⌊S·N⌋ in (tensor, index) order die, every time.
    let mut flat = g.clone();
    for l in &layers {
        flat.initializers.get_mut(&l.weight).unwrap().fill(0.5);
    }
    let k = floor(0.3, n);
    let a = select(&flat, &layers, Target::WeightSparsity(0.3), Scope::Global).unwrap();
    let b = select(&flat, &layers, Target::WeightSparsity(0.3), Scope::Global).unwrap();
    assert_eq!(a, b);
    let zeroed: Vec<bool> = ranked(&flat, &apply(&flat, &a).unwrap()).iter().map(|e| e.3).collect();
    assert!(zeroed[..k].iter().all(|&z| z) && zeroed[k..].iter().all(|&z| !z), "ties not in order");

    for bad in [Target::WeightSparsity(1.0), Target::WeightSparsity(-0.1), Target::WeightSparsity(f64::NAN)] {
        let e = select(&g, &layers, bad, Scope::Global).unwrap_err().to_string();
        assert!(e.contains("weight sparsity"), "{e}");
    }
    let e = select(&g, &layers, Target::Threshold(-1.0), Scope::Global).unwrap_err().to_string();
    assert!(e.contains("threshold"), "{e}");
}

#[test]
fn reweighting_lowers_the_conv_l1_against_plain_training() {
    tch::set_num_threads(1);
    let d = data(256, 64);
    let g = graph(2);
    let mut cfg = config(Method::ReweightedL1, Target::Threshold(1e-4));
    cfg.train_epochs = 2;
    // Stronger than the specification's 1e-6 so that 8 steps show it clearly (about -12% here).
    cfg.alpha = 1e-3;
    let mut epochs = Vec::new();
    let mut on = |e: &SparseEvent| {
        if let SparseEvent::Epoch(r) = e {
            epochs.push((r.stage, r.penalty));
        }
    };
    let (plain, _) = reweight(&g, &d, &cfg, 0.0, None, Device::Cpu, &mut on).unwrap();
    let (penalised, _) = reweight(&g, &d, &cfg, cfg.alpha, None, Device::Cpu, &mut on).unwrap();
    assert_eq!(epochs.len(), 4);
    assert!(epochs[..2].iter().all(|&(s, p)| s == Stage::Train && p == 0.0), "{epochs:?}");
    assert!(epochs[2..].iter().all(|&(s, p)| s == Stage::Reweight && p > 0.0), "{epochs:?}");
    let (l_plain, l_pen) = (conv_l1(&plain), conv_l1(&penalised));
    assert!(l_pen < 0.95 * l_plain, "Σ|W|: penalised {l_pen}, plain {l_plain}");
}

#[test]
fn fixed_mask_retrain_keeps_every_zero_and_moves_the_rest() {
    tch::set_num_threads(1);
    let d = data(256, 64);
    let g = graph(4);
    let layers = weight_layers(&g).unwrap();
    let sel = select(&g, &layers, Target::WeightSparsity(0.6), Scope::Global).unwrap();
    let pruned = apply(&g, &sel).unwrap();
    let mut cfg = config(Method::Mag, Target::WeightSparsity(0.6));
    cfg.epochs = 2;
    cfg.weight_decay = 1e-2; // decay must not move a zero either
    let schedule = retrain_schedule(&d, &cfg);
    let mut lrs = Vec::new();
    let (out, acc) = retrain(&pruned, &layers, &d, &cfg, None, Device::Cpu, &mut |e| {
        if let SparseEvent::Batch { lr, stage, .. } = e {
            assert_eq!(*stage, Stage::Retrain);
            lrs.push(*lr);
        }
    })
    .unwrap();
    assert!(acc.is_some());
    let (mut kept_zero, mut moved, mut alive) = (0, 0, 0);
    for l in &layers {
        let (a, b) = (&pruned.initializers[&l.weight], &out.initializers[&l.weight]);
        for (x, y) in a.iter().zip(b.iter()) {
            if *x == 0.0 {
                assert_eq!(*y, 0.0, "{}: a pruned weight came back", l.weight);
                kept_zero += 1;
            } else {
                alive += 1;
                moved += usize::from(x != y);
            }
        }
    }
    assert_eq!(kept_zero, sel.count);
    assert!(moved as f64 > 0.9 * alive as f64, "only {moved} of {alive} live weights changed");
    // The learning rates are the documented schedule's, iteration by iteration.
    assert_eq!(lrs.len(), schedule.total);
    for (t, lr) in lrs.iter().enumerate() {
        assert_eq!(*lr, schedule.lr(t), "iteration {t}");
    }
}

#[test]
fn schedules_are_the_documented_scaled_ones() {
    assert_eq!(refresh_epochs(300), [61, 121, 181, 241]);
    assert_eq!(refresh_epochs(10), [3, 5, 7, 9]);
    assert_eq!(refresh_epochs(5), [2, 3, 4, 5]);
    assert_eq!(refresh_epochs(4), [2, 3, 4]);
    assert_eq!(refresh_epochs(2), [2]);
    assert!(refresh_epochs(1).is_empty());
    let d = 0.98f64.powf(30.0);
    let mut want = vec![1e-3];
    for e in 2..=10 {
        let f = if [3, 5, 7, 9].contains(&e) { 1.6 } else { d };
        want.push(want[want.len() - 1] * f);
    }
    let got = phase1_lrs(1e-3, 10);
    assert_eq!(got.len(), 10);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-15 * w, "{got:?} vs {want:?}");
    }
    let long = phase1_lrs(1e-3, 300);
    assert!((long[1] / long[0] - 0.98).abs() < 1e-12);
    assert!((long[60] / long[59] - 1.6).abs() < 1e-12);

    // Warm-up: 5/300 of the iterations, at least an epoch, at most a quarter of the run.
    assert_eq!(warmup_iterations(300 * 8, 8), 40);
    assert_eq!(warmup_iterations(10 * 8, 8), 8);
    assert_eq!(warmup_iterations(2 * 8, 8), 4);
    assert_eq!(warmup_iterations(3, 1), 0);
    let s = RetrainSchedule::new(1e-3, 1e-4, 4e-8, 8, 10);
    assert_eq!((s.total, s.warmup), (80, 8));
    assert_eq!(s.lr(0), 1e-4);
    assert!((s.lr(8) - 1e-3).abs() < 1e-15);
    assert!((s.lr(4) - 5.5e-4).abs() < 1e-15);
    assert!((0..8).all(|t| s.lr(t) < s.lr(t + 1)) && (8..79).all(|t| s.lr(t) > s.lr(t + 1)));
    assert!(s.lr(79) < 1e-6 && s.lr(79) > 4e-8 && (s.lr(80) - 4e-8).abs() < 1e-18);

    // A real phase 1 of E1 = 10 epochs follows them: refresh flags and per-epoch rates.
    tch::set_num_threads(1);
    let mut cfg = config(Method::ReweightedL1, Target::Threshold(1e-4));
    cfg.train_epochs = 10;
    cfg.batch_size = 16;
    cfg.max_batches = Some(1);
    let mut seen = Vec::new();
    reweight(&graph(1), &data(16, 16), &cfg, cfg.alpha, None, Device::Cpu, &mut |e| {
        if let SparseEvent::Epoch(r) = e {
            seen.push((r.epoch, r.refreshed, r.lr));
        }
    })
    .unwrap();
    let refreshed: Vec<usize> = seen.iter().filter(|e| e.1).map(|e| e.0).collect();
    assert_eq!(refreshed, [3, 5, 7, 9]);
    assert_eq!(seen.iter().map(|e| e.2).collect::<Vec<_>>(), phase1_lrs(1e-3, 10));
}

#[test]
fn run_writes_zeros_and_their_facts_round_trip() {
    tch::set_num_threads(1);
    let d = data(256, 64);
    let g = graph(5);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Method::ReweightedL1, Target::WeightSparsity(0.6));
    cfg.out_dir = Some(dir.path().to_path_buf());
    let mut thresholded = None;
    let (out, s) = run(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let SparseEvent::Thresholded { zeroed, weights, .. } = e {
            thresholded = Some((*zeroed, *weights));
        }
    })
    .unwrap();
    let n = 432 + 4608 + 18432 + 640;
    assert_eq!(thresholded, Some((floor(0.6, n), n)));
    assert_eq!(s.sparsity, WeightSparsity::of(&out).unwrap());
    assert_eq!(s.sparsity.zeros, floor(0.6, n));
    assert!(s.accuracy_trained.is_some() && s.accuracy_retrained.is_some());
    assert_eq!(s.accuracy, s.accuracy_retrained.unwrap());

    let path = s.checkpoint.clone().unwrap();
    assert_eq!(path, dir.path().join("pruned.safetensors"));
    let (loaded, facts) = load_checkpoint(&path).unwrap();
    assert_eq!(loaded.initializers, out.initializers);
    let back = WeightSparsity::from_facts(&facts).unwrap().expect("the sparsity fact");
    let fresh = WeightSparsity::of(&loaded).unwrap();
    assert_eq!((back.weights, back.zeros), (fresh.weights, fresh.zeros));
    for (a, b) in back.layers.iter().zip(&fresh.layers) {
        assert_eq!((&a.layer, &a.op, &a.weight, a.weights, a.zeros), (&b.layer, &b.op, &b.weight, b.weights, b.zeros));
        assert!((a.sparsity - b.sparsity).abs() < 1e-12);
    }
    assert_eq!(back.layers.len(), 4);
    assert!((back.sparsity - fresh.sparsity).abs() < 1e-12);
    assert_eq!(facts.other["prune_method"], "reweighted-l1");
    assert_eq!(facts.accuracy, Some(s.accuracy));
    assert!(facts.normalisation().is_some());
    assert_eq!(WeightSparsity::from_facts(&Facts::default()).unwrap(), None);
    let mut broken = Facts::default();
    broken.other.insert("weight_sparsity".into(), serde_json::json!({"layers": 3}));
    assert!(WeightSparsity::from_facts(&broken).unwrap_err().to_string().contains("weight_sparsity"));
}

#[test]
fn magnitude_baseline_prunes_per_layer_and_bad_settings_are_refused() {
    tch::set_num_threads(1);
    let d = data(128, 32);
    let g = graph(6);
    let mut cfg = config(Method::Mag, Target::WeightSparsity(0.5));
    cfg.scope = Scope::PerLayer;
    cfg.train_epochs = 0;
    let mut stages = Vec::new();
    let (_, s) = run(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let SparseEvent::Stage { stage, .. } = e {
            stages.push(*stage);
        }
    })
    .unwrap();
    assert_eq!(stages, [Stage::Retrain]);
    for l in &s.sparsity.layers {
        assert_eq!(l.zeros, floor(0.5, l.weights), "{}", l.layer);
    }
    assert_eq!(s.accuracy_trained, None);

    let refuse = |cfg: SparseConfig| run(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap_err().to_string();
    let mut c = config(Method::ReweightedL1, Target::Threshold(1e-4));
    c.train_epochs = 0;
    assert!(refuse(c).contains("train_epochs"));
    assert!(refuse(config(Method::Snip, Target::Threshold(1e-4))).contains("filter-pruning"));
    let mut c = config(Method::ReweightedL1, Target::Threshold(1e-4));
    c.epsilon = 0.0;
    assert!(refuse(c).contains("epsilon"));
    let mut c = config(Method::ReweightedL1, Target::Threshold(1e-4));
    c.alpha = -1.0;
    assert!(refuse(c).contains("alpha"));

    // The method's names, and the filter flow refusing it.
    assert_eq!(Method::parse("reweighted-l1").unwrap(), Method::ReweightedL1);
    assert!(Method::NAMES.contains(&"reweighted-l1"));
    assert_eq!(Method::ReweightedL1.name(), "reweighted-l1");
    let kind = DatasetKind::Synthetic;
    let mut pc = PruneConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
    pc.method = Method::ReweightedL1;
    let e = prune(&g, &d, &pc, Device::Cpu, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("sparse::run"), "{e}");
}

#[test]
fn distillation_adds_the_teacher_term_to_both_phases() {
    tch::set_num_threads(1);
    let d = data(128, 64);
    let g = graph(5);
    let mut cfg = config(Method::ReweightedL1, Target::WeightSparsity(0.5));
    cfg.max_batches = Some(2);
    // The first batch's loss of each phase: same weights, same images, so the distilled run's is
    // the plain one plus the KL to the starting model, which is > 0 in phase 1 (teacher in
    // evaluation mode, student in training mode) and in phase 2 (the student is thresholded).
    let first_losses = |cfg: &SparseConfig| {
        let mut out = Vec::new();
        let s = run(&g, &d, cfg, Device::Cpu, &mut |e| {
            if let SparseEvent::Batch { stage, batch: 1, loss, .. } = e {
                out.push((*stage, *loss));
            }
        })
        .unwrap()
        .1;
        (out, s)
    };
    let (plain, ps) = first_losses(&cfg);
    cfg.distill = true;
    let (distilled, ds) = first_losses(&cfg);
    let stages = |v: &[(Stage, f64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(stages(&plain), [Stage::Reweight, Stage::Retrain]);
    assert_eq!(stages(&distilled), [Stage::Reweight, Stage::Retrain]);
    assert!(distilled[0].1 > plain[0].1 + 1e-4, "reweight: {distilled:?} vs {plain:?}");
    assert!(distilled[1].1.is_finite());
    assert_eq!(ds.zeroed, ps.zeroed);
    assert!(ds.settings.distill && !ps.settings.distill);
    cfg.temperature = -1.0;
    let err = run(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("temperature"), "{err}");
}
