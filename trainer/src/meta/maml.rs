//! Second-order MAML (Finn et al. 2017), the baseline of the Reptile paper: on each task, take
//! `inner_steps − 1` SGD steps φ_{s+1} = φ_s − α ∇L_s(φ_s) on minibatches 0 … k−2, then
//! differentiate the loss L_{k−1} of the last minibatch at φ_{k−1} with respect to the
//! meta-parameters φ_0, through the inner steps:
//!
//! ```text
//! v ← ∇L_{k−1}(φ_{k−1});   for s = k−2 … 0:  v ← v − α H_s(φ_s) v;   meta-gradient = v
//! ```
//!
//! (H_s the Hessian of L_s). First-order MAML stops after the first line. Every gradient comes
//! from the engine (`anole::OwnedLearner::gradient`, the arithmetic the device adapts with) and
//! every Hessian-vector product is a central difference of two of them along v:
//! H v ≈ ‖v‖ (∇L(φ + h v̂) − ∇L(φ − h v̂)) / 2h, v̂ = v / ‖v‖, with the step h = [`HVP_STEP`]. Its
//! error against exact second derivatives is measured by `trainer/tests/maml_autograd.rs`
//! (`docs/paper.md`). A task costs 3k − 2 forward-backward passes (FOMAML and Reptile: k) and
//! holds the k − 1 inner iterates besides the learner.
//!
//! The meta-step is scaled like FOMAML's: φ ← φ − ε_t · α · mean_i v_i, so `--outer-lr` means
//! the same for both. The inner loop must be plain SGD (`--inner-opt sgd`).

use super::{mean_loss, sample_tasks, AlgoState, Algorithm, Config, IterLoss, Worker};
use crate::tasks::{Batch, TaskFamily, TaskRng};
use anole::OwnedLearner;
use anyhow::{anyhow, Context, Result};
use rayon::prelude::*;

/// Length of the central difference of a Hessian-vector product, in parameter space (the
/// Euclidean norm of the perturbation). Chosen from the error measured against exact
/// autograd on the sine MLP (`docs/paper.md`): shorter steps lose digits to the f32 rounding
/// of the two gradients, longer ones to the third derivative.
pub const HVP_STEP: f32 = 3e-3;

/// Working memory of one task's meta-gradient: the inner iterates and the vectors of the
/// backward pass through them.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    /// φ_0 … φ_{k−2}, one after the other.
    points: Vec<f32>,
    /// The vector carried back through the steps; at the end, the meta-gradient.
    v: Vec<f32>,
    /// A perturbed point φ ± h v̂.
    probe: Vec<f32>,
    /// ∇L at φ + h v̂.
    plus: Vec<f32>,
    /// ∇L at φ − h v̂.
    minus: Vec<f32>,
    /// φ_{k−1}, the adapted parameters.
    end: Vec<f32>,
}

impl Tape {
    /// The meta-gradient of the last [`meta_gradient`] call.
    pub fn gradient(&self) -> &[f32] {
        &self.v
    }

    /// The adapted parameters φ_{k−1} of the last [`meta_gradient`] call.
    pub fn adapted(&self) -> &[f32] {
        &self.end
    }

    /// f32 values the tape holds for `params` parameters and `steps` inner steps: the k − 1
    /// iterates and five vectors.
    pub fn floats(params: usize, steps: usize) -> usize {
        params * (steps.saturating_sub(1) + 5)
    }
}

/// Losses of one task's inner loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskLosses {
    /// Loss of minibatch 0 at φ_0.
    pub first: f32,
    /// Loss of the last minibatch at φ_{k−1}.
    pub last: f32,
}

/// The MAML meta-gradient of `task` at the meta-parameters `phi`, into `tape` (read it with
/// [`Tape::gradient`]): `steps` = k minibatches of `batch` rows (cycling through the task's
/// rows, as every algorithm of the trainer does), k − 1 SGD steps at `lr` in `learner`, which
/// is left at a perturbed point (call `set_params` before reusing it). The Hessian-vector
/// products are central differences of length `hvp_step` ([`HVP_STEP`] in training).
#[allow(clippy::too_many_arguments)]
pub fn meta_gradient(
    learner: &mut OwnedLearner,
    task: &Batch,
    phi: &[f32],
    steps: usize,
    batch: usize,
    lr: f32,
    hvp_step: f32,
    tape: &mut Tape,
) -> Result<TaskLosses> {
    if steps == 0 {
        return Err(anyhow!("MAML needs at least one inner step"));
    }
    let n = phi.len();
    let mut scratch = Default::default();
    tape.points.resize(n * (steps - 1), 0.0);
    for buf in [
        &mut tape.v,
        &mut tape.probe,
        &mut tape.plus,
        &mut tape.minus,
        &mut tape.end,
    ] {
        buf.resize(n, 0.0);
    }
    learner.set_params(phi).context("loading meta-parameters")?;
    let mut first = None;
    for s in 0..steps - 1 {
        tape.points[s * n..(s + 1) * n].copy_from_slice(learner.params());
        let (x, y) = task.minibatch(s, batch, &mut scratch);
        let l = learner
            .step(x, y, lr)
            .with_context(|| format!("inner step {}", s + 1))?;
        first.get_or_insert(l);
    }
    let (x, y) = task.minibatch(steps - 1, batch, &mut scratch);
    let last = learner
        .gradient(x, y)
        .with_context(|| format!("gradient on minibatch {steps}"))?;
    learner.gradient_into(&mut tape.v).context("internal")?;
    tape.end.copy_from_slice(learner.params());
    for s in (0..steps - 1).rev() {
        let (x, y) = task.minibatch(s, batch, &mut scratch);
        let Tape {
            points,
            v,
            probe,
            plus,
            minus,
            ..
        } = tape;
        let at = &points[s * n..(s + 1) * n];
        hessian_vector(learner, x, y, at, v, hvp_step, [probe, plus, minus])
            .with_context(|| format!("Hessian-vector product on minibatch {}", s + 1))?;
        // plus now holds H_s v.
        for (v, &hv) in v.iter_mut().zip(plus.iter()) {
            *v -= lr * hv;
        }
    }
    Ok(TaskLosses {
        first: first.unwrap_or(last),
        last,
    })
}

