//! `anole inspect`: what a blob holds and what it costs on a device: architecture, parameters,
//! dtypes, flash bytes, and the arena (f32) needed to adapt or predict, in the host layout and
//! in the device layout (`anole::Mode::Device`: SGD fused into the backward pass, frozen layers
//! read from flash).

use crate::export::onnx::{loss_name, optimizer_name};
use crate::model;
use anole::{Blob, Mode, Plan, Shape};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `anole inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to inspect.
    pub model: PathBuf,
    /// Also size the arena for adapting at this batch (besides the blob's own batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn shape_str(s: Shape) -> String {
    match s {
        Shape::Flat(n) => format!("[{n}]"),
        Shape::Chw(c, h, w) => format!("[{c}, {h}, {w}]"),
    }
}

/// One arena size: what it is for, the batch, and the f32 it needs.
struct Arena {
    what: &'static str,
    batch: usize,
    plan: Plan,
}

fn mask_str(mask: u32, blob: &Blob<'_>) -> String {
    let layers: Vec<String> = (0..blob.layers.len())
        .filter(|i| mask & (1 << i) != 0 && blob.layers[*i].tensor_count() > 0)
        .map(|i| i.to_string())
        .collect();
    if layers.is_empty() {
        "none".into()
    } else {
        layers.join(",")
    }
}

/// Run `anole inspect`.
pub fn run(a: Args) -> Result<()> {
    let shared = model::read_model(&a.model)?;
    let (blob, bytes) = (shared.blob(), shared.bytes());
    let s = blob.settings();
    let p = blob.provenance();
    let name = || a.model.display().to_string();
    let mut arenas = vec![Arena {
        what: "adapt",
        batch: s.batch as usize,
        plan: Plan::new(blob, s.batch as usize, s.trainable).with_context(name)?,
    }];
    if let Some(b) = a.batch {
        arenas.push(Arena {
            what: "adapt",
            batch: b,
            plan: Plan::new(blob, b, s.trainable).with_context(|| format!("--batch {b}"))?,
        });
    }
    arenas.push(Arena {
        what: "predict",
        batch: 1,
        plan: Plan::new(blob, 1, 0).with_context(name)?,
    });
    arenas.push(Arena {
        what: "adapt on a device (Mode::Device)",
        batch: s.batch as usize,
        plan: Plan::with_mode(blob, s.batch as usize, s.trainable, Mode::Device)
            .with_context(name)?,
    });
    arenas.push(Arena {
        what: "predict on a device (Mode::Device)",
        batch: 1,
        plan: Plan::with_mode(blob, 1, 0, Mode::Device).with_context(name)?,
    });

    let mut dtypes: Vec<&str> = blob.dtypes.iter().map(|d| d.name()).collect();
    dtypes.dedup();
    let mut rows = Vec::new();
    let mut t = 0;
    for (i, l) in blob.layers.iter().enumerate() {
        let (input, output) = (blob.shapes[i], blob.shapes[i + 1]);
        let n = l.tensor_count();
        let dtype = if n == 0 {
            "-".to_string()
        } else {
            blob.dtypes[t].name().to_string()
        };
        t += n;
        let adapts = n > 0 && s.trainable & (1 << i) != 0;
        rows.push((
            i,
            l.name(),
            input,
            output,
            l.param_len(input),
            dtype,
            adapts,
            l.macs(input),
        ));
    }
    let total = blob.param_count();
    let trained: usize = blob
        .layers
        .iter()
        .enumerate()
        .filter(|(i, l)| s.trainable & (1 << i) != 0 && l.tensor_count() > 0)
        .map(|(i, l)| l.trained_len(blob.shapes[i]))
        .sum();
    let macs: usize = rows.iter().map(|r| r.7).sum();

    if a.json {
        let v = json!({
            "file": a.model.display().to_string(),
            "flash_bytes": bytes.len(),
            "input": shape_str(blob.input_shape()),
            "output": shape_str(blob.output_shape()),
            "layers": rows.iter().map(|r| json!({
                "index": r.0, "layer": r.1, "input": shape_str(r.2), "output": shape_str(r.3),
                "params": r.4, "dtype": r.5, "adapts": r.6, "macs": r.7,
            })).collect::<Vec<_>>(),
            "params": total,
            "trained_params": trained,
            "macs_per_sample": macs,
            "dtypes": dtypes,
            "settings": {
                "loss": loss_name(blob.loss), "optimizer": optimizer_name(blob.optimizer),
                "lr": s.lr, "steps": s.steps, "batch": s.batch, "trainable_layers": mask_str(s.trainable, blob),
                "lr_scale": s.lr_scale.to_vec(),
            },
            "provenance": {
                "algorithm": p.algorithm, "task": p.task, "seed": p.seed, "meta_iterations": p.meta_iterations,
            },
            "arena": arenas.iter().map(|r| json!({
                "for": r.what, "mode": format!("{:?}", r.plan.mode).to_lowercase(), "batch": r.batch, "f32": r.plan.arena_len(), "bytes": 4 * r.plan.arena_len(),
                "params": r.plan.params_len, "grads": r.plan.grads_len, "optimizer": r.plan.opt_len,
                "activations": r.plan.acts_len, "targets": r.plan.targets_len,
                "scratch": r.plan.gscratch_len + r.plan.norm_len,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }

    println!(
        "{}: anole blob, format version {}",
        a.model.display(),
        blob.wire.version
    );
    println!(
        "provenance: task {}, algorithm {}, seed {}, {} meta-iterations",
        p.task, p.algorithm, p.seed, p.meta_iterations
    );
    println!();
    println!(
        "{:>3}  {:<10} {:<15} {:<15} {:>9}  {:<5} {:<6} {:>11}",
        "#", "layer", "input", "output", "params", "dtype", "adapts", "MACs"
    );
    for r in &rows {
        println!(
            "{:>3}  {:<10} {:<15} {:<15} {:>9}  {:<5} {:<6} {:>11}",
            r.0,
            r.1,
            shape_str(r.2),
            shape_str(r.3),
            r.4,
            r.5,
            match (r.4, r.6) {
                (0, _) => "-",
                (_, true) => "yes",
                (_, false) => "no",
            },
            r.7
        );
    }
    println!();
    println!("parameters: {total} ({trained} trained by the optimizer when adapting)");
    println!("MACs per sample (forward): {macs}");
    println!("dtypes: {}", dtypes.join(", "));
    println!("flash: {} bytes (the blob file)", bytes.len());
    println!(
        "settings: loss {}, optimizer {}, lr {}, {} steps, batch {}, adapting layers {}",
        loss_name(blob.loss),
        optimizer_name(blob.optimizer),
        s.lr,
        s.steps,
        s.batch,
        mask_str(s.trainable, blob)
    );
    for r in &arenas {
        let pl = &r.plan;
        println!(
            "arena to {} at batch {}: {} f32 = {} bytes (params {}, grads {}, optimizer {}, activations {}, targets {}, scratch {})",
            r.what,
            r.batch,
            pl.arena_len(),
            4 * pl.arena_len(),
            pl.params_len,
            pl.grads_len,
            pl.opt_len,
            pl.acts_len,
            pl.targets_len,
            pl.gscratch_len + pl.norm_len
        );
    }
    Ok(())
}
