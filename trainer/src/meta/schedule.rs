//! The data schedule of the inner loop (the Reptile paper's section 6.3): which of a task's
//! samples make each inner minibatch.
//!
//! - `--minibatches`: `cycle` (the default) takes epochs through the task's samples in the order
//!   they were drawn (random, then repeated); `reshuffle` takes epochs each in a fresh random
//!   order (the paper's cycling; a minibatch may straddle two epochs); `replace` draws every
//!   minibatch afresh (distinct samples within it, independent across minibatches: the paper's
//!   sampling with replacement).
//! - `--tail`: `shared` (the default) draws the last minibatch (the one FOMAML's and MAML's
//!   meta-gradient and Reptile's last step use) from the same samples as the others; `separate`
//!   holds the task's last `--inner-batch` samples out of the earlier minibatches and makes them
//!   the last one, so it is data the inner loop has not trained on.
//!
//! A scheduled task is rearranged once, when it is drawn: its rows become the minibatches one
//! after the other, so minibatch `s` is rows `s·b … s·b + b` and the algorithms read it as
//! before. The default (`cycle`, `shared`) leaves the task as drawn, so existing runs keep their
//! bits; the other schedules draw from their own generator (one stream per task), so the
//! training tasks are the same under every schedule.

use super::Config;
use crate::tasks::{self, Batch, Stream};
use anyhow::{bail, Result};
use rand::seq::SliceRandom;

/// How inner minibatches are drawn from the task's samples.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Minibatches {
    /// Epochs through the samples in the order they were drawn.
    #[default]
    Cycle,
    /// Epochs through the samples, each in a fresh random order.
    Reshuffle,
    /// Every minibatch drawn afresh from all the samples (distinct within a minibatch).
    Replace,
}

impl Minibatches {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Minibatches::Cycle => "cycle",
            Minibatches::Reshuffle => "reshuffle",
            Minibatches::Replace => "replace",
        }
    }
}

/// Where the last inner minibatch comes from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tail {
    /// From the same samples as the other minibatches.
    #[default]
    Shared,
    /// From `--inner-batch` samples held out of the other minibatches.
    Separate,
}

impl Tail {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tail::Shared => "shared",
            Tail::Separate => "separate",
        }
    }
}

/// True when `cfg` uses the default schedule (tasks are used as drawn).
pub fn is_default(cfg: &Config) -> bool {
    cfg.minibatches == Minibatches::Cycle && cfg.tail == Tail::Shared
}

/// Inner steps a task of `cfg` takes: up to the last selected step with `--meta-update`, else
/// `--inner-steps`.
pub fn steps_taken(cfg: &Config) -> usize {
    cfg.meta_update
        .as_ref()
        .map_or(cfg.inner_steps, |m| m.last())
}

/// The row indices of the `steps` minibatches of `size` rows of an `n`-row task under
/// `minibatches` and `tail`, one after the other, drawing from `rng`.
pub fn plan(
    n: usize,
    size: usize,
    steps: usize,
    minibatches: Minibatches,
    tail: Tail,
    rng: &mut tasks::TaskRng,
) -> Result<Vec<usize>> {
    let (pool, inner) = match tail {
        Tail::Shared => (n, steps),
        Tail::Separate => {
            if n <= size {
                bail!(
                    "--tail separate holds --inner-batch {size} samples out of each task, but a \
                     task has only {n}: lower --inner-batch or raise --train-shots"
                );
            }
            (n - size, steps - 1)
        }
    };
    if inner > 0 && pool < size {
        bail!(
            "--minibatches {} with --tail {} draws minibatches of --inner-batch {size} from {pool} \
             samples of each task: lower --inner-batch or raise --train-shots",
            minibatches.as_str(),
            tail.as_str()
        );
    }
    let mut rows = Vec::with_capacity(steps * size);
    match minibatches {
        Minibatches::Cycle => rows.extend((0..inner * size).map(|i| i % pool)),
        Minibatches::Reshuffle => {
            let mut order: Vec<usize> = (0..pool).collect();
            while rows.len() < inner * size {
                order.shuffle(rng);
                let take = (inner * size - rows.len()).min(pool);
                rows.extend_from_slice(&order[..take]);
            }
        }
        Minibatches::Replace => {
            for _ in 0..inner {
                rows.extend(rand::seq::index::sample(rng, pool, size));
            }
        }
    }
    if tail == Tail::Separate {
        rows.extend(pool..n);
    }
    Ok(rows)
}

