//! Measuring and rasterising chart text: with a TrueType/OpenType font found on this machine at run
//! time (through ab_glyph), or with the built-in bitmap font when there is none. Nothing here reads
//! the network or needs fontconfig/freetype, and no font data lives in the repository.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font, FontVec, GlyphId, PxScale, ScaleFont, point};

use super::bitmap_font;

/// Environment variable that picks the chart font: a .ttf/.otf path, or `builtin` for the bitmap font.
pub(crate) const FONT_ENV: &str = "MASQ_PLOT_FONT";

/// Regular sans-serif faces worth using, best first, each with the file names of its bold face.
const FACES: &[(&str, &[&str])] = &[
    ("DejaVuSans.ttf", &["DejaVuSans-Bold.ttf"]),
    ("LiberationSans-Regular.ttf", &["LiberationSans-Bold.ttf"]),
    ("NotoSans-Regular.ttf", &["NotoSans-Bold.ttf"]),
    ("FreeSans.ttf", &["FreeSansBold.ttf"]),
    ("Arial.ttf", &["Arial Bold.ttf", "arialbd.ttf"]),
    ("Roboto-Regular.ttf", &["Roboto-Bold.ttf"]),
    ("OpenSans-Regular.ttf", &["OpenSans-Bold.ttf"]),
    ("Ubuntu-R.ttf", &["Ubuntu-B.ttf"]),
    ("Verdana.ttf", &["Verdana Bold.ttf", "verdanab.ttf"]),
];

/// Folders searched for [`FACES`], in order (a `~/` prefix is the home folder).
const FONT_DIRS: &[&str] = &[
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:\\Windows\\Fonts",
];

/// Bounds on the font search, so a huge font tree cannot stall a chart.
const MAX_DEPTH: usize = 5;
const MAX_ENTRIES: usize = 20_000;

/// Horizontal extent and vertical metrics of a line of text, in pixels; `ascent` is above the
/// baseline, `descent` below it (both positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub width: i32,
    pub ascent: i32,
    pub descent: i32,
}

/// Where text comes from: a font file, or the bitmap font.
pub(crate) struct TextEngine {
    face: Face,
}

enum Face {
    Vector { regular: FontVec, bold: Option<FontVec>, path: PathBuf },
    Bitmap,
}

impl std::fmt::Debug for TextEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl TextEngine {
    /// The built-in bitmap font.
    pub(crate) fn bitmap() -> Self {
        TextEngine { face: Face::Bitmap }
    }

    /// A font file (TrueType or OpenType), with `bold` as its bold face where given.
    pub(crate) fn from_file(path: &Path, bold: Option<&Path>) -> Result<Self, String> {
        let regular = load_face(path)?;
        let bold = bold.and_then(|b| load_face(b).ok());
        Ok(TextEngine { face: Face::Vector { regular, bold, path: path.to_path_buf() } })
    }

