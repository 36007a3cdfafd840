//! The Omniglot recipe, `anole train omniglot`: the paper's N-way recipe (Appendix A) on the
//! training characters of a split, evaluated by the accuracy of N-way K-shot episodes of the
//! held-out characters (full adaptation with the device's and the transductive normalisation,
//! head-only adaptation; the f16 copy checked on fewer episodes; with a kept inner optimizer
//! state, also adapting from it).

use super::{OmniglotTasks, Protocol, NAME};
use crate::calibrate::STATISTICS_TASKS;
use crate::card::TrainingBudget;
use crate::data::omniglot::{Classes, Omniglot, Split};
use crate::fewshot::{self, AdaptMode, FewShotConfig, FewShotReport, NormMode};
use crate::meta::{Config, HeadStart};
use crate::progress;
use crate::stats::{decimal, last_percent, recent};
use crate::tasks::recipe::{
    defaults_help, inner_flags, run_flags, Evaluation, Exported, Prepared, Recipe, TrainOptions,
};
use crate::tasks::TaskFamily;
use anole::{Blob, SharedBlob};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Adaptation steps an Omniglot blob recommends.
const ADAPT_STEPS: u32 = 50;
/// Meta-iterations between checkpoints.
const CHECKPOINT_EVERY: u64 = 1000;
/// The K-shot settings evaluated by default.
pub const EVAL_SHOTS: [usize; 2] = [1, 5];
/// Episodes of the f16 copy's check.
const F16_CHECK_EPISODES: usize = 100;
/// The card's name for the evaluation of `init.postcard` adapting from the kept optimizer
/// state.
const STATE_RUN: &str = "init.postcard + init.adam.postcard";

/// Adaptation minibatch of a `ways`-way blob.
fn adapt_batch(ways: usize) -> usize {
    if ways <= 5 {
        5
    } else {
        10
    }
}

fn train_help() -> String {
    let recipe = |ways| {
        defaults_help(
            &Config::omniglot(ways),
            ADAPT_STEPS,
            &adapt_batch(ways).to_string(),
            CHECKPOINT_EVERY,
        )
    };
    format!(
        "Defaults (the paper's recipe): up to 5 ways: {}\nmore than 5 ways: {}",
        recipe(5),
        recipe(20)
    )
}

/// `anole train omniglot`: N-way K-shot Omniglot character classification (cross-entropy).
#[derive(clap::Args, Debug)]
#[command(after_help = train_help())]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: TrainOptions,
    /// Folder holding images_background.zip and images_evaluation.zip (or the unzipped
    /// folders).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Classes per episode.
    #[arg(long, default_value_t = 5)]
    pub ways: usize,
    /// The K of the K-shot settings the card evaluates, one or a list [1,5] (training uses
    /// --train-shots).
    #[arg(long, value_delimiter = ',')]
    pub shots: Vec<usize>,
    /// Channels of every convolution.
    #[arg(long, default_value_t = 64)]
    pub filters: usize,
    /// How characters divide into training and held-out classes.
    #[arg(long, value_enum, default_value_t = Split::Paper)]
    pub split: Split,
    /// Use only this many characters, spread over the alphabets (quick runs, CI).
    #[arg(long)]
    pub subset: Option<usize>,
    /// Where every training task's inner loop, and the card's full adaptation, start the
    /// classifier head: the meta-learned head, or the class prototypes of the task's support
    /// features (first-order Proto-MAML).
    #[arg(long, value_enum, default_value_t = HeadStart::Meta)]
    pub head_start: HeadStart,
    /// With --head-start prototypes: the training prototypes are the mean features of the
    /// first K training images of each class [all --train-shots of them].
    #[arg(long, value_name = "K")]
    pub proto_shots: Option<usize>,
    /// With --head-start prototypes: multiply the head started from prototypes (its weights
    /// and biases, so its logits) by S before every training task's inner steps and the
    /// card's adaptation (the unscaled logits saturate the softmax; see docs/experiments.md).
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub prototype_scale: f32,
    /// Hold this many training characters out of meta-training for meta-validation (never
    /// test characters); listed in the card.
    #[arg(long, default_value_t = 0)]
    pub val_chars: usize,
    /// The classes of a training episode: any training classes, or those of one alphabet.
    #[arg(long, value_enum, default_value_t = Classes::Any)]
    pub train_classes: Classes,
}

impl TrainArgs {
    /// The K-shot settings evaluated.
    fn eval_ks(&self) -> Vec<usize> {
        if self.shots.is_empty() {
            EVAL_SHOTS.to_vec()
        } else {
            self.shots.clone()
        }
    }
}