/// `task` with its rows rearranged into the minibatches of `cfg`'s schedule (task `index` of
/// the run, which picks its generator); unchanged under the default schedule.
pub fn arrange(task: Batch, cfg: &Config, index: u64) -> Result<Batch> {
    if is_default(cfg) {
        return Ok(task);
    }
    let mut rng = tasks::rng(cfg.seed, Stream::Schedule, index);
    let rows = plan(
        task.len(),
        cfg.inner_batch,
        steps_taken(cfg),
        cfg.minibatches,
        cfg.tail,
        &mut rng,
    )?;
    let (il, tl) = (task.inputs.ncols(), task.targets.ncols());
    let (x, y) = (task.input_slice(), task.target_slice());
    let mut inputs = Vec::with_capacity(rows.len() * il);
    let mut targets = Vec::with_capacity(rows.len() * tl);
    for &r in &rows {
        inputs.extend_from_slice(&x[r * il..(r + 1) * il]);
        targets.extend_from_slice(&y[r * tl..(r + 1) * tl]);
    }
    Batch::from_flat(inputs, il, targets, tl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{train, Algo};
    use crate::tasks::Sine;

    fn rng() -> tasks::TaskRng {
        tasks::rng(0, Stream::Schedule, 0)
    }

    #[test]
    fn cycle_with_a_shared_tail_is_the_tasks_order() {
        let rows = plan(7, 3, 4, Minibatches::Cycle, Tail::Shared, &mut rng()).unwrap();
        assert_eq!(rows, vec![0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_separate_tail_is_held_out_of_the_other_minibatches() {
        for m in [
            Minibatches::Cycle,
            Minibatches::Reshuffle,
            Minibatches::Replace,
        ] {
            let rows = plan(50, 10, 6, m, Tail::Separate, &mut rng()).unwrap();
            assert_eq!(rows.len(), 60);
            assert!(rows[..50].iter().all(|&r| r < 40), "{m:?}");
            assert_eq!(&rows[50..], &(40..50).collect::<Vec<_>>()[..]);
        }
        // One step: the held-out samples are the only minibatch.
        let rows = plan(50, 10, 1, Minibatches::Replace, Tail::Separate, &mut rng()).unwrap();
        assert_eq!(rows, (40..50).collect::<Vec<_>>());
    }

    #[test]
    fn reshuffling_visits_every_sample_once_per_epoch() {
        let rows = plan(20, 5, 8, Minibatches::Reshuffle, Tail::Shared, &mut rng()).unwrap();
        for epoch in rows.chunks(20) {
            let mut e = epoch.to_vec();
            e.sort_unstable();
            assert_eq!(e, (0..20).collect::<Vec<_>>());
        }
        assert_ne!(&rows[..20], &rows[20..]);
        assert_ne!(rows[..20], (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn replacement_draws_distinct_samples_within_a_minibatch() {
        let rows = plan(20, 5, 40, Minibatches::Replace, Tail::Shared, &mut rng()).unwrap();
        for b in rows.chunks(5) {
            let mut b = b.to_vec();
            b.sort_unstable();
            b.dedup();
            assert_eq!(b.len(), 5);
        }
        // Not epochs: over 8 minibatches' worth of one epoch's size, some sample repeats.
        let mut first = rows[..20].to_vec();
        first.sort_unstable();
        first.dedup();
        assert!(first.len() < 20);
    }

    #[test]
    fn refuses_minibatches_the_task_cannot_fill() {
        let e = plan(10, 10, 4, Minibatches::Cycle, Tail::Separate, &mut rng())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tail separate") && e.contains("10"), "{e}");
        let e = plan(15, 10, 4, Minibatches::Replace, Tail::Separate, &mut rng())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--inner-batch 10 from 5"), "{e}");
        assert!(plan(25, 10, 4, Minibatches::Replace, Tail::Separate, &mut rng()).is_ok());
        let e = plan(8, 10, 4, Minibatches::Reshuffle, Tail::Shared, &mut rng())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--minibatches reshuffle"), "{e}");
    }

    fn run(cfg: Config) -> Vec<f32> {
        train(&Sine::default(), &cfg, |_, _| {}).unwrap().params
    }

    /// Spelling out the default schedule changes nothing; every other schedule trains
    /// differently, for every algorithm that takes inner steps, and does not depend on the
    /// thread count.
    #[test]
    fn schedules_change_training_and_the_default_does_not() {
        let base = Config {
            iters: 20,
            meta_batch: 2,
            inner_steps: 6,
            ..Config::sine()
        };
        for algo in [Algo::Reptile, Algo::Fomaml, Algo::Maml] {
            let cfg = Config {
                algo,
                ..base.clone()
            };
            let default = run(cfg.clone());
            let mut seen = vec![default.clone()];
            for (minibatches, tail) in [
                (Minibatches::Cycle, Tail::Separate),
                (Minibatches::Reshuffle, Tail::Shared),
                (Minibatches::Replace, Tail::Shared),
                (Minibatches::Replace, Tail::Separate),
            ] {
                let c = Config {
                    minibatches,
                    tail,
                    ..cfg.clone()
                };
                let p = run(c.clone());
                assert!(!seen.contains(&p), "{algo:?} {minibatches:?} {tail:?}");
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap();
                assert_eq!(pool.install(|| run(c)), p);
                seen.push(p);
            }
        }
    }

    /// A separate tail with the default minibatches is the default schedule whenever the
    /// inner steps fit in the samples before the tail (the last minibatch is then fresh data
    /// either way).
    #[test]
    fn a_separate_tail_within_one_epoch_is_the_default() {
        let cfg = Config {
            iters: 20,
            algo: Algo::Fomaml,
            ..Config::sine()
        };
        assert_eq!(cfg.inner_steps * cfg.inner_batch, cfg.shots);
        let separate = Config {
            tail: Tail::Separate,
            ..cfg.clone()
        };
        assert_eq!(run(separate), run(cfg));
    }
}
