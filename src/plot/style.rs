//! Colours, markers and text sizes shared by the charts.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontFamily, FontStyle, RGBColor, TextStyle};

use super::text::Fonts;

/// Series colours (Tableau 10 without its grey), distinct on screen and in print.
const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// The unreduced model and other references.
pub(crate) const REFERENCE: RGBColor = RGBColor(64, 64, 64);
/// "Before" bars.
pub(crate) const BEFORE: RGBColor = RGBColor(170, 170, 170);
pub(crate) const GRID: RGBColor = RGBColor(225, 225, 225);
pub(crate) const AXIS: RGBColor = RGBColor(90, 90, 90);

/// Text sizes in plotters units (1.24 × pixels per em).
pub(crate) const TITLE_SIZE: f64 = 30.0;
pub(crate) const DESC_SIZE: f64 = 21.0;
pub(crate) const TICK_SIZE: f64 = 18.0;
pub(crate) const LEGEND_SIZE: f64 = 19.0;

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) fn text(size: f64) -> TextStyle<'static> {
    TextStyle::from((FontFamily::SansSerif, size)).color(&BLACK)
}

pub(crate) fn bold(size: f64) -> TextStyle<'static> {
    TextStyle::from((FontFamily::SansSerif, size, FontStyle::Bold)).color(&BLACK)
}

/// Marker shapes; series cycle through them so lines differ by shape as well as colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    InvertedTriangle,
}

impl Marker {
    pub(crate) fn nth(i: usize) -> Marker {
        [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond, Marker::InvertedTriangle][i % 5]
    }

    /// Draws the marker centred on pixel `(x, y)` of `area`, about `2r` pixels across.
    pub(crate) fn draw<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        (x, y): (i32, i32),
        r: i32,
        color: RGBColor,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let fill = color.filled();
        match self {
            Marker::Circle => area.draw(&Circle::new((x, y), r, fill)),
            Marker::Square => {
                let h = r * 7 / 8;
                area.draw(&Rectangle::new([(x - h, y - h), (x + h, y + h)], fill))
            }
            Marker::Triangle => area.draw(&Polygon::new(
                vec![(x, y - r - 1), (x + r + 1, y + r * 3 / 4), (x - r - 1, y + r * 3 / 4)],
                fill,
            )),
            Marker::InvertedTriangle => area.draw(&Polygon::new(
                vec![(x, y + r + 1), (x + r + 1, y - r * 3 / 4), (x - r - 1, y - r * 3 / 4)],
                fill,
            )),
            Marker::Diamond => {
                area.draw(&Polygon::new(vec![(x, y - r - 2), (x + r + 1, y), (x, y + r + 2), (x - r - 1, y)], fill))
            }
        }
    }
}

/// A horizontal dashed line on `area` from `x0` to `x1` at `y`.
pub(crate) fn dashed_hline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, x1): (i32, i32),
    y: i32,
    color: RGBColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const DASH: i32 = 9;
    const GAP: i32 = 6;
    let style = color.stroke_width(2);
    let mut x = x0;
    while x < x1 {
        area.draw(&PathElement::new(vec![(x, y), ((x + DASH).min(x1), y)], style))?;
        x += DASH + GAP;
    }
    Ok(())
}

/// Draws `title` centred at the top of `area` and returns the part of `area` below it.
pub(crate) fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    fonts: &Fonts,
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    const TOP: i32 = 14;
    const BELOW: i32 = 10;
    if title.is_empty() {
        return Ok(area.split_vertically(TOP).1);
    }
    let font = bold(TITLE_SIZE).pos(Pos::new(HPos::Center, VPos::Top));
    let (w, _) = area.dim_in_pixel();
    let (_, h) = fonts.size(title, &font);
    area.draw_text(title, &font, (w as i32 / 2, TOP))?;
    Ok(area.split_vertically(TOP + h as i32 + BELOW).1)
}
