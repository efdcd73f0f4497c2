//! IR -> ONNX: one `ModelProto` (this crate's prost messages) with standard ops of the default
//! domain only and every weight as an initializer.
//!
//! A `MaskedAct` on `x` with output `y` becomes
//! `y = Where(mask, Relu(x), g(x))`, with `g(x) = x` (identity) or, in Horner form matching the
//! interpreter, `g(x) = Add(Mul(Add(Mul(x, c2), c1), x), c0)`. The mask is a BOOL initializer of the
//! per-image shape (`[C, H, W]`, broadcast over the batch); the coefficients are initializers of
//! shape `[C, 1, 1]` (right-aligned to the channel axis). The `Where` node is named after the site
//! and its `doc_string` holds a [`MaskedActAnnotation`].
//!
//! Quantization is written in the QDQ format ([`quant`]): a `FakeQuant` as QuantizeLinear ->
//! DequantizeLinear (and a Clip for a range narrower than its integer type), each weight of
//! `Graph::weight_quant` as integers and a DequantizeLinear.

use std::collections::HashSet;

use crate::annotation::MaskedActAnnotation;
use crate::proto::{
    AttributeProto, AttributeType, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, data_type,
};
use masq_ir::Graph;
use masq_ir::{Dim, IrError, Node, Op, Replacement, ValueInfo};
use ndarray::ArrayD;

mod quant;

/// Opsets the encoder writes.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// The ONNX IR version that goes with an opset of the default domain.
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

fn f32_tensor(name: &str, t: &ArrayD<f32>) -> TensorProto {
    f32_raw(name, &t.shape().iter().map(|&d| d as i64).collect::<Vec<_>>(), t.iter().copied())
}

fn f32_raw(name: &str, dims: &[i64], values: impl Iterator<Item = f32>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: values.flat_map(f32::to_le_bytes).collect(),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: data_type::INT64,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn bool_tensor(name: &str, t: &ArrayD<u8>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: data_type::BOOL,
        raw_data: t.iter().map(|&v| (v != 0) as u8).collect(),
        ..Default::default()
    }
}

fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f, ..Default::default() }
}

fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn value_info(v: &ValueInfo) -> ValueInfoProto {
    let dim = v
        .shape
        .iter()
        .map(|d| match d {
            Dim::Batch => Dimension { dim_param: Some("batch".into()), ..Default::default() },
            Dim::Fixed(n) => Dimension { dim_value: Some(*n as i64), ..Default::default() },
        })
        .collect();
    ValueInfoProto {
        name: v.name.clone(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: data_type::FLOAT, shape: Some(TensorShapeProto { dim }) }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

struct Enc<'g> {
    graph: &'g Graph,
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    taken: HashSet<String>,
    /// Activation ranks at batch 1, by value name.
    ranks: std::collections::HashMap<String, usize>,
}

impl Enc<'_> {
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.taken.contains(&name) {
            name = format!("{base}.{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn node(&mut self, name: &str, op_type: &str, inputs: Vec<String>, output: &str, attrs: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute: attrs,
            ..Default::default()
        });
    }

    fn unsupported(&self, node: &Node, reason: impl Into<String>) -> IrError {
        IrError::CannotExport {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            opset: self.opset,
            reason: reason.into(),
        }
    }

    fn add_i64(&mut self, base: &str, values: &[i64]) -> String {
        let name = self.fresh(base);
        self.inits.push(i64_tensor(&name, values));
        name
    }

    fn add_scalar(&mut self, base: &str, v: f32) -> String {
        let name = self.fresh(base);
        self.inits.push(f32_raw(&name, &[], std::iter::once(v)));
        name
    }

    fn encode_node(&mut self, node: &Node) -> Result<(), IrError> {
        let out = node.outputs[0].clone();
        let ins = node.inputs.clone();
        let name = node.name.as_str();
        match &node.op {
            Op::Conv(c) => {
                let mut inputs = vec![ins[0].clone(), c.weight.clone()];
                inputs.extend(c.bias.clone());
                let attrs = vec![
                    attr_ints("kernel_shape", &c.kernel),
                    attr_ints("strides", &c.stride),
                    attr_ints("pads", &c.padding),
                    attr_ints("dilations", &c.dilation),
                    attr_i("group", c.groups as i64),
                ];
                self.node(name, "Conv", inputs, &out, attrs);
            }
            Op::Gemm(c) => {
                let mut inputs = vec![ins[0].clone(), c.weight.clone()];
                inputs.extend(c.bias.clone());
                self.node(name, "Gemm", inputs, &out, vec![attr_i("transB", 1)]);
            }
            Op::MatMul(_) => self.node(name, "MatMul", ins, &out, vec![]),
            Op::Add(_) => self.node(name, "Add", ins, &out, vec![]),
            Op::Sub(_) => self.node(name, "Sub", ins, &out, vec![]),
            Op::Mul(_) => self.node(name, "Mul", ins, &out, vec![]),
            Op::Div(_) => self.node(name, "Div", ins, &out, vec![]),
            Op::Pow(_) => self.node(name, "Pow", ins, &out, vec![]),
            Op::Sigmoid => self.node(name, "Sigmoid", ins, &out, vec![]),
            Op::Tanh => self.node(name, "Tanh", ins, &out, vec![]),
            Op::Erf => self.node(name, "Erf", ins, &out, vec![]),
            Op::Exp => self.node(name, "Exp", ins, &out, vec![]),
            Op::Sqrt => self.node(name, "Sqrt", ins, &out, vec![]),
            Op::Reciprocal => self.node(name, "Reciprocal", ins, &out, vec![]),
            Op::HardSigmoid(c) => {
                let attrs = vec![attr_f("alpha", c.alpha), attr_f("beta", c.beta)];
                self.node(name, "HardSigmoid", ins, &out, attrs);
            }
            Op::HardSwish => {
                if self.opset < 14 {
                    return Err(self.unsupported(node, "HardSwish needs opset 14 or later"));
                }
                self.node(name, "HardSwish", ins, &out, vec![]);
            }
            Op::Gelu(c) => {
                if self.opset >= 20 {
                    let approx = if c.tanh { "tanh" } else { "none" };
                    self.node(name, "Gelu", ins, &out, vec![attr_s("approximate", approx)]);
                } else if c.tanh {
                    return Err(self.unsupported(node, "tanh-approximated Gelu needs opset 20 or later"));
                } else {
                    // 0.5·x·(1 + erf(x/√2))
                    let x = ins[0].clone();
                    let r = self.add_scalar(&format!("{name}.inv_sqrt2"), std::f32::consts::FRAC_1_SQRT_2);
                    let (half, one) =
                        (self.add_scalar(&format!("{name}.half"), 0.5), self.add_scalar(&format!("{name}.one"), 1.0));
                    let t1 = self.fresh(&format!("{name}/scaled"));
                    self.node(&t1, "Mul", vec![x.clone(), r], &t1, vec![]);
                    let t2 = self.fresh(&format!("{name}/erf"));
                    self.node(&t2, "Erf", vec![t1], &t2, vec![]);
                    let t3 = self.fresh(&format!("{name}/one_plus"));
                    self.node(&t3, "Add", vec![t2, one], &t3, vec![]);
                    let t4 = self.fresh(&format!("{name}/half_x"));
                    self.node(&t4, "Mul", vec![x, half], &t4, vec![]);
                    self.node(name, "Mul", vec![t4, t3], &out, vec![]);
                }
            }
            Op::ReduceMean(c) | Op::ReduceSum(c) => {
                let op = if matches!(node.op, Op::ReduceMean(_)) { "ReduceMean" } else { "ReduceSum" };
                let axes: Vec<i64> = c.axes.iter().map(|&a| a as i64).collect();
                let keep = attr_i("keepdims", c.keepdims as i64);
                // Axes became an input in opset 13 (ReduceSum) and 18 (ReduceMean).
                let as_input = if op == "ReduceSum" { self.opset >= 13 } else { self.opset >= 18 };
                if as_input {
                    let a = self.add_i64(&format!("{name}.axes"), &axes);
                    self.node(name, op, vec![ins[0].clone(), a], &out, vec![keep]);
                } else {
                    self.node(name, op, ins, &out, vec![attr_ints("axes", &c.axes), keep]);
                }
            }
            Op::LayerNorm(c) => {
                if self.opset < 17 {
                    return Err(self.unsupported(node, "LayerNormalization needs opset 17 or later"));
                }
                let scale = match &c.scale {
                    Some(s) => s.clone(),
                    None => {
                        return Err(self.unsupported(node, "LayerNormalization without a scale tensor"));
                    }
                };
                let mut inputs = vec![ins[0].clone(), scale];
                inputs.extend(c.bias.clone());
                let attrs = vec![attr_i("axis", c.axis as i64), attr_f("epsilon", c.epsilon)];
                self.node(name, "LayerNormalization", inputs, &out, attrs);
            }
            Op::Relu => self.node(name, "Relu", ins, &out, vec![]),
            Op::Identity => self.node(name, "Identity", ins, &out, vec![]),
            Op::FakeQuant(q) => self.fake_quant(node, q)?,
            Op::GlobalAveragePool => self.node(name, "GlobalAveragePool", ins, &out, vec![]),
            Op::Clip(c) => {
                let mut inputs = vec![ins[0].clone()];
                let min = c.min.map(|v| self.add_scalar(&format!("{name}.min"), v));
                let max = c.max.map(|v| self.add_scalar(&format!("{name}.max"), v));
                match (min, max) {
                    (Some(a), Some(b)) => inputs.extend([a, b]),
                    (Some(a), None) => inputs.push(a),
                    (None, Some(b)) => inputs.extend([String::new(), b]),
                    (None, None) => {}
                }
                self.node(name, "Clip", inputs, &out, vec![]);
            }
            Op::LeakyRelu(c) => self.node(name, "LeakyRelu", ins, &out, vec![attr_f("alpha", c.alpha)]),
            Op::BatchNorm(c) => {
                let inputs = vec![ins[0].clone(), c.scale.clone(), c.bias.clone(), c.mean.clone(), c.var.clone()];
                self.node(name, "BatchNormalization", inputs, &out, vec![attr_f("epsilon", c.epsilon)]);
            }
            Op::MaxPool(c) | Op::AveragePool(c) => {
                let max = matches!(node.op, Op::MaxPool(_));
                let mut attrs = vec![
                    attr_ints("kernel_shape", &c.kernel),
                    attr_ints("strides", &c.stride),
                    attr_ints("pads", &c.padding),
                    attr_i("ceil_mode", c.ceil_mode as i64),
                ];
                if max || self.opset >= 19 {
                    attrs.push(attr_ints("dilations", &c.dilation));
                } else if c.dilation != [1, 1] {
                    return Err(self.unsupported(node, "dilated AveragePool needs opset 19 or later"));
                }
                if !max {
                    attrs.push(attr_i("count_include_pad", c.count_include_pad as i64));
                }
                self.node(name, if max { "MaxPool" } else { "AveragePool" }, ins, &out, attrs);
            }
            Op::Flatten(c) => self.node(name, "Flatten", ins, &out, vec![attr_i("axis", c.axis as i64)]),
            Op::Reshape(c) => {
                let shape = self.add_i64(&format!("{name}.shape"), &c.shape);
                self.node(name, "Reshape", vec![ins[0].clone(), shape], &out, vec![]);
            }
            Op::Transpose(c) => self.node(name, "Transpose", ins, &out, vec![attr_ints("perm", &c.perm)]),
            Op::Concat(c) => self.node(name, "Concat", ins, &out, vec![attr_i("axis", c.axis as i64)]),
            Op::Pad(c) => {
                let mut pads: Vec<i64> = c.pads.iter().map(|p| p.0 as i64).collect();
                pads.extend(c.pads.iter().map(|p| p.1 as i64));
                let pads = self.add_i64(&format!("{name}.pads"), &pads);
                let value = self.add_scalar(&format!("{name}.value"), c.value);
                self.node(name, "Pad", vec![ins[0].clone(), pads, value], &out, vec![]);
            }
            Op::Slice(c) => {
                let v = |x: &[usize]| x.iter().map(|&v| v as i64).collect::<Vec<i64>>();
                // `end` is clamped by ONNX too; usize::MAX does not fit i64.
                let ends: Vec<i64> = c.ends.iter().map(|&e| e.min(i64::MAX as usize) as i64).collect();
                let inputs = vec![
                    ins[0].clone(),
                    self.add_i64(&format!("{name}.starts"), &v(&c.starts)),
                    self.add_i64(&format!("{name}.ends"), &ends),
                    self.add_i64(&format!("{name}.axes"), &v(&c.axes)),
                    self.add_i64(&format!("{name}.steps"), &v(&c.steps)),
                ];
                self.node(name, "Slice", inputs, &out, vec![]);
            }
            Op::Gather(c) => {
                let idx: Vec<i64> = c.indices.iter().map(|&i| i as i64).collect();
                let iname = self.fresh(&format!("{name}.indices"));
                let dims: Vec<i64> = c.indices_shape.iter().map(|&d| d as i64).collect();
                self.inits.push(TensorProto { dims, ..i64_tensor(&iname, &idx) });
                self.node(name, "Gather", vec![ins[0].clone(), iname], &out, vec![attr_i("axis", c.axis as i64)]);
            }
            Op::Softmax(c) => self.node(name, "Softmax", ins, &out, vec![attr_i("axis", c.axis as i64)]),
            Op::LogSoftmax(c) => self.node(name, "LogSoftmax", ins, &out, vec![attr_i("axis", c.axis as i64)]),
            Op::MaskedAct(c) => {
                let x = ins[0].clone();
                let mask = self.graph.masks.get(&c.mask).ok_or_else(|| self.unsupported(node, "mask missing"))?;
                self.taken.insert(c.mask.clone());
                self.inits.push(bool_tensor(&c.mask, mask));
                let relu = self.fresh(&format!("{name}/relu"));
                match c.cap {
                    None => self.node(&relu, "Relu", vec![x.clone()], &relu, vec![]),
                    Some(cap) => {
                        let lo = self.add_scalar(&format!("{name}.min"), 0.0);
                        let hi = self.add_scalar(&format!("{name}.max"), cap);
                        self.node(&relu, "Clip", vec![x.clone(), lo, hi], &relu, vec![]);
                    }
                }
                let rank = self.ranks.get(&x).copied().unwrap_or(4);
                let (other, coefficients) = match &c.replacement {
                    Replacement::Identity => (x.clone(), None),
                    Replacement::Poly { c2, c1, c0 } => {
                        // [C] -> [C, 1, ...] right-aligned to the channel axis of x.
                        let mut b = |n: &str| -> Result<String, IrError> {
                            let t = self.graph.initializer(node, n)?;
                            let mut dims = vec![t.len() as i64];
                            dims.extend(std::iter::repeat_n(1, rank.saturating_sub(2)));
                            let bname = self.fresh(&format!("{n}.bcast"));
                            self.inits.push(f32_raw(&bname, &dims, t.iter().copied()));
                            Ok(bname)
                        };
                        let (b2, b1, b0) = (b(c2)?, b(c1)?, b(c0)?);
                        let t1 = self.fresh(&format!("{name}/x_c2"));
                        self.node(&t1, "Mul", vec![x.clone(), b2], &t1, vec![]);
                        let t2 = self.fresh(&format!("{name}/x_c2_c1"));
                        self.node(&t2, "Add", vec![t1, b1], &t2, vec![]);
                        let t3 = self.fresh(&format!("{name}/x2_c2_x_c1"));
                        self.node(&t3, "Mul", vec![t2, x.clone()], &t3, vec![]);
                        let g = self.fresh(&format!("{name}/poly"));
                        self.node(&g, "Add", vec![t3, b0], &g, vec![]);
                        (g, Some([c2.clone(), c1.clone(), c0.clone()]))
                    }
                };
                let ann = MaskedActAnnotation {
                    site: node.name.clone(),
                    mask: c.mask.clone(),
                    replacement: if coefficients.is_some() { "poly" } else { "identity" }.to_string(),
                    coefficients,
                };
                self.node(name, "Where", vec![c.mask.clone(), relu, other], &out, vec![]);
                if let Some(last) = self.nodes.last_mut() {
                    last.doc_string = ann.to_doc_string();
                }
            }
        }
        Ok(())
    }
}

