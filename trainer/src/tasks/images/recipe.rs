//! The image recipe, `anole train images`: N-way K-shot meta-training on the user's class
//! folders with the Omniglot recipe's inner loop, evaluated by the accuracy of N-way K-shot
//! episodes of the held-out classes (full adaptation, the device's normalisation).

use super::{holdout, ImageTasks, NAME};
use crate::data::images::SIDE;
use crate::data::omniglot::{Omniglot, Pool};
use crate::fewshot::{self, FewShotConfig, FewShotReport};
use crate::meta::{Config, InnerState};
use crate::model::Arch;
use crate::progress;
use crate::stats::{last_percent, recent};
use crate::tasks::omniglot::recipe::{table, TrainTail};
use crate::tasks::recipe::{
    defaults_help, inner_flags, run_flags, Evaluation, Exported, Prepared, Recipe, TrainOptions,
};
use crate::tasks::start::{output_len, parse_arch, Init, OwnArgs};
use crate::tasks::TaskFamily;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Adaptation steps an image blob recommends.
const ADAPT_STEPS: u32 = 50;
/// The K-shot settings evaluated by default.
const EVAL_SHOTS: [usize; 2] = [1, 5];
/// Episodes of the f16 copy's check.
const F16_CHECK_EPISODES: usize = 100;

/// The starting recipe: the paper's Omniglot inner loop for `ways` (Adam with β1 = 0, its
/// state reset per task as the device adapts) with 10,000 meta-iterations.
fn recipe(ways: usize) -> Config {
    Config {
        iters: 10_000,
        inner_state: InnerState::Reset,
        ..Config::omniglot(ways)
    }
}

fn train_help() -> String {
    format!(
        "Defaults: up to 5 ways: {}\nmore than 5 ways: {}\n--arch: as for `anole train csv`, on \
         1×28×28 inputs [default: the Omniglot CNN, 4 × conv:FILTERS,norm,relu, then \
         flatten,dense:WAYS]",
        defaults_help(&recipe(5), ADAPT_STEPS, "(as --inner-batch)", 0),
        defaults_help(&recipe(20), ADAPT_STEPS, "(as --inner-batch)", 0)
    )
}

/// `anole train images`: meta-train N-way K-shot classification of your own image classes.
#[derive(clap::Args, Debug)]
#[command(after_help = train_help())]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: TrainOptions,
    /// A folder with one sub-folder of PNG images per class (any size, preprocessed as `anole
    /// adapt` does), or grouped one level deeper: DIR/<group>/<class>/<image>.png.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub own: OwnArgs,
    /// Classes per episode.
    #[arg(long, default_value_t = 5)]
    pub ways: usize,
    /// The K of the K-shot settings the card evaluates, one or a list [1,5] (training uses
    /// --train-shots).
    #[arg(long, value_delimiter = ',')]
    pub shots: Vec<usize>,
    /// Channels of every convolution of the default CNN.
    #[arg(long, default_value_t = 64, conflicts_with_all = ["arch", "init"])]
    pub filters: usize,
    /// Also train on every training class rotated by 90°, 180° and 270° (new classes, as for
    /// Omniglot).
    #[arg(long)]
    pub rotations: bool,
}

impl TrainArgs {
    fn eval_ks(&self) -> Vec<usize> {
        if self.shots.is_empty() {
            EVAL_SHOTS.to_vec()
        } else {
            self.shots.clone()
        }
    }

