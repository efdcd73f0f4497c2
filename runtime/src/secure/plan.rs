//! The planning pass: the lowering run on shapes. It yields the dealer requests in order, the
//! linear layers, and per node the predicted cost (exactly what the executor will measure).

use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

use masq_mpc::cost::{self, Cost, Workload, published::LinearWork};
use masq_mpc::dealer::{LayerId, LinearKind, Request, SEED_BYTES};
use masq_mpc::protocols::{self, PoolParams, Replacement as MpcReplacement, linear};
use masq_mpc::{FixedPoint, MpcError};

use super::SecureConfig;
use super::lower::{Backend, WeightSource};
use super::program::Program;
use crate::error::{Result, RuntimeError};
use crate::ir::{Graph, ShapeMap, fold::fold_batchnorm};

/// A linear layer of the compiled model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinearLayer {
    /// Its id in the dealer's and the parties' tables.
    pub id: LayerId,
    /// The node it lowers.
    pub node: String,
    /// The bilinear product.
    pub kind: LinearKind,
    /// Where its weight comes from.
    pub weight: WeightSource,
}

/// One node's planned figures (for the whole batch).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlannedNode {
    pub name: String,
    pub op: String,
    pub output_shape: Vec<usize>,
    /// Multiply-accumulates of linear layers and element-wise products.
    pub macs: u64,
    /// Secure comparisons (ReLUs, including those inside max pooling and Clip).
    pub relus: u64,
    /// Elements computed with a polynomial replacement (masked activations).
    pub poly_elements: u64,
    /// Predicted online and offline cost.
    pub cost: Cost,
    /// Computed by the client in the clear after the reveal (Softmax at the output).
    pub client_side: bool,
}

/// A graph compiled for secure evaluation at one batch size.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The graph after BatchNorm folding (what runs).
    pub graph: Graph,
    pub batch: usize,
    pub fixed_point: FixedPoint,
    pub cmp_bits: u32,
    /// Dealer requests of one inference, in the order the online phase consumes them.
    pub requests: Vec<Request>,
    /// Linear layers, by id.
    pub layers: Vec<LinearLayer>,
    /// One entry per graph node, in order.
    pub nodes: Vec<PlannedNode>,
    /// Revealing the outputs to the client.
    pub reveal: Cost,
    /// Model load: opening `E = W - A` for all weights, and the dealer's seeds for the masks.
    pub setup: Cost,
    /// The sizes published per-operation costs scale with (for other protocols' estimates).
    pub workload: Workload,
    pub(crate) program: Program,
    pub(crate) shapes: ShapeMap,
}

impl Plan {
    /// Predicted cost of one inference: every node, the reveal, and the dealer's per-deal seeds.
    pub fn total(&self) -> Cost {
        self.nodes.iter().map(|n| n.cost).sum::<Cost>() + self.reveal + cost::deal_overhead()
    }

    /// Comparisons (ReLUs) of one inference.
    pub fn relus(&self) -> u64 {
        self.nodes.iter().map(|n| n.relus).sum()
    }
}

/// Compiles `graph` (BatchNorm is folded first) for a batch of `batch` inputs.
pub fn plan(graph: &Graph, batch: usize, cfg: &SecureConfig) -> Result<Plan> {
    let fp = cfg.fixed_point()?;
    masq_mpc::dealer::check_bits(cfg.cmp_bits)
        .map_err(|source| RuntimeError::Mpc { at: "configuration".into(), source })?;
    if batch == 0 {
        return Err(RuntimeError::BadInput { name: "batch".into(), expected: "at least 1".into(), got: vec![0] });
    }
    let graph = fold_batchnorm(graph)?;
    let shapes = graph.infer_shapes(batch)?;
    let program = Program::new(&graph)?;
    let input_shape = shapes[&program.input].clone();
    let mut p = Planner {
        bits: cfg.cmp_bits,
        requests: Vec::new(),
        layers: Vec::new(),
        cur: PlannedNode::default(),
        nodes: vec![PlannedNode::default(); graph.nodes.len()],
        workload: Workload::default(),
        node_names: graph.nodes.iter().map(|n| n.name.clone()).collect(),
        cur_index: 0,
    };
    let outs = program.walk(&mut p, &graph, &shapes, fp, ArrayD::from_elem(IxDyn(&input_shape), ()))?;
    // The reveal is a message P0 sends after its last step: one more round for the client.
    let reveal = outs.iter().map(|v| cost::reveal(v.len(), masq_mpc::Party::P1)).sum();
    let mut nodes = p.nodes;
    for (i, node) in graph.nodes.iter().enumerate() {
        nodes[i].name = node.name.clone();
        nodes[i].op = node.op.name().to_string();
        nodes[i].output_shape = shapes[&node.outputs[0]].clone();
        nodes[i].client_side = program.tails[i];
    }
    let weights: usize = p.layers.iter().map(|l| l.kind.weight_shape().iter().product::<usize>()).sum();
    let mut setup = cost::linear_setup(weights);
    setup.offline_p0 += SEED_BYTES;
    setup.offline_p1 += SEED_BYTES;
    Ok(Plan {
        graph,
        batch,
        fixed_point: fp,
        cmp_bits: cfg.cmp_bits,
        requests: p.requests,
        layers: p.layers,
        nodes,
        reveal,
        setup,
        workload: p.workload,
        program,
        shapes,
    })
}

/// The planning backend: values are shapes.
struct Planner {
    bits: u32,
    requests: Vec<Request>,
    layers: Vec<LinearLayer>,
    cur: PlannedNode,
    nodes: Vec<PlannedNode>,
    workload: Workload,
    node_names: Vec<String>,
    cur_index: usize,
}

