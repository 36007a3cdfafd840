//! The user-facing engine: load a blob into an arena, predict, adapt with first-order SGD
//! (or Adam with beta1 = 0), reset to the meta-initialization, export the adapted blob.
//!
//! The same code runs every inner-loop step of meta-training on the workstation.

use crate::blob::{
    Blob, DType, LossKind, Optimizer, RawTensor, Wire, MAX_TENSORS, OPTIMIZER_STATE,
};
use crate::buffer::{Samples, SliceSamples};
use crate::error::{Error, Result};
use crate::layers::{act, conv2d, dense, maxpool, norm, Layer, Shape};
use crate::loss;
use crate::plan::{Mode, Node, Plan};
use heapless::Vec as HVec;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

const ADAM_BETA2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

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
    pub trainable: u32,
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

struct Regions<'r> {
    params: &'r mut [f32],
    grads: &'r mut [f32],
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
        Plan::with_mode(blob, opts.batch, opts.trainable, mode)
    }

    /// An engine over `arena` (exactly `plan.arena_len()` long), reset to the blob's
    /// parameters.
    pub(crate) fn assemble(blob: B, plan: Plan, arena: A, opts: Options) -> Self {
        let mut l = Engine {
            blob,
            plan,
            arena,
            opts,
            steps: 0,
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

    /// Back to the meta-initialization stored in the blob; clears optimizer state.
    pub fn reset(&mut self) {
        let mut t = 0;
        for node in self.plan.nodes(self.blob.get()) {
            if !node.resident {
                t += node.layer.tensor_count();
                continue;
            }
            let mut off = node.params;
            for k in 0..node.layer.tensor_count() {
                let len = node.layer.tensor_len(node.input, k);
                self.blob
                    .get()
                    .read_tensor(t, &mut self.arena.as_mut()[off..off + len]);
                off += len;
                t += 1;
            }
        }
        let p = self.plan.params_len;
        self.arena.as_mut()[p..].fill(0.0);
        self.steps = 0;
    }

    /// The parameters in the arena, in blob tensor order, as f32: all of them in
    /// [`Mode::Buffered`]; in [`Mode::Device`] those of adapting and norm layers (frozen
    /// dense and convolution layers are read from the blob and are not here).
    pub fn params(&self) -> &[f32] {
        &self.arena.as_ref()[..self.plan.params_len]
    }

    /// Replace the parameters in the arena (e.g. the trainer's meta-parameters; the same
    /// length and order as [`Learner::params`]); clears optimizer state.
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.plan.params_len {
            return Err(Error::ParamCount {
                expected: self.plan.params_len,
                found: params.len(),
            });
        }
        if let Some(bad) = params.iter().position(|v| !v.is_finite()) {
            // Name the tensor holding the bad value.
            let mut tensor = 0;
            let mut end = 0;
            for node in self.plan.nodes(self.blob.get()) {
                if !node.resident {
                    tensor += node.layer.tensor_count();
                    continue;
                }
                for k in 0..node.layer.tensor_count() {
                    end += node.layer.tensor_len(node.input, k);
                    if bad < end {
                        return Err(Error::NonFiniteWeight { tensor });
                    }
                    tensor += 1;
                }
            }
            return Err(Error::NonFiniteWeight { tensor });
        }
        self.arena.as_mut()[..params.len()].copy_from_slice(params);
        let p = self.plan.params_len;
        self.arena.as_mut()[p..].fill(0.0);
        self.steps = 0;
        Ok(())
    }

    /// The optimizer's state: the steps taken since the last reset and the per-parameter
    /// state (Adam's second-moment estimates, one per trained parameter in gradient order;
    /// empty for SGD). With [`Learner::set_optimizer_state`] a caller can carry it from one
    /// task to the next, as the trainer's `--inner-state keep` does.
    pub fn optimizer_state(&self) -> (u32, &[f32]) {
        (self.steps, &self.arena.as_ref()[self.opt_range()])
    }

    /// Where the optimizer state lies in the arena (after the parameters and gradients).
    fn opt_range(&self) -> core::ops::Range<usize> {
        let o = self.plan.params_len + self.plan.grads_len;
        o..o + self.plan.opt_len
    }

    /// Restore a state [`Learner::optimizer_state`] returned (of a learner with the same
    /// blob and options), after [`Learner::set_params`] or [`Learner::reset`] cleared it.
    /// Nothing changes on an error.
    pub fn set_optimizer_state(&mut self, steps: u32, state: &[f32]) -> Result<()> {
        if state.len() != self.plan.opt_len {
            return Err(Error::OptimizerStateLen {
                expected: self.plan.opt_len,
                found: state.len(),
            });
        }
        if let Some(index) = state.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::BadOptimizerState { index });
        }
        let opt = self.opt_range();
        self.arena.as_mut()[opt].copy_from_slice(state);
        self.steps = steps;
        Ok(())
    }

    /// Load the optimizer state of an optimizer-state blob (written by
    /// [`Learner::export_optimizer_state`], e.g. the trainer's `init.adam.postcard`) of the
    /// same input shape and layers; its dtypes may differ. Each trained tensor of this learner
    /// takes its state from the same tensor of `state`, and the step count (Adam's bias
    /// correction) becomes the blob's `meta_iterations`. Call it after [`Learner::reset`] or
    /// [`Learner::set_params`], which clear the state. Refused, with nothing changed: a blob
    /// that is not an optimizer state ([`Error::NotOptimizerState`]), of another architecture
    /// ([`Error::ArchitectureMismatch`]), for a learner whose optimizer keeps no state
    /// ([`Error::OptimizerStateLen`]), or holding a negative value in a trained tensor
    /// ([`Error::BadOptimizerState`], indexed in [`Learner::optimizer_state`] order).
    pub fn load_optimizer_state_from(&mut self, state: &Blob<'_>) -> Result<()> {
        if state.wire.provenance.algorithm != OPTIMIZER_STATE {
            return Err(Error::NotOptimizerState);
        }
        let own = &self.blob.get().wire;
        if state.wire.input_shape != own.input_shape || state.wire.layers != own.layers {
            return Err(Error::ArchitectureMismatch);
        }
        if self.plan.opt_len == 0 {
            return Err(Error::OptimizerStateLen {
                expected: 0,
                found: self.plan.grads_len,
            });
        }
        let scales = &self.blob.get().settings().lr_scale;
        for t in trained_tensors(&self.plan, self.blob.get(), scales, 0.0) {
            let (dtype, data) = (state.dtypes[t.tensor], state.wire.tensors[t.tensor].data);
            if let Some(j) = (0..t.len).position(|j| dtype.get(data, j) < 0.0) {
                return Err(Error::BadOptimizerState { index: t.grads + j });
            }
        }
        let o = self.opt_range().start;
        for t in trained_tensors(&self.plan, self.blob.get(), scales, 0.0) {
            state.read_tensor(t.tensor, &mut self.arena.as_mut()[o + t.grads..][..t.len]);
        }
        self.steps = u32::try_from(state.wire.provenance.meta_iterations).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Start a classifier head from class prototypes: sets the model's first layer, a dense
    /// layer with one output per class, to the nearest-prototype classifier of `samples`
    /// (inputs: feature vectors, e.g. a frozen body's outputs; targets: class indices). Row c
    /// becomes 2·μ_c and bias c −‖μ_c‖², μ_c the mean input of class c, so the logits are
    /// ‖x‖² − ‖x − μ_c‖² up to the shared ‖x‖²; sums in f32 in sample order, the same bits on
    /// every target. Then [`Learner::adapt`] fine-tunes it (head-only adaptation on cached
    /// features). Clears optimizer state.
    ///
    /// Errors, with the parameters unchanged: [`Error::NotAHead`], [`Error::NoSamples`], a bad
    /// sample ([`Error::SampleLength`], [`Error::NonFiniteSample`], [`Error::BadLabel`]), or
    /// [`Error::MissingClass`]. If the features are so large that a prototype overflows, the
    /// learner is [`Learner::reset`] to the blob's parameters and the error is
    /// [`Error::NonFiniteParameter`] (step 0).
    pub fn init_prototypes<S: Samples + ?Sized>(&mut self, samples: &S) -> Result<()> {
        let node = self
            .plan
            .nodes(self.blob.get())
            .next()
            .ok_or(Error::NotAHead)?;
        let Layer::Dense { inputs, outputs } = node.layer else {
            return Err(Error::NotAHead);
        };
        if !node.resident
            || self.blob.get().loss != LossKind::CrossEntropy
            || self.blob.get().output_len() != outputs
        {
            return Err(Error::NotAHead);
        }
        let n = samples.len();
        if n == 0 {
            return Err(Error::NoSamples);
        }
        let class = |i: usize| -> Result<usize> {
            let t = samples.target(i).first().copied().unwrap_or(-1.0);
            if t >= 0.0 && t < outputs as f32 && t == libm::truncf(t) {
                Ok(t as usize)
            } else {
                Err(Error::BadLabel { sample: i })
            }
        };
        for i in 0..n {
            let x = samples.input(i);
            if x.len() != inputs {
                return Err(Error::SampleLength {
                    sample: i,
                    expected: inputs,
                    found: x.len(),
                });
            }
            if x.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFiniteSample { sample: i });
            }
            class(i)?;
        }
        for c in 0..outputs {
            if !(0..n).any(|i| class(i) == Ok(c)) {
                return Err(Error::MissingClass { class: c });
            }
        }
        let r = split(&self.plan, self.arena.as_mut());
        let (w, rest) = r.params[node.params..].split_at_mut(inputs * outputs);
        let b = &mut rest[..outputs];
        // Class sums into the weight rows, counts into the biases.
        w.fill(0.0);
        b.fill(0.0);
        for i in 0..n {
            let c = class(i)?;
            for (acc, &v) in w[c * inputs..(c + 1) * inputs]
                .iter_mut()
                .zip(samples.input(i))
            {
                *acc += v;
            }
            b[c] += 1.0;
        }
        let mut finite = true;
        for (row, bias) in w.chunks_exact_mut(inputs).zip(b.iter_mut()) {
            let count = *bias;
            let mut norm = 0.0f32;
            for v in row.iter_mut() {
                let mean = *v / count;
                norm += mean * mean;
                *v = 2.0 * mean;
                finite &= v.is_finite();
            }
            *bias = -norm;
            finite &= norm.is_finite();
        }
        if !finite {
            self.reset();
            return Err(Error::NonFiniteParameter { step: 0 });
        }
        let p = self.plan.params_len;
        self.arena.as_mut()[p..].fill(0.0);
        self.steps = 0;
        Ok(())
    }

    /// Replace all parameters with those of `other`, a blob of the same architecture (input
    /// shape, layers and tensor dtypes) as the one this learner was loaded from, such as
    /// adapted parameters exported earlier with [`Learner::export`] and persisted. Decodes
    /// straight into the arena (no intermediate buffer); clears optimizer state. The other
    /// blob's settings and provenance are ignored. A blob of another architecture is refused
    /// with [`Error::ArchitectureMismatch`] and the parameters are left unchanged. In
    /// [`Mode::Device`] frozen dense and convolution layers are read from this learner's own
    /// blob, so `other` must store the same bytes for them (else `ArchitectureMismatch`).
    pub fn load_params_from(&mut self, other: &Blob<'_>) -> Result<()> {
        let own = &self.blob.get().wire;
        if other.wire.input_shape != own.input_shape
            || other.wire.layers != own.layers
            || other.dtypes != self.blob.get().dtypes
        {
            return Err(Error::ArchitectureMismatch);
        }
        for node in self.plan.nodes(self.blob.get()).filter(|n| !n.resident) {
            for t in node.tensor0..node.tensor0 + node.layer.tensor_count() {
                if other.wire.tensors[t].data != own.tensors[t].data {
                    return Err(Error::ArchitectureMismatch);
                }
            }
        }
        let mut t = 0;
        for node in self.plan.nodes(self.blob.get()) {
            if !node.resident {
                t += node.layer.tensor_count();
                continue;
            }
            let mut off = node.params;
            for k in 0..node.layer.tensor_count() {
                let len = node.layer.tensor_len(node.input, k);
                other.read_tensor(t, &mut self.arena.as_mut()[off..off + len]);
                off += len;
                t += 1;
            }
        }
        let p = self.plan.params_len;
        self.arena.as_mut()[p..].fill(0.0);
        self.steps = 0;
        Ok(())
    }

    /// The gradient of the last [`Learner::gradient`] or step, written into `out` in
    /// parameter order (zeros for frozen layers and norm statistics).
    pub fn gradient_into(&self, out: &mut [f32]) -> Result<()> {
        if self.plan.fused {
            return Err(NO_GRADIENT);
        }
        if out.len() != self.plan.params_len {
            return Err(Error::ParamCount {
                expected: self.plan.params_len,
                found: out.len(),
            });
        }
        out.fill(0.0);
        let g0 = self.plan.params_len;
        for node in self.plan.nodes(self.blob.get()) {
            if let Some(goff) = node.grads {
                let len = node.layer.trained_len(node.input);
                out[node.params..node.params + len]
                    .copy_from_slice(&self.arena.as_ref()[g0 + goff..g0 + goff + len]);
            }
        }
        Ok(())
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

    /// Forward pass over the first `n` loaded rows through layers `..upto`. `train` uses batch
    /// statistics in trainable norm layers.
    fn forward(&mut self, n: usize, train: bool, upto: usize) {
        let trainable = self.plan.trainable;
        let r = split(&self.plan, self.arena.as_mut());
        for (i, node) in self.plan.nodes(self.blob.get()).enumerate().take(upto) {
            let (il, ol) = (node.input.len(), node.output.len());
            let params = if node.resident {
                &r.params[node.params..node.params + node.layer.param_len(node.input)]
            } else {
                &[]
            };
            if node.layer.in_place() {
                let y = &mut r.acts[node.out_slot..node.out_slot + n * ol];
                match node.layer {
                    Layer::Relu => act::relu(y),
                    Layer::Tanh => act::tanh_in_place(y),
                    _ => {}
                }
                continue;
            }
            if node.overwrites {
                // A frozen norm layer in front of the first adapting one (device layout).
                if let Layer::Norm { channels: c, eps } = node.layer {
                    let s = node.input.channels_spatial().1;
                    let xy = &mut r.acts[node.in_slot..node.in_slot + n * il];
                    let (gamma, rest) = params.split_at(c);
                    let (beta, rest) = rest.split_at(c);
                    let (mean, var) = rest.split_at(c);
                    norm::forward_stored_in_place(c, s, eps, gamma, beta, mean, var, xy, n);
                }
                continue;
            }
            // Input and output are disjoint; in the device layout's shared buffers the output
            // may come first.
            let (x, y) = if node.out_slot > node.in_slot {
                let (lo, hi) = r.acts.split_at_mut(node.out_slot);
                (&lo[node.in_slot..node.in_slot + n * il], &mut hi[..n * ol])
            } else {
                let (lo, hi) = r.acts.split_at_mut(node.in_slot);
                (
                    &hi[..n * il],
                    &mut lo[node.out_slot..node.out_slot + n * ol],
                )
            };
            match node.layer {
                Layer::Dense { inputs, outputs } if !node.resident => {
                    let (w, b) = (
                        self.blob.get().stored(node.tensor0),
                        self.blob.get().stored(node.tensor0 + 1),
                    );
                    dense::forward_from(inputs, outputs, &w, &b, x, y, n);
                }
                Layer::Dense { inputs, outputs } => {
                    let (w, b) = params.split_at(inputs * outputs);
                    dense::forward(inputs, outputs, w, b, x, y, n);
                }
                Layer::Conv2d { .. } if !node.resident => {
                    let geo = conv_geometry(&node);
                    let (w, b) = (
                        self.blob.get().stored(node.tensor0),
                        self.blob.get().stored(node.tensor0 + 1),
                    );
                    conv2d::forward_from(&geo, |i| w.get(i), |c| b.get(c), x, y, n);
                }
                Layer::Conv2d { .. } => {
                    let geo = conv_geometry(&node);
                    let (w, b) = params.split_at(params.len() - geo.cout);
                    conv2d::forward(&geo, w, b, x, y, n);
                }
                Layer::Norm { channels: c, eps } => {
                    let s = node.input.channels_spatial().1;
                    let (gamma, rest) = params.split_at(c);
                    let (beta, rest) = rest.split_at(c);
                    let (mean, var) = rest.split_at(c);
                    if train && trainable & (1 << i) != 0 {
                        let save = &mut r.norm[node.scratch..node.scratch + 2 * c];
                        norm::forward_batch(c, s, eps, gamma, beta, x, y, n, save);
                    } else {
                        norm::forward_stored(c, s, eps, gamma, beta, mean, var, x, y, n);
                    }
                }
                Layer::MaxPool2d { .. } => maxpool::forward(&pool_geometry(&node), x, y, n),
                Layer::Relu | Layer::Tanh | Layer::Flatten => {}
            }
        }
    }

    /// Loss of the first `n` loaded rows (after a full forward pass); with `grad`, also writes
    /// `dL/d(output)` over the output activations.
    fn loss_of_loaded(&mut self, n: usize, grad: bool) -> f32 {
        let (ol, tl) = (self.blob.get().output_len(), self.blob.get().target_len());
        let kind = self.blob.get().loss;
        let (out_slot, out_post) = (self.plan.out_slot, self.plan.out_post);
        let r = self.regions();
        let y = &r.acts[out_slot..out_slot + n * ol];
        let t = &r.targets[..n * tl];
        let g = if grad {
            Some(&mut r.gscratch[..n * ol])
        } else {
            None
        };
        let l = match kind {
            LossKind::Mse => loss::mse(y, t, g),
            LossKind::CrossEntropy => loss::cross_entropy(y, t, ol, g),
        };
        if grad {
            out_post.deliver(
                &r.gscratch[..n * ol],
                &mut r.acts[out_slot..out_slot + n * ol],
            );
        }
        l
    }

    /// Backward pass over the first `n` rows; the output gradient must already be in place.
    /// With `sgd = Some(lr)` (a fused plan) each adapting layer is updated as soon as its input
    /// gradient is computed: dense layers inside their kernel, the others from their own
    /// gradient buffer; returns false at the first update that would not be finite (see
    /// [`Mode::Device`]).
    fn backward(&mut self, n: usize, sgd: Option<f32>) -> bool {
        let trainable = self.plan.trainable;
        let scales = &self.blob.get().settings().lr_scale;
        let r = split(&self.plan, self.arena.as_mut());
        for i in (0..self.blob.get().layers.len()).rev() {
            let Some(node) = self.plan.node(self.blob.get(), i) else {
                continue;
            };
            if node.layer.in_place() {
                continue;
            }
            if !node.adapts && !node.input_grad {
                break;
            }
            let (il, ol) = (node.input.len(), node.output.len());
            let prange = if node.resident {
                node.params..node.params + node.layer.param_len(node.input)
            } else {
                0..0
            };
            let x = &r.acts[node.in_slot..node.in_slot + n * il];
            let g = &r.acts[node.out_slot..node.out_slot + n * ol];
            let trained = node.layer.trained_len(node.input);
            let mut pg = node.grads.map(|o| &mut r.grads[o..o + trained]);
            let gx = if node.input_grad {
                Some(&mut r.gscratch[..n * il])
            } else {
                None
            };
            match node.layer {
                Layer::Dense { inputs, outputs } if node.fused => {
                    let lr = sgd.unwrap_or(0.0);
                    let scale = |k| scales.get(node.tensor0 + k).copied().unwrap_or(1.0);
                    let (w, b) = r.params[prange].split_at_mut(inputs * outputs);
                    let (lw, lb) = (lr * scale(0), lr * scale(1));
                    if !dense::backward_sgd(inputs, outputs, w, b, x, g, gx, n, lw, lb) {
                        return false;
                    }
                }
                Layer::Dense { inputs, outputs } if !node.resident => {
                    if let Some(gx) = gx {
                        let w = self.blob.get().stored(node.tensor0);
                        dense::input_grad_from(inputs, outputs, &w, g, gx, n);
                    }
                }
                Layer::Dense { inputs, outputs } => {
                    let params = &r.params[prange];
                    let pg = pg.as_deref_mut().map(|s| s.split_at_mut(inputs * outputs));
                    dense::backward(
                        inputs,
                        outputs,
                        &params[..inputs * outputs],
                        x,
                        g,
                        pg,
                        gx,
                        n,
                    );
                }
                Layer::Conv2d { .. } if !node.resident => {
                    if let Some(gx) = gx {
                        let w = self.blob.get().stored(node.tensor0);
                        conv2d::input_grad_from(&conv_geometry(&node), |i| w.get(i), g, gx, n);
                    }
                }
                Layer::Conv2d { .. } => {
                    let params = &r.params[prange];
                    let geo = conv_geometry(&node);
                    let wl = params.len() - geo.cout;
                    let pg = pg.as_deref_mut().map(|s| s.split_at_mut(wl));
                    conv2d::backward(&geo, &params[..wl], x, g, pg, gx, n);
                }
                Layer::Norm { channels: c, eps } => {
                    let params = &r.params[prange];
                    let s = node.input.channels_spatial().1;
                    let batch = trainable & (1 << i) != 0;
                    let scratch = &mut r.norm[node.scratch..node.scratch + 2 * c];
                    if !batch {
                        scratch[..c].copy_from_slice(&params[2 * c..3 * c]);
                        norm::inv_std(&params[3 * c..4 * c], eps, &mut scratch[c..]);
                    }
                    let (mean, inv) = scratch.split_at(c);
                    let pg = pg.as_deref_mut().map(|s| s.split_at_mut(c));
                    norm::backward(c, s, batch, &params[..c], mean, inv, x, g, pg, gx, n);
                }
                Layer::MaxPool2d { .. } => {
                    if let Some(gx) = gx {
                        maxpool::backward(&pool_geometry(&node), x, g, gx, n);
                    }
                }
                Layer::Relu | Layer::Tanh | Layer::Flatten => {}
            }
            // A layer with its own gradient buffer in a fused plan: update it now, all of it
            // or nothing.
            if let (Some(lr), Some(pg), Some(goff)) = (sgd, pg, node.grads) {
                let mut ts = node_tensors(&node, goff, scales, lr);
                if !ts.all(|t| {
                    let p = &r.params[t.params..][..t.len];
                    let g = &pg[t.grads - goff..][..t.len];
                    p.iter()
                        .zip(g)
                        .fold(true, |ok, (&p, &g)| ok & (p - t.lr * g).is_finite())
                }) {
                    return false;
                }
                for t in node_tensors(&node, goff, scales, lr) {
                    let g = &pg[t.grads - goff..][..t.len];
                    for (p, &g) in r.params[t.params..][..t.len].iter_mut().zip(g) {
                        *p -= t.lr * g;
                    }
                }
            }
            if node.input_grad {
                node.in_post.deliver(
                    &r.gscratch[..n * il],
                    &mut r.acts[node.in_slot..node.in_slot + n * il],
                );
            }
        }
        true
    }

    /// Apply the update from the current gradients, or nothing if any parameter would become
    /// non-finite: a checking pass, then an applying pass, each a straight loop per tensor.
    fn update(&mut self, lr: f32) -> Result<()> {
        let step = self.steps + 1;
        let optimizer = self.blob.get().optimizer;
        let scales = &self.blob.get().settings().lr_scale;
        let bias2 = 1.0 - libm::powf(ADAM_BETA2, step as f32);
        let r = split(&self.plan, self.arena.as_mut());
        // Every new value is checked before any is written, so a failed step loses nothing.
        let finite = trained_tensors(&self.plan, self.blob.get(), scales, lr).all(|t| {
            let (p, g) = (&r.params[t.params..][..t.len], &r.grads[t.grads..][..t.len]);
            match optimizer {
                Optimizer::Sgd => sgd_finite(p, g, t.lr),
                Optimizer::AdamB1Zero => adam_finite(p, g, &r.opt[t.grads..][..t.len], t.lr, bias2),
            }
        });
        if !finite {
            return Err(Error::NonFiniteParameter { step });
        }
        for t in trained_tensors(&self.plan, self.blob.get(), scales, lr) {
            let p = &mut r.params[t.params..][..t.len];
            let g = &r.grads[t.grads..][..t.len];
            match optimizer {
                Optimizer::Sgd => sgd_apply(p, g, t.lr),
                Optimizer::AdamB1Zero => {
                    adam_apply(p, g, &mut r.opt[t.grads..][..t.len], t.lr, bias2)
                }
            }
        }
        self.steps = step;
        Ok(())
    }

    fn check_batch<'s>(&self, inputs: &'s [f32], targets: &'s [f32]) -> Result<SliceSamples<'s>> {
        SliceSamples::new(
            inputs,
            targets,
            self.blob.get().input_len(),
            self.blob.get().target_len(),
        )
    }

    /// Forward and backward on one minibatch (`inputs` `n × input_len`, `targets`
    /// `n × target_len`, `n <= batch`) without updating; returns the loss. The gradient is
    /// then available through [`Learner::gradient_into`].
    pub fn gradient(&mut self, inputs: &[f32], targets: &[f32]) -> Result<f32> {
        if self.plan.fused {
            return Err(NO_GRADIENT);
        }
        let s = self.check_batch(inputs, targets)?;
        let n = self.loaded_batch(&s)?;
        self.grad_loaded(n, None)
    }

    fn loaded_batch(&mut self, s: &SliceSamples<'_>) -> Result<usize> {
        let n = s.len();
        if n == 0 {
            return Err(Error::NoSamples);
        }
        if n > self.plan.batch {
            return Err(Error::BatchTooLarge {
                requested: n,
                capacity: self.plan.batch,
            });
        }
        self.check_all(s)?;
        Ok(self.load(s, 0..n))
    }

    /// Forward, loss and backward on the first `n` loaded rows. With `sgd = Some(lr)` on a
    /// fused plan the update is applied during the backward pass and the step is counted.
    fn grad_loaded(&mut self, n: usize, sgd: Option<f32>) -> Result<f32> {
        let layers = self.blob.get().layers.len();
        self.forward(n, true, layers);
        let l = self.loss_of_loaded(n, true);
        let step = self.steps + 1;
        if !l.is_finite() {
            return Err(Error::NonFiniteLoss { step });
        }
        let sgd = sgd.filter(|_| self.plan.fused);
        if !self.backward(n, sgd) {
            return Err(Error::NonFiniteParameter { step });
        }
        if sgd.is_some() {
            self.steps = step;
        }
        Ok(l)
    }

    /// Forward, backward and update on the first `n` loaded rows at `lr`; returns the loss.
    fn step_loaded(&mut self, n: usize, lr: f32) -> Result<f32> {
        let l = self.grad_loaded(n, Some(lr))?;
        if !self.plan.fused {
            self.update(lr)?;
        }
        Ok(l)
    }

    /// One optimizer step on one minibatch at learning rate `lr`; returns the loss before the
    /// update. On a non-finite loss or parameter the parameters are left unchanged (in
    /// [`Mode::Device`] the layers already updated in that backward pass keep their finite new
    /// values; see [`Mode::Device`]).
    pub fn step(&mut self, inputs: &[f32], targets: &[f32], lr: f32) -> Result<f32> {
        let s = self.check_batch(inputs, targets)?;
        let n = self.loaded_batch(&s)?;
        self.step_loaded(n, lr)
    }

    /// Adapt on `samples` for `steps` steps at the configured learning rate. Step `s` uses the
    /// minibatch of `min(batch, len)` samples starting at `s × minibatch` (cyclically), so a
    /// support set that fits in one batch is used whole at every step. Afterwards the
    /// statistics of trainable norm layers are recomputed from all samples (see `norm.rs`).
    ///
    /// On error the learner keeps the parameters of the last good step and still predicts: a
    /// step whose loss or update is not finite is not applied ([`Error::NonFiniteLoss`],
    /// [`Error::NonFiniteParameter`]), and statistics that would come out non-finite are not
    /// stored (the previous ones stay, [`Error::NonFiniteParameter`]). In [`Mode::Device`] a
    /// step that fails in the middle of its backward pass keeps the layers it had already
    /// updated (all parameters stay finite; see [`Mode::Device`]).
    pub fn adapt<S: Samples + ?Sized>(&mut self, samples: &S, steps: u32) -> Result<AdaptReport> {
        let len = samples.len();
        if len == 0 {
            return Err(Error::NoSamples);
        }
        self.check_all(samples)?;
        let mb = len.min(self.plan.batch);
        let mut report = AdaptReport {
            steps: 0,
            first_loss: f32::NAN,
            last_loss: f32::NAN,
        };
        for s in 0..steps as usize {
            let start = (s * mb) % len;
            let n = self.load(samples, (start..start + mb).map(|i| i % len));
            let l = self.step_loaded(n, self.opts.lr)?;
            if s == 0 {
                report.first_loss = l;
            }
            report.last_loss = l;
            report.steps += 1;
        }
        if steps > 0 {
            self.refresh_norm_stats(samples)?;
        }
        Ok(report)
    }

    /// Recompute the stored statistics of trainable norm layers from `samples`, layer by
    /// layer, each with the refreshed statistics of the layers before it. If a statistic
    /// comes out non-finite (the adapted weights overflow on these samples), every layer's
    /// previous statistics are put back and [`Error::NonFiniteParameter`] is returned.
    pub fn refresh_norm_stats<S: Samples + ?Sized>(&mut self, samples: &S) -> Result<()> {
        if samples.is_empty() {
            return Err(Error::NoSamples);
        }
        self.check_all(samples)?;
        let is_refreshed = |node: &Node| matches!(node.layer, Layer::Norm { .. }) && node.adapts;
        {
            let r = split(&self.plan, self.arena.as_mut());
            for node in self.plan.nodes(self.blob.get()).filter(is_refreshed) {
                let c = node.layer.tensor_len(node.input, 0);
                let stats = &r.params[node.params + 2 * c..node.params + 4 * c];
                r.norm[node.scratch + 2 * c..node.scratch + 4 * c].copy_from_slice(stats);
            }
        }
        for i in 0..self.blob.get().layers.len() {
            let Some(node) = self.plan.node(self.blob.get(), i) else {
                continue;
            };
            if !is_refreshed(&node) {
                continue;
            }
            let (c, s) = node.input.channels_spatial();
            let mut count = 0;
            self.regions().norm[node.scratch..node.scratch + 2 * c].fill(0.0);
            let mut start = 0;
            while start < samples.len() {
                let end = (start + self.plan.batch).min(samples.len());
                let n = self.load(samples, start..end);
                self.forward(n, false, i);
                let r = self.regions();
                let x = &r.acts[node.in_slot..node.in_slot + n * node.input.len()];
                let (mean, m2) = r.norm[node.scratch..node.scratch + 2 * c].split_at_mut(c);
                norm::accumulate(c, s, x, n, mean, m2, count);
                count += n;
                start = end;
            }
            let total = (count * s) as f32;
            let r = split(&self.plan, self.arena.as_mut());
            let (mean, m2) = r.norm[node.scratch..node.scratch + 2 * c].split_at(c);
            let stats = &mut r.params[node.params + 2 * c..node.params + 4 * c];
            stats[..c].copy_from_slice(mean);
            for (v, m) in stats[c..].iter_mut().zip(m2) {
                *v = m / total;
            }
            if stats.iter().any(|v| !v.is_finite()) {
                for node in self.plan.nodes(self.blob.get()).filter(is_refreshed) {
                    let c = node.layer.tensor_len(node.input, 0);
                    let saved = &r.norm[node.scratch + 2 * c..node.scratch + 4 * c];
                    r.params[node.params + 2 * c..node.params + 4 * c].copy_from_slice(saved);
                }
                return Err(Error::NonFiniteParameter { step: self.steps });
            }
        }
        Ok(())
    }

    /// Predict for `inputs` (`n × input_len`, any `n`), writing `n × output_len` values.
    pub fn predict(&mut self, inputs: &[f32], outputs: &mut [f32]) -> Result<()> {
        let (il, ol) = (self.blob.get().input_len(), self.blob.get().output_len());
        if inputs.len() % il != 0 {
            return Err(Error::SampleLength {
                sample: inputs.len() / il,
                expected: il,
                found: inputs.len() % il,
            });
        }
        let n = inputs.len() / il;
        if outputs.len() != n * ol {
            return Err(Error::BufferTooSmall {
                needed: n * ol,
                available: outputs.len(),
            });
        }
        for (i, x) in inputs.chunks_exact(il).enumerate() {
            self.check_sample(i, x, None)?;
        }
        let layers = self.blob.get().layers.len();
        let out_slot = self.plan.out_slot;
        for (xin, yout) in inputs
            .chunks(self.plan.batch * il)
            .zip(outputs.chunks_mut(self.plan.batch * ol))
        {
            let m = xin.len() / il;
            self.regions().acts[..xin.len()].copy_from_slice(xin);
            self.forward(m, false, layers);
            yout.copy_from_slice(&self.regions().acts[out_slot..out_slot + m * ol]);
        }
        Ok(())
    }

    /// Predict one sample: `input` holds `input_len` floats, `output` receives `output_len`.
    /// The same result as [`Learner::predict`] on one sample, without its batching: the
    /// cheaper call for a device that predicts each reading as it arrives (the C API's
    /// per-sample path).
    pub fn predict_one(&mut self, input: &[f32], output: &mut [f32]) -> Result<()> {
        let (il, ol) = (self.blob.get().input_len(), self.blob.get().output_len());
        if input.len() != il {
            return Err(Error::SampleLength {
                sample: 0,
                expected: il,
                found: input.len(),
            });
        }
        if output.len() != ol {
            return Err(Error::BufferTooSmall {
                needed: ol,
                available: output.len(),
            });
        }
        self.check_sample(0, input, None)?;
        let layers = self.blob.get().layers.len();
        let out_slot = self.plan.out_slot;
        self.regions().acts[..il].copy_from_slice(input);
        self.forward(1, false, layers);
        output.copy_from_slice(&self.regions().acts[out_slot..out_slot + ol]);
        Ok(())
    }

    /// Predict for `inputs` (`n × input_len`, `1 <= n <= batch`) with the *batch* statistics
    /// of these rows in every trainable norm layer, as the forward pass of an adaptation step
    /// computes them (frozen norm layers use their stored statistics, as in every pass). This
    /// is transductive: each row's output depends on the other rows. It is what meta-training
    /// and the paper's transductive evaluation measure; a device predicts per sample with
    /// [`Learner::predict`]. Parameters and stored statistics are not changed.
    pub fn predict_batch_stats(&mut self, inputs: &[f32], outputs: &mut [f32]) -> Result<()> {
        let (il, ol) = (self.blob.get().input_len(), self.blob.get().output_len());
        if inputs.len() % il != 0 {
            return Err(Error::SampleLength {
                sample: inputs.len() / il,
                expected: il,
                found: inputs.len() % il,
            });
        }
        let n = inputs.len() / il;
        if n == 0 {
            return Err(Error::NoSamples);
        }
        if n > self.plan.batch {
            return Err(Error::BatchTooLarge {
                requested: n,
                capacity: self.plan.batch,
            });
        }
        if outputs.len() != n * ol {
            return Err(Error::BufferTooSmall {
                needed: n * ol,
                available: outputs.len(),
            });
        }
        for (i, x) in inputs.chunks_exact(il).enumerate() {
            self.check_sample(i, x, None)?;
        }
        let layers = self.blob.get().layers.len();
        let out_slot = self.plan.out_slot;
        self.regions().acts[..inputs.len()].copy_from_slice(inputs);
        self.forward(n, true, layers);
        outputs.copy_from_slice(&self.regions().acts[out_slot..out_slot + n * ol]);
        Ok(())
    }

    /// Predicted class (argmax of the output) of one input.
    pub fn classify(&mut self, input: &[f32]) -> Result<usize> {
        let mut out = [0.0f32; 256];
        let ol = self.blob.get().output_len();
        if ol > out.len() {
            return Err(Error::BufferTooSmall {
                needed: ol,
                available: out.len(),
            });
        }
        self.predict(input, &mut out[..ol])?;
        Ok(loss::argmax(&out[..ol]))
    }

    /// Mean loss over `samples` with stored normalisation statistics (no update).
    pub fn loss<S: Samples + ?Sized>(&mut self, samples: &S) -> Result<f32> {
        let len = samples.len();
        if len == 0 {
            return Err(Error::NoSamples);
        }
        self.check_all(samples)?;
        let layers = self.blob.get().layers.len();
        let mut total = 0.0f32;
        let mut start = 0;
        while start < len {
            let end = (start + self.plan.batch).min(len);
            let n = self.load(samples, start..end);
            self.forward(n, false, layers);
            total += self.loss_of_loaded(n, false) * n as f32;
            start = end;
        }
        Ok(total / len as f32)
    }

    fn wire(&self) -> Wire<'_, Exported<'_>> {
        let w = &self.blob.get().wire;
        let mut tensors: HVec<Exported<'_>, MAX_TENSORS> = HVec::new();
        for node in self.plan.nodes(self.blob.get()) {
            if !node.resident {
                for t in node.tensor0..node.tensor0 + node.layer.tensor_count() {
                    let _ = tensors.push(Exported::Stored(w.tensors[t]));
                }
                continue;
            }
            let mut off = node.params;
            for k in 0..node.layer.tensor_count() {
                let len = node.layer.tensor_len(node.input, k);
                let _ = tensors.push(Exported::Values(TensorValues {
                    dtype: self.blob.get().dtypes[node.tensor0 + k],
                    values: &self.arena.as_ref()[off..off + len],
                }));
                off += len;
            }
        }
        self.wire_with(tensors, w.provenance)
    }

    /// This learner's blob's header, layers and settings with `tensors` and `provenance`.
    fn wire_with<'s, 't>(
        &'s self,
        tensors: HVec<Exported<'t>, MAX_TENSORS>,
        provenance: crate::blob::Provenance<'s>,
    ) -> Wire<'s, Exported<'t>> {
        let w = &self.blob.get().wire;
        Wire {
            magic: w.magic,
            version: w.version,
            input_shape: w.input_shape.clone(),
            layers: w.layers.clone(),
            tensors,
            adapt: w.adapt.clone(),
            provenance,
        }
    }

    /// An optimizer-state blob of this learner's architecture: each trained tensor holds its
    /// optimizer state (Adam's second moments), every other tensor (and, under SGD, which
    /// keeps no state, every tensor) zeros; provenance
    /// algorithm [`OPTIMIZER_STATE`], `meta_iterations` the optimizer steps taken.
    fn state_wire(&self) -> Wire<'_, Exported<'_>> {
        let opt = &self.arena.as_ref()[self.opt_range()];
        let scales = &self.blob.get().settings().lr_scale;
        let mut trained = trained_tensors(&self.plan, self.blob.get(), scales, 0.0).peekable();
        let mut tensors: HVec<Exported<'_>, MAX_TENSORS> = HVec::new();
        for node in self.plan.nodes(self.blob.get()) {
            for k in 0..node.layer.tensor_count() {
                let t = node.tensor0 + k;
                let dtype = self.blob.get().dtypes[t];
                // SGD keeps no state: its trained tensors are zeros too.
                let state = trained
                    .next_if(|tr| tr.tensor == t)
                    .and_then(|tr| opt.get(tr.grads..tr.grads + tr.len));
                let tensor = match state {
                    Some(values) => Exported::Values(TensorValues { dtype, values }),
                    None => Exported::Zeros {
                        dtype,
                        len: node.layer.tensor_len(node.input, k),
                    },
                };
                let _ = tensors.push(tensor);
            }
        }
        let mut provenance = self.blob.get().wire.provenance;
        provenance.algorithm = OPTIMIZER_STATE;
        provenance.meta_iterations = self.steps as u64;
        self.wire_with(tensors, provenance)
    }

    /// Bytes [`Learner::export_optimizer_state`] writes.
    pub fn optimizer_state_len(&self) -> usize {
        crate::blob::encoded_len(&self.state_wire())
    }

    /// Write the optimizer's state as an optimizer-state blob into `out`: the architecture,
    /// dtypes and settings of this learner's blob, the optimizer state (Adam's second moments)
    /// in each trained tensor, zeros in the others (all zeros under SGD, which keeps no
    /// state), and the steps taken in the provenance's `meta_iterations`, under algorithm
    /// [`OPTIMIZER_STATE`]. A learner of the same architecture continues from it with
    /// [`Learner::load_optimizer_state_from`].
    pub fn export_optimizer_state<'o>(&self, out: &'o mut [u8]) -> Result<&'o [u8]> {
        Blob::encode_wire(&self.state_wire(), out)
    }

    /// [`Learner::export_optimizer_state`] into a fresh vector (host convenience).
    #[cfg(feature = "std")]
    pub fn export_optimizer_state_vec(&self) -> std::vec::Vec<u8> {
        crate::blob::encode_to_vec(&self.state_wire())
    }

    /// Bytes [`Learner::export`] writes.
    pub fn export_len(&self) -> usize {
        crate::blob::encoded_len(&self.wire())
    }

    /// Write the current (adapted) parameters as a blob into `out`, with the source blob's
    /// architecture, dtypes, settings and provenance. Unadapted, the output is bit-identical
    /// to the source blob.
    pub fn export<'o>(&self, out: &'o mut [u8]) -> Result<&'o [u8]> {
        Blob::encode_wire(&self.wire(), out)
    }

    /// Export into a fresh vector (host convenience).
    #[cfg(feature = "std")]
    pub fn export_vec(&self) -> std::vec::Vec<u8> {
        crate::blob::encode_to_vec(&self.wire())
    }
}

