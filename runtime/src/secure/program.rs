//! The walk over a graph shared by the planner and the executor: which nodes run under 2PC,
//! which values are revealed to the client, and which nodes the client runs after the reveal.

use std::collections::{HashMap, HashSet};

use masq_mpc::FixedPoint;
use ndarray::ArrayD;

use super::lower::{Backend, Operand, lower};
use crate::error::{IrError, Result, RuntimeError};
use masq_ir::{Graph, ShapeMap};

/// One graph output: the secret value revealed to the client, and the client-side node
/// (Softmax / LogSoftmax) applied to it afterwards, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reveal {
    pub output: String,
    pub value: String,
    pub tail: Option<usize>,
}

/// The analysis of a graph for secure evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub input: String,
    /// Nodes the client runs in the clear after the reveal.
    pub tails: Vec<bool>,
    pub reveals: Vec<Reveal>,
    last_use: HashMap<String, usize>,
    keep: HashSet<String>,
}

impl Program {
    pub fn new(graph: &Graph) -> Result<Program> {
        let mut data = graph.data_inputs();
        let input = data.next().ok_or_else(|| IrError::InvalidGraph { reason: "graph has no input".into() })?;
        if let Some(extra) = data.next() {
            return Err(IrError::InvalidGraph {
                reason: format!("secure evaluation takes one input; the graph also needs {}", extra.name),
            }
            .into());
        }
        let mut readers: HashMap<&str, usize> = HashMap::new();
        let mut last_use = HashMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            for inp in &node.inputs {
                *readers.entry(inp.as_str()).or_default() += 1;
                last_use.insert(inp.clone(), i);
            }
        }
        let producer: HashMap<&str, usize> =
            graph.nodes.iter().enumerate().map(|(i, n)| (n.outputs[0].as_str(), i)).collect();
        let mut tails = vec![false; graph.nodes.len()];
        let mut reveals = Vec::new();
        for out in &graph.outputs {
            let mut r = Reveal { output: out.name.clone(), value: out.name.clone(), tail: None };
            if let Some(&i) = producer.get(out.name.as_str()) {
                let node = &graph.nodes[i];
                if masq_ir::cost::runs_at_client(graph, node) {
                    tails[i] = true;
                    r = Reveal { output: out.name.clone(), value: node.inputs[0].clone(), tail: Some(i) };
                }
            }
            if graph.initializers.contains_key(&r.value) {
                return Err(IrError::InvalidGraph { reason: format!("output {} is a constant", out.name) }.into());
            }
            reveals.push(r);
        }
        let keep = reveals.iter().map(|r| r.value.clone()).collect();
        Ok(Program { input: input.name.clone(), tails, reveals, last_use, keep })
    }

    /// Runs every secure node on backend `b`, starting from the input value `x`; returns the
    /// values to reveal, in the order of [`Program::reveals`]. Each node's output shape is
    /// checked against `shapes`.
    pub fn walk<B: Backend>(
        &self,
        b: &mut B,
        graph: &Graph,
        shapes: &ShapeMap,
        fp: FixedPoint,
        x: ArrayD<B::T>,
    ) -> Result<Vec<ArrayD<B::T>>> {
        let mut env: HashMap<String, ArrayD<B::T>> = HashMap::new();
        env.insert(self.input.clone(), x);
        for (i, node) in graph.nodes.iter().enumerate() {
            if self.tails[i] {
                continue;
            }
            b.node_start(i);
            let mut ins = Vec::with_capacity(node.inputs.len());
            for (k, name) in node.inputs.iter().enumerate() {
                if let Some(c) = graph.initializers.get(name) {
                    ins.push(Operand::Const(c));
                    continue;
                }
                let last = self.last_use.get(name) == Some(&i)
                    && !self.keep.contains(name)
                    && !node.inputs[k + 1..].contains(name);
                let v = if last { env.remove(name) } else { env.get(name).cloned() };
                let v = v.ok_or_else(|| IrError::DanglingInput {
                    node: node.name.clone(),
                    op: node.op.name().to_string(),
                    input: name.clone(),
                })?;
                ins.push(Operand::Secret(v));
            }
            let y = lower(b, graph, node, ins, fp)?;
            if let Some(want) = shapes.get(&node.outputs[0])
                && want.as_slice() != y.shape()
            {
                return Err(IrError::ShapeMismatch {
                    node: node.name.clone(),
                    op: node.op.name().to_string(),
                    expected: format!("output {want:?} (shape inference)"),
                    got: y.shape().to_vec(),
                }
                .into());
            }
            b.node_end(i);
            env.insert(node.outputs[0].clone(), y);
        }
        self.reveals
            .iter()
            .map(|r| {
                env.get(&r.value).cloned().ok_or_else(|| {
                    RuntimeError::from(IrError::NotFound { kind: "output value", name: r.value.clone() })
                })
            })
            .collect()
    }
}
