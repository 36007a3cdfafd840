//! The sine few-shot demo that the anole sine firmwares run, written once.
//!
//! On the device: parse the embedded meta-learned blob, draw a new sine task
//! `y = a·sin(x + b)` (a ~ U[0.1, 5], b ~ U[0, 2π], x ~ U[-5, 5]) from a seeded PRNG, collect
//! [`SUPPORT`] samples into an [`anole::SampleBuffer`], measure the MSE on [`HELD_OUT`] other
//! points, adapt for the blob's recommended steps, measure again, and time both adaptation and
//! prediction with a board-supplied [`Clock`]. Boards only provide the clock and the arena:
//! `semihosting::run_printed` and `defmt_log::run_logged` (features `semihosting`, `defmt`) run
//! the whole firmware on the `board` crate: the kernel check, the demo, its report, the stack
//! check and the exit status.
//!
//! Heap-free and `no_std`; the same code runs on the host in this crate's tests, so the losses a
//! board prints can be compared with the host's.
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod decimal;
#[cfg(feature = "defmt")]
pub mod defmt_log;
#[cfg(feature = "semihosting")]
pub mod semihosting;

use anole::{Blob, Learner, SampleBuffer, Samples, SliceSamples};
use board::Clock;
use core::f32::consts::PI;
use core::fmt;
pub use decimal::Decimal;

/// The embedded model: `models/sine/init.postcard` (or the blob named by `ANOLE_SINE_MODEL` at
/// build time), validated by the build script.
pub static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.postcard"));

/// f32 of arena the embedded model needs at its recommended batch in the device layout
/// (`anole::Mode::Device`: SGD fused into the backward pass), computed at build time by
/// parsing [`BLOB`] with the same runtime.
pub const ARENA_LEN: usize = include!(concat!(env!("OUT_DIR"), "/arena_len.rs"));

/// Samples collected on the device before adapting (the paper's 10-shot sine setting).
pub const SUPPORT: usize = 10;
/// Held-out points the loss is measured on.
pub const HELD_OUT: usize = 50;
/// Seed of the device's task and sample generator; a constant so every run is comparable.
pub const SEED: u32 = 0x2545_f491;
/// Inputs are drawn from `[-X_RANGE, X_RANGE]`.
pub const X_RANGE: f32 = 5.0;

/// xorshift32 (Marsaglia 2003), from the board support every example shares.
pub use board::Rng;

/// One task of the sine family: `y = amplitude · sin(x + phase)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SineTask {
    /// `a ~ U[0.1, 5]`.
    pub amplitude: f32,
    /// `b ~ U[0, 2π]`.
    pub phase: f32,
}

impl SineTask {
    /// Draw a task from the family.
    pub fn draw(rng: &mut Rng) -> SineTask {
        let amplitude = rng.uniform(0.1, 5.0);
        let phase = rng.uniform(0.0, 2.0 * PI);
        SineTask { amplitude, phase }
    }
    /// The task's target at `x`.
    pub fn eval(&self, x: f32) -> f32 {
        self.amplitude * libm::sinf(x + self.phase)
    }
}

/// What went wrong in the demo.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DemoError {
    /// The embedded blob does not parse.
    Blob(anole::Error),
    /// The blob is not a 1-input, 1-output regressor.
    NotSine {
        /// Inputs per sample.
        inputs: usize,
        /// Outputs per sample.
        outputs: usize,
    },
    /// The board's arena is smaller than the blob needs.
    ArenaTooSmall {
        /// f32 the blob needs at `batch`.
        needed: usize,
        /// f32 the board provides.
        available: usize,
        /// The blob's recommended batch.
        batch: usize,
    },
    /// The runtime refused an operation.
    Runtime {
        /// What the demo was doing.
        doing: &'static str,
        /// The runtime's error.
        error: anole::Error,
    },
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Blob(e) => write!(f, "embedded model blob: {e}"),
            DemoError::NotSine { inputs, outputs } => write!(
                f,
                "embedded model has {inputs} inputs and {outputs} outputs; the sine demo needs 1 and 1"
            ),
            DemoError::ArenaTooSmall {
                needed,
                available,
                batch,
            } => write!(
                f,
                "arena holds {available} f32 but the model needs {needed} at batch {batch}: size the static arena with app_sine::ARENA_LEN"
            ),
            DemoError::Runtime { doing, error } => write!(f, "{doing}: {error}"),
        }
    }
}