    /// The network and the weights it starts from, with the card's description.
    fn model(&self) -> Result<(Arch, Option<Vec<f32>>, String)> {
        let input = [1, SIDE as u32, SIDE as u32];
        let (arch, params, start) = match (&self.own.init, &self.own.arch) {
            (Some(path), _) => {
                let init = Init::read(path)?;
                if init.loss == Some(anole::LossKind::Mse) {
                    bail!(
                        "{}: a regression (MSE) model; image families classify (cross-entropy)",
                        path.display()
                    );
                }
                if init.arch.input_shape != input {
                    bail!(
                        "{}: the model takes inputs of shape {:?}; images are preprocessed to {input:?}",
                        path.display(),
                        init.arch.input_shape
                    );
                }
                (init.arch, Some(init.params), init.description)
            }
            (None, Some(spec)) => (
                parse_arch(spec, &input)?,
                None,
                format!("--arch {spec}, initialised with --seed"),
            ),
            (None, None) => (
                Arch::omniglot(self.ways, self.filters),
                None,
                format!(
                    "the Omniglot CNN with {} filters, initialised with --seed",
                    self.filters
                ),
            ),
        };
        let out = output_len(&arch)?;
        if out != self.ways {
            bail!(
                "{} gives {out} output(s); --ways {} needs {}",
                self.own.model_name(),
                self.ways,
                self.ways
            );
        }
        Ok((arch, params, start))
    }

    /// Training and held-out classes.
    fn pools(&self, seed: u64) -> Result<(Pool, Pool)> {
        self.own.check()?;
        let data = Arc::new(Omniglot::load_classes(&self.data)?);
        match &self.own.eval_data {
            Some(e) => {
                let test = Arc::new(Omniglot::load_classes(e)?);
                let all: Vec<usize> = (0..data.characters().len()).collect();
                let held: Vec<usize> = (0..test.characters().len()).collect();
                Ok((
                    data.pool_of(&all, self.rotations),
                    test.pool_of(&held, false),
                ))
            }
            None => holdout(&data, self.own.holdout(), seed, self.rotations)
                .with_context(|| format!("{}", self.data.display())),
        }
    }
}

/// Every class of `pool` needs `need` images; the error names the class folder under `root`.
fn check_images(pool: &Pool, root: &Path, need: usize, why: &str) -> Result<()> {
    for class in pool.classes() {
        let ch = &pool.data().characters()[class.character];
        if ch.len() < need {
            let folder = if ch.alphabet.is_empty() {
                root.join(&ch.character)
            } else {
                root.join(&ch.alphabet).join(&ch.character)
            };
            bail!(
                "{}: {} image(s); {why} needs {need} per class",
                folder.display(),
                ch.len()
            );
        }
    }
    Ok(())
}

impl Recipe for TrainArgs {
    fn options(&self) -> &TrainOptions {
        &self.options
    }

    fn config(&self) -> Result<Config> {
        if self.shots.contains(&0) {
            bail!("--shots must be at least 1");
        }
        self.options.check()?;
        let cfg = self.options.config(&recipe(self.ways));
        if cfg.inner_state == InnerState::Keep {
            bail!("--inner-state keep is for the omniglot task family (its evaluation adapts from the kept state)");
        }
        Ok(cfg)
    }

    fn adapt_steps(&self) -> u32 {
        self.options.adapt_steps.unwrap_or(ADAPT_STEPS)
    }

    fn command(&self, cfg: &Config, out: &Path) -> String {
        let o = &self.options;
        let ks: Vec<String> = self.eval_ks().iter().map(|k| k.to_string()).collect();
        let mut s = format!(
            "anole train {NAME} --data {} --out {}",
            self.data.display(),
            out.display()
        );
        s.push_str(&self.own.flags());
        if self.own.arch.is_none() && self.own.init.is_none() {
            s.push_str(&format!(" --filters {}", self.filters));
        }
        if self.rotations {
            s.push_str(" --rotations");
        }
        s.push_str(&format!(
            " --ways {} --shots {} {} --train-shots {} {} --adapt-batch {} --eval-tasks {} --inner-state {}",
            self.ways,
            ks.join(","),
            run_flags(cfg),
            cfg.shots,
            inner_flags(cfg, o.dtype, self.adapt_steps()),
            self.adapt_batch(cfg),
            o.eval_tasks,
            cfg.inner_state.as_str()
        ));
        s
    }

