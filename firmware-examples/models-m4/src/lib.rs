//! One model on a microcontroller, written once for the board and the host tests: the blob stays
//! in flash (parsed in place), one pseudo-random sample is predicted with nothing adapting (the
//! frozen weights read from the blob), then the blob's trainable layers take SGD steps on that
//! sample and its target, one sample per step. Heap-free and `no_std`; the board supplies the
//! clock, the arena and the buffers, sized by the build script.
//!
//! Every cost is one [`Clock`] reading around one runtime call: instructions per inference are
//! one `predict_one`, instructions per adaptation step the mean over the blob's steps of one
//! `step` (forward, backward and the update, fused into the backward pass for dense layers).
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

use anole::{Blob, Learner, LossKind, Options};
use board::{Clock, Rng};
use core::fmt;

/// The embedded model (`ANOLE_MODEL` at build time, the sine model by default), checked and
/// sized by the build script.
pub static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.postcard"));

include!(concat!(env!("OUT_DIR"), "/sizes.rs"));

/// Most adaptation steps recorded (the blob's steps beyond are taken, not recorded).
pub const MAX_LOSSES: usize = 16;

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AppError {
    /// The embedded blob does not parse.
    Blob(anole::Error),
    /// The runtime refused an operation.
    Runtime {
        /// What the firmware was doing.
        doing: &'static str,
        /// The runtime's error.
        error: anole::Error,
    },
    /// A prediction or a loss is not finite, or the loss did not fall.
    Check(&'static str),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Blob(e) => write!(f, "embedded model blob: {e}"),
            AppError::Runtime { doing, error } => write!(f, "{doing}: {error}"),
            AppError::Check(what) => write!(f, "{what}"),
        }
    }
}

fn rt<T>(doing: &'static str, r: anole::Result<T>) -> Result<T, AppError> {
    r.map_err(|error| AppError::Runtime { doing, error })
}

/// Everything the firmware measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// Parameters of the model.
    pub params: usize,
    /// Bytes of the blob (in flash).
    pub blob_bytes: usize,
    /// Storage of the first tensor (f32, f16, bf16).
    pub dtype: &'static str,
    /// Layers of the model.
    pub layers: usize,
    /// Layers that adapt (layers with parameters in the blob's trainable mask).
    pub adapting: usize,
    /// Parameters SGD updates (a norm layer's statistics are not trained).
    pub adapting_params: usize,
    /// f32 of arena to predict (nothing adapting).
    pub predict_arena: usize,
    /// f32 of arena to adapt (0 when nothing adapts).
    pub adapt_arena: usize,
    /// Multiply-accumulates of one inference.
    pub inference_macs: u64,
    /// Multiply-accumulates of one step: every layer's forward, the weight gradient of each
    /// adapting layer, the input gradient of each layer behind an adapting one.
    pub step_macs: u64,
    /// Cost of one inference (one sample), every weight read from the blob.
    pub per_inference: u64,
    /// Cost of one inference (one sample) after adapting: the adapting layers' weights in the
    /// arena, the others read from the blob (0 when nothing adapts).
    pub per_inference_adapted: u64,
    /// Steps taken.
    pub steps: u32,
    /// Cost of all steps.
    pub adapt_cost: u64,
    /// Learning rate of the steps.
    pub lr: f32,
    /// Loss before each step's update (the first [`MAX_LOSSES`]).
    pub losses: [f32; MAX_LOSSES],
    /// Loss before the last step's update.
    pub last_loss: f32,
    /// Unit of the costs.
    pub unit: &'static str,
}

impl Report {
    /// Cost of one adaptation step (0 without steps).
    pub fn per_step(&self) -> u64 {
        self.adapt_cost / u64::from(self.steps.max(1))
    }
    /// The loss before the first step's update.
    pub fn first_loss(&self) -> f32 {
        self.losses[0]
    }
}

/// `count / macs` with two decimals.
struct PerMac(u64, u64);

