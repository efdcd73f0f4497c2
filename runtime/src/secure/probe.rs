//! The clear-text probe: the secure lowering ([`super::lower`]) run a third time, on plain
//! fixed-point ring values (u64 words, wrapping arithmetic, truncation as an arithmetic shift of
//! the signed value, linear layers with the real encoded weights), recording per node every value
//! a secure comparison would see: the inputs of `relu` (ReLU, Clip's `x − lo` and `x − hi`,
//! Sigmoid's clamp differences, a capped site's `x − cap`), a masked activation's kept elements,
//! and MaxPool's pairwise differences.
//!
//! A comparison on `k` bits is exact for `|x| < 2^(k−1)`: [`CmpStats::overflows`] counts the
//! values outside that range for any `k`, from a histogram of the values' bit lengths. The probe
//! makes the same comparisons as the planner and the executor (same lowering, same order), on
//! values equal to the secure run's up to the local truncations' ±1 in the last place.
//!
//! It also records every value a local truncation shifts (a linear layer's accumulation at scale
//! `2^(2f)`, a product, a pooled sum): [`TruncStats::expected_failures`] is the number of them the
//! secure run is expected to get wrong by about `2^(64−f)` (the failure rate of the engine's
//! local truncation is `|x| / 2^64` per value, [`masq_mpc::protocols::trunc::failure_probability`]),
//! the ring's headroom check ([`super::headroom`]).

use std::collections::HashMap;

use ndarray::{ArrayD, Ix2, IxDyn, Zip};
use serde::Serialize;

use masq_mpc::dealer::LinearKind;
use masq_mpc::protocols::{PoolParams, Replacement as MpcReplacement};
use masq_mpc::{FixedPoint, MpcError};

use super::lower::{Backend, WeightSource};
use super::plan::Plan;
use crate::error::{IrError, Result};
use masq_ir::Graph;

/// Bits of `|x|` (0 for 0): `|x| < 2^b` exactly when `b ≥ bit_len(|x|)`.
fn bit_len(a: u64) -> u32 {
    64 - a.leading_zeros()
}

/// The values one node compares, over every image probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmpStats {
    /// Values compared.
    pub count: u64,
    /// Largest `|x|` of them (signed fixed-point ring value, at scale `2^f`).
    pub max_abs: u64,
    /// `hist[b]`: values whose `|x|` has bit length `b` (0 to 64).
    pub hist: Vec<u64>,
}

impl Default for CmpStats {
    fn default() -> Self {
        CmpStats { count: 0, max_abs: 0, hist: vec![0; 65] }
    }
}

impl CmpStats {
    fn record(&mut self, words: impl Iterator<Item = u64>) {
        for w in words {
            let a = (w as i64).unsigned_abs();
            self.count += 1;
            self.max_abs = self.max_abs.max(a);
            self.hist[bit_len(a) as usize] += 1;
        }
    }

    /// Adds `o`'s values.
    pub fn merge(&mut self, o: &CmpStats) {
        self.count += o.count;
        self.max_abs = self.max_abs.max(o.max_abs);
        for (a, b) in self.hist.iter_mut().zip(&o.hist) {
            *a += b;
        }
    }

    /// Bits that represent every value seen as a signed number: `bit_len(max |x|) + 1`.
    pub fn signed_bits(&self) -> u32 {
        bit_len(self.max_abs) + 1
    }

    /// Values a comparison on `bits` bits would get wrong: `|x| ≥ 2^(bits−1)` (none at 64 bits,
    /// which is exact for every ring element).
    pub fn overflows(&self, bits: u32) -> u64 {
        if bits >= 64 {
            return 0;
        }
        self.hist[bits.max(1) as usize..].iter().sum()
    }
}

/// The values one node truncates locally, over every image probed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TruncStats {
    /// Values truncated.
    pub count: u64,
    /// Largest `|x|` of them (signed ring value before the shift).
    pub max_abs: u64,
    /// `Σ |x|` (as a float).
    pub sum_abs: f64,
}

