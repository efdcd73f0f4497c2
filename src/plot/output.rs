//! Rendering a chart to PNG and SVG and writing both files atomically.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::backend::TextBackend;
use super::text::TextEngine;

/// A chart that draws itself on any backend.
pub(crate) trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
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
pub(crate) fn write_chart(chart: &impl Chart, engine: &TextEngine, stem: &Path) -> Result<Vec<PathBuf>> {
    if stem.file_name().is_none() {
        return Err(anyhow!("chart output {:?} has no file name", stem.display().to_string()));
    }
    let png_path = with_suffix(stem, "png");
    let svg_path = with_suffix(stem, "svg");
    let png = render_png(chart, engine).with_context(|| format!("drawing {}", png_path.display()))?;
    let svg = render_svg(chart, engine).with_context(|| format!("drawing {}", svg_path.display()))?;
    write_atomic(&png_path, &png)?;
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

/// The chart as PNG bytes (8-bit RGB).
pub(crate) fn render_png(chart: &impl Chart, engine: &TextEngine) -> Result<Vec<u8>> {
    let (w, h) = chart.size();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = TextBackend::raster(BitMapBackend::with_buffer(&mut rgb, (w, h)), engine).into_drawing_area();
        chart.draw(&root).map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(out)
}

/// The chart as an SVG document, text kept as `<text>`.
pub(crate) fn render_svg(chart: &impl Chart, engine: &TextEngine) -> Result<String> {
    let mut svg = String::new();
    {
        let root = TextBackend::vector(SVGBackend::with_string(&mut svg, chart.size()), engine).into_drawing_area();
        chart.draw(&root).map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so readers see
/// the old file or the whole new one; the temporary is removed on failure.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().with_context(|| format!("writing {}: no file name", path.display()))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}-{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}
