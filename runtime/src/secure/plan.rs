//! The planning pass: the lowering run on shapes. It yields the dealer requests in order, the
//! linear layers, and per node the predicted cost (exactly what the executor will measure).

use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

use masq_mpc::cost::{self, Cost, Workload, published::LinearWork};
use masq_mpc::dealer::{CmpMode, LayerId, LinearKind, Request, SEED_BYTES};
use masq_mpc::protocols::{self, PoolParams, Replacement as MpcReplacement, linear};
use masq_mpc::{FixedPoint, MpcError};

use super::SecureConfig;
use super::lower::{Backend, WeightSource};
use super::program::Program;
use crate::error::{IrError, Result, RuntimeError};
use masq_ir::cost::{ModelCounts, NodeCost, node_cost};
use masq_ir::{Graph, ShapeMap, fold::fold_batchnorm};

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

/// One node's planned figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlannedNode {
    pub name: String,
    pub op: String,
    pub output_shape: Vec<usize>,
    /// The cost table's figures for one image (of the graph that runs: BatchNorm folded).
    #[serde(flatten)]
    pub per_image: NodeCost,
    /// Predicted online and offline cost of the whole batch.
    pub cost: Cost,
    /// Computed by the client in the clear after the reveal (Softmax at the output).
    pub client_side: bool,
    /// Width of this node's comparisons: its calibrated width ([`Graph::cmp_bits`]), else the
    /// run's global one.
    pub cmp_bits: u32,
}

/// A graph compiled for secure evaluation at one batch size.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The graph after BatchNorm folding (what runs).
    pub graph: Graph,
    pub batch: usize,
    pub fixed_point: FixedPoint,
    pub cmp_bits: u32,
    /// How comparisons run (one round, or compact keys and two rounds).
    pub cmp_mode: CmpMode,
    /// Per graph node: the width its comparisons run on (calibrated, else `cmp_bits`).
    pub node_bits: Vec<u32>,
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
    /// Images in the batch as the cost table sees them: `batch` when the input has a symbolic
    /// batch axis, else 1 (a fixed-shape graph is one image whatever its first axis).
    images: u64,
}

impl Plan {
    /// Predicted cost of one inference: every node, the reveal, and the dealer's per-deal seeds.
    pub fn total(&self) -> Cost {
        self.nodes.iter().map(|n| n.cost).sum::<Cost>() + self.reveal + cost::deal_overhead()
    }

    /// The cost table's totals for one image.
    pub fn per_image(&self) -> ModelCounts {
        self.nodes.iter().map(|n| n.per_image).sum::<NodeCost>().into()
    }

    /// Secure comparisons of the whole batch (what the dealer deals comparison keys for).
    pub fn comparisons_per_batch(&self) -> u64 {
        self.per_image().comparisons * self.images
    }
}

/// Compiles `graph` (BatchNorm is folded first) for a batch of `batch` inputs.
pub fn plan(graph: &Graph, batch: usize, cfg: &SecureConfig) -> Result<Plan> {
    let fp = cfg.fixed_point()?;
    masq_mpc::dealer::check_bits(cfg.cmp_bits)
        .map_err(|source| RuntimeError::Mpc { at: "configuration".into(), source })?;
    if batch == 0 {
        return Err(IrError::BadInput { name: "batch".into(), expected: "at least 1".into(), got: vec![0] }.into());
    }
    graph.check_cmp_bits()?;
    let graph = fold_batchnorm(graph)?;
    let node_bits: Vec<u32> =
        graph.nodes.iter().map(|n| graph.cmp_bits_at(&n.name, cfg.frac_bits).unwrap_or(cfg.cmp_bits)).collect();
    let shapes = graph.infer_shapes(batch)?;
    let program = Program::new(&graph)?;
    let input_shape = shapes[&program.input].clone();
    let mut p = Planner {
        bits: cfg.cmp_bits,
        mode: cfg.cmp_mode,
        node_bits: node_bits.clone(),
        requests: Vec::new(),
        layers: Vec::new(),
        cur: 0,
        requested: vec![(0, Cost::default()); graph.nodes.len()],
        workload: Workload::default(),
        node_names: graph.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    let outs = program.walk(&mut p, &graph, &shapes, fp, ArrayD::from_elem(IxDyn(&input_shape), ()))?;
    // The reveal is a message P0 sends after its last step: one more round for the client.
    let reveal = outs.iter().map(|v| cost::reveal(v.len(), masq_mpc::Party::P1)).sum();
    // Per-node figures come from the one cost table; the comparisons the lowering asked the
    // dealer for must be exactly the table's, or the reports would disagree with the run.
    let shapes1 = graph.infer_shapes(1)?;
    let elems = |s: &ShapeMap| s[&program.input].iter().product::<usize>() as u64;
    let images = elems(&shapes) / elems(&shapes1).max(1);
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    for (i, node) in graph.nodes.iter().enumerate() {
        let per_image = node_cost(&graph, node, &shapes1)?;
        let (cmp, cost) = p.requested[i];
        if !program.tails[i] && cmp != per_image.comparisons() * images {
            return Err(IrError::InvalidGraph {
                reason: format!(
                    "node {} ({}): the secure lowering makes {cmp} comparisons for {images} image(s), the cost table {} per image",
                    node.name,
                    node.op.name(),
                    per_image.comparisons()
                ),
            }
            .into());
        }
        nodes.push(PlannedNode {
            name: node.name.clone(),
            op: node.op.name().to_string(),
            output_shape: shapes[&node.outputs[0]].clone(),
            per_image,
            cost,
            client_side: program.tails[i],
            cmp_bits: node_bits[i],
        });
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
        cmp_mode: cfg.cmp_mode,
        node_bits,
        requests: p.requests,
        layers: p.layers,
        nodes,
        reveal,
        setup,
        workload: p.workload,
        program,
        shapes,
        images,
    })
}

