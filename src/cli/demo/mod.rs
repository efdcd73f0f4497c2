//! `masq demo`: the whole path in one command. Train a small CNN (or take a given model), cut its
//! ReLUs to several budgets with AutoReP and with random masks, export every model as an artifact,
//! evaluate each in the clear and under 2PC on held-out images, and write a table, a JSON summary and
//! plots (accuracy versus ReLUs, per-layer ReLUs) into one directory.

mod config;
mod evaluate;
mod output;
mod phases;

use std::time::Instant;

use anyhow::{Context, Result, bail};

pub use config::DemoArgs;
use config::{DEFAULT_FRACTIONS, Preset};

use crate::cli::common::{json, progress, training};

pub fn run(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let preset = Preset::new(&a);
    if preset.secure_images == 0 {
        bail!("--secure-images must be at least 1");
    }
    let device = a.device;
    if a.budgets.contains(&0) {
        bail!("budget 0: a budget is a number of ReLUs to keep, at least 1");
    }
    training::set_threads(a.threads);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let say = |msg: &str| {
        if !a.json {
            eprintln!("{msg}");
        }
    };
    let data = config::load_data(&a, &preset)?;
    say(&format!(
        "masq demo: {} ({} training, {} validation, {} held-out images), output in {}",
        data.splits.source,
        data.splits.train.len(),
        data.splits.test.len(),
        data.held_out.len(),
        a.out.display()
    ));
    let ctx = phases::Ctx { args: &a, preset: &preset, data: &data, device, quiet: a.json };

    say("[1/4] baseline");
    let base = phases::baseline(&ctx)?;
    let total = base.relu_count;
    let budgets = if a.budgets.is_empty() {
        DEFAULT_FRACTIONS.iter().map(|f| ((total as f64 * f).round() as u64).max(1)).collect()
    } else {
        a.budgets.clone()
    };
    if let Some(b) = budgets.iter().find(|&&b| b == 0 || b > total) {
        bail!("budget {b} is outside 1..={total} (the model's ReLUs)");
    }

    say(&format!("[2/4] reducing {total} ReLUs to {budgets:?} with autorep and random"));
    let mut reduced = Vec::new();
    for &b in &budgets {
        for (name, method) in phases::METHODS {
            reduced.push(phases::reduce(&ctx, &base, name, method, b)?);
        }
    }

    say("[3/4] exporting and evaluating in the clear and under 2PC");
    let mut rows = Vec::new();
    let models: Vec<&phases::Trained> = std::iter::once(&base).chain(reduced.iter()).collect();
    let pb = progress::bar(models.len() as u64, "evaluating", a.json);
    for m in models {
        pb.set_message(format!("evaluating {}", m.name));
        let dir = phases::export(&ctx, m)?;
        rows.push(evaluate::evaluate(m, &dir, &data, preset.secure_images)?);
        pb.inc(1);
    }
    pb.finish_and_clear();

    say("[4/4] writing the summary and plots");
    let summary = output::Summary::new(&a, &preset, &data, rows, t0.elapsed().as_secs_f64());
    let files = output::write(&summary, &a.out)?;
    if a.json {
        json::print(&summary)?;
    } else {
        print!("{}", output::table(&summary));
        println!("wrote {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
        println!("total time {:.0} s", t0.elapsed().as_secs_f64());
    }
    Ok(())
}
