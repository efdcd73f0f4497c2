//! Channel pruning (masq_trainer::prune): selection at a sparsity, the scores on hand-made weights,
//! the masked model against hand zeroing and `zero_filters`, simulated annealing's invariants on
//! synthetic objectives, and the whole flow for every method on the synthetic set with cnn_small.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use masq_ir::prune::{ConvSite, DeadSet, conv_sites, prune_channels, zero_filters};
use masq_ir::{Graph, Op};
use masq_trainer::TrainerError;
use masq_trainer::data::{DatasetKind, Splits, SyntheticConfig, synthetic};
use masq_trainer::model::{TchModel, to_array};
use masq_trainer::optim::OptimizerKind;
use masq_trainer::prune::holdout::hold_out;
use masq_trainer::prune::masked::{MaskedModel, batch_accuracy, eval_batches};
use masq_trainer::prune::sa::groups_alive;
use masq_trainer::prune::scores::{considered_sites, magnitude, magsign, random, snip};
use masq_trainer::prune::select::{dead_len, dead_target, dead_to_mask, mask_to_dead, select};
use masq_trainer::prune::{
    FilterScores, Method, PruneConfig, PruneEvent, Rewind, SaConfig, SaEvent, Scope, anneal, prune,
};
use ndarray::{ArrayD, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

fn site(conv: &str, filters: usize, bn: Option<&str>) -> ConvSite {
    ConvSite {
        conv: conv.into(),
        weight: format!("{conv}.weight"),
        out_channels: filters,
        groups: 1,
        batchnorm: bn.map(Into::into),
        removable: true,
    }
}

/// cnn_small's three conv + BN stages, written out by hand (independent of `conv_sites`).
fn cnn_small_sites() -> Vec<ConvSite> {
    vec![site("conv1", 16, Some("bn1")), site("conv2", 32, Some("bn2")), site("conv3", 64, Some("bn3"))]
}

fn scores_of(sizes: &[usize], seed: u64) -> Vec<FilterScores> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| FilterScores {
            conv: format!("c{i}"),
            // A per-layer offset so global selection is not spread evenly.
            scores: (0..n).map(|_| rng.random_range(0.0f32..1.0) + i as f32 * 0.3).collect(),
        })
        .collect()
}

#[test]
fn selection_kills_exactly_floor_s_f_and_keeps_a_filter_per_conv() {
    let sizes = [1usize, 3, 8, 16, 5, 2];
    let total: usize = sizes.iter().sum();
    let scores = scores_of(&sizes, 4);
    for &s in &[0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 0.99] {
        let dead = select(&scores, s, Scope::PerLayer).unwrap();
        for (fs, &n) in scores.iter().zip(&sizes) {
            let d = dead.get(&fs.conv).map_or(0, BTreeSet::len);
            assert_eq!(d, (s * n as f64).floor() as usize, "per layer, S = {s}, {} of {n}", fs.conv);
            assert!(d < n);
            // The dead ones are the lowest of their conv.
            if let Some(d) = dead.get(&fs.conv) {
                let max_dead = d.iter().map(|&c| fs.scores[c]).fold(f32::MIN, f32::max);
                let min_alive = (0..n).filter(|c| !d.contains(c)).map(|c| fs.scores[c]).fold(f32::MAX, f32::min);
                assert!(max_dead <= min_alive, "{}: dead up to {max_dead}, alive from {min_alive}", fs.conv);
            }
        }

        let dead = select(&scores, s, Scope::Global).unwrap();
        let want = ((s * total as f64).floor() as usize).min(total - sizes.len());
        assert_eq!(dead_len(&dead), want, "global, S = {s}");
        let mut alive_count = BTreeMap::new();
        for (fs, &n) in scores.iter().zip(&sizes) {
            let d = dead.get(&fs.conv).map_or(0, BTreeSet::len);
            assert!(d < n, "global S = {s}: {} lost all {n} filters", fs.conv);
            alive_count.insert(fs.conv.clone(), n - d);
        }
        // Any alive filter scoring below a dead one is its conv's last.
        let max_dead = dead
            .iter()
            .flat_map(|(c, d)| {
                let fs = scores.iter().find(|f| &f.conv == c).unwrap();
                d.iter().map(move |&i| fs.scores[i])
            })
            .fold(f32::MIN, f32::max);
        for fs in &scores {
            for (i, &v) in fs.scores.iter().enumerate() {
                let is_dead = dead.get(&fs.conv).is_some_and(|d| d.contains(&i));
                if !is_dead && v < max_dead {
                    assert_eq!(alive_count[&fs.conv], 1, "{}[{i}] = {v} alive below a dead {max_dead}", fs.conv);
                }
            }
        }
    }
    // The per-layer offsets make the global choice differ from the per-layer one.
    assert_ne!(select(&scores, 0.5, Scope::Global).unwrap(), select(&scores, 0.5, Scope::PerLayer).unwrap());
}

