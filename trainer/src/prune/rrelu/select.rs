//! Which channels die: the removal order of the slopes, the dead set of a threshold or of a
//! count, slope statistics, and the held-out validation split.

use std::collections::{BTreeMap, BTreeSet};

use masq_ir::prune::slopes::SlopeSite;
use serde::Serialize;

use crate::data::Dataset;
use crate::error::{Result, TrainerError};

/// Slopes by relu name (the format of `masq_ir::prune::slopes::read_slopes`).
pub type Slopes = BTreeMap<String, Vec<f32>>;

/// One channel that may be removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Channel {
    /// Index of its site in the site list.
    pub site: usize,
    pub channel: usize,
    /// `|a|`.
    pub magnitude: f32,
}

/// What the threshold ζ is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Ranking {
    /// `|a_c|` itself, one scale for every site (the specification).
    #[default]
    Absolute,
    /// `|a_c|` divided by the mean `|a|` of its site. When a BatchNorm follows the consuming
    /// conv, a site's slopes can shrink together at no cost to the loss (the BatchNorm undoes a
    /// common factor in training), so the sites' scales drift apart and a single ζ over raw
    /// `|a|` mostly picks the sites that shrank most. Dividing the common factor out compares
    /// each channel with its siblings. It is the same as rescaling each site's slopes to mean 1
    /// and the consuming layer's weights by the inverse, which computes the same function.
    Site,
}

impl Ranking {
    /// The factor a site's `|a|` are multiplied by before they are compared with ζ.
    fn scale(self, v: &[f32]) -> f32 {
        match self {
            Ranking::Absolute => 1.0,
            Ranking::Site => {
                let mean = v.iter().map(|a| f64::from(a.abs())).sum::<f64>() / v.len().max(1) as f64;
                if mean > 0.0 { (1.0 / mean) as f32 } else { 1.0 }
            }
        }
    }
}

/// The channels in the order they are removed: ascending magnitude (`|a|`, or `|a|` over its
/// site's mean with [`Ranking::Site`]; ties: site order, then channel), without each site's
/// largest `|a|` (its first such channel), which always stays so that no site loses all of its
/// channels.
pub fn removal_order(sites: &[SlopeSite], slopes: &Slopes, ranking: Ranking) -> Result<Vec<Channel>> {
    let mut out = Vec::new();
    for (si, s) in sites.iter().enumerate() {
        let v = site_slopes(s, slopes)?;
        let keeper = keeper(v);
        let scale = ranking.scale(v);
        for (c, a) in v.iter().enumerate() {
            if Some(c) != keeper {
                out.push(Channel { site: si, channel: c, magnitude: a.abs() * scale });
            }
        }
    }
    out.sort_by(|x, y| x.magnitude.total_cmp(&y.magnitude).then(x.site.cmp(&y.site)).then(x.channel.cmp(&y.channel)));
    Ok(out)
}

/// The channel of a site that is never removed: the first with the largest `|a|`.
fn keeper(v: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (c, a) in v.iter().enumerate() {
        if best.is_none_or(|(_, b)| a.abs() > b) {
            best = Some((c, a.abs()));
        }
    }
    best.map(|(c, _)| c)
}

fn site_slopes<'a>(s: &SlopeSite, slopes: &'a Slopes) -> Result<&'a [f32]> {
    let v =
        slopes.get(&s.relu).ok_or_else(|| TrainerError::BadConfig { reason: format!("no slopes for {}", s.relu) })?;
    if v.len() != s.channels {
        return Err(TrainerError::BadConfig {
            reason: format!("{}: {} slopes for {} channels", s.relu, v.len(), s.channels),
        });
    }
    Ok(v)
}

/// A chosen set of dead channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// The threshold: every removed channel has `|a| <= zeta`.
    pub zeta: f32,
    /// Dead channels by relu name (sites without dead channels are absent).
    pub dead: BTreeMap<String, BTreeSet<usize>>,
    /// Number of dead channels.
    pub removed: usize,
    /// Channels with `|a| <= zeta` kept because they are the last (largest) of their site.
    pub kept_by_floor: usize,
}

/// The first `k` channels of `order` (see [`removal_order`], made with `ranking`), with `zeta`
/// their largest magnitude (0 when `k = 0`).
pub fn select_count(
    sites: &[SlopeSite],
    slopes: &Slopes,
    order: &[Channel],
    ranking: Ranking,
    k: usize,
) -> Result<Selection> {
    if k > order.len() {
        return Err(TrainerError::BadConfig {
            reason: format!("cannot remove {k} channels: at most {} without emptying a site", order.len()),
        });
    }
    let zeta = if k == 0 { 0.0 } else { order[k - 1].magnitude };
    let mut dead: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for ch in &order[..k] {
        dead.entry(sites[ch.site].relu.clone()).or_default().insert(ch.channel);
    }
    let kept_by_floor = floor_kept(sites, slopes, ranking, zeta, k > 0)?;
    Ok(Selection { zeta, dead, removed: k, kept_by_floor })
}

