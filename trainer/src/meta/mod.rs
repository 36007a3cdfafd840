//! Meta-learning algorithms (Reptile, first- and second-order MAML, joint training) around one engine:
//! every inner-loop forward, backward and optimizer step runs in an `anole::OwnedLearner`, one
//! per meta-batch worker, each with its own arena (clones of one learner, sharing its blob). The meta-batch runs in parallel (rayon); results
//! are combined in worker order, so a seed gives the same bytes whatever the thread count.

pub mod combination;
pub mod fomaml;
pub mod joint;
pub mod maml;
pub mod reptile;
pub mod schedule;
pub mod theory;

use crate::model::{self, BlobMeta};
use crate::tasks::{self, Batch, Stream, TaskFamily, TaskRng};
use anole::blob::AdaptSettings;
use anole::{DType, LossKind, Options, OwnedLearner};
use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;

/// Classification runs measure the meta-training accuracy every this many meta-iterations
/// (one extra forward pass per task; it does not change the training).
pub const ACCURACY_EVERY: u64 = 8;

/// Meta-learning algorithm.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Reptile: φ ← φ + ε (W − φ), W the task-adapted parameters (averaged over the meta-batch).
    Reptile,
    /// First-order MAML: φ moves along the inner optimizer's step on the last minibatch, taken
    /// at the parameters adapted on the minibatches before it.
    Fomaml,
    /// Second-order MAML: φ moves against the gradient of the last minibatch's loss with
    /// respect to φ, through the inner SGD steps before it (Hessian-vector products by central
    /// differences of the engine's gradients); scaled by the inner lr like FOMAML.
    Maml,
    /// Joint training: plain SGD on minibatches of freshly sampled tasks (the baseline that
    /// minimises the average loss over tasks), with as many gradient evaluations.
    Joint,
}

impl Algo {
    /// The lowercase name written in provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Reptile => "reptile",
            Algo::Fomaml => "fomaml",
            Algo::Maml => "maml",
            Algo::Joint => "joint",
        }
    }
}

/// Inner-loop optimizer (stored in the blob, so the device adapts with the same one).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerOpt {
    /// Plain SGD.
    Sgd,
    /// Adam with β1 = 0 (β2 = 0.999, ε = 1e-8); its state is reset for every task, or carried
    /// across tasks with `--inner-state keep`.
    Adam,
}

impl InnerOpt {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            InnerOpt::Sgd => "sgd",
            InnerOpt::Adam => "adam",
        }
    }

    /// The blob's optimizer code.
    pub fn code(self) -> u8 {
        match self {
            InnerOpt::Sgd => anole::Optimizer::Sgd as u8,
            InnerOpt::Adam => anole::Optimizer::AdamB1Zero as u8,
        }
    }
}

/// What happens to the inner optimizer's state (Adam's second moments) between tasks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InnerState {
    /// Every task starts from a fresh optimizer, as a device adapting from the blob does.
    #[default]
    Reset,
    /// Every task of a meta-iteration starts from the state the tasks before left (the mean
    /// of the meta-batch's states, in worker order), as the paper's reference code, which
    /// restores only the model's weights between tasks, does.
    Keep,
}

impl InnerState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            InnerState::Reset => "reset",
            InnerState::Keep => "keep",
        }
    }
}

/// Where adaptation starts the classifier head: every training task's inner loop, and the
/// evaluation's full adaptation.
#[derive(
    clap::ValueEnum,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HeadStart {
    /// From the meta-learned head (the paper's recipe).
    #[default]
    Meta,
    /// From the class prototypes of the task's support features (first-order Proto-MAML,
    /// Triantafillou et al. 2020): the body is meta-learned for prototype-started adaptation.
    Prototypes,
}

impl HeadStart {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            HeadStart::Meta => "meta",
            HeadStart::Prototypes => "prototypes",
        }
    }

    /// The default (a report or card leaves it out).
    pub fn is_meta(&self) -> bool {
        *self == HeadStart::Meta
    }

    /// The blob's setting (its `head_start` code is [`HeadStart::code`]).
    pub fn blob(self) -> anole::HeadStart {
        match self {
            HeadStart::Meta => anole::HeadStart::Meta,
            HeadStart::Prototypes => anole::HeadStart::Prototypes,
        }
    }

    /// The head start `blob` records.
    pub fn of_blob(blob: &anole::Blob<'_>) -> HeadStart {
        match blob.head_start {
            anole::HeadStart::Meta => HeadStart::Meta,
            anole::HeadStart::Prototypes => HeadStart::Prototypes,
        }
    }

    /// The code a blob's settings store (format version 2; 0, meta, fits version 1).
    pub fn code(self) -> u8 {
        self.blob() as u8
    }
}

