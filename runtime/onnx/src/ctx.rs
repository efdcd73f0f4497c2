//! The import context: the ONNX node being translated (typed attribute access) and the state of
//! the IR graph being built (constants, shapes at batch 1).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use ndarray::ArrayD;

use crate::proto::{AttributeProto, AttributeType, NodeProto, TensorProto};
use crate::tensor::Const;
use masq_ir::shape::infer_node;
use masq_ir::{Graph, Node, Op, QuantParams};
use masq_ir::{IrError, Result};

/// A value an ONNX attribute can be read as.
pub(crate) trait FromAttr: Sized {
    const KIND: AttributeType;
    fn get(a: &AttributeProto) -> Self;
}

impl FromAttr for i64 {
    const KIND: AttributeType = AttributeType::Int;
    fn get(a: &AttributeProto) -> Self {
        a.i
    }
}
impl FromAttr for f32 {
    const KIND: AttributeType = AttributeType::Float;
    fn get(a: &AttributeProto) -> Self {
        a.f
    }
}
impl FromAttr for String {
    const KIND: AttributeType = AttributeType::String;
    fn get(a: &AttributeProto) -> Self {
        String::from_utf8_lossy(&a.s).into_owned()
    }
}
impl FromAttr for Vec<i64> {
    const KIND: AttributeType = AttributeType::Ints;
    fn get(a: &AttributeProto) -> Self {
        a.ints.clone()
    }
}
impl FromAttr for Vec<f32> {
    const KIND: AttributeType = AttributeType::Floats;
    fn get(a: &AttributeProto) -> Self {
        a.floats.clone()
    }
}
impl FromAttr for TensorProto {
    const KIND: AttributeType = AttributeType::Tensor;
    fn get(a: &AttributeProto) -> Self {
        a.t.clone().unwrap_or_default()
    }
}

/// One ONNX node under translation.
#[derive(Debug)]
pub(crate) struct OnnxNode<'a> {
    pub proto: &'a NodeProto,
    /// The node's name, or `op_type#index` when the file leaves it empty.
    pub name: String,
    pub opset: i64,
}

impl OnnxNode<'_> {
    pub fn op(&self) -> &str {
        &self.proto.op_type
    }

    /// Optional attribute of a given type; a type mismatch is an error.
    pub fn attr_opt<T: FromAttr>(&self, name: &str) -> Result<Option<T>> {
        let Some(a) = self.proto.attribute.iter().find(|a| a.name == name) else { return Ok(None) };
        if a.r#type != T::KIND as i32 && a.r#type != AttributeType::Undefined as i32 {
            let got =
                AttributeType::try_from(a.r#type).map(|t| format!("{t:?}")).unwrap_or_else(|_| a.r#type.to_string());
            return Err(self.bad_attr(name, &format!("expected {:?}, found {got}", T::KIND)));
        }
        Ok(Some(T::get(a)))
    }

    /// Required attribute.
    pub fn attr<T: FromAttr>(&self, name: &str) -> Result<T> {
        self.attr_opt(name)?.ok_or_else(|| self.bad_attr(name, "missing"))
    }

    pub fn attr_or<T: FromAttr>(&self, name: &str, default: T) -> Result<T> {
        Ok(self.attr_opt(name)?.unwrap_or(default))
    }

    /// Name of input `i`, `None` when absent or empty (an omitted optional input).
    pub fn input(&self, i: usize) -> Option<&str> {
        self.proto.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn output(&self) -> &str {
        self.proto.output.first().map(String::as_str).unwrap_or("")
    }

    pub fn bad_attr(&self, attr: &str, reason: &str) -> IrError {
        IrError::BadAttribute {
            node: self.name.clone(),
            op: self.op().to_string(),
            attr: attr.to_string(),
            reason: reason.to_string(),
        }
    }

    pub fn unsupported(&self, reason: impl Into<String>) -> IrError {
        IrError::UnsupportedConfig { node: self.name.clone(), op: self.op().to_string(), reason: reason.into() }
    }

    /// Normalise a possibly negative axis against a rank.
    pub fn axis(&self, attr: &str, axis: i64, rank: usize) -> Result<usize> {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        if a < 0 || a >= rank.max(1) as i64 {
            return Err(self.bad_attr(attr, &format!("axis {axis} out of range for rank {rank}")));
        }
        Ok(a as usize)
    }
}

/// An ONNX node (or the graph's outputs) reading a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Consumer {
    /// The op type, or [`Consumer::GRAPH_OUTPUT`].
    pub op: String,
    pub node: String,
}

impl Consumer {
    pub const GRAPH_OUTPUT: &'static str = "(graph output)";
}