impl TruncStats {
    fn record(&mut self, words: &[u64]) {
        let mut sum = 0f64;
        for &w in words {
            let a = (w as i64).unsigned_abs();
            self.max_abs = self.max_abs.max(a);
            sum += a as f64;
        }
        self.count += words.len() as u64;
        self.sum_abs += sum;
    }

    /// Adds `o`'s values.
    pub fn merge(&mut self, o: &TruncStats) {
        self.count += o.count;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.sum_abs += o.sum_abs;
    }

    /// Bits of the largest value truncated as a signed number (0 when none was).
    pub fn signed_bits(&self) -> u32 {
        if self.count == 0 { 0 } else { bit_len(self.max_abs) + 1 }
    }

    /// Expected number of these values the engine's local truncation gets wrong:
    /// `Σ |x| / 2^64` ([`masq_mpc::protocols::trunc::failure_probability`] summed).
    pub fn expected_failures(&self) -> f64 {
        self.sum_abs * masq_mpc::protocols::trunc::failure_probability(1)
    }

    /// What the same values would expect in a ring of `ring_bits` bits (`Σ |x| / 2^ring_bits`,
    /// at most one per value): the figure behind masq's choice of `Z_2^64` (docs/PROTOCOLS.md).
    pub fn expected_failures_in_ring(&self, ring_bits: u32) -> f64 {
        (self.sum_abs / 2f64.powi(ring_bits as i32)).min(self.count as f64)
    }
}

/// What a probe of one batch found.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    /// Per node of the plan's graph (BatchNorm folded): the values it compares.
    pub nodes: Vec<CmpStats>,
    /// Per node: the values it truncates locally.
    pub truncations: Vec<TruncStats>,
    /// The values the secure run would reveal, in ring encoding (decode with
    /// [`super::decode_outputs`]).
    pub outputs: Vec<ArrayD<u64>>,
}

impl ProbeRun {
    /// Per node: compared values outside the range of the node's planned width.
    pub fn overflows(&self, plan: &Plan) -> Vec<u64> {
        self.nodes.iter().zip(&plan.node_bits).map(|(s, &b)| s.overflows(b)).collect()
    }
}

/// Runs the lowering of `plan` on `x` (`[batch, ...]` at the plan's batch) in the clear.
pub fn probe(plan: &Plan, x: &ArrayD<f32>) -> Result<ProbeRun> {
    let fp = plan.fixed_point;
    let want = plan.shapes.get(&plan.program.input).cloned().unwrap_or_default();
    if x.shape() != want.as_slice() {
        return Err(IrError::BadInput {
            name: plan.program.input.clone(),
            expected: format!("{want:?}"),
            got: x.shape().to_vec(),
        }
        .into());
    }
    let mut p = Probe {
        fp,
        graph: &plan.graph,
        cur: 0,
        nodes: vec![CmpStats::default(); plan.graph.nodes.len()],
        truncations: vec![TruncStats::default(); plan.graph.nodes.len()],
        weights: HashMap::new(),
    };
    let xq = x.mapv(|v| fp.encode(v as f64));
    let outputs = plan.program.walk(&mut p, &plan.graph, &plan.shapes, fp, xq)?;
    Ok(ProbeRun { nodes: p.nodes, truncations: p.truncations, outputs })
}

/// The probing backend: values are plain ring words.
struct Probe<'g> {
    fp: FixedPoint,
    graph: &'g Graph,
    cur: usize,
    nodes: Vec<CmpStats>,
    truncations: Vec<TruncStats>,
    weights: HashMap<(String, bool), ArrayD<u64>>,
}