impl Recipe for TrainArgs {
    fn options(&self) -> &TrainOptions {
        &self.options
    }

    fn config(&self) -> Result<Config> {
        if self.data.is_none() {
            bail!("omniglot needs --data PATH (the folder holding images_background.zip and images_evaluation.zip)");
        }
        if self.shots.contains(&0) {
            bail!("--shots must be at least 1");
        }
        self.options.check()?;
        let base = Config {
            head_start: self.head_start,
            proto_shots: self.proto_shots,
            prototype_scale: self.prototype_scale,
            ..Config::omniglot(self.ways)
        };
        let cfg = self.options.config(&base);
        if let Some(k) = cfg.proto_shots.filter(|&k| k > cfg.shots) {
            bail!(
                "--proto-shots {k}: a training task has only {} images per class (--train-shots)",
                cfg.shots
            );
        }
        Ok(cfg)
    }

    fn adapt_steps(&self) -> u32 {
        self.options.adapt_steps.unwrap_or(ADAPT_STEPS)
    }

    fn adapt_batch(&self, _cfg: &Config) -> usize {
        self.options.adapt_batch.unwrap_or(adapt_batch(self.ways))
    }

    fn checkpoint_every(&self) -> u64 {
        self.options.checkpoint_every.unwrap_or(CHECKPOINT_EVERY)
    }

    fn command(&self, cfg: &Config, out: &Path) -> String {
        let o = &self.options;
        let ks: Vec<String> = self.eval_ks().iter().map(|k| k.to_string()).collect();
        let data = self
            .data
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let mut s = format!(
            "anole train {NAME} --data {data} --out {} --ways {} --shots {} --filters {} --split {} {} \
             --train-shots {} {} --adapt-batch {} --eval-tasks {}",
            out.display(),
            self.ways,
            ks.join(","),
            self.filters,
            self.split,
            run_flags(cfg),
            cfg.shots,
            inner_flags(cfg, o.dtype, self.adapt_steps()),
            self.adapt_batch(cfg),
            o.eval_tasks,
        );
        if let Some(n) = self.subset {
            s.push_str(&format!(" --subset {n}"));
        }
        s.push_str(&format!(" --inner-state {}", cfg.inner_state.as_str()));
        // Options off by default are written only when set, so older commands stay valid.
        if cfg.head_start != HeadStart::Meta {
            s.push_str(&format!(" --head-start {}", cfg.head_start.as_str()));
        }
        if let Some(k) = cfg.proto_shots {
            s.push_str(&format!(" --proto-shots {k}"));
        }
        if cfg.prototype_scale != 1.0 {
            s.push_str(&format!(" --prototype-scale {}", cfg.prototype_scale));
        }
        if self.val_chars > 0 {
            s.push_str(&format!(" --val-chars {}", self.val_chars));
        }
        if self.train_classes != Classes::Any {
            s.push_str(&format!(" --train-classes {}", self.train_classes));
        }
        s
    }

    fn prepare(&self, cfg: &Config) -> Result<Box<dyn Prepared + '_>> {
        let path = self
            .data
            .as_ref()
            .ok_or_else(|| anyhow!("omniglot needs --data PATH"))?;
        let mut data = Omniglot::load(path)?;
        if let Some(n) = self.subset {
            data = data.subset(n)?;
        }
        let data = Arc::new(data);
        let splits = data.split_with_validation(self.split, cfg.seed, self.val_chars)?;
        let validation = splits.validation.character_names();
        let tasks =
            OmniglotTasks::from_pools(Some(splits.train), splits.test, self.ways, self.filters)?
                .with_train_classes(self.train_classes);
        Ok(Box::new(OmniglotRun {
            args: self,
            characters: data.characters().len(),
            tasks,
            validation,
        }))
    }
}

/// An Omniglot run: its episodes and what its card records about the data.
struct OmniglotRun<'a> {
    args: &'a TrainArgs,
    /// Characters loaded.
    characters: usize,
    tasks: OmniglotTasks,
    /// The meta-validation characters, `alphabet/character`, sorted.
    validation: Vec<String>,
}