fn shape_only(shape: &[usize]) -> ArrayD<()> {
    ArrayD::from_elem(IxDyn(shape), ())
}

impl Planner {
    fn cmp(&mut self, n: usize) {
        self.requests.push(Request::Cmp { n, bits: self.bits });
        self.cur.cost += cost::cmp(n, self.bits);
        self.cur.relus += n as u64;
        self.workload.relu_layers.push(n);
    }
}

impl Backend for Planner {
    type T = ();

    fn public(&self, c: &ArrayD<u64>) -> ArrayD<()> {
        shape_only(c.shape())
    }

    fn public_word(&self, _w: u64) {}

    fn add(&mut self, a: ArrayD<()>, b: &ArrayD<()>) -> ArrayD<()> {
        debug_assert_eq!(a.shape(), b.shape());
        a
    }

    fn sub(&mut self, a: ArrayD<()>, b: &ArrayD<()>) -> ArrayD<()> {
        debug_assert_eq!(a.shape(), b.shape());
        a
    }

    fn mul_public(&mut self, a: ArrayD<()>, c: &ArrayD<u64>) -> ArrayD<()> {
        debug_assert!(c.broadcast(a.shape()).is_some());
        self.cur.macs += a.len() as u64;
        a
    }

    fn truncate(&mut self, a: ArrayD<()>) -> ArrayD<()> {
        a
    }

    fn linear(&mut self, kind: &LinearKind, weight: WeightSource, x: ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        let id = self.layers.len();
        let out = linear::output_shape(kind, x.shape())?;
        let out_elems: usize = out.iter().product();
        let per_output = match kind {
            LinearKind::Conv2d { weight_shape, .. } => weight_shape[1] * weight_shape[2] * weight_shape[3],
            LinearKind::MatMul { k, .. } => *k,
        };
        self.cur.macs += (out_elems * per_output) as u64;
        self.cur.cost += cost::linear(kind, x.shape())?;
        self.requests.push(Request::Linear { layer: id, input_shape: x.shape().to_vec() });
        self.workload.linear_layers.push(LinearWork {
            weights: kind.weight_shape().iter().product(),
            inputs: x.len(),
            outputs: out_elems,
        });
        let node = self.node_names.get(self.cur_index).cloned().unwrap_or_default();
        self.layers.push(LinearLayer { id, node, kind: kind.clone(), weight });
        Ok(shape_only(&out))
    }

    fn relu(&mut self, x: ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        self.cmp(x.len());
        Ok(x)
    }

    fn mul(&mut self, x: ArrayD<()>, y: &ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        if x.shape() != y.shape() {
            return Err(MpcError::ShapeMismatch {
                op: "mul".into(),
                expected: format!("{:?}", x.shape()),
                got: format!("{:?}", y.shape()),
            });
        }
        let n = x.len();
        self.requests.push(Request::Mul { n });
        self.cur.cost += cost::mul(n);
        self.cur.macs += n as u64;
        self.workload.square_layers.push(2 * n);
        Ok(x)
    }

    fn masked_act(&mut self, x: ArrayD<()>, mask: &[u8], r: &MpcReplacement) -> masq_mpc::Result<ArrayD<()>> {
        let batch = x.shape()[0];
        let req = protocols::masked_act_request(mask, r, batch, self.bits);
        let Request::MaskedAct { relus, squares, .. } = req else { unreachable!("a masked_act request") };
        if relus + squares > 0 {
            self.requests.push(req);
        }
        self.cur.cost += cost::masked_act(relus, squares, self.bits);
        self.cur.relus += relus as u64;
        if let MpcReplacement::Poly { .. } = r {
            let zeros = mask.iter().filter(|&&m| m == 0).count();
            self.cur.poly_elements += (zeros * batch) as u64;
            self.cur.macs += 2 * (zeros * batch) as u64;
        }
        if relus > 0 {
            self.workload.relu_layers.push(relus);
        }
        if squares > 0 {
            self.workload.square_layers.push(squares);
        }
        Ok(x)
    }

    fn maxpool(&mut self, x: ArrayD<()>, p: &PoolParams) -> masq_mpc::Result<ArrayD<()>> {
        for req in protocols::maxpool_requests(x.shape(), p, self.bits)? {
            let Request::Cmp { n, .. } = req else { unreachable!("maxpool asks for comparisons") };
            self.cmp(n);
        }
        let s = x.shape();
        let [ho, wo] = p.output_hw(s[2], s[3])?;
        Ok(shape_only(&[s[0], s[1], ho, wo]))
    }

    fn avgpool(&mut self, x: ArrayD<()>, p: &PoolParams, _cip: bool) -> masq_mpc::Result<ArrayD<()>> {
        let s = x.shape();
        let [ho, wo] = p.output_hw(s[2], s[3])?;
        self.cur.macs += (s[0] * s[1] * ho * wo * p.kernel[0] * p.kernel[1]) as u64;
        Ok(shape_only(&[s[0], s[1], ho, wo]))
    }

    fn global_avgpool(&mut self, x: ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        let s = x.shape();
        self.cur.macs += x.len() as u64;
        Ok(shape_only(&[s[0], s[1], 1, 1]))
    }

    fn node_start(&mut self, i: usize) {
        self.cur = PlannedNode::default();
        self.cur_index = i;
    }

    fn node_end(&mut self, i: usize) {
        self.nodes[i] = std::mem::take(&mut self.cur);
    }
}
