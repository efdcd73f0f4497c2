//! Training throughput (images/s) of a zoo model on random CIFAR-sized data with SGD: forward in
//! training mode, cross-entropy, backward, optimiser step. Compare with
//! `trainer/scripts/torch_throughput.py` (PyTorch eager, same model and threads).
//!
//! `cargo run --release -p masq-trainer --example throughput -- [MODEL] [BATCH] [STEPS] [THREADS]`

use std::time::Instant;

use masq_trainer::device::set_threads;
use masq_trainer::model::TchModel;
use masq_trainer::optim::{Optimizer, OptimizerKind};
use tch::{Device, Kind, Reduction, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).map_or("resnet20", String::as_str);
    let batch: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    if let Some(t) = args.get(4).and_then(|s| s.parse().ok()) {
        set_threads(t);
    }
    let g = masq_ir::zoo::build(model, None, 0).expect("zoo model");
    let m = TchModel::from_graph(&g, Device::Cpu).expect("model");
    let mut opt = Optimizer::new(OptimizerKind::sgd(), 5e-4);
    tch::manual_seed(0);
    let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [batch], (Kind::Int64, Device::Cpu));
    let mut step = || {
        let logits = m.forward(&x, true).expect("forward");
        let loss = logits.cross_entropy_loss::<Tensor>(&y, None, Reduction::Mean, -100, 0.0);
        opt.zero_grad(&m);
        loss.backward();
        opt.step(&m, 0.1).expect("step");
    };
    for _ in 0..2 {
        step();
    }
    let t0 = Instant::now();
    for _ in 0..steps {
        step();
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "masq-trainer (tch) {model} batch {batch} threads {}: {:.1} images/s ({:.3} s/step)",
        masq_trainer::device::threads(),
        (steps as f64 * batch as f64) / s,
        s / steps as f64
    );
}
