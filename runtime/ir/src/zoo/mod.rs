//! The model zoo: IR graphs of well-known networks with seeded random or given weights.
//!
//! Names pin the ReLU convention (docs/ALGORITHMS.md §9, §11): `resnet18_cifar`, `resnet18_in`,
//! `resnet18_small`, `resnet20`/`32`/`44`/`56`, `wrn22_8`, `wrn16_4`, `wrn40_4`, `vgg16_cifar`,
//! `mnist_cnn`, `cnn_small`, `cnn4`, `mobilenetv2_cifar`, and one transformer, `vit_cifar` (no ReLU:
//! LayerNorm, Softmax and Gelu). Parameter names follow the PyTorch reference implementations
//! (for `resnet20`..`56`: the akamaster checkpoint keys without `module.`; for `vit_cifar` timm's,
//! with MatMul weights stored `[in, out]`), so checkpoints load with [`apply_weights`].
//!
//! ```
//! use masq_ir::zoo;
//! let spec = zoo::ZooSpec::parse("wrn22_8@64x64").unwrap();
//! assert_eq!(spec.input_hw, Some((64, 64)));
//! let g = zoo::build("resnet20", None, 7).unwrap();
//! assert_eq!(masq_ir::report::report(&g).unwrap().relu_count, 188_416);
//! ```

mod builder;
mod cnn4;
mod cnn_small;
mod mnist;
mod mobilenetv2;
mod resnet18;
mod resnet_cifar;
mod vgg;
mod vit;
mod wrn;

use std::collections::BTreeMap;

use ndarray::ArrayD;

pub(crate) use builder::Builder;

use crate::Graph;
use crate::error::{IrError, Result};

/// Every zoo name, with its default input (channels, height, width).
pub const MODELS: &[(&str, (usize, usize, usize))] = &[
    ("resnet18_cifar", (3, 32, 32)),
    ("resnet18_in", (3, 32, 32)),
    ("resnet18_small", (3, 32, 32)),
    ("resnet20", (3, 32, 32)),
    ("resnet32", (3, 32, 32)),
    ("resnet44", (3, 32, 32)),
    ("resnet56", (3, 32, 32)),
    ("wrn22_8", (3, 32, 32)),
    ("wrn16_4", (3, 32, 32)),
    ("wrn40_4", (3, 32, 32)),
    ("vgg16_cifar", (3, 32, 32)),
    ("mnist_cnn", (1, 28, 28)),
    ("cnn_small", (3, 32, 32)),
    ("cnn4", (3, 32, 32)),
    ("mobilenetv2_cifar", (3, 32, 32)),
    ("vit_cifar", (3, 32, 32)),
];

/// A parsed `NAME[@HxW]` (the part after `zoo:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooSpec {
    pub name: String,
    pub input_hw: Option<(usize, usize)>,
}

impl ZooSpec {
    /// Parse `NAME`, `NAME@HxW` or `NAME@S` (square); a leading `zoo:` is accepted.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: &str| IrError::BadSpec { spec: spec.to_string(), reason: reason.to_string() };
        let body = spec.strip_prefix("zoo:").unwrap_or(spec);
        let (name, size) = match body.split_once('@') {
            Some((n, s)) => (n, Some(s)),
            None => (body, None),
        };
        if !MODELS.iter().any(|(m, _)| *m == name) {
            let known: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
            return Err(bad(&format!("unknown zoo model {name:?}; known: {}", known.join(", "))));
        }
        let input_hw = match size {
            None => None,
            Some(s) => {
                let (h, w) = s.split_once(['x', 'X']).unwrap_or((s, s));
                let h: usize = h.trim().parse().map_err(|_| bad("input size must be HxW, e.g. 64x64"))?;
                let w: usize = w.trim().parse().map_err(|_| bad("input size must be HxW, e.g. 64x64"))?;
                if h == 0 || w == 0 || h > 4096 || w > 4096 {
                    return Err(bad("input size must be between 1 and 4096"));
                }
                Some((h, w))
            }
        };
        Ok(ZooSpec { name: name.to_string(), input_hw })
    }
}

