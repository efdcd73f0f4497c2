//! Charts written end to end with both text engines: files exist, the PNG decodes to the chart's
//! size with ink where the text is, the SVG carries its text, and bad input is an error.

use std::path::{Path, PathBuf};

use super::text::{self, TextEngine};
use super::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("masq-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The bitmap font, and the first usable system font when this machine has one.
fn engines() -> Vec<(&'static str, TextEngine)> {
    let mut v = vec![("bitmap", TextEngine::bitmap())];
    match text::find_system_fonts().into_iter().find_map(|(r, b)| TextEngine::from_file(&r, b.as_deref()).ok()) {
        Some(e) => v.push(("ttf", e)),
        None => eprintln!("note: no system font here; only the bitmap font is tested"),
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
    rgb: Vec<u8>,
}

impl Decoded {
    /// Pixels in rows `rows` darker than mid-grey.
    fn dark_in_rows(&self, rows: std::ops::Range<u32>) -> usize {
        let w = self.width as usize;
        rows.flat_map(|y| (0..w).map(move |x| (y as usize * w + x) * 3))
            .filter(|&i| self.rgb[i..i + 3].iter().map(|&c| c as u32).sum::<u32>() < 3 * 110)
            .count()
    }

    fn variance(&self) -> f64 {
        let n = self.rgb.len() as f64;
        let mean = self.rgb.iter().map(|&c| c as f64).sum::<f64>() / n;
        self.rgb.iter().map(|&c| (c as f64 - mean).powi(2)).sum::<f64>() / n
    }
}

fn decode_png(path: &Path) -> Decoded {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}: PNG signature", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let (w, h) =
        (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()));
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height, info.color_type), (w, h, png::ColorType::Rgb));
    rgb.truncate(info.buffer_size());
    Decoded { width: w, height: h, rgb }
}

/// The text content of the SVG's `<text>` elements.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim().to_string()))
        .collect()
}

fn assert_chart_files(files: &[PathBuf], stem: &Path, size: (u32, u32), texts: &[&str]) {
    assert_eq!(files, [output::with_suffix(stem, "png"), output::with_suffix(stem, "svg")]);
    let png = decode_png(&files[0]);
    assert_eq!((png.width, png.height), size);
    assert!(png.variance() > 200.0, "{}: nearly blank (variance {})", files[0].display(), png.variance());
    // The title band (top 40 px, no chart lines) has ink only if the title was drawn.
    let title_ink = png.dark_in_rows(8..40);
    assert!(title_ink > 150, "{}: title not drawn ({title_ink} dark pixels)", files[0].display());
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
}

