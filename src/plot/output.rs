//! Drawing a chart as SVG (plotters), rendering that SVG to PNG (resvg), and writing both files
//! atomically.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use resvg::{tiny_skia, usvg};

use super::text::Fonts;

/// A chart that draws itself on any backend, measuring its text with `fonts`.
pub(crate) trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        fonts: &Fonts,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

/// `<stem>.<ext>`, keeping any dots already in the stem.
pub(crate) fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = OsString::from(stem.as_os_str());
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Renders `chart` and writes `<stem>.png` and `<stem>.svg`; returns their paths.
pub(crate) fn write_chart(chart: &impl Chart, fonts: &Fonts, stem: &Path) -> Result<Vec<PathBuf>> {
    if stem.file_name().is_none() {
        return Err(anyhow!("chart output {:?} has no file name", stem.display().to_string()));
    }
    let png_path = with_suffix(stem, "png");
    let svg_path = with_suffix(stem, "svg");
    let svg = render_svg(chart, fonts).with_context(|| format!("drawing {}", svg_path.display()))?;
    let png = render_png(&svg, fonts).with_context(|| format!("drawing {}", png_path.display()))?;
    write_atomic(&png_path, &png)?;
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

/// The chart as an SVG document (plotters' SVG backend), text kept as `<text>`.
pub(crate) fn render_svg(chart: &impl Chart, fonts: &Fonts) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, chart.size()).into_drawing_area();
        chart.draw(&root, fonts).map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// `svg` rendered by resvg, at its own size on white, as PNG bytes (8-bit RGBA); text without a
/// font is left out.
pub(crate) fn render_png(svg: &str, fonts: &Fonts) -> Result<Vec<u8>> {
    // Hairlines (grid, axes, ticks) lie on pixel edges: draw them unblurred, one pixel wide.
    let style_sheet =
        Some(r#"line[stroke-width="1"], polyline[stroke-width="1"] { shape-rendering: crispEdges }"#.into());
    let options = usvg::Options { style_sheet, ..fonts.options() };
    let tree = usvg::Tree::from_str(svg, &options).context("parsing the chart's SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .with_context(|| format!("no {}x{} pixel canvas", size.width(), size.height()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    pixmap.encode_png().context("encoding PNG")
}

/// Write a chart file atomically (masq-ir's temporary file + fsync + rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    masq_ir::atomic::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}
