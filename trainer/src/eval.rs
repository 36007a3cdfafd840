//! Few-shot evaluation on held-out tasks: adapt a blob on each task's support set through the
//! engine (`Learner::adapt`, exactly as a device would) and measure the query loss (and accuracy
//! for classification) after a list of step counts, with 95% confidence intervals over tasks.

use crate::stats::{self, decimal, Stat};
use crate::tasks::{self, Stream, TaskFamily};
use anole::{LossKind, Options, OwnedLearner, Samples, SharedBlob};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    /// Held-out tasks.
    pub tasks: usize,
    /// Support samples per task (per class for classification).
    pub shots: usize,
    /// Query samples per task (sine: points of the even grid over [−5, 5]).
    pub queries: usize,
    /// Step counts to measure after, ascending (0 = the initialization itself).
    pub checkpoints: Vec<u32>,
    /// Seed of the held-out tasks (their own random stream, disjoint from training's).
    pub seed: u64,
    /// Adaptation learning rate (default: the blob's).
    pub lr: Option<f32>,
    /// Adaptation minibatch (default: the blob's).
    pub batch: Option<usize>,
}

/// 0, 1, 8 and `steps`, those not above `steps`, ascending and without repeats.
pub fn checkpoints(steps: u32) -> Vec<u32> {
    let mut v: Vec<u32> = [0, 1, 8, steps]
        .into_iter()
        .filter(|&s| s <= steps)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Results after one step count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Adaptation steps taken.
    pub steps: u32,
    /// Query loss (MSE for regression, cross-entropy for classification).
    pub loss: Stat,
    /// Query accuracy (classification only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Stat>,
}

/// A full evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Task family.
    pub task: String,
    /// Loss name ("mse" or "cross-entropy").
    pub loss: String,
    /// Held-out tasks.
    pub tasks: usize,
    /// Support samples per task.
    pub shots: usize,
    /// Query samples per task.
    pub queries: usize,
    /// Adaptation learning rate used.
    pub lr: f64,
    /// Adaptation minibatch used.
    pub batch: usize,
    /// Seed of the held-out tasks.
    pub seed: u64,
    /// One entry per step count.
    pub results: Vec<Checkpoint>,
}

impl EvalReport {
    /// The entry after `steps` steps.
    pub fn at(&self, steps: u32) -> Option<&Checkpoint> {
        self.results.iter().find(|c| c.steps == steps)
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} tasks of {}, {} support / {} query samples each, lr {}, batch {}, seed {}\n",
            self.tasks, self.task, self.shots, self.queries, self.lr, self.batch, self.seed
        );
        let acc = self.results.iter().any(|c| c.accuracy.is_some());
        s.push_str(&format!(
            "{:>6}  {:>22}",
            "steps",
            format!("{} (±95% CI)", self.loss)
        ));
        if acc {
            s.push_str(&format!("  {:>22}", "accuracy (±95% CI)"));
        }
        s.push('\n');
        for c in &self.results {
            s.push_str(&format!(
                "{:>6}  {:>22}",
                c.steps,
                format!("{:.4} ± {:.4}", c.loss.mean, c.loss.ci95)
            ));
            if let Some(a) = c.accuracy {
                s.push_str(&format!(
                    "  {:>22}",
                    format!("{:.2}% ± {:.2}%", 100.0 * a.mean, 100.0 * a.ci95)
                ));
            }
            s.push('\n');
        }
        s
    }
}

