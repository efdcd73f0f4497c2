//! `masq prune`: remove whole conv filters (Rotated ReLU, simulated annealing, magnitude,
//! magnitude-sign, SNIP, random; docs/ALGORITHMS.md §6, §8), shrink the graph with the IR's
//! surgery pass and write the smaller model as a checkpoint (`DIR/pruned.safetensors`); or zero
//! single weights (reweighted L1, unstructured magnitude with `--weight-sparsity`/`--threshold`;
//! §7, `sparse.rs`), which keeps the graph's structure.

mod costs;
mod run;
mod sparse;

use std::path::PathBuf;

use masq_exporter::ModelSpec;
use masq_trainer::data::DatasetKind;

use super::common::args;
use super::common::training::TrainEnv;

pub use run::run;

/// `--lr` of the filter methods and rrelu (SGD).
const DEFAULT_LR: f64 = 0.1;
/// `--batch-size` of the filter methods and rrelu.
const DEFAULT_BATCH: usize = 128;

/// How the dead filters are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Rotated ReLU: train a slope per channel (y = a·ReLU(x)), remove channels with |a| ≤ ζ,
    /// fold the other slopes into the next layer.
    Rrelu,
    /// Simulated annealing over the filter mask, objective = validation top-1 at the rewind weights.
    Sa,
    /// Structured magnitude: the filters with the smallest L1 norm of their final weights.
    Mag,
    /// Magnitude-sign: Σ|w| over the weights whose final sign equals their initial sign.
    Magsign,
    /// SNIP: |∂L/∂w ⊙ w| at the starting weights on one batch, summed per filter.
    Snip,
    /// Uniformly random filters (the floor every method must beat).
    Random,
    /// Reweighted L1 (unstructured): Adam on CE + α·Σ_conv|W|/(|W_old|+ε) for --train-epochs,
    /// zero the small weights (--threshold or --weight-sparsity), retrain with the zeros fixed.
    #[value(name = "reweighted-l1")]
    ReweightedL1,
}

/// Where the lowest scores are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeArg {
    /// ⌊S·F⌋ filters of every conv (--weight-sparsity: ⌊S·N⌋ weights of every tensor).
    Layer,
    /// ⌊S·ΣF⌋ filters over all convs, scores compared across layers (--weight-sparsity: ⌊S·N⌋
    /// of all Conv and Gemm weights).
    Global,
}

/// Arguments of `masq prune`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("weight_target").args(["weight_sparsity", "threshold"]).multiple(false)))]
#[command(after_help = "Examples:\n  \
    masq prune --from zoo:cnn4 --dataset synthetic --method mag --filter-sparsity 0.5 --epochs 2 --out runs/p\n  \
    masq prune --from zoo:resnet20 --weights resnet20.safetensors --dataset cifar10 --data DIR \\\n      \
    --method rrelu --slope-init ones --l1 1e-4 --epochs 10 --out runs/r20-rrelu --json\n  \
    masq prune --from zoo:cnn_small --weights w.safetensors --dataset cifar10 --method reweighted-l1 \\\n      \
    --weight-sparsity 0.8 --train-epochs 30 --epochs 30 --out runs/rl1\n\n\
    The pruned checkpoint works with every other command: masq reduce --from DIR/pruned.safetensors, \
    masq export, masq run --mode mpc.")]
