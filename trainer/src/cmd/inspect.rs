//! `anole inspect`: what a blob holds and what it costs on a device: architecture, parameters,
//! dtypes, flash bytes, and the arena (f32) needed to adapt or predict, in the host layout and
//! in the device layout (`anole::Mode::Device`: SGD fused into the backward pass, frozen layers
//! read from flash).

use crate::export::onnx::{loss_name, optimizer_name};
use crate::model;
use anole::{Blob, Mode, Plan, Shape};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

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

/// A per-sample shape as the user sees it (`[c, l]` for a 1-D model's images).
fn shape_str(blob: &Blob<'_>, s: Shape) -> String {
    format!("{:?}", blob.user_dims(s).as_slice())
}

/// One arena size: what it is for, the batch, and the f32 it needs.
struct Arena {
    what: &'static str,
    batch: usize,
    plan: Plan,
}

fn mask_str(mask: anole::LayerMask, blob: &Blob<'_>) -> String {
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

/// One layer of the table.
struct Row {
    index: usize,
    layer: &'static str,
    /// The earlier value a residual addition, branch or concatenation reads.
    reads: Option<usize>,
    input: Shape,
    output: Shape,
    params: usize,
    /// Storage dtype of its tensors, `-` without any.
    dtype: String,
    adapts: bool,
    macs: usize,
}

/// What `anole inspect` reports about a blob.
struct Summary<'b> {
    blob: &'b Blob<'b>,
    /// Size of the blob file.
    flash: usize,
    rows: Vec<Row>,
    /// Parameters in all, and those the optimizer trains when adapting.
    total: usize,
    trained: usize,
    macs: usize,
    dtypes: Vec<&'static str>,
    arenas: Vec<Arena>,
}

