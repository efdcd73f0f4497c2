//! [`TchModel`]: an IR graph whose tensors live in libtorch, run with autograd.
//!
//! Every initializer becomes a tch tensor on the model's device. Parameters (weights, biases,
//! BatchNorm scale and shift, polynomial coefficients) require gradients; buffers (BatchNorm running
//! statistics, constant divisors) do not. Masks become f32 0/1 tensors. [`TchModel::to_graph`]
//! writes the current values back into an IR graph, so a checkpoint saved from it round-trips.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use masq_ir::Graph;
use masq_ir::{MaskedActConfig, Node, Op};
use ndarray::ArrayD;
use tch::{Device, Kind, Tensor};

use crate::error::{Result, TrainerError};
use crate::lower;

/// PyTorch's default BatchNorm momentum (weight of the new batch statistic).
pub const BN_MOMENTUM: f64 = 0.1;

/// Copy an f32 array into a tensor on `device`.
pub fn to_tensor(a: &ArrayD<f32>, device: Device) -> Tensor {
    let v: Vec<f32> = a.iter().copied().collect();
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&v).reshape(&shape).to_device(device)
}

/// Copy a tensor (any float kind, any device) into an f32 array.
pub fn to_array(t: &Tensor) -> Result<ArrayD<f32>> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let n = t.numel();
    let mut v = vec![0f32; n];
    t.f_copy_data(&mut v, n)?;
    Ok(ArrayD::from_shape_vec(shape, v).expect("numel matches the shape"))
}

/// An IR graph ready to run on tch.
#[derive(Debug)]
pub struct TchModel {
    graph: Graph,
    device: Device,
    params: BTreeMap<String, Tensor>,
    trainable: BTreeSet<String>,
    masks: BTreeMap<String, Tensor>,
    /// Momentum of the BatchNorm running statistics in training mode.
    pub bn_momentum: f64,
    /// Optional override of `MaskedAct` nodes (trainable gates during ReLU reduction).
    pub act_hook: Option<std::rc::Rc<dyn ActHook>>,
}

impl lower::Params for TchModel {
    fn tensor(&self, name: &str) -> Option<&Tensor> {
        TchModel::tensor(self, name)
    }

    fn mask(&self, name: &str) -> Option<&Tensor> {
        TchModel::mask(self, name)
    }

    fn device(&self) -> Device {
        self.device
    }

    fn bn_momentum(&self) -> f64 {
        self.bn_momentum
    }

    fn weight_quant(&self, name: &str) -> Option<masq_ir::QuantParams> {
        self.graph.weight_quant.get(name).copied()
    }
}

/// A hook that takes over the evaluation of `MaskedAct` nodes (see `crate::reduce`): trainable
/// gates, continuous masks, running statistics of the activation inputs.
pub trait ActHook: std::fmt::Debug {
    /// Called once at the start of every forward pass (train or eval).
    fn begin_forward(&self, _model: &TchModel, _train: bool) -> Result<()> {
        Ok(())
    }

    /// Evaluate a `MaskedAct` node; `None` falls back to the fixed-mask lowering.
    fn masked_act(
        &self,
        model: &TchModel,
        node: &Node,
        cfg: &MaskedActConfig,
        x: &Tensor,
        train: bool,
    ) -> Result<Option<Tensor>>;
}

/// Names of initializers that are buffers rather than trained parameters.
fn buffer_names(graph: &Graph) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for node in &graph.nodes {
        match &node.op {
            Op::BatchNorm(c) => {
                out.insert(c.mean.clone());
                out.insert(c.var.clone());
            }
            Op::Div(_) => {
                out.insert(node.inputs[1].clone());
            }
            _ => {}
        }
    }
    out
}

impl TchModel {
    /// Copy a graph's tensors to `device`. The graph is validated first.
    pub fn from_graph(graph: &Graph, device: Device) -> Result<Self> {
        graph.validate()?;
        let buffers = buffer_names(graph);
        let mut params = BTreeMap::new();
        let mut trainable = BTreeSet::new();
        for (name, a) in &graph.initializers {
            let t = to_tensor(a, device);
            let t = if buffers.contains(name) {
                t
            } else {
                trainable.insert(name.clone());
                t.set_requires_grad(true)
            };
            params.insert(name.clone(), t);
        }
        let mut masks = BTreeMap::new();
        for (name, m) in &graph.masks {
            masks.insert(name.clone(), to_tensor(&m.mapv(f32::from), device));
        }
        let mut structure = graph.clone();
        structure.initializers.clear();
        structure.masks.clear();
        Ok(TchModel { graph: structure, device, params, trainable, masks, bn_momentum: BN_MOMENTUM, act_hook: None })
    }

    /// The graph's structure (its tensors are not kept up to date; see [`TchModel::to_graph`]).
    pub fn structure(&self) -> &Graph {
        &self.graph
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// A tensor (parameter or buffer) by name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.params.get(name)
    }

    /// A mask (f32 0/1) by name.
    pub fn mask(&self, name: &str) -> Option<&Tensor> {
        self.masks.get(name)
    }

    /// Replace a mask (f32 0/1 tensor of the mask's shape) by name.
    pub fn set_mask(&mut self, name: &str, value: Tensor) -> Result<()> {
        let m = self
            .masks
            .get_mut(name)
            .ok_or_else(|| TrainerError::Model(masq_ir::IrError::NotFound { kind: "mask", name: name.to_string() }))?;
        if m.size() != value.size() {
            return Err(TrainerError::Model(masq_ir::IrError::BadWeights {
                name: name.to_string(),
                reason: format!("mask shape {:?}, model expects {:?}", value.size(), m.size()),
            }));
        }
        *m = value.f_detach()?.f_to_kind(Kind::Float)?.f_to_device(self.device)?;
        Ok(())
    }