    /// This machine's font, found once per process: `$MASQ_PLOT_FONT` if set, else the best of
    /// [`FACES`] under the usual font folders, else the bitmap font (with a one-line warning).
    pub(crate) fn system() -> &'static TextEngine {
        static ENGINE: OnceLock<TextEngine> = OnceLock::new();
        ENGINE.get_or_init(|| {
            if let Some(choice) = std::env::var_os(FONT_ENV).filter(|v| !v.is_empty()) {
                if choice == "builtin" {
                    return TextEngine::bitmap();
                }
                let path = PathBuf::from(choice);
                match TextEngine::from_file(&path, None) {
                    Ok(engine) => return engine,
                    Err(e) => eprintln!("warning: {FONT_ENV}={}: {e}; looking for a system font", path.display()),
                }
            }
            for (regular, bold) in find_system_fonts() {
                if let Ok(engine) = TextEngine::from_file(&regular, bold.as_deref()) {
                    return engine;
                }
            }
            eprintln!(
                "warning: no TrueType font found under {}; chart PNGs use masq's built-in bitmap font \
                 (set {FONT_ENV}=/path/to/font.ttf for smoother text)",
                FONT_DIRS[..2].join(", ")
            );
            TextEngine::bitmap()
        })
    }

    pub(crate) fn describe(&self) -> String {
        match &self.face {
            Face::Vector { path, .. } => format!("font {}", path.display()),
            Face::Bitmap => "built-in bitmap font".to_string(),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_bitmap(&self) -> bool {
        matches!(self.face, Face::Bitmap)
    }

    /// Extent of `text` as [`TextEngine::draw`] rasterises it at `em` pixels per em.
    pub(crate) fn raster_extent(&self, text: &str, em: f64, bold: bool) -> Extent {
        match &self.face {
            Face::Vector { regular, bold: bold_face, .. } => {
                let (font, fake_bold) = pick(regular, bold_face.as_ref(), bold);
                let mut e = vector_extent(font, text, em);
                e.width += i32::from(fake_bold);
                e
            }
            Face::Bitmap => {
                let s = bitmap_scale(em);
                let n = text.chars().count() as i32;
                let w = if n == 0 { 0 } else { n * (bitmap_font::WIDTH as i32 + 1) * s - s };
                Extent {
                    width: w + i32::from(bold),
                    ascent: (bitmap_font::ASCENT as i32 + 1) * s,
                    descent: (bitmap_font::ROWS - bitmap_font::ASCENT) as i32 * s,
                }
            }
        }
    }

    /// Extent of `text` for a vector target (SVG), where the viewer picks the sans-serif face: the
    /// font's own metrics, or for the bitmap font a typical sans-serif's proportions.
    pub(crate) fn vector_extent(&self, text: &str, em: f64, bold: bool) -> Extent {
        match &self.face {
            Face::Vector { regular, bold: bold_face, .. } => {
                vector_extent(pick(regular, bold_face.as_ref(), bold).0, text, em)
            }
            Face::Bitmap => Extent {
                width: (text.chars().count() as f64 * em * if bold { 0.66 } else { 0.6 }).ceil() as i32,
                ascent: (em * 0.93).ceil() as i32,
                descent: (em * 0.24).ceil() as i32,
            },
        }
    }

    /// Rasterises `text` at `em` pixels per em, calling `put(x, y, coverage)` for each inked pixel
    /// with `x` from the start of the text and `y` from the baseline (negative above it).
    pub(crate) fn draw<E>(
        &self,
        text: &str,
        em: f64,
        bold: bool,
        mut put: impl FnMut(i32, i32, f32) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.face {
            Face::Vector { regular, bold: bold_face, .. } => {
                let (font, fake_bold) = pick(regular, bold_face.as_ref(), bold);
                let scale = px_scale(font, em);
                let scaled = font.as_scaled(scale);
                let mut pen = 0f32;
                let mut prev: Option<GlyphId> = None;
                let mut pixels = Vec::new();
                for c in text.chars() {
                    let id = font.glyph_id(c);
                    if let Some(p) = prev {
                        pen += scaled.kern(p, id);
                    }
                    prev = Some(id);
                    if let Some(outline) = font.outline_glyph(id.with_scale_and_position(scale, point(pen, 0.0))) {
                        let b = outline.px_bounds();
                        pixels.clear();
                        outline
                            .draw(|x, y, cov| pixels.push((b.min.x as i32 + x as i32, b.min.y as i32 + y as i32, cov)));
                        for &(x, y, cov) in &pixels {
                            put(x, y, cov)?;
                            if fake_bold {
                                put(x + 1, y, cov)?;
                            }
                        }
                    }
                    pen += scaled.h_advance(id);
                }
                Ok(())
            }
            Face::Bitmap => {
                let s = bitmap_scale(em);
                let advance = (bitmap_font::WIDTH as i32 + 1) * s;
                for (i, c) in text.chars().enumerate() {
                    let x0 = i as i32 * advance;
                    for (r, &row) in bitmap_font::glyph(c).iter().enumerate() {
                        let y0 = (r as i32 - bitmap_font::ASCENT as i32) * s;
                        for col in (0..bitmap_font::WIDTH).filter(|&col| bitmap_font::inked(row, col)) {
                            let x = x0 + col as i32 * s;
                            for dy in 0..s {
                                for dx in 0..s + i32::from(bold) {
                                    put(x + dx, y0 + dy, 1.0)?;
                                }
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Integer magnification of the bitmap font whose cap height comes closest to a sans-serif's at
/// `em` pixels per em (caps are about 0.73 em).
fn bitmap_scale(em: f64) -> i32 {
    ((em * 0.73 / bitmap_font::ASCENT as f64).round() as i32).max(1)
}

/// The face for `bold` text, and whether it must be emboldened by hand (no bold face available).
fn pick<'f>(regular: &'f FontVec, bold_face: Option<&'f FontVec>, bold: bool) -> (&'f FontVec, bool) {
    match (bold, bold_face) {
        (true, Some(b)) => (b, false),
        (true, None) => (regular, true),
        (false, _) => (regular, false),
    }
}

/// ab_glyph scales fonts by ascent − descent; convert from pixels per em.
fn px_scale(font: &FontVec, em: f64) -> PxScale {
    let units_per_em = font.units_per_em().unwrap_or(1000.0);
    PxScale::from(em as f32 * font.height_unscaled() / units_per_em)
}

fn vector_extent(font: &FontVec, text: &str, em: f64) -> Extent {
    let scaled = font.as_scaled(px_scale(font, em));
    let mut width = 0f32;
    let mut prev: Option<GlyphId> = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        prev = Some(id);
    }
    Extent {
        width: width.ceil() as i32,
        ascent: scaled.ascent().ceil() as i32,
        descent: (-scaled.descent()).ceil() as i32,
    }
}

fn load_face(path: &Path) -> Result<FontVec, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read font: {e}"))?;
    let font = FontVec::try_from_vec(bytes).map_err(|_| "not a TrueType/OpenType font".to_string())?;
    // A symbol or CJK-only face would draw boxes: insist on digits and Latin letters.
    if "0123456789ReLUsacy%".chars().any(|c| font.glyph_id(c).0 == 0) {
        return Err("font lacks Latin letters or digits".to_string());
    }
    Ok(font)
}

/// Regular faces from [`FACES`] present on this machine, best first, each with its bold sibling.
pub(crate) fn find_system_fonts() -> Vec<(PathBuf, Option<PathBuf>)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut found: Vec<(usize, PathBuf)> = Vec::new();
    let mut budget = MAX_ENTRIES;
    for dir in FONT_DIRS {
        let dir = match (dir.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => h.join(rest),
            (Some(_), None) => continue,
            (None, _) => PathBuf::from(dir),
        };
        walk(&dir, 0, &mut budget, &mut |path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(rank) = FACES.iter().position(|(f, _)| f.eq_ignore_ascii_case(name)) {
                found.push((rank, path.to_path_buf()));
            }
        });
    }
    found.sort_by_key(|(rank, _)| *rank); // stable: folder order breaks ties
    found
        .into_iter()
        .map(|(rank, path)| {
            let bold = FACES[rank].1.iter().map(|b| path.with_file_name(b)).find(|b| b.is_file());
            (path, bold)
        })
        .collect()
}

fn walk(dir: &Path, depth: usize, budget: &mut usize, visit: &mut impl FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        if path.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, budget, visit);
            }
        } else {
            visit(&path);
        }
    }
}
