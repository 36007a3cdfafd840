//! First-order MAML: on each task, take `inner_steps − 1` optimizer steps, then compute the
//! gradient g of the last minibatch (rows not yet seen on the first pass) at the adapted
//! parameters. The meta-step is the inner optimizer's update for that minibatch, averaged over
//! the meta-batch and scaled by ε_t: with SGD, φ ← φ − ε_t · α · mean_i g_i; with Adam (β1 = 0),
//! the Adam step the learner takes on that minibatch. Scaling by the inner optimizer's step
//! (as the paper's implementation does) keeps `--outer-lr` comparable with Reptile's.

use super::{
    add_mean_update, for_each_worker, mean_loss, sample_tasks, AlgoState, Algorithm, Carried,
    Config, InnerOpt, IterLoss, Worker,
};
use crate::tasks::{TaskFamily, TaskRng};
use anyhow::Result;

/// First-order MAML.
pub struct Fomaml {
    cfg: Config,
    carried: Carried,
}

impl Fomaml {
    /// With the run's hyper-parameters.
    pub fn new(cfg: &Config) -> Fomaml {
        Fomaml {
            cfg: cfg.clone(),
            carried: Carried::new(cfg),
        }
    }
}

impl Algorithm for Fomaml {
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
        let last = cfg.inner_steps - 1;
        for_each_worker(workers, |w| {
            carried.start(w, start)?;
            for s in 0..last {
                let l = w.step(s, cfg.inner_batch, cfg.inner_lr)?;
                if s == 0 {
                    w.loss.before = l;
                }
            }
            // out ← the inner optimizer's update on the last minibatch at the adapted params.
            w.measure_accuracy(last, cfg.inner_batch)?;
            let l = match cfg.inner_opt {
                InnerOpt::Sgd => {
                    let l = w.gradient(last, cfg.inner_batch)?;
                    for g in w.out.iter_mut() {
                        *g *= -cfg.inner_lr;
                    }
                    l
                }
                InnerOpt::Adam => {
                    let before = w.learner.params().to_vec();
                    let l = w.step(last, cfg.inner_batch, cfg.inner_lr)?;
                    for ((o, &a), &b) in w.out.iter_mut().zip(w.learner.params()).zip(&before) {
                        *o = a - b;
                    }
                    l
                }
            };
            if last == 0 {
                w.loss.before = l;
            }
            w.loss.after = l;
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
