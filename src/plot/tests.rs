//! Charts written end to end, with this machine's fonts and with none: files exist, the PNG
//! decodes to the chart's size with ink where the text is (and none there without a font), the
//! SVG carries its text, text is measured as resvg draws it, and bad input is an error.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::tiny_skia::Pixmap;

use super::text::Fonts;
use super::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// No fonts, and this machine's fonts when it has any.
fn font_sets() -> Vec<(&'static str, Fonts)> {
    let mut v = vec![("nofont", Fonts::none())];
    let (system, _) = Fonts::load(None);
    match system.family() {
        Some(_) => v.push(("font", system)),
        None => eprintln!("note: no font on this machine; only text-less PNGs are tested"),
    }
    v
}
fn series() -> Vec<Series> {
    let p = |relus, accuracy| Point { relus, accuracy };
    vec![
        Series { name: "autorep".into(), points: vec![p(1200, 0.861), p(5000, 0.902), p(25_000, 0.921)] },
        Series { name: "random".into(), points: vec![p(25_000, 0.884), p(1200, 0.612), p(5000, 0.79)] },
    ]
}

fn layers() -> Vec<LayerBar> {
    let names =
        ["relu", "layer1.0.relu1", "layer1.0.relu2", "layer2.0.relu1", "features.denseblock4.denselayer16.relu2"];
    let before = [16384u64, 16384, 16384, 8192, 4096];
    names
        .iter()
        .zip(before)
        .enumerate()
        .map(|(i, (n, b))| LayerBar {
            name: n.to_string(),
            before: b,
            after: vec![
                ("autorep 1200".into(), b / (8 + i as u64 * 9)),
                ("random 1200".into(), if i == 3 { 0 } else { b / 20 }),
            ],
        })
        .collect()
}

struct Decoded {
    width: u32,
    height: u32,
    /// RGBA, one byte each.
    rgba: Vec<u8>,
}

impl Decoded {
    fn is_dark(&self, x: u32, y: u32) -> bool {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        self.rgba[i..i + 3].iter().map(|&c| c as u32).sum::<u32>() < 3 * 110
    }

    /// Pixels darker than mid-grey in columns `cols` and rows `rows`.
    fn dark_in(&self, cols: std::ops::Range<u32>, rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| cols.clone().map(move |x| (x, y))).filter(|&(x, y)| self.is_dark(x, y)).count()
    }

    fn dark_in_rows(&self, rows: std::ops::Range<u32>) -> usize {
        self.dark_in(0..self.width, rows)
    }

    /// First and last column with a dark pixel.
    fn dark_columns(&self) -> Option<(u32, u32)> {
        let cols: Vec<u32> = (0..self.width).filter(|&x| (0..self.height).any(|y| self.is_dark(x, y))).collect();
        Some((*cols.first()?, *cols.last()?))
    }

    /// Pixels within a few levels of `color`.
    fn count_color(&self, color: RGBColor) -> usize {
        let want = [color.0, color.1, color.2];
        self.rgba.chunks(4).filter(|p| p[..3].iter().zip(want).all(|(&a, b)| a.abs_diff(b) <= 6)).count()
    }

    /// Variance of the colour channels.
    fn variance(&self) -> f64 {
        let rgb = || self.rgba.chunks(4).flat_map(|p| &p[..3]).map(|&c| c as f64);
        let n = (self.rgba.len() / 4 * 3) as f64;
        let mean = rgb().sum::<f64>() / n;
        rgb().map(|c| (c - mean).powi(2)).sum::<f64>() / n
    }
}

fn decode_png(path: &Path) -> Decoded {
    decode_png_bytes(&std::fs::read(path).unwrap())
}

fn decode_png_bytes(bytes: &[u8]) -> Decoded {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let (w, h) =
        (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()));
    let pixmap = Pixmap::decode_png(bytes).unwrap();
    assert_eq!((pixmap.width(), pixmap.height()), (w, h));
    let rgba = pixmap.data().to_vec();
    assert!(rgba.chunks(4).all(|p| p[3] == 255), "the PNG is opaque");
    Decoded { width: w, height: h, rgba }
}

