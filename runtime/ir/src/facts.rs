//! Facts about a model besides its graph: the dataset it was trained on, its class names and the
//! input normalisation it expects. One type per fact, used by the checkpoint, the exporter's
//! manifest, the trainer's loaders and the CLI alike.

use serde::{Deserialize, Serialize};

/// Per-channel input normalisation `(x - mean) / std`, on pixel values scaled to [0, 1]. A single
/// mean and std apply to every channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalisation {
    /// ImageNet statistics (also what the akamaster CIFAR ResNets were trained with).
    pub fn imagenet() -> Self {
        Normalisation { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    /// CIFAR-10 training-set statistics.
    pub fn cifar10() -> Self {
        Normalisation { mean: vec![0.4914, 0.4822, 0.4465], std: vec![0.2470, 0.2435, 0.2616] }
    }

    /// MNIST training-set statistics.
    pub fn mnist() -> Self {
        Normalisation { mean: vec![0.1307], std: vec![0.3081] }
    }

    /// The same statistics spelled out per channel when one value stands for all of them.
    pub fn per_channel(mut self, channels: usize) -> Self {
        if self.mean.len() == 1 && self.std.len() == 1 && channels > 1 {
            self.mean = vec![self.mean[0]; channels];
            self.std = vec![self.std[0]; channels];
        }
        self
    }
}

/// CIFAR-10's class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Class names of a known dataset, in label order (empty when unknown).
pub fn dataset_classes(dataset: &str) -> Vec<String> {
    match dataset {
        "cifar10" => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        "mnist" | "fashion-mnist" | "synthetic" => (0..10).map(|d| d.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// What a model is known to expect: dataset, class names and normalisation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelFacts {
    pub dataset: Option<String>,
    pub classes: Vec<String>,
    pub normalisation: Option<Normalisation>,
}

/// The facts of a zoo model (its reference implementation's dataset and normalisation).
pub fn zoo_facts(name: &str) -> ModelFacts {
    if name == "mnist_cnn" {
        return ModelFacts {
            dataset: Some("mnist".into()),
            classes: dataset_classes("mnist"),
            normalisation: Some(Normalisation::mnist()),
        };
    }
    // The akamaster ResNet-20..56 checkpoints were trained with ImageNet statistics.
    let norm = if matches!(name, "resnet20" | "resnet32" | "resnet44" | "resnet56") {
        Normalisation::imagenet()
    } else {
        Normalisation::cifar10()
    };
    ModelFacts { dataset: Some("cifar10".into()), classes: dataset_classes("cifar10"), normalisation: Some(norm) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_spells_out_one_value() {
        let n = Normalisation { mean: vec![0.5], std: vec![0.25] }.per_channel(3);
        assert_eq!(n.mean, vec![0.5; 3]);
        assert_eq!(n.std, vec![0.25; 3]);
        assert_eq!(Normalisation::imagenet().per_channel(3), Normalisation::imagenet());
    }

    #[test]
    fn zoo_facts_name_the_reference_statistics() {
        assert_eq!(zoo_facts("resnet20").normalisation, Some(Normalisation::imagenet()));
        assert_eq!(zoo_facts("mnist_cnn").classes.len(), 10);
        assert_eq!(zoo_facts("resnet18_cifar").classes[0], "airplane");
        assert!(dataset_classes("imagenet").is_empty());
    }
}