impl Probe<'_> {
    fn trunc(&mut self, w: u64) -> u64 {
        if let Some(t) = self.truncations.get_mut(self.cur) {
            t.record(&[w]);
        }
        ((w as i64) >> self.fp.frac_bits()) as u64
    }

    fn record(&mut self, words: impl Iterator<Item = u64>) {
        if let Some(s) = self.nodes.get_mut(self.cur) {
            s.record(words);
        }
    }

    fn relu_words(&mut self, x: &[u64]) -> Vec<u64> {
        self.record(x.iter().copied());
        x.iter().map(|&w| if (w as i64) < 0 { 0 } else { w }).collect()
    }

    /// The encoded weight of a linear layer (P0's share in the secure run), cached.
    fn weight(&mut self, src: &WeightSource) -> masq_mpc::Result<&ArrayD<u64>> {
        let key = (src.name.clone(), src.transpose);
        if !self.weights.contains_key(&key) {
            let bad = |reason: &str| MpcError::InvalidParameter {
                name: "linear weight",
                value: src.name.clone(),
                reason: reason.into(),
            };
            let w = self.graph.initializers.get(&src.name).ok_or_else(|| bad("missing"))?;
            let w = if src.transpose {
                let w2 = w.view().into_dimensionality::<Ix2>().map_err(|_| bad("expected a 2-D weight"))?;
                w2.t().as_standard_layout().into_owned().into_dyn()
            } else {
                w.as_standard_layout().into_owned()
            };
            let fp = self.fp;
            self.weights.insert(key.clone(), w.mapv(|v| fp.encode(v as f64)));
        }
        Ok(&self.weights[&key])
    }
}

