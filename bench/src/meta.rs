//! Meta-training throughput of the trainer (`anole_trainer::meta::train`, the code behind
//! `anole train`) with the paper's recipes, in meta-iterations per second.

use crate::timing::median;
use anole_trainer::data::omniglot::{Omniglot, Split};
use anole_trainer::meta::{self, Config};
use anole_trainer::tasks::{OmniglotTasks, Sine, TaskFamily};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Meta-iterations per second of `meta::train` on `family` with `cfg`, the median of `runs`
/// timed runs after one untimed warm-up run of a tenth of the iterations.
fn rate(family: &dyn TaskFamily, cfg: &Config, runs: usize) -> Result<f64> {
    let warm = Config {
        iters: (cfg.iters / 10).max(1),
        ..cfg.clone()
    };
    meta::train(family, &warm, |_, _| {}).context("warm-up run")?;
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        meta::train(family, cfg, |_, _| {})?;
        rates.push(cfg.iters as f64 / t.elapsed().as_secs_f64());
    }
    Ok(median(&mut rates))
}

/// The paper's sine recipe (Reptile, one task per meta-iteration: serial, one thread).
pub fn sine(iters: u64, runs: usize) -> Result<f64> {
    let cfg = Config {
        iters,
        ..Config::sine()
    };
    rate(&Sine::default(), &cfg, runs).context("sine meta-training")
}

/// Omniglot loaded from `data` (outside the timing) and split as `anole train omniglot` does.
pub fn omniglot_tasks(data: &Path, ways: usize) -> Result<OmniglotTasks> {
    let data = Arc::new(Omniglot::load(data)?);
    OmniglotTasks::new(&data, Split::Paper, 0, ways, 64)
}

/// The paper's Omniglot 5-way recipe (Reptile, meta-batch 5 in parallel on rayon's threads,
/// 10 shots, 5 inner Adam steps on minibatches of 10 at 1e-3, Adam's state kept across tasks)
/// on real episodes.
pub fn omniglot(tasks: &OmniglotTasks, iters: u64, runs: usize) -> Result<f64> {
    let cfg = Config {
        iters,
        ..Config::omniglot(tasks.ways())
    };
    rate(tasks, &cfg, runs).context("Omniglot meta-training")
}
