//! The user-facing engine: load a blob into an arena, predict, adapt with first-order SGD
//! (or Adam with beta1 = 0), reset to the meta-initialization, export the adapted blob.
//!
//! The same code runs every inner-loop step of meta-training on the workstation. One type,
//! [`Engine`], generic over where its blob and arena live: [`Learner`] borrows both (a
//! device's), `OwnedLearner` (feature `std`) shares its blob and owns its arena. Its methods,
//! by file:
//!
//! - `mod.rs`: the types, constructors, options, sample checks and the arena's regions;
//! - `state.rs`: parameters, optimizer state and the last gradient, read and replaced;
//! - `run.rs`: what a caller runs (gradient, step, adapt, predict, loss);
//! - `passes.rs`: the forward pass, the loss gradient and the backward pass;
//! - `optim.rs`: the SGD and Adam updates;
//! - `norm_stats.rs`: the norm statistics recomputed after adaptation;
//! - `prototypes.rs`: a classifier head started from class prototypes;
//! - `export.rs`: parameters and optimizer state written as blobs.

mod export;
mod norm_stats;
mod optim;
mod passes;
mod prototypes;
mod run;
mod state;
// On a small CNN with cross-entropy and Adam: built with the features they need.
#[cfg(all(
    test,
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
mod tests;

use crate::blob::{Blob, LossKind};
use crate::buffer::{Samples, SliceSamples};
use crate::error::{Error, Result};
use crate::limits::LayerMask;
use crate::plan::{Mode, Plan};

pub use crate::wire::TensorValues;

/// What [`Learner::gradient`] says in [`Mode::Device`] with SGD: there is no gradient buffer.
const NO_GRADIENT: Error = Error::BadSettings {
    what: "gradient() needs a learner with a gradient buffer (Mode::Buffered)",
};

/// How a learner is set up; [`Options::from_blob`] gives the blob's recommendations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Most samples per forward/backward pass (one SGD minibatch).
    pub batch: usize,
    /// Bit `i` set: layer `i` adapts.
    pub trainable: LayerMask,
    /// Learning rate of [`Learner::adapt`].
    pub lr: f32,
}

impl Options {
    /// The blob's recommended batch, trainable layers and learning rate.
    pub fn from_blob(blob: &Blob<'_>) -> Options {
        let s = blob.settings();
        Options {
            batch: s.batch as usize,
            trainable: s.trainable,
            lr: s.lr,
        }
    }
}

/// What [`Learner::adapt`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptReport {
    /// Steps taken.
    pub steps: u32,
    /// Minibatch loss at the first step (before any update).
    pub first_loss: f32,
    /// Minibatch loss at the last step (before its update).
    pub last_loss: f32,
}

/// A model loaded into an arena: the engine behind [`Learner`] (blob and arena borrowed, for
/// a device) and, with feature `std`, `OwnedLearner` (blob shared, arena owned, for
/// a host). Both have every method below; only their constructors and [`Learner::blob`]
/// differ. `B` is where the blob lives ([`BlobRef`]), `A` where the arena lives ([`Arena`]).
#[derive(Clone)]
pub struct Engine<B, A> {
    blob: B,
    plan: Plan,
    arena: A,
    opts: Options,
    steps: u32,
    /// The factor on a prototype-started head's logits, when set apart from the blob's (a
    /// host's experiments); a device's learner reads its blob's and keeps its size.
    #[cfg(feature = "std")]
    head_scale: f32,
}

/// A model loaded into a caller-provided arena, from a borrowed blob: no heap, `no_std`.
pub type Learner<'b, 'a> = Engine<&'b Blob<'b>, &'a mut [f32]>;

pub(crate) mod sealed {
    /// Implemented only by the storage types of this crate, so an engine always reads the
    /// same blob and the same arena it was planned for.
    pub trait Sealed {}
}

/// Where an [`Engine`]'s blob lives: `&Blob` ([`Learner`]) or, with feature `std`,
/// `SharedBlob` (`OwnedLearner`). Sealed.
pub trait BlobRef: sealed::Sealed {
    /// The blob.
    fn get(&self) -> &Blob<'_>;
}

/// Where an [`Engine`]'s arena lives: `&mut [f32]` ([`Learner`]) or, with feature `std`,
/// `Vec<f32>` (`OwnedLearner`). Sealed.
pub trait Arena: sealed::Sealed + AsRef<[f32]> + AsMut<[f32]> {}

