//! Recipes: what a task family brings to `anole train <family>` and `anole eval`.
//!
//! A family's training recipe ([`Recipe`]) is its clap arguments (the [`TrainOptions`] every
//! family takes, flattened, plus its own), its defaults (hyper-parameters, adaptation settings,
//! checkpoint interval), the command line that reproduces a run, and how it prepares the run
//! ([`Recipe::prepare`]: loads its data and builds its [`TaskFamily`]). The prepared run then
//! evaluates the exported blobs and gives its section of the model card ([`Prepared`]).
//! `anole eval` goes through the family's [`EvalRecipe`] the same way. The commands in
//! `crate::cmd` run any recipe; the list of families is [`super::TrainFamily`] and
//! [`super::TaskName`].

use super::TaskFamily;
use crate::meta::combination::MetaUpdate;
use crate::meta::schedule::{Minibatches, Tail};
use crate::meta::{Algo, Config, InnerOpt, InnerState, IterLoss};
use crate::model::DTypeArg;
use anole::SharedBlob;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The options of `anole train` every family takes. Unset hyper-parameters take the family's
/// reference recipe (see `anole train <family> --help`).
#[derive(clap::Args, Debug)]
pub struct TrainOptions {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the initialization, the training tasks and the family's data split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Meta-iterations; 0 writes the random initialization.
    #[arg(long)]
    pub iters: Option<u64>,
    /// Meta-learning algorithm.
    #[arg(long, value_enum, default_value_t = Algo::Reptile)]
    pub algo: Algo,
    /// Tasks per meta-iteration, run in parallel.
    #[arg(long)]
    pub meta_batch: Option<usize>,
    /// Samples per training task (per class for classification).
    #[arg(long)]
    pub train_shots: Option<usize>,
    /// Inner-loop steps per task.
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Inner-loop minibatch.
    #[arg(long)]
    pub inner_batch: Option<usize>,
    /// Inner-loop learning rate; also the adaptation lr stored in the blob.
    #[arg(long)]
    pub inner_lr: Option<f32>,
    /// Initial outer step size, annealed linearly to 0.
    #[arg(long)]
    pub outer_lr: Option<f32>,
    /// Inner-loop optimizer, stored in the blob: the device adapts with it too.
    #[arg(long, value_enum)]
    pub inner_opt: Option<InnerOpt>,
    /// The inner Adam's state between tasks: reset for every task, or kept across tasks (the
    /// paper's reference code) [the family's recipe where the run can keep it (reptile or
    /// fomaml with --inner-opt adam), else reset].
    #[arg(long, value_enum)]
    pub inner_state: Option<InnerState>,
    /// With --algo reptile: make the meta-update from the updates of these inner steps only,
    /// e.g. g4 (the last of four, like FOMAML) or g1+g2 [every step: Reptile].
    #[arg(long)]
    pub meta_update: Option<MetaUpdate>,
    /// How inner minibatches are drawn from a task's samples: epochs in the order drawn,
    /// epochs each reshuffled, or every minibatch drawn afresh (reptile, fomaml, maml).
    #[arg(long, value_enum, default_value_t = Minibatches::Cycle)]
    pub minibatches: Minibatches,
    /// Where the last inner minibatch comes from: the same samples as the others, or
    /// --inner-batch samples of the task held out of them (reptile, fomaml, maml).
    #[arg(long, value_enum, default_value_t = Tail::Shared)]
    pub tail: Tail,
    /// Storage dtype of init.postcard (with f32, an f16 copy init.f16.postcard is also written).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
    /// Adaptation steps recommended in the blob and used by the evaluation.
    #[arg(long)]
    pub adapt_steps: Option<u32>,
    /// Adaptation minibatch recommended in the blob and used by the evaluation.
    #[arg(long)]
    pub adapt_batch: Option<usize>,
    /// Held-out tasks (episodes) of the evaluation written to card.json.
    #[arg(long, visible_alias = "eval-episodes", default_value_t = 1000)]
    pub eval_tasks: usize,
    /// Write a checkpoint every this many meta-iterations (0: only at the end).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Continue the run from DIR/checkpoint/ (same command otherwise); the result is the same
    /// as an uninterrupted run's.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many meta-iterations in all, leaving a checkpoint to --resume from (to
    /// split a long run into sessions).
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Also sign the exported blobs with this ed25519 secret key (from `anole keygen`), as
    /// `anole sign` does: init.postcard → init.signed, init.f16.postcard → init.f16.signed.
    /// The key is read before training starts.
    #[arg(long, value_name = "KEY_FILE")]
    pub sign: Option<PathBuf>,
}

