//! Calibrated comparison widths: the clear-text [`probe`](super::probe) run over sample inputs,
//! and per comparing node the narrowest width that holds every value seen, plus guard bits.
//!
//! ```text
//!   width = bits of max |x| as a signed number + guard = ceil(log2(max |x| + 1)) + 1 + guard
//!           (fixed-point |x| at scale 2^f; clamped to 2..=64)
//! ```
//! A comparison on `k` bits is exact for `|x| < 2^(k−1)`; each guard bit doubles the range past
//! the largest value calibrated on (the truncations' ±1 in the last place and inputs larger than
//! the calibration set's). [`Calibration::apply`] writes the widths into [`Graph::cmp_bits`].

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use ndarray::{ArrayD, Axis};
use serde::Serialize;

use super::probe::{CmpStats, TruncStats, probe};
use super::{Plan, SecureConfig, plan};
use crate::error::{IrError, Result};
use masq_ir::{Dim, Graph};

/// Guard bits above the calibrated range by default.
pub const DEFAULT_GUARD_BITS: u32 = 3;

/// Images probed at once by default.
pub const DEFAULT_PROBE_BATCH: usize = 32;

/// The width for compared values up to `max_abs` (fixed point): `bit_len(max_abs) + 1 + guard`,
/// clamped to 2..=64.
pub fn width_for(max_abs: u64, guard_bits: u32) -> u32 {
    let signed = 64 - max_abs.leading_zeros() + 1;
    signed.saturating_add(guard_bits).clamp(2, 64)
}

/// What one comparing node compared over a set of inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRange {
    pub name: String,
    pub op: String,
    /// Comparisons per image.
    pub comparisons_per_image: u64,
    /// Largest `|x|` compared, in real units (`max_abs / 2^f`).
    pub max_abs_real: f64,
    /// Every value's magnitude (fixed point).
    #[serde(skip)]
    pub stats: CmpStats,
}

/// The ranges of every comparing node of `graph` (BatchNorm folded, in graph order) over
/// `images` (`[N, ...]`), probed `batch` at a time (a model fixed at a batch `B` takes `B`).
pub fn probe_ranges(graph: &Graph, images: &ArrayD<f32>, cfg: &SecureConfig, batch: usize) -> Result<Vec<NodeRange>> {
    Ok(probe_all(graph, images, cfg, batch)?.0)
}

/// [`probe_ranges`], and every value truncated locally (all nodes, all images) with the number
/// of inferences probed.
fn probe_all(
    graph: &Graph,
    images: &ArrayD<f32>,
    cfg: &SecureConfig,
    batch: usize,
) -> Result<(Vec<NodeRange>, TruncStats, u64)> {
    let n = images.shape().first().copied().unwrap_or(0);
    if n == 0 {
        return Err(IrError::BadInput {
            name: "images".into(),
            expected: "at least one".into(),
            got: images.shape().to_vec(),
        }
        .into());
    }
    let input = graph.data_inputs().next().ok_or_else(|| IrError::InvalidGraph { reason: "no input".into() })?;
    let chunk = match input.shape.first() {
        Some(Dim::Fixed(b)) => *b,
        _ => batch.max(1),
    };
    if matches!(input.shape.first(), Some(Dim::Fixed(_))) && !n.is_multiple_of(chunk) {
        return Err(IrError::BadInput {
            name: input.name.clone(),
            expected: format!("a multiple of the model's fixed batch {chunk}"),
            got: images.shape().to_vec(),
        }
        .into());
    }
    let mut plans: HashMap<usize, Plan> = HashMap::new();
    let mut total: Option<Vec<CmpStats>> = None;
    let mut truncated = TruncStats::default();
    let mut names = Vec::new();
    for part in images.axis_chunks_iter(Axis(0), chunk) {
        let b = part.shape()[0];
        let p = match plans.entry(b) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(plan(graph, b, cfg)?),
        };
        let run = probe(p, &part.to_owned())?;
        run.truncations.iter().for_each(|t| truncated.merge(t));
        match &mut total {
            None => {
                names = p.nodes.iter().map(|n| (n.name.clone(), n.op.clone())).collect();
                total = Some(run.nodes);
            }
            Some(t) => t.iter_mut().zip(&run.nodes).for_each(|(a, b)| a.merge(b)),
        }
    }
    let scale = 2f64.powi(cfg.frac_bits as i32);
    // A fixed-batch model's one inference is all its images.
    let per = if matches!(input.shape.first(), Some(Dim::Fixed(_))) { n / chunk } else { n } as u64;
    let ranges = names
        .into_iter()
        .zip(total.unwrap_or_default())
        .filter(|(_, s)| s.count > 0)
        .map(|((name, op), stats)| NodeRange {
            name,
            op,
            comparisons_per_image: stats.count / per.max(1),
            max_abs_real: stats.max_abs as f64 / scale,
            stats,
        })
        .collect();
    Ok((ranges, truncated, per))
}