#[test]
fn selection_ties_are_deterministic_and_bad_sparsity_is_refused() {
    let flat = vec![
        FilterScores { conv: "a".into(), scores: vec![1.0; 4] },
        FilterScores { conv: "b".into(), scores: vec![1.0; 4] },
    ];
    let g = select(&flat, 0.5, Scope::Global).unwrap();
    assert_eq!(
        g,
        DeadSet::from([("a".to_string(), BTreeSet::from([0, 1, 2]),), ("b".to_string(), BTreeSet::from([0]))])
    );
    let l = select(&flat, 0.5, Scope::PerLayer).unwrap();
    assert_eq!(l["a"], BTreeSet::from([0, 1]));
    assert_eq!(l["b"], BTreeSet::from([0, 1]));
    for s in [1.0, 1.5, -0.1, f64::NAN] {
        assert!(matches!(select(&flat, s, Scope::Global), Err(TrainerError::BadConfig { .. })), "{s}");
    }
    // Masks and dead sets round-trip.
    let sites = vec![site("a", 4, None), site("b", 4, None)];
    let mask = dead_to_mask(&sites, &g).unwrap();
    assert_eq!(mask, vec![false, false, false, true, false, true, true, true]);
    assert_eq!(mask_to_dead(&sites, &mask).unwrap(), g);
    assert!(dead_to_mask(&sites, &DeadSet::from([("a".to_string(), BTreeSet::from([4]))])).is_err());
    assert!(dead_to_mask(&sites, &DeadSet::from([("z".to_string(), BTreeSet::from([0]))])).is_err());
}

/// A graph holding only `c.weight` (the scores read nothing else).
fn weights_graph(w: ArrayD<f32>) -> Graph {
    let mut g = Graph::new("hand");
    g.initializers.insert("c.weight".into(), w);
    g
}

#[test]
fn magnitude_ranks_filters_by_l1_norm() {
    // Four filters of 2×1×2: L1 norms 3.0, 0.5, 2.0, 0.1 (signs mixed).
    let w = ArrayD::from_shape_vec(
        IxDyn(&[4, 2, 1, 2]),
        vec![1.0, -1.0, 0.5, -0.5, 0.1, -0.1, 0.2, 0.1, -0.5, 0.5, -0.5, 0.5, 0.05, 0.0, -0.05, 0.0],
    )
    .unwrap();
    let sites = vec![site("c", 4, None)];
    let s = magnitude(&weights_graph(w), &sites).unwrap();
    let want = [3.0f32, 0.5, 2.0, 0.1];
    for (a, b) in s[0].scores.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {want:?}", s[0].scores);
    }
    let dead = select(&s, 0.5, Scope::PerLayer).unwrap();
    assert_eq!(dead["c"], BTreeSet::from([1, 3]));
    let dead = select(&s, 0.25, Scope::PerLayer).unwrap();
    assert_eq!(dead["c"], BTreeSet::from([3]));
    // A weight that does not fit the site is an error.
    assert!(magnitude(&weights_graph(ArrayD::zeros(IxDyn(&[3, 1, 1, 1]))), &sites).is_err());
}

#[test]
fn magsign_counts_the_weights_that_kept_their_sign() {
    let init = ArrayD::from_shape_vec(
        IxDyn(&[3, 1, 2, 2]),
        vec![
            1.0, 1.0, -1.0, -1.0, // filter 0
            1.0, -1.0, 1.0, -1.0, // filter 1
            -1.0, -1.0, -1.0, -1.0, // filter 2
        ],
    )
    .unwrap();
    let fin = ArrayD::from_shape_vec(
        IxDyn(&[3, 1, 2, 2]),
        vec![
            2.0, -3.0, -0.5, 4.0, // kept: 2.0, -0.5 -> 2.5 (magnitude 9.5)
            0.1, -0.2, 0.3, -0.4, // all kept -> 1.0 (magnitude 1.0)
            5.0, 5.0, -0.25, 5.0, // kept: -0.25 (magnitude 15.25)
        ],
    )
    .unwrap();
    let sites = vec![site("c", 3, None)];
    let s = magsign(&weights_graph(init), &weights_graph(fin.clone()), &sites).unwrap();
    let want = [2.5f32, 1.0, 0.25];
    for (a, b) in s[0].scores.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {want:?}", s[0].scores);
    }
    // Magnitude ranks filter 2 first; magsign last.
    let m = magnitude(&weights_graph(fin), &sites).unwrap();
    assert_eq!(select(&m, 0.34, Scope::PerLayer).unwrap()["c"], BTreeSet::from([1]));
    assert_eq!(select(&s, 0.34, Scope::PerLayer).unwrap()["c"], BTreeSet::from([2]));
}

