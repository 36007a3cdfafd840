//! `anole adapt`: adapt a blob on labelled support samples with the device's engine and print
//! predictions for query samples, optionally saving the adapted blob and its ONNX. Samples are
//! CSV rows, or images: a support folder with one sub-folder of PNGs per class and query PNG
//! files or folders, preprocessed exactly as in training (`data::images`), printing
//! `file,predicted_class` per query image.

use crate::csvio::{self, write_image_predictions, OutputFormat};
use crate::data::images::{self, check_image_model, is_png};
use crate::export::import::AdaptArg;
use crate::export::onnx::onnx_bytes;
use crate::fewshot::{self, HeadInit, HeadSplit};
use crate::model::{self, Arch};
use anole::{Blob, Learner, LossKind, Options, Plan, SliceSamples};
use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;

/// Arguments of `anole adapt`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to adapt (e.g. init.postcard).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled samples: a CSV file with a header, the input columns, then the target columns
    /// (regression) or one integer column named `label` (classification); or, for an image
    /// model, a folder with one sub-folder of PNG images per class (the class names).
    #[arg(long)]
    pub support: PathBuf,
    /// Samples to predict after adapting: a CSV file with the support set's input columns; or,
    /// with an image support folder, PNG files and/or folders of PNGs.
    #[arg(long, num_args = 1.., required = true)]
    pub query: Vec<PathBuf>,
    /// Adaptation steps (default: the blob's).
    #[arg(long)]
    pub steps: Option<u32>,
    /// Learning rate (default: the blob's).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Layers that adapt: all, or only the last layer with parameters (default: the blob's).
    #[arg(long, value_enum)]
    pub adapt: Option<AdaptArg>,
    /// Head-only adaptation of a classifier: start the head from the support set's class
    /// prototypes (the nearest-prototype classifier, then fine-tuned; the default) or from the
    /// blob's head (`meta`).
    #[arg(long, value_enum)]
    pub head_init: Option<HeadInit>,
    /// Write the adapted blob here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the adapted model as ONNX here.
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// Classification: also print the probability of every class (CSV: p0, p1, ...; images:
    /// one column per class name).
    #[arg(long)]
    pub scores: bool,
    /// Start the optimizer from this optimizer-state blob (the `init.adam.postcard` a
    /// `--inner-state keep` run writes next to its init) instead of a fresh one.
    #[arg(long, value_name = "FILE")]
    pub optimizer_state: Option<PathBuf>,
}