/// Hyper-parameters of one meta-training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Algorithm.
    pub algo: Algo,
    /// Meta-iterations.
    pub iters: u64,
    /// Tasks per meta-iteration.
    pub meta_batch: usize,
    /// Samples per training task (per class for classification).
    pub shots: usize,
    /// Inner-loop steps per task.
    pub inner_steps: usize,
    /// Minibatch size of one inner step.
    pub inner_batch: usize,
    /// Inner-loop learning rate (joint training: its SGD learning rate, annealed).
    pub inner_lr: f32,
    /// Initial outer step size ε, annealed linearly to 0.
    pub outer_lr: f32,
    /// Inner-loop optimizer.
    pub inner_opt: InnerOpt,
    /// The inner optimizer's state between tasks.
    pub inner_state: InnerState,
    /// Seed of the initial parameters and of the training tasks.
    pub seed: u64,
    /// Where every task's inner loop starts the classifier head.
    pub head_start: HeadStart,
    /// With [`HeadStart::Prototypes`]: the prototypes are the mean features of the first this
    /// many training images of each class (all of them if `None`).
    pub proto_shots: Option<usize>,
    /// With [`HeadStart::Prototypes`]: a factor on the started head's weights and biases (so
    /// on its logits) before every task's inner steps (`--prototype-scale`; 1: as started).
    /// The unscaled prototype logits saturate the softmax, so only the images they misclassify
    /// or nearly move the inner steps; with a smaller factor every image's loss does, and the
    /// body is meta-learned for that start (docs/experiments.md). The evaluation of the run's
    /// blobs starts the same way.
    pub prototype_scale: f32,

    /// Reptile with the meta-update summed over these inner steps only (`--meta-update`);
    /// `None`: every step (Reptile itself).
    pub meta_update: Option<combination::MetaUpdate>,
    /// How inner minibatches are drawn from a task's samples (`--minibatches`).
    pub minibatches: schedule::Minibatches,
    /// Where the last inner minibatch comes from (`--tail`).
    pub tail: schedule::Tail,
}

impl Config {
    /// The paper's sine recipe: 30,000 meta-iterations of one task, 50 points in minibatches
    /// of 10 for 5 inner SGD steps at lr 0.02, outer step 0.1 annealed to 0.
    pub fn sine() -> Config {
        Config {
            algo: Algo::Reptile,
            iters: 30_000,
            meta_batch: 1,
            shots: 50,
            inner_steps: 5,
            inner_batch: 10,
            inner_lr: 0.02,
            outer_lr: 0.1,
            inner_opt: InnerOpt::Sgd,
            inner_state: InnerState::Reset,
            seed: 0,
            head_start: HeadStart::Meta,
            proto_shots: None,
            prototype_scale: 1.0,

            meta_update: None,
            minibatches: schedule::Minibatches::Cycle,
            tail: schedule::Tail::Shared,
        }
    }

    /// The paper's Omniglot recipe (Appendix A): 10 training shots per class, inner Adam with
    /// β1 = 0 whose state is kept across tasks, meta-batch 5, outer step 1.0 annealed to 0;
    /// 5-way (up to 5 classes): inner batch 10, 5 inner steps, lr 1e-3, 100,000
    /// meta-iterations; 20-way (more than 5 classes): inner batch 20, 10 inner steps, lr 5e-4,
    /// 200,000 meta-iterations.
    pub fn omniglot(ways: usize) -> Config {
        let five = ways <= 5;
        Config {
            algo: Algo::Reptile,
            iters: if five { 100_000 } else { 200_000 },
            meta_batch: 5,
            shots: 10,
            inner_steps: if five { 5 } else { 10 },
            inner_batch: if five { 10 } else { 20 },
            inner_lr: if five { 1e-3 } else { 5e-4 },
            outer_lr: 1.0,
            inner_opt: InnerOpt::Adam,
            inner_state: InnerState::Keep,
            seed: 0,
            head_start: HeadStart::Meta,
            proto_shots: None,
            prototype_scale: 1.0,

            meta_update: None,
            minibatches: schedule::Minibatches::Cycle,
            tail: schedule::Tail::Shared,
        }
    }