    /// Mark a parameter as trained or fixed (e.g. the coefficients of a fixed replacement).
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> Result<()> {
        let t = self.params.get_mut(name).ok_or_else(|| {
            TrainerError::Model(masq_ir::IrError::NotFound { kind: "tensor", name: name.to_string() })
        })?;
        if trainable {
            self.trainable.insert(name.to_string());
            *t = t.f_detach()?.set_requires_grad(true);
        } else {
            self.trainable.remove(name);
            *t = t.f_detach()?;
        }
        Ok(())
    }

    /// Trainable parameters, by name (sorted).
    pub fn trainable(&self) -> Vec<(&str, &Tensor)> {
        self.trainable.iter().map(|n| (n.as_str(), &self.params[n])).collect()
    }

    /// Parameters and buffers, by name (sorted).
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Whether a tensor is trained (as opposed to a buffer).
    pub fn is_trainable(&self, name: &str) -> bool {
        self.trainable.contains(name)
    }

    /// Overwrite a parameter's or buffer's values in place (shapes must agree).
    pub fn set_tensor(&mut self, name: &str, value: &ArrayD<f32>) -> Result<()> {
        let t = self.params.get_mut(name).ok_or_else(|| {
            TrainerError::Model(masq_ir::IrError::NotFound { kind: "tensor", name: name.to_string() })
        })?;
        let want: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        if want != value.shape() {
            return Err(TrainerError::Model(masq_ir::IrError::BadWeights {
                name: name.to_string(),
                reason: format!("shape {:?}, model expects {want:?}", value.shape()),
            }));
        }
        let src = to_tensor(value, self.device);
        tch::no_grad(|| t.f_copy_(&src))?;
        Ok(())
    }

    /// The graph with the current tensor values and masks.
    pub fn to_graph(&self) -> Result<Graph> {
        let mut g = self.graph.clone();
        for (name, t) in &self.params {
            let mut a = to_array(t)?;
            // A quantized weight's f32 shadow goes back onto its grid.
            if let Some(q) = self.graph.weight_quant.get(name) {
                a.mapv_inplace(|v| masq_ir::quant::quantize_weight_value(q, v));
            }
            g.initializers.insert(name.clone(), a);
        }
        for (name, m) in &self.masks {
            let a = to_array(m)?;
            g.masks.insert(name.clone(), a.mapv(|v| u8::from(v > 0.5)));
        }
        Ok(g)
    }

    /// Run the graph on named inputs; `train` selects BatchNorm's training mode (batch statistics,
    /// running statistics updated). Returns every graph output by name.
    pub fn run(&self, inputs: HashMap<String, Tensor>, train: bool) -> Result<HashMap<String, Tensor>> {
        if let Some(h) = &self.act_hook {
            h.begin_forward(self, train)?;
        }
        let mut env = inputs;
        let mut last_use: HashMap<&str, usize> = HashMap::new();
        for (i, node) in self.graph.nodes.iter().enumerate() {
            for input in &node.inputs {
                last_use.insert(input.as_str(), i);
            }
        }
        let keep: BTreeSet<&str> = self.graph.outputs.iter().map(|o| o.name.as_str()).collect();
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let mut ins: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
            for name in &node.inputs {
                let t = env
                    .get(name)
                    .or_else(|| self.params.get(name))
                    .ok_or_else(|| TrainerError::MissingValue { node: node.name.clone(), input: name.clone() })?;
                ins.push(t);
            }
            let hooked = match (&node.op, &self.act_hook) {
                (Op::MaskedAct(c), Some(h)) => h.masked_act(self, node, c, ins[0], train)?,
                _ => None,
            };
            let out = match hooked {
                Some(y) => y,
                None => lower::lower_node(self, node, &ins, train)?,
            };
            for input in &node.inputs {
                if last_use.get(input.as_str()) == Some(&i) && !keep.contains(input.as_str()) {
                    env.remove(input);
                }
            }
            env.insert(node.outputs[0].clone(), out);
        }
        self.graph
            .outputs
            .iter()
            .map(|o| {
                let v = env.remove(&o.name).or_else(|| self.params.get(&o.name).map(|t| t.shallow_clone()));
                v.map(|v| (o.name.clone(), v))
                    .ok_or_else(|| TrainerError::MissingValue { node: "(graph output)".into(), input: o.name.clone() })
            })
            .collect()
    }

    /// Run a graph with one data input and one output.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let input = self.graph.data_inputs().next().ok_or_else(|| {
            TrainerError::Model(masq_ir::IrError::InvalidGraph { reason: "graph has no input".into() })
        })?;
        let output = self.graph.outputs.first().ok_or_else(|| {
            TrainerError::Model(masq_ir::IrError::InvalidGraph { reason: "graph has no output".into() })
        })?;
        let name = output.name.clone();
        let mut outs = self.run(HashMap::from([(input.name.clone(), x.shallow_clone())]), train)?;
        outs.remove(&name).ok_or(TrainerError::MissingValue { node: "(graph output)".into(), input: name })
    }

    /// Number of ReLUs the model costs at batch 1 (docs/ALGORITHMS.md §9: Relu elements plus mask ones).
    pub fn relu_count(&self) -> Result<u64> {
        let mut g = self.graph.clone();
        // Shapes only need the initializers' shapes; the masks' ones are counted from the tensors.
        for (name, t) in &self.params {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            g.initializers.insert(name.clone(), ArrayD::zeros(shape));
        }
        for (name, m) in &self.masks {
            g.masks.insert(name.clone(), to_array(m)?.mapv(|v| u8::from(v > 0.5)));
        }
        Ok(masq_ir::report::report(&g)?.relu_count)
    }
}
