//! The CSV recipe, `anole train csv`: meta-train on the user's CSV tasks, from `--arch` or the
//! weights of `--init`, evaluated on held-out tasks by the query loss (and accuracy) after 0, 1,
//! 8 and N adaptation steps on K support rows of each.

use super::{holdout, CsvTasks, Tables, Task, NAME};
use crate::csvio::{LABEL, MAX_CLASSES};
use crate::eval::{self, EvalConfig, EvalReport};
use crate::meta::{Config, InnerState};
use crate::progress;
use crate::stats::{last_percent, recent};
use crate::tasks::recipe::{
    defaults_help, inner_flags, run_flags, Evaluation, Exported, Prepared, Recipe, TrainOptions,
};
use crate::tasks::sine::recipe::LossTail;
use crate::tasks::start::{output_len, parse_arch, Init, OwnArgs};
use crate::tasks::TaskFamily;
use anole::LossKind;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Hidden layers of the default network (`dense:64,tanh,dense:64,tanh,dense:OUT`).
const HIDDEN: &str = "dense:64,tanh,dense:64,tanh";
/// Adaptation steps a regression blob recommends.
const ADAPT_STEPS_MSE: u32 = 32;
/// Adaptation steps a classification blob recommends.
const ADAPT_STEPS_XENT: u32 = 50;
/// Support rows of a held-out regression task.
const EVAL_SHOTS_MSE: usize = 10;
/// Support rows per class of a held-out classification task.
const EVAL_SHOTS_XENT: usize = 5;

/// The starting recipe of a regression family: the paper's sine recipe with 10,000
/// meta-iterations.
fn regression_recipe() -> Config {
    Config {
        iters: 10_000,
        ..Config::sine()
    }
}

/// The starting recipe of a classification family: the paper's 5-way Omniglot inner loop
/// (Adam with β1 = 0, state reset per task, as the device adapts) with 10,000 meta-iterations.
fn classification_recipe() -> Config {
    Config {
        iters: 10_000,
        inner_state: InnerState::Reset,
        ..Config::omniglot(5)
    }
}

fn train_help() -> String {
    format!(
        "Defaults: regression (MSE): {}\nclassification (a 'label' column): {}\n\
         --arch: layers separated by commas: dense:N, tanh, relu, conv:C[:K:S:P], norm, \
         maxpool:K[:S], flatten [default: {HIDDEN},dense:OUT]",
        defaults_help(
            &regression_recipe(),
            ADAPT_STEPS_MSE,
            "(as --inner-batch)",
            0
        ),
        defaults_help(
            &classification_recipe(),
            ADAPT_STEPS_XENT,
            "(as --inner-batch)",
            0
        ),
    )
}

/// `anole train csv`: meta-train on your own tasks, one CSV file per task.
#[derive(clap::Args, Debug)]
#[command(after_help = train_help())]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: TrainOptions,
    /// A folder of CSV files, one per task, with the same header: input columns, then target
    /// columns (regression) or one integer `label` column (classification); or one CSV file
    /// with a `task` column naming each row's task.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub own: OwnArgs,
    /// Support rows (per class for classification) of each held-out task in the evaluation;
    /// the rest of the task is the query set [regression 10, classification 5].
    #[arg(long)]
    pub eval_shots: Option<usize>,
    /// Regression: the number of target columns (the last ones) [the model's outputs, else 1].
    #[arg(long)]
    pub targets: Option<usize>,
    /// Classification: classes per episode, drawn from each task's classes and numbered 0..N
    /// in random order [every class keeps its label].
    #[arg(long)]
    pub ways: Option<usize>,
    /// The data and model, read once.
    #[arg(skip)]
    loaded: OnceLock<Box<Loaded>>,
}

/// What `--data`, `--eval-data`, `--arch` and `--init` give.
#[derive(Debug)]
struct Loaded {
    tasks: CsvTasks,
    input_names: Vec<String>,
    target_names: Vec<String>,
    /// How the run starts, for the card.
    start: String,
}

impl TrainArgs {
    fn classify(&self) -> Result<bool> {
        Ok(self.loaded()?.tasks.loss() == LossKind::CrossEntropy)
    }

    fn eval_shots(&self) -> Result<usize> {
        Ok(self.eval_shots.unwrap_or(if self.classify()? {
            EVAL_SHOTS_XENT
        } else {
            EVAL_SHOTS_MSE
        }))
    }