fn rt<T>(doing: &'static str, r: anole::Result<T>) -> Result<T, DemoError> {
    r.map_err(|error| DemoError::Runtime { doing, error })
}

/// Multiply-accumulates of one adaptation step, counted from the learner's plan: per sample, the
/// forward pass of every layer, the weight gradient of every adapting layer, and the input
/// gradient of every layer behind an adapting one; times the minibatch. Activations, the loss
/// and the SGD update (one multiply-add per trained parameter) are not counted.
pub fn macs_per_step(learner: &Learner<'_, '_>, minibatch: usize) -> u64 {
    let mut per_sample = 0usize;
    for node in learner.plan().nodes(learner.blob()) {
        let m = node.layer.macs(node.input);
        per_sample += m;
        if node.adapts {
            per_sample += m;
        }
        if node.input_grad {
            per_sample += m;
        }
    }
    (per_sample * minibatch) as u64
}

/// Everything the demo measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// Meta-learning algorithm recorded in the blob.
    pub algorithm: &'static str,
    /// Meta-iterations recorded in the blob.
    pub meta_iterations: u64,
    /// Parameters of the model.
    pub params: usize,
    /// f32 of arena used.
    pub arena_len: usize,
    /// Minibatch of one step.
    pub batch: usize,
    /// The task drawn on the device.
    pub task: SineTask,
    /// Held-out MSE of the meta-initialization.
    pub loss_before: f32,
    /// Held-out MSE after adapting.
    pub loss_after: f32,
    /// Support-set loss at the first step (before its update).
    pub support_first: f32,
    /// Support-set loss at the last step (before its update).
    pub support_last: f32,
    /// Steps taken.
    pub steps: u32,
    /// Learning rate.
    pub lr: f32,
    /// Counts spent in `adapt` for all steps.
    pub adapt_cost: u64,
    /// Counts spent predicting all held-out points one at a time.
    pub predict_cost: u64,
    /// Single-point predictions timed.
    pub predictions: usize,
    /// Multiply-accumulates of one step (see [`macs_per_step`]).
    pub macs_per_step: u64,
    /// Unit of the costs.
    pub unit: &'static str,
}

impl Report {
    /// True when adapting lowered the held-out loss.
    pub fn improved(&self) -> bool {
        self.loss_after < self.loss_before
    }
    /// Cost of one adaptation step.
    pub fn per_step(&self) -> u64 {
        self.adapt_cost / u64::from(self.steps.max(1))
    }
    /// Cost of one single-point prediction.
    pub fn per_prediction(&self) -> u64 {
        self.predict_cost / self.predictions.max(1) as u64
    }
    /// Cost of one multiply-accumulate of a step, in hundredths (integer, so boards without
    /// float formatting can print it).
    pub fn per_mac_x100(&self) -> u64 {
        self.per_step() * 100 / self.macs_per_step.max(1)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model: {} ({} meta-iterations), {} parameters, arena {} f32 ({} bytes) at batch {}",
            self.algorithm,
            self.meta_iterations,
            self.params,
            self.arena_len,
            self.arena_len * 4,
            self.batch
        )?;
        writeln!(
            f,
            "task: y = {} sin(x + {}); {} support points, {} held-out points",
            Decimal(self.task.amplitude),
            Decimal(self.task.phase),
            SUPPORT,
            HELD_OUT
        )?;
        writeln!(
            f,
            "adapt: {} SGD steps at lr {}, support loss {} -> {}",
            self.steps,
            Decimal(self.lr),
            Decimal(self.support_first),
            Decimal(self.support_last)
        )?;
        writeln!(f, "loss_before={}", Decimal(self.loss_before))?;
        writeln!(f, "loss_after={}", Decimal(self.loss_after))?;
        writeln!(f, "cost_unit={}", self.unit)?;
        writeln!(f, "per_step={}", self.per_step())?;
        writeln!(f, "per_prediction={}", self.per_prediction())?;
        writeln!(f, "macs_per_step={}", self.macs_per_step)?;
        write!(
            f,
            "per_mac={}.{:02}",
            self.per_mac_x100() / 100,
            self.per_mac_x100() % 100
        )
    }
}

