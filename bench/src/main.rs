//! `anole-bench`: measures the host engine, anole against tract on the same ONNX model and
//! meta-training throughput, and prints them with PyTorch's throughput (measured by the
//! scripts next to this crate) and the firmware's instruction counts as one markdown table.
//! `bench/run.sh` runs everything in order and prints the machine it ran on.

mod firmware;
mod host;
mod meta;
mod table;
mod timing;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use host::Model;
use std::path::{Path, PathBuf};
use std::time::Duration;
use table::{goal, micros, rate, times, Row};

/// Print the benchmark table (markdown) on stdout; progress on stderr.
#[derive(Parser, Debug)]
#[command(name = "anole-bench")]
struct Args {
    /// Sine model folder (init.postcard, init.onnx).
    #[arg(long, default_value = "models/sine")]
    sine: PathBuf,
    /// Omniglot 5-way model folder (init.postcard, init.onnx).
    #[arg(long)]
    omniglot: PathBuf,
    /// How the Omniglot model folder was made, shown in the table.
    #[arg(long, default_value = "")]
    omniglot_label: String,
    /// Omniglot data folder (images_background.zip, images_evaluation.zip).
    #[arg(long)]
    data: PathBuf,
    /// JSON written by bench/pytorch_sine.py (or `{"error": "..."}`).
    #[arg(long)]
    pytorch_sine: Option<PathBuf>,
    /// JSON written by bench/pytorch_omniglot.py (or `{"error": "..."}`).
    #[arg(long)]
    pytorch_omniglot: Option<PathBuf>,
    /// JSON written by bench/pytorch_omniglot.py --threads 1 (optional second comparison).
    #[arg(long)]
    pytorch_omniglot_1thread: Option<PathBuf>,
    /// firmware-examples/target/firmware-report.md.
    #[arg(long)]
    firmware_report: Option<PathBuf>,
    /// Time budget of each host micro-benchmark, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    budget_ms: u64,
    /// Sine meta-iterations per timed run (median of 3 runs).
    #[arg(long, default_value_t = 3000)]
    sine_iters: u64,
    /// Omniglot meta-iterations per timed run (one run).
    #[arg(long, default_value_t = 10)]
    omniglot_iters: u64,
}

/// PyTorch's meta-iterations per second and a short description, or why there is none.
fn pytorch(path: Option<&Path>) -> std::result::Result<(f64, String), String> {
    let path = path.ok_or_else(|| "not run".to_string())?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("no result ({}: {e})", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("unreadable result ({}: {e})", path.display()))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(e.to_string());
    }
    let r = v
        .get("meta_iterations_per_s")
        .and_then(|r| r.as_f64())
        .ok_or_else(|| format!("{}: no meta_iterations_per_s", path.display()))?;
    let torch = v.get("torch").and_then(|t| t.as_str()).unwrap_or("?");
    let threads = v.get("threads").and_then(|t| t.as_u64()).unwrap_or(0);
    Ok((r, format!("PyTorch {torch}, {threads} thread(s)")))
}

