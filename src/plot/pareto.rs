//! The accuracy-versus-ReLUs chart.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{self, Axis};
use super::legend::{self, Item, Swatch};
use super::output::Chart;
use super::style::{self, Marker};
use super::text::Fonts;
use super::{Point, Series};

/// A checked [`super::pareto_chart`] request.
#[derive(Debug)]
pub(crate) struct Pareto<'a> {
    pub title: &'a str,
    pub series: &'a [Series],
    pub baseline: Option<Point>,
}

const MARKER_R: i32 = 6;

impl Pareto<'_> {
    fn x_axis(&self) -> Axis {
        let xs = self.series.iter().flat_map(|s| &s.points).chain(&self.baseline).map(|p| p.relus as f64);
        let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        // Log for counts that span 3× or more; a little room beyond the extreme points either way.
        if lo > 0.0 && hi >= 3.0 * lo {
            let pad = ((hi / lo).log10() * 0.05).max(0.03);
            let mut a = Axis::counts(lo, hi, 3.0, 0.0..1.0);
            a.range = (lo.log10() - pad)..(hi.log10() + pad);
            a
        } else {
            let pad = ((hi - lo) * 0.08).max(hi * 0.05).max(1.0);
            Axis::linear((lo - pad).max(0.0)..hi + pad)
        }
    }

    fn y_axis(&self) -> Axis {
        let ys = self.series.iter().flat_map(|s| &s.points).chain(&self.baseline).map(|p| p.accuracy * 100.0);
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let pad = ((hi - lo) * 0.08).max(1.0);
        let top = (hi + pad).ceil().min(100.0).max(hi + 0.5);
        let bottom = (lo - pad).floor().max(0.0).min(lo - 0.5);
        Axis::linear(bottom..top)
    }
}

impl Chart for Pareto<'_> {
    fn size(&self) -> (u32, u32) {
        (1000, 650)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        fonts: &Fonts,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let area = style::draw_title(root, self.title, fonts)?;

        let mut items: Vec<Item> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| Item {
                label: s.name.clone(),
                swatch: Swatch::Line { color: style::color(i), marker: Marker::nth(i), dashed: false },
            })
            .collect();
        if let Some(b) = &self.baseline {
            items.push(Item {
                label: format!("unreduced ({} ReLUs, {:.1}%)", axis::count_label(b.relus as f64), b.accuracy * 100.0),
                swatch: Swatch::Line { color: style::REFERENCE, marker: Marker::Diamond, dashed: true },
            });
        }
        let area = legend::draw_rows(&area, &items, fonts)?;

        let x = self.x_axis();
        let y = self.y_axis();
        let y_step = if y.ticks.len() > 1 { y.ticks[1] - y.ticks[0] } else { 1.0 };
        let mut chart = ChartBuilder::on(&area)
            .margin_left(16)
            .margin_right(36)
            .margin_top(6)
            .margin_bottom(12)
            .x_label_area_size(62)
            .y_label_area_size(78)
            .build_cartesian_2d(x.clone(), y.clone())?;
        let x_label = |t: &f64| axis::count_label(x.to_value(*t).round());
        let y_label = |v: &f64| axis::percent_label(*v, y_step);
        chart
            .configure_mesh()
            .x_desc(if x.scale == axis::Scale::Log { "ReLUs (log scale)" } else { "ReLUs" })
            .y_desc("Accuracy (%)")
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style(style::text(style::TICK_SIZE))
            .axis_desc_style(style::text(style::DESC_SIZE))
            .bold_line_style(style::GRID)
            .axis_style(style::AXIS)
            .x_label_offset(0)
            .draw()?;

        let plot = chart.plotting_area().clone();
        let to_px = |p: &Point| plot.map_coordinate(&(x.to_chart(p.relus as f64), p.accuracy * 100.0));
        if let Some(b) = &self.baseline {
            let xs = plot.get_pixel_range().0;
            style::dashed_hline(root, (xs.start, xs.end), to_px(b).1, style::REFERENCE)?;
        }
        for (i, s) in self.series.iter().enumerate() {
            let mut pts: Vec<&Point> = s.points.iter().collect();
            pts.sort_by_key(|p| p.relus);
            let line = pts.iter().map(|p| (x.to_chart(p.relus as f64), p.accuracy * 100.0));
            chart.draw_series(LineSeries::new(line, style::color(i).stroke_width(3)))?;
        }
        // Markers after all lines, so no line hides another series' points.
        for (i, s) in self.series.iter().enumerate() {
            for p in &s.points {
                Marker::nth(i).draw(root, to_px(p), MARKER_R, style::color(i))?;
            }
        }
        if let Some(b) = &self.baseline {
            Marker::Diamond.draw(root, to_px(b), MARKER_R + 2, style::REFERENCE)?;
        }
        Ok(())
    }
}
