//! Charts for `masq demo` (issue #7): accuracy versus ReLU count, and ReLUs per layer before and
//! after reduction. Each chart is written as `<stem>.png` and `<stem>.svg`, both atomically.
//!
//! plotters draws each chart as SVG, text kept as `<text>` in sans-serif; resvg renders that SVG
//! to the PNG, with this machine's fonts (fontdb; `$MASQ_PLOT_FONT` first, else DejaVu Sans,
//! Liberation Sans, … — see [`text`]). Labels are measured for the layout by usvg's text layout,
//! the same that draws them. With no font at all the PNG is still written, without its text, after
//! a one-line warning. Nothing needs fontconfig/freetype libraries or the network.

mod axis;
mod layers;
mod legend;
mod output;
mod pareto;
mod style;
#[cfg(test)]
mod tests;
mod text;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail, ensure};

use self::text::Fonts;

/// One model: its ReLU count and its accuracy, a fraction in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub relus: u64,
    pub accuracy: f64,
}

/// A named line of points, e.g. "autorep" or "random".
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// One ReLU site: its count before reduction, and after it per label (e.g. `("autorep 1200", 340)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBar {
    pub name: String,
    pub before: u64,
    pub after: Vec<(String, u64)>,
}

/// Accuracy (%) against ReLU count (log scale when the counts span 3× or more, linear otherwise),
/// one coloured line with markers per series, and for `baseline` (the unreduced model) a marked
/// point on a dashed horizontal line; legend under the title. Writes `<out_stem>.png` and
/// `<out_stem>.svg` (the folder must exist) and returns their paths.
pub fn pareto_chart(title: &str, series: &[Series], baseline: Option<Point>, out_stem: &Path) -> Result<Vec<PathBuf>> {
    pareto_chart_with(Fonts::system(), title, series, baseline, out_stem)
}

/// Grouped bars per ReLU site in the given (forward) order: the count before reduction and after
/// it for each label, on a log axis when the counts span 10× or more; long layer names are
/// shortened and rotated when they do not fit. Writes `<out_stem>.png` and `<out_stem>.svg` (the
/// folder must exist) and returns their paths.
pub fn layer_chart(title: &str, layers: &[LayerBar], out_stem: &Path) -> Result<Vec<PathBuf>> {
    layer_chart_with(Fonts::system(), title, layers, out_stem)
}

fn pareto_chart_with(
    fonts: &Fonts,
    title: &str,
    series: &[Series],
    baseline: Option<Point>,
    out_stem: &Path,
) -> Result<Vec<PathBuf>> {
    ensure!(!series.is_empty(), "accuracy chart {}: no series to plot", out_stem.display());
    for s in series {
        ensure!(!s.points.is_empty(), "accuracy chart {}: series {:?} has no points", out_stem.display(), s.name);
        for p in &s.points {
            check_point(p, &s.name, out_stem)?;
        }
    }
    if let Some(b) = &baseline {
        check_point(b, "unreduced baseline", out_stem)?;
    }
    output::write_chart(&pareto::Pareto { title, series, baseline }, fonts, out_stem)
}

fn layer_chart_with(fonts: &Fonts, title: &str, layers: &[LayerBar], out_stem: &Path) -> Result<Vec<PathBuf>> {
    ensure!(!layers.is_empty(), "layer chart {}: no layers to plot", out_stem.display());
    let mut labels: Vec<&str> = Vec::new();
    for layer in layers {
        for (i, (label, _)) in layer.after.iter().enumerate() {
            if layer.after[..i].iter().any(|(l, _)| l == label) {
                bail!("layer chart {}: layer {:?} has label {label:?} twice", out_stem.display(), layer.name);
            }
            if !labels.contains(&label.as_str()) {
                labels.push(label);
            }
        }
    }
    let all_zero = layers.iter().all(|l| l.before == 0 && l.after.iter().all(|&(_, n)| n == 0));
    ensure!(!all_zero, "layer chart {}: every ReLU count is 0, nothing to draw", out_stem.display());
    output::write_chart(&layers::Layers { title, layers, labels }, fonts, out_stem)
}

fn check_point(p: &Point, series: &str, out_stem: &Path) -> Result<()> {
    ensure!(
        p.accuracy.is_finite(),
        "accuracy chart {}: series {series:?} has a non-finite accuracy ({}) at {} ReLUs",
        out_stem.display(),
        p.accuracy,
        p.relus
    );
    ensure!(
        (0.0..=1.0).contains(&p.accuracy),
        "accuracy chart {}: series {series:?} has accuracy {} at {} ReLUs; accuracy is a fraction in [0, 1]",
        out_stem.display(),
        p.accuracy,
        p.relus
    );
    Ok(())
}