/// A meta-training row: anole's rate against PyTorch's.
fn meta_row(
    what: &str,
    anole: &Result<f64>,
    torch: std::result::Result<(f64, String), String>,
    at_least: f64,
) -> Row {
    let mut row = Row {
        what: what.to_string(),
        ..Row::default()
    };
    let a = match anole {
        Ok(a) => {
            row.anole = rate(*a, "it/s");
            Some(*a)
        }
        Err(e) => {
            row.anole = format!("failed: {e:#}");
            None
        }
    };
    let ratio = match torch {
        Ok((t, who)) => {
            row.reference = format!("{} ({who})", rate(t, "it/s"));
            a.map(|a| a / t)
        }
        Err(e) => {
            row.reference = format!("PyTorch: {e}");
            None
        }
    };
    if let Some(r) = ratio {
        row.ratio = times(r);
    }
    row.goal = goal(at_least, ratio);
    row
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let budget = Duration::from_millis(args.budget_ms);
    let sine = Model::load(&args.sine)?;
    let omni = Model::load(&args.omniglot)?;
    let omni_label = if args.omniglot_label.is_empty() {
        args.omniglot.display().to_string()
    } else {
        args.omniglot_label.clone()
    };
    let mut rows = Vec::new();

    eprintln!("host: adaptation steps");
    let step = host::adapt_step(&sine, 10, 0.02, budget).context("sine adaptation step")?;
    rows.push(Row {
        what: "host: sine MLP (1→64→64→1) adaptation step, batch 10, SGD".into(),
        anole: micros(step),
        ..Row::default()
    });
    let step = host::adapt_step(&omni, 10, 1e-3, budget).context("Omniglot adaptation step")?;
    rows.push(Row {
        what: "host: Omniglot CNN adaptation step, batch 10, Adam β1 = 0, all layers".into(),
        anole: micros(step),
        ..Row::default()
    });

    eprintln!("host: forward passes, anole and tract");
    let mut worst = 0.0f32;
    for (name, model, source) in [
        ("sine MLP", &sine, args.sine.display().to_string()),
        ("Omniglot CNN", &omni, omni_label.clone()),
    ] {
        for rows_per_call in [1, 25] {
            let f = host::forward(model, rows_per_call, budget)
                .with_context(|| format!("{name} forward pass, batch {rows_per_call}"))?;
            // Relative to the outputs' size (at least 1), as float32 rounding is: an absolute
            // 1e-3 refused the Proto-MAML model (2.4e-3 apart, the same on every host path).
            if f.max_diff > 1e-3 * f.max_abs.max(1.0) {
                return Err(anyhow!(
                    "{name}: anole and tract disagree by {} at batch {rows_per_call}: not the same model",
                    f.max_diff
                ));
            }
            worst = worst.max(f.max_diff);
            let ratio = f.tract / f.anole;
            rows.push(Row {
                what: format!(
                    "prediction (forward pass), {name}, batch {rows_per_call}: anole vs tract 0.23 on the same ONNX ({source})"
                ),
                anole: micros(f.anole),
                reference: format!("{} (tract)", micros(f.tract)),
                ratio: times(ratio),
                goal: goal(1.0, Some(ratio)),
            });
        }
    }

    eprintln!("meta-training: sine ({} iterations x 3)", args.sine_iters);
    let sine_rate = meta::sine(args.sine_iters, 3);
    rows.push(meta_row(
        "meta-training: sine, Reptile paper recipe (1 task/iteration, 5 inner SGD steps of batch 10), 1 thread",
        &sine_rate,
        pytorch(args.pytorch_sine.as_deref()),
        20.0,
    ));
    eprintln!(
        "meta-training: Omniglot 5-way ({} iterations, loading the data first)",
        args.omniglot_iters
    );
    let omni_rate = meta::omniglot_tasks(&args.data, 5)
        .and_then(|t| meta::omniglot(&t, args.omniglot_iters, 1));
    let omni_what = format!(
        "meta-training: Omniglot 5-way, Reptile paper recipe (meta-batch 5, 10 shots, 5 inner Adam steps of batch 10), {} threads",
        rayon::current_num_threads()
    );
    rows.push(meta_row(
        &omni_what,
        &omni_rate,
        pytorch(args.pytorch_omniglot.as_deref()),
        3.0,
    ));
    if let Some(p) = args.pytorch_omniglot_1thread.as_deref() {
        rows.push(meta_row(
            &format!("{omni_what}; PyTorch on 1 thread"),
            &omni_rate,
            pytorch(Some(p)),
            3.0,
        ));
    }

    let report = args
        .firmware_report
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    for (heading, label) in [
        (
            "Cortex-M4F",
            "Cortex-M4F sine adaptation step (QEMU -icount, guest instructions)",
        ),
        (
            "Cortex-M0+",
            "Cortex-M0+ sine adaptation step (QEMU -icount, guest instructions, soft float)",
        ),
    ] {
        let c = report.as_deref().and_then(|r| firmware::counts(r, heading));
        let (anole, per_mac) = match c {
            Some(c) => (
                format!(
                    "{} instr/step, {} instr/MAC ({} instr/prediction)",
                    c.per_step, c.per_mac, c.per_prediction
                ),
                c.per_mac.replace(',', "").parse::<f64>().ok(),
            ),
            None => (
                "no firmware report: run `bash bench/run.sh --firmware`".to_string(),
                None,
            ),
        };
        let goal = if heading == "Cortex-M4F" {
            match per_mac {
                Some(m) if m <= 2.5 => "≤ 2.5 instr/MAC: met".to_string(),
                Some(_) => "≤ 2.5 instr/MAC: not met".to_string(),
                None => "≤ 2.5 instr/MAC".to_string(),
            }
        } else {
            String::new()
        };
        rows.push(Row {
            what: label.into(),
            anole,
            goal,
            ..Row::default()
        });
    }

    let why = match std::env::var("ANOLE_HOST_SIMD") {
        Ok(cap) => format!("as `ANOLE_HOST_SIMD={cap}` caps it"),
        Err(_) => "the widest this CPU runs; `ANOLE_HOST_SIMD` caps it".to_string(),
    };
    println!(
        "anole's host kernels: {} path ({why}).",
        anole::simd::path().name()
    );
    println!();
    print!("{}", table::markdown(&rows));
    println!();
    println!(
        "anole and tract outputs agree within {worst:.1e} (largest absolute difference over the four forward-pass rows)."
    );
    Ok(())
}