#[test]
fn pareto_chart_writes_png_and_svg_with_every_text_engine() {
    let dir = temp_dir("pareto");
    for (name, engine) in engines() {
        let stem = dir.join(format!("pareto.{name}"));
        let baseline = Some(Point { relus: 557_056, accuracy: 0.926 });
        let title = "ResNet-20 on CIFAR-10: accuracy vs ReLUs";
        let files = pareto_chart_with(&engine, title, &series(), baseline, &stem).unwrap();
        let chart = pareto::Pareto { title, series: &series(), baseline };
        let size = output::Chart::size(&chart);
        assert_chart_files(&files, &stem, size, &[title, "autorep", "random", "Accuracy (%)", "ReLUs (log scale)"]);
        // Writing again replaces both files.
        let again = pareto_chart_with(&engine, "second", &series(), None, &stem).unwrap();
        assert_eq!(again, files);
        assert!(svg_texts(&std::fs::read_to_string(&files[1]).unwrap()).contains(&"second".to_string()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn layer_chart_writes_png_and_svg_with_every_text_engine() {
    let dir = temp_dir("layers");
    let layers = layers();
    for (name, engine) in engines() {
        let stem = dir.join(format!("layers.{name}"));
        let title = "ReLUs per layer";
        let files = layer_chart_with(&engine, title, &layers, &stem).unwrap();
        let labels = vec!["autorep 1200", "random 1200"];
        let size = output::Chart::size(&layers::Layers { title, layers: &layers, labels });
        let texts =
            [title, "before", "autorep 1200", "random 1200", "layer1.0.relu1", "relu", "feature..layer16.relu2"];
        assert_chart_files(&files, &stem, size, &texts);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_public_functions_draw_with_this_machines_font() {
    let dir = temp_dir("public");
    eprintln!("text: {:?}", TextEngine::system());
    let files = pareto_chart("public", &series(), None, &dir.join("p")).unwrap();
    assert_chart_files(&files, &dir.join("p"), (1000, 650), &["public", "autorep", "random"]);
    let files = layer_chart("public", &layers(), &dir.join("l")).unwrap();
    assert_eq!(decode_png(&files[0]).width, 900);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_single_point_and_a_narrow_range_still_draw() {
    let dir = temp_dir("narrow");
    let engine = TextEngine::bitmap();
    let one = [Series { name: "only".into(), points: vec![Point { relus: 0, accuracy: 1.0 }] }];
    let files = pareto_chart_with(&engine, "one point", &one, None, &dir.join("one")).unwrap();
    assert!(decode_png(&files[0]).variance() > 200.0);
    let bars = [LayerBar { name: "a".into(), before: 10, after: vec![] }];
    let files = layer_chart_with(&engine, "one layer", &bars, &dir.join("bars")).unwrap();
    assert!(decode_png(&files[0]).variance() > 200.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_an_error_and_writes_nothing() {
    let dir = temp_dir("bad");
    let engine = TextEngine::bitmap();
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
        let err = pareto_chart_with(&engine, "t", &s, baseline, &stem).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(expect) && msg.contains(&stem.display().to_string()), "{msg}");
    }
    let twice = LayerBar { name: "l".into(), before: 5, after: vec![("x".into(), 1), ("x".into(), 2)] };
    let zero = LayerBar { name: "z".into(), before: 0, after: vec![("x".into(), 0)] };
    for (l, expect) in [(vec![], "no layers"), (vec![twice], "twice"), (vec![zero], "every ReLU count is 0")] {
        let msg = format!("{:#}", layer_chart_with(&engine, "t", &l, &stem).unwrap_err());
        assert!(msg.contains(expect), "{msg}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "files written for bad input");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_destination_is_an_error_naming_the_path() {
    let dir = temp_dir("unwritable");
    let engine = TextEngine::bitmap();
    // A folder that does not exist, and a "folder" that is a file.
    let file = dir.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    for stem in [dir.join("missing").join("chart"), file.join("chart")] {
        let png = output::with_suffix(&stem, "png");
        let msg = format!("{:#}", pareto_chart_with(&engine, "t", &series(), None, &stem).unwrap_err());
        assert!(msg.contains(&png.display().to_string()), "{msg}");
        let msg = format!("{:#}", layer_chart_with(&engine, "t", &layers(), &stem).unwrap_err());
        assert!(msg.contains(&png.display().to_string()), "{msg}");
    }
    assert!(pareto_chart_with(&engine, "t", &series(), None, Path::new("")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn text_extents_grow_with_the_text_and_the_size() {
    for (name, engine) in engines() {
        let short = engine.raster_extent("ReLU", 15.0, false);
        let long = engine.raster_extent("ReLUs per layer", 15.0, false);
        let big = engine.raster_extent("ReLU", 30.0, false);
        assert!(long.width > 2 * short.width, "{name}: {short:?} {long:?}");
        assert!(big.width > short.width && big.ascent > short.ascent, "{name}: {short:?} {big:?}");
        let mut ink = 0;
        engine
            .draw("Ag", 15.0, false, |_, y, c| {
                assert!(y >= -short.ascent - 1 && y <= short.descent + 1, "{name}: pixel row {y} outside the line");
                ink += usize::from(c > 0.5);
                Ok::<(), ()>(())
            })
            .unwrap();
        assert!(ink > 20, "{name}: {ink} inked pixels");
        assert_eq!(engine.is_bitmap(), name == "bitmap");
    }
}

/// Writes example charts for a look by eye: `cargo test -p masq --bin masq plot::tests::examples -- --ignored`
/// (into `$MASQ_PLOT_EXAMPLES`, default the system temp folder).
#[test]
#[ignore]
fn examples() {
    let dir = std::env::var_os("MASQ_PLOT_EXAMPLES").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    for (name, engine) in engines() {
        let baseline = Some(Point { relus: 557_056, accuracy: 0.926 });
        let title = "ResNet-20 on CIFAR-10: accuracy vs ReLUs";
        let p =
            pareto_chart_with(&engine, title, &series(), baseline, &dir.join(format!("masq-pareto-{name}"))).unwrap();
        let l =
            layer_chart_with(&engine, "ReLUs per layer", &layers(), &dir.join(format!("masq-layers-{name}"))).unwrap();
        eprintln!("{name}: {p:?} {l:?}");
        // Linear x (a narrow range), three series, a point at 100%.
        let pt = |relus, accuracy| Point { relus, accuracy };
        let narrow = [
            Series { name: "autorep".into(), points: vec![pt(1000, 0.95), pt(1500, 0.97), pt(2500, 1.0)] },
            Series { name: "snl".into(), points: vec![pt(1000, 0.93), pt(1500, 0.96), pt(2500, 0.99)] },
            Series { name: "random".into(), points: vec![pt(1000, 0.80), pt(1500, 0.88), pt(2500, 0.97)] },
        ];
        pareto_chart_with(&engine, "MNIST CNN", &narrow, None, &dir.join(format!("masq-pareto-linear-{name}")))
            .unwrap();
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
        layer_chart_with(
            &engine,
            "ResNet-20: ReLUs per site",
            &bars,
            &dir.join(format!("masq-layers-resnet20-{name}")),
        )
        .unwrap();
    }
}