    /// Errors on values that cannot train.
    pub fn validate(&self) -> Result<()> {
        if self.meta_batch == 0 {
            bail!("--meta-batch must be at least 1");
        }
        if self.shots == 0 {
            bail!("--shots must be at least 1");
        }
        if self.inner_steps == 0 {
            bail!("--inner-steps must be at least 1");
        }
        if self.inner_batch == 0 || self.inner_batch > 1 << 16 {
            bail!("--inner-batch must be between 1 and 65536");
        }
        if !(self.inner_lr.is_finite() && self.inner_lr > 0.0) {
            bail!(
                "--inner-lr must be a positive number, got {}",
                self.inner_lr
            );
        }
        if let Some(m) = &self.meta_update {
            if self.algo != Algo::Reptile {
                bail!("--meta-update selects the inner steps of reptile's meta-update: it needs --algo reptile");
            }
            m.check(self.inner_steps)?;
        }
        if self.algo == Algo::Joint && !schedule::is_default(self) {
            bail!("--minibatches and --tail schedule the inner loop of reptile, fomaml and maml: joint training takes one minibatch per task");
        }
        if self.algo == Algo::Maml && self.inner_opt != InnerOpt::Sgd {
            bail!("--algo maml differentiates through plain SGD inner steps: it needs --inner-opt sgd");
        }
        if self.inner_state == InnerState::Keep {
            if self.inner_opt != InnerOpt::Adam {
                bail!("--inner-state keep carries Adam's state: it needs --inner-opt adam");
            }
            if self.algo == Algo::Joint {
                bail!("--inner-state keep is for reptile and fomaml (joint training keeps its own Adam state)");
            }
        }
        if self.head_start == HeadStart::Prototypes && self.algo == Algo::Joint {
            bail!("--head-start prototypes starts every task's inner loop from prototypes: it is for reptile and fomaml, not joint training");
        }
        match self.proto_shots {
            Some(0) => bail!("--proto-shots must be at least 1"),
            Some(_) if self.head_start != HeadStart::Prototypes => {
                bail!("--proto-shots needs --head-start prototypes")
            }
            _ => {}
        }
        if !(self.prototype_scale.is_finite() && self.prototype_scale > 0.0) {
            bail!(
                "--prototype-scale must be a finite number > 0, got {}",
                self.prototype_scale
            );
        }
        if self.prototype_scale != 1.0 && self.head_start != HeadStart::Prototypes {
            bail!("--prototype-scale scales the head started from prototypes: it needs --head-start prototypes");
        }
        if !(self.outer_lr.is_finite() && self.outer_lr > 0.0) {
            bail!(
                "--outer-lr must be a positive number, got {}",
                self.outer_lr
            );
        }
        Ok(())
    }

    /// Outer step size at iteration `t`: ε₀ (1 − t / T).
    pub fn outer_step(&self, t: u64) -> f32 {
        anneal(self.outer_lr, t, self.iters)
    }
}

/// `start · (1 − t / total)`, the paper's linear annealing.
pub fn anneal(start: f32, t: u64, total: u64) -> f32 {
    if total == 0 {
        return start;
    }
    (start as f64 * (1.0 - t as f64 / total as f64)) as f32
}

/// Losses of one meta-iteration, averaged over its tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterLoss {
    /// Loss of the first inner minibatch, at the meta-parameters (before adapting).
    pub before: f32,
    /// Loss of the last inner minibatch, at the parameters adapted on the ones before it
    /// (joint training: the same as `before`).
    pub after: f32,
    /// Classification: accuracy on that last inner minibatch, from the same forward pass as
    /// `after` (batch statistics), measured every [`ACCURACY_EVERY`] meta-iterations.
    pub accuracy: Option<f32>,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The meta-learned parameters.
    pub params: Vec<f32>,
    /// The initial parameters it started from.
    pub init: Vec<f32>,
    /// Meta-iterations run.
    pub iterations: u64,
    /// The algorithm's state at the end (with `--inner-state keep`, the inner optimizer's).
    pub state: AlgoState,
}

/// Adaptation settings a blob trained with `cfg` recommends: the inner optimizer and learning
/// rate, `steps` steps on minibatches of `batch`, every layer adapting.
pub fn adapt_settings(
    family: &dyn TaskFamily,
    cfg: &Config,
    steps: u32,
    batch: usize,
) -> AdaptSettings {
    AdaptSettings {
        loss: family.loss() as u8,
        optimizer: cfg.inner_opt.code(),
        lr: cfg.inner_lr,
        steps,
        batch: batch as u32,
        trainable: family.arch().all_layers(),
        head_start: cfg.head_start.code(),
        lr_scale: Default::default(),
        head_scale: cfg.prototype_scale,
    }
}