    fn prepare(&self, cfg: &Config) -> Result<Box<dyn Prepared + '_>> {
        let (arch, init, start) = self.model()?;
        let (train, test) = self.pools(cfg.seed)?;
        let (train_classes, held_out) = (train.len(), test.character_names());
        let tasks = ImageTasks::new(train.clone(), test.clone(), self.ways, arch, init)
            .with_context(|| format!("{}", self.data.display()))?;
        check_images(
            &train,
            &self.data,
            cfg.shots,
            &format!("--train-shots {}", cfg.shots),
        )?;
        let k = self.eval_ks().into_iter().max().unwrap_or(1);
        check_images(
            &test,
            self.own.eval_data.as_deref().unwrap_or(&self.data),
            k + 1,
            &format!("--shots {k} (the support images and a query)"),
        )?;
        Ok(Box::new(ImageRun {
            args: self,
            tasks,
            start,
            train_classes,
            held_out,
        }))
    }
}

/// An image run: its episodes and what its card records about the data.
struct ImageRun<'a> {
    args: &'a TrainArgs,
    tasks: ImageTasks,
    start: String,
    train_classes: usize,
    held_out: Vec<String>,
}

/// The image family's section of card.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardSection {
    /// Classes per episode.
    pub ways: usize,
    /// The classes trained on and held out.
    pub data: DataSection,
    /// The weights meta-training started from.
    pub start: String,
    /// Meta-iterations per second.
    pub meta_iterations_per_s: f64,
    /// Worker threads.
    pub threads: usize,
    /// Meta-training losses and accuracy over the last 1% of the run.
    pub meta_train_last_1pct: TrainTail,
    /// Per evaluated blob: one report per K-shot setting.
    pub results: BTreeMap<String, Vec<FewShotReport>>,
}

/// The data of an image run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSection {
    /// `--data`.
    pub path: String,
    /// `--eval-data`, or the `--holdout` share of `--data`.
    pub held_out_from: String,
    /// Training classes (rotated copies counted).
    pub training_classes: usize,
    /// Whether training classes are also rotated.
    pub rotations: bool,
    /// The held-out classes (`group/class` or `class`), sorted.
    pub held_out_classes: Vec<String>,
}

impl Prepared for ImageRun<'_> {
    fn family(&self) -> &dyn TaskFamily {
        &self.tasks
    }

    fn evaluate(&self, run: &Exported<'_>) -> Result<Evaluation> {
        let args = self.args;
        let mut reports = Vec::new();
        for (name, blob) in run.blobs {
            let f32_blob = *name == "init.postcard";
            for k in args.eval_ks() {
                let episodes = if f32_blob {
                    args.options.eval_tasks
                } else {
                    args.options.eval_tasks.min(F16_CHECK_EPISODES)
                };
                let cfg = FewShotConfig::card(episodes, k, run.adapt_steps);
                let bar = progress::bar(cfg.episodes as u64, &format!("{k}-shot"));
                let report = fewshot::evaluate(blob, &self.tasks, &cfg, &bar)
                    .with_context(|| format!("evaluating {name}"))?;
                bar.finish_and_clear();
                reports.push((name.to_string(), report));
            }
        }
        let mut results: BTreeMap<String, Vec<FewShotReport>> = BTreeMap::new();
        for (name, r) in &reports {
            results.entry(name.clone()).or_default().push(r.clone());
        }
        let tail = recent(run.curve, last_percent(run.curve.len()).max(64));
        let section = CardSection {
            ways: args.ways,
            data: DataSection {
                path: args.data.display().to_string(),
                held_out_from: args.own.held_out_from(run.cfg.seed),
                training_classes: self.train_classes,
                rotations: args.rotations,
                held_out_classes: self.held_out.clone(),
            },
            start: self.start.clone(),
            meta_iterations_per_s: run.per_sec,
            threads: rayon::current_num_threads(),
            meta_train_last_1pct: TrainTail {
                loss_before_inner_steps: tail.before,
                loss_last_inner_minibatch: tail.after,
                accuracy_last_inner_minibatch: tail.accuracy,
            },
            results,
        };
        Ok(Evaluation {
            section: serde_json::to_value(&section).context("card.json")?,
            files: Vec::new(),
            text: table(&reports),
        })
    }
}
