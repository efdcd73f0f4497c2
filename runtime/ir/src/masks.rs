//! Graph transform for ReLU reduction: every `Relu` node, and every `Clip` to `[0, c]` (ReLU6 is
//! `c = 6`: `min(ReLU(x), c)`, the site AutoReP and SNL mask), becomes a `MaskedAct` node with an
//! all-ones mask (so the graph computes exactly what it did; a clip keeps its cap) and, optionally,
//! per-channel polynomial coefficients for the replacement.
//!
//! ```
//! use masq_ir::masks::{relu_to_masked, SiteReplacement};
//! let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
//! let (m, sites) = relu_to_masked(&g, SiteReplacement::Identity).unwrap();
//! let before = masq_ir::report::report(&g).unwrap().relu_count;
//! assert_eq!(masq_ir::report::report(&m).unwrap().relu_count, before);
//! assert_eq!(sites.iter().map(|s| s.len() as u64).sum::<u64>(), before);
//! ```

use ndarray::ArrayD;

use crate::error::{IrError, Result};
use crate::{Graph, MaskedActConfig, Op, Replacement};

/// The replacement the new `MaskedAct` nodes get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SiteReplacement {
    /// `g(x) = x`.
    Identity,
    /// `g(x) = c2·x² + c1·x + c0`, every channel starting from these values.
    Poly { c2: f32, c1: f32, c0: f32 },
}

/// One converted ReLU site (in forward order).
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// The node's name (unchanged by the transform).
    pub node: String,
    /// The mask's name (`<node>.mask`).
    pub mask: String,
    /// The mask's shape: the ReLU input's shape without the batch dimension.
    pub shape: Vec<usize>,
    /// The coefficient names `[c2, c1, c0]` of a polynomial replacement.
    pub coefficients: Option<[String; 3]>,
    /// The upper bound of a clipped site (`Some(6.0)` for ReLU6).
    pub cap: Option<f32>,
}

impl Site {
    /// Number of mask elements (ReLUs at batch 1).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Channels (axis 1 of the activation).
    pub fn channels(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

/// The site a node is, if any: `Some(None)` for a ReLU, `Some(Some(c))` for a clip to `[0, c]`.
pub fn site_cap(op: &Op) -> Option<Option<f32>> {
    match op {
        Op::Relu => Some(None),
        Op::Clip(c) if c.min == Some(0.0) && c.max.is_some_and(|m| m > 0.0 && m.is_finite()) => Some(c.max),
        _ => None,
    }
}

/// Replace every `Relu` node and every `Clip` to `[0, c]` by a `MaskedAct` with an all-ones mask;
/// returns the new graph and the sites in node order. Other nodes (including existing `MaskedAct`
/// nodes) are left alone.
pub fn relu_to_masked(graph: &Graph, replacement: SiteReplacement) -> Result<(Graph, Vec<Site>)> {
    let shapes = graph.infer_shapes(1)?;
    let mut g = graph.clone();
    let mut sites = Vec::new();
    for node in &mut g.nodes {
        let Some(cap) = site_cap(&node.op) else {
            continue;
        };
        let x = &shapes[&node.inputs[0]];
        if x.len() < 2 || x[0] != 1 {
            return Err(IrError::UnsupportedConfig {
                node: node.name.clone(),
                op: node.op.name().into(),
                reason: format!("a ReLU site needs a batched input of rank >= 2, got {x:?}"),
            });
        }
        let shape = x[1..].to_vec();
        let mask = format!("{}.mask", node.name);
        for name in [&mask] {
            if g.masks.contains_key(name) || g.initializers.contains_key(name) {
                return Err(IrError::InvalidGraph { reason: format!("name {name} is taken") });
            }
        }
        g.masks.insert(mask.clone(), ArrayD::from_elem(shape.clone(), 1u8));
        let (repl, coefficients) = match replacement {
            SiteReplacement::Identity => (Replacement::Identity, None),
            SiteReplacement::Poly { c2, c1, c0 } => {
                let names = ["c2", "c1", "c0"].map(|k| format!("{}.{k}", node.name));
                for (n, v) in names.iter().zip([c2, c1, c0]) {
                    if g.initializers.contains_key(n) {
                        return Err(IrError::InvalidGraph { reason: format!("name {n} is taken") });
                    }
                    g.initializers.insert(n.clone(), ArrayD::from_elem(vec![shape[0]], v));
                }
                let [a, b, c] = names.clone();
                (Replacement::Poly { c2: a, c1: b, c0: c }, Some(names))
            }
        };
        node.op = Op::MaskedAct(MaskedActConfig { mask: mask.clone(), replacement: repl, cap });
        sites.push(Site { node: node.name.clone(), mask, shape, coefficients, cap });
    }
    g.validate()?;
    Ok((g, sites))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_relu_and_keeps_counts() {
        let g = crate::zoo::build("resnet20", None, 0).unwrap();
        let (m, sites) = relu_to_masked(&g, SiteReplacement::Poly { c2: 0.0, c1: 1.0, c0: 0.0 }).unwrap();
        assert_eq!(crate::report::report(&m).unwrap().relu_count, 188_416);
        assert_eq!(sites.len(), g.nodes.iter().filter(|n| matches!(n.op, Op::Relu)).count());
        assert!(m.nodes.iter().all(|n| !matches!(n.op, Op::Relu)));
        assert_eq!(sites[0].shape, vec![16, 32, 32]);
        assert_eq!(m.initializers[sites[0].coefficients.as_ref().unwrap()[1].as_str()].len(), 16);
    }
}
