//! Reptile (Nichol, Achiam & Schulman, 2018): adapt to each task of the meta-batch with
//! `inner_steps` optimizer steps, then move the meta-parameters towards the adapted ones,
//! φ ← φ + ε_t · mean_i (W_i − φ), with ε_t annealed linearly to 0.

use super::{
    for_each_worker, mean_loss, sample_tasks, AlgoState, Algorithm, Carried, Config, IterLoss,
    Worker,
};
use crate::tasks::{TaskFamily, TaskRng};
use anyhow::Result;

/// Reptile, serial (meta-batch 1) or batched.
pub struct Reptile {
    cfg: Config,
    carried: Carried,
}

impl Reptile {
    /// With the run's hyper-parameters.
    pub fn new(cfg: &Config) -> Reptile {
        Reptile {
            cfg: cfg.clone(),
            carried: Carried::new(cfg),
        }
    }
}

impl Algorithm for Reptile {
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
        for_each_worker(workers, |w| {
            carried.start(w, start)?;
            for s in 0..cfg.inner_steps {
                if s + 1 == cfg.inner_steps {
                    w.measure_accuracy(s, cfg.inner_batch)?;
                }
                let l = w.step(s, cfg.inner_batch, cfg.inner_lr)?;
                if s == 0 {
                    w.loss.before = l;
                }
                w.loss.after = l;
            }
            w.out.copy_from_slice(w.learner.params());
            Ok(())
        })?;
        self.carried.gather(workers);
        let eps = cfg.outer_step(t) / workers.len() as f32;
        if let [w] = workers {
            for (p, &a) in phi.iter_mut().zip(&w.out) {
                *p += eps * (a - *p);
            }
        } else {
            // Σ_i (W_i − φ), summed in worker order for reproducibility.
            let mut delta = vec![0.0f32; phi.len()];
            for w in workers.iter() {
                for ((d, &a), &p) in delta.iter_mut().zip(&w.out).zip(phi.iter()) {
                    *d += a - p;
                }
            }
            for (p, d) in phi.iter_mut().zip(delta) {
                *p += eps * d;
            }
        }
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
    use crate::meta::{train, Config};
    use crate::tasks::{self, Sine, Stream, TaskFamily};
    use anole::{Options, OwnedLearner};

    /// One meta-iteration by hand through a learner: φ + ε (W − φ).
    #[test]
    fn one_iteration_moves_towards_the_adapted_parameters() {
        let cfg = Config {
            iters: 1,
            seed: 5,
            ..Config::sine()
        };
        let trained = train(&Sine::default(), &cfg, |_, _| {}).unwrap();
        let arch = Sine::default().arch();
        let phi = arch
            .init_params(&mut tasks::rng(5, Stream::Init, 0))
            .unwrap();
        assert_eq!(phi, trained.init);
        let task = Sine::default()
            .train_task(&mut tasks::rng(5, Stream::Train, 0), 50)
            .unwrap();
        let meta = crate::model::BlobMeta {
            dtype: anole::DType::F32,
            settings: crate::meta::adapt_settings(&Sine::default(), &cfg, 5, 10),
            algorithm: "reptile".into(),
            task: "sine".into(),
            seed: 5,
            meta_iterations: 0,
        };
        let bytes = crate::model::encode_blob(&arch, &phi, &meta).unwrap();
        let mut l = OwnedLearner::with_options(
            &crate::model::shared(bytes).unwrap(),
            Options {
                batch: 10,
                trainable: arch.all_layers(),
                lr: 0.02,
            },
        )
        .unwrap();
        for s in 0..5 {
            let x = &task.input_slice()[10 * s..10 * s + 10];
            let y = &task.target_slice()[10 * s..10 * s + 10];
            l.step(x, y, 0.02).unwrap();
        }
        let expected: Vec<f32> = phi
            .iter()
            .zip(l.params())
            .map(|(&p, &w)| p + 0.1 * (w - p))
            .collect();
        assert_eq!(trained.params, expected);
        assert_ne!(trained.params, phi);
    }

    /// The meta-batch runs in parallel, but the result does not depend on the thread count.
    #[test]
    fn batched_result_is_independent_of_threads() {
        let cfg = Config {
            iters: 20,
            meta_batch: 4,
            ..Config::sine()
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| train(&Sine::default(), &cfg, |_, _| {}).unwrap().params)
        };
        assert_eq!(run(1), run(3));
    }
}