#[cfg(feature = "std")]
extern crate std;

/// One trained tensor: where its parameters and gradient (and Adam state) start, its length
/// and its learning rate.
struct Trained {
    /// Index of the tensor in the blob.
    tensor: usize,
    params: usize,
    grads: usize,
    len: usize,
    lr: f32,
}

/// The tensors an update changes: the trained tensors of adapting layers (a norm layer's
/// statistics are not trained), each with `lr` times its per-tensor scale.
fn trained_tensors<'p>(
    plan: &'p Plan,
    blob: &'p Blob<'_>,
    scales: &'p [f32],
    lr: f32,
) -> impl Iterator<Item = Trained> + 'p {
    plan.nodes(blob)
        .filter_map(move |node| node.grads.map(|g| (node, g)))
        .flat_map(move |(node, goff)| node_tensors(&node, goff, scales, lr))
}

/// The trained tensors of one adapting layer whose gradient starts at `goff`.
fn node_tensors<'p>(
    node: &Node,
    goff: usize,
    scales: &'p [f32],
    lr: f32,
) -> impl Iterator<Item = Trained> + 'p {
    let node = *node;
    let trained = node.layer.trained_len(node.input);
    let mut off = 0;
    (0..node.layer.tensor_count()).map_while(move |k| {
        let len = node.layer.tensor_len(node.input, k);
        let start = off;
        off += len;
        (off <= trained).then(|| Trained {
            tensor: node.tensor0 + k,
            params: node.params + start,
            grads: goff + start,
            len,
            lr: lr * scales.get(node.tensor0 + k).copied().unwrap_or(1.0),
        })
    })
}

