//! Who produces and who reads each value, the shapes at batch 1, and the numbering of
//! *channel elements*: one id per (value, channel) of every value of rank ≥ 2 (channels are axis 1).

use std::collections::{HashMap, HashSet};

use crate::error::{IrError, Result};
use crate::{Graph, Op, ShapeMap};

#[derive(Debug)]
pub(super) struct Index<'g> {
    pub graph: &'g Graph,
    /// Shapes at batch 1.
    pub shapes: ShapeMap,
    /// Value -> index of the node that produces it.
    pub producer: HashMap<&'g str, usize>,
    /// Value -> (node, input slot) of every read.
    pub readers: HashMap<&'g str, Vec<(usize, usize)>>,
    pub outputs: HashSet<&'g str>,
    /// First channel element of each tracked value.
    pub base: HashMap<&'g str, usize>,
    /// Tracked values in numbering order, with their first element and channel count.
    pub values: Vec<(&'g str, usize, usize)>,
    /// Number of channel elements.
    pub elems: usize,
}

impl<'g> Index<'g> {
    pub fn new(graph: &'g Graph) -> Result<Self> {
        graph.validate()?;
        let shapes = graph.infer_shapes(1)?;
        let mut producer = HashMap::new();
        let mut readers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            for (slot, input) in node.inputs.iter().enumerate() {
                readers.entry(input.as_str()).or_default().push((i, slot));
            }
            producer.insert(node.outputs[0].as_str(), i);
        }
        let outputs = graph.outputs.iter().map(|o| o.name.as_str()).collect();
        let mut index =
            Index { graph, shapes, producer, readers, outputs, base: HashMap::new(), values: Vec::new(), elems: 0 };
        // Graph inputs, then every initializer read as a node input, then node outputs.
        let mut order: Vec<&'g str> = graph.inputs.iter().map(|v| v.name.as_str()).collect();
        for node in &graph.nodes {
            order.extend(node.inputs.iter().map(String::as_str).filter(|n| graph.initializers.contains_key(*n)));
        }
        order.extend(graph.nodes.iter().map(|n| n.outputs[0].as_str()));
        for name in order {
            if index.base.contains_key(name) {
                continue;
            }
            if let Some(c) = index.channels(name) {
                index.base.insert(name, index.elems);
                index.values.push((name, index.elems, c));
                index.elems += c;
            }
        }
        Ok(index)
    }

    /// Channels (axis 1) of a value of rank ≥ 2.
    pub fn channels(&self, value: &str) -> Option<usize> {
        self.shapes.get(value).filter(|s| s.len() >= 2).map(|s| s[1])
    }

    pub fn shape(&self, value: &str) -> Result<&[usize]> {
        self.shapes
            .get(value)
            .map(Vec::as_slice)
            .ok_or_else(|| IrError::NotFound { kind: "shape of value", name: value.to_string() })
    }

    /// The element of channel `c` of a tracked value.
    pub fn elem(&self, value: &str, c: usize) -> Option<usize> {
        self.base.get(value).map(|b| b + c)
    }

    /// The one node that reads `value`, when exactly one read exists and it is not a graph output.
    pub fn sole_reader(&self, value: &str) -> Option<usize> {
        match self.readers.get(value).map(Vec::as_slice) {
            Some([(n, _)]) if !self.outputs.contains(value) => Some(*n),
            _ => None,
        }
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.graph.nodes.iter().position(|n| n.name == name)
    }

    pub fn is_initializer(&self, value: &str) -> bool {
        self.graph.initializers.contains_key(value)
    }

    /// The BatchNorm that reads a conv's output when nothing else does.
    pub fn exclusive_bn(&self, conv: usize) -> Option<usize> {
        let out = self.graph.nodes[conv].outputs[0].as_str();
        let reader = self.sole_reader(out)?;
        matches!(self.graph.nodes[reader].op, Op::BatchNorm(_)).then_some(reader)
    }
}

/// How many times each initializer is referred to (node inputs, op parameters, graph inputs and
/// outputs): a tensor referred to once may be changed in place, others are copied first.
pub(super) fn initializer_uses(graph: &Graph) -> HashMap<String, usize> {
    let mut uses: HashMap<String, usize> = HashMap::new();
    for node in &graph.nodes {
        for name in node.inputs.iter().map(String::as_str).chain(node.op.param_names()) {
            if graph.initializers.contains_key(name) {
                *uses.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    for v in graph.inputs.iter().chain(&graph.outputs) {
        if graph.initializers.contains_key(&v.name) {
            *uses.entry(v.name.clone()).or_default() += 2;
        }
    }
    uses
}

/// Store `tensor` as the new value of initializer `old` for one of its users: in place when that
/// user is the only one, else under a fresh name (returned) so that the other users keep theirs.
pub(super) fn put_initializer(
    graph: &mut Graph,
    uses: &mut HashMap<String, usize>,
    old: &str,
    user: &str,
    tensor: ndarray::ArrayD<f32>,
) -> String {
    let n = uses.get(old).copied().unwrap_or(0);
    if n <= 1 {
        graph.initializers.insert(old.to_string(), tensor);
        return old.to_string();
    }
    uses.insert(old.to_string(), n - 1);
    let name = crate::fold::fresh_name(graph, &format!("{old}.{user}"));
    graph.initializers.insert(name.clone(), tensor);
    uses.insert(name.clone(), 1);
    name
}
