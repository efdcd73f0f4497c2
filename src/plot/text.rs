//! Chart fonts: this machine's fonts loaded by fontdb, and text measured by usvg's own text layout
//! (the layout resvg renders), so label sizes in the chart's layout match the rendered PNG.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use plotters::prelude::*;
use plotters::style::{FontTransform, TextStyle};
use resvg::usvg::{self, Node, fontdb};

/// Environment variable that picks the chart font: a font file (.ttf, .otf, .ttc) or the name of
/// an installed family.
pub(crate) const FONT_ENV: &str = "MASQ_PLOT_FONT";

/// Families used for plotters' `sans-serif`, best first; otherwise the first installed family.
const SANS: &[&str] = &[
    "DejaVu Sans",
    "Liberation Sans",
    "Noto Sans",
    "Arial",
    "Helvetica",
    "FreeSans",
    "Roboto",
    "Open Sans",
    "Ubuntu",
    "Verdana",
];

/// The fonts charts are laid out and rendered with.
pub(crate) struct Fonts {
    db: Arc<fontdb::Database>,
    /// The family behind `sans-serif`; `None` when there is no font at all (PNG text is then left out).
    family: Option<String>,
}

impl std::fmt::Debug for Fonts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.family {
            Some(family) => write!(f, "sans-serif = {family} ({} faces loaded)", self.db.len()),
            None => f.write_str("no font"),
        }
    }
}

impl Fonts {
    /// This machine's fonts, loaded once per process (`$MASQ_PLOT_FONT` first); warns once on
    /// stderr when something is wrong, e.g. when there is no font and PNGs will have no text.
    pub(crate) fn system() -> &'static Fonts {
        static FONTS: OnceLock<Fonts> = OnceLock::new();
        FONTS.get_or_init(|| {
            let choice = std::env::var_os(FONT_ENV).filter(|v| !v.is_empty());
            let (fonts, warnings) = Fonts::load(choice.as_deref().map(Path::new));
            for w in warnings {
                eprintln!("warning: {w}");
            }
            fonts
        })
    }

    /// The system fonts, with `choice` (a font file or a family name) preferred for `sans-serif`;
    /// returns the fonts and the warnings to show.
    pub(crate) fn load(choice: Option<&Path>) -> (Fonts, Vec<String>) {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        Fonts::choose(db, choice)
    }

    /// [`Fonts::load`] with the fonts of `db` standing for the system's.
    fn choose(mut db: fontdb::Database, choice: Option<&Path>) -> (Fonts, Vec<String>) {
        let mut warnings = Vec::new();
        let mut preferred = None;
        if let Some(choice) = choice {
            if choice.is_file() {
                match std::fs::read(choice) {
                    Ok(bytes) => {
                        let ids = db.load_font_source(fontdb::Source::Binary(Arc::new(bytes)));
                        preferred = ids.first().and_then(|&id| db.face(id)).map(|f| f.families[0].0.clone());
                        if preferred.is_none() {
                            warnings.push(format!("{FONT_ENV}={}: not a TrueType/OpenType font", choice.display()));
                        }
                    }
                    Err(e) => warnings.push(format!("{FONT_ENV}={}: cannot read font: {e}", choice.display())),
                }
            } else {
                let name = choice.to_string_lossy();
                preferred = find_family(&db, &name);
                if preferred.is_none() {
                    warnings.push(format!("{FONT_ENV}={name}: neither a font file nor an installed font family"));
                }
            }
        }
        let fonts = Fonts::new(db, preferred);
        if fonts.family.is_none() {
            warnings.push(format!(
                "no font found on this machine; chart PNGs are written without text (the SVGs keep it); \
                 set {FONT_ENV}=/path/to/font.ttf"
            ));
        }
        (fonts, warnings)
    }

    /// No fonts at all: charts still draw, their PNGs without text.
    #[cfg(test)]
    pub(crate) fn none() -> Fonts {
        Fonts::new(fontdb::Database::new(), None)
    }

    fn new(mut db: fontdb::Database, preferred: Option<String>) -> Fonts {
        let family = preferred.or_else(|| SANS.iter().find_map(|f| find_family(&db, f))).or_else(|| {
            let mut names: Vec<&str> = db.faces().flat_map(|f| f.families.first()).map(|f| f.0.as_str()).collect();
            names.sort_by_key(|n| (!n.contains("Sans"), *n));
            names.first().map(|n| n.to_string())
        });
        if let Some(f) = &family {
            db.set_sans_serif_family(f.as_str());
            db.set_serif_family(f.as_str()); // usvg's last resort for a family it cannot match
        }
        Fonts { db: Arc::new(db), family }
    }

    #[cfg(test)]
    pub(crate) fn family(&self) -> Option<&str> {
        self.family.as_deref()
    }

    /// usvg options that resolve fonts from these fonts.
    pub(crate) fn options(&self) -> usvg::Options<'static> {
        let mut opt = usvg::Options { fontdb: self.db.clone(), ..usvg::Options::default() };
        if let Some(f) = &self.family {
            opt.font_family = f.clone();
        }
        opt
    }

    /// Width and height in pixels of `text` drawn in `style` (unrotated): the advance width and
    /// line height that usvg lays out for the same `<text>` element plotters writes, or, with no
    /// font, a typical sans-serif's proportions.
    pub(crate) fn size(&self, text: &str, style: &TextStyle) -> (u32, u32) {
        let style = style.transform(FontTransform::None);
        if self.family.is_some()
            && let Some(size) = self.laid_out(text, &style)
        {
            return size;
        }
        let em = style.font.get_size() / SIZE_PER_EM;
        let per_char = if matches!(style.font.get_style(), FontStyle::Bold) { 0.66 } else { 0.6 };
        ((text.chars().count() as f64 * em * per_char).ceil() as u32, (em * 1.17).ceil() as u32)
    }

    fn laid_out(&self, text: &str, style: &TextStyle) -> Option<(u32, u32)> {
        let mut svg = String::new();
        SVGBackend::with_string(&mut svg, (1, 1)).draw_text(text, style, (0, 0)).ok()?;
        let tree = usvg::Tree::from_str(&svg, &self.options()).ok()?;
        let bbox = find_text(tree.root())?.bounding_box();
        Some((bbox.width().ceil() as u32, bbox.height().ceil() as u32))
    }
}