impl sealed::Sealed for &Blob<'_> {}
impl BlobRef for &Blob<'_> {
    fn get(&self) -> &Blob<'_> {
        self
    }
}
impl sealed::Sealed for &mut [f32] {}
impl Arena for &mut [f32] {}

/// The arena's regions (see [`crate::plan`]), borrowed apart.
struct Regions<'r> {
    params: &'r mut [f32],
    grads: &'r mut [f32],
    #[cfg_attr(not(feature = "adam"), allow(dead_code))]
    opt: &'r mut [f32],
    acts: &'r mut [f32],
    targets: &'r mut [f32],
    gscratch: &'r mut [f32],
    norm: &'r mut [f32],
}

impl<'b, 'a> Learner<'b, 'a> {
    /// Load `blob` with its recommended settings into `arena` (at least
    /// [`Blob::arena_len`] f32 for the blob's batch).
    pub fn new(blob: &'b Blob<'b>, arena: &'a mut [f32]) -> Result<Self> {
        Self::with_options(blob, arena, Options::from_blob(blob))
    }

    /// Load `blob` into `arena` with explicit options, in [`Mode::Buffered`].
    pub fn with_options(blob: &'b Blob<'b>, arena: &'a mut [f32], opts: Options) -> Result<Self> {
        Self::with_mode(blob, arena, opts, Mode::Buffered)
    }