fn norm() -> masq_trainer::data::Normalisation {
    DatasetKind::Synthetic.default_norm()
}

#[test]
fn snip_scores_are_finite_nonzero_and_depend_on_the_batch() {
    tch::set_num_threads(1);
    let d = synthetic(&SyntheticConfig { train: 200, test: 10, shape: [3, 32, 32], seed: 2 });
    let g = masq_ir::zoo::build("cnn_small", None, 3).unwrap();
    let sites = cnn_small_sites();
    let a = snip(&g, &sites, &d.train, &norm(), 64, 1, Device::Cpu).unwrap();
    let b = snip(&g, &sites, &d.train, &norm(), 64, 2, Device::Cpu).unwrap();
    assert_eq!(a.len(), 3);
    for (fs, s) in a.iter().zip(&sites) {
        assert_eq!(fs.scores.len(), s.out_channels);
        assert!(fs.scores.iter().all(|v| v.is_finite() && *v >= 0.0), "{}: {:?}", fs.conv, fs.scores);
        assert!(fs.scores.iter().filter(|&&v| v > 0.0).count() > s.out_channels / 2, "{}: {:?}", fs.conv, fs.scores);
        let (lo, hi) = fs.scores.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(hi > lo, "{}: all scores equal", fs.conv);
    }
    assert_ne!(a, b, "another batch gives other gradients");
    assert!(snip(&g, &sites, &d.train, &norm(), 0, 1, Device::Cpu).is_err());
    // Random scores: seeded.
    assert_eq!(random(&sites, 5), random(&sites, 5));
    assert_ne!(random(&sites, 5), random(&sites, 6));
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from(a.f_sub(b).unwrap().abs().max()).unwrap()
}

#[test]
fn masked_model_zeroes_filters_like_the_hand_made_graph() {
    tch::set_num_threads(1);
    let g = masq_ir::zoo::build("cnn_small", None, 5).unwrap();
    let sites = cnn_small_sites();
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let reference = TchModel::from_graph(&g, Device::Cpu).unwrap().forward(&x, false).unwrap();
    let mut m = MaskedModel::new(&g, &sites, Device::Cpu).unwrap();
    assert_eq!(m.filters(), 112);

    // Filters 3 and 7 of conv1, 0 of conv2 dead: zero the weight rows and bn scale/shift by hand.
    let mut mask = vec![true; 112];
    for i in [3, 7, 16] {
        mask[i] = false;
    }
    let mut hand = g.clone();
    for (conv, bn, c) in [("conv1", "bn1", 3usize), ("conv1", "bn1", 7), ("conv2", "bn2", 0)] {
        hand.initializers.get_mut(&format!("{conv}.weight")).unwrap().index_axis_mut(Axis(0), c).fill(0.0);
        hand.initializers.get_mut(&format!("{bn}.weight")).unwrap()[[c]] = 0.0;
        hand.initializers.get_mut(&format!("{bn}.bias")).unwrap()[[c]] = 0.0;
    }
    let want = TchModel::from_graph(&hand, Device::Cpu).unwrap().forward(&x, false).unwrap();
    m.apply(&mask).unwrap();
    let got = m.model().forward(&x, false).unwrap();
    assert!(max_abs_diff(&got, &want) < 1e-5, "masked vs hand zeroing: {}", max_abs_diff(&got, &want));
    assert!(max_abs_diff(&got, &reference) > 1e-4, "the mask changed nothing");

    // Every conv3 filter dead: the pooled features are 0, the logits are fc's bias.
    let mut mask = vec![true; 112];
    mask[48..].iter_mut().for_each(|b| *b = false);
    m.apply(&mask).unwrap();
    let got = to_array(&m.model().forward(&x, false).unwrap()).unwrap();
    let bias = &g.initializers["fc.bias"];
    for row in got.outer_iter() {
        for (a, b) in row.iter().zip(bias.iter()) {
            assert!((a - b).abs() < 1e-5, "{a} vs bias {b}");
        }
    }

    // All ones restores the starting weights exactly.
    m.apply(&[true; 112]).unwrap();
    assert!(max_abs_diff(&m.model().forward(&x, false).unwrap(), &reference) < 1e-6);
    assert!(m.apply(&[true; 5]).is_err());

    // The objective: percent top-1 on fixed batches.
    let d = synthetic(&SyntheticConfig { train: 10, test: 300, shape: [3, 32, 32], seed: 1 });
    let batches = eval_batches(&d.test, &norm(), 128, 2, Device::Cpu).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].0.size()[0], 128);
    let a = m.accuracy(&[true; 112], &batches).unwrap();
    assert!((0.0..=100.0).contains(&a));
    assert_eq!(a, batch_accuracy(&TchModel::from_graph(&g, Device::Cpu).unwrap(), &batches).unwrap());
}

