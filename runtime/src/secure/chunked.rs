//! Bounded-memory in-process runs: a batch in chunks of images, each chunk's dealer material
//! streamed in budget-sized segments ([`masq_mpc::dealer::stream`]).
//!
//! ```text
//!   x [N, ...] ──split──▶ chunk 0 [c, ...]   chunk 1 [c, ...]   ...   (c: largest layer fits the budget)
//!                           │ plan at batch c, dealer deal #j (same model masks, fresh per-inference material)
//!                           │ material in segments ≤ budget, refilled when both parties run dry
//!                           ▼
//!                         outputs ──concatenate──▶ [N, ...];  reports summed (see `merge`)
//! ```
//! Only graphs with a symbolic batch axis are chunked; a fixed-batch graph runs whole (its
//! material is still streamed in segments). With one chunk the report is exactly the single
//! pipeline's. With several, bytes, rounds, seconds, `predicted` and `measured` are sums over the
//! chunks (the chunks run one after the other; each chunk's prediction equals its measurement, so
//! the sums do too), the model load (`setup_*`) is reported once (every chunk opens the same
//! `E = W - A`), and the resident-material figures are the largest chunk's.

use std::ops::Range;

use ndarray::{ArrayD, Axis};
use serde::Serialize;

use masq_mpc::cost::{Network, estimate_seconds};
use masq_mpc::dealer::Request;
use masq_mpc::dealer::stream::resident_bytes;

use super::{Progress, SecureConfig, SecureRun, check_input, plan, run_chunk};
use crate::error::{IrError, Result};
use masq_ir::Graph;

/// How a run was streamed (part of [`super::SecureReport`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StreamingReport {
    /// The budget the run was given ([`SecureConfig::material_budget_bytes`]).
    pub material_budget_bytes: u64,
    /// Pipelines the batch ran as (1: the whole batch at once).
    pub chunks: usize,
    /// Images per chunk (the last chunk may have fewer).
    pub chunk_size: usize,
    /// Segments the material was dealt in, over all chunks.
    pub segments: usize,
    /// Most dealer material (both parties, estimated in-memory bytes) resident at once: the
    /// largest segment's.
    pub peak_material_bytes: u64,
    /// What dealing all the material of the batch up front would hold (the sum over the chunks).
    pub upfront_material_bytes: u64,
    /// Wall seconds of the refills in the online phase (waiting for the peer, dealing,
    /// precomputing: offline time, not counted in the online seconds).
    pub refill_seconds: f64,
}

/// Parses a byte size: an integer with an optional `K`, `M`, `G` or `T` suffix (powers of 1024,
/// optionally followed by `B` or `iB`, any case), e.g. `1G`, `512M`, `65536`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let (digits, shift) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 10),
        Some('m') => (&body[..body.len() - 1], 20),
        Some('g') => (&body[..body.len() - 1], 30),
        Some('t') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let bad = || {
        format!("invalid size {s:?}: give a whole number of bytes with an optional K, M, G or T suffix (e.g. 1G, 512M)")
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    let v = n.checked_mul(1u64 << shift).ok_or_else(|| format!("size {s:?} is too large"))?;
    if v == 0 {
        return Err(format!("invalid size {s:?}: must be at least 1 byte"));
    }
    Ok(v)
}

/// Images per chunk for a batch of `batch`: as many as keep the largest layer's material within
/// the budget (at least 1); the whole batch when the graph has no symbolic batch axis.
pub fn chunk_size(graph: &Graph, batch: usize, cfg: &SecureConfig) -> Result<usize> {
    if batch <= 1 || !graph.supports_batch() {
        return Ok(batch);
    }
    let p = plan(graph, 1, cfg)?;
    let mut largest = 1u64;
    for r in &p.requests {
        let out = |id: usize| match r {
            Request::Linear { input_shape, .. } => p.layers.get(id)?.kind.output_shape(input_shape).ok(),
            _ => None,
        };
        let b = resident_bytes(r, &out)
            .map_err(|source| crate::error::RuntimeError::Mpc { at: "planning".into(), source })?;
        largest = largest.max(b);
    }
    Ok(((cfg.material_budget_bytes / largest) as usize).clamp(1, batch))
}

