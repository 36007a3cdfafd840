//! Meta-updates from combinations of the inner updates (the Reptile paper's section 6.2): on each
//! task, take inner optimizer steps 1 … max(S) and sum the updates of the steps in S, e.g. `g4`
//! (the last of four: FOMAML-like), `g1+g2+g3+g4` (all four: Reptile), `g2`, `g1+g2`; then
//! φ ← φ + ε_t · mean_i Σ_{s∈S} Δ_{i,s}, with Δ_{i,s} the update step s made on task i (with SGD,
//! −α g_s). Selected with `anole train … --algo reptile --meta-update g1+g2`.

use super::{
    add_mean_update, for_each_worker, mean_loss, sample_tasks, AlgoState, Algorithm, Carried,
    Config, IterLoss, Worker,
};
use crate::tasks::{TaskFamily, TaskRng};
use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// The inner steps whose updates make the meta-update (1-based, increasing, no repeats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaUpdate(Vec<usize>);

impl MetaUpdate {
    /// The selected steps, 1-based, increasing.
    pub fn steps(&self) -> &[usize] {
        &self.0
    }

    /// The last selected step: how many inner steps a task takes.
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(0)
    }

    /// Errors when a step is beyond the run's `inner_steps`.
    pub fn check(&self, inner_steps: usize) -> Result<()> {
        if self.last() > inner_steps {
            bail!(
                "--meta-update {self} uses step {}, but --inner-steps is {inner_steps}",
                self.last()
            );
        }
        Ok(())
    }
}

impl FromStr for MetaUpdate {
    type Err = String;

    /// `g1+g2+g4`: inner steps joined by `+`, each `g` and a number from 1.
    fn from_str(s: &str) -> Result<MetaUpdate, String> {
        let mut v = Vec::new();
        for part in s.split('+') {
            let n = part
                .trim()
                .strip_prefix('g')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| (1..=1 << 16).contains(&n))
                .ok_or_else(|| {
                    format!("`{part}` is not an inner step gN (N from 1), as in g1+g2+g3+g4")
                })?;
            if v.last().is_some_and(|&l| n <= l) {
                return Err(format!(
                    "steps must increase without repeats, as in g1+g2+g3+g4: got `{s}`"
                ));
            }
            v.push(n);
        }
        Ok(MetaUpdate(v))
    }
}

impl fmt::Display for MetaUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "g{s}")?;
        }
        Ok(())
    }
}

/// Reptile's outer loop with the meta-update summed over selected inner steps.
pub struct Combination {
    cfg: Config,
    update: MetaUpdate,
    carried: Carried,
}

impl Combination {
    /// With the run's hyper-parameters and its selection of steps.
    pub fn new(cfg: &Config, update: &MetaUpdate) -> Combination {
        Combination {
            cfg: cfg.clone(),
            update: update.clone(),
            carried: Carried::new(cfg),
        }
    }
}

impl Algorithm for Combination {
    fn iteration(
        &mut self,
        t: u64,
        phi: &mut [f32],
        workers: &mut [Worker],
        family: &dyn TaskFamily,
        rng: &mut TaskRng,
    ) -> Result<IterLoss> {
        let cfg = &self.cfg;
        sample_tasks(workers, family, rng, cfg, t)?;
        let start: &[f32] = phi;
        let carried = &self.carried;
        let steps = self.update.steps();
        let last = self.update.last();
        for_each_worker(workers, |w| {
            carried.start(w, start)?;
            w.out.fill(0.0);
            let mut before = start.to_vec();
            for s in 0..last {
                if s + 1 == last {
                    w.measure_accuracy(s, cfg.inner_batch)?;
                }
                let l = w.step(s, cfg.inner_batch, cfg.inner_lr)?;
                if s == 0 {
                    w.loss.before = l;
                }
                w.loss.after = l;
                let now = w.learner.params();
                if steps.contains(&(s + 1)) {
                    for ((o, &a), &b) in w.out.iter_mut().zip(now).zip(&before) {
                        *o += a - b;
                    }
                }
                before.copy_from_slice(now);
            }
            Ok(())
        })?;
        self.carried.gather(workers);
        add_mean_update(phi, workers, cfg.outer_step(t));
        Ok(mean_loss(workers))
    }

    fn state(&self) -> AlgoState {
        self.carried.state()
    }

    fn restore(&mut self, state: &AlgoState) -> Result<()> {
        self.carried.restore(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{train, Algo};
    use crate::tasks::Sine;

    #[test]
    fn parses_and_prints() {
        let m: MetaUpdate = "g1+g2+g4".parse().unwrap();
        assert_eq!(m.steps(), &[1, 2, 4]);
        assert_eq!(m.to_string(), "g1+g2+g4");
        for bad in ["", "g0", "1+2", "g2+g1", "g1+g1", "g1+", "gx"] {
            assert!(bad.parse::<MetaUpdate>().is_err(), "{bad}");
        }
    }

    fn run(algo: Algo, update: Option<&str>) -> Vec<f32> {
        let cfg = Config {
            algo,
            iters: 30,
            meta_batch: 2,
            inner_steps: 4,
            meta_update: update.map(|u| u.parse().unwrap()),
            ..Config::sine()
        };
        train(&Sine::default(), &cfg, |_, _| {}).unwrap().params
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()))
    }

    /// All steps is Reptile and the last step alone is FOMAML (up to the rounding of the sum
    /// of updates); other selections differ from both.
    #[test]
    fn all_steps_is_reptile_and_the_last_is_fomaml() {
        let reptile = run(Algo::Reptile, None);
        let fomaml = run(Algo::Fomaml, None);
        assert!(close(&run(Algo::Reptile, Some("g1+g2+g3+g4")), &reptile));
        assert!(close(&run(Algo::Reptile, Some("g4")), &fomaml));
        let g12 = run(Algo::Reptile, Some("g1+g2"));
        assert!(!close(&g12, &reptile) && !close(&g12, &fomaml));
    }

    #[test]
    fn refuses_steps_beyond_the_inner_loop_and_other_algorithms() {
        let cfg = Config {
            inner_steps: 3,
            meta_update: Some("g4".parse().unwrap()),
            ..Config::sine()
        };
        let e = train(&Sine::default(), &cfg, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--meta-update g4") && e.contains("--inner-steps"),
            "{e}"
        );
        let cfg = Config {
            algo: Algo::Fomaml,
            meta_update: Some("g1".parse().unwrap()),
            ..Config::sine()
        };
        let e = train(&Sine::default(), &cfg, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("--meta-update") && e.contains("reptile"), "{e}");
    }
}
