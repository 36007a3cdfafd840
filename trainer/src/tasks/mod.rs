//! Task families: distributions over few-shot tasks that meta-training samples from and
//! evaluation holds tasks out of, each yielding tasks as flat f32 batches; and their recipes
//! ([`recipe`]): the arguments, defaults, evaluation and model-card section of `anole train
//! <family>` and `anole eval`. One folder per family. Adding a family: its folder, a variant of
//! [`TrainFamily`] and of [`TaskName`], and its eval flags in [`EvalFlags`].

pub mod csv;
pub mod images;
pub mod omniglot;
pub mod recipe;
pub mod sine;
pub mod start;

use crate::model::Arch;
use anole::{LossKind, SharedBlob, SliceSamples};
use anyhow::{bail, Context, Result};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recipe::{EvalOptions, EvalOutput, EvalRecipe, Recipe};
use std::path::Path;

pub use omniglot::OmniglotTasks;
pub use sine::Sine;

/// The random generator every task family samples with (reproducible across platforms).
pub type TaskRng = ChaCha8Rng;

/// What a random stream is used for; each purpose gets its own ChaCha stream, so that e.g.
/// the tasks held out for evaluation never repeat the training tasks of the same seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Initial parameters.
    Init = 0,
    /// Meta-training tasks.
    Train = 1,
    /// Held-out evaluation tasks (task `i` has its own stream).
    Eval = 2,
    /// Which of a family's own tasks are held out.
    Split = 3,
    /// The inner minibatches of a meta-training task under a non-default data schedule (task
    /// `i` of the run has its own stream).
    Schedule = 4,
}

/// The generator for `purpose` under `seed`. Evaluation tasks additionally take their index,
/// so task `i` is the same whatever the number of tasks evaluated and whatever thread runs it.
pub fn rng(seed: u64, purpose: Stream, index: u64) -> TaskRng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(((purpose as u64) << 56) | (index & ((1 << 56) - 1)));
    r
}

/// The held-out share of a family's own `n` tasks or classes (`--holdout FRACTION`): sorted
/// indices of `fraction · n` of them (at least one, and at least one left to train on), drawn
/// with `seed`. `what` names them in errors ("tasks", "classes").
pub fn holdout_indices(n: usize, fraction: f64, seed: u64, what: &str) -> Result<Vec<usize>> {
    if !(fraction > 0.0 && fraction < 1.0) {
        bail!("--holdout must be between 0 and 1 (exclusive), got {fraction}");
    }
    if n < 2 {
        bail!("--holdout needs at least 2 {what} to hold some out; the data has {n} (or give --eval-data)");
    }
    let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
    let mut picked = rand::seq::index::sample(&mut rng(seed, Stream::Split, 0), n, held).into_vec();
    picked.sort_unstable();
    Ok(picked)
}

/// Rows of labelled samples: `inputs` is `n × input_len`, `targets` is `n × target_len`
/// (regression targets, or one class index per row), both in standard (row-major) layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Inputs, one row per sample.
    pub inputs: Array2<f32>,
    /// Targets, one row per sample.
    pub targets: Array2<f32>,
}

impl Batch {
    /// Build from flat row-major vectors of `n` rows.
    pub fn from_flat(
        inputs: Vec<f32>,
        input_len: usize,
        targets: Vec<f32>,
        target_len: usize,
    ) -> Result<Batch> {
        let n = inputs.len() / input_len.max(1);
        let inputs = Array2::from_shape_vec((n, input_len), inputs).context("inputs")?;
        let targets = Array2::from_shape_vec((n, target_len), targets).context("targets")?;
        Ok(Batch { inputs, targets })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.nrows()
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All inputs as one flat slice.
    pub fn input_slice(&self) -> &[f32] {
        // Batches are only ever built in standard layout (from_flat / owned arrays).
        self.inputs.as_slice().unwrap_or(&[])
    }

    /// All targets as one flat slice.
    pub fn target_slice(&self) -> &[f32] {
        self.targets.as_slice().unwrap_or(&[])
    }

    /// The rows as engine samples.
    pub fn samples(&self) -> Result<SliceSamples<'_>> {
        SliceSamples::new(
            self.input_slice(),
            self.target_slice(),
            self.inputs.ncols(),
            self.targets.ncols(),
        )
        .context("task batch")
    }

    /// Minibatch `step` of `size` rows when cycling through the rows in order (the rows are
    /// already in random order): rows `step·size .. step·size + size`, wrapping around.
    /// Contiguous minibatches are borrowed; wrapped ones are gathered into `scratch`.
    pub fn minibatch<'s>(
        &'s self,
        step: usize,
        size: usize,
        scratch: &'s mut (Vec<f32>, Vec<f32>),
    ) -> (&'s [f32], &'s [f32]) {
        let n = self.len();
        let size = size.min(n);
        let (il, tl) = (self.inputs.ncols(), self.targets.ncols());
        let start = (step * size) % n.max(1);
        if start + size <= n {
            return (
                &self.input_slice()[start * il..(start + size) * il],
                &self.target_slice()[start * tl..(start + size) * tl],
            );
        }
        scratch.0.clear();
        scratch.1.clear();
        for i in (start..start + size).map(|i| i % n) {
            scratch
                .0
                .extend_from_slice(&self.input_slice()[i * il..(i + 1) * il]);
            scratch
                .1
                .extend_from_slice(&self.target_slice()[i * tl..(i + 1) * tl]);
        }
        (&scratch.0, &scratch.1)
    }
}

