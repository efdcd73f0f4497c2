//! What the demo leaves behind: the table (stdout and `table.txt`), `summary.json`, and the plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::config::{DemoArgs, DemoData, Preset};
use super::evaluate::Row;
use crate::cli::common::units::{fmt_bytes, fmt_seconds};
use crate::plot::{self, LayerBar, Point, Series};

/// Everything the demo measured (`summary.json`; `--json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub masq_version: &'static str,
    pub dataset: String,
    pub data_source: String,
    pub model: String,
    pub preset: Preset,
    pub quick: bool,
    pub seed: u64,
    pub train_images: usize,
    pub validation_images: usize,
    pub held_out_images: usize,
    /// The unreduced model first, then autorep and random per budget.
    pub rows: Vec<Row>,
    /// Files written besides the artifacts (summary.json and the plots).
    pub files: Vec<PathBuf>,
    /// Wall-clock seconds of the whole run up to the summary.
    pub seconds: f64,
}

impl Summary {
    pub fn new(a: &DemoArgs, preset: &Preset, data: &DemoData, rows: Vec<Row>, seconds: f64) -> Self {
        Summary {
            masq_version: env!("CARGO_PKG_VERSION"),
            dataset: data.kind.name().to_string(),
            data_source: data.splits.source.clone(),
            model: a.from.as_ref().unwrap_or(&a.model).to_string(),
            preset: preset.clone(),
            quick: a.quick,
            seed: a.seed,
            train_images: data.splits.train.len(),
            validation_images: data.splits.test.len(),
            held_out_images: data.held_out.len(),
            rows,
            files: Vec::new(),
            seconds,
        }
    }
}

fn pct(f: f64) -> String {
    format!("{:.1}%", 100.0 * f)
}

/// The table: one line per model.
pub fn table(s: &Summary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n{} on {}, {} held-out images. Per inference: online bytes (both directions) and rounds under masq;\nLAN/WAN latency = measured compute + network model; CrypTen = the same model under its published costs (communication only).",
        s.model, s.data_source, s.held_out_images
    );
    let head = [
        "method",
        "budget",
        "ReLUs",
        "plain acc",
        "2PC acc",
        "agree",
        "online",
        "rounds",
        "LAN",
        "WAN",
        "CrypTen online",
        "rounds",
        "WAN",
    ];
    let mut lines: Vec<Vec<String>> = vec![head.iter().map(|h| h.to_string()).collect()];
    for r in &s.rows {
        lines.push(vec![
            r.method.clone(),
            r.budget.map_or("-".to_string(), masq_ir::report::thousands),
            masq_ir::report::thousands(r.relu_count),
            pct(r.plain_accuracy),
            pct(r.secure_accuracy),
            pct(r.agreement),
            fmt_bytes(r.online_bytes),
            r.rounds.to_string(),
            fmt_seconds(r.lan_seconds),
            fmt_seconds(r.wan_seconds),
            fmt_bytes(r.crypten_online_bytes as u64),
            r.crypten_rounds.to_string(),
            fmt_seconds(r.crypten_wan_seconds),
        ]);
    }
    let widths: Vec<usize> =
        (0..head.len()).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(c, v)| if c == 0 { format!("{v:<w$}", w = widths[c]) } else { format!("{v:>w$}", w = widths[c]) })
            .collect();
        let _ = writeln!(t, "{}", cells.join("  "));
        if i == 0 {
            let _ = writeln!(t, "{}", "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
        }
    }
    t
}

/// Write `summary.json`, `table.txt`, `pareto.{png,svg}` and `layers.{png,svg}` into `out`; returns
/// their paths.
pub fn write(s: &Summary, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let model = s.model.trim_start_matches("zoo:");
    // Accuracy versus ReLUs.
    let series: Vec<Series> = ["autorep", "random"]
        .iter()
        .map(|m| Series {
            name: m.to_string(),
            points: s
                .rows
                .iter()
                .filter(|r| r.method == *m)
                .map(|r| Point { relus: r.relu_count, accuracy: r.secure_accuracy })
                .collect(),
        })
        .filter(|x| !x.points.is_empty())
        .collect();
    let baseline = s
        .rows
        .iter()
        .find(|r| r.method == "baseline")
        .map(|r| Point { relus: r.relu_count, accuracy: r.secure_accuracy });
    let title = format!("{model} on {}: 2PC accuracy vs ReLUs ({} held-out images)", s.dataset, s.held_out_images);
    files.extend(plot::pareto_chart(&title, &series, baseline, &out.join("pareto")).context("drawing pareto")?);
    // ReLUs per layer before and after (autorep at each budget).
    if let Some(base) = s.rows.iter().find(|r| r.method == "baseline") {
        let reduced: Vec<&Row> = s.rows.iter().filter(|r| r.method == "autorep").collect();
        let layers: Vec<LayerBar> = base
            .layers
            .iter()
            .enumerate()
            .map(|(i, (name, before))| LayerBar {
                name: name.clone(),
                before: *before,
                after: reduced
                    .iter()
                    .map(|r| {
                        (format!("autorep {}", r.budget.unwrap_or(r.relu_count)), r.layers.get(i).map_or(0, |l| l.1))
                    })
                    .collect(),
            })
            .collect();
        let title = format!("{model}: ReLUs per layer before and after AutoReP");
        files.extend(plot::layer_chart(&title, &layers, &out.join("layers")).context("drawing layers")?);
    }
    let table_path = out.join("table.txt");
    masq_ir::atomic::write_atomic(&table_path, table(s).as_bytes())
        .with_context(|| format!("writing {}", table_path.display()))?;
    files.insert(0, table_path);
    let path = out.join("summary.json");
    files.insert(0, path.clone());
    let mut with_files = s.clone();
    with_files.files = files.clone();
    let json = serde_json::to_vec_pretty(&with_files).context("serialising the summary")?;
    masq_ir::atomic::write_atomic(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    Ok(files)
}
