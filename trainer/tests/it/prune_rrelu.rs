//! Rotated ReLU channel pruning on the built-in synthetic set with cnn_small at 16×16 (three
//! conv-BN-ReLU stages of 16, 32 and 64 channels): the slope initialisation, the L1 push, the three
//! threshold rules (exact count, keep-one floor, validation tolerance), the two-step variant with a
//! finetune, and the pruned graph: no slope `Mul`s, smaller counts, and the same outputs as the
//! thresholded slope graph.

use std::collections::BTreeMap;

use masq_ir::prune::slopes::{SlopeSite, insert_slopes, read_slopes, slope_name, slope_sites};
use masq_ir::{Graph, Op};
use masq_trainer::TchModel;
use masq_trainer::data::{Augment, Dataset, DatasetKind, Loader, Splits, SyntheticConfig, synthetic};
use masq_trainer::prune::rrelu::{
    Ranking, RreluConfig, RreluEvent, RreluRun, SLOPE_MAX, SLOPE_MIN, SlopeInit, Slopes, Stage, Threshold,
    ValidationSize, init_slopes, removal_order, run, run_detailed, select_count, select_zeta, validation_split,
};
use masq_trainer::train::evaluate;
use tch::{Device, Kind};

const HW: usize = 16;

fn setup() -> Splits {
    tch::set_num_threads(1);
    synthetic(&SyntheticConfig { train: 1200, test: 300, shape: [3, HW, HW], seed: 21 })
}

fn cnn() -> Graph {
    masq_ir::zoo::build("cnn_small", Some((HW, HW)), 4).unwrap()
}

fn config(threshold: Threshold) -> RreluConfig {
    let kind = DatasetKind::Synthetic;
    let mut cfg = RreluConfig::new(kind.name(), kind.default_norm(), Augment::NONE);
    cfg.threshold = threshold;
    cfg.epochs = 2;
    cfg.batch_size = 50;
    cfg.eval_batch_size = 300;
    cfg.seed = 5;
    cfg
}

/// Largest |difference| of the logits of two graphs (eval mode) on the first 100 test images.
fn max_output_diff(a: &Graph, b: &Graph, d: &Dataset) -> f64 {
    let loader = Loader::new(d, DatasetKind::Synthetic.default_norm(), Augment::NONE, 100, Device::Cpu).unwrap();
    let idx: Vec<usize> = (0..100.min(d.len())).collect();
    let (x, _) = loader.batch(&idx, None).unwrap();
    let _guard = tch::no_grad_guard();
    let ya = TchModel::from_graph(a, Device::Cpu).unwrap().forward(&x, false).unwrap();
    let yb = TchModel::from_graph(b, Device::Cpu).unwrap().forward(&x, false).unwrap();
    assert_eq!(ya.size(), yb.size());
    f64::try_from(ya.f_sub(&yb).unwrap().abs().max().to_kind(Kind::Double)).unwrap()
}

fn max_abs_output(g: &Graph, d: &Dataset) -> f64 {
    let loader = Loader::new(d, DatasetKind::Synthetic.default_norm(), Augment::NONE, 100, Device::Cpu).unwrap();
    let idx: Vec<usize> = (0..100.min(d.len())).collect();
    let (x, _) = loader.batch(&idx, None).unwrap();
    let _guard = tch::no_grad_guard();
    let y = TchModel::from_graph(g, Device::Cpu).unwrap().forward(&x, false).unwrap();
    f64::try_from(y.abs().max().to_kind(Kind::Double)).unwrap()
}