/// One meta-batch slot: its learner (own arena), its task and its result.
pub(crate) struct Worker {
    pub learner: OwnedLearner,
    pub task: Option<Batch>,
    /// Adapted parameters (Reptile), meta-step (FOMAML) or gradient (joint).
    pub out: Vec<f32>,
    pub loss: IterLoss,
    pub scratch: (Vec<f32>, Vec<f32>),
    /// Measure the accuracy of the last inner minibatch in this meta-iteration.
    pub measure: bool,
    /// Output buffer for that measurement.
    pub outputs: Vec<f32>,
}

impl Worker {
    /// One inner optimizer step on minibatch `s` of the worker's task.
    pub fn step(&mut self, s: usize, batch: usize, lr: f32) -> Result<f32> {
        let task = self
            .task
            .as_ref()
            .ok_or_else(|| anyhow!("internal: worker has no task"))?;
        let (x, y) = task.minibatch(s, batch, &mut self.scratch);
        self.learner
            .step(x, y, lr)
            .with_context(|| format!("inner step {}", s + 1))
    }

    /// When [`Worker::measure`] is set: the accuracy on minibatch `s` at the current
    /// parameters, with batch statistics (the forward pass the next step on `s` takes).
    pub fn measure_accuracy(&mut self, s: usize, batch: usize) -> Result<()> {
        if !self.measure {
            return Ok(());
        }
        let task = self
            .task
            .as_ref()
            .ok_or_else(|| anyhow!("internal: worker has no task"))?;
        let (x, y) = task.minibatch(s, batch, &mut self.scratch);
        let k = self.learner.blob().output_len();
        self.outputs.resize(y.len() * k, 0.0);
        self.learner
            .predict_batch_stats(x, &mut self.outputs)
            .with_context(|| format!("accuracy on minibatch {}", s + 1))?;
        let hits = crate::stats::hits(&self.outputs, y, k);
        self.loss.accuracy = Some(hits as f32 / y.len().max(1) as f32);
        Ok(())
    }

    /// The gradient on minibatch `s` at the current parameters, into `out`.
    pub fn gradient(&mut self, s: usize, batch: usize) -> Result<f32> {
        let task = self
            .task
            .as_ref()
            .ok_or_else(|| anyhow!("internal: worker has no task"))?;
        let (x, y) = task.minibatch(s, batch, &mut self.scratch);
        let l = self
            .learner
            .gradient(x, y)
            .with_context(|| format!("gradient on minibatch {}", s + 1))?;
        self.learner
            .gradient_into(&mut self.out)
            .context("internal")?;
        Ok(l)
    }
}

/// The inner optimizer's state carried across tasks under [`InnerState::Keep`]; inert under
/// [`InnerState::Reset`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Carried {
    on: bool,
    state: AlgoState,
    /// Where every task's head starts, and from how many images per class.
    head_start: HeadStart,
    proto_shots: Option<usize>,
    /// The factor on the started head ([`Config::prototype_scale`]).
    prototype_scale: f32,
}

impl Carried {
    pub fn new(cfg: &Config) -> Carried {
        Carried {
            on: cfg.inner_state == InnerState::Keep,
            state: AlgoState::default(),
            head_start: cfg.head_start,
            proto_shots: cfg.proto_shots,
            prototype_scale: cfg.prototype_scale,
        }
    }

    /// Start a worker's task: its learner at the meta-parameters `phi`, the head started from
    /// the task's class prototypes under [`HeadStart::Prototypes`] (then multiplied by
    /// [`Config::prototype_scale`]), with the carried state (which both clear) when there is
    /// one.
    pub fn start(&self, w: &mut Worker, phi: &[f32]) -> Result<()> {
        w.learner
            .set_params(phi)
            .context("loading meta-parameters")?;
        if self.head_start == HeadStart::Prototypes {
            // The runtime's prototype start multiplies the head by the scale (the one place).
            w.learner
                .set_head_scale(self.prototype_scale)
                .context("the prototype start's scale")?;
            let task = w
                .task
                .as_ref()
                .ok_or_else(|| anyhow!("internal: worker has no task"))?;
            let started = match self.proto_shots {
                None => w.learner.init_head_prototypes(&task.samples()?),
                Some(k) => {
                    let (x, y) = first_per_class(task, k, &mut w.scratch);
                    let il = task.inputs.ncols();
                    w.learner
                        .init_head_prototypes(&anole::SliceSamples::new(x, y, il, 1)?)
                }
            };
            started.context("starting the head from class prototypes")?;
        }
        if !self.on || self.state.steps == 0 {
            return Ok(());
        }
        let steps = u32::try_from(self.state.steps).unwrap_or(u32::MAX);
        w.learner
            .set_optimizer_state(steps, &self.state.values)
            .context("carried inner optimizer state")
    }