/// The text content of the SVG's `<text>` elements.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim().to_string()))
        .collect()
}

/// Checks both files; `text_drawn`: whether the PNG should show text (a font is present).
fn assert_chart_files(files: &[PathBuf], stem: &Path, size: (u32, u32), texts: &[&str], text_drawn: bool) -> Decoded {
    assert_eq!(files, [output::with_suffix(stem, "png"), output::with_suffix(stem, "svg")]);
    let png = decode_png(&files[0]);
    assert_eq!((png.width, png.height), size);
    assert!(png.variance() > 200.0, "{}: nearly blank (variance {})", files[0].display(), png.variance());
    // The title band (top 40 px, no chart lines) has ink only if the title was drawn.
    let title_ink = png.dark_in_rows(8..40);
    if text_drawn {
        assert!(title_ink > 150, "{}: title not drawn ({title_ink} dark pixels)", files[0].display());
    } else {
        assert_eq!(title_ink, 0, "{}: ink in the title band without a font", files[0].display());
    }
    let svg = std::fs::read_to_string(&files[1]).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", files[1].display());
    let svg_text = svg_texts(&svg);
    for t in texts {
        assert!(svg_text.iter().any(|s| s == t), "{}: no <text> {t:?} in {svg_text:?}", files[1].display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(stem.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    png
}

#[test]
fn pareto_chart_writes_png_and_svg_with_and_without_fonts() {
    let dir = temp_dir("pareto");
    for (name, fonts) in font_sets() {
        let stem = dir.join(format!("pareto.{name}"));
        let baseline = Some(Point { relus: 557_056, accuracy: 0.926 });
        let title = "ResNet-20 on CIFAR-10: accuracy vs ReLUs";
        let files = pareto_chart_with(&fonts, title, &series(), baseline, &stem).unwrap();
        let chart = pareto::Pareto { title, series: &series(), baseline };
        let size = output::Chart::size(&chart);
        let texts = [title, "autorep", "random", "Accuracy (%)", "ReLUs (log scale)"];
        let png = assert_chart_files(&files, &stem, size, &texts, fonts.family().is_some());
        // "Accuracy (%)", rotated, left of the tick labels: drawn only with a font.
        let y_desc_ink = png.dark_in(0..40, 150..550);
        assert_eq!(y_desc_ink > 100, fonts.family().is_some(), "{name}: {y_desc_ink} dark pixels at the y label");
        // The axes are one-pixel lines in their own colour, not blurred across two pixels.
        let axis = png.count_color(style::AXIS);
        assert!(axis > 1000, "{name}: {axis} pixels of the axis colour");
        // Writing again replaces both files.
        let again = pareto_chart_with(&fonts, "second", &series(), None, &stem).unwrap();
        assert_eq!(again, files);
        assert!(svg_texts(&std::fs::read_to_string(&files[1]).unwrap()).contains(&"second".to_string()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn layer_chart_writes_png_and_svg_with_and_without_fonts() {
    let dir = temp_dir("layers");
    let layers = layers();
    for (name, fonts) in font_sets() {
        let stem = dir.join(format!("layers.{name}"));
        let title = "ReLUs per layer";
        let files = layer_chart_with(&fonts, title, &layers, &stem).unwrap();
        let labels = vec!["autorep 1200", "random 1200"];
        let size = output::Chart::size(&layers::Layers { title, layers: &layers, labels });
        let texts =
            [title, "before", "autorep 1200", "random 1200", "layer1.0.relu1", "relu", "feature..layer16.relu2"];
        assert_chart_files(&files, &stem, size, &texts, fonts.family().is_some());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_public_functions_draw_with_this_machines_fonts() {
    let dir = temp_dir("public");
    let fonts = Fonts::system();
    eprintln!("fonts: {fonts:?}");
    let files = pareto_chart("public", &series(), None, &dir.join("p")).unwrap();
    assert_chart_files(&files, &dir.join("p"), (1000, 650), &["public", "autorep", "random"], fonts.family().is_some());
    let files = layer_chart("public", &layers(), &dir.join("l")).unwrap();
    assert_eq!(decode_png(&files[0]).width, 900);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn text_is_measured_as_it_is_drawn() {
    for (name, fonts) in font_sets() {
        let tick = style::text(style::TICK_SIZE);
        let short = fonts.size("ReLU", &tick);
        let long = fonts.size("ReLUs per layer", &tick);
        let big = fonts.size("ReLU", &style::text(2.0 * style::TICK_SIZE));
        let bold = fonts.size("ReLUs per layer", &style::bold(style::TICK_SIZE));
        assert!(long.0 > 2 * short.0 && long.1 == short.1, "{name}: {short:?} {long:?}");
        assert!(big.0 > short.0 && big.1 > short.1, "{name}: {short:?} {big:?}");
        assert!(bold.0 > long.0, "{name}: bold {bold:?}, regular {long:?}");
        assert_eq!(fonts.size("", &tick).0, 0, "{name}");
        // The measured width is the width resvg inks, give or take the side bearings.
        let text = "Accuracy vs ReLUs (log scale)";
        let (w, _) = fonts.size(text, &tick);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (600, 60)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            root.draw_text(text, &tick.pos(Pos::new(HPos::Left, VPos::Top)), (20, 10)).unwrap();
        }
        let png = decode_png_bytes(&output::render_png(&svg, &fonts).unwrap());
        match (fonts.family(), png.dark_columns()) {
            (Some(_), Some((x0, x1))) => {
                let ink = (x1 - x0 + 1) as i64;
                assert!(
                    (ink - w as i64).abs() <= 4 && (20..=23).contains(&x0),
                    "{name}: ink {x0}..={x1}, measured {w}"
                );
            }
            (Some(_), None) => panic!("{name}: no text drawn"),
            (None, ink) => assert_eq!(ink, None, "{name}: ink without a font"),
        }
    }
}

#[test]
fn a_single_point_and_a_narrow_range_still_draw() {
    let dir = temp_dir("narrow");
    for (name, fonts) in font_sets() {
        let one = [Series { name: "only".into(), points: vec![Point { relus: 0, accuracy: 1.0 }] }];
        let files = pareto_chart_with(&fonts, "one point", &one, None, &dir.join(format!("one.{name}"))).unwrap();
        // The marker (about 110 px, and its legend swatch) in the first series colour.
        let marker = decode_png(&files[0]).count_color(style::color(0));
        assert!(marker > 100, "{name}: {marker} pixels of the series colour");
        let bars = [LayerBar { name: "a".into(), before: 10, after: vec![] }];
        let files = layer_chart_with(&fonts, "one layer", &bars, &dir.join(format!("bars.{name}"))).unwrap();
        let bar = decode_png(&files[0]).count_color(style::BEFORE);
        assert!(bar > 10_000, "{name}: {bar} pixels of the bar's colour");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_an_error_and_writes_nothing() {
    let dir = temp_dir("bad");
    let fonts = Fonts::none();
    let stem = dir.join("chart");
    let with_accuracy = |a: f64| {
        let mut s = series();
        s[1].points[2].accuracy = a;
        s
    };
    let cases: Vec<(Vec<Series>, Option<Point>, &str)> = vec![
        (vec![], None, "no series"),
        (vec![Series { name: "empty".into(), points: vec![] }], None, "\"empty\" has no points"),
        (with_accuracy(f64::NAN), None, "non-finite accuracy (NaN)"),
        (with_accuracy(f64::INFINITY), None, "non-finite accuracy (inf)"),
        (with_accuracy(92.6), None, "fraction in [0, 1]"),
        (series(), Some(Point { relus: 10, accuracy: f64::NEG_INFINITY }), "unreduced baseline"),
    ];
    for (s, baseline, expect) in cases {
        let err = pareto_chart_with(&fonts, "t", &s, baseline, &stem).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(expect) && msg.contains(&stem.display().to_string()), "{msg}");
    }
    let twice = LayerBar { name: "l".into(), before: 5, after: vec![("x".into(), 1), ("x".into(), 2)] };
    let zero = LayerBar { name: "z".into(), before: 0, after: vec![("x".into(), 0)] };
    for (l, expect) in [(vec![], "no layers"), (vec![twice], "twice"), (vec![zero], "every ReLU count is 0")] {
        let msg = format!("{:#}", layer_chart_with(&fonts, "t", &l, &stem).unwrap_err());
        assert!(msg.contains(expect), "{msg}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "files written for bad input");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_destination_is_an_error_naming_the_path() {
    let dir = temp_dir("unwritable");
    let fonts = Fonts::none();
    // A folder that does not exist, and a "folder" that is a file.
    let file = dir.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    for stem in [dir.join("missing").join("chart"), file.join("chart")] {
        let png = output::with_suffix(&stem, "png");
        let msg = format!("{:#}", pareto_chart_with(&fonts, "t", &series(), None, &stem).unwrap_err());
        assert!(msg.contains(&png.display().to_string()), "{msg}");
        let msg = format!("{:#}", layer_chart_with(&fonts, "t", &layers(), &stem).unwrap_err());
        assert!(msg.contains(&png.display().to_string()), "{msg}");
    }
    assert!(pareto_chart_with(&fonts, "t", &series(), None, Path::new("")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes example charts for a look by eye: `cargo test -p masq --bin masq plot::tests::examples -- --ignored`
/// (into `$MASQ_PLOT_EXAMPLES`, default the system temp folder).
#[test]
#[ignore]
fn examples() {
    let dir = std::env::var_os("MASQ_PLOT_EXAMPLES").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    for (name, fonts) in font_sets() {
        let baseline = Some(Point { relus: 557_056, accuracy: 0.926 });
        let title = "ResNet-20 on CIFAR-10: accuracy vs ReLUs";
        let p =
            pareto_chart_with(&fonts, title, &series(), baseline, &dir.join(format!("masq-pareto-{name}"))).unwrap();
        let l =
            layer_chart_with(&fonts, "ReLUs per layer", &layers(), &dir.join(format!("masq-layers-{name}"))).unwrap();
        eprintln!("{name}: {p:?} {l:?}");
        // Linear x (a narrow range), three series, a point at 100%.
        let pt = |relus, accuracy| Point { relus, accuracy };
        let narrow = [
            Series { name: "autorep".into(), points: vec![pt(1000, 0.95), pt(1500, 0.97), pt(2500, 1.0)] },
            Series { name: "snl".into(), points: vec![pt(1000, 0.93), pt(1500, 0.96), pt(2500, 0.99)] },
            Series { name: "random".into(), points: vec![pt(1000, 0.80), pt(1500, 0.88), pt(2500, 0.97)] },
        ];
        pareto_chart_with(&fonts, "MNIST CNN", &narrow, None, &dir.join(format!("masq-pareto-linear-{name}"))).unwrap();
        // ResNet-20's 19 ReLU sites, three budgets.
        let mut sites = vec!["relu".to_string()];
        for stage in 1..=3 {
            for block in 0..3 {
                for r in 1..=2 {
                    sites.push(format!("layer{stage}.{block}.relu{r}"));
                }
            }
        }
        let bars: Vec<LayerBar> = sites
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let before = 16384 >> (i.saturating_sub(1) / 6);
                let after = ["autorep 25k", "autorep 5k", "snl 5k"]
                    .iter()
                    .enumerate()
                    .map(|(k, l)| (l.to_string(), before / (2 + (i as u64 * 7 + k as u64 * 13) % 40)))
                    .collect();
                LayerBar { name: s.clone(), before, after }
            })
            .collect();
        layer_chart_with(&fonts, "ResNet-20: ReLUs per site", &bars, &dir.join(format!("masq-layers-resnet20-{name}")))
            .unwrap();
    }
}