/// A QuantizeLinear of a computed value, waiting for the DequantizeLinear nodes that read it.
#[derive(Debug, Clone)]
pub(crate) struct Quantized {
    /// The IR value quantized.
    pub x: String,
    pub shape: Vec<usize>,
    pub params: crate::qdq::Params,
    /// The QuantizeLinear node.
    pub node: String,
}

/// The state of an import.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub file: PathBuf,
    pub graph: Graph,
    /// Constant values (initializers and folded results), by ONNX value name.
    pub consts: HashMap<String, Const>,
    /// Shapes at batch 1 of every non-constant value.
    pub shapes: HashMap<String, Vec<usize>>,
    /// Whether the graph input has a symbolic batch dimension.
    pub has_batch: bool,
    /// The ONNX node each IR node was built from (for errors).
    pub producers: HashMap<String, usize>,
    /// Every value some ONNX node or graph output reads (to tell an unused optional output).
    pub consumed: HashSet<String>,
    /// Who reads each value (the QDQ pattern checks that only DequantizeLinear reads integers).
    pub consumers: HashMap<String, Vec<Consumer>>,
    /// QuantizeLinear outputs of computed values, by ONNX value name (they have no IR value).
    pub quantized: HashMap<String, Quantized>,
    /// Set when a node refused to read across a symbolic batch axis ([`Ctx::batch_guard`]): the
    /// import is then retried with the batch pinned to 1.
    pub batch_refused: std::cell::Cell<bool>,
    /// Elements constant folding may still create ([`Ctx::charge_fold`]).
    pub fold_budget: std::cell::Cell<usize>,
}

/// Elements constant folding may create in one import beyond [`FOLD_PER_WEIGHT`] per initializer
/// element of the file: 2^26 (512 MiB of folded f64 values).
pub const FOLD_BASE: usize = 1 << 26;
/// Folded elements allowed per initializer element of the file (a folded Mul, Cast or Transpose of
/// each weight costs one).
pub const FOLD_PER_WEIGHT: usize = 4;

impl Ctx {
    pub fn new(file: PathBuf, graph: Graph) -> Self {
        Ctx {
            file,
            graph,
            consts: HashMap::new(),
            shapes: HashMap::new(),
            has_batch: false,
            producers: HashMap::new(),
            consumed: HashSet::new(),
            consumers: HashMap::new(),
            quantized: HashMap::new(),
            batch_refused: std::cell::Cell::new(false),
            fold_budget: std::cell::Cell::new(FOLD_BASE),
        }
    }

    /// Check, before it is computed, that a folded result of `shape` fits: at most
    /// [`masq_ir::shape::MAX_ELEMENTS`] elements and within what is left of the import's folding
    /// budget ([`FOLD_BASE`] plus [`FOLD_PER_WEIGHT`] per initializer element). Errors name the
    /// node and the shape.
    pub fn check_fold(&self, n: &OnnxNode, shape: &[usize]) -> Result<usize> {
        let count = masq_ir::shape::check_elements(|| format!("node {} ({}): folded constant", n.name, n.op()), shape)?;
        let left = self.fold_budget.get();
        if count > left {
            return Err(n.unsupported(format!(
                "folding it makes a constant of shape {shape:?} ({count} elements), more than the {left} elements \
                 left of this import's folding budget ({FOLD_BASE} plus {FOLD_PER_WEIGHT} per weight element)"
            )));
        }
        Ok(count)
    }

    /// [`Ctx::check_fold`], then take the elements from the budget.
    pub fn charge_fold(&self, n: &OnnxNode, shape: &[usize]) -> Result<()> {
        let count = self.check_fold(n, shape)?;
        self.fold_budget.set(self.fold_budget.get() - count);
        Ok(())
    }

    /// Refuse `what` (something that reads across axis 0) when the graph input has a symbolic
    /// batch: such a graph claims to run each image of a batch independently. With a fixed leading
    /// dimension axis 0 is an ordinary axis (the batch pass decides later whether the graph can be
    /// generalised to other batches). A refusal makes the importer start over at batch 1.
    pub fn batch_guard(&self, n: &OnnxNode, what: &str) -> Result<()> {
        if self.has_batch {
            self.batch_refused.set(true);
            return Err(n.unsupported(format!("{what} of a graph whose input has a symbolic batch")));
        }
        Ok(())
    }

    fn dangling(&self, n: &OnnxNode, input: &str) -> IrError {
        IrError::MalformedNode {
            file: self.file.clone(),
            node: format!("{} ({})", n.name, n.op()),
            reason: format!("input {input:?} is not produced by any earlier node, graph input or initializer"),
        }
    }