    /// After the meta-iteration: the mean of the workers' states, summed in worker order.
    pub fn gather(&mut self, workers: &[Worker]) {
        let Some(first) = workers.first().filter(|_| self.on) else {
            return;
        };
        let (steps, v) = first.learner.optimizer_state();
        let values = &mut self.state.values;
        values.clear();
        values.resize(v.len(), 0.0);
        for w in workers {
            for (m, &x) in values.iter_mut().zip(w.learner.optimizer_state().1) {
                *m += x;
            }
        }
        let n = workers.len() as f32;
        values.iter_mut().for_each(|m| *m /= n);
        self.state.steps = steps as u64;
    }

    pub fn state(&self) -> AlgoState {
        self.state.clone()
    }

    pub fn restore(&mut self, state: &AlgoState) -> Result<()> {
        if !self.on && state != &AlgoState::default() {
            bail!("the checkpoint carries inner optimizer state, but this run resets it for every task (--inner-state reset)");
        }
        if state.values.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            bail!("the checkpoint's inner optimizer state holds a negative or non-finite value");
        }
        self.state = state.clone();
        Ok(())
    }
}

/// The first `k` rows of each class of a classification `task` (in row order), into `scratch`.
fn first_per_class<'s>(
    task: &Batch,
    k: usize,
    scratch: &'s mut (Vec<f32>, Vec<f32>),
) -> (&'s [f32], &'s [f32]) {
    let (xs, ys) = scratch;
    xs.clear();
    ys.clear();
    let mut seen: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let il = task.inputs.ncols();
    for (x, &y) in task.input_slice().chunks_exact(il).zip(task.target_slice()) {
        let c = seen.entry(y.to_bits()).or_insert(0);
        if *c < k {
            *c += 1;
            xs.extend_from_slice(x);
            ys.push(y);
        }
    }
    (&xs[..], &ys[..])
}

/// Run `f` on every worker (in parallel when there are several) and return the first error in
/// worker order.
pub(crate) fn for_each_worker<F>(workers: &mut [Worker], f: F) -> Result<()>
where
    F: Fn(&mut Worker) -> Result<()> + Sync,
{
    if workers.len() == 1 {
        return f(&mut workers[0]).context("task 1");
    }
    let results: Vec<Result<()>> = workers.par_iter_mut().map(&f).collect();
    for (i, r) in results.into_iter().enumerate() {
        r.with_context(|| format!("task {}", i + 1))?;
    }
    Ok(())
}

/// φ ← φ + `step` · mean of the workers' `out`, added in worker order.
pub(crate) fn add_mean_update(phi: &mut [f32], workers: &[Worker], step: f32) {
    let eps = step / workers.len() as f32;
    for w in workers {
        for (p, &d) in phi.iter_mut().zip(&w.out) {
            *p += eps * d;
        }
    }
}

/// Mean of the workers' losses (and accuracies, when every worker measured one).
pub(crate) fn mean_loss(workers: &[Worker]) -> IterLoss {
    let n = workers.len() as f32;
    let acc: Option<Vec<f32>> = workers.iter().map(|w| w.loss.accuracy).collect();
    IterLoss {
        before: workers.iter().map(|w| w.loss.before).sum::<f32>() / n,
        after: workers.iter().map(|w| w.loss.after).sum::<f32>() / n,
        accuracy: acc.map(|a| a.iter().sum::<f32>() / n),
    }
}

/// The per-algorithm part of a meta-iteration.
pub(crate) trait Algorithm {
    /// Run meta-iteration `t`: sample tasks from `rng`, adapt in the workers, update `phi`.
    fn iteration(
        &mut self,
        t: u64,
        phi: &mut [f32],
        workers: &mut [Worker],
        family: &dyn TaskFamily,
        rng: &mut TaskRng,
    ) -> Result<IterLoss>;

    /// State carried from one meta-iteration to the next besides the meta-parameters
    /// (joint training's Adam moments); empty for the others.
    fn state(&self) -> AlgoState {
        AlgoState::default()
    }