    fn loaded(&self) -> Result<&Loaded> {
        if let Some(l) = self.loaded.get() {
            return Ok(l);
        }
        let l = self.load()?;
        Ok(self.loaded.get_or_init(|| Box::new(l)))
    }

    /// Read the tasks and the starting model, and check that they fit each other.
    fn load(&self) -> Result<Loaded> {
        self.own.check()?;
        if self.eval_shots == Some(0) {
            bail!("--eval-shots must be at least 1");
        }
        let tables = Tables::read(&self.data)?;
        let eval_tables = self
            .own
            .eval_data
            .as_deref()
            .map(Tables::read)
            .transpose()?;
        let first = tables.tasks[0].1.clone();
        let f = first.display();
        if let Some(e) = &eval_tables {
            if e.header != tables.header {
                bail!(
                    "{}: row 1: header '{}' differs from {f}'s '{}' (held-out tasks have the training tasks' columns)",
                    e.tasks[0].1.display(),
                    e.header.join(","),
                    tables.header.join(",")
                );
            }
        }
        let init = self.own.init.as_deref().map(Init::read).transpose()?;
        let classify = tables.header.last().is_some_and(|h| h == LABEL);
        if !classify && self.ways.is_some() {
            bail!(
                "--ways is for classification: {f}: row 1 has no '{}' column last",
                LABEL
            );
        }
        if classify && self.targets.is_some() {
            bail!(
                "--targets is for regression: {f}: row 1 ends with a '{}' column",
                LABEL
            );
        }
        if let Some(w) = self.ways {
            if w < 2 {
                bail!("--ways must be at least 2, got {w}");
            }
        }
        // The model's output width, where the model is given.
        let model_out = match (&init, &self.own.arch) {
            (Some(i), _) => Some(output_len(&i.arch)?),
            (None, Some(spec)) => {
                let provisional = tables.header.len().saturating_sub(1).max(1) as u32;
                Some(output_len(&parse_arch(spec, &[provisional])?)?)
            }
            (None, None) => None,
        };
        if let (Some(i), Some(loss)) = (&init, init.as_ref().and_then(|i| i.loss)) {
            let want = if classify {
                LossKind::CrossEntropy
            } else {
                LossKind::Mse
            };
            if loss != want {
                bail!(
                    "{}: a {} model, but {f}: row 1 {}",
                    i.path.display(),
                    if loss == LossKind::Mse {
                        "regression (MSE)"
                    } else {
                        "classification (cross-entropy)"
                    },
                    if classify {
                        "ends with a 'label' column (classification)"
                    } else {
                        "has no 'label' column (regression)"
                    }
                );
            }
        }
        let bound = match (classify, self.ways, model_out) {
            (true, None, Some(n)) => n,
            _ => MAX_CLASSES,
        };
        if let (false, None, Some(n)) = (classify, self.targets, model_out) {
            if n >= tables.header.len() {
                bail!(
                    "{} gives {n} output(s); {f}: row 1 has {} column(s) ('{}'), too few for an input and {n} target(s)",
                    self.own.model_name(),
                    tables.header.len(),
                    tables.header.join(",")
                );
            }
        }
        let columns = tables.columns(self.targets.or(model_out).unwrap_or(1), bound)?;
        let (input_names, target_names) = {
            let (a, b) = tables.header.split_at(columns.inputs);
            (a.to_vec(), b.to_vec())
        };
        let tasks = tables.parse(&columns)?;
        let eval_tasks = eval_tables.map(|e| e.parse(&columns)).transpose()?;
        // The network's output width the data asks for.
        let classes_seen = tasks
            .iter()
            .chain(eval_tasks.iter().flatten())
            .flat_map(|t| t.class_counts().map(|(c, _)| c + 1))
            .max()
            .unwrap_or(0);
        let out = match (classify, self.ways) {
            (false, _) => columns.targets,
            (true, Some(w)) => w,
            (true, None) => model_out.unwrap_or(classes_seen),
        };
        if classify && out < 2 {
            bail!(
                "{f}: the '{}' column holds one class only: classification needs at least 2",
                LABEL
            );
        }
        let (arch, params, start) = match (&init, &self.own.arch) {
            (Some(i), _) => {
                if i.input_len() != columns.inputs {
                    bail!(
                        "{}: the model takes {} inputs; {f}: row 1 has {} input column(s) ('{}')",
                        i.path.display(),
                        i.input_len(),
                        columns.inputs,
                        input_names.join(",")
                    );
                }
                (
                    i.arch.clone(),
                    Some(i.params.clone()),
                    i.description.clone(),
                )
            }
            (None, spec) => {
                let default = format!("{HIDDEN},dense:{out}");
                let spec = spec.as_deref().unwrap_or(&default);
                let arch = parse_arch(spec, &[columns.inputs as u32])?;
                (
                    arch,
                    None,
                    format!("--arch {spec}, initialised with --seed"),
                )
            }
        };
        let got = output_len(&arch)?;
        if got != out {
            let want = match self.ways {
                _ if !classify => format!(
                    "{f}: row 1 has {} target column(s) ('{}'; set --targets to change)",
                    columns.targets,
                    target_names.join(",")
                ),
                Some(w) => format!("--ways {w} needs {w}"),
                None => format!("the '{LABEL}' column has classes 0 to {}", out - 1),
            };
            bail!("{} gives {got} output(s); {want}", self.own.model_name());
        }
        let loss = if classify {
            LossKind::CrossEntropy
        } else {
            LossKind::Mse
        };
        if let Some(w) = self.ways {
            for t in tasks.iter().chain(eval_tasks.iter().flatten()) {
                let n = t.class_counts().count();
                if n < w {
                    let labels: Vec<String> =
                        t.class_counts().map(|(c, _)| c.to_string()).collect();
                    bail!(
                        "{}: {n} class(es) ({}), fewer than --ways {w}",
                        t.place(),
                        labels.join(", ")
                    );
                }
            }
        }
        let (train, test) = match eval_tasks {
            Some(e) => (tasks, e),
            None => holdout(tasks, self.own.holdout(), self.options.seed)
                .with_context(|| format!("{}", self.data.display()))?,
        };
        Ok(Loaded {
            tasks: CsvTasks::new(arch, params, loss, self.ways, train, test)?,
            input_names,
            target_names,
            start,
        })
    }
}