/// Options for a zoo build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooConfig {
    pub name: String,
    /// Input channels, height and width; `None` takes the model's default.
    pub input: Option<(usize, usize, usize)>,
    pub num_classes: usize,
    /// Seed of the random weights.
    pub seed: u64,
}

impl ZooConfig {
    pub fn new(name: &str) -> Self {
        ZooConfig { name: name.to_string(), input: None, num_classes: 10, seed: 0 }
    }
}

/// Build a zoo model with seeded random weights; `hw` overrides the input height and width.
pub fn build(name: &str, hw: Option<(usize, usize)>, seed: u64) -> Result<Graph> {
    let mut cfg = ZooConfig::new(name);
    cfg.seed = seed;
    if let Some((h, w)) = hw {
        let c = MODELS.iter().find(|(m, _)| *m == name).map(|(_, (c, _, _))| *c).unwrap_or(3);
        cfg.input = Some((c, h, w));
    }
    build_with(&cfg)
}

/// Build a zoo model from a full configuration.
pub fn build_with(cfg: &ZooConfig) -> Result<Graph> {
    let Some((_, default)) = MODELS.iter().find(|(m, _)| *m == cfg.name) else {
        return Err(IrError::BadSpec { spec: cfg.name.clone(), reason: "unknown zoo model".into() });
    };
    let input = cfg.input.unwrap_or(*default);
    let mut b = Builder::new(&cfg.name, input, cfg.seed);
    let k = cfg.num_classes;
    match cfg.name.as_str() {
        "resnet18_cifar" => resnet18::build(&mut b, resnet18::Stem::Relu, k)?,
        "resnet18_in" => resnet18::build(&mut b, resnet18::Stem::NoRelu, k)?,
        "resnet18_small" => resnet18::build(&mut b, resnet18::Stem::ReluMaxPool, k)?,
        "resnet20" => resnet_cifar::build(&mut b, 3, k)?,
        "resnet32" => resnet_cifar::build(&mut b, 5, k)?,
        "resnet44" => resnet_cifar::build(&mut b, 7, k)?,
        "resnet56" => resnet_cifar::build(&mut b, 9, k)?,
        "wrn22_8" => wrn::build(&mut b, 22, 8, k)?,
        "wrn16_4" => wrn::build(&mut b, 16, 4, k)?,
        "wrn40_4" => wrn::build(&mut b, 40, 4, k)?,
        "vgg16_cifar" => vgg::build(&mut b, k)?,
        "mnist_cnn" => mnist::build(&mut b, k)?,
        "cnn_small" => cnn_small::build(&mut b, k)?,
        "cnn4" => cnn4::build(&mut b, k)?,
        "mobilenetv2_cifar" => mobilenetv2::build(&mut b, k)?,
        "vit_cifar" => vit::build(&mut b, k)?,
        other => return Err(IrError::BadSpec { spec: other.to_string(), reason: "unknown zoo model".into() }),
    }
    b.finish()
}

/// A key-renaming rule for [`apply_weights_remapped`], written `PATTERN=REPLACEMENT`: every
/// occurrence of PATTERN in a key is replaced; a PATTERN starting with `^` matches only at the
/// start of the key (`^backbone.=` drops a prefix, `downsample=shortcut` renames a part).
///
/// ```
/// use masq_ir::zoo::{KeyRemap, remap_key};
/// let rules = [KeyRemap::parse("^backbone.=").unwrap(), KeyRemap::parse("linear=fc").unwrap()];
/// assert_eq!(remap_key("module.backbone.linear.weight", &rules), "fc.weight");
/// assert_eq!(remap_key("head.linear.bias", &rules), "head.fc.bias");
/// assert!(KeyRemap::parse("no-equals-sign").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRemap {
    pub pattern: String,
    pub replacement: String,
    /// Match only at the start of the key.
    pub prefix: bool,
}