/// The checks every pruned result passes: no slopes left, plain ReLUs, the dead set as the
/// summary says, smaller counts, and the thresholded slope graph's outputs.
fn check_pruned(r: &RreluRun, d: &Splits) {
    let s = &r.summary;
    for g in [&r.graph, &r.pruned] {
        assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Mul(_))), "a Mul survived");
        assert!(!g.initializers.keys().any(|n| n.ends_with(".slope")), "a slope survived");
        let relus = g.nodes.iter().filter(|n| matches!(n.op, Op::Relu)).count();
        assert_eq!(relus, r.trained.nodes.iter().filter(|n| matches!(n.op, Op::Relu)).count());
    }
    // The trained graph has one slope Mul per site (the zoo models have no other Mul).
    assert_eq!(r.trained.nodes.iter().filter(|n| matches!(n.op, Op::Mul(_))).count(), r.sites.len());

    // Sites: after = before − dead; at least one channel each; the dead set names the convs.
    let removed: usize = s.sites.iter().map(|c| c.before - c.after).sum();
    assert_eq!(removed, s.removed);
    assert!(s.sites.iter().all(|c| c.after >= 1), "{:?}", s.sites);
    let dead: usize = r.dead.values().map(|d| d.len()).sum();
    assert_eq!(dead, s.removed);
    for c in &s.sites {
        assert_eq!(r.dead.get(&c.conv).map_or(0, |d| d.len()), c.before - c.after, "{}", c.conv);
    }
    // prune_channels removed every dead filter or kept it zeroed.
    let gone: usize = s.convs.iter().map(|c| c.before - c.after + c.kept_zeroed).sum();
    assert_eq!(gone, s.removed, "{:?}", s.convs);

    // The thresholded slopes: dead ones exactly 0, the rest above ζ (but each site's keeper).
    let th = read_slopes(&r.thresholded).unwrap();
    let tr = read_slopes(&r.trained).unwrap();
    for site in &r.sites {
        let conv_dead = r.dead.get(&site.conv).cloned().unwrap_or_default();
        let (t, a) = (&th[&site.relu], &tr[&site.relu]);
        let keeper = (0..a.len()).max_by(|&i, &j| a[i].abs().total_cmp(&a[j].abs()).then(j.cmp(&i))).unwrap();
        for c in 0..a.len() {
            if conv_dead.contains(&c) {
                assert_eq!(t[c], 0.0);
                assert!(a[c].abs() <= s.zeta, "{} channel {c}: |{}| > ζ {}", site.relu, a[c], s.zeta);
            } else {
                assert_eq!(t[c], a[c]);
                assert!(
                    c == keeper || a[c].abs() >= s.zeta,
                    "{} channel {c} kept at |{}| < ζ {}",
                    site.relu,
                    a[c],
                    s.zeta
                );
            }
        }
    }

    // Same function as the thresholded slope graph.
    let diff = max_output_diff(&r.thresholded, &r.pruned, &d.test);
    let scale = max_abs_output(&r.pruned, &d.test);
    println!("outputs: max |diff| {diff:.3e}, max |logit| {scale:.3}");
    assert!(diff <= 1e-4, "pruned vs thresholded: {diff}");
    assert!(scale > 1e-2, "degenerate outputs");

    // Counts shrink when channels die, and the savings are 1 − after/before.
    if s.removed > 0 {
        assert!(s.report_after.params < s.report_before.params);
        assert!(s.report_after.macs < s.report_before.macs);
        assert!(s.report_after.relu_count < s.report_before.relu_count);
        assert!(s.seed_after.params < s.seed_before.params);
        assert!(s.seed_after.flops < s.seed_before.flops);
        assert!(s.params_saving > 0.0 && s.flops_saving > 0.0);
    }
    let saving = 1.0 - s.seed_after.flops as f64 / s.seed_before.flops as f64;
    assert!((s.flops_saving - saving).abs() < 1e-12);
    // The ReLU count drops by exactly the removed channels' elements.
    let shapes = r.trained.infer_shapes(1).unwrap();
    let per_channel: BTreeMap<&str, u64> = r
        .sites
        .iter()
        .map(|site| {
            let relu = r.trained.nodes.iter().find(|n| n.name == site.relu).unwrap();
            let sh = &shapes[&relu.outputs[0]];
            (site.relu.as_str(), sh[2..].iter().product::<usize>() as u64)
        })
        .collect();
    let relus_removed: u64 = s.sites.iter().map(|c| (c.before - c.after) as u64 * per_channel[c.relu.as_str()]).sum();
    let kept_zeroed: usize = s.convs.iter().map(|c| c.kept_zeroed).sum();
    if kept_zeroed == 0 {
        assert_eq!(s.report_before.relu_count - s.report_after.relu_count, relus_removed);
    }
    let rep = masq_ir::report::report(&r.graph).unwrap();
    assert_eq!(
        (rep.params, rep.macs, rep.relu_count),
        (s.report_after.params, s.report_after.macs, s.report_after.relu_count)
    );
    assert_eq!(masq_ir::prune::count::seed_count(&r.graph).unwrap(), s.seed_after);
}