/// The Omniglot family's section of card.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardSection {
    /// Classes per episode.
    pub ways: usize,
    /// Channels of every convolution.
    pub filters: usize,
    /// The characters trained on and held out.
    pub data: DataSection,
    /// Where the blob's stored normalisation statistics come from.
    pub stored_statistics: String,
    /// Meta-training throughput.
    pub training_budget: TrainingBudget,
    /// Meta-training losses and accuracy over the last 1% of the run.
    pub meta_train_last_1pct: TrainTail,
    /// Where every training task's inner loop and the evaluation's full adaptation started
    /// the head (left out when the meta-learned head).
    #[serde(default, skip_serializing_if = "HeadStart::is_meta")]
    pub head_start: HeadStart,
    /// `--proto-shots`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto_shots: Option<usize>,
    /// `--prototype-scale`: the factor on the prototype-started head in training and in the
    /// evaluation (left out when 1).
    #[serde(default = "fewshot::one", skip_serializing_if = "fewshot::is_one")]
    pub prototype_scale: f64,
    /// Per evaluated blob (and adaptation start): one report per K-shot setting.
    pub results: BTreeMap<String, Vec<FewShotReport>>,
    /// Under `--split lake`: `init.postcard` on Lake et al.'s one-shot challenge (N-way 1-shot
    /// episodes within one held-out alphabet, support and queries from two drawers), as
    /// `anole eval --split lake --protocol lake` measures it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lake_challenge: Option<FewShotReport>,
    /// Wall time of the evaluation, in seconds.
    pub evaluation_wall_time_s: f64,
    /// The held-out characters, `alphabet/character`, sorted.
    pub held_out_characters: Vec<String>,
    /// The meta-validation characters (`--val-chars`), `alphabet/character`, sorted: taken out
    /// of the training characters, never trained on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_characters: Vec<String>,
}

/// The data of an Omniglot run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSection {
    /// The split of the characters.
    pub split: String,
    /// Seed of the split.
    pub split_seed: u64,
    /// Characters loaded.
    pub characters: usize,
    /// `--subset`, if given.
    pub subset: Option<usize>,
    /// What the training classes are.
    pub training_classes: String,
    /// Number of held-out characters.
    pub held_out_characters_count: usize,
    /// Where the classes of a training episode come from (left out when any training
    /// classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_episodes: Option<String>,
}

/// Mean meta-training losses and accuracy over the last 1% of a run (at least 64
/// meta-iterations, so that accuracies were measured).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainTail {
    /// Loss of the first inner minibatch.
    pub loss_before_inner_steps: f32,
    /// Loss of the last inner minibatch.
    pub loss_last_inner_minibatch: f32,
    /// Accuracy on the last inner minibatch.
    pub accuracy_last_inner_minibatch: Option<f32>,
}

impl OmniglotRun<'_> {
    /// Every blob from a fresh optimizer (what a device given the blob alone does), K-shot for
    /// every K asked: the f32 blob in every setting, the f16 copy, as a check, with the device's
    /// scheme on at most [`F16_CHECK_EPISODES`] of the same episodes; with a kept inner state,
    /// the f32 blob once more, fully adapted, from that state.
    fn reports(&self, run: &Exported<'_>) -> Result<Vec<(String, FewShotReport)>> {
        let mut runs: Vec<(&str, &SharedBlob, Option<&Blob<'_>>)> = run
            .blobs
            .iter()
            .map(|(name, blob)| (*name, blob, None))
            .collect();
        if let Some(st) = run.optimizer_state {
            runs.push((STATE_RUN, &run.blobs[0].1, Some(st.blob())));
        }
        let episodes = self.args.options.eval_tasks;
        let mut reports = Vec::new();
        for (name, blob, state) in runs {
            let f32_blob = name != "init.f16.postcard";
            for k in self.args.eval_ks() {
                let n = if f32_blob {
                    episodes
                } else {
                    episodes.min(F16_CHECK_EPISODES)
                };
                let cfg = FewShotConfig {
                    norm: if f32_blob {
                        NormMode::Both
                    } else {
                        NormMode::Device
                    },
                    adapt: if name == "init.postcard" {
                        AdaptMode::Both
                    } else {
                        AdaptMode::All
                    },
                    head_start: self.args.head_start,
                    prototype_scale: Some(run.cfg.prototype_scale),
                    ..FewShotConfig::card(n, k, run.adapt_steps)
                };
                let bar = progress::bar(cfg.episodes as u64, &format!("{k}-shot"));
                let report = fewshot::evaluate_from_state(blob, state, &self.tasks, &cfg, &bar)
                    .with_context(|| format!("evaluating {name}"))?;
                bar.finish_and_clear();
                reports.push((name.to_string(), report));
            }
        }
        Ok(reports)
    }

    /// Under `--split lake`, `init.postcard` on Lake's one-shot challenge: the card's number
    /// of episodes, one query per class, every layer adapting and the head alone, the device's
    /// normalisation, the start of the run's head. The report (none for another split, or when
    /// the held-out characters cannot make the challenge's episodes, a small `--subset`) and
    /// the lines the results print about it.
    fn lake_challenge(&self, run: &Exported<'_>) -> Result<(Option<FewShotReport>, String)> {
        if self.args.split != Split::Lake {
            return Ok((None, String::new()));
        }
        let (ways, largest) = (self.args.ways, self.tasks.test_pool().largest_alphabet());
        if largest < ways {
            return Ok((
                None,
                format!(
                    "Lake's one-shot challenge not evaluated: {ways}-way episodes within an alphabet need an alphabet of {ways} held-out characters; the largest here has {largest}\n"
                ),
            ));
        }
        let cfg = FewShotConfig {
            adapt: AdaptMode::Both,
            head_start: self.args.head_start,
            prototype_scale: Some(run.cfg.prototype_scale),
            ..FewShotConfig::card(self.args.options.eval_tasks, 1, run.adapt_steps)
        };
        let family = self.tasks.clone().with_protocol(Protocol::Lake);
        let bar = progress::bar(cfg.episodes as u64, "Lake's challenge");
        let report = fewshot::evaluate(&run.blobs[0].1, &family, &cfg, &bar)
            .context("evaluating init.postcard on Lake's one-shot challenge")?;
        bar.finish_and_clear();
        let text = format!(
            "Lake's one-shot challenge, within-alphabet episodes ({}):\n{}{}",
            report.describe(),
            FewShotReport::table_header(),
            report.table_rows()
        );
        Ok((Some(report), text))
    }
}