/// The calibrated comparison widths as `metadata_props` (`masq.cmp_bits`, a JSON object of node
/// name to bits); none when the graph has none.
fn cmp_bits_props(graph: &Graph) -> Result<Vec<crate::proto::StringStringEntryProto>, IrError> {
    if graph.cmp_bits.is_empty() {
        return Ok(Vec::new());
    }
    let value = serde_json::to_string(&graph.cmp_bits)
        .map_err(|e| IrError::InvalidGraph { reason: format!("comparison widths to JSON: {e}") })?;
    let mut props = vec![crate::proto::StringStringEntryProto { key: crate::import::META_CMP_BITS.into(), value }];
    if let Some(f) = graph.cmp_frac_bits {
        props.push(crate::proto::StringStringEntryProto {
            key: crate::import::META_CMP_FRAC_BITS.into(),
            value: f.to_string(),
        });
    }
    Ok(props)
}

/// Encode a validated, finalized graph. Initializers that only feed polynomial coefficients are
/// written in their broadcast form only.
pub fn encode(graph: &Graph, opset: i64, doc: &str) -> Result<ModelProto, IrError> {
    if !OPSETS.contains(&opset) {
        return Err(IrError::InvalidGraph {
            reason: format!(
                "opset {opset} is outside the range the exporter writes ({}..={})",
                OPSETS.start(),
                OPSETS.end()
            ),
        });
    }
    let shapes = graph.infer_shapes(1)?;
    let mut taken: HashSet<String> = shapes.keys().cloned().collect();
    taken.extend(graph.nodes.iter().map(|n| n.name.clone()));
    taken.extend(graph.masks.keys().cloned());
    let ranks = shapes.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    let mut enc = Enc { graph, opset, nodes: Vec::new(), inits: Vec::new(), taken, ranks };

    // Coefficients used only by MaskedAct nodes are written broadcast, not as-is.
    let mut coef_only: HashSet<&str> = HashSet::new();
    let mut other_use: HashSet<&str> = HashSet::new();
    for node in &graph.nodes {
        if let Op::MaskedAct(c) = &node.op {
            if let Replacement::Poly { c2, c1, c0 } = &c.replacement {
                coef_only.extend([c2.as_str(), c1.as_str(), c0.as_str()]);
            }
        } else {
            other_use.extend(node.inputs.iter().map(String::as_str));
            other_use.extend(node.op.param_names());
        }
    }
    for (name, t) in &graph.initializers {
        if coef_only.contains(name.as_str()) && !other_use.contains(name.as_str()) {
            continue;
        }
        match graph.weight_quant.get(name) {
            Some(q) => enc.quantized_weight(name, t, q),
            None => enc.inits.push(f32_tensor(name, t)),
        }
    }
    for node in &graph.nodes {
        enc.encode_node(node)?;
    }
    let g = GraphProto {
        node: enc.nodes,
        name: graph.name.clone(),
        initializer: enc.inits,
        doc_string: String::new(),
        input: graph.data_inputs().map(value_info).collect(),
        output: graph.outputs.iter().map(value_info).collect(),
        value_info: Vec::new(),
    };
    Ok(ModelProto {
        ir_version: ir_version_for(opset),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "masq".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: doc.to_string(),
        graph: Some(g),
        metadata_props: cmp_bits_props(graph)?,
    })
}