/// Adam with beta1 = 0: new parameter and second-moment estimate.
#[inline(always)]
fn adam(p: f32, g: f32, v: f32, lr: f32, bias2: f32) -> (f32, f32) {
    let v = ADAM_BETA2 * v + (1.0 - ADAM_BETA2) * g * g;
    (p - lr * g / (crate::simd::sqrt(v / bias2) + ADAM_EPS), v)
}

/// Lanes of the finiteness checks: each lane's `z` stays 0 while every value it sees is
/// finite and becomes NaN otherwise (a multiply-add per value, no branch), so the check
/// vectorizes.
const CHECK_LANES: usize = 8;

/// True when `f(p, g, v)` is finite for every element of the three slices (the shortest
/// length; pass `g` again as `v` when there is no third).
#[inline(always)]
fn all_finite(p: &[f32], g: &[f32], v: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> bool {
    const L: usize = CHECK_LANES;
    let mut z = [0.0f32; L];
    let (mut pc, mut gc, mut vc) = (p.chunks_exact(L), g.chunks_exact(L), v.chunks_exact(L));
    for ((pc, gc), vc) in (&mut pc).zip(&mut gc).zip(&mut vc) {
        for k in 0..L {
            z[k] += f(pc[k], gc[k], vc[k]) * 0.0;
        }
    }
    for ((&p, &g), &v) in pc
        .remainder()
        .iter()
        .zip(gc.remainder())
        .zip(vc.remainder())
    {
        z[0] += f(p, g, v) * 0.0;
    }
    z.iter().all(|&v| v == 0.0)
}

crate::simd::host_simd! {
    /// Whether every parameter SGD would write (`p - lr·g`) is finite.
    fn sgd_finite(p: &[f32], g: &[f32], lr: f32) -> bool => sgd_finite_kernel
}

#[inline(always)]
fn sgd_finite_kernel(p: &[f32], g: &[f32], lr: f32) -> bool {
    all_finite(p, g, g, |p, g, _| p - lr * g)
}

crate::simd::host_simd! {
    /// `p -= lr·g`.
    fn sgd_apply(p: &mut [f32], g: &[f32], lr: f32) => sgd_apply_kernel
}

#[inline(always)]
fn sgd_apply_kernel(p: &mut [f32], g: &[f32], lr: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= lr * g;
    }
}