/// Every channel whose magnitude (by `ranking`, as `order` was made) is at most `zeta`, except
/// each site's keeper.
pub fn select_zeta(
    sites: &[SlopeSite],
    slopes: &Slopes,
    order: &[Channel],
    ranking: Ranking,
    zeta: f32,
) -> Result<Selection> {
    let k = order.partition_point(|c| c.magnitude <= zeta);
    let mut s = select_count(sites, slopes, order, ranking, k)?;
    s.zeta = zeta;
    s.kept_by_floor = floor_kept(sites, slopes, ranking, zeta, true)?;
    Ok(s)
}

fn floor_kept(sites: &[SlopeSite], slopes: &Slopes, ranking: Ranking, zeta: f32, any: bool) -> Result<usize> {
    if !any {
        return Ok(0);
    }
    let mut n = 0;
    for s in sites {
        let v = site_slopes(s, slopes)?;
        if keeper(v).is_some_and(|c| v[c].abs() * ranking.scale(v) <= zeta) {
            n += 1;
        }
    }
    Ok(n)
}

/// `slopes` with the dead channels set to 0. A surviving slope that is exactly 0 becomes the
/// smallest positive f32, so that "`|a| <= 0`" marks exactly the dead channels.
pub fn apply_selection(slopes: &Slopes, dead: &BTreeMap<String, BTreeSet<usize>>) -> Slopes {
    slopes
        .iter()
        .map(|(relu, v)| {
            let d = dead.get(relu);
            let v = v
                .iter()
                .enumerate()
                .map(|(c, &a)| match d {
                    Some(d) if d.contains(&c) => 0.0,
                    _ if a == 0.0 => f32::MIN_POSITIVE,
                    _ => a,
                })
                .collect();
            (relu.clone(), v)
        })
        .collect()
}

/// How many `|a|` lie at or under a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Under {
    pub threshold: f32,
    pub count: usize,
}

/// The thresholds [`SlopeStats::under`] counts at.
pub const UNDER_THRESHOLDS: [f32; 4] = [1e-3, 1e-2, 3e-2, 0.1];

/// Statistics of all slopes together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlopeStats {
    pub count: usize,
    pub min_abs: f32,
    pub median_abs: f32,
    pub max_abs: f32,
    pub mean_abs: f32,
    /// Slopes below zero.
    pub negatives: usize,
    /// Counts at or under [`UNDER_THRESHOLDS`].
    pub under: Vec<Under>,
}

impl SlopeStats {
    pub fn of(slopes: &Slopes) -> Self {
        let mut m: Vec<f32> = slopes.values().flatten().map(|a| a.abs()).collect();
        m.sort_by(f32::total_cmp);
        let n = m.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => m[n / 2],
            _ => 0.5 * (m[n / 2 - 1] + m[n / 2]),
        };
        let mean = if n == 0 { 0.0 } else { (m.iter().map(|&a| f64::from(a)).sum::<f64>() / n as f64) as f32 };
        SlopeStats {
            count: n,
            min_abs: m.first().copied().unwrap_or(0.0),
            median_abs: median,
            max_abs: m.last().copied().unwrap_or(0.0),
            mean_abs: mean,
            negatives: slopes.values().flatten().filter(|&&a| a < 0.0).count(),
            under: UNDER_THRESHOLDS
                .iter()
                .map(|&t| Under { threshold: t, count: m.partition_point(|&a| a <= t) })
                .collect(),
        }
    }
}

/// Size of the validation split carved from the training split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationSize {
    /// This fraction of the training images (rounded, at least one).
    Fraction(f64),
    /// This many images.
    Images(usize),
}

/// Split `train` into (training rest, validation) with [`crate::prune::holdout::hold_out`] at
/// the size `size` gives.
pub fn validation_split(train: &Dataset, size: ValidationSize, seed: u64) -> Result<(Dataset, Dataset)> {
    let n = train.len();
    let k = match size {
        ValidationSize::Fraction(f) if f.is_finite() && f > 0.0 && f < 1.0 => ((f * n as f64).round() as usize).max(1),
        ValidationSize::Fraction(f) => {
            return Err(TrainerError::BadConfig { reason: format!("validation fraction {f} is not in (0, 1)") });
        }
        ValidationSize::Images(k) => k,
    };
    crate::prune::holdout::hold_out(train, k, seed ^ 0x7a11_da7e)
}