    /// Input `i` as a constant, `None` if the input is absent; an error if it is not constant.
    pub fn konst(&self, n: &OnnxNode, i: usize, what: &str) -> Result<Option<&Const>> {
        let Some(name) = n.input(i) else { return Ok(None) };
        if let Some(c) = self.consts.get(name) {
            return Ok(Some(c));
        }
        if self.shapes.contains_key(name) {
            return Err(n.unsupported(format!("input {i} ({what}) must be a constant")));
        }
        Err(self.dangling(n, name))
    }

    pub fn require_const(&self, n: &OnnxNode, i: usize, what: &str) -> Result<&Const> {
        self.konst(n, i, what)?.ok_or_else(|| n.unsupported(format!("missing input {i} ({what})")))
    }

    /// Whether input `i` is present and constant.
    pub fn is_const(&self, n: &OnnxNode, i: usize) -> bool {
        n.input(i).is_some_and(|s| self.consts.contains_key(s))
    }

    /// Input `i` as an IR value name; constants become initializers.
    pub fn value(&mut self, n: &OnnxNode, i: usize) -> Result<String> {
        let name = n.input(i).ok_or_else(|| n.unsupported(format!("missing input {i}")))?.to_string();
        if self.shapes.contains_key(&name) {
            return Ok(name);
        }
        if let Some(c) = self.consts.get(&name) {
            if !self.graph.initializers.contains_key(&name) {
                let t = c.to_f32();
                self.graph.initializers.insert(name.clone(), t);
            }
            return Ok(name);
        }
        Err(self.dangling(n, &name))
    }

    /// Shape of input `i` at batch 1 (constant or not).
    pub fn shape(&self, n: &OnnxNode, i: usize) -> Result<Vec<usize>> {
        let name = n.input(i).ok_or_else(|| n.unsupported(format!("missing input {i}")))?;
        if let Some(s) = self.shapes.get(name) {
            return Ok(s.clone());
        }
        if let Some(c) = self.consts.get(name) {
            return Ok(c.data.shape().to_vec());
        }
        Err(self.dangling(n, name))
    }

    /// Add an f32 parameter under a fresh name derived from `base`.
    pub fn add_param(&mut self, base: &str, t: ArrayD<f32>) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.graph.initializers.contains_key(&name)
            || self.consts.contains_key(&name)
            || self.shapes.contains_key(&name)
        {
            name = format!("{base}.{k}");
            k += 1;
        }
        self.graph.initializers.insert(name.clone(), t);
        name
    }

    /// Records in `Graph::weight_quant` the grid of constant input `i` (a per-tensor
    /// DequantizeLinear result) for the weight initializer `weight` made from it unchanged or
    /// transposed.
    pub fn record_weight_quant(&mut self, n: &OnnxNode, i: usize, weight: &str) {
        let q: Option<QuantParams> = n.input(i).and_then(|name| self.consts.get(name)).and_then(|c| c.quant);
        if let Some(q) = q {
            self.graph.weight_quant.insert(weight.to_string(), q);
        }
    }

    /// A fresh value name derived from `base` (for intermediate values of multi-node lowerings).
    pub fn add_value_name(&self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.graph.initializers.contains_key(&name)
            || self.consts.contains_key(&name)
            || self.shapes.contains_key(&name)
        {
            name = format!("{base}.{k}");
            k += 1;
        }
        name
    }

    /// Append an IR node built from `n`, infer its output shape and record it.
    pub fn push(
        &mut self,
        n: &OnnxNode,
        suffix: Option<&str>,
        op: Op,
        inputs: Vec<String>,
        output: String,
    ) -> Result<()> {
        let mut name = match suffix {
            Some(s) => format!("{}/{s}", n.name),
            None => n.name.clone(),
        };
        while self.graph.nodes.iter().any(|x| x.name == name) {
            name.push('_');
        }
        let node = Node { name, op, inputs, outputs: vec![output.clone()] };
        let ins: Vec<&[usize]> =
            node.inputs.iter().map(|i| self.shape_of_value(i)).collect::<Option<_>>().ok_or_else(|| {
                IrError::InvalidGraph { reason: format!("node {}: input without a known shape", node.name) }
            })?;
        let shape = infer_node(&self.graph, &node, &ins)?;
        self.shapes.insert(output.clone(), shape);
        self.producers.insert(output, self.graph.nodes.len());
        self.graph.nodes.push(node);
        Ok(())
    }

    fn shape_of_value(&self, name: &str) -> Option<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice).or_else(|| self.graph.initializers.get(name).map(|t| t.shape()))
    }

    /// The IR node producing a value, if any.
    pub fn producer(&self, value: &str) -> Option<&Node> {
        self.producers.get(value).map(|&i| &self.graph.nodes[i])
    }
}