impl Prepared for OmniglotRun<'_> {
    fn family(&self) -> &dyn TaskFamily {
        &self.tasks
    }

    fn evaluate(&self, run: &Exported<'_>) -> Result<Evaluation> {
        let start = Instant::now();
        let reports = self.reports(run)?;
        let (lake_challenge, lake_text) = self.lake_challenge(run)?;
        let text = table(&reports) + &lake_text;
        let evaluation_wall_time_s = start.elapsed().as_secs_f64();
        let (args, cfg) = (self.args, run.cfg);
        let mut results: BTreeMap<String, Vec<FewShotReport>> = BTreeMap::new();
        for (name, r) in &reports {
            results.entry(name.clone()).or_default().push(r.clone());
        }
        let tail = recent(run.curve, last_percent(run.curve.len()).max(64));
        let held_out = self.tasks.held_out();
        let section = CardSection {
            ways: args.ways,
            filters: args.filters,
            data: DataSection {
                split: args.split.to_string(),
                split_seed: cfg.seed,
                characters: self.characters,
                subset: args.subset,
                training_classes: "training characters × 4 rotations (0°, 90°, 180°, 270°)"
                    .into(),
                held_out_characters_count: held_out.len(),
                training_episodes: (args.train_classes == Classes::Alphabet)
                    .then(|| "the classes of one alphabet per episode".to_string()),
            },
            head_start: args.head_start,
            proto_shots: cfg.proto_shots,
            prototype_scale: decimal(cfg.prototype_scale),
            stored_statistics: format!(
                "the initialization's norm statistics are those of {} images of {STATISTICS_TASKS} training tasks; used when predicting without adaptation and by head-only adaptation",
                STATISTICS_TASKS * cfg.shots * args.ways
            ),
            training_budget: TrainingBudget {
                meta_iterations: cfg.iters,
                wall_time_s: run.train_secs,
                meta_iterations_per_s: run.per_sec,
                threads: rayon::current_num_threads(),
            },
            meta_train_last_1pct: TrainTail {
                loss_before_inner_steps: tail.before,
                loss_last_inner_minibatch: tail.after,
                accuracy_last_inner_minibatch: tail.accuracy,
            },
            results,
            lake_challenge,
            evaluation_wall_time_s,
            held_out_characters: held_out,
            validation_characters: self.validation.clone(),
        };
        Ok(Evaluation {
            section: serde_json::to_value(&section).context("card.json")?,
            files: Vec::new(),
            text,
        })
    }
}

/// The printed results: one row per setting, rows of other blobs than `init.postcard` named.
pub(crate) fn table(reports: &[(String, FewShotReport)]) -> String {
    let mut s = String::new();
    if reports.is_empty() {
        return s;
    }
    s.push_str(&FewShotReport::table_header());
    for (name, r) in reports {
        if name == "init.postcard" {
            s.push_str(&r.table_rows());
        } else {
            for line in r.table_rows().lines() {
                s.push_str(&format!("{line}  ({name})\n"));
            }
        }
    }
    if let Some((_, r)) = reports.first() {
        s.push_str(&format!("({})\n", r.describe()));
    }
    s
}
