//! ReLU reduction end to end on the built-in synthetic set with mnist_cnn: AutoReP lands at or
//! under the budget and keeps accuracy; random lands exactly at it; the checkpoint loads in the
//! runtime with `report`'s ReLU count equal to Σmasks.

use masq_ir::checkpoint;
use masq_trainer::data::{DatasetKind, Splits, SyntheticConfig, synthetic};
use masq_trainer::optim::OptimizerKind;
use masq_trainer::reduce::{Budget, Method, ReduceConfig, ReduceEvent, ReplacementKind, reduce};
use masq_trainer::train::{TrainConfig, train};
use tch::Device;

fn data() -> Splits {
    let mut d = synthetic(&SyntheticConfig { train: 2000, test: 500, shape: [1, 28, 28], seed: 11 });
    d.test.truncate(300);
    d
}

fn baseline(d: &Splits) -> masq_ir::Graph {
    let g = masq_ir::zoo::build("mnist_cnn", None, 1).unwrap();
    let kind = DatasetKind::Synthetic;
    let mut cfg = TrainConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
    cfg.epochs = 2;
    cfg.batch_size = 50;
    cfg.lr = 5e-3;
    cfg.optimizer = OptimizerKind::adam();
    cfg.weight_decay = 0.0;
    cfg.seed = 7;
    let (model, s) = train(&g, d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert!(s.final_accuracy > 0.8, "baseline accuracy {}", s.final_accuracy);
    model.to_graph().unwrap()
}

/// One thread, the synthetic splits, a trained baseline and its ReLU count.
fn setup() -> (Splits, masq_ir::Graph, u64) {
    tch::set_num_threads(1);
    let d = data();
    let g = baseline(&d);
    let total = masq_ir::report::report(&g).unwrap().relu_count;
    (d, g, total)
}

fn config(method: Method, budget: u64, out: Option<std::path::PathBuf>) -> ReduceConfig {
    let kind = DatasetKind::Synthetic;
    let mut cfg = ReduceConfig::new(kind.name(), kind.default_norm(), kind.default_augment(), Budget::Count(budget));
    cfg.method = method;
    cfg.batch_size = 50;
    cfg.mask_epochs = 3;
    cfg.finetune_epochs = 1;
    cfg.lr = 2e-3;
    cfg.mask_lr = Some(0.05);
    cfg.lambda = 10.0;
    cfg.replacement = ReplacementKind::Poly2;
    cfg.max_batches = Some(25);
    cfg.distill = true;
    cfg.seed = 3;
    cfg.out_dir = out;
    cfg
}

#[test]
fn autorep_and_random_reach_the_budget_and_checkpoints_load() {
    let (d, g, total) = setup();
    let budget = total / 10;
    let dir = std::env::temp_dir().join(format!("masq-reduce-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let mut epochs = Vec::new();
    let (gr, s) = reduce(&g, &d, &config(Method::AutoRep, budget, Some(dir.join("autorep"))), Device::Cpu, &mut |e| {
        if let ReduceEvent::Epoch(e) = e {
            epochs.push(e.clone())
        }
    })
    .unwrap();
    println!("autorep: {s:?}\n{epochs:#?}");
    assert!(s.relu_count <= budget, "{} > budget {budget}", s.relu_count);
    assert!(s.accuracy > 0.5, "accuracy {} (chance 0.1)", s.accuracy);
    assert_eq!(s.relu_before, total);
    let sum_layers: u64 = s.layers.iter().map(|l| l.after).sum();
    assert_eq!(sum_layers, s.relu_count);
    assert_eq!(s.layers.iter().map(|l| l.before).sum::<u64>(), total);

    // The checkpoint loads in the runtime; report's count = Σmasks; the plain interpreter agrees
    // with the tch model on the reduced graph.
    let path = s.checkpoint.clone().unwrap();
    let ck = checkpoint::read_checkpoint(&path).unwrap();
    assert_eq!(ck.graph, gr);
    let masks: u64 = ck.graph.masks.values().map(|m| m.iter().filter(|&&v| v != 0).count() as u64).sum();
    assert_eq!(masq_ir::report::report(&ck.graph).unwrap().relu_count, masks);
    assert_eq!(ck.facts.relu_count, Some(masks));
    assert_eq!(ck.facts.accuracy, Some(s.accuracy));
    assert!(ck.facts.other.contains_key("relu_layers"));
    let m = masq_trainer::TchModel::from_graph(&ck.graph, Device::Cpu).unwrap();
    let again = masq_trainer::train::evaluate(&m, &d.test, &DatasetKind::Synthetic.default_norm(), 100).unwrap();
    assert!((again.accuracy - s.accuracy).abs() < 1e-12);

    let (_, r) =
        reduce(&g, &d, &config(Method::Random, budget, Some(dir.join("random"))), Device::Cpu, &mut |_| {}).unwrap();
    println!("random: {r:?}");
    assert_eq!(r.relu_count, budget);
    // AutoReP is not worse than a random mask at the same budget and training.
    assert!(s.accuracy + 0.02 >= r.accuracy, "autorep {} vs random {}", s.accuracy, r.accuracy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_overshooting_search_gives_relus_back_up_to_the_budget() {
    let (d, g, total) = setup();
    let budget = total / 20;
    // A large gate learning rate and λ drive every gate below zero within the first epoch.
    let mut cfg = config(Method::AutoRep, budget, None);
    cfg.mask_lr = Some(0.5);
    cfg.lambda = 100.0;
    cfg.mask_epochs = 2;
    cfg.finetune_epochs = 0;
    let mut counts = Vec::new();
    let (_, s) = reduce(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let ReduceEvent::Epoch(e) = e {
            counts.push(e.relu_count)
        }
    })
    .unwrap();
    println!("{s:?} {counts:?}");
    assert!(counts.iter().any(|&c| c < budget), "the search never overshot: {counts:?}");
    assert!(s.filled > 0 && !s.forced);
    assert_eq!(s.relu_count, budget);

    cfg.fill_budget = false;
    let (_, s) = reduce(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(s.filled, 0);
    assert!(s.relu_count < budget);
}

#[test]
fn snl_binarises_at_its_threshold_or_at_the_budget() {
    let (d, g, total) = setup();
    let budget = total / 4;

    // A strong L1 term pulls the gates under 1e-2 within the search: SNL reaches the budget by
    // itself. Without filling, its mask is exactly α > 1e-2, at or under the budget.
    let mut cfg = config(Method::Snl, budget, None);
    cfg.snl_eta = 1e-3;
    cfg.mask_epochs = 6;
    cfg.finetune_epochs = 0;
    cfg.fill_budget = false;
    let mut counts = Vec::new();
    let (_, s) = reduce(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let ReduceEvent::Epoch(e) = e {
            counts.push(e.relu_count)
        }
    })
    .unwrap();
    println!("snl, no fill: {s:?} {counts:?}");
    assert!(s.reached_budget && !s.forced, "{counts:?}");
    assert_eq!(s.filled, 0);
    assert_eq!(s.relu_count, *counts.last().unwrap(), "the mask is the threshold the last epoch counted");
    assert!(s.relu_count <= budget);
    assert!(counts.iter().all(|&c| c < total), "the L1 term never lowered the count: {counts:?}");
    assert_eq!(s.layers.iter().map(|l| l.after).sum::<u64>(), s.relu_count);

    // With filling (the default) the same search ends exactly at the budget.
    cfg.fill_budget = true;
    let (_, f) = reduce(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert!(f.reached_budget && !f.forced);
    assert_eq!(f.relu_count, budget);
    assert_eq!(f.filled, budget - s.relu_count);

    // Without an L1 term and one epoch, no gate falls under 1e-2: the budget is forced by the
    // largest gates.
    cfg.snl_eta = 0.0;
    cfg.mask_epochs = 1;
    let (_, z) = reduce(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    println!("snl, no L1: {z:?}");
    assert!(z.forced && !z.reached_budget);
    assert_eq!(z.relu_count, budget);
}

#[test]
fn relu6_sites_are_masked_and_keep_their_cap() {
    // The trained baseline with every ReLU made a ReLU6 (MobileNetV2's activation).
    let (d, g, total) = setup();
    let mut g6 = g.clone();
    for n in &mut g6.nodes {
        if matches!(n.op, masq_ir::Op::Relu) {
            n.op = masq_ir::Op::Clip(masq_ir::ClipConfig { min: Some(0.0), max: Some(6.0) });
        }
    }
    // ReLU6 counts one ReLU and one clip comparison per element.
    let r6 = masq_ir::report::report(&g6).unwrap();
    assert_eq!((r6.relu_count, r6.clip_comparisons), (total, total));

    let budget = total / 4;
    let mut cfg = config(Method::AutoRep, budget, None);
    cfg.mask_epochs = 2;
    let (gr, s) = reduce(&g6, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert!(s.relu_count <= budget, "{} > budget {budget}", s.relu_count);
    assert_eq!(s.relu_before, total);
    assert!(s.accuracy > 0.3, "accuracy {} (chance 0.1)", s.accuracy);
    // Every site is a capped masked activation; the kept elements cost a ReLU and a cap each.
    let caps: Vec<Option<f32>> = gr
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            masq_ir::Op::MaskedAct(c) => Some(c.cap),
            _ => None,
        })
        .collect();
    assert!(!caps.is_empty() && caps.iter().all(|&c| c == Some(6.0)), "{caps:?}");
    let rr = masq_ir::report::report(&gr).unwrap();
    assert_eq!((rr.relu_count, rr.clip_comparisons), (s.relu_count, s.relu_count));
    // The tch model of the reduced graph scores what reduce reported.
    let m = masq_trainer::TchModel::from_graph(&gr, Device::Cpu).unwrap();
    let again = masq_trainer::train::evaluate(&m, &d.test, &DatasetKind::Synthetic.default_norm(), 100).unwrap();
    assert!((again.accuracy - s.accuracy).abs() < 1e-12);
}
