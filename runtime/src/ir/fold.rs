//! Plaintext graph passes: folding inference-mode BatchNorm into the preceding Conv or Gemm.
//!
//! A `BatchNorm` whose input is produced by a `Conv` (or a `Gemm` on `[N, C]`) that nothing else
//! reads is merged into it: with `s = γ / sqrt(var + ε)`, the layer's weight rows are scaled by
//! `s` and its bias becomes `(b - mean)·s + β`. The folded layer keeps its node name and takes the
//! BatchNorm's output value, so graph outputs and downstream nodes are unchanged. Other
//! BatchNorms stay (the secure executor lowers them to a per-channel affine map).
//!
//! ```
//! use masq_runtime::{ir::fold::fold_batchnorm, zoo};
//! let g = zoo::build("resnet20", None, 0).unwrap();
//! let f = fold_batchnorm(&g).unwrap();
//! assert!(f.nodes.iter().all(|n| n.op.name() != "BatchNormalization"));
//! ```

use std::collections::HashMap;

use ndarray::{ArrayD, Axis, IxDyn};

use super::{Graph, Op};
use crate::error::{Result, RuntimeError};

/// A fresh initializer name starting with `base`.
fn fresh(graph: &Graph, base: String) -> String {
    if !graph.initializers.contains_key(&base) {
        return base;
    }
    (1..).map(|i| format!("{base}.{i}")).find(|n| !graph.initializers.contains_key(n)).expect("unbounded")
}

/// Folds every BatchNorm that directly follows a Conv or Gemm (whose output only it reads) into
/// that layer; returns the new graph (the input is unchanged). Unused tensors are dropped.
pub fn fold_batchnorm(graph: &Graph) -> Result<Graph> {
    let mut g = graph.clone();
    let mut readers: HashMap<String, usize> = HashMap::new();
    for node in &g.nodes {
        for i in &node.inputs {
            *readers.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &g.outputs {
        *readers.entry(o.name.clone()).or_default() += 1;
    }
    let producer: HashMap<String, usize> = g.nodes.iter().enumerate().map(|(i, n)| (n.outputs[0].clone(), i)).collect();
    let mut remove = vec![false; g.nodes.len()];
    for bi in 0..g.nodes.len() {
        let Op::BatchNorm(bn) = &g.nodes[bi].op else { continue };
        let bn = bn.clone();
        let input = g.nodes[bi].inputs[0].clone();
        let Some(&li) = producer.get(&input) else { continue };
        if readers.get(&input).copied().unwrap_or(0) != 1 || remove[li] {
            continue;
        }
        let (weight, bias) = match &g.nodes[li].op {
            Op::Conv(c) => (c.weight.clone(), c.bias.clone()),
            Op::Gemm(c) => (c.weight.clone(), c.bias.clone()),
            _ => continue,
        };
        let bn_node = g.nodes[bi].clone();
        let get = |name: &str| g.initializer(&bn_node, name).map(|t| t.iter().copied().collect::<Vec<f32>>());
        let (gamma, beta, mean, var) = (get(&bn.scale)?, get(&bn.bias)?, get(&bn.mean)?, get(&bn.var)?);
        let layer = g.nodes[li].clone();
        let w = g.initializer(&layer, &weight)?;
        let out_ch = w.shape().first().copied().unwrap_or(0);
        if gamma.len() != out_ch || beta.len() != out_ch || mean.len() != out_ch || var.len() != out_ch {
            return Err(RuntimeError::ShapeMismatch {
                node: bn_node.name.clone(),
                op: bn_node.op.name().to_string(),
                expected: format!("[{out_ch}] per-channel parameters (the channels of {})", layer.name),
                got: vec![gamma.len()],
            });
        }
        let s: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + bn.epsilon).sqrt()).collect();
        let mut new_w = w.clone();
        for (o, mut row) in new_w.axis_iter_mut(Axis(0)).enumerate() {
            row.mapv_inplace(|v| v * s[o]);
        }
        let old_b: Vec<f32> = match &bias {
            Some(b) => g.initializer(&layer, b)?.iter().copied().collect(),
            None => vec![0.0; out_ch],
        };
        let new_b: Vec<f32> = (0..out_ch).map(|o| (old_b[o] - mean[o]) * s[o] + beta[o]).collect();
        let wname = fresh(&g, format!("{}.weight.bnfold", layer.name));
        g.initializers.insert(wname.clone(), new_w);
        let bname = fresh(&g, format!("{}.bias.bnfold", layer.name));
        g.initializers.insert(bname.clone(), ArrayD::from_shape_vec(IxDyn(&[out_ch]), new_b).expect("length"));
        let node = &mut g.nodes[li];
        match &mut node.op {
            Op::Conv(c) => {
                c.weight = wname;
                c.bias = Some(bname);
            }
            Op::Gemm(c) => {
                c.weight = wname;
                c.bias = Some(bname);
            }
            _ => unreachable!("matched above"),
        }
        node.outputs[0] = bn_node.outputs[0].clone();
        remove[bi] = true;
    }
    let mut it = remove.iter();
    g.nodes.retain(|_| !*it.next().expect("one flag per node"));
    g.prune();
    g.validate()?;
    Ok(g)
}
