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

/// A finite number greater than 0 (`--lr`, `--grad-clip`): NaN, infinities, 0 and negatives are
/// usage errors naming the flag and the value.
pub fn positive_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number greater than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number of at least 0 (`--min-lr`, `--weight-decay`, `--warmup-epochs`).
pub fn non_negative_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number of at least 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A number in [0, 1) (`--momentum`, `--label-smoothing`).
pub fn unit_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be at least 0 and less than 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A whole number of at least 1 (`--batch-size`, `--epochs`).
pub fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
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

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_say_why() {
        assert_eq!(positive_number("0.1"), Ok(0.1));
        for bad in ["NaN", "nan", "inf", "-inf", "0", "-1"] {
            assert!(positive_number(bad).unwrap_err().contains("finite number greater than 0"), "{bad}");
        }
        assert!(positive_number("fast").is_err());
        assert_eq!(non_negative_number("0"), Ok(0.0));
        assert!(non_negative_number("NaN").is_err() && non_negative_number("-0.5").is_err());
        assert_eq!(unit_fraction("0.9"), Ok(0.9));
        assert!(unit_fraction("1").is_err() && unit_fraction("NaN").is_err());
        assert_eq!(positive_count("128"), Ok(128));
        assert!(positive_count("0").unwrap_err().contains("at least 1"));
        assert!(positive_count("-3").is_err());
    }
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