/// Evaluate `shared` on `cfg.tasks` held-out tasks of `family`; tasks run in parallel, each
/// thread with its own learner, and `progress` advances once per task.
pub fn evaluate(
    shared: &SharedBlob,
    family: &dyn TaskFamily,
    cfg: &EvalConfig,
    progress: &ProgressBar,
) -> Result<EvalReport> {
    let blob = shared.blob();
    if cfg.tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    if cfg.shots == 0 {
        bail!("--shots must be at least 1");
    }
    if cfg.queries == 0 {
        bail!("--queries must be at least 1");
    }
    let arch = crate::model::Arch::of(blob);
    if arch != family.arch() {
        bail!(
            "the model's architecture does not match the {} task family's",
            family.name()
        );
    }
    if blob.loss != family.loss() {
        bail!(
            "the model's loss does not match the {} task family's",
            family.name()
        );
    }
    let mut opts = Options::from_blob(blob);
    if let Some(lr) = cfg.lr {
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("--lr must be a finite number >= 0, got {lr}");
        }
        opts.lr = lr;
    }
    if let Some(b) = cfg.batch {
        opts.batch = b;
    }
    let learner = OwnedLearner::with_options(shared, opts).context("model")?;
    let classify = blob.loss == LossKind::CrossEntropy;
    let per_task: Vec<Result<Vec<(f64, f64)>>> = (0..cfg.tasks)
        .into_par_iter()
        .map_init(
            || learner.clone(),
            |learner, i| {
                let r = eval_task(learner, family, cfg, classify, i)
                    .with_context(|| format!("held-out task {}", i + 1));
                progress.inc(1);
                r
            },
        )
        .collect();
    let mut losses = vec![Vec::with_capacity(cfg.tasks); cfg.checkpoints.len()];
    let mut accs = vec![Vec::with_capacity(cfg.tasks); cfg.checkpoints.len()];
    for r in per_task {
        for (k, (l, a)) in r?.into_iter().enumerate() {
            losses[k].push(l);
            accs[k].push(a);
        }
    }
    let results = cfg
        .checkpoints
        .iter()
        .enumerate()
        .map(|(k, &steps)| Checkpoint {
            steps,
            loss: Stat::of(&losses[k]),
            accuracy: classify.then(|| Stat::of(&accs[k])),
        })
        .collect();
    Ok(EvalReport {
        task: family.name().to_string(),
        loss: if classify { "cross-entropy" } else { "mse" }.to_string(),
        tasks: cfg.tasks,
        shots: cfg.shots,
        queries: cfg.queries,
        lr: decimal(opts.lr),
        batch: opts.batch,
        seed: cfg.seed,
        results,
    })
}

/// Query (loss, accuracy) of held-out task `i` after each checkpoint's number of steps, every
/// one adapted by `learner` from the initialization.
fn eval_task(
    learner: &mut OwnedLearner,
    family: &dyn TaskFamily,
    cfg: &EvalConfig,
    classify: bool,
    i: usize,
) -> Result<Vec<(f64, f64)>> {
    let episode = family.eval_task(
        &mut tasks::rng(cfg.seed, Stream::Eval, i as u64),
        cfg.shots,
        cfg.queries,
    )?;
    let support = episode.support.samples()?;
    let query = episode.query.samples()?;
    learner.reset();
    let (batch, outputs) = (learner.options().batch, learner.blob().output_len());
    let mut out = Vec::new();
    let mut preds = vec![
        0.0f32;
        if classify {
            episode.query.len() * outputs
        } else {
            0
        }
    ];
    // When the support set fits in one minibatch every step uses all of it, so adapting on from
    // the previous checkpoint equals adapting from the initialization; otherwise start over.
    let incremental = support.len() <= batch;
    let mut taken = 0;
    for &steps in &cfg.checkpoints {
        if !incremental || steps < taken {
            learner.reset();
            taken = 0;
        }
        if steps > taken {
            learner
                .adapt(&support, steps - taken)
                .with_context(|| format!("adapting {steps} steps"))?;
            taken = steps;
        }
        let loss = learner.loss(&query).context("query loss")? as f64;
        let acc = if classify {
            learner
                .predict(episode.query.input_slice(), &mut preds)
                .context("predict")?;
            stats::accuracy(&preds, episode.query.target_slice(), outputs)
        } else {
            0.0
        };
        out.push((loss, acc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_lists() {
        assert_eq!(checkpoints(32), vec![0, 1, 8, 32]);
        assert_eq!(checkpoints(8), vec![0, 1, 8]);
        assert_eq!(checkpoints(5), vec![0, 1, 5]);
        assert_eq!(checkpoints(0), vec![0]);
    }
}