    /// Restore what [`Algorithm::state`] returned.
    fn restore(&mut self, state: &AlgoState) -> Result<()> {
        if state != &AlgoState::default() {
            bail!("this algorithm keeps no state between meta-iterations");
        }
        Ok(())
    }
}

/// An algorithm's own state between meta-iterations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlgoState {
    /// Optimizer updates taken.
    pub steps: u64,
    /// Per-parameter optimizer state (Adam's second moments), empty when there is none.
    pub values: Vec<f32>,
}

/// Where a run stands after `iteration` meta-iterations: enough to continue it and get the same
/// bits as an uninterrupted run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// Meta-iterations done.
    pub iteration: u64,
    /// Meta-parameters.
    pub params: Vec<f32>,
    /// Position of the training-task generator (ChaCha8 word position).
    pub rng_word_pos: u128,
    /// The algorithm's own state.
    pub algo: AlgoState,
}

/// Meta-train on `family` with `cfg`, calling `on_iter` after every meta-iteration. Starts
/// from the architecture's initialisation drawn with `cfg.seed`.
pub fn train(
    family: &dyn TaskFamily,
    cfg: &Config,
    mut on_iter: impl FnMut(u64, IterLoss),
) -> Result<Trained> {
    train_resumable(
        family,
        cfg,
        None,
        |_| false,
        |t, l, _| {
            on_iter(t, l);
            Ok(())
        },
    )
}

/// [`train`], starting from `start` when given (a state an earlier run of the same `cfg`
/// handed to its callback), else from the initialisation. `on_iter(t, loss, state)` runs after
/// meta-iteration `t`; `state` is given when `wants_state(t + 1)` is true and after the last
/// meta-iteration. An error from `on_iter` stops the run.
pub fn train_resumable(
    family: &dyn TaskFamily,
    cfg: &Config,
    start: Option<RunState>,
    wants_state: impl Fn(u64) -> bool,
    mut on_iter: impl FnMut(u64, IterLoss, Option<&RunState>) -> Result<()>,
) -> Result<Trained> {
    cfg.validate()?;
    let init = family.init_params(cfg.seed)?;
    let mut workers = workers(family, cfg, &init)?;
    let mut algorithm: Box<dyn Algorithm> = match cfg.algo {
        Algo::Reptile => match &cfg.meta_update {
            Some(m) => Box::new(combination::Combination::new(cfg, m)),
            None => Box::new(reptile::Reptile::new(cfg)),
        },
        Algo::Fomaml => Box::new(fomaml::Fomaml::new(cfg)),
        Algo::Maml => Box::new(maml::Maml::new(cfg)),
        Algo::Joint => Box::new(joint::Joint::new(cfg, init.len())),
    };
    let mut rng = tasks::rng(cfg.seed, Stream::Train, 0);
    let mut phi = init.clone();
    let mut first = 0;
    if let Some(s) = start {
        if s.iteration > cfg.iters {
            bail!(
                "the checkpoint is at meta-iteration {}, beyond the run's {}",
                s.iteration,
                cfg.iters
            );
        }
        if s.params.len() != phi.len() {
            bail!(
                "the checkpoint has {} parameters, the architecture {}",
                s.params.len(),
                phi.len()
            );
        }
        phi = s.params;
        rng.set_word_pos(s.rng_word_pos);
        algorithm.restore(&s.algo)?;
        first = s.iteration;
    }
    let classify = family.loss() == LossKind::CrossEntropy;
    for t in first..cfg.iters {
        for w in workers.iter_mut() {
            w.measure = classify && t % ACCURACY_EVERY == 0;
            w.loss.accuracy = None;
        }
        let loss = algorithm
            .iteration(t, &mut phi, &mut workers, family, &mut rng)
            .with_context(|| format!("meta-iteration {}", t + 1))?;
        if !(loss.before.is_finite() && phi.iter().all(|v| v.is_finite())) {
            bail!("meta-iteration {}: training diverged (non-finite loss or parameters); lower --inner-lr or --outer-lr", t + 1);
        }
        let done = t + 1;
        if wants_state(done) || done == cfg.iters {
            let state = RunState {
                iteration: done,
                params: phi.clone(),
                rng_word_pos: rng.get_word_pos(),
                algo: algorithm.state(),
            };
            on_iter(t, loss, Some(&state))?;
        } else {
            on_iter(t, loss, None)?;
        }
    }
    Ok(Trained {
        params: phi,
        init,
        iterations: cfg.iters,
        state: algorithm.state(),
    })
}

