//! `anole import`: convert a supported ONNX model (the runtime's layers, e.g. exported from
//! PyTorch or by `anole`) into a blob.

use crate::export::import::{self, AdaptArg, ImportOptions, LossArg};
use crate::files;
use crate::model::DTypeArg;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Arguments of `anole import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// ONNX model to convert.
    #[arg(required_unless_present = "operators")]
    pub model: Option<PathBuf>,
    /// Blob to write.
    #[arg(long, required_unless_present = "operators")]
    pub out: Option<PathBuf>,
    /// Print the table of the ONNX operators the importer reads (what each becomes, what it
    /// accepts) as markdown, and nothing else.
    #[arg(long, exclusive = true)]
    pub operators: bool,
    /// Adaptation learning rate (default: the file's anole metadata, else 0.02).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Adaptation steps (default: the file's anole metadata, else 32).
    #[arg(long)]
    pub steps: Option<u32>,
    /// Minibatch of one adaptation step (default: the file's anole metadata, else 10).
    #[arg(long)]
    pub batch: Option<u32>,
    /// Loss: mse (regression) or xent (classification, integer labels) (default: metadata, else mse).
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    /// Layers that adapt: all, or the last layer with parameters (default: metadata, else all).
    #[arg(long, value_enum)]
    pub adapt: Option<AdaptArg>,
    /// Storage dtype of the blob (default: metadata, else f32).
    #[arg(long, value_enum)]
    pub dtype: Option<DTypeArg>,
}

/// Run `anole import`.
pub fn run(a: Args) -> Result<()> {
    if a.operators {
        print!("{}", import::operator_table());
        return Ok(());
    }
    // clap requires both without --operators.
    let (Some(model), Some(out)) = (&a.model, &a.out) else {
        bail!("anole import needs an ONNX model and --out");
    };
    let src = model.display();
    let bytes = files::read(model)?;
    let imported = import::parse_onnx(&bytes).with_context(|| format!("{src}"))?;
    let opts = ImportOptions {
        lr: a.lr,
        steps: a.steps,
        batch: a.batch,
        loss: a.loss,
        adapt: a.adapt,
        dtype: a.dtype,
    };
    let blob = import::to_blob(&imported, &opts).with_context(|| format!("{src}"))?;
    files::write(out, &blob)?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "{src} -> {}: {} layers, {} parameters, {} bytes{}",
        out.display(),
        imported.arch.layers.len(),
        imported.params.len(),
        blob.len(),
        if imported.meta.is_some() {
            " (settings and provenance from its anole metadata)"
        } else {
            ""
        }
    );
    Ok(())
}
