//! The per-layer ReLU chart: grouped bars, one group per ReLU site in forward order.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::LayerBar;
use super::axis::{self, Axis, Scale};
use super::legend::{self, Item, Swatch};
use super::output::Chart;
use super::style;
use super::text::Fonts;

/// A checked [`super::layer_chart`] request.
#[derive(Debug)]
pub(crate) struct Layers<'a> {
    pub title: &'a str,
    pub layers: &'a [LayerBar],
    /// The distinct "after" labels, in order of first appearance.
    pub labels: Vec<&'a str>,
}

/// Layer names longer than this are shortened to their start and end.
const MAX_NAME: usize = 22;
const Y_LABEL_AREA: u32 = 86;
const MARGIN_LEFT: u32 = 16;
const MARGIN_RIGHT: u32 = 30;

impl Layers<'_> {
    fn bars_per_group(&self) -> usize {
        1 + self.labels.len()
    }

    /// Bar `j` of `layer`: 0 is "before", then one per label (None where the layer lacks it).
    fn value(&self, layer: &LayerBar, j: usize) -> Option<u64> {
        match j {
            0 => Some(layer.before),
            _ => layer.after.iter().find(|(l, _)| l == self.labels[j - 1]).map(|&(_, n)| n),
        }
    }

    fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.layers.iter().flat_map(move |l| (0..self.bars_per_group()).filter_map(move |j| self.value(l, j)))
    }

    fn y_axis(&self) -> Axis {
        let max = self.values().max().unwrap_or(0) as f64;
        let min_pos = self.values().filter(|&v| v > 0).min().unwrap_or(0) as f64;
        let mut a = Axis::counts(min_pos, max, 10.0, 0.0..max * 1.1);
        if a.scale == Scale::Log {
            // Bars grow from a power of ten below the smallest count, so every bar has a length.
            let bottom = (min_pos.log10() - 0.15).floor();
            let top = max.log10() + (max.log10() - bottom) * 0.06;
            a = Axis::counts(10f64.powf(bottom), 10f64.powf(top), 1.0, 0.0..1.0);
        }
        a
    }

    fn group_px(&self) -> u32 {
        (self.bars_per_group() as u32 * 14 + 22).max(56)
    }

    fn names(&self) -> Vec<String> {
        self.layers.iter().map(|l| shorten(&l.name)).collect()
    }
}

/// `name`, or its start and end joined by `..` when longer than [`MAX_NAME`].
fn shorten(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= MAX_NAME {
        return name.to_string();
    }
    let head = 7; // e.g. "feature..layer16.relu2": the end names the site, the start its block
    let tail = MAX_NAME - 2 - head;
    let mut s: String = chars[..head].iter().collect();
    s.push_str("..");
    s.extend(&chars[chars.len() - tail..]);
    s
}

impl Chart for Layers<'_> {
    fn size(&self) -> (u32, u32) {
        let n = self.layers.len() as u32;
        let w = (Y_LABEL_AREA + MARGIN_LEFT + MARGIN_RIGHT + n * self.group_px()).clamp(900, 2600);
        let longest = self.names().iter().map(|s| s.chars().count()).max().unwrap_or(0) as u32;
        (w, 500 + longest * 10)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        fonts: &Fonts,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let area = style::draw_title(root, self.title, fonts)?;
        let mut items = vec![Item { label: "before".to_string(), swatch: Swatch::Bar(style::BEFORE) }];
        for (i, l) in self.labels.iter().enumerate() {
            items.push(Item { label: l.to_string(), swatch: Swatch::Bar(style::color(i)) });
        }
        let area = legend::draw_rows(&area, &items, fonts)?;

        // Layer names: horizontal when they fit under their group, else rotated to read upwards.
        let names = self.names();
        let tick = style::text(style::TICK_SIZE);
        let mut name_w = 0;
        let mut name_h = 0;
        for n in &names {
            let (w, h) = fonts.size(n, &tick);
            name_w = name_w.max(w as i32);
            name_h = name_h.max(h as i32);
        }
        let (area_w, _) = area.dim_in_pixel();
        let plot_w = area_w.saturating_sub(Y_LABEL_AREA + MARGIN_LEFT + MARGIN_RIGHT) as i32;
        let per_group = plot_w / names.len().max(1) as i32;
        let rotate = name_w + 10 > per_group;
        let (_, desc_h) = fonts.size("ReLU site", &style::text(style::DESC_SIZE));
        let names_h = if rotate { name_w } else { name_h };
        let x_label_area = names_h + 14 + desc_h as i32 + 14;

        let n = self.layers.len() as f64;
        let y = self.y_axis();
        let x = Axis { scale: Scale::Linear, range: 0.0..n, ticks: Vec::new() };
        let mut chart = ChartBuilder::on(&area)
            .margin_left(MARGIN_LEFT)
            .margin_right(MARGIN_RIGHT)
            .margin_top(6)
            .margin_bottom(10)
            .x_label_area_size(x_label_area)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x.clone(), y.clone())?;
        let y_label = |t: &f64| axis::count_label(y.to_value(*t).round());
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("ReLU site (forward order)")
            .y_desc(if y.scale == Scale::Log { "ReLUs (log scale)" } else { "ReLUs" })
            .y_label_formatter(&y_label)
            .label_style(style::text(style::TICK_SIZE))
            .axis_desc_style(style::text(style::DESC_SIZE))
            .bold_line_style(style::GRID)
            .axis_style(style::AXIS)
            .draw()?;

        let ys = chart.plotting_area().get_pixel_range().1;
        for i in 1..self.layers.len() {
            let px = chart.backend_coord(&(i as f64, y.range.start)).0;
            root.draw(&PathElement::new(vec![(px, ys.start), (px, ys.end)], style::GRID))?;
        }

        let k = self.bars_per_group();
        let bar_w = 0.8 / k as f64;
        let bottom = y.range.start;
        for (i, layer) in self.layers.iter().enumerate() {
            for j in 0..k {
                let Some(v) = self.value(layer, j) else { continue };
                let color = if j == 0 { style::BEFORE } else { style::color(j - 1) };
                let x0 = i as f64 + 0.1 + j as f64 * bar_w;
                let x1 = x0 + bar_w * 0.88;
                if v == 0 && y.scale == Scale::Log {
                    // No length on a log axis: a stub on the axis marks the zero.
                    let (p0, p1) = (chart.backend_coord(&(x0, bottom)), chart.backend_coord(&(x1, bottom)));
                    root.draw(&Rectangle::new([(p0.0, p0.1 - 3), (p1.0, p1.1)], color.filled()))?;
                    continue;
                }
                let top = y.to_chart(v as f64).max(bottom);
                chart.draw_series(std::iter::once(Rectangle::new([(x0, bottom), (x1, top)], color.filled())))?;
            }
        }

        let label_top = ys.end + 10;
        for (i, name) in names.iter().enumerate() {
            let cx = chart.backend_coord(&(i as f64 + 0.5, bottom)).0;
            if rotate {
                let s = tick.transform(FontTransform::Rotate270).pos(Pos::new(HPos::Right, VPos::Center));
                root.draw_text(name, &s, (cx, label_top))?;
            } else {
                root.draw_text(name, &tick.pos(Pos::new(HPos::Center, VPos::Top)), (cx, label_top))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn long_names_keep_their_start_and_end() {
        assert_eq!(shorten("layer1.0.relu"), "layer1.0.relu");
        let s = shorten("features.denseblock4.denselayer16.relu2");
        assert_eq!(s.chars().count(), 22);
        assert!(s.starts_with("feature") && s.ends_with("layer16.relu2") && s.contains(".."), "{s}");
    }
}