impl TrainOptions {
    /// Errors on values no family takes.
    pub fn check(&self) -> Result<()> {
        if self.adapt_steps == Some(0) {
            bail!("--adapt-steps must be at least 1");
        }
        if self.adapt_batch == Some(0) {
            bail!("--adapt-batch must be at least 1");
        }
        if self.stop_after == Some(0) {
            bail!("--stop-after must be at least 1");
        }
        Ok(())
    }

    /// The family's recipe `base` overridden by the flags. The inner optimizer's state is the
    /// recipe's where the run can keep it (reptile or fomaml with Adam), else reset.
    pub fn config(&self, base: &Config) -> Config {
        let algo = self.algo;
        let inner_opt = self.inner_opt.unwrap_or(base.inner_opt);
        let can_keep = algo != Algo::Joint && inner_opt == InnerOpt::Adam;
        Config {
            algo,
            iters: self.iters.unwrap_or(base.iters),
            meta_batch: self.meta_batch.unwrap_or(base.meta_batch),
            shots: self.train_shots.unwrap_or(base.shots),
            inner_steps: self.inner_steps.unwrap_or(base.inner_steps),
            inner_batch: self.inner_batch.unwrap_or(base.inner_batch),
            inner_lr: self.inner_lr.unwrap_or(base.inner_lr),
            outer_lr: self.outer_lr.unwrap_or(base.outer_lr),
            inner_opt,
            inner_state: self.inner_state.unwrap_or(match base.inner_state {
                InnerState::Keep if can_keep => InnerState::Keep,
                _ => InnerState::Reset,
            }),
            seed: self.seed,
            head_start: base.head_start,
            proto_shots: base.proto_shots,
            prototype_scale: base.prototype_scale,

            meta_update: self.meta_update.clone(),
            minibatches: self.minibatches,
            tail: self.tail,
        }
    }
}

/// A task family's training recipe: the arguments of `anole train <family>`.
pub trait Recipe {
    /// The options every family takes.
    fn options(&self) -> &TrainOptions;

    /// The run's hyper-parameters: the family's reference recipe overridden by the flags.
    /// Errors on flags that do not apply to the family or cannot train.
    fn config(&self) -> Result<Config>;

    /// Adaptation steps recommended in the blob and used by the evaluation.
    fn adapt_steps(&self) -> u32;

    /// Adaptation minibatch recommended in the blob: `--adapt-batch`, else the inner batch.
    fn adapt_batch(&self, cfg: &Config) -> usize {
        self.options().adapt_batch.unwrap_or(cfg.inner_batch)
    }

    /// Write a checkpoint every this many meta-iterations (0: only at the end):
    /// `--checkpoint-every`, else only at the end.
    fn checkpoint_every(&self) -> u64 {
        self.options().checkpoint_every.unwrap_or(0)
    }

    /// The `anole train` command line of the run with output folder `out`, every
    /// hyper-parameter spelled out (without `--sign`, which does not change the blobs): the
    /// run's identity for checkpoints and, with the real folder, the card's `command`.
    fn command(&self, cfg: &Config, out: &Path) -> String;

    /// Load the family's data and build its task family for a run of `cfg`.
    fn prepare(&self, cfg: &Config) -> Result<Box<dyn Prepared + '_>>;
}

/// A family ready to train on: its tasks, and the evaluation of what the run exports.
pub trait Prepared {
    /// The tasks meta-training samples.
    fn family(&self) -> &dyn TaskFamily;

    /// Evaluate the exported blobs on held-out tasks and write the family's own plots into
    /// `run.out`; gives the family's section of the model card and the results to print.
    fn evaluate(&self, run: &Exported<'_>) -> Result<Evaluation>;
}

/// A finished run's exported blobs, as its family's evaluation sees them.
pub struct Exported<'a> {
    /// Output folder.
    pub out: &'a Path,
    /// Hyper-parameters.
    pub cfg: &'a Config,
    /// The blobs written, by file name: `init.postcard` first, then its f16 copy if any.
    pub blobs: &'a [(&'static str, SharedBlob)],
    /// With `--inner-state keep`: the optimizer-state blob written next to them.
    pub optimizer_state: Option<&'a SharedBlob>,
    /// Adaptation steps the blobs recommend.
    pub adapt_steps: u32,
    /// The learning curve, one entry per meta-iteration.
    pub curve: &'a [IterLoss],
    /// Training wall time, in seconds, over every session of a resumed run.
    pub train_secs: f64,
    /// Meta-iterations per second.
    pub per_sec: f64,
}

