//! The one model loader: what a user may name as a model on any command.
//!
//! - `zoo:NAME[@HxW]`: a zoo network with seeded random weights (seed 0);
//! - `PATH.onnx`: any ONNX file (e.g. exported from PyTorch);
//! - `PATH.safetensors`: a masq checkpoint (`masq train`, `masq reduce`, `masq load-weights`);
//! - `DIR`: an artifact directory written by `masq export`.
//!
//! [`ModelSpec`] implements `FromStr`, so the CLI parses it with the arguments (a malformed spec
//! is a usage error before any work starts); [`ModelSpec::load`] reads the model.
//!
//! ```
//! use masq_exporter::ModelSpec;
//! let spec: ModelSpec = "zoo:resnet20".parse().unwrap();
//! assert_eq!(spec.load().unwrap().nodes.len(), masq_ir::zoo::build("resnet20", None, 0).unwrap().nodes.len());
//! assert!("model.pt".parse::<ModelSpec>().is_err());
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use masq_ir::checkpoint::{self, Facts};
use masq_ir::zoo::ZooSpec;
use masq_ir::{Graph, IrError, Result};

use crate::artifact::{self, Manifest};

/// A model named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// `zoo:NAME[@HxW]`.
    Zoo(ZooSpec),
    /// An `.onnx` file.
    Onnx(PathBuf),
    /// A masq checkpoint (`.safetensors`).
    Checkpoint(PathBuf),
    /// An artifact directory.
    Artifact(PathBuf),
}

/// A loaded model with whatever its file records besides the graph.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub graph: Graph,
    /// The checkpoint's facts (checkpoints only).
    pub facts: Option<Facts>,
    /// The artifact's manifest (artifact directories only).
    pub manifest: Option<Manifest>,
}

impl FromStr for ModelSpec {
    type Err = IrError;

    fn from_str(spec: &str) -> Result<Self> {
        if spec.starts_with("zoo:") {
            return ZooSpec::parse(spec).map(ModelSpec::Zoo);
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelSpec::Artifact(path.to_path_buf()));
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("onnx") => Ok(ModelSpec::Onnx(path.to_path_buf())),
            Some(e) if e.eq_ignore_ascii_case("safetensors") => Ok(ModelSpec::Checkpoint(path.to_path_buf())),
            _ => Err(IrError::BadSpec {
                spec: spec.to_string(),
                reason: "expected zoo:NAME[@HxW], a path ending in .onnx or .safetensors, or an artifact directory"
                    .to_string(),
            }),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Zoo(z) => {
                write!(f, "zoo:{}", z.name)?;
                match z.input_hw {
                    Some((h, w)) => write!(f, "@{h}x{w}"),
                    None => Ok(()),
                }
            }
            ModelSpec::Onnx(p) | ModelSpec::Checkpoint(p) | ModelSpec::Artifact(p) => write!(f, "{}", p.display()),
        }
    }
}

impl ModelSpec {
    /// The zoo model's name, for `zoo:` specs.
    pub fn zoo_name(&self) -> Option<&str> {
        match self {
            ModelSpec::Zoo(z) => Some(&z.name),
            _ => None,
        }
    }

    /// The ONNX file this model is or contains (an `.onnx` path, or an artifact's `model.onnx`).
    pub fn onnx_file(&self) -> Option<PathBuf> {
        match self {
            ModelSpec::Onnx(p) => Some(p.clone()),
            ModelSpec::Artifact(d) => Some(d.join(artifact::MODEL_ONNX)),
            _ => None,
        }
    }

    /// Load the graph.
    pub fn load(&self) -> Result<Graph> {
        self.load_with_facts().map(|m| m.graph)
    }

    /// Load the graph with the checkpoint's facts or the artifact's manifest.
    pub fn load_with_facts(&self) -> Result<LoadedModel> {
        let plain = |graph| LoadedModel { graph, facts: None, manifest: None };
        match self {
            ModelSpec::Zoo(z) => masq_ir::zoo::build(&z.name, z.input_hw, 0).map(plain),
            ModelSpec::Onnx(p) => masq_onnx::import_file(p).map(plain),
            ModelSpec::Checkpoint(p) => {
                let (graph, facts) = checkpoint::load_checkpoint(p)?;
                Ok(LoadedModel { graph, facts: Some(facts), manifest: None })
            }
            ModelSpec::Artifact(d) => {
                let (graph, manifest) = artifact::load_artifact(d)?;
                Ok(LoadedModel { graph, facts: None, manifest: Some(manifest) })
            }
        }
    }
}

/// Parse and load a model spec in one step (see [`ModelSpec`]).
pub fn load_model(spec: &str) -> Result<Graph> {
    spec.parse::<ModelSpec>()?.load()
}