#[test]
fn slope_init_is_a_truncated_normal_with_random_signs() {
    assert!((f64::from(SLOPE_MIN) - 35f64.to_radians().tan()).abs() < 1e-6);
    assert!((f64::from(SLOPE_MAX) - 55f64.to_radians().tan()).abs() < 1e-6);
    let n = 20_000;
    let site = SlopeSite { relu: "r".into(), conv: "c".into(), channels: n };
    let v = &init_slopes(std::slice::from_ref(&site), SlopeInit::Random, 9)["r"];
    assert_eq!(v.len(), n);
    assert!(v.iter().all(|a| (SLOPE_MIN..=SLOPE_MAX).contains(&a.abs())), "out of [tan 35°, tan 55°]");
    let neg = v.iter().filter(|&&a| a < 0.0).count() as f64 / n as f64;
    assert!((neg - 0.5).abs() < 0.02, "negative fraction {neg}");
    // Truncation by redrawing, not clipping: no mass piles up at the bounds, and the density is
    // the normal's restricted to the interval (σ = √3 ≫ the width: nearly flat, mean ≈ 1.062).
    let at_bounds = v.iter().filter(|a| a.abs() == SLOPE_MIN || a.abs() == SLOPE_MAX).count();
    assert!(at_bounds < 5, "{at_bounds} values at the bounds");
    let mean = v.iter().map(|a| f64::from(a.abs())).sum::<f64>() / n as f64;
    let (lo, hi) = (f64::from(SLOPE_MIN), f64::from(SLOPE_MAX));
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..10_000 {
        let x = lo + (hi - lo) * (i as f64 + 0.5) / 10_000.0;
        let w = (-(x - 1.0).powi(2) / 6.0).exp();
        num += x * w;
        den += w;
    }
    let expected = num / den;
    assert!((mean - expected).abs() < 0.006, "mean |a| {mean}, truncated normal {expected}");
    let below_one = v.iter().filter(|a| a.abs() < 1.0).count() as f64 / n as f64;
    assert!((below_one - 0.42).abs() < 0.03, "fraction of |a| < 1: {below_one}");
    assert!(v.iter().any(|a| a.abs() < SLOPE_MIN + 0.01) && v.iter().any(|a| a.abs() > SLOPE_MAX - 0.01));
    // Deterministic in the seed.
    assert_eq!(init_slopes(std::slice::from_ref(&site), SlopeInit::Random, 9)["r"], *v);
    assert_ne!(init_slopes(std::slice::from_ref(&site), SlopeInit::Random, 10)["r"], *v);
    assert!(init_slopes(&[site], SlopeInit::Ones, 9)["r"].iter().all(|&a| a == 1.0));
}

#[test]
fn slopes_on_cnn_small_round_trip_and_ones_change_nothing() {
    let d = setup();
    let g = cnn();
    let sites = slope_sites(&g).unwrap();
    assert_eq!(sites.iter().map(|s| s.channels).collect::<Vec<_>>(), [16, 32, 64], "{sites:?}");
    let init = init_slopes(&sites, SlopeInit::Random, 1);
    for s in &sites {
        let v = &init[&s.relu];
        assert_eq!(v.len(), s.channels);
        assert!(v.iter().all(|a| (SLOPE_MIN..=SLOPE_MAX).contains(&a.abs())));
    }
    let all: Vec<f32> = init.values().flatten().copied().collect();
    assert!(all.iter().any(|&a| a < 0.0) && all.iter().any(|&a| a > 0.0), "both signs");
    let sg = insert_slopes(&g, &init).unwrap();
    assert_eq!(read_slopes(&sg).unwrap(), init);
    // The slopes are trainable parameters of the model.
    let m = TchModel::from_graph(&sg, Device::Cpu).unwrap();
    assert!(sites.iter().all(|s| m.is_trainable(&slope_name(&s.relu))));
    // Ones: the slope graph computes the given graph's function.
    let ones = init_slopes(&sites, SlopeInit::Ones, 1);
    assert!(ones.values().flatten().all(|&a| a == 1.0));
    let sg1 = insert_slopes(&g, &ones).unwrap();
    assert!(max_output_diff(&g, &sg1, &d.test) < 1e-6);
    // Random signs change it.
    assert!(max_output_diff(&g, &sg, &d.test) > 1e-3);
}

