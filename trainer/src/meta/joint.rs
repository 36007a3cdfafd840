//! Joint training, the baseline of the Reptile paper: minimise the expected loss over tasks
//! directly. Each meta-iteration takes `inner_steps` updates, each on the first minibatch of
//! `meta_batch` freshly sampled tasks (gradients averaged), so it makes as many gradient
//! evaluations as Reptile. The update is SGD (or Adam with β1 = 0 under `--inner-opt adam`)
//! at the inner learning rate, annealed linearly to 0 like the outer step.

use super::{
    anneal, for_each_worker, sample_tasks, AlgoState, Algorithm, Config, InnerOpt, IterLoss, Worker,
};
use crate::tasks::{TaskFamily, TaskRng};
use anyhow::{Context, Result};

const ADAM_BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

/// Joint training.
pub struct Joint {
    cfg: Config,
    /// Adam's second-moment estimate (empty with SGD).
    v: Vec<f32>,
    /// Updates taken.
    steps: u64,
    /// Mean gradient of the current update.
    g: Vec<f32>,
}

impl Joint {
    /// With the run's hyper-parameters, for `params` parameters.
    pub fn new(cfg: &Config, params: usize) -> Joint {
        let v = if cfg.inner_opt == InnerOpt::Adam {
            vec![0.0; params]
        } else {
            Vec::new()
        };
        Joint {
            cfg: cfg.clone(),
            v,
            steps: 0,
            g: vec![0.0; params],
        }
    }
}

impl Algorithm for Joint {
    fn iteration(
        &mut self,
        t: u64,
        phi: &mut [f32],
        workers: &mut [Worker],
        family: &dyn TaskFamily,
        rng: &mut TaskRng,
    ) -> Result<IterLoss> {
        let cfg = self.cfg.clone();
        let lr = anneal(cfg.inner_lr, t, cfg.iters);
        let n = workers.len() as f32;
        let mut total = 0.0f32;
        for _ in 0..cfg.inner_steps {
            sample_tasks(workers, family, rng, &cfg, t)?;
            let start: &[f32] = phi;
            for_each_worker(workers, |w| {
                w.learner.set_params(start).context("loading parameters")?;
                w.loss.before = w.gradient(0, cfg.inner_batch)?;
                Ok(())
            })?;
            total += workers.iter().map(|w| w.loss.before).sum::<f32>() / n;
            self.steps += 1;
            let bias2 = 1.0 - ADAM_BETA2.powi(self.steps.min(i32::MAX as u64) as i32);
            // Mean gradient over the meta-batch, summed in worker order.
            self.g.fill(0.0);
            for w in workers.iter() {
                for (g, &o) in self.g.iter_mut().zip(&w.out) {
                    *g += o;
                }
            }
            match cfg.inner_opt {
                InnerOpt::Sgd => {
                    for (p, &g) in phi.iter_mut().zip(&self.g) {
                        *p -= lr * (g / n);
                    }
                }
                InnerOpt::Adam => {
                    for ((p, &g), v) in phi.iter_mut().zip(&self.g).zip(self.v.iter_mut()) {
                        let g = g / n;
                        *v = ADAM_BETA2 * *v + (1.0 - ADAM_BETA2) * g * g;
                        *p -= lr * g / ((*v / bias2).sqrt() + ADAM_EPS);
                    }
                }
            }
        }
        let l = total / cfg.inner_steps as f32;
        Ok(IterLoss {
            before: l,
            after: l,
            accuracy: None,
        })
    }

    fn state(&self) -> AlgoState {
        AlgoState {
            steps: self.steps,
            values: self.v.clone(),
        }
    }

    fn restore(&mut self, state: &AlgoState) -> Result<()> {
        if state.values.len() != self.v.len() {
            anyhow::bail!(
                "the checkpoint's optimizer state has {} values, expected {}",
                state.values.len(),
                self.v.len()
            );
        }
        self.steps = state.steps;
        self.v.clone_from(&state.values);
        Ok(())
    }
}
