//! A small graph builder for the zoo: tracks shapes (batch 1) and creates seeded random weights.

use std::collections::HashMap;

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::shape::infer_node;
use crate::*;

#[derive(Debug)]
pub(crate) struct Builder {
    graph: Graph,
    rng: ChaCha8Rng,
    shapes: HashMap<String, Vec<usize>>,
    pub(crate) input: String,
}

impl Builder {
    pub(crate) fn new(name: &str, (c, h, w): (usize, usize, usize), seed: u64) -> Self {
        let mut graph = Graph::new(name);
        graph.inputs.push(ValueInfo::batched("input", &[c, h, w]));
        let shapes = HashMap::from([("input".to_string(), vec![1, c, h, w])]);
        Builder { graph, rng: ChaCha8Rng::seed_from_u64(seed), shapes, input: "input".to_string() }
    }

    pub(crate) fn shape(&self, value: &str) -> &[usize] {
        &self.shapes[value]
    }

    /// Append a node whose output value has the node's name.
    pub(crate) fn push(&mut self, name: &str, op: Op, inputs: &[&str]) -> Result<String> {
        let node = Node::new(name, op, inputs, &[name]);
        let ins: Vec<&[usize]> = inputs.iter().map(|i| self.shapes[*i].as_slice()).collect();
        let out = infer_node(&self.graph, &node, &ins)?;
        self.shapes.insert(name.to_string(), out);
        self.graph.nodes.push(node);
        Ok(name.to_string())
    }

    pub(crate) fn uniform(&mut self, name: &str, shape: &[usize], lo: f32, hi: f32) -> String {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.random_range(lo..hi)).collect();
        self.graph
            .initializers
            .insert(name.to_string(), ArrayD::from_shape_vec(shape.to_vec(), v).expect("sizes agree"));
        name.to_string()
    }

    /// A given tensor as an initializer (its shape is known to [`Builder::push`], so nodes may
    /// take it as an input).
    pub(crate) fn tensor(&mut self, name: &str, value: ArrayD<f32>) -> String {
        self.shapes.insert(name.to_string(), value.shape().to_vec());
        self.graph.initializers.insert(name.to_string(), value);
        name.to_string()
    }

    /// A tensor filled with `value`.
    pub(crate) fn filled(&mut self, name: &str, shape: &[usize], value: f32) -> String {
        self.tensor(name, ArrayD::from_elem(shape.to_vec(), value))
    }

    /// Normal(0, std²) samples truncated to ±2·std (redrawn outside), by Box-Muller on the seeded
    /// generator.
    pub(crate) fn trunc_normal(&mut self, name: &str, shape: &[usize], std: f32) -> String {
        let n: usize = shape.iter().product();
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]
            let u2: f64 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = 2.0 * std::f64::consts::PI * u2;
            for z in [r * t.cos(), r * t.sin()] {
                if z.abs() <= 2.0 && v.len() < n {
                    v.push(z as f32 * std);
                }
            }
        }
        self.tensor(name, ArrayD::from_shape_vec(shape.to_vec(), v).expect("sizes agree"))
    }

    /// He-uniform weight: variance 2 / fan_in.
    fn he(&mut self, name: &str, shape: &[usize], fan_in: usize) -> String {
        let bound = (6.0 / fan_in.max(1) as f32).sqrt();
        self.uniform(name, shape, -bound, bound)
    }

    #[allow(clippy::too_many_arguments)] // mirrors nn.Conv2d's positional arguments
    pub(crate) fn conv(
        &mut self,
        name: &str,
        x: &str,
        out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    ) -> Result<String> {
        let cin = self.shape(x)[1];
        let weight = self.he(&format!("{name}.weight"), &[out, cin, k, k], cin * k * k);
        let bias = bias.then(|| self.uniform(&format!("{name}.bias"), &[out], -0.05, 0.05));
        let cfg = ConvConfig {
            weight,
            bias,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad; 4],
            dilation: [1, 1],
            groups: 1,
        };
        self.push(name, Op::Conv(cfg), &[x])
    }

    /// A depthwise 3×3-style convolution: one filter per input channel (`groups = channels`).
    pub(crate) fn conv_depthwise(
        &mut self,
        name: &str,
        x: &str,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<String> {
        let c = self.shape(x)[1];
        let weight = self.he(&format!("{name}.weight"), &[c, 1, k, k], k * k);
        let cfg = ConvConfig {
            weight,
            bias: None,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad; 4],
            dilation: [1, 1],
            groups: c,
        };
        self.push(name, Op::Conv(cfg), &[x])
    }

    /// ReLU6: `Clip` to `[0, 6]` (a capped ReLU site for ReLU reduction).
    pub(crate) fn relu6(&mut self, name: &str, x: &str) -> Result<String> {
        self.push(name, Op::Clip(ClipConfig { min: Some(0.0), max: Some(6.0) }), &[x])
    }

    pub(crate) fn bn(&mut self, name: &str, x: &str) -> Result<String> {
        let c = self.shape(x)[1];
        let cfg = BatchNormConfig {
            scale: self.uniform(&format!("{name}.weight"), &[c], 0.8, 1.2),
            bias: self.uniform(&format!("{name}.bias"), &[c], -0.1, 0.1),
            mean: self.uniform(&format!("{name}.running_mean"), &[c], -0.1, 0.1),
            var: self.uniform(&format!("{name}.running_var"), &[c], 0.5, 1.5),
            epsilon: 1e-5,
        };
        self.push(name, Op::BatchNorm(cfg), &[x])
    }

    pub(crate) fn relu(&mut self, name: &str, x: &str) -> Result<String> {
        self.push(name, Op::Relu, &[x])
    }

    pub(crate) fn add(&mut self, name: &str, a: &str, b: &str) -> Result<String> {
        self.push(name, Op::Add(BinaryConfig {}), &[a, b])
    }

    pub(crate) fn linear(&mut self, name: &str, x: &str, out: usize) -> Result<String> {
        let cin = self.shape(x)[1];
        let bound = 1.0 / (cin.max(1) as f32).sqrt();
        let weight = self.uniform(&format!("{name}.weight"), &[out, cin], -bound, bound);
        let bias = Some(self.uniform(&format!("{name}.bias"), &[out], -bound, bound));
        self.push(name, Op::Gemm(GemmConfig { weight, bias }), &[x])
    }

    pub(crate) fn max_pool(&mut self, name: &str, x: &str, k: usize, stride: usize, pad: usize) -> Result<String> {
        let cfg = PoolConfig {
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad; 4],
            dilation: [1, 1],
            ceil_mode: false,
            count_include_pad: false,
        };
        self.push(name, Op::MaxPool(cfg), &[x])
    }

    /// Global average pool and flatten to `[N, C]`.
    pub(crate) fn gap_flatten(&mut self, name: &str, x: &str) -> Result<String> {
        let p = self.push(name, Op::GlobalAveragePool, &[x])?;
        self.push(&format!("{name}.flatten"), Op::Flatten(FlattenConfig { axis: 1 }), &[&p])
    }

    pub(crate) fn finish(mut self) -> Result<Graph> {
        let last = self.graph.nodes.last().map(|n| n.outputs[0].clone()).unwrap_or_else(|| self.input.clone());
        self.graph.outputs.push(ValueInfo::new(last, vec![]));
        self.graph.finalize()?;
        Ok(self.graph)
    }
}
