//! Axes: log or linear scale, the range, tick positions and tick labels. A log axis is drawn as a
//! linear axis over log10 of the value, with ticks placed here at round values (1-2-5 and so on),
//! so both scales share one coordinate type.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    Linear,
    Log,
}

/// An axis in chart units: values for [`Scale::Linear`], log10 of values for [`Scale::Log`].
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub scale: Scale,
    pub range: Range<f64>,
    /// Tick positions in chart units.
    pub ticks: Vec<f64>,
}

/// At most this many ticks on an axis.
const MAX_TICKS: usize = 9;

impl Axis {
    /// A log axis over `[lo, hi]` (both > 0), or a linear one over `range` when the range is not
    /// positive or spans less than `min_ratio`.
    pub(crate) fn counts(lo: f64, hi: f64, min_ratio: f64, linear: Range<f64>) -> Axis {
        if lo > 0.0 && hi >= lo * min_ratio {
            let range = lo.log10()..hi.log10();
            let ticks = log_ticks(lo, hi).into_iter().map(f64::log10).collect();
            Axis { scale: Scale::Log, range, ticks }
        } else {
            Axis::linear(linear)
        }
    }

    pub(crate) fn linear(range: Range<f64>) -> Axis {
        let ticks = linear_ticks(range.start, range.end);
        Axis { scale: Scale::Linear, range, ticks }
    }

    /// Value → chart units.
    pub(crate) fn to_chart(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => v,
            Scale::Log => v.log10(),
        }
    }

    /// Chart units → value.
    pub(crate) fn to_value(&self, t: f64) -> f64 {
        match self.scale {
            Scale::Linear => t,
            Scale::Log => 10f64.powf(t),
        }
    }
}

/// The axis as a plotters coordinate: linear in chart units, grid lines and labels at the ticks.
impl Ranged for Axis {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, v: &f64, (p0, p1): (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span.is_nan() || span <= 0.0 {
            return (p0 + p1) / 2;
        }
        p0 + ((v - self.range.start) / span * f64::from(p1 - p0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// Round values in `[lo, hi]` for a log axis: the densest of the usual mantissa sets that gives
/// at most [`MAX_TICKS`] ticks (and at least two where a set can).
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const SETS: &[&[f64]] = &[
        &[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0],
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 3.0],
        &[1.0],
    ];
    let mut best = Vec::new();
    for set in SETS {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi {
            for m in *set {
                let v = m * decade;
                if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                    ticks.push(v);
                }
            }
            decade *= 10.0;
        }
        if ticks.len() <= MAX_TICKS {
            return ticks;
        }
        best = ticks;
    }
    // Many decades: every k-th power of ten.
    let step = best.len().div_ceil(MAX_TICKS);
    best.into_iter().step_by(step).collect()
}

/// Round values in `[lo, hi]` at a 1-2-2.5-5 step, at most [`MAX_TICKS`] of them.
pub(crate) fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return vec![lo];
    }
    let mut magnitude = 10f64.powf((span / MAX_TICKS as f64).log10().floor());
    loop {
        for m in [1.0, 2.0, 2.5, 5.0] {
            let step = m * magnitude;
            let first = (lo / step).ceil();
            let last = (hi / step).floor();
            if last - first + 1.0 <= MAX_TICKS as f64 {
                return (first as i64..=last as i64).map(|k| k as f64 * step).collect();
            }
        }
        magnitude *= 10.0;
    }
}

/// A ReLU count for a tick or legend: `850`, `1.2k`, `25k`, `1.25M`.
pub(crate) fn count_label(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    // Three significant digits at most.
    let decimals = match scaled.abs() {
        a if a >= 99.95 => 0,
        a if a >= 9.995 => 1,
        _ => 2,
    };
    let mut s = format!("{scaled:.decimals$}");
    while s.contains('.') && (s.ends_with('0') || s.ends_with('.')) {
        s.pop();
    }
    format!("{s}{suffix}")
}

/// A percentage tick, with as many decimals as the tick step needs (2.5 steps keep their .5).
pub(crate) fn percent_label(v: f64, step: f64) -> String {
    let decimals = (0..3).find(|&d| {
        let scaled = step * 10f64.powi(d);
        (scaled - scaled.round()).abs() < 1e-6
    });
    let decimals = decimals.unwrap_or(3) as usize;
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_round_and_in_range() {
        assert_eq!(log_ticks(900.0, 30_000.0), vec![1e3, 2e3, 5e3, 1e4, 2e4]);
        let t = log_ticks(1100.0, 1900.0);
        assert!(t.len() >= 2 && t.iter().all(|&v| (1100.0..=1900.0).contains(&v)), "{t:?}");
        let t = log_ticks(1.0, 1e12);
        assert!(t.len() <= MAX_TICKS && t.len() >= 4, "{t:?}");
    }

    #[test]
    fn linear_ticks_step_evenly() {
        assert_eq!(linear_ticks(82.0, 94.0), vec![82.0, 84.0, 86.0, 88.0, 90.0, 92.0, 94.0]);
        assert_eq!(linear_ticks(0.0, 1000.0), vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        assert_eq!(linear_ticks(5.0, 5.0), vec![5.0]);
    }

    #[test]
    fn count_labels_are_short() {
        assert_eq!(count_label(850.0), "850");
        assert_eq!(count_label(1200.0), "1.2k");
        assert_eq!(count_label(25_000.0), "25k");
        assert_eq!(count_label(1_250_000.0), "1.25M");
        assert_eq!(count_label(557_056.0), "557k");
        assert_eq!(count_label(12_345.0), "12.3k");
        assert_eq!(percent_label(92.0, 2.0), "92");
        assert_eq!(percent_label(92.5, 0.5), "92.5");
        assert_eq!(percent_label(97.5, 2.5), "97.5");
        assert_eq!(percent_label(95.0, 2.5), "95.0");
        assert_eq!(percent_label(90.25, 0.25), "90.25");
    }
}