crate::simd::host_simd! {
    /// Whether every parameter Adam would write is finite.
    fn adam_finite(p: &[f32], g: &[f32], v: &[f32], lr: f32, bias2: f32) -> bool => adam_finite_kernel
}

#[inline(always)]
fn adam_finite_kernel(p: &[f32], g: &[f32], v: &[f32], lr: f32, bias2: f32) -> bool {
    all_finite(p, g, v, |p, g, v| adam(p, g, v, lr, bias2).0)
}

crate::simd::host_simd! {
    /// One Adam (β1 = 0) step over a tensor: parameters `p` and second moments `v`.
    fn adam_apply(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, bias2: f32) => adam_apply_kernel
}

#[inline(always)]
fn adam_apply_kernel(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, bias2: f32) {
    for ((p, &g), v) in p.iter_mut().zip(g).zip(v) {
        (*p, *v) = adam(*p, g, *v, lr, bias2);
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

fn conv_geometry(node: &Node) -> conv2d::Geometry {
    match (node.layer, node.input, node.output) {
        (Layer::Conv2d { window, .. }, Shape::Chw(cin, h, w), Shape::Chw(cout, oh, ow)) => {
            conv2d::Geometry {
                cin,
                h,
                w,
                cout,
                oh,
                ow,
                win: window,
            }
        }
        // Validated at load: a conv node always has image shapes.
        _ => conv2d::Geometry {
            cin: 0,
            h: 0,
            w: 0,
            cout: 0,
            oh: 0,
            ow: 0,
            win: crate::layers::Window {
                kernel: 1,
                stride: 1,
                padding: 0,
            },
        },
    }
}

fn pool_geometry(node: &Node) -> maxpool::Geometry {
    match (node.layer, node.input, node.output) {
        (Layer::MaxPool2d { window }, Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) => {
            maxpool::Geometry {
                c,
                h,
                w,
                oh,
                ow,
                win: window,
            }
        }
        _ => maxpool::Geometry {
            c: 0,
            h: 0,
            w: 0,
            oh: 0,
            ow: 0,
            win: crate::layers::Window {
                kernel: 1,
                stride: 1,
                padding: 0,
            },
        },
    }
}

/// A tensor given as f32 values, encoded to its dtype while serializing. Its wire form is
/// identical to [`crate::blob::RawTensor`]; writers (the learner's export, the trainer) use it
/// to produce blobs without an intermediate byte buffer.
#[derive(Clone, Copy, Debug)]
pub struct TensorValues<'v> {
    /// Storage dtype.
    pub dtype: DType,
    /// Values.
    pub values: &'v [f32],
}

/// A tensor of an exported blob: values from the arena, or a frozen layer's tensor copied as
/// stored. Both serialize as a [`crate::blob::RawTensor`].
#[derive(Clone, Copy, Debug)]
enum Exported<'v> {
    Values(TensorValues<'v>),
    Stored(RawTensor<'v>),
    /// `len` zeros.
    Zeros {
        dtype: DType,
        len: usize,
    },
}

impl Serialize for Exported<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        match self {
            Exported::Values(t) => t.serialize(s),
            Exported::Stored(t) => t.serialize(s),
            Exported::Zeros { dtype, len } => {
                let mut st = s.serialize_struct("RawTensor", 2)?;
                st.serialize_field("dtype", &(*dtype as u8))?;
                st.serialize_field("data", &ZeroBytes(len * dtype.size()))?;
                st.end()
            }
        }
    }
}