/// What a family's evaluation of a run gives back.
pub struct Evaluation {
    /// The family's section of card.json (an object: its fields join the card's).
    pub section: serde_json::Value,
    /// Files the evaluation wrote into the output folder (plots), listed in the card.
    pub files: Vec<&'static str>,
    /// The results, printed after the list of files.
    pub text: String,
}

/// The options of `anole eval` every family takes.
#[derive(clap::Args, Debug)]
pub struct EvalOptions {
    /// Held-out tasks (episodes).
    #[arg(long, visible_alias = "episodes", default_value_t = 1000)]
    pub tasks: usize,
    /// Support samples per task: sine points [10]; Omniglot images per class, one K or a list
    /// [1,5].
    #[arg(long, value_delimiter = ',')]
    pub shots: Vec<usize>,
    /// Query samples per task: sine points of an even grid over [−5, 5] [100]; Omniglot
    /// images per class [1, the paper's protocol].
    #[arg(long)]
    pub queries: Option<usize>,
    /// Adaptation steps [default: the blob's]; sine reports the loss after 0, 1, 8 and this many.
    #[arg(long)]
    pub steps: Option<u32>,
    /// Adaptation learning rate [default: the blob's].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Seed of the held-out tasks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// A family's part of `anole eval`: its own flags and its evaluation of a blob.
pub trait EvalRecipe {
    /// The first of the family's own flags that is set, if any (given to another family's
    /// model, it is refused).
    fn given(&self) -> Option<&'static str>;

    /// Evaluate the blob read from `path` on held-out tasks.
    fn evaluate(&self, opts: &EvalOptions, path: &Path, blob: &SharedBlob) -> Result<EvalOutput>;
}

/// What `anole eval` prints: JSON with `--json`, else text.
pub struct EvalOutput {
    /// The report as JSON.
    pub json: serde_json::Value,
    /// The report as text.
    pub text: String,
}

/// `--seed S --iters N --algo A --meta-batch B [--meta-update U] [--minibatches M] [--tail T]`:
/// how a run of `cfg`
/// meta-trains, for its command line.
pub fn run_flags(cfg: &Config) -> String {
    let mut flags = format!(
        "--seed {} --iters {} --algo {} --meta-batch {}",
        cfg.seed,
        cfg.iters,
        cfg.algo.as_str(),
        cfg.meta_batch
    );
    if let Some(m) = &cfg.meta_update {
        flags.push_str(&format!(" --meta-update {m}"));
    }
    if cfg.minibatches != Minibatches::Cycle {
        flags.push_str(&format!(" --minibatches {}", cfg.minibatches.as_str()));
    }
    if cfg.tail != Tail::Shared {
        flags.push_str(&format!(" --tail {}", cfg.tail.as_str()));
    }
    flags
}

/// `--inner-steps … --inner-opt O`: the inner loop and outer step of `cfg`, as flags.
fn inner_loop_flags(cfg: &Config) -> String {
    format!(
        "--inner-steps {} --inner-batch {} --inner-lr {} --outer-lr {} --inner-opt {}",
        cfg.inner_steps,
        cfg.inner_batch,
        cfg.inner_lr,
        cfg.outer_lr,
        cfg.inner_opt.as_str()
    )
}

/// `--inner-steps … --inner-opt O --dtype D --adapt-steps S`: the inner loop of `cfg` and what
/// the run exports, for its command line.
pub fn inner_flags(cfg: &Config, dtype: DTypeArg, adapt_steps: u32) -> String {
    format!(
        "{} --dtype {} --adapt-steps {adapt_steps}",
        inner_loop_flags(cfg),
        dtype.dtype().name()
    )
}

/// Help text listing the defaults of a recipe: the hyper-parameters of `cfg`, the adaptation
/// steps and batch, and the checkpoint interval, as the flags that would set them.
pub fn defaults_help(cfg: &Config, adapt_steps: u32, adapt_batch: &str, every: u64) -> String {
    format!(
        "--iters {} --meta-batch {} --train-shots {} {} --inner-state {} \
         --adapt-steps {adapt_steps} --adapt-batch {adapt_batch} --checkpoint-every {every}",
        cfg.iters,
        cfg.meta_batch,
        cfg.shots,
        inner_loop_flags(cfg),
        cfg.inner_state.as_str(),
    )
}