impl fmt::Display for PerMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hundredths = self.0 * 100 / self.1.max(1);
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model: {} ({}), {} layers, {} parameters in flash, {} layers adapting ({} parameters)",
            MODEL_NAME, self.dtype, self.layers, self.params, self.adapting, self.adapting_params
        )?;
        writeln!(f, "params={}", self.params)?;
        writeln!(f, "blob_bytes={}", self.blob_bytes)?;
        writeln!(f, "predict_arena_f32={}", self.predict_arena)?;
        writeln!(f, "adapt_arena_f32={}", self.adapt_arena)?;
        writeln!(f, "cost_unit={}", self.unit)?;
        writeln!(f, "inference_macs={}", self.inference_macs)?;
        writeln!(f, "per_inference={}", self.per_inference)?;
        writeln!(
            f,
            "per_inference_mac={}",
            PerMac(self.per_inference, self.inference_macs)
        )?;
        if self.steps == 0 {
            return write!(f, "steps=0");
        }
        writeln!(f, "steps={}", self.steps)?;
        writeln!(f, "lr={}", self.lr)?;
        write!(f, "losses=")?;
        for (i, l) in self.losses[..(self.steps as usize).min(MAX_LOSSES)]
            .iter()
            .enumerate()
        {
            write!(f, "{}{l}", if i > 0 { " " } else { "" })?;
        }
        writeln!(f)?;
        writeln!(f, "loss_first={}", self.first_loss())?;
        writeln!(f, "loss_last={}", self.last_loss)?;
        writeln!(f, "step_macs={}", self.step_macs)?;
        writeln!(f, "per_step={}", self.per_step())?;
        writeln!(f, "per_inference_adapted={}", self.per_inference_adapted)?;
        write!(
            f,
            "per_step_mac={}",
            PerMac(self.per_step(), self.step_macs)
        )
    }
}

/// Runtime calls in frames of their own, so their temporaries do not stay on the stack
/// during the deepest path (a step).
mod frame {
    use anole::{Blob, Learner, Mode, Options, Result};

    #[inline(never)]
    pub fn parse<'a>(blob: &mut Blob<'a>, bytes: &'a [u8]) -> Result<()> {
        blob.parse_in_place(bytes)
    }
    #[inline(never)]
    pub fn load<'b, 'a>(
        blob: &'b Blob<'b>,
        arena: &'a mut [f32],
        opts: Options,
    ) -> Result<Learner<'b, 'a>> {
        // Device layout: frozen weights are read from the blob in flash, never copied; with
        // SGD the update of a dense layer is fused into the backward pass.
        Learner::with_mode(blob, arena, opts, Mode::Device)
    }
    #[inline(never)]
    pub fn predict_one(learner: &mut Learner<'_, '_>, x: &[f32], y: &mut [f32]) -> Result<()> {
        learner.predict_one(x, y)
    }
    #[inline(never)]
    pub fn step(learner: &mut Learner<'_, '_>, x: &[f32], t: &[f32], lr: f32) -> Result<f32> {
        learner.step(x, t, lr)
    }
}

/// The sample: pseudo-random inputs in [-1, 1); the target is the input itself for an
/// autoencoder (MSE, as many outputs as inputs), a pseudo-random class for a classifier,
/// pseudo-random values otherwise.
pub fn sample(blob: &Blob<'_>, x: &mut [f32], target: &mut [f32]) {
    let mut rng = Rng::new(0x2545_f491);
    for v in x.iter_mut() {
        *v = rng.uniform(-1.0, 1.0);
    }
    match blob.loss {
        LossKind::CrossEntropy => target[0] = (rng.next_u32() % blob.output_len() as u32) as f32,
        LossKind::Mse if target.len() == x.len() => target.copy_from_slice(x),
        LossKind::Mse => target.iter_mut().for_each(|v| *v = rng.uniform(-1.0, 1.0)),
    }
}

/// Multiply-accumulates of one inference and of one step (one sample) from a learner's plan.
fn macs(learner: &Learner<'_, '_>) -> (u64, u64) {
    let (mut forward, mut step) = (0usize, 0usize);
    for node in learner.plan().nodes(learner.blob()) {
        let m = node.layer.macs(node.input);
        forward += m;
        step += m * (1 + usize::from(node.adapts) + usize::from(node.input_grad));
    }
    (forward as u64, step as u64)
}

/// Parse [`BLOB`] into `blob` (in place), predict one sample, adapt on it for the blob's steps
/// and measure. `arena` holds at least [`ARENA_LEN`] f32, `x` [`INPUT_LEN`], `target`
/// [`TARGET_LEN`], `y` [`OUTPUT_LEN`]. Fails when a prediction or a loss is not finite or the
/// loss did not fall.
pub fn run(
    blob: &'static mut Blob<'static>,
    arena: &mut [f32],
    x: &mut [f32],
    target: &mut [f32],
    y: &mut [f32],
    clock: &mut impl Clock,
) -> Result<Report, AppError> {
    frame::parse(blob, BLOB).map_err(AppError::Blob)?;
    measure(blob, arena, x, target, y, clock)
}

