//! The reference semantics of a dead set ([`super::zero_filters`]) and its validation.

use std::collections::BTreeSet;

use ndarray::Axis;

use super::DeadSet;
use super::index::{Index, initializer_uses, put_initializer};
use crate::error::{IrError, Result};
use crate::{Graph, Op};

/// A dead set resolved against a graph: (conv node index, its dead channels), in node order.
pub(super) fn resolve(index: &Index<'_>, dead: &DeadSet) -> Result<Vec<(usize, BTreeSet<usize>)>> {
    let g = index.graph;
    let mut out = Vec::new();
    for (conv, chans) in dead {
        let Some(i) = index.node_index(conv) else {
            return Err(IrError::NotFound { kind: "Conv node", name: conv.clone() });
        };
        let node = &g.nodes[i];
        let Op::Conv(c) = &node.op else {
            return Err(IrError::UnsupportedConfig {
                node: conv.clone(),
                op: node.op.name().to_string(),
                reason: "a dead set names Conv nodes only".into(),
            });
        };
        let n = g.initializer(node, &c.weight)?.shape().first().copied().unwrap_or(0);
        if let Some(&bad) = chans.iter().find(|&&ch| ch >= n) {
            return Err(IrError::UnsupportedConfig {
                node: conv.clone(),
                op: "Conv".into(),
                reason: format!("dead filter {bad} is out of range: the conv has {n} output channels"),
            });
        }
        if !chans.is_empty() {
            out.push((i, chans.clone()));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// See [`super::zero_filters`].
pub(super) fn zero_filters(graph: &mut Graph, dead: &DeadSet) -> Result<()> {
    // Resolve everything before changing anything: on error the graph is untouched.
    let (resolved, bns) = {
        let index = Index::new(graph)?;
        let resolved = resolve(&index, dead)?;
        let bns: Vec<Option<usize>> = resolved.iter().map(|(i, _)| index.exclusive_bn(*i)).collect();
        (resolved, bns)
    };
    let mut uses = initializer_uses(graph);
    for ((ci, chans), bn) in resolved.iter().zip(bns) {
        let name = graph.nodes[*ci].name.clone();
        let Op::Conv(cfg) = graph.nodes[*ci].op.clone() else { unreachable!("resolved to a Conv") };
        let mut w = graph.initializer(&graph.nodes[*ci], &cfg.weight)?.clone();
        for &o in chans {
            w.index_axis_mut(Axis(0), o).fill(0.0);
        }
        let weight = put_initializer(graph, &mut uses, &cfg.weight, &name, w);
        let bias = match &cfg.bias {
            Some(b) => {
                let mut t = graph.initializer(&graph.nodes[*ci], b)?.clone();
                for &o in chans {
                    t.index_axis_mut(Axis(0), o).fill(0.0);
                }
                Some(put_initializer(graph, &mut uses, b, &name, t))
            }
            None => None,
        };
        if let Op::Conv(c) = &mut graph.nodes[*ci].op {
            c.weight = weight;
            c.bias = bias;
        }
        let Some(bi) = bn else { continue };
        let bn_name = graph.nodes[bi].name.clone();
        let Op::BatchNorm(bcfg) = graph.nodes[bi].op.clone() else { unreachable!("exclusive_bn is a BatchNorm") };
        let mut names = [bcfg.scale.clone(), bcfg.bias.clone()];
        for name in &mut names {
            let mut t = graph.initializer(&graph.nodes[bi], name)?.clone();
            for &o in chans {
                t.index_axis_mut(Axis(0), o).fill(0.0);
            }
            *name = put_initializer(graph, &mut uses, name, &bn_name, t);
        }
        if let Op::BatchNorm(b) = &mut graph.nodes[bi].op {
            let [scale, shift] = names;
            b.scale = scale;
            b.bias = shift;
        }
    }
    graph.validate()
}
