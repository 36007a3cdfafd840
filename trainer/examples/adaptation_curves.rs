//! Compares models on held-out CSV tasks: each adapts on K support rows of every held-out task
//! (through the engine, with its stored settings) and is scored on the rest of the task after
//! every step count from 0 to N; prints a Markdown table (0, 1, 8 and N steps) and draws the
//! loss against the steps, one line per model (the plot of `docs/own-tasks.md`).
//!
//! ```text
//! cargo run --release -p anole-trainer --example adaptation_curves -- \
//!     --data out/damped/eval --shots 10 --steps 32 --out docs/img/own-tasks.png \
//!     Reptile=out/damped/reptile/init.postcard "joint training"=out/damped/joint/init.postcard
//! ```

use anole_trainer::eval::{self, EvalConfig};
use anole_trainer::model;
use anole_trainer::plots;
use anole_trainer::progress;
use anole_trainer::tasks::csv::CsvTasks;
use anyhow::{anyhow, Context, Result};
use clap::Parser;
use std::path::PathBuf;

/// Held-out loss of models against adaptation steps, on CSV tasks.
#[derive(Parser, Debug)]
struct Args {
    /// Held-out tasks: a folder of CSV files (or one with a `task` column), as `anole train csv`
    /// reads them.
    #[arg(long)]
    data: PathBuf,
    /// Support rows of each episode (the rest of the task is its query set).
    #[arg(long, default_value_t = 10)]
    shots: usize,
    /// Largest number of adaptation steps.
    #[arg(long, default_value_t = 32)]
    steps: u32,
    /// Episodes (each a random held-out task and support set).
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Seed of the episodes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The plot to write (PNG).
    #[arg(long)]
    out: PathBuf,
    /// Plot title.
    #[arg(long, default_value = "held-out tasks")]
    title: String,
    /// Models, as NAME=BLOB.
    #[arg(required = true)]
    models: Vec<String>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(a: Args) -> Result<()> {
    let mut curves = Vec::new();
    let mut loss_name = String::new();
    let marks = eval::checkpoints(a.steps);
    println!(
        "| model | {} |",
        marks
            .iter()
            .map(|&k| format!("{k} step{}", if k == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(marks.len()));
    for m in &a.models {
        let (name, path) = m
            .split_once('=')
            .ok_or_else(|| anyhow!("{m}: expected NAME=BLOB"))?;
        let blob = model::read_blob(path.as_ref())?;
        let tasks = CsvTasks::held_out_for(&a.data, blob.blob())?;
        let cfg = EvalConfig {
            tasks: a.tasks,
            shots: a.shots,
            queries: tasks.max_queries(a.shots),
            checkpoints: (0..=a.steps).collect(),
            seed: a.seed,
            lr: None,
            batch: None,
        };
        let bar = progress::bar(cfg.tasks as u64, name);
        let report = eval::evaluate(&blob, &tasks, &cfg, &bar).with_context(|| path.to_string())?;
        bar.finish_and_clear();
        let row: Vec<String> = marks
            .iter()
            .filter_map(|&k| report.at(k))
            .map(|c| format!("{:.3} ± {:.3}", c.loss.mean, c.loss.ci95))
            .collect();
        println!("| {name} | {} |", row.join(" | "));
        loss_name = report.loss.clone();
        curves.push((
            name.to_string(),
            report
                .results
                .iter()
                .map(|c| (c.steps, c.loss.mean, c.loss.ci95))
                .collect(),
        ));
    }
    let y = format!("held-out query {loss_name} (mean, 95% CI)");
    let title = format!("{}: {}-shot adaptation", a.title, a.shots);
    plots::loss_vs_steps(&a.out, &title, &y, &curves)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
