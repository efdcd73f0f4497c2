//! Training end to end on the built-in synthetic set: a small CNN learns; checkpoints round-trip;
//! a resumed run continues exactly where an uninterrupted one would be.

use std::path::PathBuf;

use masq_ir::checkpoint;
use masq_trainer::data::{DatasetKind, Splits, SyntheticConfig, synthetic};
use masq_trainer::model::{TchModel, to_array, to_tensor};
use masq_trainer::optim::OptimizerKind;
use masq_trainer::train::{Event, TrainConfig, evaluate, train};
use tch::Device;

fn data() -> Splits {
    synthetic(&SyntheticConfig { train: 2000, test: 500, shape: [1, 28, 28], seed: 11 })
}

fn config(out: Option<PathBuf>, epochs: usize) -> TrainConfig {
    let kind = DatasetKind::Synthetic;
    let mut cfg = TrainConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
    cfg.epochs = epochs;
    cfg.batch_size = 50;
    cfg.lr = 5e-3;
    cfg.optimizer = OptimizerKind::adam();
    cfg.weight_decay = 0.0;
    cfg.out_dir = out;
    cfg.seed = 7;
    cfg
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("masq-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn threads() {
    // Same arithmetic whatever the machine: reductions in a fixed order.
    tch::set_num_threads(1);
}

#[test]
fn small_cnn_learns_the_synthetic_set() {
    threads();
    let g = masq_ir::zoo::build("mnist_cnn", None, 1).unwrap();
    let d = data();
    let model0 = TchModel::from_graph(&g, Device::Cpu).unwrap();
    let before = evaluate(&model0, &d.test, &DatasetKind::Synthetic.default_norm(), 250).unwrap();
    let mut batches = 0;
    let (model, summary) = train(&g, &d, &config(None, 2), Device::Cpu, &mut |e| {
        if let Event::Batch { .. } = e {
            batches += 1
        }
    })
    .unwrap();
    assert_eq!(batches, 2 * 40);
    println!("synthetic: before {:.3}, after {:.3}", before.accuracy, summary.final_accuracy);
    assert!(before.accuracy < 0.3, "untrained accuracy {}", before.accuracy);
    assert!(summary.final_accuracy > 0.8, "trained accuracy {}", summary.final_accuracy);
    let again = evaluate(&model, &d.test, &DatasetKind::Synthetic.default_norm(), 100).unwrap();
    assert!((again.accuracy - summary.final_accuracy).abs() < 1e-12);
    assert_eq!(summary.relu_count, masq_ir::report::report(&g).unwrap().relu_count);
}

#[test]
fn checkpoints_round_trip_and_resume_continues_exactly() {
    threads();
    let g = masq_ir::zoo::build("mnist_cnn", None, 2).unwrap();
    let mut d = data();
    d.train.truncate(600);
    d.test.truncate(200);

    // Uninterrupted: 3 epochs.
    let full_dir = tmpdir("full");
    let (full, s_full) = train(&g, &d, &config(Some(full_dir.clone()), 3), Device::Cpu, &mut |_| {}).unwrap();
    // Interrupted after 2 of 3 epochs, then resumed.
    let part_dir = tmpdir("part");
    let mut cfg = config(Some(part_dir.clone()), 3);
    cfg.stop_after_epoch = Some(2);
    let (_, s_part) = train(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(s_part.epochs, 2);
    let mut cfg = config(Some(part_dir.clone()), 3);
    cfg.resume = true;
    let mut starts = vec![];
    let (resumed, s_res) = train(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let Event::Start { start_epoch, .. } = e {
            starts.push(*start_epoch)
        }
    })
    .unwrap();
    assert_eq!(starts, vec![3]);
    let (a, b) = (full.to_graph().unwrap(), resumed.to_graph().unwrap());
    for (name, t) in &a.initializers {
        let u = &b.initializers[name];
        let diff = t.iter().zip(u.iter()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "{name} differs by {diff} after resume");
    }
    assert!((s_full.final_accuracy - s_res.final_accuracy).abs() < 1e-9);

    // The last checkpoint holds the trained model: same graph, same outputs, facts filled in.
    let last = s_full.last_checkpoint.clone().unwrap();
    let (g2, facts) = checkpoint::load_checkpoint(&last).unwrap();
    assert_eq!(g2.nodes, g.nodes);
    assert_eq!(facts.epoch, Some(3));
    assert_eq!(facts.dataset.as_deref(), Some("synthetic"));
    assert_eq!(facts.accuracy, Some(s_full.final_accuracy));
    assert_eq!(facts.relu_count, Some(s_full.relu_count));
    let reloaded = TchModel::from_graph(&g2, Device::Cpu).unwrap();
    let x = to_tensor(&ndarray::ArrayD::from_elem(vec![2, 1, 28, 28], 0.3f32), Device::Cpu);
    let y1 = to_array(&full.forward(&x, false).unwrap()).unwrap();
    let y2 = to_array(&reloaded.forward(&x, false).unwrap()).unwrap();
    assert_eq!(y1, y2);
    // The best checkpoint exists and loads; the log has a start line and one line per epoch.
    assert!(checkpoint::load_checkpoint(s_full.best_checkpoint.unwrap()).is_ok());
    let log = std::fs::read_to_string(s_full.log.unwrap()).unwrap();
    assert_eq!(log.lines().count(), 4);
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    // No temporary files left behind.
    for dir in [&full_dir, &part_dir] {
        for e in std::fs::read_dir(dir).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!n.contains(".tmp"), "leftover {n}");
        }
    }
    // Resuming with another model is refused.
    let other = masq_ir::zoo::build("resnet20", None, 0).unwrap();
    let mut cfg = config(Some(part_dir.clone()), 4);
    cfg.resume = true;
    assert!(train(&other, &d, &cfg, Device::Cpu, &mut |_| {}).is_err());
    std::fs::remove_dir_all(&full_dir).unwrap();
    std::fs::remove_dir_all(&part_dir).unwrap();
}

#[test]
fn a_model_that_does_not_fit_the_data_is_refused() {
    let g = masq_ir::zoo::build("resnet20", None, 0).unwrap();
    let d = data();
    let e = train(&g, &d, &config(None, 1), Device::Cpu, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("does not fit"), "{e}");
}