/// The planning backend: values are shapes.
struct Planner {
    /// Width of the comparisons of the node being lowered.
    bits: u32,
    mode: CmpMode,
    /// Per node: its comparison width.
    node_bits: Vec<u32>,
    requests: Vec<Request>,
    layers: Vec<LinearLayer>,
    /// Index of the node being lowered.
    cur: usize,
    /// Per node: comparisons requested and predicted cost.
    requested: Vec<(u64, Cost)>,
    workload: Workload,
    node_names: Vec<String>,
}

fn shape_only(shape: &[usize]) -> ArrayD<()> {
    ArrayD::from_elem(IxDyn(shape), ())
}

impl Planner {
    fn add(&mut self, comparisons: u64, c: Cost) {
        let r = &mut self.requested[self.cur];
        r.0 += comparisons;
        r.1 += c;
    }

    fn cmp(&mut self, n: usize) {
        self.requests.push(Request::Cmp { n, bits: self.bits, mode: self.mode });
        self.add(n as u64, cost::cmp(n, self.bits, self.mode));
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
        a
    }

    fn truncate(&mut self, a: ArrayD<()>) -> ArrayD<()> {
        a
    }

    fn linear(&mut self, kind: &LinearKind, weight: WeightSource, x: ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        let id = self.layers.len();
        let out = linear::output_shape(kind, x.shape())?;
        let out_elems: usize = out.iter().product();
        self.add(0, cost::linear(kind, x.shape())?);
        self.requests.push(Request::Linear { layer: id, input_shape: x.shape().to_vec() });
        self.workload.linear_layers.push(LinearWork {
            weights: kind.weight_shape().iter().product(),
            inputs: x.len(),
            outputs: out_elems,
        });
        let node = self.node_names.get(self.cur).cloned().unwrap_or_default();
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
        self.add(0, cost::mul(n));
        self.workload.square_layers.push(2 * n);
        Ok(x)
    }

    fn square(&mut self, x: ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        let n = x.len();
        self.requests.push(Request::Square { n });
        self.add(0, cost::square(n));
        self.workload.square_layers.push(n);
        Ok(x)
    }

    fn drelu(&mut self, x: ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        self.cmp(x.len());
        Ok(x)
    }

    fn matmul(&mut self, x: ArrayD<()>, y: &ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        let (batch, m, k, n) = protocols::matmul_dims(x.shape(), y.shape())?;
        self.requests.push(Request::MatMul { batch, m, k, n });
        self.add(0, cost::matmul(batch, m, k, n));
        // Other protocols' estimates see it as a linear layer whose "weight" is the right operand.
        self.workload.linear_layers.push(LinearWork { weights: y.len(), inputs: x.len(), outputs: batch * m * n });
        Ok(shape_only(&[batch, m, n]))
    }

    fn masked_act(&mut self, x: ArrayD<()>, mask: &[u8], r: &MpcReplacement) -> masq_mpc::Result<ArrayD<()>> {
        let batch = x.shape()[0];
        let req = protocols::masked_act_request(mask, r, batch, self.bits, self.mode);
        let Request::MaskedAct { relus, squares, .. } = req else { unreachable!("a masked_act request") };
        if relus + squares > 0 {
            self.requests.push(req);
        }
        self.add(relus as u64, cost::masked_act(relus, squares, self.bits, self.mode));
        if relus > 0 {
            self.workload.relu_layers.push(relus);
        }
        if squares > 0 {
            self.workload.square_layers.push(squares);
        }
        Ok(x)
    }

    fn maxpool(&mut self, x: ArrayD<()>, p: &PoolParams) -> masq_mpc::Result<ArrayD<()>> {
        for req in protocols::maxpool_requests(x.shape(), p, self.bits, self.mode)? {
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
        Ok(shape_only(&[s[0], s[1], ho, wo]))
    }

    fn global_avgpool(&mut self, x: ArrayD<()>) -> masq_mpc::Result<ArrayD<()>> {
        let s = x.shape();
        Ok(shape_only(&[s[0], s[1], 1, 1]))
    }

    fn node_start(&mut self, i: usize) {
        self.cur = i;
        self.bits = self.node_bits[i];
    }
}
