//! Gemm (y = x·Wᵀ + b) and MatMul.

use ndarray::{Array2, ArrayD, Ix2, IxDyn};

use masq_ir::shape::broadcast;
use masq_ir::{GemmConfig, Graph, Node};
use masq_ir::{IrError, Result};

fn mismatch(node: &Node, expected: String, got: &[usize]) -> IrError {
    IrError::ShapeMismatch { node: node.name.clone(), op: node.op.name().to_string(), expected, got: got.to_vec() }
}

pub(super) fn gemm(graph: &Graph, node: &Node, c: &GemmConfig, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let w = graph.initializer(node, &c.weight)?;
    let w2 = w.view().into_dimensionality::<Ix2>().map_err(|_| mismatch(node, "2-D weight".into(), w.shape()))?;
    let x2 = x.view().into_dimensionality::<Ix2>().map_err(|_| mismatch(node, "[N, K]".into(), x.shape()))?;
    if x2.ncols() != w2.ncols() {
        return Err(mismatch(node, format!("[N, {}]", w2.ncols()), x.shape()));
    }
    let mut y = x2.dot(&w2.t());
    if let Some(b) = &c.bias {
        let b = graph.initializer(node, b)?;
        let b1 =
            b.view().into_dimensionality::<ndarray::Ix1>().map_err(|_| mismatch(node, "1-D bias".into(), b.shape()))?;
        if b1.len() != y.ncols() {
            return Err(mismatch(node, format!("bias [{}]", y.ncols()), b.shape()));
        }
        y += &b1;
    }
    Ok(y.into_dyn())
}

pub(super) fn matmul(node: &Node, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra < 2 || rb < 2 || a.shape()[ra - 1] != b.shape()[rb - 2] {
        return Err(mismatch(node, format!("inner dimension to match {:?}", b.shape()), a.shape()));
    }
    let (m, k, n) = (a.shape()[ra - 2], a.shape()[ra - 1], b.shape()[rb - 1]);
    let batch = broadcast(&a.shape()[..ra - 2], &b.shape()[..rb - 2])
        .ok_or_else(|| mismatch(node, format!("batch dims broadcastable with {:?}", b.shape()), a.shape()))?;
    let mut full_a = batch.clone();
    full_a.extend([m, k]);
    let mut full_b = batch.clone();
    full_b.extend([k, n]);
    let av = a.broadcast(IxDyn(&full_a)).ok_or_else(|| mismatch(node, "broadcastable".into(), a.shape()))?;
    let bv = b.broadcast(IxDyn(&full_b)).ok_or_else(|| mismatch(node, "broadcastable".into(), b.shape()))?;
    let count: usize = batch.iter().product();
    let av = av.to_shape((count, m, k)).expect("broadcast view reshapes");
    let bv = bv.to_shape((count, k, n)).expect("broadcast view reshapes");
    let mut out = Vec::with_capacity(count * m * n);
    for i in 0..count {
        let y: Array2<f32> = av.index_axis(ndarray::Axis(0), i).dot(&bv.index_axis(ndarray::Axis(0), i));
        out.extend(y.iter().copied());
    }
    let mut shape = batch;
    shape.extend([m, n]);
    Ok(ArrayD::from_shape_vec(shape, out).expect("sizes agree"))
}
