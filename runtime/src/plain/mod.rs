//! Plaintext interpreter: runs an IR graph on f32 ndarrays, any batch size, one kernel file per op
//! family.
//!
//! ```
//! use masq_ir::zoo;
//! use masq_runtime::plain;
//! let g = zoo::build("mnist_cnn", None, 0).unwrap();
//! let x = ndarray::ArrayD::<f32>::zeros(vec![2, 1, 28, 28]);
//! let y = plain::run_single(&g, x).unwrap();
//! assert_eq!(y.shape(), &[2, 10]);
//! ```

mod activation;
mod conv;
mod elementwise;
mod linear;
mod norm;
mod pool;
mod reduce;
mod shape_ops;

pub(crate) use shape_ops::take;

use std::collections::HashMap;

use ndarray::ArrayD;

use masq_ir::{Graph, Node, Op, format_dims};
use masq_ir::{IrError, Result};

fn value<'a>(
    graph: &'a Graph,
    env: &'a HashMap<String, ArrayD<f32>>,
    node: &Node,
    i: usize,
) -> Result<&'a ArrayD<f32>> {
    let name = &node.inputs[i];
    env.get(name).or_else(|| graph.initializers.get(name)).ok_or_else(|| IrError::DanglingInput {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        input: name.clone(),
    })
}

/// Evaluate one node on its input values.
pub fn eval_node(graph: &Graph, node: &Node, ins: &[&ArrayD<f32>]) -> Result<ArrayD<f32>> {
    let need = node.op.arity().unwrap_or(1);
    if ins.len() < need {
        return Err(IrError::InvalidGraph {
            reason: format!("node {} ({}) has {} inputs, needs {need}", node.name, node.op.name(), ins.len()),
        });
    }
    let x = ins[0];
    let out = match &node.op {
        Op::Conv(c) => conv::conv2d(graph, node, c, x)?,
        Op::Gemm(c) => linear::gemm(graph, node, c, x)?,
        Op::MatMul(_) => linear::matmul(node, x, ins[1])?,
        Op::Add(_) => elementwise::binary(node, x, ins[1], |a, b| a + b)?,
        Op::Sub(_) => elementwise::binary(node, x, ins[1], |a, b| a - b)?,
        Op::Mul(_) => elementwise::binary(node, x, ins[1], |a, b| a * b)?,
        Op::Div(_) => elementwise::binary(node, x, ins[1], |a, b| a / b)?,
        Op::Pow(_) => elementwise::binary(node, x, ins[1], |a, b| (a as f64).powf(b as f64) as f32)?,
        Op::Relu => x.mapv(|v| v.max(0.0)),
        Op::Clip(c) => elementwise::clip(x, c),
        Op::LeakyRelu(c) => x.mapv(|v| if v >= 0.0 { v } else { c.alpha * v }),
        Op::Sigmoid => activation::sigmoid(x),
        Op::HardSigmoid(c) => activation::hard_sigmoid(x, c),
        Op::HardSwish => activation::hard_swish(x),
        Op::Tanh => activation::unary(x, f64::tanh),
        Op::Erf => activation::unary(x, masq_ir::special::erf),
        Op::Gelu(c) => activation::gelu(x, c),
        Op::Exp => activation::unary(x, f64::exp),
        Op::Sqrt => activation::unary(x, f64::sqrt),
        Op::Reciprocal => activation::unary(x, |v| 1.0 / v),
        Op::ReduceMean(c) => reduce::reduce(node, c, x, true)?,
        Op::ReduceSum(c) => reduce::reduce(node, c, x, false)?,
        Op::LayerNorm(c) => reduce::layer_norm(graph, node, c, x)?,
        Op::BatchNorm(c) => norm::batch_norm(graph, node, c, x)?,
        Op::MaxPool(c) => pool::max_pool(node, c, x)?,
        Op::AveragePool(c) => pool::avg_pool(node, c, x)?,
        Op::GlobalAveragePool => pool::global_avg_pool(node, x)?,
        Op::Flatten(c) => shape_ops::flatten(node, c, x)?,
        Op::Reshape(c) => shape_ops::reshape(node, c, x)?,
        Op::Transpose(c) => shape_ops::transpose(node, c, x)?,
        Op::Concat(c) => shape_ops::concat(node, c, ins)?,
        Op::Pad(c) => shape_ops::pad(node, c, x)?,
        Op::Slice(c) => shape_ops::slice(node, c, x)?,
        Op::Gather(c) => shape_ops::gather(node, c, x)?,
        Op::Identity => x.clone(),
        Op::FakeQuant(q) => x.mapv(|v| q.apply(v)),
        Op::Softmax(c) => elementwise::softmax(node, c, x, false)?,
        Op::LogSoftmax(c) => elementwise::softmax(node, c, x, true)?,
        Op::MaskedAct(c) => elementwise::masked_act(graph, node, c, x)?,
    };
    Ok(out)
}

