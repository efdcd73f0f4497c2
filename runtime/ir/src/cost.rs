//! The one table of cost rules: what each node costs for one image (batch 1).
//!
//! Every figure masq reports about a model comes from here: `masq inspect`, the plaintext and
//! secure runs, `masq estimate`, the deployment and the demo. The secure planner checks that the
//! comparisons it asks the dealer for equal this table's, so the figures cannot drift apart.
//!
//! - `relus`: ReLU elements. A `Relu` costs one per element of its input; a `MaskedAct` one per 1
//!   in its mask (the other elements take the identity or a polynomial and cost no comparison).
//!   A capped `MaskedAct` (a ReLU6 site) also costs one `clip_comparisons` per 1 in its mask, for
//!   its upper bound.
//! - `maxpool_comparisons`: a max over a window of `k` valid (unpadded) inputs costs `k − 1`
//!   comparisons, summed over output positions.
//! - `clip_comparisons`: `Clip` (hard tanh) costs one comparison per bound per element, except a
//!   clip to `[0, c]` (ReLU6), which counts one ReLU and one clip comparison per element;
//!   `HardSigmoid` and `HardSwish` are clips to [0, 1] and cost two per element.
//! - `sigmoid_comparisons`: `Sigmoid` is approximated under 2PC by polynomials on three clamped
//!   inputs ([`crate::approx::SIGMOID`]); the clamps cost six comparisons per element.
//! - `leaky_relu_comparisons`: `LeakyRelu` costs one comparison per element.
//! - `poly_elements`: elements a polynomial replacement computes (zeros of a `Poly` mask).
//! - `macs`: multiply-accumulates of Conv/Gemm/MatMul, one per element for BatchNorm, Mul, Div,
//!   Pow, HardSwish and LayerNorm, AveragePool's window sums, GlobalAveragePool's and the
//!   reductions' input elements, two per polynomial element, and one per multiplication of the
//!   Sigmoid polynomials ([`crate::approx::Piecewise::multiplications`]) per element.
//!
//! - `approx_comparisons`: the transformer ops' approximations ([`crate::approx::transformer`]):
//!   GELU and Erf two per element (their clamp), Tanh six (the sigmoid's), Exp two, Reciprocal
//!   and a division by a computed value one per range bit of the divisor plus its sign, Sqrt one
//!   per range bit; LayerNorm one per range bit of each normalised row's `1/√(var + ε)`; Softmax over rows
//!   of `L` elements `L − 1` for the maximum, `L` for the exponential's clamp and the range bits
//!   of the row sum's reciprocal, per row.
//!
//! A Softmax or LogSoftmax whose output is a graph output and feeds no node costs nothing: under
//! 2PC it runs in the clear at the client after the reveal ([`runs_at_client`]). LogSoftmax has
//! no secure protocol elsewhere. A per-batch total is `batch ×` these figures.

use std::collections::HashMap;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::approx::transformer as approx;
use crate::error::{IrError, Result};
use crate::{Graph, Node, Op, PoolConfig, Replacement};

/// One node's figures for one image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCost {
    pub macs: u64,
    pub relus: u64,
    pub maxpool_comparisons: u64,
    pub clip_comparisons: u64,
    pub leaky_relu_comparisons: u64,
    pub sigmoid_comparisons: u64,
    /// Comparisons of the transformer ops' approximations (clamps, range bits, Softmax maxima).
    #[serde(default)]
    pub approx_comparisons: u64,
    pub poly_elements: u64,
}

impl NodeCost {
    /// Every secure comparison: ReLUs plus max-pool, Clip, LeakyReLU and Sigmoid comparisons.
    pub fn comparisons(&self) -> u64 {
        self.relus
            + self.maxpool_comparisons
            + self.clip_comparisons
            + self.leaky_relu_comparisons
            + self.sigmoid_comparisons
            + self.approx_comparisons
    }

    /// The figures of `batch` images.
    pub fn times(&self, batch: u64) -> NodeCost {
        NodeCost {
            macs: self.macs * batch,
            relus: self.relus * batch,
            maxpool_comparisons: self.maxpool_comparisons * batch,
            clip_comparisons: self.clip_comparisons * batch,
            leaky_relu_comparisons: self.leaky_relu_comparisons * batch,
            sigmoid_comparisons: self.sigmoid_comparisons * batch,
            approx_comparisons: self.approx_comparisons * batch,
            poly_elements: self.poly_elements * batch,
        }
    }
}

