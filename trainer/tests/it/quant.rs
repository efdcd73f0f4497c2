//! Linear quantization (masq_trainer::quant, docs/ALGORITHMS.md §7): calibration ranges against a
//! hand computation, the quantized graph's invariants, straight-through finetuning that keeps
//! the weights on their grids, and the accuracy cost at 8 bits on a briefly trained cnn_small.

use masq_ir::quant::{act_sites, sf_for};
use masq_ir::{Graph, Op};
use masq_trainer::data::{DatasetKind, Splits, SyntheticConfig, synthetic};
use masq_trainer::optim::OptimizerKind;
use masq_trainer::quant::{QuantizeConfig, QuantizeEvent, calibrate, quantize};
use masq_trainer::train::{TrainConfig, train};
use tch::Device;

fn data() -> Splits {
    let mut d = synthetic(&SyntheticConfig { train: 640, test: 200, shape: [3, 32, 32], seed: 31 });
    d.test.truncate(200);
    d
}

fn quick_train(graph: &Graph, d: &Splits, epochs: usize) -> Graph {
    let kind = DatasetKind::Synthetic;
    let mut t = TrainConfig::new(kind.name(), kind.default_norm(), kind.default_augment());
    t.epochs = epochs;
    t.batch_size = 32;
    t.lr = 5e-3;
    t.optimizer = OptimizerKind::adam();
    t.weight_decay = 0.0;
    t.eval_batch_size = 200;
    t.seed = 3;
    let (m, _) = train(graph, d, &t, Device::Cpu, &mut |_| {}).unwrap();
    m.to_graph().unwrap()
}

#[test]
fn first_site_range_is_the_largest_normalised_input() {
    let d = data();
    let g = masq_ir::zoo::build("cnn_small", None, 1).unwrap();
    let norm = DatasetKind::Synthetic.default_norm();
    let ranges = calibrate(&g, &d.train, &norm, 3, 16, Device::Cpu).unwrap();
    let sites = act_sites(&g);
    assert_eq!(ranges.len(), sites.len());
    let first = &ranges[&sites[0].layer];
    assert_eq!(first.passes, 3);
    // The first 48 images, normalised by hand.
    let plane = 32 * 32;
    let c = norm.mean.len();
    let mut want = 0f32;
    for (i, &b) in d.train.images[..48 * 3 * plane].iter().enumerate() {
        let ch = if c == 1 { 0 } else { (i / plane) % 3 };
        let v = (f32::from(b) / 255.0 - norm.mean[ch]) / norm.std[ch];
        want = want.max(v.abs());
    }
    assert!((first.max_abs - want).abs() <= 1e-5 * want.max(1.0), "{} vs {want}", first.max_abs);
    // More passes never shrink a range.
    let more = calibrate(&g, &d.train, &norm, 6, 16, Device::Cpu).unwrap();
    for (k, r) in &ranges {
        assert!(more[k].max_abs >= r.max_abs, "{k}");
    }
    assert!(calibrate(&g, &d.train, &norm, 0, 16, Device::Cpu).is_err());
}

#[test]
fn eight_bits_cost_little_and_finetuning_stays_on_the_grid() {
    let d = data();
    let g = quick_train(&masq_ir::zoo::build("cnn_small", None, 2).unwrap(), &d, 2);
    let norm = DatasetKind::Synthetic.default_norm();
    let mut cfg = QuantizeConfig::new(vec![8], norm.clone());
    cfg.calib_batches = 4;
    cfg.calib_batch_size = 32;
    let mut stages = Vec::new();
    let (q, s) = quantize(&g, &d, &cfg, Device::Cpu, &mut |e| {
        if let QuantizeEvent::Evaluated { stage, .. } = e {
            stages.push(*stage);
        }
    })
    .unwrap();
    assert_eq!(stages, ["float", "weights", "quantized"]);
    assert!(s.accuracy_float > 0.5, "the quick model learned nothing: {}", s.accuracy_float);
    assert!(
        (s.accuracy_float - s.accuracy_quantized).abs() <= 0.03,
        "8 bits moved top-1 from {} to {}",
        s.accuracy_float,
        s.accuracy_quantized
    );
    // Every layer: weight grid recorded and honoured, a FakeQuant in front with §7's sf.
    q.check_weight_quant().unwrap();
    assert_eq!(q.weight_quant.len(), 4);
    assert_eq!(s.activations.len(), 4);
    for a in &s.activations {
        assert_eq!(a.sf, sf_for(a.max_abs, 8));
        let fq = q.nodes.iter().find(|n| n.name == format!("{}.act_quant", a.layer)).unwrap();
        let Op::FakeQuant(p) = fq.op else { panic!("{} is not a FakeQuant", fq.name) };
        assert_eq!(p.scale, 2f32.powi(-a.sf));
        assert!(p.max_abs() + p.scale >= a.max_abs, "{}: clamp below the calibrated range", a.layer);
    }
    for w in &s.weights {
        assert!(w.max_error <= 2f32.powi(-w.sf) / 2.0 + 1e-7, "{}", w.weight);
    }
    // Quantizing twice is refused.
    assert!(quantize(&q, &d, &cfg, Device::Cpu, &mut |_| {}).is_err());

    // A short straight-through finetune moves the weights, and they stay on their grids.
    let kind = DatasetKind::Synthetic;
    let mut t = TrainConfig::new(kind.name(), norm, kind.default_augment());
    t.epochs = 1;
    t.batch_size = 32;
    t.lr = 1e-2;
    t.optimizer = OptimizerKind::adam();
    t.weight_decay = 0.0;
    t.max_batches = Some(6);
    t.eval_batch_size = 200;
    cfg.finetune = Some(t);
    let (f, s2) = quantize(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    f.check_weight_quant().unwrap();
    assert!(s2.accuracy_finetuned.is_some());
    let w = &q.weight_quant.keys().next().unwrap().clone();
    let moved = q.initializers[w].iter().zip(f.initializers[w].iter()).filter(|(a, b)| a != b).count();
    assert!(moved > 0, "the finetune did not change {w}");
}

#[test]
fn widths_must_fit_the_layers() {
    let d = data();
    let g = masq_ir::zoo::build("cnn_small", None, 2).unwrap();
    let norm = DatasetKind::Synthetic.default_norm();
    for bits in [vec![8, 8], vec![1], vec![17]] {
        let cfg = QuantizeConfig::new(bits.clone(), norm.clone());
        let e = quantize(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("bits"), "{bits:?}: {e}");
    }
    // Mixed widths, one per layer, land where asked.
    let mut cfg = QuantizeConfig::new(vec![9, 8, 6, 8], norm);
    cfg.calib_batches = 1;
    let (q, s) = quantize(&g, &d, &cfg, Device::Cpu, &mut |_| {}).unwrap();
    let widths: Vec<u32> = s.weights.iter().map(|w| w.bits).collect();
    assert_eq!(widths, [9, 8, 6, 8]);
    assert_eq!(q.weight_quant["conv3.weight"].qmin, -32);
}
