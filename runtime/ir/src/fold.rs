//! Plaintext graph passes: folding inference-mode BatchNorm into the preceding Conv or Gemm.
//!
//! A `BatchNorm` whose input is produced by a `Conv` (or a `Gemm` on `[N, C]`) that nothing else
//! reads is merged into it: with `s = γ / sqrt(var + ε)`, the layer's weight rows are scaled by
//! `s` and its bias becomes `(b - mean)·s + β`. The folded layer keeps its node name and takes the
//! BatchNorm's output value, so graph outputs and downstream nodes are unchanged. Other
//! BatchNorms stay (the secure executor lowers them to a per-channel affine map).
//!
//! ```
//! use masq_ir::{fold::fold_batchnorm, zoo};
//! let g = zoo::build("resnet20", None, 0).unwrap();
//! let f = fold_batchnorm(&g).unwrap();
//! assert!(f.nodes.iter().all(|n| n.op.name() != "BatchNormalization"));
//! ```

use std::collections::HashMap;

use ndarray::{ArrayD, Axis, IxDyn};

use crate::error::{IrError, Result};
use crate::{Graph, Op};

/// A name starting with `base` that no initializer, mask, input, node or value of `graph` uses.
pub fn fresh_name(graph: &Graph, base: &str) -> String {
    let taken = |n: &str| {
        graph.initializers.contains_key(n)
            || graph.masks.contains_key(n)
            || graph.inputs.iter().any(|v| v.name == n)
            || graph.nodes.iter().any(|x| x.name == n || x.outputs.iter().any(|o| o == n))
    };
    if !taken(base) {
        return base.to_string();
    }
    (1..).map(|i| format!("{base}.{i}")).find(|n| !taken(n)).expect("unbounded")
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
    // How many nodes read each initializer: a folded tensor keeps its (stable) name unless shared.
    let mut param_uses: HashMap<String, usize> = HashMap::new();
    for node in &g.nodes {
        for p in node.op.param_names() {
            *param_uses.entry(p.to_string()).or_default() += 1;
        }
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
        let get = |name: &str| g.initializer(&bn_node, name).map(|t| t.iter().map(|&v| v as f64).collect::<Vec<f64>>());
        let (gamma, beta, mean, var) = (get(&bn.scale)?, get(&bn.bias)?, get(&bn.mean)?, get(&bn.var)?);
        let layer = g.nodes[li].clone();
        let w = g.initializer(&layer, &weight)?;
        let out_ch = w.shape().first().copied().unwrap_or(0);
        if gamma.len() != out_ch || beta.len() != out_ch || mean.len() != out_ch || var.len() != out_ch {
            return Err(IrError::ShapeMismatch {
                node: bn_node.name.clone(),
                op: bn_node.op.name().to_string(),
                expected: format!("[{out_ch}] per-channel parameters (the channels of {})", layer.name),
                got: vec![gamma.len()],
            });
        }
        // In f64: the folded f32 weights are then as close to the exact fold as f32 allows.
        let s: Vec<f64> = gamma.iter().zip(&var).map(|(g, v)| g / (v + bn.epsilon as f64).sqrt()).collect();
        let mut new_w = w.clone();
        for (o, mut row) in new_w.axis_iter_mut(Axis(0)).enumerate() {
            row.mapv_inplace(|v| (v as f64 * s[o]) as f32);
        }
        let old_b: Vec<f64> = match &bias {
            Some(b) => g.initializer(&layer, b)?.iter().map(|&v| v as f64).collect(),
            None => vec![0.0; out_ch],
        };
        let new_b: Vec<f32> = (0..out_ch).map(|o| ((old_b[o] - mean[o]) * s[o] + beta[o]) as f32).collect();
        let shared = |n: &str| param_uses.get(n).copied().unwrap_or(0) > 1;
        let wname = if shared(&weight) { fresh_name(&g, &format!("{}.weight", layer.name)) } else { weight.clone() };
        // The folded weight leaves its quantization grid: it is plain f32 from here on.
        g.weight_quant.remove(&wname);
        g.initializers.insert(wname.clone(), new_w);
        let bname = match &bias {
            Some(b) if !shared(b) => b.clone(),
            _ => fresh_name(&g, &format!("{}.bias", layer.name)),
        };
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
