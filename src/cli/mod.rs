//! Subcommands, one file (or directory) each: each has its own `Args` and `run()`. They share only
//! [`common`] (argument parsers, model loading, JSON Lines, progress, units), never each other.

use clap::{Parser, Subcommand};

mod bench;
#[cfg(feature = "train")]
mod calibrate;
mod cifar_npy;
mod common;
mod deal;
mod dealer;
#[cfg(feature = "train")]
mod demo;
mod estimate;
#[cfg(feature = "train")]
mod eval;
mod export;
mod inspect;
mod keygen;
mod load_weights;
#[cfg(feature = "train")]
mod prune;
#[cfg(feature = "train")]
mod quantize;
mod query;
#[cfg(feature = "train")]
mod reduce;
mod relay;
mod run;
mod serve;
#[cfg(feature = "train")]
mod train;

/// masq: train few-ReLU networks, export them, and run them under two-party secure computation.
///
/// In two-party computation (2PC) every ReLU costs a secure comparison while linear layers are
/// nearly free, so the ReLU count is the currency of private inference.
///
/// MODEL is zoo:NAME[@HxW], a .onnx file, a masq checkpoint (.safetensors) or an artifact
/// directory, wherever a command takes one. With --json, a command prints JSON Lines on stdout (one
/// object per line); the last line is the result.
#[derive(Debug, Parser)]
#[command(name = "masq", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmarks (`masq bench mpc --op relu --n 100000`).
    Bench(bench::BenchArgs),
    /// Parameters, MACs and ReLUs of a model, per layer and in total (MODEL: zoo:NAME[@HxW], e.g.
    /// zoo:resnet20 or zoo:wrn22_8@64x64, a .onnx file, a masq checkpoint or an artifact directory).
    Inspect(inspect::InspectArgs),
    /// Evaluate a model on an input batch, in the clear or under 2PC, with a per-layer cost report
    /// (`masq run zoo:resnet20 --input x.npy --mode mpc`).
    Run(run::RunArgs),
    /// Estimate one inference's communication under masq or a published protocol, without running
    /// (`masq estimate zoo:resnet20 --protocol crypten --network wan`).
    Estimate(estimate::EstimateArgs),
    /// Write a deployable artifact directory (model.onnx, model.safetensors, manifest.json) from a
    /// .onnx file, zoo:NAME or a checkpoint (`masq export --from zoo:resnet20 --out art/`).
    Export(export::ExportArgs),
    /// Train a model on a dataset with libtorch (`masq train --model zoo:resnet20 --dataset cifar10 --data DIR`).
    #[cfg(feature = "train")]
    Train(Box<train::TrainArgs>),
    /// Cut a trained model's ReLUs to a budget (AutoReP, SNL, random)
    /// (`masq reduce --from ckpt.safetensors --dataset cifar10 --data DIR --relu-budget 25000`).
    #[cfg(feature = "train")]
    Reduce(Box<reduce::ReduceArgs>),
    /// Remove whole conv filters (Rotated ReLU, simulated annealing, magnitude, magnitude-sign,
    /// SNIP, random) and shrink the graph
    /// (`masq prune --from ckpt.safetensors --dataset cifar10 --data DIR --method mag --filter-sparsity 0.5`).
    #[cfg(feature = "train")]
    Prune(Box<prune::PruneArgs>),
    /// Quantize a trained model's weights and activations to b bits, layer by layer (calibrated
    /// on the training split, optionally finetuned); exports as ONNX QDQ
    /// (`masq quantize --from ckpt.safetensors --dataset cifar10 --data DIR --bits 8 --out DIR`).
    #[cfg(feature = "train")]
    Quantize(Box<quantize::QuantizeArgs>),
    /// The whole path in one command: train a small CNN, cut its ReLUs to three budgets (AutoReP and
    /// random), export each, evaluate in the clear and under 2PC, and write a table, JSON and plots
    /// (`masq demo --out masq-demo`).
    #[cfg(feature = "train")]
    Demo(Box<demo::DemoArgs>),
    /// Per-layer comparison widths calibrated on a dataset: probe the lowering in the clear, choose
    /// each layer's bits, check overflow on held-out images, write the widened model
    /// (`masq calibrate zoo:resnet20 --weights W --dataset cifar10 --data DIR -o art/`).
    #[cfg(feature = "train")]
    Calibrate(Box<calibrate::CalibrateArgs>),
    /// Top-1 accuracy of a checkpoint, or of a model with given weights, on a test split.
    #[cfg(feature = "train")]
    Eval(eval::EvalArgs),
    /// Load a safetensors state dict into a zoo model (keys renamed by --remap) and write a masq checkpoint
    /// (`masq load-weights --model zoo:resnet20 --weights resnet20.safetensors --out resnet20.ckpt.safetensors`).
    LoadWeights(load_weights::LoadWeightsArgs),
    /// The trusted dealer's offline phase for K encrypted inferences: writes DIR/p0.bin (server)
    /// and DIR/p1.bin (client) (`masq deal --model zoo:resnet20 --count 4 --out deal/`).
    Deal(deal::DealArgs),
    /// The trusted dealer as a service: deals each inference when a server opens it and streams
    /// each party its own half (`masq dealer --model zoo:resnet20 --state dealer/ --listen 0.0.0.0:7100`).
    Dealer(dealer::DealerArgs),
    /// Make the keys of encrypted, authenticated channels (TLS): a project CA and a certificate
    /// and key per role, for `--tls DIR` of serve, query and dealer (`masq keygen --out keys/`).
    Keygen(keygen::KeygenArgs),
    /// Serve encrypted inference as the model owner, P0
    /// (`masq serve --model zoo:resnet20 --preprocessing deal/p0.bin --listen 127.0.0.1:7000`).
    Serve(serve::ServeArgs),
    /// Run one encrypted inference as the client, P1
    /// (`masq query --connect 127.0.0.1:7000 --preprocessing deal/p1.bin --input x.npy`).
    Query(query::QueryArgs),
    /// Forward TCP connections with a network profile's delay and bandwidth, to measure LAN/WAN
    /// latency on one machine (`masq relay --listen 127.0.0.1:7001 --to 127.0.0.1:7000 --network wan`).
    Relay(relay::RelayArgs),
    /// Extract CIFAR-10 test images (binary format, optionally gzipped) as a normalised .npy (demo helper).
    #[command(hide = true)]
    CifarNpy(cifar_npy::CifarNpyArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(a) => bench::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Run(a) => run::run(a),
        Command::Estimate(a) => estimate::run(a),
        Command::Export(a) => export::run(a),
        #[cfg(feature = "train")]
        Command::Train(a) => train::run(*a),
        #[cfg(feature = "train")]
        Command::Eval(a) => eval::run(a),
        #[cfg(feature = "train")]
        Command::Calibrate(a) => calibrate::run(*a),
        #[cfg(feature = "train")]
        Command::Demo(a) => demo::run(*a),
        #[cfg(feature = "train")]
        Command::Reduce(a) => reduce::run(*a),
        #[cfg(feature = "train")]
        Command::Prune(a) => prune::run(*a),
        #[cfg(feature = "train")]
        Command::Quantize(a) => quantize::run(*a),
        Command::LoadWeights(a) => load_weights::run(a),
        Command::Deal(a) => deal::run(a),
        Command::Dealer(a) => dealer::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Query(a) => query::run(a),
        Command::Relay(a) => relay::run(a),
        Command::CifarNpy(a) => cifar_npy::run(a),
    }
}