#[test]
fn l1_pushes_the_slopes_towards_zero() {
    let d = setup();
    let g = cnn();
    let mut cfg = config(Threshold::Zeta(0.0));
    cfg.epochs = 1;
    cfg.max_batches = Some(20);
    let (_, plain) = run(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    // The default s = 1e-4 moves a slope by about lr·s/(1 − momentum) per step: too little to
    // measure in 20 steps; 1e-2 moves the mean by about 0.05.
    cfg.l1 = Some(1e-2);
    let mut per_epoch = Vec::new();
    let (_, pushed) = run(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let RreluEvent::Epoch(e) = e {
            per_epoch.push(e.clone());
        }
    })
    .unwrap();
    println!("no L1: {:?}\nL1:    {:?}", plain.slopes, pushed.slopes);
    assert_eq!(plain.slopes_init, pushed.slopes_init, "same seed, same start");
    assert_eq!(per_epoch.len(), 1);
    assert_eq!(per_epoch[0].slopes.as_ref(), Some(&pushed.slopes));
    assert!(
        pushed.slopes.mean_abs < plain.slopes.mean_abs - 0.02,
        "mean |a|: {} with L1, {} without",
        pushed.slopes.mean_abs,
        plain.slopes.mean_abs
    );
    assert!(pushed.slopes.median_abs < plain.slopes.median_abs);

    // Weight decay reaches the slopes too.
    cfg.l1 = None;
    cfg.weight_decay = 0.02;
    let (_, decayed) = run(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    println!("wd:    {:?}", decayed.slopes);
    assert!(
        decayed.slopes.mean_abs < plain.slopes.mean_abs - 0.02,
        "mean |a|: {} with weight decay 0.02, {} with 1e-4",
        decayed.slopes.mean_abs,
        plain.slopes.mean_abs
    );
}

#[test]
fn filter_sparsity_removes_exactly_the_requested_count() {
    let d = setup();
    let g = cnn();
    let mut stages = Vec::new();
    let mut batches = 0;
    let r = run_detailed(&g, &d, &config(Threshold::FilterSparsity(0.3)), Device::Cpu, &mut |e| match e {
        RreluEvent::Stage { stage, .. } => stages.push(*stage),
        RreluEvent::Batch { .. } => batches += 1,
        _ => {}
    })
    .unwrap();
    let s = &r.summary;
    println!("{}", serde_json::to_string_pretty(s).unwrap());
    assert_eq!(stages, [Stage::Joint]);
    assert_eq!(batches, 2 * 24);
    assert_eq!(s.channels, 112);
    assert_eq!(s.removed, 34, "round(0.3·112)");
    assert!(s.accuracy_trained > 0.3, "slope training learned little: {}", s.accuracy_trained);
    assert!((s.accuracy_trained - evaluate_graph(&r.trained, &d.test)).abs() < 1e-12);
    assert!((s.accuracy_pruned - evaluate_graph(&r.pruned, &d.test)).abs() < 1e-12);
    assert!(s.accuracy_finetuned.is_none() && s.epochs.finetune == 0);
    check_pruned(&r, &d);
    assert_eq!(&r.graph, &r.pruned);
}

#[test]
fn site_ranking_compares_each_channel_with_its_siblings() {
    let site = |relu: &str, channels| SlopeSite { relu: relu.into(), conv: format!("{relu}.conv"), channels };
    let sites = [site("a", 4), site("b", 4)];
    // Site b's slopes are about a tenth of site a's, in a different order inside the site.
    let slopes: Slopes =
        [("a".to_string(), vec![1.0, 0.2, 0.9, 1.1]), ("b".to_string(), vec![0.11, 0.08, 0.02, 0.11])].into();
    let dead = |r: Ranking, k| {
        let order = removal_order(&sites, &slopes, r).unwrap();
        select_count(&sites, &slopes, &order, r, k).unwrap().dead
    };
    // Raw |a|: the three non-keepers of the shrunk site go first.
    assert_eq!(dead(Ranking::Absolute, 3), [("b".to_string(), [1, 2, 3].into())].into());
    // Relative to the site mean (a: 0.8, b: 0.08): 0.2/0.8 and 0.02/0.08 tie at 0.25 (site order
    // first), then 0.08/0.08 = 1 before 0.9/0.8.
    let site_dead = dead(Ranking::Site, 3);
    assert_eq!(site_dead, [("a".to_string(), [1].into()), ("b".to_string(), [1, 2].into())].into());
    // ζ is in the same unit as the order: 0.25 of the site mean removes both quarter-size slopes.
    let order = removal_order(&sites, &slopes, Ranking::Site).unwrap();
    let sel = select_zeta(&sites, &slopes, &order, Ranking::Site, 0.26).unwrap();
    assert_eq!(sel.removed, 2);
    assert_eq!(sel.dead, [("a".to_string(), [1].into()), ("b".to_string(), [2].into())].into());
    // The keepers (largest |a| of each site) never die, whatever ζ.
    let all = select_zeta(&sites, &slopes, &order, Ranking::Site, 10.0).unwrap();
    assert_eq!(all.removed, 6);
    assert_eq!(all.kept_by_floor, 2);
    assert!(!all.dead["a"].contains(&3) && !all.dead["b"].contains(&0));
}

#[test]
fn distillation_adds_the_teacher_term_to_every_stage() {
    let d = setup();
    let g = cnn();
    let mut cfg = config(Threshold::FilterSparsity(0.3));
    cfg.init = SlopeInit::Ones;
    cfg.ranking = Ranking::Site;
    cfg.epochs = 1;
    cfg.finetune_epochs = 1;
    cfg.max_batches = Some(3);
    // The first batch's loss of each stage: same weights, same images, so the distilled run's is
    // the plain cross entropy plus the KL to the starting model (> 0: the teacher runs in
    // evaluation mode, the student in training mode).
    let first_losses = |cfg: &RreluConfig| {
        let mut out = Vec::new();
        let s = run(&g, &d, cfg, Device::Cpu, &mut |e| {
            if let RreluEvent::Batch { stage, batch: 1, loss, .. } = e {
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
    assert_eq!(plain.iter().map(|p| p.0).collect::<Vec<_>>(), [Stage::Joint, Stage::Finetune]);
    assert_eq!(distilled.iter().map(|p| p.0).collect::<Vec<_>>(), [Stage::Joint, Stage::Finetune]);
    assert!(distilled[0].1 > plain[0].1 + 1e-4, "joint: {distilled:?} vs {plain:?}");
    assert!(distilled[1].1.is_finite());
    assert_eq!(ds.removed, ps.removed);
    cfg.temperature = 0.0;
    let err = run(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("temperature"), "{err}");
}

fn evaluate_graph(g: &Graph, d: &Dataset) -> f64 {
    let m = TchModel::from_graph(g, Device::Cpu).unwrap();
    evaluate(&m, d, &DatasetKind::Synthetic.default_norm(), 300).unwrap().accuracy
}

#[test]
fn every_site_keeps_its_largest_slope() {
    let d = setup();
    let g = cnn();
    // No training: ζ above every slope removes all but the largest |a| of each site.
    let mut cfg = config(Threshold::Zeta(10.0));
    cfg.epochs = 0;
    let r = run_detailed(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    let s = &r.summary;
    assert_eq!(s.removed, 112 - 3);
    assert_eq!(s.kept_by_floor, 3);
    assert!(s.sites.iter().all(|c| c.after == 1), "{:?}", s.sites);
    assert_eq!(s.slopes, s.slopes_init);
    check_pruned(&r, &d);
    // A sparsity that would empty a site is refused.
    cfg.threshold = Threshold::FilterSparsity(1.0);
    assert!(run(&g, &d, &cfg, Device::Cpu, &mut |_| {}).is_err());
    // Neither rule removes anything at 0.
    cfg.threshold = Threshold::FilterSparsity(0.0);
    let r0 = run_detailed(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(r0.summary.removed, 0);
    assert!(r0.summary.sites.iter().all(|c| c.after == c.before));
    assert_eq!(r0.summary.seed_after, r0.summary.seed_before);
    check_pruned(&r0, &d);

    // Ones from a given model: the slope graph, and the graph folded with nothing removed,
    // compute what the model does.
    cfg.init = SlopeInit::Ones;
    let r1 = run_detailed(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!((r1.summary.slopes.min_abs, r1.summary.slopes.max_abs, r1.summary.slopes.negatives), (1.0, 1.0, 0));
    assert_eq!(r1.summary.accuracy_trained, r1.summary.accuracy_start);
    assert_eq!(r1.summary.accuracy_pruned, r1.summary.accuracy_start);
    assert!(max_output_diff(&g, &r1.graph, &d.test) < 1e-5);
}

#[test]
fn a_model_without_slope_sites_is_refused() {
    let d = synthetic(&SyntheticConfig { train: 100, test: 50, shape: [1, 28, 28], seed: 1 });
    // mnist_cnn's ReLUs feed max-pools, which do not commute with a negative slope.
    let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
    assert!(slope_sites(&g).unwrap().is_empty());
    let err = run(&g, &d, &config(Threshold::Zeta(0.1)), Device::Cpu, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("slopes"), "{err}");
}

#[test]
fn resnet20_prunes_its_block_interiors() {
    let d = setup();
    let g = masq_ir::zoo::build("resnet20", Some((HW, HW)), 2).unwrap();
    let mut cfg = config(Threshold::FilterSparsity(0.4));
    cfg.epochs = 1;
    cfg.max_batches = Some(6);
    cfg.finetune_epochs = 1;
    let r = run_detailed(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    let s = &r.summary;
    println!("{:?}\n{:?}", s.sites, s.convs);
    // One site per basic block (its first conv-BN-ReLU); the ReLUs after the additions are not.
    assert_eq!(r.sites.len(), 9, "{:?}", r.sites);
    assert_eq!(s.channels, 3 * (16 + 32 + 64));
    assert_eq!(s.removed, (0.4f64 * 336.0).round() as usize);
    check_pruned(&r, &d);
}

#[test]
fn the_validation_rule_stays_within_its_tolerance() {
    let d = setup();
    let g = cnn();
    let tolerance = 1.0;
    let mut cfg = config(Threshold::Validation { tolerance });
    cfg.validation = ValidationSize::Images(300);
    let mut probes = Vec::new();
    let r = run_detailed(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let RreluEvent::Probe(p) = e {
            probes.push(*p);
        }
    })
    .unwrap();
    let s = &r.summary;
    let v = s.validation.as_ref().expect("validation outcome");
    println!("ζ {} removes {} of {}; {v:?}", s.zeta, s.removed, s.channels);
    assert_eq!(v.images, 300);
    assert_eq!(v.probes, probes);

    // Recompute on the same held-out split, independently of the run.
    let (rest, val) = validation_split(&d.train, cfg.validation, cfg.seed).unwrap();
    assert_eq!((rest.len(), val.len()), (900, 300));
    let base = evaluate_graph(&r.trained, &val);
    let chosen = evaluate_graph(&r.thresholded, &val);
    assert!((base - v.baseline).abs() < 1e-12, "baseline {base} vs {}", v.baseline);
    assert!((chosen - v.accuracy).abs() < 1e-12);
    assert!(chosen >= base - tolerance / 100.0 - 1e-12, "validation {chosen} vs unthresholded {base}");
    assert!(base > 0.3, "slope training learned little: {base}");

    // The rule is not vacuous here (removing all it may fails the tolerance), and one more
    // channel than chosen fails it.
    let sites = &r.sites;
    let slopes = read_slopes(&r.trained).unwrap();
    let mut order: Vec<(f32, usize, usize)> = Vec::new();
    for (si, site) in sites.iter().enumerate() {
        let a = &slopes[&site.relu];
        let keeper = (0..a.len()).max_by(|&i, &j| a[i].abs().total_cmp(&a[j].abs()).then(j.cmp(&i))).unwrap();
        order.extend((0..a.len()).filter(|&c| c != keeper).map(|c| (a[c].abs(), si, c)));
    }
    order.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    assert!(s.removed < order.len(), "the tolerance never bit");
    let with_removed = |k: usize| {
        let mut sl = slopes.clone();
        for &(_, si, c) in &order[..k] {
            sl.get_mut(&sites[si].relu).unwrap()[c] = 0.0;
        }
        let mut g = r.trained.clone();
        for (relu, vals) in &sl {
            let t = g.initializers.get_mut(&slope_name(relu)).unwrap();
            t.iter_mut().zip(vals).for_each(|(d, s)| *d = *s);
        }
        g
    };
    assert!((evaluate_graph(&with_removed(s.removed), &val) - chosen).abs() < 1e-12);
    let next = evaluate_graph(&with_removed(s.removed + 1), &val);
    assert!(next < base - tolerance / 100.0, "removing {} channels still passes: {next} vs {base}", s.removed + 1);
    check_pruned(&r, &d);
}

#[test]
fn two_step_freezes_the_thresholded_slopes_then_finetunes() {
    let d = setup();
    let g = cnn();
    let mut cfg = config(Threshold::FilterSparsity(0.25));
    cfg.slope_epochs = Some(1);
    cfg.epochs = 1;
    cfg.finetune_epochs = 1;
    cfg.l1 = Some(1e-4);
    cfg.warmup_epochs = 0.5;
    let mut stages = Vec::new();
    let mut first_lrs = Vec::new();
    let r = run_detailed(&g, &d, &cfg, Device::Cpu, &mut |e| match e {
        RreluEvent::Stage { stage, .. } => stages.push(*stage),
        RreluEvent::Batch { stage, batch: 1, lr, .. } => first_lrs.push((*stage, *lr)),
        _ => {}
    })
    .unwrap();
    let s = &r.summary;
    println!("{s:?}");
    assert_eq!(stages, [Stage::Slopes, Stage::Weights, Stage::Finetune]);
    // Warm-up in the training stages (12 of 24 batches: the first at lr/12), none in the finetune.
    assert!((first_lrs[0].1 - cfg.lr / 12.0).abs() < 1e-12, "{first_lrs:?}");
    assert!((first_lrs[2].1 - cfg.finetune_lr).abs() < 1e-12, "{first_lrs:?}");
    assert_eq!((s.epochs.slopes, s.epochs.weights, s.epochs.finetune, s.epochs.joint), (1, 1, 1, 0));
    assert_eq!(s.removed, 28, "round(0.25·112)");
    // The dead slopes stayed at exactly 0 through the weight stage; the trained graph is the
    // thresholded one.
    let tr = read_slopes(&r.trained).unwrap();
    assert_eq!(tr, read_slopes(&r.thresholded).unwrap());
    assert_eq!(tr.values().flatten().filter(|&&a| a == 0.0).count(), 28);
    // The weight stage trained the weights, not the slopes: conv weights differ from the start.
    assert_ne!(r.trained.initializers["conv2.weight"], g.initializers["conv2.weight"]);
    check_pruned(&r, &d);
    // The finetune changed the values, not the structure.
    assert!(s.accuracy_finetuned.is_some());
    assert_eq!(r.graph.nodes, r.pruned.nodes);
    for (n, t) in &r.pruned.initializers {
        assert_eq!(t.shape(), r.graph.initializers[n].shape(), "{n}");
    }
    assert_ne!(r.graph.initializers, r.pruned.initializers);
    assert!((s.accuracy_finetuned.unwrap() - evaluate_graph(&r.graph, &d.test)).abs() < 1e-12);
}