/// The meta-batch's workers, each with a learner of `family`'s architecture, loss and inner
/// optimizer for a run of `cfg` (parameters `init`; replaced by the meta-parameters at the start
/// of every task).
fn workers(family: &dyn TaskFamily, cfg: &Config, init: &[f32]) -> Result<Vec<Worker>> {
    let arch = family.arch();
    let meta = BlobMeta {
        dtype: DType::F32,
        settings: adapt_settings(family, cfg, cfg.inner_steps as u32, cfg.inner_batch),
        algorithm: cfg.algo.as_str().into(),
        task: family.name().into(),
        seed: cfg.seed,
        meta_iterations: 0,
    };
    let blob = model::shared(model::encode_blob(&arch, init, &meta)?)?;
    let opts = Options {
        batch: cfg.inner_batch,
        trainable: arch.all_layers(),
        lr: cfg.inner_lr,
    };
    let learner = OwnedLearner::with_options(&blob, opts).context("learner")?;
    Ok((0..cfg.meta_batch)
        .map(|_| Worker {
            learner: learner.clone(),
            task: None,
            out: vec![0.0; init.len()],
            loss: IterLoss {
                before: 0.0,
                after: 0.0,
                accuracy: None,
            },
            scratch: Default::default(),
            measure: false,
            outputs: Vec::new(),
        })
        .collect())
}