/// One node's calibrated width.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibratedNode {
    #[serde(flatten)]
    pub range: NodeRange,
    /// Bits of the largest value as a signed number.
    pub signed_bits: u32,
    /// The chosen width.
    pub bits: u32,
}

/// Widths calibrated on a set of inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub frac_bits: u32,
    pub guard_bits: u32,
    /// Inputs calibrated on.
    pub images: usize,
    /// Every comparing node, in graph order.
    pub nodes: Vec<CalibratedNode>,
    /// The ring's headroom on the calibration images ([`super::headroom`]): values truncated
    /// locally per inference, the bits of the largest, and the truncations expected to fail per
    /// inference in masq's `Z_2^64` and, for comparison, in a 32-bit ring.
    pub truncated_per_image: u64,
    pub truncated_bits: u32,
    pub expected_truncation_failures_per_image: f64,
    pub expected_truncation_failures_per_image_ring32: f64,
}

impl Calibration {
    /// Node name to width.
    pub fn widths(&self) -> BTreeMap<String, u32> {
        self.nodes.iter().map(|n| (n.range.name.clone(), n.bits)).collect()
    }

    /// Writes the widths into `graph.cmp_bits` (replacing any there), with the scale they hold at.
    pub fn apply(&self, graph: &mut Graph) {
        graph.cmp_bits = self.widths();
        graph.cmp_frac_bits = Some(self.frac_bits);
    }

    /// Per node of `ranges` (other inputs' [`probe_ranges`]): values outside the range of the
    /// node's calibrated width (64 bits for a node not calibrated).
    pub fn overflows(&self, ranges: &[NodeRange]) -> Vec<u64> {
        let w = self.widths();
        ranges.iter().map(|r| r.stats.overflows(w.get(&r.name).copied().unwrap_or(64))).collect()
    }
}

/// Calibrates the comparison widths of `graph` on `images` (`[N, ...]`) with `guard_bits`.
pub fn calibrate(graph: &Graph, images: &ArrayD<f32>, cfg: &SecureConfig, guard_bits: u32) -> Result<Calibration> {
    calibrate_batched(graph, images, cfg, guard_bits, DEFAULT_PROBE_BATCH)
}

/// [`calibrate`], probing `batch` images at a time.
pub fn calibrate_batched(
    graph: &Graph,
    images: &ArrayD<f32>,
    cfg: &SecureConfig,
    guard_bits: u32,
    batch: usize,
) -> Result<Calibration> {
    let (ranges, truncated, per) = probe_all(graph, images, cfg, batch)?;
    let per = per.max(1) as f64;
    let nodes = ranges
        .into_iter()
        .map(|range| CalibratedNode {
            signed_bits: range.stats.signed_bits(),
            bits: width_for(range.stats.max_abs, guard_bits),
            range,
        })
        .collect();
    Ok(Calibration {
        frac_bits: cfg.frac_bits,
        guard_bits,
        images: images.shape()[0],
        nodes,
        truncated_per_image: (truncated.count as f64 / per) as u64,
        truncated_bits: truncated.signed_bits(),
        expected_truncation_failures_per_image: truncated.expected_failures() / per,
        expected_truncation_failures_per_image_ring32: truncated.expected_failures_in_ring(32) / per,
    })
}