/// Run the demo on the embedded [`BLOB`] with `arena` (at least [`ARENA_LEN`] f32).
pub fn run(arena: &mut [f32], clock: &mut impl Clock) -> Result<Report, DemoError> {
    run_with(BLOB, arena, clock)
}

/// Run the demo on any 1-input, 1-output regression blob.
///
/// Stack matters on a microcontroller: the blob is a few kilobytes of fixed-capacity lists, so
/// it is parsed in place into its one slot ([`Blob::parse_in_place`]), in a frame of its own;
/// the learner is kept in the slot its constructor's `Result` was written to.
pub fn run_with(
    bytes: &[u8],
    arena: &mut [f32],
    clock: &mut impl Clock,
) -> Result<Report, DemoError> {
    let mut blob = Blob::empty();
    parse(&mut blob, bytes).map_err(DemoError::Blob)?;
    adapt_and_measure(&blob, arena, clock)
}

#[inline(never)]
fn parse<'a>(blob: &mut Blob<'a>, bytes: &'a [u8]) -> anole::Result<()> {
    blob.parse_in_place(bytes)
}

/// Runtime calls in frames of their own. Inlined into one caller, each call's temporaries get
/// their own stack slots in that caller's frame, which then stays allocated during the deepest
/// path (a training step); called out of line, their frames come and go.
mod frame {
    use anole::{Blob, Learner, Mode, Options, Result, Samples};

    /// The device layout: SGD fused into the backward pass, no gradient buffer.
    #[inline(never)]
    pub fn load<'b, 'a>(blob: &'b Blob<'b>, arena: &'a mut [f32]) -> Result<Learner<'b, 'a>> {
        Learner::with_mode(blob, arena, Options::from_blob(blob), Mode::Device)
    }
    #[inline(never)]
    pub fn loss(learner: &mut Learner<'_, '_>, samples: &dyn Samples) -> Result<f32> {
        learner.loss(samples)
    }
    #[inline(never)]
    pub fn adapt(
        learner: &mut Learner<'_, '_>,
        samples: &dyn Samples,
        steps: u32,
    ) -> Result<anole::AdaptReport> {
        learner.adapt(samples, steps)
    }
    #[inline(never)]
    pub fn predict(learner: &mut Learner<'_, '_>, x: &[f32], y: &mut [f32]) -> Result<()> {
        learner.predict(x, y)
    }
}

#[inline(never)]
fn adapt_and_measure(
    blob: &Blob<'_>,
    arena: &mut [f32],
    clock: &mut impl Clock,
) -> Result<Report, DemoError> {
    if blob.input_len() != 1 || blob.target_len() != 1 {
        return Err(DemoError::NotSine {
            inputs: blob.input_len(),
            outputs: blob.output_len(),
        });
    }
    let settings = blob.settings();
    let batch = settings.batch as usize;
    let mut loaded = frame::load(blob, arena);
    let learner = match &mut loaded {
        Ok(learner) => learner,
        Err(anole::Error::ArenaTooSmall { needed, available }) => {
            return Err(DemoError::ArenaTooSmall {
                needed: *needed,
                available: *available,
                batch,
            })
        }
        Err(error) => {
            return Err(DemoError::Runtime {
                doing: "loading the model",
                error: *error,
            })
        }
    };

    // A new task, as the device meets it: samples arrive one by one into the ring buffer.
    let mut rng = Rng::new(SEED);
    let task = SineTask::draw(&mut rng);
    let mut support: SampleBuffer<SUPPORT, 1, 1> = SampleBuffer::new();
    for _ in 0..SUPPORT {
        let x = rng.uniform(-X_RANGE, X_RANGE);
        rt("collecting a sample", support.push(&[x], &[task.eval(x)]))?;
    }
    let mut xs = [0.0f32; HELD_OUT];
    let mut ys = [0.0f32; HELD_OUT];
    for (x, y) in xs.iter_mut().zip(ys.iter_mut()) {
        *x = rng.uniform(-X_RANGE, X_RANGE);
        *y = task.eval(*x);
    }
    let held_out = rt("holding out points", SliceSamples::new(&xs, &ys, 1, 1))?;

    let loss_before = rt(
        "measuring the loss before adapting",
        frame::loss(learner, &held_out),
    )?;
    let t0 = clock.now();
    let adapted = rt("adapting", frame::adapt(learner, &support, settings.steps))?;
    let adapt_cost = clock.now() - t0;
    let loss_after = rt(
        "measuring the loss after adapting",
        frame::loss(learner, &held_out),
    )?;

    let mut predict_cost = 0;
    for &x in &xs {
        let mut y = [0.0f32];
        let t = clock.now();
        rt("predicting", frame::predict(learner, &[x], &mut y))?;
        predict_cost += clock.now() - t;
    }

    let provenance = blob.provenance();
    Ok(Report {
        algorithm: static_name(provenance.algorithm),
        meta_iterations: provenance.meta_iterations,
        params: blob.param_count(),
        arena_len: learner.plan().arena_len(),
        batch,
        task,
        loss_before,
        loss_after,
        support_first: adapted.first_loss,
        support_last: adapted.last_loss,
        steps: adapted.steps,
        lr: learner.options().lr,
        adapt_cost,
        predict_cost,
        predictions: HELD_OUT,
        macs_per_step: macs_per_step(learner, support.len().min(batch)),
        unit: clock.unit(),
    })
}