/// Run the graph on named inputs; returns every graph output by name.
pub fn run(graph: &Graph, inputs: HashMap<String, ArrayD<f32>>) -> Result<HashMap<String, ArrayD<f32>>> {
    let mut env = inputs;
    let batch =
        graph.data_inputs().next().and_then(|v| env.get(&v.name)).map(|t| t.shape().first().copied().unwrap_or(1));
    let batch = batch.unwrap_or(1);
    for input in graph.data_inputs() {
        let t =
            env.get(&input.name).ok_or_else(|| IrError::NotFound { kind: "input value", name: input.name.clone() })?;
        if t.shape() != input.shape_at(batch).as_slice() {
            return Err(IrError::BadInput {
                name: input.name.clone(),
                expected: format_dims(&input.shape),
                got: t.shape().to_vec(),
            });
        }
    }
    // Every value's shape at this batch, before any work: a node whose output would exceed
    // `masq_ir::shape::MAX_ELEMENTS` (a Conv padded by 1e9, a Pad to 1e6 x 1e6) is an error naming
    // it, not an allocation of the file's choosing.
    graph.infer_shapes(batch)?;
    // Free each intermediate after its last use.
    let mut last_use: HashMap<&str, usize> = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        for input in &node.inputs {
            last_use.insert(input.as_str(), i);
        }
    }
    let keep: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        let ins: Vec<&ArrayD<f32>> =
            (0..node.inputs.len()).map(|k| value(graph, &env, node, k)).collect::<Result<_>>()?;
        let out = eval_node(graph, node, &ins)?;
        for input in &node.inputs {
            if last_use.get(input.as_str()) == Some(&i) && !keep.contains(&input.as_str()) {
                env.remove(input);
            }
        }
        let output = node.outputs.first().ok_or_else(|| IrError::InvalidGraph {
            reason: format!("node {} ({}) has no output", node.name, node.op.name()),
        })?;
        env.insert(output.clone(), out);
    }
    graph
        .outputs
        .iter()
        .map(|o| {
            let v = env.remove(&o.name).or_else(|| graph.initializers.get(&o.name).cloned());
            v.map(|v| (o.name.clone(), v))
                .ok_or_else(|| IrError::NotFound { kind: "output value", name: o.name.clone() })
        })
        .collect()
}

/// Run a graph with one data input and one output.
pub fn run_single(graph: &Graph, x: ArrayD<f32>) -> Result<ArrayD<f32>> {
    let input =
        graph.data_inputs().next().ok_or_else(|| IrError::InvalidGraph { reason: "graph has no input".into() })?;
    let output = graph.outputs.first().ok_or_else(|| IrError::InvalidGraph { reason: "graph has no output".into() })?;
    let name = output.name.clone();
    let mut outs = run(graph, HashMap::from([(input.name.clone(), x)]))?;
    outs.remove(&name).ok_or(IrError::NotFound { kind: "output value", name })
}