    /// Load `blob` into `arena` with explicit options and arena layout. [`Mode::Device`] is the
    /// microcontroller's: the arena needs [`Blob::device_arena_len`] f32 at the blob's batch
    /// (or `Plan::with_mode(..).arena_len()`).
    pub fn with_mode(
        blob: &'b Blob<'b>,
        arena: &'a mut [f32],
        opts: Options,
        mode: Mode,
    ) -> Result<Self> {
        let plan = Self::plan_for(blob, opts, mode)?;
        let needed = plan.arena_len();
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall {
                needed,
                available: arena.len(),
            });
        }
        Ok(Engine::assemble(blob, plan, &mut arena[..needed], opts))
    }

    /// The blob this learner was loaded from.
    pub fn blob(&self) -> &'b Blob<'b> {
        self.blob
    }
}

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// The arena layout for `opts` and `mode`, after checking the learning rate (every
    /// constructor's first step).
    pub(crate) fn plan_for(blob: &Blob<'_>, opts: Options, mode: Mode) -> Result<Plan> {
        if !(opts.lr.is_finite() && opts.lr >= 0.0) {
            return Err(Error::BadSettings {
                what: "learning rate must be finite and >= 0",
            });
        }
        // What the blob's validation refused, unless its fields were changed since: every arm
        // of the passes this build leaves out is then unreachable.
        for (layer, l) in blob.layers.iter().enumerate() {
            if crate::wire::Feature::missing(l.feature()).is_some() {
                let kind = l.to_raw().kind;
                return Err(Error::UnknownLayer { layer, kind });
            }
        }
        if blob.loss.missing_feature().is_some() {
            return Err(Error::BadLoss {
                code: blob.loss as u8,
            });
        }
        if blob.optimizer.missing_feature().is_some() {
            return Err(Error::BadOptimizer {
                code: blob.optimizer as u8,
            });
        }
        Plan::with_mode(blob, opts.batch, opts.trainable, mode)
    }

    /// An engine over `arena` (exactly `plan.arena_len()` long), reset to the blob's
    /// parameters.
    pub(crate) fn assemble(blob: B, plan: Plan, arena: A, opts: Options) -> Self {
        #[cfg(feature = "std")]
        let head_scale = blob.get().settings().head_scale;
        let mut l = Engine {
            blob,
            plan,
            arena,
            opts,
            steps: 0,
            #[cfg(feature = "std")]
            head_scale,
        };
        l.reset();
        l
    }

    /// Where the blob lives.
    #[cfg(feature = "std")]
    pub(crate) fn source(&self) -> &B {
        &self.blob
    }

    /// The arena layout.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// The options in force.
    pub fn options(&self) -> Options {
        self.opts
    }
    /// Set the learning rate used by [`Learner::adapt`].
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::BadSettings {
                what: "learning rate must be finite and >= 0",
            });
        }
        self.opts.lr = lr;
        Ok(())
    }
    /// Steps taken since the last reset.
    pub fn steps_taken(&self) -> u32 {
        self.steps
    }

    fn regions(&mut self) -> Regions<'_> {
        split(&self.plan, self.arena.as_mut())
    }

    fn check_sample(&self, i: usize, input: &[f32], target: Option<&[f32]>) -> Result<()> {
        let il = self.blob.get().input_len();
        if input.len() != il {
            return Err(Error::SampleLength {
                sample: i,
                expected: il,
                found: input.len(),
            });
        }
        if input.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFiniteSample { sample: i });
        }
        if let Some(t) = target {
            let tl = self.blob.get().target_len();
            if t.len() != tl {
                return Err(Error::SampleLength {
                    sample: i,
                    expected: tl,
                    found: t.len(),
                });
            }
            if t.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFiniteSample { sample: i });
            }
            if self.blob.get().loss == LossKind::CrossEntropy {
                let c = t[0];
                if c < 0.0 || c != libm::floorf(c) || c as usize >= self.blob.get().output_len() {
                    return Err(Error::BadLabel { sample: i });
                }
            }
        }
        Ok(())
    }

    fn check_all<S: Samples + ?Sized>(&self, samples: &S) -> Result<()> {
        for i in 0..samples.len() {
            self.check_sample(i, samples.input(i), Some(samples.target(i)))?;
        }
        Ok(())
    }

    /// Copy samples `idx` of `samples` into the input activations and targets.
    fn load<S: Samples + ?Sized>(
        &mut self,
        samples: &S,
        idx: impl Iterator<Item = usize>,
    ) -> usize {
        let (il, tl) = (self.blob.get().input_len(), self.blob.get().target_len());
        let r = self.regions();
        let mut n = 0;
        for i in idx {
            r.acts[n * il..(n + 1) * il].copy_from_slice(samples.input(i));
            r.targets[n * tl..(n + 1) * tl].copy_from_slice(samples.target(i));
            n += 1;
        }
        n
    }

    fn check_batch<'s>(&self, inputs: &'s [f32], targets: &'s [f32]) -> Result<SliceSamples<'s>> {
        SliceSamples::new(
            inputs,
            targets,
            self.blob.get().input_len(),
            self.blob.get().target_len(),
        )
    }

    fn loaded_batch(&mut self, s: &SliceSamples<'_>) -> Result<usize> {
        let n = s.len();
        self.check_pass_len(n)?;
        self.check_all(s)?;
        Ok(self.load(s, 0..n))
    }

    /// `n` rows fit one pass: at least one, at most the planned batch.
    fn check_pass_len(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::NoSamples);
        }
        if n > self.plan.batch {
            return Err(Error::BatchTooLarge {
                requested: n,
                capacity: self.plan.batch,
            });
        }
        Ok(())
    }

    /// The number of inputs in `inputs`, whole ones of `input_len` values each.
    fn rows(&self, inputs: &[f32]) -> Result<usize> {
        let il = self.blob.get().input_len();
        if inputs.len() % il != 0 {
            return Err(Error::SampleLength {
                sample: inputs.len() / il,
                expected: il,
                found: inputs.len() % il,
            });
        }
        Ok(inputs.len() / il)
    }

    /// `outputs` holds exactly the outputs of `n` inputs.
    fn check_outputs(&self, n: usize, outputs: &[f32]) -> Result<()> {
        let ol = self.blob.get().output_len();
        if outputs.len() != n * ol {
            return Err(Error::BufferTooSmall {
                needed: n * ol,
                available: outputs.len(),
            });
        }
        Ok(())
    }

    /// Every input of `inputs` (whole rows, see [`Engine::rows`]) is finite.
    fn check_inputs(&self, inputs: &[f32]) -> Result<()> {
        let il = self.blob.get().input_len();
        for (i, x) in inputs.chunks_exact(il).enumerate() {
            self.check_sample(i, x, None)?;
        }
        Ok(())
    }
}

/// The arena's regions, as laid out by `plan`.
fn split<'r>(p: &Plan, arena: &'r mut [f32]) -> Regions<'r> {
    let (params, rest) = arena.split_at_mut(p.params_len);
    let (grads, rest) = rest.split_at_mut(p.grads_len);
    let (opt, rest) = rest.split_at_mut(p.opt_len);
    let (acts, rest) = rest.split_at_mut(p.acts_len);
    let (targets, rest) = rest.split_at_mut(p.targets_len);
    let (gscratch, norm) = rest.split_at_mut(p.gscratch_len);
    Regions {
        params,
        grads,
        opt,
        acts,
        targets,
        gscratch,
        norm,
    }
}
