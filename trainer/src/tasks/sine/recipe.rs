//! The sine recipe: `anole train sine` (the paper's regression recipe, evaluated by the mean
//! query loss after 0, 1, 8 and N adaptation steps on held-out tasks, with a plot of adapted
//! held-out tasks) and `anole eval` of a sine model.

use super::{Points, Sine, NAME};
use crate::eval::{self, EvalConfig, EvalReport};
use crate::meta::{Config, InnerState};
use crate::stats::{last_percent, recent};
use crate::tasks::recipe::{
    defaults_help, inner_flags, run_flags, EvalOptions, EvalOutput, EvalRecipe, Evaluation,
    Exported, Prepared, Recipe, TrainOptions,
};
use crate::tasks::TaskFamily;
use crate::{plots, progress};
use anole::SharedBlob;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Meta-iterations of the recipe: more than the paper's 30,000, after which the adapted query
/// loss still varies widely from seed to seed (`docs/experiments.md`).
const ITERS: u64 = 100_000;
/// Adaptation steps a sine blob recommends.
const ADAPT_STEPS: u32 = 32;
/// Support points of a held-out task.
const EVAL_SHOTS: usize = 10;
/// Query points of a held-out task (an even grid over [−5, 5]).
const EVAL_QUERIES: usize = 100;
/// Held-out tasks drawn in the card's adaptation plot.
const PLOT_TASKS: usize = 4;

/// The evaluation of `tasks` held-out tasks of seed `seed`: the query loss after 0, 1, 8 and
/// `steps` steps at the blob's learning rate, or `lr`.
fn eval_config(
    tasks: usize,
    shots: usize,
    queries: usize,
    steps: u32,
    seed: u64,
    lr: Option<f32>,
) -> EvalConfig {
    EvalConfig {
        tasks,
        shots,
        queries,
        checkpoints: eval::checkpoints(steps),
        seed,
        lr,
        batch: None,
    }
}

/// The recipe's hyper-parameters: the paper's, run for [`ITERS`] meta-iterations.
fn recipe_config() -> Config {
    Config {
        iters: ITERS,
        ..Config::sine()
    }
}

fn train_help() -> String {
    format!(
        "Defaults (the paper's sine recipe, {ITERS} meta-iterations): {} --points grid",
        defaults_help(&recipe_config(), ADAPT_STEPS, "(as --inner-batch)", 0)
    )
}

/// `anole train sine`: y = a·sin(x + b), a ~ U[0.1, 5], b ~ U[0, 2π], x ∈ [−5, 5] (regression,
/// MSE).
#[derive(clap::Args, Debug)]
#[command(after_help = train_help())]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: TrainOptions,
    /// Points per training task (the same as --train-shots).
    #[arg(long, value_delimiter = ',')]
    pub shots: Vec<usize>,
    /// Inputs of a training task: the paper's even grid over [−5, 5] in a random order drawn
    /// for each task, or x ~ U[−5, 5].
    #[arg(long, value_enum, default_value_t = Points::Grid)]
    pub points: Points,
    /// Support points per held-out task in the evaluation.
    #[arg(long, default_value_t = EVAL_SHOTS)]
    pub eval_shots: usize,
}

impl Recipe for TrainArgs {
    fn options(&self) -> &TrainOptions {
        &self.options
    }

    fn config(&self) -> Result<Config> {
        let o = &self.options;
        if o.inner_state == Some(InnerState::Keep) {
            bail!("--inner-state keep is for the omniglot task family (its evaluation adapts from the kept state)");
        }
        o.check()?;
        let points = match self.shots.as_slice() {
            [] => None,
            [n] => Some(*n),
            _ => bail!("--shots: sine takes one number of points per task"),
        };
        if points.is_some() && o.train_shots.is_some() {
            bail!("--shots and --train-shots both set the points per sine task: give one");
        }
        let recipe = recipe_config();
        let base = Config {
            shots: points.unwrap_or(recipe.shots),
            ..recipe
        };
        Ok(o.config(&base))
    }

    fn adapt_steps(&self) -> u32 {
        self.options.adapt_steps.unwrap_or(ADAPT_STEPS)
    }

    fn command(&self, cfg: &Config, out: &Path) -> String {
        let o = &self.options;
        let mut s = format!(
            "anole train {NAME} --out {} {} --shots {} --points {} {} --eval-tasks {} --eval-shots {}",
            out.display(),
            run_flags(cfg),
            cfg.shots,
            self.points.as_str(),
            inner_flags(cfg, o.dtype, self.adapt_steps()),
            o.eval_tasks,
            self.eval_shots,
        );
        // Only when given, so that the reference command keeps its form.
        if let Some(b) = o.adapt_batch {
            s.push_str(&format!(" --adapt-batch {b}"));
        }
        s
    }