/// Run `anole adapt`.
pub fn run(a: Args) -> Result<()> {
    let bytes = model::read_model(&a.model)?;
    let blob = model::parse(&bytes)?;
    let images = a.support.is_dir();

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

    let data = if images {
        Data::images(&a, &blob)?
    } else {
        Data::csv(&a, &blob)?
    };
    let (support_inputs, support_targets, support_len) = data.support();
    let (query_inputs, query_len) = data.query();

    let plan = Plan::new(&blob, opts.batch, opts.trainable).map_err(model_err)?;
    let mut arena = vec![0.0f32; plan.arena_len()];
    let mut learner = Learner::with_options(&blob, &mut arena, opts).map_err(model_err)?;
    let support_err = |e: anole::Error| anyhow!("{}: {e}", a.support.display());
    let samples = SliceSamples::new(
        support_inputs,
        support_targets,
        blob.input_len(),
        blob.target_len(),
    )
    .map_err(support_err)?;
    let arch = Arch::of(&blob);
    let head_only = opts.trainable == arch.head_only();
    let classifier = blob.loss == LossKind::CrossEntropy;
    // Prototypes need a support sample of every class the head outputs.
    let every_class = (0..blob.output_len()).all(|c| support_targets.contains(&(c as f32)));
    match a.head_init {
        Some(HeadInit::Prototypes) if !(head_only && classifier) => bail!(
            "--head-init prototypes needs head-only adaptation (--adapt head) of a classifier"
        ),
        Some(HeadInit::Meta) if !head_only => {
            bail!("--head-init needs head-only adaptation (--adapt head)")
        }
        None if head_only && classifier && !every_class => eprintln!(
            "the head starts from the model's weights: its {} classes do not all have support samples",
            blob.output_len()
        ),
        Some(HeadInit::Prototypes) | None if head_only && classifier => {
            let split = HeadSplit::new(&blob).map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
            let mut features = Vec::new();
            match &split.body {
                Some(b) => {
                    let body = model::parse(b)?;
                    fewshot::features(&body, &mut Vec::new(), support_inputs, &mut features)?;
                }
                None => features.extend_from_slice(support_inputs),
            }
            let hb = model::parse(&split.head)?;
            let hopts = Options::from_blob(&hb);
            let mut harena = vec![0.0f32; hb.arena_len(hopts.batch).map_err(model_err)?];
            let mut head = Learner::with_options(&hb, &mut harena, hopts).map_err(model_err)?;
            let fs = SliceSamples::new(&features, support_targets, split.features, 1)
                .map_err(support_err)?;
            head.init_prototypes(&fs).map_err(support_err)?;
            let mut p = learner.params().to_vec();
            let at = p.len() - head.params().len();
            p[at..].copy_from_slice(head.params());
            learner.set_params(&p).map_err(model_err)?;
        }
        _ => {}
    }
    if let Some(p) = &a.optimizer_state {
        let bytes = model::read_blob(p)?;
        let state = model::parse(&bytes)?;
        learner
            .load_optimizer_state_from(&state)
            .map_err(|e| anyhow!("{}: {e}", p.display()))?;
    }
    let before = learner.loss(&samples).map_err(support_err)?;
    learner.adapt(&samples, steps).map_err(|e| {
        anyhow!(
            "{}: adapting failed: {e} (try a smaller --lr)",
            a.support.display()
        )
    })?;
    let after = learner.loss(&samples).map_err(support_err)?;
    eprintln!(
        "adapted on {support_len} support {}: {steps} steps at lr {}, support loss {before} -> {after}",
        if images { "images" } else { "rows" },
        opts.lr
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

    let mut outputs = vec![0.0f32; query_len * blob.output_len()];
    let query_name = a
        .query
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    learner
        .predict(query_inputs, &mut outputs)
        .map_err(|e| anyhow!("{query_name}: {e}"))?;
    match &data {
        Data::Images { support, query } => write_image_predictions(
            std::io::stdout().lock(),
            &query.files,
            &outputs,
            blob.output_len(),
            Some(&support.classes),
            a.scores,
        ),
        Data::Csv { support, query } => {
            let fmt = OutputFormat {
                target_names: Some(support.target_names.clone()),
                scores: a.scores,
            };
            csvio::write_predictions(std::io::stdout().lock(), &blob, query, &outputs, &fmt)
        }
    }
}

/// Support and query samples, from CSV files or image folders.
enum Data {
    Csv {
        support: csvio::Support,
        query: csvio::Query,
    },
    Images {
        support: images::SupportSet,
        query: images::QuerySet,
    },
}

impl Data {
    fn csv(a: &Args, blob: &Blob<'_>) -> Result<Data> {
        let [query_path] = a.query.as_slice() else {
            bail!("--query: a CSV support file goes with one CSV query file");
        };
        let support = csvio::read_support(&a.support, blob)?;
        let query = csvio::read_query(query_path, blob, Some(&support.input_names))?;
        Ok(Data::Csv { support, query })
    }

    fn images(a: &Args, blob: &Blob<'_>) -> Result<Data> {
        check_image_model(&a.model, blob)?;
        let support = images::read_support(&a.support)?;
        let ways = blob.output_len();
        if support.classes.len() > ways {
            bail!(
                "{}: {} class folders, but {} is a {ways}-way model",
                a.support.display(),
                support.classes.len(),
                a.model.display()
            );
        }
        if let Some(p) = a.query.iter().find(|p| p.is_file() && !is_png(p)) {
            bail!(
                "{}: with an image support folder, --query takes PNG files or folders of PNGs",
                p.display()
            );
        }
        let query = images::read_query(&a.query)?;
        Ok(Data::Images { support, query })
    }

    /// Inputs, targets and number of support samples.
    fn support(&self) -> (&[f32], &[f32], usize) {
        match self {
            Data::Csv { support, .. } => (&support.inputs, &support.targets, support.len),
            Data::Images { support, .. } => (&support.inputs, &support.labels, support.len()),
        }
    }

    /// Inputs and number of query samples.
    fn query(&self) -> (&[f32], usize) {
        match self {
            Data::Csv { query, .. } => (&query.inputs, query.len),
            Data::Images { query, .. } => (&query.inputs, query.files.len()),
        }
    }
}