/// Sample one training task per worker for meta-iteration `t`, in worker order, its rows
/// arranged into the inner minibatches of `cfg`'s data schedule.
pub(crate) fn sample_tasks(
    workers: &mut [Worker],
    family: &dyn TaskFamily,
    rng: &mut TaskRng,
    cfg: &Config,
    t: u64,
) -> Result<()> {
    let first = t * workers.len() as u64;
    for (i, w) in workers.iter_mut().enumerate() {
        let task = family.train_task(rng, cfg.shots)?;
        w.task = Some(schedule::arrange(task, cfg, first + i as u64)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anneals_linearly_to_zero() {
        let c = Config {
            iters: 4,
            ..Config::sine()
        };
        let e: Vec<f32> = (0..4).map(|t| c.outer_step(t)).collect();
        assert_eq!(e, vec![0.1, 0.075, 0.05, 0.025]);
        assert_eq!(anneal(1.0, 4, 4), 0.0);
    }

    #[test]
    fn validates() {
        assert!(Config::sine().validate().is_ok());
        assert!(Config {
            meta_batch: 0,
            ..Config::sine()
        }
        .validate()
        .is_err());
        assert!(Config {
            inner_lr: f32::NAN,
            ..Config::sine()
        }
        .validate()
        .is_err());
    }

    /// `--prototype-scale`: every task's inner loop starts from the prototype head multiplied
    /// by the factor, the body as it was; a run with a factor trains another model, a run with
    /// 1 the same bits as one without; a factor that is not a positive number, or one without
    /// the prototype start, is refused.
    #[test]
    fn prototype_scale_multiplies_the_started_head_alone() {
        use crate::data::Split;
        use crate::tasks::OmniglotTasks;
        let data = std::sync::Arc::new(crate::tasks::omniglot::test_data().subset(60).unwrap());
        let fam = OmniglotTasks::new(&data, Split::Paper, 0, 5, 4).unwrap();
        let base = Config {
            iters: 3,
            meta_batch: 2,
            head_start: HeadStart::Prototypes,
            proto_shots: Some(1),
            ..Config::omniglot(5)
        };
        assert_eq!(base.prototype_scale, 1.0);
        let scaled = Config {
            prototype_scale: 0.25,
            ..base.clone()
        };
        let init = fam.init_params(0).unwrap();
        let started = |cfg: &Config| {
            let mut w = workers(&fam, cfg, &init).unwrap().remove(0);
            let mut rng = tasks::rng(0, Stream::Train, 0);
            w.task = Some(fam.train_task(&mut rng, cfg.shots).unwrap());
            Carried::new(cfg).start(&mut w, &init).unwrap();
            w.learner.params().to_vec()
        };
        let (plain, times) = (started(&base), started(&scaled));
        let head = 5 * (fam.arch().shapes().unwrap()[fam.arch().layers.len() - 1].len() + 1);
        let n = init.len();
        // (The start also sets the norm layers' statistics, the same with and without a scale.)
        assert_eq!(times[..n - head], plain[..n - head]);
        assert_ne!(
            plain[n - head..],
            init[n - head..],
            "started from prototypes"
        );
        for (a, b) in times[n - head..].iter().zip(&plain[n - head..]) {
            assert_eq!(*a, b * 0.25);
        }

        let run = |cfg: &Config| train(&fam, cfg, |_, _| {}).unwrap().params;
        let one = run(&base);
        assert_ne!(run(&scaled), one);
        assert_eq!(
            run(&Config {
                prototype_scale: 1.0,
                ..scaled.clone()
            }),
            one
        );

        for bad in [0.0, -0.5, f32::NAN, f32::INFINITY] {
            let e = Config {
                prototype_scale: bad,
                ..base.clone()
            }
            .validate()
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("--prototype-scale must be a finite number > 0"),
                "{e}"
            );
        }
        let e = Config {
            head_start: HeadStart::Meta,
            proto_shots: None,
            ..scaled
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs --head-start prototypes"), "{e}");
    }

    /// A run interrupted at a checkpoint and resumed from it ends with the same bits as an
    /// uninterrupted one, for a stateless (Reptile, batched) and stateful (joint with Adam;
    /// Reptile and FOMAML keeping the inner Adam's state) algorithms.
    #[test]
    fn resuming_gives_the_same_bits() {
        use crate::tasks::Sine;
        for cfg in [
            Config {
                iters: 30,
                meta_batch: 3,
                ..Config::sine()
            },
            Config {
                iters: 30,
                algo: Algo::Joint,
                inner_opt: InnerOpt::Adam,
                inner_lr: 1e-3,
                ..Config::sine()
            },
            Config {
                iters: 30,
                meta_batch: 3,
                inner_opt: InnerOpt::Adam,
                inner_state: InnerState::Keep,
                inner_lr: 1e-3,
                ..Config::sine()
            },
            Config {
                iters: 30,
                meta_batch: 2,
                algo: Algo::Fomaml,
                inner_opt: InnerOpt::Adam,
                inner_state: InnerState::Keep,
                inner_lr: 1e-3,
                ..Config::sine()
            },
        ] {
            let full = train(&Sine::default(), &cfg, |_, _| {}).unwrap().params;
            let mut saved = None;
            let stopped = train_resumable(
                &Sine::default(),
                &cfg,
                None,
                |d| d % 7 == 0,
                |t, _, s| {
                    if let Some(s) = s {
                        saved = Some(s.clone());
                        if t + 1 == 14 {
                            bail!("stop");
                        }
                    }
                    Ok(())
                },
            );
            assert!(stopped.is_err());
            let state = saved.unwrap();
            assert_eq!(state.iteration, 14);
            let mut seen = Vec::new();
            let resumed = train_resumable(
                &Sine::default(),
                &cfg,
                Some(state),
                |_| false,
                |t, _, s| {
                    seen.push((t, s.map(|s| s.iteration)));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(resumed.params, full, "{:?}", cfg.algo);
            assert_eq!(seen.first(), Some(&(14, None)));
            assert_eq!(seen.last(), Some(&(29, Some(30))));
        }
    }

    /// `--inner-state keep`: the inner Adam's state survives from task to task (so training
    /// differs from resetting it), ends as the mean of the meta-batch's states after
    /// `iters × inner_steps` steps, and needs Adam and Reptile or FOMAML.
    #[test]
    fn kept_inner_state_is_carried() {
        use crate::tasks::Sine;
        let reset = Config {
            iters: 6,
            meta_batch: 2,
            inner_opt: InnerOpt::Adam,
            inner_lr: 1e-3,
            ..Config::sine()
        };
        let keep = Config {
            inner_state: InnerState::Keep,
            ..reset.clone()
        };
        let a = train(&Sine::default(), &reset, |_, _| {}).unwrap();
        let b = train(&Sine::default(), &keep, |_, _| {}).unwrap();
        assert_eq!(a.state, AlgoState::default());
        assert_eq!(b.state.steps, 6 * 5);
        assert_eq!(b.state.values.len(), a.params.len());
        assert!(
            b.state.values.iter().all(|&v| v >= 0.0) && b.state.values.iter().any(|&v| v > 0.0)
        );
        assert_ne!(a.params, b.params);
        for bad in [
            Config {
                inner_opt: InnerOpt::Sgd,
                ..keep.clone()
            },
            Config {
                algo: Algo::Joint,
                ..keep.clone()
            },
        ] {
            let e = train(&Sine::default(), &bad, |_, _| {})
                .unwrap_err()
                .to_string();
            assert!(e.contains("--inner-state keep"), "{e}");
        }
    }
}