impl Recipe for TrainArgs {
    fn options(&self) -> &TrainOptions {
        &self.options
    }

    fn config(&self) -> Result<Config> {
        self.options.check()?;
        let base = if self.classify()? {
            classification_recipe()
        } else {
            regression_recipe()
        };
        let cfg = self.options.config(&base);
        if cfg.inner_state == InnerState::Keep {
            bail!("--inner-state keep is for the omniglot task family (its evaluation adapts from the kept state)");
        }
        Ok(cfg)
    }

    fn adapt_steps(&self) -> u32 {
        let classify = self.classify().unwrap_or(false);
        self.options.adapt_steps.unwrap_or(if classify {
            ADAPT_STEPS_XENT
        } else {
            ADAPT_STEPS_MSE
        })
    }

    fn command(&self, cfg: &Config, out: &Path) -> String {
        let o = &self.options;
        let mut s = format!(
            "anole train {NAME} --data {} --out {}",
            self.data.display(),
            out.display()
        );
        s.push_str(&self.own.flags());
        if let Some(t) = self.targets {
            s.push_str(&format!(" --targets {t}"));
        }
        if let Some(w) = self.ways {
            s.push_str(&format!(" --ways {w}"));
        }
        s.push_str(&format!(
            " {} --train-shots {} {} --adapt-batch {} --eval-tasks {} --eval-shots {} --inner-state {}",
            run_flags(cfg),
            cfg.shots,
            inner_flags(cfg, o.dtype, self.adapt_steps()),
            self.adapt_batch(cfg),
            o.eval_tasks,
            self.eval_shots().unwrap_or_default(),
            cfg.inner_state.as_str()
        ));
        s
    }

    fn prepare(&self, cfg: &Config) -> Result<Box<dyn Prepared + '_>> {
        let loaded = self.loaded()?;
        let tasks = &loaded.tasks;
        let shots = self.eval_shots()?;
        for t in tasks.train() {
            if t.len() < cfg.inner_batch {
                bail!(
                    "{}: {} rows, fewer than the inner batch ({}): give the task more rows or a smaller --inner-batch",
                    t.place(),
                    t.len(),
                    cfg.inner_batch
                );
            }
        }
        let classify = tasks.loss() == LossKind::CrossEntropy;
        for t in tasks.held_out() {
            check_eval_rows(t, shots, classify)?;
        }
        if self.options.eval_tasks == 0 {
            bail!("--eval-tasks must be at least 1");
        }
        let queries = tasks.max_queries(shots);
        Ok(Box::new(CsvRun {
            args: self,
            loaded,
            shots,
            queries,
        }))
    }
}

