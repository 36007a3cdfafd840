//! The paper's sine family: y = a·sin(x + b) with amplitude a ~ U[0.1, 5], phase
//! b ~ U[0, 2π] and inputs x in [−5, 5]. A training task's inputs are the paper's even grid
//! over [−5, 5] in random order, or x ~ U[−5, 5] ([`Points`]); a held-out task's support
//! points are drawn from U[−5, 5] and its queries are an even grid of x. Its recipe
//! (`anole train sine`, `anole eval` of a sine model) is in [`recipe`].

pub mod recipe;

pub use recipe::{CardSection, EvalArgs, TrainArgs};

use super::{Batch, Episode, TaskFamily, TaskRng};
use crate::model::Arch;
use anole::LossKind;
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;

/// Provenance name of the family.
pub const NAME: &str = "sine";

/// Smallest amplitude.
pub const AMPLITUDE_MIN: f32 = 0.1;
/// Largest amplitude.
pub const AMPLITUDE_MAX: f32 = 5.0;
/// Input range `[−X_MAX, X_MAX]`.
pub const X_MAX: f32 = 5.0;

/// One sine task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SineTask {
    /// Amplitude a.
    pub amplitude: f32,
    /// Phase b.
    pub phase: f32,
}

impl SineTask {
    /// Draw a task: the amplitude, then the phase.
    pub fn sample(rng: &mut TaskRng) -> SineTask {
        let amplitude = rng.random_range(AMPLITUDE_MIN..AMPLITUDE_MAX);
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        SineTask { amplitude, phase }
    }

    /// a·sin(x + b).
    pub fn eval(&self, x: f32) -> f32 {
        self.amplitude * (x + self.phase).sin()
    }

    /// `n` points with x ~ U[−5, 5] (already in random order).
    pub fn random_points(&self, rng: &mut TaskRng, n: usize) -> Result<Batch> {
        let xs: Vec<f32> = (0..n).map(|_| rng.random_range(-X_MAX..X_MAX)).collect();
        self.points(xs)
    }

    /// The task at the given inputs.
    pub fn points(&self, xs: Vec<f32>) -> Result<Batch> {
        let ys = xs.iter().map(|&x| self.eval(x)).collect();
        Batch::from_flat(xs, 1, ys, 1)
    }
}

/// `n` evenly spaced points covering `[−5, 5]`, both ends included.
pub fn grid(n: usize) -> Vec<f32> {
    match n {
        0 => Vec::new(),
        1 => vec![0.0],
        _ => (0..n)
            .map(|i| -X_MAX + 2.0 * X_MAX * i as f32 / (n - 1) as f32)
            .collect(),
    }
}

/// The inputs of a meta-training task.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Points {
    /// The paper's: the even grid over [−5, 5] (both ends included), in a random order drawn
    /// for each task, so that the inner minibatches are random subsets of the grid.
    #[default]
    Grid,
    /// x ~ U[−5, 5], drawn for each task.
    Uniform,
}

impl Points {
    /// The lowercase name, as on the command line and in the model card.
    pub fn as_str(self) -> &'static str {
        match self {
            Points::Grid => "grid",
            Points::Uniform => "uniform",
        }
    }
}

/// The sine family with the paper's 1 → 64 → 64 → 1 tanh network; the default trains on the
/// paper's grid.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sine {
    /// The inputs of a meta-training task.
    pub points: Points,
}

impl TaskFamily for Sine {
    fn name(&self) -> &str {
        NAME
    }

    fn arch(&self) -> Arch {
        Arch::sine()
    }

    fn loss(&self) -> LossKind {
        LossKind::Mse
    }

    /// `shots` points in random order: the even grid over [−5, 5], or x ~ U[−5, 5].
    fn train_task(&self, rng: &mut TaskRng, shots: usize) -> Result<Batch> {
        if shots == 0 {
            bail!("a sine task needs at least one point");
        }
        let task = SineTask::sample(rng);
        match self.points {
            Points::Grid => {
                let mut xs = grid(shots);
                xs.shuffle(rng);
                task.points(xs)
            }
            Points::Uniform => task.random_points(rng, shots),
        }
    }

    /// `shots` support points with x ~ U[−5, 5]; the query set is the task on an even grid of
    /// `queries` points over [−5, 5] (the whole curve, not just near the support points).
    fn eval_task(&self, rng: &mut TaskRng, shots: usize, queries: usize) -> Result<Episode> {
        if shots == 0 {
            bail!("a sine task needs at least one support point");
        }
        let task = SineTask::sample(rng);
        let support = task.random_points(rng, shots)?;
        Ok(Episode {
            support,
            query: task.points(grid(queries))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{rng, Stream};

    #[test]
    fn tasks_in_range_and_reproducible() {
        let mut r = rng(3, Stream::Train, 0);
        for _ in 0..200 {
            let t = SineTask::sample(&mut r);
            assert!((AMPLITUDE_MIN..AMPLITUDE_MAX).contains(&t.amplitude));
            assert!((0.0..std::f32::consts::TAU).contains(&t.phase));
        }
        for points in [Points::Grid, Points::Uniform] {
            let sine = Sine { points };
            let a = sine.train_task(&mut rng(3, Stream::Train, 0), 50).unwrap();
            let b = sine.train_task(&mut rng(3, Stream::Train, 0), 50).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.len(), 50);
            assert!(a.input_slice().iter().all(|x| x.abs() <= X_MAX));
        }
    }

    #[test]
    fn grid_tasks_are_the_shuffled_grid() {
        let sine = Sine::default();
        let a = sine.train_task(&mut rng(3, Stream::Train, 0), 50).unwrap();
        let b = sine.train_task(&mut rng(3, Stream::Train, 1), 50).unwrap();
        let sorted = |t: &Batch| {
            let mut x = t.input_slice().to_vec();
            x.sort_by(f32::total_cmp);
            x
        };
        assert_eq!(sorted(&a), grid(50));
        assert_eq!(sorted(&b), grid(50));
        // In a random order, a different one for each task.
        assert_ne!(a.input_slice(), grid(50).as_slice());
        assert_ne!(a.input_slice(), b.input_slice());
        // Targets on one curve of the family: y = a·sin(x + b) at those inputs.
        let task = SineTask::sample(&mut rng(3, Stream::Train, 0));
        assert_eq!(a, task.points(a.input_slice().to_vec()).unwrap());
        // Uniform inputs are not the grid.
        let u = Sine {
            points: Points::Uniform,
        }
        .train_task(&mut rng(3, Stream::Train, 0), 50)
        .unwrap();
        assert_ne!(sorted(&u), grid(50));
    }

    #[test]
    fn eval_query_is_the_grid() {
        let e = Sine::default()
            .eval_task(&mut rng(0, Stream::Eval, 4), 10, 100)
            .unwrap();
        assert_eq!(e.support.len(), 10);
        let q = e.query.input_slice();
        assert_eq!(q.len(), 100);
        assert_eq!((q[0], q[99]), (-5.0, 5.0));
        // Targets lie on one sine curve of the family.
        let m = e
            .query
            .target_slice()
            .iter()
            .fold(0.0f32, |m, y| m.max(y.abs()));
        assert!(m <= AMPLITUDE_MAX && m > 0.0);
    }
}