#[test]
fn masked_model_matches_zero_filters_and_prune_channels() {
    tch::set_num_threads(1);
    let g = masq_ir::zoo::build("cnn_small", None, 6).unwrap();
    let all = considered_sites(&g, true).unwrap();
    let removable = considered_sites(&g, false).unwrap();
    assert!(removable.iter().all(|s| s.removable));
    assert!(removable.len() <= all.len());
    let names: Vec<(&str, usize)> = all.iter().map(|s| (s.conv.as_str(), s.out_channels)).collect();
    assert_eq!(names, vec![("conv1", 16), ("conv2", 32), ("conv3", 64)]);
    assert_eq!(all, conv_sites(&g).unwrap());

    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mask: Vec<bool> = (0..112).map(|_| rng.random_bool(0.6)).collect();
    let dead = mask_to_dead(&all, &mask).unwrap();
    let mut zeroed = g.clone();
    zero_filters(&mut zeroed, &dead).unwrap();
    let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
    let want = TchModel::from_graph(&zeroed, Device::Cpu).unwrap().forward(&x, false).unwrap();
    let mut m = MaskedModel::new(&g, &all, Device::Cpu).unwrap();
    m.apply(&mask).unwrap();
    let got = m.model().forward(&x, false).unwrap();
    assert!(max_abs_diff(&got, &want) < 1e-5, "masked vs zero_filters: {}", max_abs_diff(&got, &want));
    // The surgery the flow relies on computes the same function.
    let pruned = prune_channels(&g, &dead).unwrap();
    let p = TchModel::from_graph(&pruned.graph, Device::Cpu).unwrap().forward(&x, false).unwrap();
    assert!(max_abs_diff(&p, &want) < 1e-4, "prune_channels vs zero_filters: {}", max_abs_diff(&p, &want));
}

#[test]
fn holdout_splits_the_training_set() {
    let d = synthetic(&SyntheticConfig { train: 100, test: 10, shape: [1, 4, 4], seed: 3 });
    let (rest, val) = hold_out(&d.train, 30, 1).unwrap();
    assert_eq!((rest.len(), val.len()), (70, 30));
    let img = |ds: &masq_trainer::data::Dataset, i: usize| ds.images[i * 16..(i + 1) * 16].to_vec();
    let mut all: Vec<Vec<u8>> = (0..70).map(|i| img(&rest, i)).chain((0..30).map(|i| img(&val, i))).collect();
    let mut orig: Vec<Vec<u8>> = (0..100).map(|i| img(&d.train, i)).collect();
    all.sort();
    orig.sort();
    assert_eq!(all, orig);
    assert_eq!(hold_out(&d.train, 30, 1).unwrap().1, val);
    assert_ne!(hold_out(&d.train, 30, 2).unwrap().1, val);
    assert!(hold_out(&d.train, 0, 1).is_err());
    assert!(hold_out(&d.train, 100, 1).is_err());
}

/// Events of one annealing run, owned.
#[derive(Debug, Default)]
struct Log {
    start: Option<(f64, Vec<bool>)>,
    /// (temperature, h, accuracy, mean, accepted, tabu_exhausted, mask)
    trials: Vec<(usize, usize, f64, f64, bool, bool, Vec<bool>)>,
    /// (index, T, h, iterations, accepted, rejected, mean, best_mean)
    temps: Vec<(usize, f64, usize, usize, usize, usize, f64, f64)>,
}