/// A held-out task needs the support rows and at least one query row (per class).
fn check_eval_rows(t: &Task, shots: usize, classify: bool) -> Result<()> {
    if classify {
        if let Some((c, n)) = t.class_counts().find(|&(_, n)| n <= shots) {
            bail!(
                "{}: class {c} has {n} row(s); --eval-shots {shots} needs {} per class (the support rows and a query)",
                t.place(),
                shots + 1
            );
        }
    } else if t.len() <= shots {
        bail!(
            "{}: {} row(s); --eval-shots {shots} needs at least {} (the support rows and a query)",
            t.place(),
            t.len(),
            shots + 1
        );
    }
    Ok(())
}

/// A CSV run: its tasks and evaluation.
struct CsvRun<'a> {
    args: &'a TrainArgs,
    loaded: &'a Loaded,
    /// Support rows (per class) of a held-out episode.
    shots: usize,
    /// Most query rows (per class) of a held-out episode: the rest of its task.
    queries: usize,
}

/// The CSV family's section of card.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardSection {
    /// The tasks trained on and held out.
    pub data: DataSection,
    /// The weights meta-training started from.
    pub start: String,
    /// Meta-iterations per second.
    pub meta_iterations_per_s: f64,
    /// Worker threads.
    pub threads: usize,
    /// Meta-training losses over the last 1% of the run.
    pub meta_train_loss_last_1pct: LossTail,
    /// Per blob: the held-out query loss (and accuracy) after 0, 1, 8 and N adaptation steps.
    pub metrics: BTreeMap<String, EvalReport>,
}

/// The data of a CSV run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSection {
    /// `--data`.
    pub path: String,
    /// `--eval-data`, or the `--holdout` share of `--data`.
    pub held_out_from: String,
    /// Input columns.
    pub input_columns: Vec<String>,
    /// Target columns (`["label"]` for classification).
    pub target_columns: Vec<String>,
    /// Classes per episode (`--ways`), if given.
    pub ways: Option<usize>,
    /// Support rows (per class) of a held-out episode; the rest of the task is its query set.
    pub eval_shots: usize,
    /// The training tasks.
    pub training_tasks: Vec<String>,
    /// The held-out tasks.
    pub held_out_tasks: Vec<String>,
}

impl Prepared for CsvRun<'_> {
    fn family(&self) -> &dyn TaskFamily {
        &self.loaded.tasks
    }

    fn evaluate(&self, run: &Exported<'_>) -> Result<Evaluation> {
        let cfg = EvalConfig {
            tasks: self.args.options.eval_tasks,
            shots: self.shots,
            queries: self.queries,
            checkpoints: eval::checkpoints(run.adapt_steps),
            seed: 0,
            lr: None,
            batch: None,
        };
        let mut metrics = BTreeMap::new();
        let mut text = String::new();
        for (name, blob) in run.blobs {
            let bar = progress::bar(cfg.tasks as u64, "eval");
            let report = eval::evaluate(blob, &self.loaded.tasks, &cfg, &bar)
                .with_context(|| format!("evaluating {name}"))?;
            bar.finish_and_clear();
            if text.is_empty() {
                text = report.table();
            }
            metrics.insert(name.to_string(), report);
        }
        let tail =
            (!run.curve.is_empty()).then(|| recent(run.curve, last_percent(run.curve.len())));
        let names = |ts: &[Task]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let args = self.args;
        let section = CardSection {
            data: DataSection {
                path: args.data.display().to_string(),
                held_out_from: args.own.held_out_from(run.cfg.seed),
                input_columns: self.loaded.input_names.clone(),
                target_columns: self.loaded.target_names.clone(),
                ways: args.ways,
                eval_shots: self.shots,
                training_tasks: names(self.loaded.tasks.train()),
                held_out_tasks: names(self.loaded.tasks.held_out()),
            },
            start: self.loaded.start.clone(),
            meta_iterations_per_s: run.per_sec,
            threads: rayon::current_num_threads(),
            meta_train_loss_last_1pct: LossTail {
                before_inner_steps: tail.map(|t| t.before),
                last_inner_minibatch: tail.map(|t| t.after),
            },
            metrics,
        };
        if text.is_empty() {
            return Err(anyhow!("internal: no blob evaluated"));
        }
        Ok(Evaluation {
            section: serde_json::to_value(&section).context("card.json")?,
            files: Vec::new(),
            text,
        })
    }
}
