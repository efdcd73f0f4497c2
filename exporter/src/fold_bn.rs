//! Plaintext graph pass: fold inference-mode BatchNormalization into the convolution before it.
//!
//! For a `Conv -> BatchNorm` pair where the BatchNorm is the conv output's only consumer (and the
//! conv output is no graph output), with `s = scale / sqrt(var + eps)` per output channel:
//! `W'[o] = W[o]·s[o]` and `b'[o] = (b[o] − mean[o])·s[o] + beta[o]` (computed in f64). The
//! BatchNorm node disappears; the conv takes over its output name.

use std::collections::HashMap;

use masq_runtime::Graph;
use masq_runtime::ir::{Node, Op};
use ndarray::{ArrayD, Axis};

use crate::error::ExportError;

/// Fold every foldable BatchNorm; returns how many were folded.
pub fn fold_batch_norm(graph: &mut Graph) -> Result<usize, ExportError> {
    let mut folded = 0;
    loop {
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for node in &graph.nodes {
            for i in &node.inputs {
                *uses.entry(i.as_str()).or_default() += 1;
            }
            for p in node.op.param_names() {
                *uses.entry(p).or_default() += 1;
            }
        }
        let outputs: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
        let producers: HashMap<&str, usize> =
            graph.nodes.iter().enumerate().map(|(i, n)| (n.outputs[0].as_str(), i)).collect();
        let pair = graph.nodes.iter().enumerate().find_map(|(bi, bn)| {
            let Op::BatchNorm(_) = bn.op else { return None };
            let ci = *producers.get(bn.inputs[0].as_str())?;
            let conv = &graph.nodes[ci];
            let Op::Conv(_) = conv.op else { return None };
            let single = uses.get(conv.outputs[0].as_str()) == Some(&1) && !outputs.contains(&conv.outputs[0].as_str());
            single.then_some((ci, bi))
        });
        let Some((ci, bi)) = pair else { break };
        let shared = |name: &str| uses.get(name).copied().unwrap_or(0) > 1;
        let (Op::Conv(cc), Op::BatchNorm(bc)) = (&graph.nodes[ci].op, &graph.nodes[bi].op) else { unreachable!() };
        let (cc, bc) = (cc.clone(), bc.clone());
        let weight_shared = shared(&cc.weight);
        let bias_shared = cc.bias.as_deref().is_some_and(shared);
        let conv_node: Node = graph.nodes[ci].clone();
        let bn_node: Node = graph.nodes[bi].clone();

        let w = graph.initializer(&conv_node, &cc.weight)?.clone();
        let get = |n: &str| graph.initializer(&bn_node, n).map(|t| t.iter().map(|&v| v as f64).collect::<Vec<f64>>());
        let (scale, beta, mean, var) = (get(&bc.scale)?, get(&bc.bias)?, get(&bc.mean)?, get(&bc.var)?);
        let out_c = w.shape()[0];
        if [&scale, &beta, &mean, &var].iter().any(|v| v.len() != out_c) {
            return Err(ExportError::Graph(masq_runtime::RuntimeError::ShapeMismatch {
                node: bn_node.name.clone(),
                op: "BatchNormalization".into(),
                expected: format!("[{out_c}] parameters to match conv {} output channels", conv_node.name),
                got: vec![scale.len()],
            }));
        }
        let b: Vec<f64> = match &cc.bias {
            Some(n) => graph.initializer(&conv_node, n)?.iter().map(|&v| v as f64).collect(),
            None => vec![0.0; out_c],
        };
        let s: Vec<f64> = (0..out_c).map(|o| scale[o] / (var[o] + bc.epsilon as f64).sqrt()).collect();
        let mut w2: ArrayD<f32> = w.clone();
        for (o, mut plane) in w2.axis_iter_mut(Axis(0)).enumerate() {
            plane.mapv_inplace(|v| (v as f64 * s[o]) as f32);
        }
        let b2: ArrayD<f32> = ArrayD::from_shape_vec(
            vec![out_c],
            (0..out_c).map(|o| ((b[o] - mean[o]) * s[o] + beta[o]) as f32).collect(),
        )
        .expect("out_c values");

        let weight_name = if weight_shared { fresh(graph, &format!("{}.weight", conv_node.name)) } else { cc.weight };
        let bias_name = match cc.bias {
            Some(n) if !bias_shared => n,
            _ => fresh(graph, &format!("{}.bias", conv_node.name)),
        };
        graph.initializers.insert(weight_name.clone(), w2);
        graph.initializers.insert(bias_name.clone(), b2);
        let conv = &mut graph.nodes[ci];
        if let Op::Conv(c) = &mut conv.op {
            c.weight = weight_name;
            c.bias = Some(bias_name);
        }
        conv.outputs[0] = bn_node.outputs[0].clone();
        graph.nodes.remove(bi);
        graph.prune();
        folded += 1;
    }
    Ok(folded)
}

/// A tensor/value name not used anywhere in the graph, derived from `base`.
pub(crate) fn fresh(graph: &Graph, base: &str) -> String {
    let taken = |n: &str| {
        graph.initializers.contains_key(n)
            || graph.masks.contains_key(n)
            || graph.inputs.iter().any(|v| v.name == n)
            || graph.nodes.iter().any(|x| x.name == n || x.outputs.iter().any(|o| o == n))
    };
    let mut name = base.to_string();
    let mut k = 1;
    while taken(&name) {
        name = format!("{base}.{k}");
        k += 1;
    }
    name
}