#[inline(never)]
fn measure(
    blob: &Blob<'_>,
    arena: &mut [f32],
    x: &mut [f32],
    target: &mut [f32],
    y: &mut [f32],
    clock: &mut impl Clock,
) -> Result<Report, AppError> {
    let (x, target, y) = (
        &mut x[..blob.input_len()],
        &mut target[..blob.target_len()],
        &mut y[..blob.output_len()],
    );
    sample(blob, x, target);

    // 1. Predict one sample, nothing adapting: every weight read from the blob.
    let frozen = Options {
        batch: 1,
        trainable: 0,
        lr: 0.0,
    };
    let (predict_arena, inference_macs, per_inference) = {
        let mut loaded = frame::load(blob, arena, frozen);
        let learner = rt(
            "loading the model to predict",
            loaded.as_mut().map_err(|e| *e),
        )?;
        let t0 = clock.now();
        rt("predicting", frame::predict_one(learner, x, y))?;
        let cost = clock.now() - t0;
        if !y.iter().all(|v| v.is_finite()) {
            return Err(AppError::Check("the prediction is not finite"));
        }
        (learner.plan().arena_len(), macs(learner).0, cost)
    };

    // 2. The blob's trainable layers take its steps on the sample (SGD, one sample per step).
    let s = blob.settings();
    let opts = Options {
        batch: 1,
        trainable: s.trainable,
        lr: s.lr,
    };
    let mut report = Report {
        params: blob.param_count(),
        blob_bytes: BLOB.len(),
        dtype: match blob.dtypes.first() {
            Some(anole::DType::F16) => "f16",
            Some(anole::DType::Bf16) => "bf16",
            _ => "f32",
        },
        layers: blob.layers.len(),
        adapting: 0,
        adapting_params: 0,
        predict_arena,
        adapt_arena: 0,
        inference_macs,
        step_macs: 0,
        per_inference,
        per_inference_adapted: 0,
        steps: 0,
        adapt_cost: 0,
        lr: s.lr,
        losses: [f32::NAN; MAX_LOSSES],
        last_loss: f32::NAN,
        unit: clock.unit(),
    };
    if !ADAPT || s.trainable == 0 || s.steps == 0 {
        return Ok(report);
    }
    let mut loaded = frame::load(blob, arena, opts);
    let learner = rt(
        "loading the model to adapt",
        loaded.as_mut().map_err(|e| *e),
    )?;
    report.adapt_arena = learner.plan().arena_len();
    report.step_macs = macs(learner).1;
    for node in learner.plan().nodes(blob).filter(|n| n.adapts) {
        report.adapting += 1;
        report.adapting_params += node.layer.trained_len(node.input);
    }
    for i in 0..s.steps {
        let t0 = clock.now();
        let loss = rt("adapting", frame::step(learner, x, target, s.lr))?;
        report.adapt_cost += clock.now() - t0;
        if let Some(l) = report.losses.get_mut(i as usize) {
            *l = loss;
        }
        report.last_loss = loss;
        report.steps += 1;
        if !loss.is_finite() {
            return Err(AppError::Check("a loss is not finite"));
        }
    }
    if report.steps > 1 && report.last_loss >= report.first_loss() {
        return Err(AppError::Check("the loss did not fall over the steps"));
    }

    // 3. Predict the sample again with the adapted learner.
    let t0 = clock.now();
    rt(
        "predicting after adapting",
        frame::predict_one(learner, x, y),
    )?;
    report.per_inference_adapted = clock.now() - t0;
    if !y.iter().all(|v| v.is_finite()) {
        return Err(AppError::Check(
            "the prediction after adapting is not finite",
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use board::CallCount;
    use std::boxed::Box;
    use std::vec;

    #[test]
    fn the_embedded_model_predicts_and_its_loss_falls() {
        let blob = Box::leak(Box::new(Blob::empty()));
        let (mut arena, mut x, mut t, mut y) = (
            vec![0.0; ARENA_LEN],
            vec![0.0; INPUT_LEN],
            vec![0.0; TARGET_LEN],
            vec![0.0; OUTPUT_LEN],
        );
        let r = run(blob, &mut arena, &mut x, &mut t, &mut y, &mut CallCount(0)).unwrap();
        assert_eq!(r.blob_bytes, BLOB.len());
        assert!(r.predict_arena <= ARENA_LEN && r.adapt_arena <= ARENA_LEN);
        if ADAPT {
            assert_eq!(r.steps, Blob::parse(BLOB).unwrap().settings().steps);
            assert!(r.last_loss < r.first_loss(), "{r}");
        }
    }

    #[test]
    fn a_small_arena_is_refused() {
        let blob = Box::leak(Box::new(Blob::empty()));
        let (mut arena, mut x, mut t, mut y) = (
            vec![0.0; ARENA_LEN - 1],
            vec![0.0; INPUT_LEN],
            vec![0.0; TARGET_LEN],
            vec![0.0; OUTPUT_LEN],
        );
        assert!(matches!(
            run(blob, &mut arena, &mut x, &mut t, &mut y, &mut CallCount(0)),
            Err(AppError::Runtime {
                error: anole::Error::ArenaTooSmall { .. },
                ..
            })
        ));
    }
}
