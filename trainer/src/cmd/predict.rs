//! `anole predict`: run a blob on query rows without adapting, printing CSV predictions.

use crate::csvio::{self, OutputFormat};
use crate::model;
use anole::{Learner, Options, Plan};
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};

/// Arguments of `anole predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to run (e.g. init.postcard or an adapted blob).
    #[arg(long)]
    pub model: PathBuf,
    /// Query samples: a CSV file with a header and the model's input columns.
    #[arg(long)]
    pub query: PathBuf,
    /// Classification: also print the probability of every class (p0, p1, ...).
    #[arg(long)]
    pub scores: bool,
}

/// Read a blob file; an ONNX file gets a hint to convert it first.
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    model::read_blob(path).map_err(|e| {
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
        {
            anyhow!(
                "{e:#} (an ONNX file: convert it with `anole import {} --out model.postcard`)",
                path.display()
            )
        } else {
            e
        }
    })
}

/// Run `anole predict`.
pub fn run(a: Args) -> Result<()> {
    let bytes = read_model(&a.model)?;
    let blob = model::parse(&bytes)?;
    let query = csvio::read_query(&a.query, &blob, None)?;
    let opts = Options {
        trainable: 0,
        ..Options::from_blob(&blob)
    };
    let plan = Plan::new(&blob, opts.batch, opts.trainable)
        .map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
    let mut arena = vec![0.0f32; plan.arena_len()];
    let mut learner = Learner::with_options(&blob, &mut arena, opts)
        .map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
    let mut outputs = vec![0.0f32; query.len * blob.output_len()];
    learner
        .predict(&query.inputs, &mut outputs)
        .map_err(|e| anyhow!("{}: {e}", a.query.display()))?;
    let fmt = OutputFormat {
        target_names: None,
        scores: a.scores,
    };
    csvio::write_predictions(std::io::stdout().lock(), &blob, &query, &outputs, &fmt)
}
