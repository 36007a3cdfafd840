//! `anole predict`: run a blob on query samples without adapting, printing CSV predictions:
//! CSV rows, or PNG images (files or folders, preprocessed as in training) printed as
//! `file,predicted_class`.

use crate::csvio::{self, write_image_predictions, OutputFormat};
use crate::data::images::{self, check_image_model, is_png};
use crate::model;
use anole::{Options, OwnedLearner};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Arguments of `anole predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to run (e.g. init.postcard or an adapted blob).
    #[arg(long)]
    pub model: PathBuf,
    /// Query samples: a CSV file with a header and the model's input columns; or, for an
    /// image model, PNG files and/or folders of PNGs.
    #[arg(long, num_args = 1.., required = true)]
    pub query: Vec<PathBuf>,
    /// Classification: also print the probability of every class.
    #[arg(long)]
    pub scores: bool,
    /// Images: names of the classes in label order, comma-separated, or a support folder whose
    /// sub-folder names (sorted) are the classes, as `anole adapt` numbered them [default: the
    /// class index].
    #[arg(long)]
    pub classes: Option<String>,
}

/// Class names from `--classes`: a folder's sorted sub-folder names, or a comma-separated list.
fn class_names(spec: &str) -> Result<Vec<String>> {
    let p = Path::new(spec);
    if p.is_dir() {
        let mut names = Vec::new();
        for e in std::fs::read_dir(p).with_context(|| format!("cannot list folder {spec}"))? {
            let e = e.with_context(|| format!("cannot list folder {spec}"))?;
            if e.path().is_dir() {
                if let Some(n) = e.file_name().to_str().filter(|n| !n.starts_with('.')) {
                    names.push(n.to_owned());
                }
            }
        }
        if names.is_empty() {
            bail!("--classes {spec}: the folder has no class sub-folders");
        }
        names.sort();
        Ok(names)
    } else {
        let names: Vec<String> = spec.split(',').map(|n| n.trim().to_owned()).collect();
        if names.iter().any(String::is_empty) {
            bail!("--classes {spec:?}: an empty class name");
        }
        Ok(names)
    }
}

/// Run `anole predict`.
pub fn run(a: Args) -> Result<()> {
    let shared = model::read_model(&a.model)?;
    let blob = shared.blob();
    let images = a.query.iter().any(|p| p.is_dir() || is_png(p));
    if !images && a.classes.is_some() {
        bail!("--classes is for image queries");
    }
    let opts = Options {
        trainable: 0,
        ..Options::from_blob(blob)
    };
    let mut learner =
        OwnedLearner::with_options(&shared, opts).with_context(|| a.model.display().to_string())?;
    if images {
        check_image_model(&a.model, blob)?;
        let names = a.classes.as_deref().map(class_names).transpose()?;
        if let Some(n) = &names {
            if n.len() > blob.output_len() {
                bail!(
                    "--classes: {} names, but {} is a {}-way model",
                    n.len(),
                    a.model.display(),
                    blob.output_len()
                );
            }
        }
        let query = images::read_query(&a.query)?;
        let mut outputs = vec![0.0f32; query.files.len() * blob.output_len()];
        learner
            .predict(&query.inputs, &mut outputs)
            .context("query images")?;
        return write_image_predictions(
            std::io::stdout().lock(),
            &query.files,
            &outputs,
            blob.output_len(),
            names.as_deref(),
            a.scores,
        );
    }
    let [query_path] = a.query.as_slice() else {
        bail!("--query: give one CSV file (or PNG images for an image model)");
    };
    let query = csvio::read_query(query_path, blob, None)?;
    let mut outputs = vec![0.0f32; query.len * blob.output_len()];
    learner
        .predict(&query.inputs, &mut outputs)
        .with_context(|| query_path.display().to_string())?;
    let fmt = OutputFormat {
        target_names: None,
        scores: a.scores,
    };
    csvio::write_predictions(std::io::stdout().lock(), blob, &query, &outputs, &fmt)
}