impl KeyRemap {
    /// Parse `PATTERN=REPLACEMENT` (`^PATTERN=...` for a prefix); the replacement may be empty.
    pub fn parse(rule: &str) -> Result<Self> {
        let bad = |reason: &str| IrError::BadSpec { spec: rule.to_string(), reason: reason.to_string() };
        let (pattern, replacement) = rule.split_once('=').ok_or_else(|| bad("a remap rule is PATTERN=REPLACEMENT"))?;
        let (pattern, prefix) = match pattern.strip_prefix('^') {
            Some(p) => (p, true),
            None => (pattern, false),
        };
        if pattern.is_empty() {
            return Err(bad("the PATTERN of a remap rule is empty"));
        }
        Ok(KeyRemap { pattern: pattern.to_string(), replacement: replacement.to_string(), prefix })
    }

    /// The key after this rule.
    pub fn apply(&self, key: &str) -> String {
        if self.prefix {
            match key.strip_prefix(self.pattern.as_str()) {
                Some(rest) => format!("{}{rest}", self.replacement),
                None => key.to_string(),
            }
        } else {
            key.replace(self.pattern.as_str(), &self.replacement)
        }
    }
}

/// The parameter name a weights key stands for: a leading `module.` (DataParallel) stripped, then
/// every rule in order.
pub fn remap_key(key: &str, rules: &[KeyRemap]) -> String {
    let base = key.strip_prefix("module.").unwrap_or(key);
    rules.iter().fold(base.to_string(), |k, r| r.apply(&k))
}

/// Replace a zoo graph's initializers with given tensors (e.g. a PyTorch checkpoint).
///
/// A leading `module.` (DataParallel) is stripped from every key and `num_batches_tracked` entries
/// are ignored. Every initializer of the graph must be given with the same shape; unknown keys are
/// an error too. See [`apply_weights_remapped`] to rename keys.
pub fn apply_weights(graph: &mut Graph, weights: &BTreeMap<String, ArrayD<f32>>) -> Result<()> {
    apply_weights_remapped(graph, weights, &[])
}

/// [`apply_weights`] with every key renamed by [`remap_key`] first. Errors name the tensor (its key
/// in the file, and the name it maps to when that differs); the graph is changed only on success.
pub fn apply_weights_remapped(
    graph: &mut Graph,
    weights: &BTreeMap<String, ArrayD<f32>>,
    rules: &[KeyRemap],
) -> Result<()> {
    let shown = |key: &str, name: &str| if key == name { key.to_string() } else { format!("{key} (as {name})") };
    // Parameter name -> (key in the file, tensor).
    let mut by_name: BTreeMap<String, (&str, &ArrayD<f32>)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for (key, t) in weights {
        let name = remap_key(key, rules);
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        if !graph.initializers.contains_key(&name) {
            unexpected.push(shown(key, &name));
            continue;
        }
        if let Some((other, _)) = by_name.insert(name.clone(), (key, t)) {
            return Err(IrError::BadWeights {
                name: name.clone(),
                reason: format!("given twice, by {other} and by {key}"),
            });
        }
    }
    // At most 8 names, then the count.
    let listed = |names: Vec<String>| {
        let n = names.len();
        let mut list = names.into_iter().take(8).collect::<Vec<_>>().join(", ");
        if n > 8 {
            list.push_str(&format!(", ... ({n} in all)"));
        }
        list
    };
    if !unexpected.is_empty() {
        let n = unexpected.len();
        let list = listed(unexpected);
        let example: Vec<&str> = graph.initializers.keys().take(3).map(String::as_str).collect();
        return Err(IrError::BadWeights {
            name: list,
            reason: format!(
                "not {} of this model (its parameters are named like {}; rename keys with remap rules)",
                if n == 1 { "a parameter" } else { "parameters" },
                example.join(", ")
            ),
        });
    }
    for (name, (key, t)) in &by_name {
        let slot = &graph.initializers[name];
        if slot.shape() != t.shape() {
            return Err(IrError::BadWeights {
                name: shown(key, name),
                reason: format!("shape {:?}, model expects {:?}", t.shape(), slot.shape()),
            });
        }
    }
    let missing: Vec<String> = graph.initializers.keys().filter(|k| !by_name.contains_key(*k)).cloned().collect();
    if !missing.is_empty() {
        return Err(IrError::BadWeights { name: listed(missing), reason: "missing from the given weights".into() });
    }
    for (name, (_, t)) in by_name {
        if let Some(slot) = graph.initializers.get_mut(&name) {
            *slot = t.clone();
        }
    }
    Ok(())
}