impl Add for NodeCost {
    type Output = NodeCost;
    fn add(self, o: NodeCost) -> NodeCost {
        NodeCost {
            macs: self.macs + o.macs,
            relus: self.relus + o.relus,
            maxpool_comparisons: self.maxpool_comparisons + o.maxpool_comparisons,
            clip_comparisons: self.clip_comparisons + o.clip_comparisons,
            leaky_relu_comparisons: self.leaky_relu_comparisons + o.leaky_relu_comparisons,
            sigmoid_comparisons: self.sigmoid_comparisons + o.sigmoid_comparisons,
            approx_comparisons: self.approx_comparisons + o.approx_comparisons,
            poly_elements: self.poly_elements + o.poly_elements,
        }
    }
}

impl AddAssign for NodeCost {
    fn add_assign(&mut self, o: NodeCost) {
        *self = *self + o;
    }
}

impl std::iter::Sum for NodeCost {
    fn sum<I: Iterator<Item = NodeCost>>(it: I) -> NodeCost {
        it.fold(NodeCost::default(), Add::add)
    }
}

/// A model's totals for one image, under the names every report uses (`masq inspect`, `run`,
/// `estimate`, `query`, the demo and the manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCounts {
    /// ReLU elements per image.
    pub relu_count: u64,
    pub maxpool_comparisons: u64,
    pub clip_comparisons: u64,
    pub leaky_relu_comparisons: u64,
    #[serde(default)]
    pub sigmoid_comparisons: u64,
    /// Comparisons of the transformer ops' approximations.
    #[serde(default)]
    pub approx_comparisons: u64,
    /// Every secure comparison per image.
    pub comparisons: u64,
    pub poly_elements: u64,
    pub macs: u64,
}

impl From<NodeCost> for ModelCounts {
    fn from(c: NodeCost) -> Self {
        ModelCounts {
            relu_count: c.relus,
            maxpool_comparisons: c.maxpool_comparisons,
            clip_comparisons: c.clip_comparisons,
            leaky_relu_comparisons: c.leaky_relu_comparisons,
            sigmoid_comparisons: c.sigmoid_comparisons,
            approx_comparisons: c.approx_comparisons,
            comparisons: c.comparisons(),
            poly_elements: c.poly_elements,
            macs: c.macs,
        }
    }
}

/// Whether `node` runs in the clear at the client after the reveal: a Softmax or LogSoftmax
/// whose output is a graph output that no node reads.
pub fn runs_at_client(graph: &Graph, node: &Node) -> bool {
    let out = &node.outputs[0];
    matches!(node.op, Op::Softmax(_) | Op::LogSoftmax(_))
        && graph.outputs.iter().any(|o| &o.name == out)
        && !graph.nodes.iter().any(|n| n.inputs.contains(out))
}

/// Figures of every node of `graph` for one image, in node order.
pub fn node_costs(graph: &Graph) -> Result<Vec<NodeCost>> {
    let shapes = graph.infer_shapes(1)?;
    graph.nodes.iter().map(|n| node_cost(graph, n, &shapes)).collect()
}

/// The whole graph's figures for one image.
pub fn graph_cost(graph: &Graph) -> Result<NodeCost> {
    Ok(node_costs(graph)?.into_iter().sum())
}

fn elems(shape: &[usize]) -> u64 {
    shape.iter().product::<usize>() as u64
}