fn nchw(op: &str, s: &[usize]) -> masq_mpc::Result<[usize; 4]> {
    match s {
        &[n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(MpcError::ShapeMismatch { op: op.into(), expected: "[N, C, H, W]".into(), got: format!("{s:?}") }),
    }
}

fn flat(a: &ArrayD<u64>) -> Vec<u64> {
    a.iter().copied().collect()
}

fn shaped(shape: &[usize], v: Vec<u64>) -> ArrayD<u64> {
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("element counts agree")
}

impl Backend for Probe<'_> {
    type T = u64;

    fn public(&self, c: &ArrayD<u64>) -> ArrayD<u64> {
        c.clone()
    }

    fn public_word(&self, w: u64) -> u64 {
        w
    }

    fn add(&mut self, mut a: ArrayD<u64>, b: &ArrayD<u64>) -> ArrayD<u64> {
        Zip::from(&mut a).and(b).for_each(|x, &y| *x = x.wrapping_add(y));
        a
    }

    fn sub(&mut self, mut a: ArrayD<u64>, b: &ArrayD<u64>) -> ArrayD<u64> {
        Zip::from(&mut a).and(b).for_each(|x, &y| *x = x.wrapping_sub(y));
        a
    }

    fn mul_public(&mut self, mut a: ArrayD<u64>, c: &ArrayD<u64>) -> ArrayD<u64> {
        let cb = c.broadcast(a.raw_dim()).expect("checked by the lowering");
        Zip::from(&mut a).and(&cb).for_each(|x, &y| *x = x.wrapping_mul(y));
        a
    }

    fn truncate(&mut self, a: ArrayD<u64>) -> ArrayD<u64> {
        if let Some(t) = self.truncations.get_mut(self.cur) {
            match a.as_slice() {
                Some(words) => t.record(words),
                None => t.record(&flat(&a)),
            }
        }
        let f = self.fp.frac_bits();
        a.mapv(|w| ((w as i64) >> f) as u64)
    }

    fn linear(&mut self, kind: &LinearKind, weight: WeightSource, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let w = self.weight(&weight)?;
        kind.apply(w, &x)
    }

    fn relu(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let y = self.relu_words(&flat(&x));
        Ok(shaped(x.shape(), y))
    }

    fn mul(&mut self, mut x: ArrayD<u64>, y: &ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        if x.shape() != y.shape() {
            return Err(MpcError::ShapeMismatch {
                op: "mul".into(),
                expected: format!("{:?}", x.shape()),
                got: format!("{:?}", y.shape()),
            });
        }
        Zip::from(&mut x).and(y).for_each(|a, &b| *a = a.wrapping_mul(b));
        Ok(x)
    }

    fn square(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        Ok(x.mapv(|a| a.wrapping_mul(a)))
    }

    fn drelu(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        self.record(x.iter().copied());
        Ok(x.mapv(|w| u64::from((w as i64) >= 0)))
    }

    fn matmul(&mut self, x: ArrayD<u64>, y: &ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let (b, m, k, n) = masq_mpc::protocols::matmul_dims(x.shape(), y.shape())?;
        let mut out = vec![0u64; b * m * n];
        masq_mpc::kernel::gemm_batched(b, m, k, n, &flat(&x), &flat(y), &mut out, false)?;
        Ok(shaped(&[b, m, n], out))
    }

    fn masked_act(&mut self, x: ArrayD<u64>, mask: &[u8], r: &MpcReplacement) -> masq_mpc::Result<ArrayD<u64>> {
        let per_image = mask.len();
        let shape = x.shape().to_vec();
        if shape.is_empty() || per_image == 0 || shape[1..].iter().product::<usize>() != per_image {
            return Err(MpcError::ShapeMismatch {
                op: "masked_act".into(),
                expected: format!("[batch, ...] with {per_image} elements per image (the mask)"),
                got: format!("{shape:?}"),
            });
        }
        let data = flat(&x);
        let kept: Vec<u64> =
            data.iter().enumerate().filter(|(i, _)| mask[i % per_image] == 1).map(|(_, &w)| w).collect();
        let relu = self.relu_words(&kept);
        let (fp, f) = (self.fp, self.fp.frac_bits());
        let mut relu = relu.into_iter();
        let mut out = Vec::with_capacity(data.len());
        for (i, &w) in data.iter().enumerate() {
            let j = i % per_image;
            if mask[j] == 1 {
                out.push(relu.next().expect("one per kept element"));
                continue;
            }
            out.push(match r {
                MpcReplacement::Identity => w,
                MpcReplacement::Poly { c2, c1, c0 } => {
                    let ch = j / r.per_channel(per_image)?;
                    let x2 = self.trunc(w.wrapping_mul(w));
                    let t = fp
                        .encode(c2[ch])
                        .wrapping_mul(x2)
                        .wrapping_add(fp.encode(c1[ch]).wrapping_mul(w))
                        .wrapping_add(fp.encode(c0[ch]) << f);
                    self.trunc(t)
                }
            });
        }
        Ok(shaped(&shape, out))
    }

    fn maxpool(&mut self, x: ArrayD<u64>, p: &PoolParams) -> masq_mpc::Result<ArrayD<u64>> {
        let [n, c, h, w] = nchw("maxpool", x.shape())?;
        let (wins, _) = p.windows(h, w)?;
        let [ho, wo] = p.output_hw(h, w)?;
        let data = flat(&x);
        let mut cand: Vec<Vec<u64>> = Vec::with_capacity(n * c * wins.len());
        for pl in 0..n * c {
            for win in &wins {
                cand.push(win.iter().map(|&i| data[pl * h * w + i]).collect());
            }
        }
        // The secure tree, on plain words (the probe records every difference it compares).
        let out = masq_mpc::protocols::max_tree(cand, |diffs| Ok(self.relu_words(diffs)))?;
        Ok(shaped(&[n, c, ho, wo], out))
    }

    fn avgpool(&mut self, x: ArrayD<u64>, p: &PoolParams, cip: bool) -> masq_mpc::Result<ArrayD<u64>> {
        let [n, c, h, w] = nchw("avgpool", x.shape())?;
        let (wins, _) = p.windows(h, w)?;
        let [ho, wo] = p.output_hw(h, w)?;
        let data = flat(&x);
        let full = p.kernel[0] * p.kernel[1];
        let mut out = Vec::with_capacity(n * c * ho * wo);
        for pl in 0..n * c {
            for win in &wins {
                let sum = win.iter().fold(0u64, |s, &i| s.wrapping_add(data[pl * h * w + i]));
                let count = if cip { full } else { win.len().max(1) };
                out.push(self.trunc(sum.wrapping_mul(self.fp.encode(1.0 / count as f64))));
            }
        }
        Ok(shaped(&[n, c, ho, wo], out))
    }

    fn global_avgpool(&mut self, x: ArrayD<u64>) -> masq_mpc::Result<ArrayD<u64>> {
        let [_, _, h, w] = nchw("global_avgpool", x.shape())?;
        let p = PoolParams { kernel: [h, w], stride: [1, 1], padding: [0; 4], dilation: [1, 1] };
        self.avgpool(x, &p, true)
    }

    fn node_start(&mut self, i: usize) {
        self.cur = i;
    }
}