/// The report outlives the blob borrow; known algorithm names map to static strings.
fn static_name(name: &str) -> &'static str {
    const KNOWN: [&str; 6] = ["reptile", "fomaml", "joint", "random", "import", "maml"];
    KNOWN
        .iter()
        .copied()
        .find(|k| *k == name)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use board::CallCount;
    use std::vec;

    #[test]
    fn rng_stays_in_range_and_covers_it() {
        let mut r = Rng::new(SEED);
        let (mut lo, mut hi) = (f32::MAX, f32::MIN);
        for _ in 0..10_000 {
            let v = r.uniform(-5.0, 5.0);
            assert!((-5.0..5.0).contains(&v));
            lo = lo.min(v);
            hi = hi.max(v);
        }
        assert!(lo < -4.9 && hi > 4.9, "{lo} {hi}");
    }

    #[test]
    fn tasks_come_from_the_family() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let t = SineTask::draw(&mut r);
            assert!((0.1..5.0).contains(&t.amplitude));
            assert!((0.0..2.0 * PI).contains(&t.phase));
        }
    }

    #[test]
    fn demo_adapts_on_the_host() {
        let mut arena = vec![0.0f32; ARENA_LEN];
        let r = run(&mut arena, &mut CallCount(0)).unwrap();
        assert!(r.improved(), "{r}");
        assert_eq!(r.steps, Blob::parse(BLOB).unwrap().settings().steps);
        assert_eq!(r.arena_len, ARENA_LEN);
        assert_eq!(r.task, SineTask::draw(&mut Rng::new(SEED)));
        assert_eq!((r.predictions, r.macs_per_step % 10), (HELD_OUT, 0));
    }

    #[test]
    fn sine_mlp_step_macs_are_counted_from_the_plan() {
        // 1→64→64→1: forward 64 + 4096 + 64 = 4224 MACs per sample; weight gradients of all
        // three dense layers another 4224; input gradients of the second and third 4160.
        let blob = Blob::parse(BLOB).unwrap();
        let mut arena = vec![0.0f32; ARENA_LEN];
        let l = frame::load(&blob, &mut arena).unwrap();
        assert_eq!(
            blob.param_count(),
            4353,
            "the sine model is the paper's 1→64→64→1 MLP"
        );
        assert_eq!(
            blob.settings().trainable & 0b10101,
            0b10101,
            "the sine model adapts every layer"
        );
        assert_eq!(macs_per_step(&l, 10), 10 * (4224 + 4224 + 4160));
        assert_eq!(macs_per_step(&l, 2) * 5, macs_per_step(&l, 10));
    }

    #[test]
    fn a_small_arena_is_refused_with_the_needed_size() {
        let mut arena = vec![0.0f32; ARENA_LEN - 1];
        match run(&mut arena, &mut CallCount(0)) {
            Err(DemoError::ArenaTooSmall {
                needed, available, ..
            }) => {
                assert_eq!((needed, available), (ARENA_LEN, ARENA_LEN - 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_corrupt_blob_is_an_error() {
        let mut bytes = BLOB.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut arena = vec![0.0f32; ARENA_LEN];
        assert!(matches!(
            run_with(&bytes, &mut arena, &mut CallCount(0)),
            Err(DemoError::Blob(_))
        ));
    }
}