/// The arenas to adapt and predict at the blob's batch (and at `--batch`), in the host and
/// the device layout.
fn arenas(file: &str, batch: Option<usize>, blob: &Blob<'_>) -> Result<Vec<Arena>> {
    let s = blob.settings();
    let name = || file.to_string();
    let mut arenas = vec![Arena {
        what: "adapt",
        batch: s.batch as usize,
        plan: Plan::new(blob, s.batch as usize, s.trainable).with_context(name)?,
    }];
    if let Some(b) = batch {
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
    Ok(arenas)
}

impl<'b> Summary<'b> {
    fn new(
        file: &str,
        batch: Option<usize>,
        blob: &'b Blob<'b>,
        flash: usize,
    ) -> Result<Summary<'b>> {
        let trainable = blob.settings().trainable;
        let arenas = arenas(file, batch, blob)?;
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
            rows.push(Row {
                index: i,
                layer: l.name(),
                reads: l.reads(),
                input,
                output,
                params: l.param_len(input),
                dtype,
                adapts: n > 0 && trainable & (1 << i) != 0,
                macs: l.macs(input),
            });
        }
        let trained: usize = blob
            .layers
            .iter()
            .enumerate()
            .filter(|(i, l)| trainable & (1 << i) != 0 && l.tensor_count() > 0)
            .map(|(i, l)| l.trained_len(blob.shapes[i]))
            .sum();
        Ok(Summary {
            blob,
            flash,
            macs: rows.iter().map(|r| r.macs).sum(),
            rows,
            total: blob.param_count(),
            trained,
            dtypes,
            arenas,
        })
    }

    fn json(&self, file: &str) -> serde_json::Value {
        let (blob, s, p) = (self.blob, self.blob.settings(), self.blob.provenance());
        json!({
            "file": file,
            "flash_bytes": self.flash,
            "input": shape_str(blob, blob.input_shape()),
            "output": shape_str(blob, blob.output_shape()),
            "layers": self.rows.iter().map(|r| json!({
                "index": r.index, "layer": r.layer, "reads": r.reads, "input": shape_str(blob, r.input), "output": shape_str(blob, r.output),
                "params": r.params, "dtype": r.dtype, "adapts": r.adapts, "macs": r.macs,
            })).collect::<Vec<_>>(),
            "params": self.total,
            "trained_params": self.trained,
            "macs_per_sample": self.macs,
            "dtypes": self.dtypes,
            "runtime_features": blob.features().to_vec(),
            "settings": {
                "loss": loss_name(blob.loss), "optimizer": optimizer_name(blob.optimizer),
                "lr": s.lr, "steps": s.steps, "batch": s.batch, "trainable_layers": mask_str(s.trainable, blob),
                "lr_scale": s.lr_scale.to_vec(), "head_start": blob.head_start.name(), "head_scale": s.head_scale,
            },
            "provenance": {
                "algorithm": p.algorithm, "task": p.task, "seed": p.seed, "meta_iterations": p.meta_iterations,
            },
            "arena": self.arenas.iter().map(|r| json!({
                "for": r.what, "mode": format!("{:?}", r.plan.mode).to_lowercase(), "batch": r.batch, "f32": r.plan.arena_len(), "bytes": 4 * r.plan.arena_len(),
                "params": r.plan.params_len, "grads": r.plan.grads_len, "optimizer": r.plan.opt_len,
                "activations": r.plan.acts_len, "targets": r.plan.targets_len,
                "scratch": r.plan.gscratch_len + r.plan.norm_len,
            })).collect::<Vec<_>>(),
        })
    }

    fn print(&self, file: &Path) {
        let (blob, s, p) = (self.blob, self.blob.settings(), self.blob.provenance());
        println!(
            "{}: anole blob, format version {}",
            file.display(),
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
        for r in &self.rows {
            // A layer that reads an earlier value names it: `add 3` reads the input of layer 3.
            let layer = match r.reads {
                Some(k) => format!("{} {k}", r.layer),
                None => r.layer.to_string(),
            };
            println!(
                "{:>3}  {:<10} {:<15} {:<15} {:>9}  {:<5} {:<6} {:>11}",
                r.index,
                layer,
                shape_str(blob, r.input),
                shape_str(blob, r.output),
                r.params,
                r.dtype,
                match (r.params, r.adapts) {
                    (0, _) => "-",
                    (_, true) => "yes",
                    (_, false) => "no",
                },
                r.macs
            );
        }
        println!();
        println!(
            "parameters: {} ({} trained by the optimizer when adapting)",
            self.total, self.trained
        );
        println!("MACs per sample (forward): {}", self.macs);
        println!("dtypes: {}", self.dtypes.join(", "));
        println!("flash: {} bytes (the blob file)", self.flash);
        let features = self.blob.features();
        println!(
            "runtime features a device build needs: {}",
            if features.is_empty() {
                "none (default-features = false: dense, ReLU, tanh, MSE, SGD)".to_string()
            } else {
                features.join(", ")
            }
        );
        println!(
            "settings: loss {}, optimizer {}, lr {}, {} steps, batch {}, adapting layers {}, head start {}{}",
            loss_name(blob.loss),
            optimizer_name(blob.optimizer),
            s.lr,
            s.steps,
            s.batch,
            mask_str(s.trainable, blob),
            blob.head_start.name(),
            if s.head_scale == 1.0 {
                String::new()
            } else {
                format!(" (logits × {})", s.head_scale)
            }
        );
        for r in &self.arenas {
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
    }
}

/// What `anole inspect --json` prints about `blob` (read from `file`, `flash` bytes), with
/// the arena also sized for adapting at `batch` if given.
pub fn json(
    file: &str,
    batch: Option<usize>,
    blob: &Blob<'_>,
    flash: usize,
) -> Result<serde_json::Value> {
    Ok(Summary::new(file, batch, blob, flash)?.json(file))
}

/// Run `anole inspect`.
pub fn run(a: Args) -> Result<()> {
    let shared = model::read_model(&a.model)?;
    let file = a.model.display().to_string();
    let summary = Summary::new(&file, a.batch, shared.blob(), shared.bytes().len())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary.json(&file))?);
    } else {
        summary.print(&a.model);
    }
    Ok(())
}
