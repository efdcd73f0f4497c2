//! Typed values of the command line. Every flag whose values form a closed or checkable set is
//! parsed by clap with these, so a bad value is a usage error naming what is accepted, before any
//! model or dataset is loaded. MODEL arguments are [`masq_exporter::ModelSpec`]s
//! (`value_parser = clap::value_parser!(ModelSpec)`).

use std::error::Error;
use std::str::FromStr;

use clap::builder::{PossibleValuesParser, TypedValueParser};

/// Exactly one of `names` (listed in `--help` and in the error), converted by the library type's
/// `FromStr`.
pub fn one_of<T>(names: impl IntoIterator<Item = &'static str>) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    PossibleValuesParser::new(names).try_map(|s: String| s.parse::<T>())
}

/// A trained model: a masq checkpoint (`.safetensors`) or an artifact directory.
#[cfg(feature = "train")]
pub fn trained_model(s: &str) -> Result<masq_exporter::ModelSpec, String> {
    use masq_exporter::ModelSpec;
    match s.parse::<ModelSpec>().map_err(|e| e.to_string())? {
        m @ (ModelSpec::Checkpoint(_) | ModelSpec::Artifact(_)) => Ok(m),
        m => Err(format!("{m} is not a trained model: give a masq checkpoint (.safetensors) or an artifact directory")),
    }
}

/// A `--remap` rule, `PATTERN=REPLACEMENT` (`^PATTERN` only at the start of a key).
pub fn key_remap(s: &str) -> Result<masq_ir::zoo::KeyRemap, String> {
    masq_ir::zoo::KeyRemap::parse(s).map_err(|e| e.to_string())
}

/// A dataset name with an optional `@SIZE` / `@HxW` (`cifar10`, `folder@64`, `tiny-imagenet@32x32`).
#[cfg(feature = "train")]
pub fn dataset(s: &str) -> Result<masq_trainer::data::DatasetKind, String> {
    masq_trainer::data::DatasetKind::parse(s).map_err(|e| e.to_string())
}

/// `auto`, `cpu`, `cuda` or `cuda:N` (a CUDA index must be visible).
#[cfg(feature = "train")]
pub fn device(s: &str) -> Result<masq_trainer::device::Device, String> {
    masq_trainer::device::parse_device(s).map_err(|e| e.to_string())
}

/// What replaces a removed ReLU in a reduction: `identity`, `poly1`, `poly2`, `dapa` or
/// `fixed:a,b,c`.
#[cfg(feature = "train")]
pub fn reduce_replacement(s: &str) -> Result<masq_trainer::reduce::ReplacementKind, String> {
    masq_trainer::reduce::ReplacementKind::parse(s).map_err(|e| e.to_string())
}

/// An AutoReP gate: `ste`, `hysteresis[:θ]` or `spgrad[:θ]`.
#[cfg(feature = "train")]
pub fn gate(s: &str) -> Result<masq_trainer::reduce::GateKind, String> {
    masq_trainer::reduce::GateKind::parse(s).map_err(|e| e.to_string())
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;

    #[test]
    fn trained_models_are_checkpoints_or_artifacts() {
        assert!(trained_model("run/best.safetensors").is_ok());
        assert!(trained_model(".").is_ok());
        assert!(trained_model("zoo:resnet20").unwrap_err().contains("not a trained model"));
        assert!(trained_model("model.pt").is_err());
    }
}