/// plotters' text size is 1.24 × the em size (its SVG backend writes `font-size = size / 1.24`).
const SIZE_PER_EM: f64 = 1.24;

/// The installed family called `name` (ignoring case), as fontdb spells it.
fn find_family(db: &fontdb::Database, name: &str) -> Option<String> {
    db.faces().flat_map(|f| &f.families).find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(n, _)| n.clone())
}

fn find_text(group: &usvg::Group) -> Option<&usvg::Text> {
    group.children().iter().find_map(|node| match node {
        Node::Text(t) => Some(t.as_ref()),
        Node::Group(g) => find_text(g),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_db() -> fontdb::Database {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        db
    }

    #[test]
    fn no_font_is_a_warning_not_an_error() {
        let (fonts, warnings) = Fonts::choose(fontdb::Database::new(), None);
        assert_eq!(fonts.family(), None);
        assert!(warnings.len() == 1 && warnings[0].contains("without text"), "{warnings:?}");
        assert_eq!(format!("{fonts:?}"), "no font");
        // Still measured, by estimate.
        let (w, h) = fonts.size("ReLUs", &TextStyle::from(("sans-serif", 24.8)));
        assert_eq!((w, h), (60, 24));
    }

    #[test]
    fn the_font_choice_can_be_a_file_or_a_family() {
        let system = system_db();
        let Some((file, family)) = system.faces().find_map(|f| match &f.source {
            fontdb::Source::File(path) if f.index == 0 => Some((path.clone(), f.families[0].0.clone())),
            _ => None,
        }) else {
            eprintln!("note: no font file on this machine; font choice not tested");
            return;
        };
        // A file, loaded even where the system has no fonts.
        let (fonts, warnings) = Fonts::choose(fontdb::Database::new(), Some(&file));
        assert_eq!((fonts.family(), warnings.len()), (Some(family.as_str()), 0), "{}: {warnings:?}", file.display());
        // A family name, in any case.
        let (fonts, warnings) = Fonts::choose(system.clone(), Some(Path::new(&family.to_uppercase())));
        assert_eq!((fonts.family(), warnings.len()), (Some(family.as_str()), 0), "{warnings:?}");
        // Neither: a warning, and the usual choice.
        let (fonts, warnings) = Fonts::choose(system.clone(), Some(Path::new("/no/such/font.ttf")));
        assert!(fonts.family().is_some());
        assert!(warnings.len() == 1 && warnings[0].starts_with(FONT_ENV), "{warnings:?}");
        // A file that is not a font.
        let junk = std::env::temp_dir().join(format!("masq-not-a-font-{}.ttf", std::process::id()));
        std::fs::write(&junk, b"not a font").unwrap();
        let (fonts, warnings) = Fonts::choose(system, Some(&junk));
        std::fs::remove_file(&junk).unwrap();
        assert!(fonts.family().is_some());
        assert!(warnings.len() == 1 && warnings[0].contains("not a TrueType/OpenType font"), "{warnings:?}");
    }

    #[test]
    fn sans_serif_prefers_the_usual_faces() {
        let system = system_db();
        let (fonts, _) = Fonts::choose(system.clone(), None);
        let expected = SANS.iter().find_map(|f| find_family(&system, f));
        if expected.is_some() {
            assert_eq!(fonts.family(), expected.as_deref());
        }
        eprintln!("{fonts:?}");
    }
}