    fn prepare(&self, _cfg: &Config) -> Result<Box<dyn Prepared + '_>> {
        Ok(Box::new(SineRun {
            args: self,
            family: Sine {
                points: self.points,
            },
        }))
    }
}

/// A sine run: its tasks and its evaluation.
struct SineRun<'a> {
    args: &'a TrainArgs,
    family: Sine,
}

/// The sine family's section of card.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardSection {
    /// Inputs of a training task (`grid` or `uniform`); absent from cards written before
    /// the option existed, whose runs drew them from U[−5, 5].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_points: Option<String>,
    /// Meta-iterations per second.
    pub meta_iterations_per_s: f64,
    /// Worker threads.
    pub threads: usize,
    /// Meta-training losses over the last 1% of the run.
    pub meta_train_loss_last_1pct: LossTail,
    /// Per blob: the held-out query loss after 0, 1, 8 and N adaptation steps.
    pub metrics: BTreeMap<String, EvalReport>,
}

/// Mean meta-training losses over the last 1% of a run (none for a run of 0 iterations).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossTail {
    /// Loss of the first inner minibatch, at the meta-parameters.
    pub before_inner_steps: Option<f32>,
    /// Loss of the last inner minibatch, after the steps before it.
    pub last_inner_minibatch: Option<f32>,
}

impl Prepared for SineRun<'_> {
    fn family(&self) -> &dyn TaskFamily {
        &self.family
    }

    fn evaluate(&self, run: &Exported<'_>) -> Result<Evaluation> {
        // Held-out tasks of seed 0 of the evaluation stream, as `anole eval`.
        let eval_cfg = eval_config(
            self.args.options.eval_tasks,
            self.args.eval_shots,
            EVAL_QUERIES,
            run.adapt_steps,
            0,
            None,
        );
        let mut metrics = BTreeMap::new();
        let mut main_report: Option<EvalReport> = None;
        for (name, blob) in run.blobs {
            let bar = progress::bar(eval_cfg.tasks as u64, "eval");
            let report = eval::evaluate(blob, &self.family, &eval_cfg, &bar)
                .with_context(|| format!("evaluating {name}"))?;
            bar.finish_and_clear();
            metrics.insert(name.to_string(), report.clone());
            main_report.get_or_insert(report);
        }
        let main_report = main_report.ok_or_else(|| anyhow!("internal: no blob evaluated"))?;
        let plot = "adaptation.png";
        plots::sine_adaptation(
            &run.out.join(plot),
            &run.blobs[0].1,
            0,
            self.args.eval_shots,
            run.adapt_steps,
            PLOT_TASKS,
        )?;
        let tail =
            (!run.curve.is_empty()).then(|| recent(run.curve, last_percent(run.curve.len())));
        let section = CardSection {
            training_points: Some(self.args.points.as_str().into()),
            meta_iterations_per_s: run.per_sec,
            threads: rayon::current_num_threads(),
            meta_train_loss_last_1pct: LossTail {
                before_inner_steps: tail.map(|t| t.before),
                last_inner_minibatch: tail.map(|t| t.after),
            },
            metrics,
        };
        Ok(Evaluation {
            section: serde_json::to_value(&section).context("card.json")?,
            files: vec![plot],
            text: main_report.table(),
        })
    }
}

/// `anole eval` of a sine model: no flags of its own.
#[derive(clap::Args, Debug)]
#[group(id = "sine_eval")] // clap names a group after its struct: two `EvalArgs` clash
pub struct EvalArgs {}

impl EvalRecipe for EvalArgs {
    fn given(&self) -> Option<&'static str> {
        None
    }

    fn evaluate(&self, opts: &EvalOptions, path: &Path, blob: &SharedBlob) -> Result<EvalOutput> {
        let shots = match opts.shots.as_slice() {
            [] => EVAL_SHOTS,
            [n] => *n,
            _ => bail!("--shots: sine takes one number of support points"),
        };
        let cfg = eval_config(
            opts.tasks,
            shots,
            opts.queries.unwrap_or(EVAL_QUERIES),
            opts.steps.unwrap_or(blob.blob().settings().steps),
            opts.seed,
            opts.lr,
        );
        let bar = progress::bar(cfg.tasks as u64, "eval");
        let report = eval::evaluate(blob, &Sine::default(), &cfg, &bar)
            .with_context(|| format!("{}", path.display()))?;
        bar.finish_and_clear();
        let mut json = serde_json::to_value(&report)?;
        if let Some(o) = json.as_object_mut() {
            o.insert("model".into(), path.display().to_string().into());
        }
        Ok(EvalOutput {
            json,
            text: format!("{}\n{}", path.display(), report.table()),
        })
    }
}