pub struct PruneArgs {
    /// The model: a masq checkpoint (its normalisation is used), an artifact directory, a .onnx
    /// file or zoo:NAME (built for the dataset; with --weights).
    #[arg(long, value_name = "MODEL", value_parser = clap::value_parser!(ModelSpec))]
    pub from: ModelSpec,
    /// Weights for the model (safetensors, e.g. a PyTorch state dict; `module.` is stripped).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cifar10 | cifar100 | mnist | fashion-mnist | tiny-imagenet | folder | synthetic.
    #[arg(long, value_name = "DATASET", value_parser = args::dataset)]
    pub dataset: DatasetKind,
    /// Directory of the dataset's files (or a parent holding e.g. cifar10/).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, ignore_case = true, requires_if("reweighted-l1", "weight_target"))]
    pub method: MethodArg,
    /// Fraction of the filters to remove, in [0, 1). For rrelu: the ζ that removes this fraction
    /// of the slope sites' channels.
    #[arg(long, value_name = "S", conflicts_with_all = ["zeta", "weight_sparsity", "threshold"])]
    pub filter_sparsity: Option<f64>,
    /// reweighted-l1, mag: unstructured pruning that zeroes exactly ⌊S·N⌋ of the N Conv and Gemm
    /// weights, the smallest |w| (global, or per tensor with --scope layer).
    #[arg(long, value_name = "S")]
    pub weight_sparsity: Option<f64>,
    /// reweighted-l1, mag: unstructured pruning that zeroes every Conv and Gemm weight with
    /// |w| < T (the reweighted-L1 specification uses 1e-4).
    #[arg(long, value_name = "T")]
    pub threshold: Option<f32>,
    /// reweighted-l1: penalty strength α.
    #[arg(long, default_value_t = masq_trainer::prune::sparse::DEFAULT_ALPHA)]
    pub alpha: f64,
    /// reweighted-l1: ε of the reweighting P = 1/(|W_old| + ε).
    #[arg(long, default_value_t = masq_trainer::prune::sparse::DEFAULT_EPSILON)]
    pub epsilon: f64,
    /// rrelu only: remove the channels with |a| ≤ ζ (default: the largest ζ whose validation
    /// accuracy stays within --tolerance of the unthresholded one).
    #[arg(long, value_name = "Z")]
    pub zeta: Option<f32>,
    /// rrelu: the validation rule's tolerance in accuracy points.
    #[arg(long, default_value_t = masq_trainer::prune::rrelu::DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    /// mag/magsign/snip/random, reweighted-l1: per-layer or global selection (default: layer for
    /// --filter-sparsity, global for --weight-sparsity).
    #[arg(long, value_enum, ignore_case = true)]
    pub scope: Option<ScopeArg>,
    /// Also score convs whose filters cannot be removed on their own (e.g. tied by residual
    /// additions); those stay with zero weights.
    #[arg(long)]
    pub all_convs: bool,
    /// rrelu: epochs of training with the slopes. Other methods: retraining epochs after the
    /// surgery or, unstructured, with the zeros fixed (0: none).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// sa/mag/magsign/snip/random: epochs of training before scoring (magsign needs ≥ 1).
    /// reweighted-l1: epochs of the penalised phase (≥ 1); unstructured mag: plain Adam on the
    /// same schedule.
    #[arg(long, default_value_t = 0)]
    pub train_epochs: usize,
    /// sa/mag/magsign/snip/random: the weights the pruned network restarts from: init, final or
    /// epoch:K.
    #[arg(long, default_value = "init", value_parser = rewind)]
    pub rewind: masq_trainer::prune::Rewind,
    /// rrelu: epochs of training the pruned network.
    #[arg(long, default_value_t = 0)]
    pub finetune_epochs: usize,
    /// rrelu: slope initialisation: random (random sign, |a| in [tan 35°, tan 55°]) or ones (for
    /// a start from trained weights: the slope graph computes what the model does).
    #[arg(long, value_enum, ignore_case = true, default_value_t = SlopeInitArg::Random)]
    pub slope_init: SlopeInitArg,
    /// rrelu: L1 push on the slopes, grad_a += S·sign(a) (the seed uses 1e-4).
    #[arg(long, value_name = "S")]
    pub l1: Option<f64>,
    /// rrelu: what ζ is compared with: absolute (|a|, the specification) or site (|a| over the
    /// mean |a| of its ReLU's channels; a BatchNorm after the next conv lets a site's slopes
    /// shrink together for free, so raw |a| compares sites' scales more than channels).
    #[arg(long, value_enum, ignore_case = true, default_value_t = RankingArg::Absolute)]
    pub slope_ranking: RankingArg,
    /// rrelu, reweighted-l1, unstructured mag: distil from the starting model in every training
    /// stage (CE + T²·KL, T = --kd-temperature).
    #[arg(long)]
    pub distill: bool,
    /// With --distill: the distillation temperature.
    #[arg(long, value_name = "T", default_value_t = 4.0, requires = "distill")]
    pub kd_temperature: f64,
    /// rrelu: two-step variant: train the slopes alone for N epochs, threshold and freeze them,
    /// then the weights for --epochs.
    #[arg(long, value_name = "N")]
    pub two_step: Option<usize>,
    /// Images held out of the training split for validation (rrelu's ζ, sa's objective);
    /// default: 10% (rrelu) or --sa-batches × 256 (sa).
    #[arg(long, value_name = "N")]
    pub val_images: Option<usize>,
    /// sa: temperatures to run (the spec's schedule has 1000).
    #[arg(long, default_value_t = 1000)]
    pub sa_temperatures: usize,
    /// sa: validation batches of 256 per objective evaluation.
    #[arg(long, default_value_t = 1)]
    pub sa_batches: usize,
    /// snip: images in the batch the sensitivity is taken on.
    #[arg(long, default_value_t = 128)]
    pub snip_images: usize,
    /// SGD peak learning rate (cosine to 0) of every training stage [default: 0.1].
    /// Unstructured (reweighted-l1, mag with --weight-sparsity/--threshold): Adam's rate of both
    /// phases [default: 1e-3; the retrain warms up from a tenth of it].
    #[arg(long)]
    pub lr: Option<f64>,
    /// rrelu's finetune learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub finetune_lr: f64,
    /// Weight decay (rrelu: slopes included).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Linear warm-up epochs of each training stage (not unstructured pruning, whose retrain has
    /// its own warm-up).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f64,
    /// Training batch size [default: 128; unstructured: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// No training augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Output directory (pruned.safetensors); default runs/prune-<method>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub env: TrainEnv,
    /// Print JSON Lines: one line per epoch (and per SA temperature); the last line is the
    /// result (accuracies, per-conv channels or per-layer weight sparsity, counts and 2PC costs
    /// before/after, checkpoint).
    #[arg(long)]
    pub json: bool,
}

/// `--slope-ranking` of `--method rrelu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RankingArg {
    Absolute,
    Site,
}

/// Slope initialisation of `--method rrelu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SlopeInitArg {
    Random,
    Ones,
}

fn rewind(s: &str) -> Result<masq_trainer::prune::Rewind, String> {
    masq_trainer::prune::Rewind::parse(s).map_err(|e| e.to_string())
}