/// One few-shot task: a support set to adapt on and a query set to measure on.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// Samples the learner adapts on.
    pub support: Batch,
    /// Held-out samples of the same task (may be empty when only training data is needed).
    pub query: Batch,
}

/// A distribution over tasks with a fixed model architecture and loss.
pub trait TaskFamily: Send + Sync {
    /// Short name, as written in the blob's provenance ("sine", "omniglot-5way", ...).
    fn name(&self) -> &str;
    /// The network the family is learned with.
    fn arch(&self) -> Arch;
    /// The loss it is adapted with.
    fn loss(&self) -> LossKind;
    /// The parameters meta-training with `seed` starts from: the architecture's initialisation
    /// (PyTorch's default), drawn from the seed's own stream. A family that starts from a given
    /// model returns its parameters instead.
    fn init_params(&self, seed: u64) -> Result<Vec<f32>> {
        self.arch().init_params(&mut rng(seed, Stream::Init, 0))
    }
    /// Sample one meta-training task with `shots` support samples (per class for
    /// classification) and no query set, in random row order.
    fn train_task(&self, rng: &mut TaskRng, shots: usize) -> Result<Batch>;
    /// Sample one held-out evaluation task: `shots` support samples and `queries` query
    /// samples (both per class for classification).
    fn eval_task(&self, rng: &mut TaskRng, shots: usize, queries: usize) -> Result<Episode>;
}

/// `anole train <family>`: the families meta-training knows, each with its own arguments.
#[derive(clap::Subcommand, Debug)]
pub enum TrainFamily {
    /// y = a·sin(x + b), a ~ U[0.1, 5], b ~ U[0, 2π], x ∈ [−5, 5] (regression, MSE).
    Sine(sine::TrainArgs),
    /// N-way K-shot Omniglot character classification (cross-entropy); needs `--data`.
    Omniglot(omniglot::TrainArgs),
    /// Your own tasks from CSV files, one file per task (regression or classification).
    Csv(csv::TrainArgs),
    /// Your own image classes, one folder of PNGs per class (N-way K-shot classification).
    Images(images::TrainArgs),
}

impl TrainFamily {
    /// The family's recipe, as the command line set it.
    pub fn recipe(&self) -> &dyn Recipe {
        match self {
            TrainFamily::Sine(a) => a,
            TrainFamily::Omniglot(a) => a,
            TrainFamily::Csv(a) => a,
            TrainFamily::Images(a) => a,
        }
    }
}

/// The task families `anole eval` knows (`--task`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskName {
    /// y = a·sin(x + b), a ~ U[0.1, 5], b ~ U[0, 2π], x ∈ [−5, 5] (regression, MSE).
    Sine,
    /// N-way K-shot Omniglot character classification (cross-entropy); needs `--data`.
    Omniglot,
}

impl TaskName {
    /// Every family.
    pub const ALL: [TaskName; 2] = [TaskName::Sine, TaskName::Omniglot];

    /// The lowercase name, as in the blob's provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskName::Sine => sine::NAME,
            TaskName::Omniglot => omniglot::NAME,
        }
    }

    /// Parse a provenance task name.
    pub fn from_provenance(name: &str) -> Option<TaskName> {
        TaskName::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// The flags of `anole eval` that belong to one family, every family's.
#[derive(clap::Args, Debug)]
pub struct EvalFlags {
    #[command(flatten)]
    pub sine: sine::EvalArgs,
    #[command(flatten)]
    pub omniglot: omniglot::EvalArgs,
}

impl EvalFlags {
    /// The eval recipe of `task`, with its flags.
    fn recipe(&self, task: TaskName) -> &dyn EvalRecipe {
        match task {
            TaskName::Sine => &self.sine,
            TaskName::Omniglot => &self.omniglot,
        }
    }

    /// Evaluate the blob read from `path` as a model of `task`; another family's flags are
    /// refused.
    pub fn evaluate(
        &self,
        task: TaskName,
        opts: &EvalOptions,
        path: &Path,
        blob: &SharedBlob,
    ) -> Result<EvalOutput> {
        for other in TaskName::ALL.into_iter().filter(|t| *t != task) {
            if let Some(flag) = self.recipe(other).given() {
                bail!("{flag} is for the {} task family", other.as_str());
            }
        }
        self.recipe(task).evaluate(opts, path, blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_and_repeat() {
        let a: u64 = rng(7, Stream::Train, 0).random();
        let b: u64 = rng(7, Stream::Eval, 0).random();
        let c: u64 = rng(7, Stream::Eval, 1).random();
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_eq!(b, rng(7, Stream::Eval, 0).random::<u64>());
    }

    #[test]
    fn minibatches_cycle_and_wrap() {
        let b = Batch::from_flat(
            (0..7).map(|v| v as f32).collect(),
            1,
            (0..7).map(|v| 10.0 * v as f32).collect(),
            1,
        )
        .unwrap();
        let mut scratch = Default::default();
        assert_eq!(b.minibatch(0, 3, &mut scratch).0, &[0.0, 1.0, 2.0]);
        assert_eq!(b.minibatch(1, 3, &mut scratch).0, &[3.0, 4.0, 5.0]);
        let (x, y) = b.minibatch(2, 3, &mut scratch);
        assert_eq!(x, &[6.0, 0.0, 1.0]);
        assert_eq!(y, &[60.0, 0.0, 10.0]);
        assert_eq!(b.minibatch(0, 50, &mut scratch).0.len(), 7);
    }
}