impl Log {
    fn record(&mut self, e: &SaEvent<'_>) {
        match e {
            SaEvent::Start { accuracy, mask, .. } => self.start = Some((*accuracy, mask.to_vec())),
            SaEvent::Trial { temperature, h, accuracy, mean, accepted, tabu_exhausted, mask, .. } => {
                self.trials.push((*temperature, *h, *accuracy, *mean, *accepted, *tabu_exhausted, mask.to_vec()))
            }
            &SaEvent::Temperature { index, temperature, h, iterations, accepted, rejected, mean, best_mean } => {
                self.temps.push((index, temperature, h, iterations, accepted, rejected, mean, best_mean))
            }
        }
    }
}

/// Percent of `good` filters alive (a smooth landscape for the search).
fn overlap_objective(good: &[bool]) -> impl FnMut(&[bool]) -> masq_trainer::Result<f64> + '_ {
    move |m: &[bool]| {
        let n = good.iter().filter(|&&g| g).count();
        Ok(100.0 * m.iter().zip(good).filter(|(a, b)| **a && **b).count() as f64 / n as f64)
    }
}

#[test]
fn annealing_keeps_sparsity_alive_convs_tabu_and_the_schedules() {
    let groups = [3usize, 5, 8, 16];
    let zeros = dead_target(0.6, 32);
    let cfg = SaConfig { temperatures: 80, ..SaConfig::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let good: Vec<bool> = (0..32).map(|_| rng.random_bool(0.5)).collect();
    let mut obj = overlap_objective(&good);
    let mut log = Log::default();
    let out = anneal(&groups, zeros, &cfg, 7, &mut obj, &mut |e| log.record(e)).unwrap();

    let (start_acc, start_mask) = log.start.clone().unwrap();
    let mut all = vec![start_mask];
    all.extend(log.trials.iter().map(|t| t.6.clone()));
    all.push(out.mask.clone());
    for m in &all {
        assert_eq!(m.iter().filter(|&&b| !b).count(), zeros);
        assert!(groups_alive(&groups, m), "a conv lost every filter: {m:?}");
    }

    // Tabu: a trial repeats one of the last 60 evaluated masks only when flagged as exhausted.
    let mut window: VecDeque<Vec<bool>> = VecDeque::from([all[0].clone()]);
    for t in &log.trials {
        let seen = window.contains(&t.6);
        assert_eq!(seen, t.5, "tabu flag {} but the mask was {}in the window", t.5, if seen { "" } else { "not " });
        window.push_back(t.6.clone());
        if window.len() > 60 {
            window.pop_front();
        }
    }
    assert_eq!(out.stats.tabu_exhausted, 0, "a space of C(32, 19) masks never exhausts 31 draws");

    // Schedules: T, iterations, h (h0 = number of ones = 13).
    assert_eq!(log.temps.len(), 80);
    let (mut t, mut h, mut h_ref, mut it) = (0.005f64, 13usize, 13usize, 2.0f64);
    for (i, rec) in log.temps.iter().enumerate() {
        assert_eq!(rec.0, i);
        assert!((rec.1 - t).abs() < 1e-15, "T at {i}: {} vs {t}", rec.1);
        assert_eq!(rec.2, h, "h at temperature {i}");
        assert_eq!(rec.3, it.min(10.0) as usize, "iterations at {i}");
        assert_eq!(rec.3, log.trials.iter().filter(|x| x.0 == i).count());
        assert!(log.trials.iter().filter(|x| x.0 == i).all(|x| x.1 == h));
        assert_eq!(rec.4 + rec.5, rec.3);
        t *= 0.995;
        it *= 1.005;
        h = ((0.99 * h as f64).floor() as usize).max(1);
        if (h as f64) < h_ref as f64 / 2.0 {
            h = (0.75 * h_ref as f64).floor() as usize;
            h_ref = h;
        }
    }
    assert!(log.temps.windows(2).any(|w| w[1].2 > w[0].2), "h was never reset");

    // Acceptance: Ā bookkeeping from 5, better-than-Ā always accepted, far worse never.
    let mut abar = 5.0f64;
    for (i, rec) in log.temps.iter().enumerate() {
        let mut list = vec![abar];
        for tr in log.trials.iter().filter(|x| x.0 == i) {
            let m = list.iter().sum::<f64>() / list.len() as f64;
            assert!((tr.3 - m).abs() < 1e-9, "Ā {} vs {m}", tr.3);
            if tr.2 > m {
                assert!(tr.4, "a trial above Ā was rejected");
            }
            if m - tr.2 >= 20.0 {
                assert!(!tr.4, "a trial 20 points below Ā was accepted at T = {}", rec.1);
            }
            if tr.4 {
                list.push(tr.2);
            }
        }
        abar = list.iter().sum::<f64>() / list.len() as f64;
        assert!((rec.6 - abar).abs() < 1e-9);
    }
    let best = log.temps.iter().map(|r| r.6).fold(f64::MIN, f64::max);
    assert_eq!(out.stats.best_mean, best);
    assert_eq!(out.stats.trials, log.trials.len());
    assert_eq!(out.stats.accepted + out.stats.rejected, out.stats.trials);
    assert_eq!(out.stats.start_accuracy, start_acc);
    // Same seed, same run; the kept mask is the state at the end of the best temperature.
    let mut obj2 = overlap_objective(&good);
    let again = anneal(&groups, zeros, &cfg, 7, &mut obj2, &mut |_| {}).unwrap();
    assert_eq!(again, out);
}

#[test]
fn annealing_improves_on_its_start() {
    let groups = [8usize, 8, 16];
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let good: Vec<bool> = (0..32).map(|_| rng.random_bool(0.5)).collect();
    let cfg = SaConfig { temperatures: 40, h_start: Some(1), ..SaConfig::default() };
    let mut obj = overlap_objective(&good);
    let out = anneal(&groups, 16, &cfg, 3, &mut obj, &mut |_| {}).unwrap();
    let kept = overlap_objective(&good)(&out.mask).unwrap();
    println!("{:?}, kept mask {kept}", out.stats);
    assert!(out.stats.best_mean > out.stats.start_accuracy, "{:?}", out.stats);
    assert!(kept > out.stats.start_accuracy, "kept {kept}, {:?}", out.stats);
}

#[test]
fn annealing_in_a_tiny_space_flags_tabu_exhaustion() {
    // 4 filters, 2 dead: six masks, fewer than the trials.
    let cfg = SaConfig { temperatures: 10, h_start: Some(1), ..SaConfig::default() };
    let mut log = Log::default();
    let mut obj = |m: &[bool]| Ok::<f64, TrainerError>(if m[0] { 50.0 } else { 40.0 });
    let out = anneal(&[4], 2, &cfg, 1, &mut obj, &mut |e| log.record(e)).unwrap();
    let mut window = vec![log.start.clone().unwrap().1];
    for t in &log.trials {
        assert_eq!(window.contains(&t.6), t.5);
        assert_eq!(t.6.iter().filter(|&&b| !b).count(), 2);
        window.push(t.6.clone());
    }
    assert!(out.stats.tabu_exhausted > 0 && out.stats.tabu_exhausted < log.trials.len(), "{:?}", out.stats);
    // Too many zeros for every conv to keep one.
    assert!(anneal(&[2, 2], 3, &cfg, 1, &mut obj, &mut |_| {}).is_err());
    assert!(anneal(&[2, 2], 2, &SaConfig { temperatures: 0, ..cfg.clone() }, 1, &mut obj, &mut |_| {}).is_err());
}

// ---- the flow ----

fn flow_data() -> Splits {
    let mut d = synthetic(&SyntheticConfig { train: 1200, test: 300, shape: [3, 32, 32], seed: 21 });
    d.test.truncate(200);
    d
}

fn flow_config(method: Method) -> PruneConfig {
    let kind = DatasetKind::Synthetic;
    let mut cfg = PruneConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
    cfg.method = method;
    cfg.sparsity = 0.5;
    cfg.train_epochs = 1;
    cfg.epochs = 1;
    for t in [&mut cfg.train, &mut cfg.retrain] {
        t.batch_size = 32;
        t.lr = 5e-3;
        t.optimizer = OptimizerKind::adam();
        t.weight_decay = 0.0;
        t.max_batches = Some(8);
        t.eval_batch_size = 200;
        t.seed = 4;
    }
    cfg.sa = SaConfig { temperatures: 5, batch_size: 128, ..SaConfig::default() };
    cfg.snip_images = 64;
    cfg.seed = 8;
    cfg
}

fn conv_filters(g: &Graph, conv: &str) -> usize {
    let node = g.nodes.iter().find(|n| n.name == conv).unwrap_or_else(|| panic!("no conv {conv}"));
    let Op::Conv(c) = &node.op else { panic!("{conv} is not a Conv") };
    g.initializers[&c.weight].shape()[0]
}

#[test]
fn flow_refuses_bad_settings_before_any_work() {
    let d = synthetic(&SyntheticConfig { train: 50, test: 10, shape: [3, 32, 32], seed: 1 });
    let g = masq_ir::zoo::build("cnn_small", None, 1).unwrap();
    let run = |cfg: PruneConfig| prune(&g, &d, &cfg, Device::Cpu, &mut |_| {}).err().map(|e| e.to_string());
    let mut c = flow_config(Method::MagSign);
    c.train_epochs = 0;
    assert!(run(c).unwrap().contains("magsign"));
    let mut c = flow_config(Method::Mag);
    c.sparsity = 1.0;
    assert!(run(c).unwrap().contains("sparsity"));
    let mut c = flow_config(Method::Mag);
    c.rewind = Rewind::Epoch(3);
    assert!(run(c).unwrap().contains("epoch 3"));
    let mut c = flow_config(Method::Sa);
    c.val_images = Some(0);
    assert!(run(c).unwrap().contains("validation"));
    let mut c = flow_config(Method::Sa);
    c.sa.cooling = 0.0;
    assert!(run(c).unwrap().contains("cooling"));
    assert_eq!(Method::parse("MagSign").unwrap(), Method::MagSign);
    assert!(Method::parse("lottery").is_err());
    assert_eq!(Rewind::parse("epoch:2").unwrap(), Rewind::Epoch(2));
    assert_eq!(Rewind::parse("final").unwrap(), Rewind::Final);
    assert_eq!(Scope::parse("global").unwrap(), Scope::Global);
}

#[test]
fn flow_end_to_end_for_every_method() {
    tch::set_num_threads(1);
    let d = flow_data();
    let g = masq_ir::zoo::build("cnn_small", None, 2).unwrap();
    let sites = considered_sites(&g, false).unwrap();
    assert!(!sites.is_empty(), "cnn_small has removable convs");
    let filters: usize = sites.iter().map(|s| s.out_channels).sum();
    let before = masq_ir::report::report(&g).unwrap();
    let seed_before = masq_ir::prune::count::seed_count(&g).unwrap();

    let cases = [
        (Method::Mag, Scope::PerLayer, Rewind::Final, 1),
        (Method::MagSign, Scope::Global, Rewind::Init, 1),
        (Method::Snip, Scope::PerLayer, Rewind::Init, 1),
        (Method::Random, Scope::Global, Rewind::Init, 1),
        (Method::Sa, Scope::Global, Rewind::Epoch(1), 2),
    ];
    for (method, scope, rewind, train_epochs) in cases {
        let mut cfg = flow_config(method);
        cfg.scope = scope;
        cfg.rewind = rewind;
        cfg.train_epochs = train_epochs;
        let mut stages = Vec::new();
        let mut temps = 0;
        let (out, s) = prune(&g, &d, &cfg, Device::Cpu, &mut |e| match e {
            PruneEvent::Stage { stage } => stages.push(*stage),
            PruneEvent::Search(SaEvent::Temperature { .. }) => temps += 1,
            _ => {}
        })
        .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        println!("{method:?}: {}", serde_json::to_string(&s).unwrap());
        let search = if method == Method::Sa { "search" } else { "score" };
        assert_eq!(stages, vec!["train", search, "prune", "retrain"], "{method:?}");

        let want_dead = if method != Method::Sa && scope == Scope::PerLayer {
            sites.iter().map(|x| dead_target(0.5, x.out_channels)).sum()
        } else {
            dead_target(0.5, filters)
        };
        assert_eq!(s.dead, want_dead, "{method:?}");
        assert_eq!(dead_len(&s.dead_filters), s.dead);
        assert_eq!(s.filters, filters);
        assert!((s.achieved_sparsity - want_dead as f64 / filters as f64).abs() < 1e-12);
        for x in &sites {
            let dead = s.dead_filters.get(&x.conv).map_or(0, BTreeSet::len);
            assert!(dead < x.out_channels, "{method:?}: {} lost every filter", x.conv);
            let change = s.convs.iter().find(|c| c.conv == x.conv).unwrap();
            assert_eq!(change.before, x.out_channels);
            assert_eq!(change.after, x.out_channels - dead + change.kept_zeroed, "{method:?} {}", x.conv);
            assert_eq!(conv_filters(&out, &x.conv), change.after, "{method:?} {}", x.conv);
            if x.removable {
                assert_eq!(change.kept_zeroed, 0, "{method:?} {}", x.conv);
            }
        }
        assert_eq!(s.seed_before, seed_before);
        assert!(s.seed_after.params < seed_before.params && s.seed_after.flops < seed_before.flops, "{method:?}");
        assert!(s.param_saving > 0.0 && s.flop_saving > 0.0);
        assert_eq!(s.report_before.params, before.params);
        assert!(s.report_after.params < before.params, "{method:?}");
        assert!(s.report_after.macs < before.macs, "{method:?}");
        assert!(s.report_after.relus < before.relu_count, "{method:?}");
        assert_eq!(s.report_after.relus, masq_ir::report::report(&out).unwrap().relu_count);
        let acc = s.accuracy_retrained.expect("retrained");
        assert!((0.0..=1.0).contains(&acc) && acc == s.accuracy);
        assert!((0.0..=1.0).contains(&s.accuracy_pruned) && (0.0..=1.0).contains(&s.accuracy_unpruned));
        // The returned graph is the retrained one: its accuracy is the reported one.
        let m = TchModel::from_graph(&out, Device::Cpu).unwrap();
        let ev = masq_trainer::train::evaluate(&m, &d.test, &norm(), 200).unwrap();
        assert!((ev.accuracy - acc).abs() < 1e-9, "{method:?}: {} vs {acc}", ev.accuracy);
        if method == Method::Sa {
            let sa = s.sa.as_ref().unwrap();
            assert_eq!((sa.temperatures, temps), (5, 5));
            assert_eq!(sa.accepted + sa.rejected, sa.trials);
            assert!(sa.trials >= 10);
            assert_eq!(s.val_images, 128);
        } else {
            assert!(s.sa.is_none());
            assert_eq!(s.val_images, 0);
        }
    }
}

#[test]
fn flow_without_training_prunes_the_given_weights() {
    tch::set_num_threads(1);
    let d = flow_data();
    let g = masq_ir::zoo::build("cnn_small", None, 3).unwrap();
    let mut cfg = flow_config(Method::Random);
    cfg.train_epochs = 0;
    cfg.epochs = 0;
    cfg.sparsity = 0.25;
    let mut stages = Vec::new();
    let (out, s) = prune(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let PruneEvent::Stage { stage } = e {
            stages.push(*stage)
        }
    })
    .unwrap();
    assert_eq!(stages, vec!["score", "prune"]);
    assert!(s.accuracy_retrained.is_none());
    assert_eq!(s.accuracy, s.accuracy_pruned);
    // conv1's surviving rows are θ0's rows (its inputs are the image channels, untouched).
    let dead = s.dead_filters.get("conv1").cloned().unwrap_or_default();
    assert_eq!(dead.len(), 4);
    let w0 = &g.initializers["conv1.weight"];
    let w = &out.initializers["conv1.weight"];
    let alive: Vec<usize> = (0..16).filter(|c| !dead.contains(c)).collect();
    assert_eq!(w.shape()[0], alive.len());
    for (row, &c) in alive.iter().enumerate() {
        assert_eq!(w.index_axis(Axis(0), row), w0.index_axis(Axis(0), c), "conv1 filter {c}");
    }
    // Same seed, same dead set; the output runs.
    let (_, again) = prune(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(again.dead_filters, s.dead_filters);
    let m = TchModel::from_graph(&out, Device::Cpu).unwrap();
    assert_eq!(m.forward(&Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false).unwrap().size(), [2, 10]);
}

#[test]
fn flow_with_every_conv_accounts_for_filters_kept_zeroed() {
    tch::set_num_threads(1);
    let mut d = synthetic(&SyntheticConfig { train: 64, test: 16, shape: [3, 32, 32], seed: 5 });
    d.test.truncate(16);
    let g = masq_ir::zoo::build("resnet20", None, 1).unwrap();
    let all = considered_sites(&g, true).unwrap();
    let removable = considered_sites(&g, false).unwrap();
    assert!(removable.len() < all.len(), "resnet20's residual adds tie some convs");
    let mut cfg = flow_config(Method::Random);
    cfg.include_all_convs = true;
    cfg.train_epochs = 0;
    cfg.epochs = 0;
    cfg.scope = Scope::PerLayer;
    let (out, s) = prune(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(s.filters, all.iter().map(|x| x.out_channels).sum::<usize>());
    assert_eq!(s.dead, all.iter().map(|x| dead_target(0.5, x.out_channels)).sum::<usize>());
    assert_eq!(s.removed + s.kept_zeroed, s.dead);
    assert!(s.kept_zeroed > 0 && s.removed > 0, "{} removed, {} kept zeroed", s.removed, s.kept_zeroed);
    for x in &all {
        let dead = s.dead_filters.get(&x.conv).map_or(0, BTreeSet::len);
        let c = s.convs.iter().find(|c| c.conv == x.conv).unwrap();
        assert_eq!(c.after, x.out_channels - dead + c.kept_zeroed, "{}", x.conv);
        assert_eq!(conv_filters(&out, &x.conv), c.after, "{}", x.conv);
    }
    assert!(s.seed_after.params < s.seed_before.params);
}
