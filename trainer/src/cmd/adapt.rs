//! `anole adapt`: adapt a blob on labelled support samples with the device's engine and print
//! predictions for query samples, optionally saving the adapted blob and its ONNX. Samples are
//! CSV rows, or images: a support folder with one sub-folder of PNGs per class and query PNG
//! files or folders, preprocessed exactly as in training (`data::images`), printing
//! `file,predicted_class` per query image.

use crate::csvio::{self, write_image_predictions, OutputFormat};
use crate::data::images::{self, check_image_model, is_png};
use crate::export::import::AdaptArg;
use crate::export::onnx::onnx_bytes;
use crate::fewshot::{Features, HeadInit, HeadSplit};
use crate::files;
use crate::model::{self, Arch};
use anole::{Blob, HeadStart, LossKind, Options, OwnedLearner, SliceSamples};
use anyhow::{anyhow, bail, Context, Result};
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
    /// Where a classifier's head starts: from the support set's class prototypes (the
    /// nearest-prototype classifier of their features, then fine-tuned) or from the blob's head
    /// (`meta`). Default: prototypes for head-only adaptation; for full adaptation, the blob's
    /// head start (prototypes for a model meta-learned from that start, `--head-start
    /// prototypes`).
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
    let shared = model::read_model(&a.model)?;
    let blob = shared.blob();
    let images = a.support.is_dir();

    let mut opts = Options::from_blob(blob);
    if let Some(lr) = a.lr {
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("--lr {lr}: must be finite and >= 0");
        }
        opts.lr = lr;
    }
    match a.adapt {
        Some(AdaptArg::All) => opts.trainable = Arch::of(blob).all_layers(),
        Some(AdaptArg::Head) => opts.trainable = Arch::of(blob).head_only(),
        None => {}
    }
    let steps = a.steps.unwrap_or(blob.settings().steps);
    let model_name = a.model.display().to_string();
    let support_name = a.support.display().to_string();

    let data = if images {
        Data::images(&a, blob)?
    } else {
        Data::csv(&a, blob)?
    };
    let (support_inputs, support_targets, support_len) = data.support();
    let (query_inputs, query_len) = data.query();

    let mut learner = OwnedLearner::with_options(&shared, opts).context(model_name.clone())?;
    let samples = SliceSamples::new(
        support_inputs,
        support_targets,
        blob.input_len(),
        blob.target_len(),
    )
    .context(support_name.clone())?;
    let head_only = opts.trainable == Arch::of(blob).head_only();
    if head_only && blob.loss == LossKind::CrossEntropy {
        head_init(&a, &mut learner, support_inputs, support_targets)?;
    } else if blob.loss == LossKind::CrossEntropy {
        let start = match a.head_init {
            Some(HeadInit::Prototypes) => HeadStart::Prototypes,
            Some(HeadInit::Meta) => HeadStart::Meta,
            None => blob.head_start,
        };
        if start == HeadStart::Prototypes {
            learner.init_head_prototypes(&samples).with_context(|| {
                format!("{support_name}: starting the head from class prototypes")
            })?;
        }
    } else if a.head_init.is_some() {
        bail!("--head-init: {model_name} is not a classifier (its loss is not cross-entropy)");
    }
    if let Some(p) = &a.optimizer_state {
        let state = model::read_blob(p)?;
        learner
            .load_optimizer_state_from(state.blob())
            .with_context(|| p.display().to_string())?;
    }
    let before = learner.loss(&samples).context(support_name.clone())?;
    learner
        .adapt(&samples, steps)
        .map_err(|e| anyhow!("{support_name}: adapting failed: {e} (try a smaller --lr)"))?;
    let after = learner.loss(&samples).context(support_name)?;
    eprintln!(
        "adapted on {support_len} support {}: {steps} steps at lr {}, support loss {before} -> {after}",
        if images { "images" } else { "rows" },
        opts.lr
    );

    if a.out.is_some() || a.onnx.is_some() {
        let adapted = learner.export_vec();
        if let Some(path) = &a.out {
            files::write(path, &adapted)?;
        }
        if let Some(path) = &a.onnx {
            let b = Blob::parse(&adapted).context("internal: adapted blob does not parse")?;
            files::write(path, &onnx_bytes(&b)?)?;
        }
    }

    let outputs_len = blob.output_len();
    let mut outputs = vec![0.0f32; query_len * outputs_len];
    let query_name = a
        .query
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    learner
        .predict(query_inputs, &mut outputs)
        .context(query_name)?;
    match &data {
        Data::Images { support, query } => write_image_predictions(
            std::io::stdout().lock(),
            &query.files,
            &outputs,
            outputs_len,
            Some(&support.classes),
            a.scores,
        ),
        Data::Csv { support, query } => {
            let fmt = OutputFormat {
                target_names: Some(support.target_names.clone()),
                scores: a.scores,
            };
            csvio::write_predictions(std::io::stdout().lock(), blob, query, &outputs, &fmt)
        }
    }
}

/// Head-only adaptation of a classifier: start the head from the support set's class
/// prototypes (`--head-init prototypes`, the default when every class has support samples), or
/// keep the model's head.
fn head_init(
    a: &Args,
    learner: &mut OwnedLearner,
    support_inputs: &[f32],
    support_targets: &[f32],
) -> Result<()> {
    let (model_name, support_name) = (a.model.display(), a.support.display());
    let blob = learner.blob();
    // Prototypes need a support sample of every class the head outputs.
    let every_class = (0..blob.output_len()).all(|c| support_targets.contains(&(c as f32)));
    match a.head_init {
        Some(HeadInit::Meta) => return Ok(()),
        None if !every_class => {
            eprintln!(
                "the head starts from the model's weights: its {} classes do not all have support samples",
                blob.output_len()
            );
            return Ok(());
        }
        Some(HeadInit::Prototypes) | None => {}
    }
    let split = HeadSplit::new(blob).with_context(|| model_name.to_string())?;
    let mut features = Vec::new();
    match split.body {
        Some(b) => Features::new(&model::shared(b)?)?.compute(support_inputs, &mut features)?,
        None => features.extend_from_slice(support_inputs),
    }
    let mut head =
        OwnedLearner::new(&model::shared(split.head)?).with_context(|| model_name.to_string())?;
    let fs = SliceSamples::new(&features, support_targets, split.features, 1)
        .with_context(|| support_name.to_string())?;
    head.init_prototypes(&fs)
        .with_context(|| support_name.to_string())?;
    let mut p = learner.params().to_vec();
    let at = p.len() - head.params().len();
    p[at..].copy_from_slice(head.params());
    learner
        .set_params(&p)
        .with_context(|| model_name.to_string())
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