/// A byte sequence of this many zeros (0.0 in every dtype).
struct ZeroBytes(usize);

impl Serialize for ZeroBytes {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0))?;
        for _ in 0..self.0 {
            seq.serialize_element(&0u8)?;
        }
        seq.end()
    }
}

struct Encoded<'v>(TensorValues<'v>);

impl Serialize for Encoded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let t = self.0;
        let size = t.dtype.size();
        let mut seq = s.serialize_seq(Some(t.values.len() * size))?;
        let mut buf = [0u8; 4];
        for &v in t.values {
            t.dtype.put(v, &mut buf[..size]);
            for b in &buf[..size] {
                seq.serialize_element(b)?;
            }
        }
        seq.end()
    }
}

impl Serialize for TensorValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RawTensor", 2)?;
        st.serialize_field("dtype", &(self.dtype as u8))?;
        st.serialize_field("data", &Encoded(*self))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{AdaptSettings, Provenance, FORMAT_VERSION, MAGIC};
    use crate::layers::Window;

    const BATCH: usize = 4;
    const IN: usize = 2 * 3 * 3;

    /// conv 3×3 (2 → 3 channels, padding 1) → norm → ReLU → flatten → dense 27 → 2, on
    /// 2×3×3 inputs, cross-entropy; parameters from a fixed formula, stored statistics
    /// deliberately unlike any batch's.
    fn blob_bytes(buf: &mut [u8]) -> &[u8] {
        blob_bytes_with(buf, 0)
    }

    /// [`blob_bytes`] with optimizer code `optimizer`.
    fn blob_bytes_with(buf: &mut [u8], optimizer: u8) -> &[u8] {
        let layers = [
            Layer::Conv2d {
                in_channels: 2,
                out_channels: 3,
                window: Window {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
            },
            Layer::Norm {
                channels: 3,
                eps: 1e-3,
            },
            Layer::Relu,
            Layer::Flatten,
            Layer::Dense {
                inputs: 27,
                outputs: 2,
            },
        ];
        let wave = |n: usize, k: f32| -> [f32; 54] {
            let mut v = [0.0; 54];
            for (i, x) in v.iter_mut().enumerate().take(n) {
                *x = 0.3 * libm::sinf(k * (i as f32 + 1.0));
            }
            v
        };
        let (cw, cb, dw, db) = (wave(54, 1.3), wave(3, 2.1), wave(54, 0.7), wave(2, 3.3));
        let (gamma, beta, mean, var) = ([1.2, 0.8, 1.0], [0.1, -0.2, 0.3], [0.5; 3], [4.0; 3]);
        let tensors: [&[f32]; 8] = [&cw, &cb[..3], &gamma, &beta, &mean, &var, &dw, &db[..2]];
        let mut wire = Wire {
            magic: MAGIC,
            version: FORMAT_VERSION,
            input_shape: HVec::new(),
            layers: HVec::new(),
            tensors: HVec::<TensorValues<'_>, MAX_TENSORS>::new(),
            adapt: AdaptSettings {
                loss: 1,
                optimizer,
                lr: 0.1,
                steps: 5,
                batch: BATCH as u32,
                trainable: 0b11111,
                lr_scale: HVec::new(),
            },
            provenance: Provenance {
                algorithm: "test",
                task: "test",
                seed: 0,
                meta_iterations: 0,
            },
        };
        for d in [2, 3, 3] {
            wire.input_shape.push(d).unwrap();
        }
        for l in layers {
            wire.layers.push(l.to_raw()).unwrap();
        }
        for values in tensors {
            let _ = wire.tensors.push(TensorValues {
                dtype: DType::F32,
                values,
            });
        }
        Blob::encode_wire(&wire, buf).unwrap()
    }

    fn inputs(shift: f32) -> [f32; BATCH * IN] {
        let mut x = [0.0; BATCH * IN];
        for (i, v) in x.iter_mut().enumerate() {
            *v = libm::sinf(0.37 * i as f32 + shift) + 0.1 * (i % 5) as f32;
        }
        x
    }

    /// Four Adam steps in one go equal two, then the parameters and optimizer state carried
    /// into a learner that had taken other steps, then two more: bit for bit.
    #[test]
    fn carried_optimizer_state_continues_exactly() {
        let mut buf = [0u8; 4096];
        let bytes = blob_bytes_with(&mut buf, 1);
        let blob = Blob::parse(bytes).unwrap();
        let y = [0.0, 1.0, 1.0, 0.0];
        let mut a_arena = [0.0f32; 4096];
        let mut a = Learner::new(&blob, &mut a_arena).unwrap();
        for s in 0..4 {
            a.step(&inputs(s as f32), &y, 0.01).unwrap();
        }
        let mut b_arena = [0.0f32; 4096];
        let mut b = Learner::new(&blob, &mut b_arena).unwrap();
        for s in 0..2 {
            b.step(&inputs(s as f32), &y, 0.01).unwrap();
        }
        let (steps, state) = b.optimizer_state();
        assert_eq!(steps, 2);
        assert!(state.iter().any(|&v| v > 0.0));
        let mut c_arena = [0.0f32; 4096];
        let mut c = Learner::new(&blob, &mut c_arena).unwrap();
        c.step(&inputs(9.0), &y, 0.05).unwrap();
        c.set_params(b.params()).unwrap();
        assert_eq!(c.optimizer_state().0, 0);
        assert!(c.optimizer_state().1.iter().all(|&v| v == 0.0));
        c.set_optimizer_state(steps, state).unwrap();
        for s in 2..4 {
            c.step(&inputs(s as f32), &y, 0.01).unwrap();
        }
        assert_eq!(c.params(), a.params());
        assert_eq!(c.optimizer_state(), a.optimizer_state());
        // The same through an optimizer-state blob.
        let mut sbuf = [0u8; 4096];
        let sbytes = b.export_optimizer_state(&mut sbuf).unwrap();
        assert_eq!(sbytes.len(), b.optimizer_state_len());
        let sblob = Blob::parse(sbytes).unwrap();
        assert_eq!(sblob.wire.provenance.algorithm, OPTIMIZER_STATE);
        let mut d_arena = [0.0f32; 4096];
        let mut d = Learner::new(&blob, &mut d_arena).unwrap();
        assert_eq!(
            d.load_optimizer_state_from(&blob),
            Err(Error::NotOptimizerState)
        );
        d.set_params(b.params()).unwrap();
        d.load_optimizer_state_from(&sblob).unwrap();
        assert_eq!(d.optimizer_state(), b.optimizer_state());
        for s in 2..4 {
            d.step(&inputs(s as f32), &y, 0.01).unwrap();
        }
        assert_eq!(d.params(), a.params());
        // A refused state changes nothing.
        let before = c.params().to_vec();
        let mut bad = c.optimizer_state().1.to_vec();
        bad[0] = f32::NAN;
        assert_eq!(
            c.set_optimizer_state(7, &bad),
            Err(Error::BadOptimizerState { index: 0 })
        );
        assert_eq!(c.optimizer_state(), a.optimizer_state());
        assert_eq!(c.params(), &before[..]);
    }

    /// SGD keeps no optimizer state: its optimizer-state blob holds zeros in every tensor,
    /// in both layouts (the device layout has gradient buffers but no state).
    #[test]
    fn sgd_exports_an_all_zero_optimizer_state() {
        let mut buf = [0u8; 4096];
        let bytes = blob_bytes(&mut buf);
        let blob = Blob::parse(bytes).unwrap();
        let y = [0.0, 1.0, 1.0, 0.0];
        for mode in [Mode::Buffered, Mode::Device] {
            let mut arena = [0.0f32; 4096];
            let mut l =
                Learner::with_mode(&blob, &mut arena, Options::from_blob(&blob), mode).unwrap();
            l.step(&inputs(0.0), &y, 0.01).unwrap();
            let mut sbuf = [0u8; 4096];
            let sbytes = l.export_optimizer_state(&mut sbuf).unwrap();
            assert_eq!(sbytes.len(), l.optimizer_state_len());
            let state = Blob::parse(sbytes).unwrap();
            assert_eq!(state.wire.provenance.algorithm, OPTIMIZER_STATE);
            assert_eq!(state.wire.provenance.meta_iterations, 1);
            assert!(state
                .wire
                .tensors
                .iter()
                .all(|t| t.data.iter().all(|&b| b == 0)));
        }
    }

    #[test]
    fn predict_batch_stats_is_the_adaptation_forward_pass() {
        let mut buf = [0u8; 4096];
        let bytes = blob_bytes(&mut buf);
        let blob = Blob::parse(bytes).unwrap();
        let x = inputs(0.0);
        let y = [0.0, 1.0, 1.0, 0.0];
        let mut arena = [0.0f32; 4096];
        let mut l = Learner::new(&blob, &mut arena).unwrap();
        let mut params = [0.0f32; 512];
        let np = l.params().len();
        params[..np].copy_from_slice(l.params());

        let mut out = [0.0f32; BATCH * 2];
        l.predict_batch_stats(&x, &mut out).unwrap();
        assert_eq!(l.params(), &params[..np], "parameters changed");
        // Its outputs give exactly the loss of a gradient step's forward pass on these rows.
        let ce = loss::cross_entropy(&out, &y, 2, None);
        assert_eq!(ce, l.gradient(&x, &y).unwrap());
        // Stored statistics set to these rows' statistics give the same outputs per sample.
        let mut stored = [0.0f32; BATCH * 2];
        l.refresh_norm_stats(&SliceSamples::new(&x, &y, IN, 1).unwrap())
            .unwrap();
        l.predict(&x, &mut stored).unwrap();
        for (a, b) in out.iter().zip(&stored) {
            assert!((a - b).abs() < 1e-5, "{out:?} vs {stored:?}");
        }
        // ... but not with the blob's own statistics, and a row depends on the other rows.
        l.reset();
        l.predict(&x, &mut stored).unwrap();
        assert!(out.iter().zip(&stored).any(|(a, b)| (a - b).abs() > 1e-3));
        let mut other = inputs(1.0);
        other[..IN].copy_from_slice(&x[..IN]);
        let mut out2 = [0.0f32; BATCH * 2];
        l.predict_batch_stats(&other, &mut out2).unwrap();
        assert_ne!(out[..2], out2[..2]);
        // Fewer rows than the batch are fine; more, none, or a wrong buffer are refused.
        l.predict_batch_stats(&x[..2 * IN], &mut out[..4]).unwrap();
        let mut big = [0.0f32; (BATCH + 1) * IN];
        big[..BATCH * IN].copy_from_slice(&x);
        let mut big_out = [0.0f32; (BATCH + 1) * 2];
        assert_eq!(
            l.predict_batch_stats(&big, &mut big_out),
            Err(Error::BatchTooLarge {
                requested: BATCH + 1,
                capacity: BATCH
            })
        );
        assert_eq!(l.predict_batch_stats(&[], &mut []), Err(Error::NoSamples));
        assert!(l.predict_batch_stats(&x, &mut out[..3]).is_err());
    }

    #[test]
    fn frozen_norm_layers_keep_stored_statistics() {
        let mut buf = [0u8; 4096];
        let bytes = blob_bytes(&mut buf);
        let blob = Blob::parse(bytes).unwrap();
        let x = inputs(0.5);
        let mut arena = [0.0f32; 4096];
        let opts = Options {
            trainable: 1 << 4,
            ..Options::from_blob(&blob)
        };
        let mut l = Learner::with_options(&blob, &mut arena, opts).unwrap();
        let (mut a, mut b) = ([0.0f32; BATCH * 2], [0.0f32; BATCH * 2]);
        l.predict_batch_stats(&x, &mut a).unwrap();
        l.predict(&x, &mut b).unwrap();
        assert_eq!(a, b);
    }
}