/// H v of the loss on (`x`, `y`) at `at`, into `plus`, by a central difference of the engine's
/// gradients along v of length `h`; `probe` and `minus` are scratch.
pub(crate) fn hessian_vector(
    learner: &mut OwnedLearner,
    x: &[f32],
    y: &[f32],
    at: &[f32],
    v: &[f32],
    h: f32,
    [probe, plus, minus]: [&mut [f32]; 3],
) -> Result<()> {
    let norm = v
        .iter()
        .map(|&a| (a as f64) * (a as f64))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        plus.fill(0.0);
        return Ok(());
    }
    let h = h as f64;
    let scale = (h / norm) as f32;
    for (sign, out) in [(1.0f32, &mut *plus), (-1.0, &mut *minus)] {
        for ((p, &a), &d) in probe.iter_mut().zip(at).zip(v) {
            *p = a + sign * scale * d;
        }
        learner.set_params(probe).context("perturbed parameters")?;
        learner.gradient(x, y)?;
        learner.gradient_into(out).context("internal")?;
    }
    let factor = (norm / (2.0 * h)) as f32;
    for (p, &m) in plus.iter_mut().zip(minus.iter()) {
        *p = (*p - m) * factor;
    }
    Ok(())
}

/// Second-order MAML.
pub struct Maml {
    cfg: Config,
    /// One tape per meta-batch worker.
    tapes: Vec<Tape>,
}

impl Maml {
    /// With the run's hyper-parameters.
    pub fn new(cfg: &Config) -> Maml {
        Maml {
            cfg: cfg.clone(),
            tapes: vec![Tape::default(); cfg.meta_batch],
        }
    }
}

impl Algorithm for Maml {
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
        let last = cfg.inner_steps - 1;
        let one = |(w, tape): (&mut Worker, &mut Tape)| -> Result<()> {
            let task = w
                .task
                .take()
                .ok_or_else(|| anyhow!("internal: worker has no task"))?;
            let r = meta_gradient(
                &mut w.learner,
                &task,
                start,
                cfg.inner_steps,
                cfg.inner_batch,
                cfg.inner_lr,
                HVP_STEP,
                tape,
            );
            w.task = Some(task);
            let losses = r?;
            w.loss.before = losses.first;
            w.loss.after = losses.last;
            if w.measure {
                w.learner.set_params(&tape.end).context("internal")?;
                w.measure_accuracy(last, cfg.inner_batch)?;
            }
            Ok(())
        };
        if workers.len() == 1 {
            one((&mut workers[0], &mut self.tapes[0])).context("task 1")?;
        } else {
            let results: Vec<Result<()>> = workers
                .par_iter_mut()
                .zip(self.tapes.par_iter_mut())
                .map(one)
                .collect();
            for (i, r) in results.into_iter().enumerate() {
                r.with_context(|| format!("task {}", i + 1))?;
            }
        }
        // φ ← φ + ε_t mean_i (−α v_i), summed in worker order (as FOMAML's step).
        let eps = cfg.outer_step(t) / workers.len() as f32;
        for tape in &self.tapes {
            for (p, &g) in phi.iter_mut().zip(&tape.v) {
                *p += eps * (g * -cfg.inner_lr);
            }
        }
        Ok(mean_loss(workers))
    }

    fn state(&self) -> AlgoState {
        AlgoState::default()
    }
}

#[cfg(test)]
mod tests {
    use crate::meta::{train, Algo, Config, InnerOpt};
    use crate::tasks::Sine;

    /// With one inner step MAML's meta-gradient is the plain gradient at φ, so a run is
    /// FOMAML's to the bit; with more steps the two differ.
    #[test]
    fn one_inner_step_is_fomaml() {
        let run = |algo, inner_steps| {
            let cfg = Config {
                algo,
                iters: 20,
                meta_batch: 3,
                inner_steps,
                ..Config::sine()
            };
            train(&Sine::default(), &cfg, |_, _| {}).unwrap().params
        };
        assert_eq!(run(Algo::Maml, 1), run(Algo::Fomaml, 1));
        assert_ne!(run(Algo::Maml, 3), run(Algo::Fomaml, 3));
    }

    /// The meta-batch runs in parallel, but the result does not depend on the thread count.
    #[test]
    fn result_is_independent_of_threads() {
        let cfg = Config {
            algo: Algo::Maml,
            iters: 10,
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

    /// MAML differentiates through SGD steps only.
    #[test]
    fn needs_sgd() {
        let cfg = Config {
            algo: Algo::Maml,
            inner_opt: InnerOpt::Adam,
            inner_lr: 1e-3,
            ..Config::sine()
        };
        let e = train(&Sine::default(), &cfg, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--algo maml") && e.contains("--inner-opt sgd"),
            "{e}"
        );
    }
}
