//! `anole adapt`: adapt a blob on labelled support rows with the device's engine, print CSV
//! predictions for query rows, optionally save the adapted blob and its ONNX.

use crate::csvio::{self, OutputFormat};
use crate::export::import::AdaptArg;
use crate::export::onnx::onnx_bytes;
use crate::model::{self, Arch};
use anole::{Blob, Learner, Options, Plan, SliceSamples};
use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;

/// Arguments of `anole adapt`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to adapt (e.g. init.postcard).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled samples: a CSV file with a header, the input columns, then the target columns
    /// (regression) or one integer column named `label` (classification).
    #[arg(long)]
    pub support: PathBuf,
    /// Samples to predict after adapting: a CSV file with the support set's input columns.
    #[arg(long)]
    pub query: PathBuf,
    /// Adaptation steps (default: the blob's).
    #[arg(long)]
    pub steps: Option<u32>,
    /// Learning rate (default: the blob's).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Layers that adapt: all, or only the last layer with parameters (default: the blob's).
    #[arg(long, value_enum)]
    pub adapt: Option<AdaptArg>,
    /// Write the adapted blob here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the adapted model as ONNX here.
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// Classification: also print the probability of every class (p0, p1, ...).
    #[arg(long)]
    pub scores: bool,
}

/// Run `anole adapt`.
pub fn run(a: Args) -> Result<()> {
    let bytes = super::predict::read_model(&a.model)?;
    let blob = model::parse(&bytes)?;
    let support = csvio::read_support(&a.support, &blob)?;
    let query = csvio::read_query(&a.query, &blob, Some(&support.input_names))?;

    let mut opts = Options::from_blob(&blob);
    if let Some(lr) = a.lr {
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("--lr {lr}: must be finite and >= 0");
        }
        opts.lr = lr;
    }
    match a.adapt {
        Some(AdaptArg::All) => opts.trainable = Arch::of(&blob).all_layers(),
        Some(AdaptArg::Head) => opts.trainable = Arch::of(&blob).head_only(),
        None => {}
    }
    let steps = a.steps.unwrap_or(blob.settings().steps);
    let model_err = |e: anole::Error| anyhow!("{}: {e}", a.model.display());
    let plan = Plan::new(&blob, opts.batch, opts.trainable).map_err(model_err)?;
    let mut arena = vec![0.0f32; plan.arena_len()];
    let mut learner = Learner::with_options(&blob, &mut arena, opts).map_err(model_err)?;

    let support_err = |e: anole::Error| anyhow!("{}: {e}", a.support.display());
    let samples = SliceSamples::new(
        &support.inputs,
        &support.targets,
        blob.input_len(),
        blob.target_len(),
    )
    .map_err(support_err)?;
    let before = learner.loss(&samples).map_err(support_err)?;
    learner.adapt(&samples, steps).map_err(|e| {
        anyhow!(
            "{}: adapting failed: {e} (try a smaller --lr)",
            a.support.display()
        )
    })?;
    let after = learner.loss(&samples).map_err(support_err)?;
    eprintln!(
        "adapted on {} support rows: {steps} steps at lr {}, support loss {before} -> {after}",
        support.len, opts.lr
    );

    if a.out.is_some() || a.onnx.is_some() {
        let adapted = learner.export_vec();
        if let Some(path) = &a.out {
            std::fs::write(path, &adapted)
                .map_err(|e| anyhow!("{}: cannot write: {e}", path.display()))?;
        }
        if let Some(path) = &a.onnx {
            let b = Blob::parse(&adapted)
                .map_err(|e| anyhow!("internal: adapted blob does not parse: {e}"))?;
            std::fs::write(path, onnx_bytes(&b)?)
                .map_err(|e| anyhow!("{}: cannot write: {e}", path.display()))?;
        }
    }

    let mut outputs = vec![0.0f32; query.len * blob.output_len()];
    learner
        .predict(&query.inputs, &mut outputs)
        .map_err(|e| anyhow!("{}: {e}", a.query.display()))?;
    let fmt = OutputFormat {
        target_names: Some(support.target_names.clone()),
        scores: a.scores,
    };
    csvio::write_predictions(std::io::stdout().lock(), &blob, &query, &outputs, &fmt)
}