/// [`super::run`] with progress events (the online pass reports from the client's thread): the
/// batch in chunks and the material in segments within [`SecureConfig::material_budget_bytes`]
/// (see the module docs for what the report of a chunked run means).
pub fn run_with_progress(
    graph: &Graph,
    x: &ArrayD<f32>,
    cfg: &SecureConfig,
    progress: Option<&(dyn Fn(Progress) + Sync)>,
) -> Result<SecureRun> {
    check_input(graph, x, cfg.frac_bits)?;
    let batch = x.shape()[0];
    let chunk = chunk_size(graph, batch, cfg)?;
    if chunk >= batch {
        return run_chunk(graph, x, cfg, 0, progress);
    }
    let ranges: Vec<Range<usize>> = (0..batch).step_by(chunk).map(|a| a..(a + chunk).min(batch)).collect();
    let n = ranges.len();
    let mut runs = Vec::with_capacity(n);
    for (j, r) in ranges.into_iter().enumerate() {
        let part = x.slice_axis(Axis(0), r.into()).to_owned();
        let on = |p: Progress| {
            if let Some(f) = progress {
                f(match p {
                    Progress::Node { done, total } => Progress::Node { done: j * total + done, total: n * total },
                    other => other,
                });
            }
        };
        runs.push(run_chunk(graph, &part, cfg, j as u64, Some(&on))?);
    }
    merge(runs, chunk)
}

fn concat(parts: &[&ArrayD<f32>]) -> Result<ArrayD<f32>> {
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|e| {
        IrError::InvalidGraph { reason: format!("joining the chunks' outputs along the batch axis: {e}") }.into()
    })
}

fn concat_named(all: &[Vec<(String, ArrayD<f32>)>]) -> Result<Vec<(String, ArrayD<f32>)>> {
    let first = &all[0];
    (0..first.len())
        .map(|k| {
            let parts: Vec<&ArrayD<f32>> = all.iter().map(|o| &o[k].1).collect();
            Ok((first[k].0.clone(), concat(&parts)?))
        })
        .collect()
}

/// Joins the chunks' runs: outputs concatenated, figures summed (see the module docs).
fn merge(runs: Vec<SecureRun>, chunk: usize) -> Result<SecureRun> {
    let outputs = concat_named(&runs.iter().map(|r| r.outputs.clone()).collect::<Vec<_>>())?;
    let plain = concat_named(&runs.iter().map(|r| r.plain.clone()).collect::<Vec<_>>())?;
    let mut it = runs.into_iter();
    let mut rep = it.next().expect("at least one chunk").report;
    for r in it.map(|r| r.report) {
        rep.batch += r.batch;
        rep.comparisons_per_batch += r.comparisons_per_batch;
        rep.online_bytes_p0_to_p1 += r.online_bytes_p0_to_p1;
        rep.online_bytes_p1_to_p0 += r.online_bytes_p1_to_p0;
        rep.online_bytes += r.online_bytes;
        rep.rounds += r.rounds;
        rep.offline_bytes += r.offline_bytes;
        rep.online_seconds += r.online_seconds;
        rep.offline_seconds += r.offline_seconds;
        rep.predicted += r.predicted;
        rep.measured += r.measured;
        rep.max_abs_error = rep.max_abs_error.max(r.max_abs_error);
        rep.range_overflows += r.range_overflows;
        rep.expected_truncation_failures += r.expected_truncation_failures;
        for (a, b) in rep.layers.iter_mut().zip(&r.layers) {
            a.online_bytes_p0_to_p1 += b.online_bytes_p0_to_p1;
            a.online_bytes_p1_to_p0 += b.online_bytes_p1_to_p0;
            a.rounds += b.rounds;
            a.offline_bytes += b.offline_bytes;
            a.seconds += b.seconds;
            a.range_overflows += b.range_overflows;
            a.truncated_bits = a.truncated_bits.max(b.truncated_bits);
            a.expected_truncation_failures += b.expected_truncation_failures;
            if let (Some(x), Some(y)) = (a.output_shape.first_mut(), b.output_shape.first()) {
                *x += y;
            }
        }
        let s = &mut rep.streaming;
        s.chunks += 1;
        s.segments += r.streaming.segments;
        s.peak_material_bytes = s.peak_material_bytes.max(r.streaming.peak_material_bytes);
        s.upfront_material_bytes += r.streaming.upfront_material_bytes;
        s.refill_seconds += r.streaming.refill_seconds;
    }
    rep.streaming.chunk_size = chunk;
    rep.est_lan_seconds = estimate_seconds(&rep.measured, rep.online_seconds, &Network::LAN);
    rep.est_wan_seconds = estimate_seconds(&rep.measured, rep.online_seconds, &Network::WAN);
    if let Some((_, y)) = outputs.first() {
        rep.output_shape = y.shape().to_vec();
        rep.output = y.iter().copied().collect();
    }
    Ok(SecureRun { report: rep, outputs, plain })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["", "G", "1.5G", "-1", "0", "1X", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