/// One node's figures for one image; `shapes` are the graph's shapes at batch 1.
pub fn node_cost(graph: &Graph, node: &Node, shapes: &HashMap<String, Vec<usize>>) -> Result<NodeCost> {
    let shape_of = |name: &str| -> Result<&Vec<usize>> {
        shapes.get(name).ok_or_else(|| IrError::NotFound { kind: "shape of value", name: name.to_string() })
    };
    let out = shape_of(&node.outputs[0])?;
    let input: &[usize] = match node.inputs.first() {
        Some(n) => shapes.get(n).map(Vec::as_slice).unwrap_or(&[]),
        None => &[],
    };
    let (out_elems, in_elems) = (elems(out), elems(input));
    let mut c = NodeCost::default();
    // A quantizer that floors at 0 costs what its clip does (`quant::saturating_clip`).
    let as_clip;
    let op = match &node.op {
        Op::FakeQuant(q) => match crate::quant::saturating_clip(q) {
            Some(clip) => {
                as_clip = Op::Clip(clip);
                &as_clip
            }
            None => &node.op,
        },
        other => other,
    };
    match op {
        Op::Conv(cfg) => {
            let w = graph.initializer(node, &cfg.weight)?.shape();
            c.macs = out_elems * (w[1] * w[2] * w[3]) as u64;
        }
        Op::Gemm(cfg) => {
            let w = graph.initializer(node, &cfg.weight)?.shape();
            c.macs = out_elems * w[1] as u64;
        }
        Op::MatMul(_) => c.macs = out_elems * input.last().copied().unwrap_or(0) as u64,
        Op::BatchNorm(_) | Op::Mul(_) | Op::Pow(_) => c.macs = out_elems,
        Op::Div(_) => {
            c.macs = out_elems;
            // A computed divisor: its reciprocal, then a product.
            if let Some(d) = node.inputs.get(1).filter(|d| !graph.initializers.contains_key(*d)) {
                let n = elems(shape_of(d)?);
                let r = approx::reciprocal();
                c.approx_comparisons = r.comparisons() * n;
                c.macs += r.multiplications() * n;
            }
        }
        Op::LayerNorm(cfg) => {
            let rows = elems(&input[..cfg.axis.min(input.len())]);
            let r = approx::rsqrt();
            c.approx_comparisons = r.comparisons() * rows;
            c.macs = 3 * out_elems + r.multiplications() * rows;
        }
        Op::Softmax(cfg) if !runs_at_client(graph, node) => {
            let len = input.get(cfg.axis).copied().unwrap_or(1) as u64;
            let rows = in_elems / len.max(1);
            let e = approx::softmax_exp();
            let r = approx::Reciprocal::softmax(len as usize);
            c.approx_comparisons = rows * ((len - 1) + len * e.comparisons() + r.comparisons());
            c.macs = in_elems * (e.multiplications() + 1) + rows * r.multiplications();
        }
        Op::Gelu(_) => {
            c.approx_comparisons = approx::gelu().comparisons() * in_elems;
            c.macs = approx::gelu().multiplications() * in_elems;
        }
        Op::Erf => {
            c.approx_comparisons = approx::erf_approx().comparisons() * in_elems;
            c.macs = approx::erf_approx().multiplications() * in_elems;
        }
        Op::Tanh => {
            c.approx_comparisons = crate::approx::SIGMOID.comparisons() * in_elems;
            c.macs = crate::approx::SIGMOID.multiplications() * in_elems;
        }
        Op::Exp => {
            c.approx_comparisons = approx::exp().comparisons() * in_elems;
            c.macs = approx::exp().multiplications() * in_elems;
        }
        Op::Reciprocal => {
            c.approx_comparisons = approx::reciprocal().comparisons() * in_elems;
            c.macs = approx::reciprocal().multiplications() * in_elems;
        }
        Op::Sqrt => {
            c.approx_comparisons = approx::rsqrt().comparisons() * in_elems;
            c.macs = (approx::rsqrt().multiplications() + 1) * in_elems;
        }
        Op::HardSigmoid(_) => c.clip_comparisons = 2 * in_elems,
        Op::HardSwish => {
            c.clip_comparisons = 2 * in_elems;
            c.macs = in_elems;
        }
        Op::Sigmoid => {
            c.sigmoid_comparisons = crate::approx::SIGMOID.comparisons() * in_elems;
            c.macs = crate::approx::SIGMOID.multiplications() * in_elems;
        }
        Op::ReduceMean(_) | Op::ReduceSum(_) => c.macs = in_elems,
        Op::AveragePool(p) => c.macs = out_elems * (p.kernel[0] * p.kernel[1]) as u64,
        Op::GlobalAveragePool => c.macs = in_elems,
        Op::Relu => c.relus = in_elems,
        Op::LeakyRelu(_) => c.leaky_relu_comparisons = in_elems,
        Op::MaskedAct(cfg) => {
            let mask =
                graph.masks.get(&cfg.mask).ok_or_else(|| IrError::NotFound { kind: "mask", name: cfg.mask.clone() })?;
            let ones = mask.iter().filter(|&&v| v != 0).count() as u64;
            c.relus = ones;
            if cfg.cap.is_some() {
                c.clip_comparisons = ones;
            }
            if let Replacement::Poly { .. } = cfg.replacement {
                c.poly_elements = in_elems.saturating_sub(ones);
                c.macs = 2 * c.poly_elements;
            }
        }
        Op::MaxPool(p) => {
            let (h, w) = match input {
                [_, _, h, w] => (*h, *w),
                _ => {
                    return Err(IrError::ShapeMismatch {
                        node: node.name.clone(),
                        op: node.op.name().to_string(),
                        expected: "[N, C, H, W]".into(),
                        got: input.to_vec(),
                    });
                }
            };
            let (ho, wo) = match out.as_slice() {
                [_, _, ho, wo] => (*ho, *wo),
                _ => (0, 0),
            };
            let planes = (input[0] * input[1]) as u64;
            c.maxpool_comparisons = planes * maxpool_plane_comparisons(p, h, w, ho, wo);
        }
        Op::Clip(cfg) => match crate::masks::site_cap(op) {
            // ReLU6 and other clips to [0, c]: a ReLU and a cap, the site ReLU reduction masks.
            Some(_) => {
                c.relus = in_elems;
                c.clip_comparisons = in_elems;
            }
            None => c.clip_comparisons = in_elems * (cfg.min.is_some() as u64 + cfg.max.is_some() as u64),
        },
        Op::Softmax(_)
        | Op::LogSoftmax(_)
        | Op::Add(_)
        | Op::Sub(_)
        | Op::Flatten(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Concat(_)
        | Op::Pad(_)
        | Op::Slice(_)
        | Op::Gather(_)
        | Op::Identity
        | Op::FakeQuant(_) => {}
    }
    Ok(c)
}

/// Comparisons of a max over one H×W plane: per output position, the valid (unpadded) window
/// elements less one.
fn maxpool_plane_comparisons(p: &PoolConfig, h: usize, w: usize, ho: usize, wo: usize) -> u64 {
    let valid = |o: usize, len: usize, k: usize, stride: usize, dil: usize, pad: usize| -> u64 {
        (0..k)
            .filter(|&i| {
                let pos = (o * stride + i * dil) as isize - pad as isize;
                pos >= 0 && (pos as usize) < len
            })
            .count() as u64
    };
    let rows: Vec<u64> =
        (0..ho).map(|oy| valid(oy, h, p.kernel[0], p.stride[0], p.dilation[0], p.padding[0])).collect();
    let cols: Vec<u64> =
        (0..wo).map(|ox| valid(ox, w, p.kernel[1], p.stride[1], p.dilation[1], p.padding[1])).collect();
    rows.iter().flat_map(|&r| cols.iter().map(move |&c| (r * c).saturating_sub(1))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(k: usize, s: usize, pad: usize) -> PoolConfig {
        PoolConfig {
            kernel: [k, k],
            stride: [s, s],
            padding: [pad; 4],
            dilation: [1, 1],
            ceil_mode: false,
            count_include_pad: false,
        }
    }

    #[test]
    fn maxpool_without_padding_costs_k_squared_less_one_per_output() {
        assert_eq!(maxpool_plane_comparisons(&pool(2, 2, 0), 8, 8, 4, 4), 16 * 3);
    }

    #[test]
    fn maxpool_padding_is_not_compared() {
        // 3×3 stride 2 pad 1 on 4×4 -> 2×2 outputs; windows of 4, 6, 6 and 9 valid inputs.
        assert_eq!(maxpool_plane_comparisons(&pool(3, 2, 1), 4, 4, 2, 2), 3 + 5 + 5 + 8);
    }

    #[test]
    fn resnet20_has_only_relus() {
        let g = crate::zoo::build("resnet20", None, 0).unwrap();
        let c = graph_cost(&g).unwrap();
        assert_eq!(c.relus, 188_416);
        assert_eq!(c.comparisons(), c.relus);
        assert_eq!(c.times(4).relus, 4 * 188_416);
    }
}
