//! Legends: rows of swatch + label centred under the title, where they never cover data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{self, Marker};
use super::text::Fonts;

#[derive(Debug, Clone)]
pub(crate) enum Swatch {
    /// A line with a marker in its middle; dashed for references.
    Line { color: RGBColor, marker: Marker, dashed: bool },
    /// A filled box, for bars.
    Bar(RGBColor),
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub label: String,
    pub swatch: Swatch,
}

const SWATCH_W: i32 = 34;
const SWATCH_GAP: i32 = 8;
const ITEM_GAP: i32 = 28;
const ROW_GAP: i32 = 8;
const SIDE_MARGIN: i32 = 20;

/// Draws `items` in centred rows at the top of `area` and returns the part of `area` below them.
pub(crate) fn draw_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[Item],
    fonts: &Fonts,
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    if items.is_empty() {
        return Ok(area.clone());
    }
    let font = style::text(style::LEGEND_SIZE);
    let (w, _) = area.dim_in_pixel();
    let max_w = w as i32 - 2 * SIDE_MARGIN;
    let mut widths = Vec::with_capacity(items.len());
    let mut row_h = 0;
    for item in items {
        let (tw, th) = fonts.size(&item.label, &font);
        widths.push(SWATCH_W + SWATCH_GAP + tw as i32);
        row_h = row_h.max(th as i32);
    }
    row_h = row_h.max(16) + ROW_GAP;
    // Greedy rows: as many items as fit in the width.
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0;
    for (i, &iw) in widths.iter().enumerate() {
        let row = rows.last_mut().expect("rows is never empty");
        let need = if row.is_empty() { iw } else { used + ITEM_GAP + iw };
        if !row.is_empty() && need > max_w {
            rows.push(vec![i]);
            used = iw;
        } else {
            row.push(i);
            used = need;
        }
    }
    for (r, row) in rows.iter().enumerate() {
        let row_w: i32 = row.iter().map(|&i| widths[i]).sum::<i32>() + ITEM_GAP * (row.len() as i32 - 1);
        let mut x = (w as i32 - row_w) / 2;
        let y = r as i32 * row_h + row_h / 2;
        for &i in row {
            draw_swatch(area, &items[i].swatch, x, y)?;
            let label_style = font.pos(Pos::new(HPos::Left, VPos::Center));
            area.draw_text(&items[i].label, &label_style, (x + SWATCH_W + SWATCH_GAP, y))?;
            x += widths[i] + ITEM_GAP;
        }
    }
    let used_h = rows.len() as i32 * row_h + ROW_GAP;
    Ok(area.split_vertically(used_h).1)
}

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    swatch: &Swatch,
    x: i32,
    y: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    match *swatch {
        Swatch::Line { color, marker, dashed } => {
            if dashed {
                style::dashed_hline(area, (x, x + SWATCH_W), y, color)?;
            } else {
                area.draw(&PathElement::new(vec![(x, y), (x + SWATCH_W, y)], color.stroke_width(3)))?;
            }
            marker.draw(area, (x + SWATCH_W / 2, y), 5, color)
        }
        Swatch::Bar(color) => area.draw(&Rectangle::new([(x + 6, y - 8), (x + SWATCH_W - 6, y + 8)], color.filled())),
    }
}
