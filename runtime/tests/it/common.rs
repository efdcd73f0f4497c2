//! ONNX protobuf builders shared by the tests that hand-build small models, and input helpers.
#![allow(dead_code)]

use masq_onnx::proto::*;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

pub fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f, ..Default::default() }
}

pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: ints.to_vec(), ..Default::default() }
}

pub fn attr_s(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::String as i32, s: s.into(), ..Default::default() }
}

pub fn attr_t(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Tensor as i32, t: Some(t), ..Default::default() }
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// A float tensor value; a 0 dimension is symbolic (`N`); `None`: no shape.
pub fn value(name: &str, dims: Option<&[i64]>) -> ValueInfoProto {
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| {
                if d == 0 {
                    Dimension { dim_param: Some("N".into()), ..Default::default() }
                } else {
                    Dimension { dim_value: Some(d), ..Default::default() }
                }
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: data_type::FLOAT, shape }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Seeded uniform values in [-1, 1).
pub fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap()
}

/// `[batch, dims...]` filled with `values` repeated in order.
pub fn repeated(batch: usize, dims: &[usize], values: &[f32]) -> ArrayD<f32> {
    let mut shape = vec![batch];
    shape.extend_from_slice(dims);
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(shape, (0..n).map(|i| values[i % values.len()]).collect()).unwrap()
}
