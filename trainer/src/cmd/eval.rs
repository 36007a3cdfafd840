//! `anole eval`: few-shot adaptation of a blob on held-out tasks of its task family, as a table
//! or JSON; what is measured is the family's (`crate::tasks`: sine reports the mean query loss
//! after 0, 1, 8 and `--steps` adaptation steps, Omniglot the accuracy of N-way K-shot
//! episodes), each with 95% confidence intervals.

use crate::model;
use crate::tasks::recipe::EvalOptions;
use crate::tasks::{EvalFlags, TaskName};
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};

/// Arguments of `anole eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to evaluate (a .postcard file, or a directory holding init.postcard).
    #[arg(long)]
    pub model: PathBuf,
    /// Task family [default: the one the blob was trained on].
    #[arg(long, value_enum)]
    pub task: Option<TaskName>,
    #[command(flatten)]
    pub options: EvalOptions,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub family: EvalFlags,
}

/// The blob file `model` names: the file itself, or `init.postcard` inside a directory.
pub fn blob_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join("init.postcard")
    } else {
        model.to_path_buf()
    }
}

/// Run `anole eval`.
pub fn run(args: Args) -> Result<()> {
    let path = blob_path(&args.model);
    let blob = model::read_blob(&path)?;
    let trained_on = blob.blob().provenance().task;
    let task = args
        .task
        .or_else(|| TaskName::from_provenance(trained_on))
        .ok_or_else(|| {
            anyhow!(
                "{}: trained on task '{trained_on}', which eval does not know; pass --task",
                path.display()
            )
        })?;
    let out = args.family.evaluate(task, &args.options, &path, &blob)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out.json)?);
    } else {
        print!("{}", out.text);
    }
    Ok(())
}
