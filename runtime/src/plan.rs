//! Arena layout: where parameters, gradients, optimizer state, activations and scratch live
//! in the caller's `&mut [f32]`, computed once at load for a batch size, a set of trainable
//! layers and a [`Mode`].
//!
//! ```text
//! | params | grads | adam v (Adam only) | activations | targets | grad scratch | norm scratch |
//! ```
//! Activations: one buffer per layer output at `batch` rows; ReLU, Tanh and Flatten work in
//! place, so they add none. The backward pass writes each gradient over the activation it
//! belongs to, so the only extra is one scratch of the largest layer input that needs a
//! gradient.
//!
//! [`Mode::Buffered`] (the default) keeps every parameter and a gradient for every trained
//! parameter. [`Mode::Device`] is the microcontroller layout: with SGD a dense layer's update
//! is fused into the backward pass (no gradient buffer for it), and the parameters of frozen
//! dense and convolution layers are not copied: they are read from the blob (flash) where they
//! are.

use crate::blob::{Blob, Optimizer};
use crate::error::{Error, Result};
use crate::layers::{Layer, Post, Shape};
use crate::limits::{names_beyond, LayerMask};

/// How the arena is laid out, which decides what the learner can do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every parameter in the arena and a gradient buffer for the trained ones: a failed step
    /// rolls back exactly, [`crate::Learner::gradient`] works. The host's layout.
    #[default]
    Buffered,
    /// The smallest arena: with SGD, dense layers are updated during the backward pass as soon
    /// as their input gradient is computed (no gradient buffer for them; convolution and norm
    /// layers keep one for their own parameters), and the parameters of frozen dense and
    /// convolution layers stay in the blob, read as stored (f32, f16 or bf16) by the kernels;
    /// norm layers' few values are always copied. A failed step changes nothing when its loss
    /// is not finite; a non-finite update is caught before it is written, but layers updated
    /// earlier in that backward pass keep their (finite) new values. No
    /// [`crate::Learner::gradient`]. With Adam the adapting layers keep their gradient and
    /// state buffers (Adam needs them).
    Device,
}

/// One layer's place in the arena, with the layer and its shapes (a view assembled by
/// [`Plan::node`] from the blob).
#[derive(Clone, Copy, Debug)]
pub struct Node {
    /// The layer.
    pub layer: Layer,
    /// Per-sample input shape.
    pub input: Shape,
    /// Per-sample output shape.
    pub output: Shape,
    /// Offset of the input activations in the activation region.
    pub in_slot: usize,
    /// Offset of the output activations (equal to `in_slot` for in-place layers).
    pub out_slot: usize,
    /// Whether the output is written over the input (activations, flatten, and in
    /// [`Mode::Device`] the norm layers in front of the first adapting layer).
    pub overwrites: bool,
    /// Activations applied in place to the input buffer (their derivative is applied when a
    /// gradient is written there).
    pub in_post: Post,
    /// Whether this layer's parameters are in the arena's parameter region (always in
    /// [`Mode::Buffered`]; in [`Mode::Device`] for adapting and norm layers only: the others
    /// are read from the blob).
    pub resident: bool,
    /// Offset of this layer's parameters in the parameter region (meaningful when `resident`).
    pub params: usize,
    /// Index of this layer's first tensor in the blob.
    pub tensor0: usize,
    /// Whether the layer adapts.
    pub adapts: bool,
    /// Offset of this layer's gradient (and Adam state) when the layer adapts and has a
    /// gradient buffer (not a dense layer updated in the backward pass).
    pub grads: Option<usize>,
    /// Whether the layer's dense update is fused into the backward pass.
    pub fused: bool,
    /// Whether the gradient with respect to the input is needed (a trainable layer precedes).
    pub input_grad: bool,
    /// Offset of this layer's scratch in the norm-scratch region (norm layers: `2 × C` for
    /// the saved batch statistics, and `2 × C` more when the layer adapts, for a copy of its
    /// stored statistics while they are recomputed).
    pub scratch: usize,
    /// When a later layer reads this layer's input again (a residual addition or a branch):
    /// the offset in the activation region of the gradient those readers send it, `batch`
    /// rows right after the input's own buffer, added to this layer's input gradient. Only
    /// in builds with the `extra-layers` kinds (see [`Node::in_side`]).
    #[cfg(feature = "extra-layers")]
    pub in_side: Option<usize>,
}

impl Node {
    /// See the field `in_side` (always `None` without the `extra-layers` kinds, so a chain's
    /// node stays as small as it was).
    #[inline(always)]
    pub fn in_side(&self) -> Option<usize> {
        #[cfg(feature = "extra-layers")]
        return self.in_side;
        #[cfg(not(feature = "extra-layers"))]
        None
    }
}

/// Whether this build has the layer kinds that read an earlier value again (`extra-layers`):
/// without them every test of it below is false at compile time, and the device builds of
/// chains keep the code and instruction counts they had.
pub(crate) const READS_AGAIN: bool = cfg!(feature = "extra-layers");

/// Whether the blob has a layer that reads an earlier value again.
pub(crate) fn reads_again(blob: &Blob<'_>) -> bool {
    READS_AGAIN && blob.layers.iter().any(|l| l.reads().is_some())
}

/// Whether a layer reads value `k` (the input of layer `k`) again.
fn referenced(blob: &Blob<'_>, k: usize) -> bool {
    READS_AGAIN && blob.layers.iter().any(|l| l.reads() == Some(k))
}

/// The value a fresh output buffer of layer `j` holds last: the input of the next layer that
/// does not work in place (the layers between work in that buffer).
fn last_value_in(blob: &Blob<'_>, j: usize) -> usize {
    let n = blob.layers.len();
    (j + 1..n)
        .find(|&m| !blob.layers[m].in_place())
        .unwrap_or(n)
}

/// The full arena layout.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Largest number of samples in one forward or backward pass.
    pub batch: usize,
    /// f32 of parameters in the arena: every tensor in [`Mode::Buffered`]; in
    /// [`Mode::Device`] those of adapting and norm layers only.
    pub params_len: usize,
    /// f32 of gradients (trained parameters of trainable layers).
    pub grads_len: usize,
    /// f32 of optimizer state.
    pub opt_len: usize,
    /// f32 of activations.
    pub acts_len: usize,
    /// f32 of targets.
    pub targets_len: usize,
    /// f32 of gradient scratch.
    pub gscratch_len: usize,
    /// f32 of norm scratch.
    pub norm_len: usize,
    /// Offset of the output activations.
    pub out_slot: usize,
    /// Activations applied in place to the output buffer.
    pub out_post: Post,
    /// Bit `i` set: layer `i` adapts (only layers with parameters).
    pub trainable: LayerMask,
    /// The layout's mode.
    pub mode: Mode,
    /// Whether SGD updates of dense layers are fused into the backward pass (device mode and
    /// SGD).
    pub fused: bool,
    prefix: Option<Prefix>,
}

/// Where the walk over the layers stands: the offsets of the next layer. [`Plan::new`] walks
/// once with checked arithmetic; [`Plan::node`] and [`Plan::nodes`] walk again to hand out
/// each layer's place, so the plan keeps no per-layer table (it is a few dozen bytes, which
/// matters on a microcontroller's stack; a walk costs a few instructions per layer).
#[derive(Clone, Copy, Debug)]
struct Cursor {
    i: usize,
    slot: usize,
    next_slot: usize,
    post: Post,
    params: usize,
    grads: usize,
    norm: usize,
    tensor0: usize,
    any_trainable_before: bool,
    /// Whether a layer of the blob reads an earlier value again (found once per walk, so a
    /// chain's walk asks nothing more per layer; builds without the `extra-layers` kinds have
    /// no such layer and no field).
    #[cfg(feature = "extra-layers")]
    reads_again: bool,
    prefix: Option<Prefix>,
}

/// [`Mode::Device`]: the layers in front of the first adapting one. The backward pass never
/// reads their outputs, so they take turns in two shared buffers `a` and `b` (sized for the
/// largest output each holds), and their norm layers work in place: the arena holds two
/// activations of a frozen body rather than all of them. The first adapting layer's input
/// stays where the last of them left it.
#[derive(Clone, Copy, Debug)]
struct Prefix {
    end: usize,
    a: usize,
    b: usize,
    /// First offset after both buffers.
    after: usize,
    next_b: bool,
}

impl Prefix {
    /// The shared buffers for `batch` rows in `mode` (`None` outside [`Mode::Device`] or when
    /// the first layer adapts).
    fn new(
        blob: &Blob<'_>,
        batch: usize,
        trainable: LayerMask,
        mode: Mode,
    ) -> Result<Option<Prefix>> {
        // A network that reads values again keeps every buffer (its values may be read late).
        if mode != Mode::Device || reads_again(blob) {
            return Ok(None);
        }
        let layers = &blob.layers;
        let end = (0..layers.len())
            .find(|&i| trainable & (1 << i) != 0 && layers[i].tensor_count() > 0)
            .unwrap_or(layers.len());
        if end == 0 {
            return Ok(None);
        }
        let (mut a, mut b, mut to_b) = (0usize, 0usize, false);
        for (i, l) in layers.iter().enumerate().take(end) {
            if l.in_place() || matches!(l, Layer::Norm { .. }) {
                continue;
            }
            let len = mul(batch, blob.shapes[i + 1].len())?;
            if to_b {
                b = b.max(len);
            } else {
                a = a.max(len);
            }
            to_b = !to_b;
        }
        let input = mul(batch, blob.input_len())?;
        Ok(Some(Prefix {
            end,
            a: input,
            b: add(input, a)?,
            after: add(add(input, a)?, b)?,
            next_b: false,
        }))
    }
}

impl Cursor {
    /// See the field `reads_again`.
    #[inline(always)]
    fn reads_again(&self) -> bool {
        #[cfg(feature = "extra-layers")]
        return self.reads_again;
        #[cfg(not(feature = "extra-layers"))]
        false
    }

    fn start(blob: &Blob<'_>, batch: usize, prefix: Option<Prefix>) -> Result<Cursor> {
        let mut input = mul(batch, blob.input_len())?;
        let again = reads_again(blob);
        if again && referenced(blob, 0) {
            // The gradient sent to the model's input when a layer reads it again.
            input = mul(input, 2)?;
        }
        Ok(Cursor {
            i: 0,
            slot: 0,
            next_slot: prefix.map_or(input, |p| p.after),
            post: Post::Identity,
            params: 0,
            grads: 0,
            norm: 0,
            tensor0: 0,
            any_trainable_before: false,
            #[cfg(feature = "extra-layers")]
            reads_again: again,
            prefix,
        })
    }

    /// Place layer `self.i` and move past it; `None` after the last layer.
    fn step(
        &mut self,
        blob: &Blob<'_>,
        batch: usize,
        trainable: LayerMask,
        mode: Mode,
    ) -> Option<Result<Node>> {
        let i = self.i;
        let layer = *blob.layers.get(i)?;
        Some(self.place(i, layer, blob, batch, trainable, mode))
    }

    fn place(
        &mut self,
        i: usize,
        layer: Layer,
        blob: &Blob<'_>,
        batch: usize,
        trainable: LayerMask,
        mode: Mode,
    ) -> Result<Node> {
        let device = mode == Mode::Device;
        let (input, output) = (blob.shapes[i], blob.shapes[i + 1]);
        let in_slot = self.slot;
        let in_post = self.post;
        let prefix = self.prefix.as_mut().filter(|p| i < p.end);
        let shares = prefix.is_some();
        let out_slot = if layer.in_place() {
            self.post = self
                .post
                .then(layer)
                .ok_or(Error::UnsupportedChain { layer: i })?;
            self.slot
        } else if shares && matches!(layer, Layer::Norm { .. }) {
            self.post = Post::Identity;
            self.slot
        } else if let Some(p) = prefix {
            self.post = Post::Identity;
            self.slot = if p.next_b { p.b } else { p.a };
            p.next_b = !p.next_b;
            self.slot
        } else {
            self.post = Post::Identity;
            self.slot = self.next_slot;
            let mut len = mul(batch, output.len())?;
            if self.reads_again() && referenced(blob, last_value_in(blob, i)) {
                // The gradient that readers of the buffer's last value send it.
                len = mul(len, 2)?;
            }
            self.next_slot = add(self.next_slot, len)?;
            self.slot
        };
        let adapts = trainable & (1 << i) != 0 && layer.tensor_count() > 0;
        let fused = device
            && blob.optimizer == Optimizer::Sgd
            && adapts
            && matches!(layer, Layer::Dense { .. });
        let resident = !device || adapts || matches!(layer, Layer::Norm { .. });
        let grads = if adapts && !fused {
            let off = self.grads;
            self.grads = add(self.grads, layer.trained_len(input))?;
            Some(off)
        } else {
            None
        };
        let scratch = self.norm;
        if let Layer::Norm { channels, .. } = layer {
            // Saved batch statistics (2 × C); an adapting layer also keeps a copy of its
            // stored statistics (2 × C) so a failed refresh can put them back.
            self.norm = add(self.norm, if adapts { 4 * channels } else { 2 * channels })?;
        }
        let node = Node {
            layer,
            input,
            output,
            in_slot,
            out_slot,
            overwrites: layer.in_place() || (shares && matches!(layer, Layer::Norm { .. })),
            in_post,
            resident,
            params: self.params,
            tensor0: self.tensor0,
            adapts,
            grads,
            fused,
            input_grad: self.any_trainable_before && !layer.in_place(),
            scratch,
            #[cfg(feature = "extra-layers")]
            in_side: if self.reads_again() && referenced(blob, i) {
                Some(add(in_slot, mul(batch, input.len())?)?)
            } else {
                None
            },
        };
        if resident {
            self.params = add(self.params, layer.param_len(input))?;
        }
        self.tensor0 += layer.tensor_count();
        self.any_trainable_before |= adapts;
        self.i = i + 1;
        Ok(node)
    }
}

/// The layers' places in the arena, in order (see [`Plan::nodes`]).
#[derive(Clone, Debug)]
pub struct Nodes<'p, 'b> {
    blob: &'p Blob<'b>,
    batch: usize,
    trainable: LayerMask,
    mode: Mode,
    cursor: Option<Cursor>,
}

impl Iterator for Nodes<'_, '_> {
    type Item = Node;
    fn next(&mut self) -> Option<Node> {
        let c = self.cursor.as_mut()?;
        // The plan's own walk succeeded with the same blob, batch and mask, so this one does
        // too; should it not, the walk simply ends.
        match c.step(self.blob, self.batch, self.trainable, self.mode) {
            Some(Ok(node)) => Some(node),
            _ => {
                self.cursor = None;
                None
            }
        }
    }
}

/// `a × b` or an error when it does not fit this target's `usize`.
fn mul(a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::TooLarge {
        what: "arena size overflows this target's address space",
    })
}

/// `a + b` or an error when it does not fit this target's `usize`.
fn add(a: usize, b: usize) -> Result<usize> {
    a.checked_add(b).ok_or(Error::TooLarge {
        what: "arena size overflows this target's address space",
    })
}

impl Plan {
    /// Lay out the arena for `batch` samples and the layers in `trainable` (bit per layer),
    /// in [`Mode::Buffered`].
    pub fn new(blob: &Blob<'_>, batch: usize, trainable: LayerMask) -> Result<Plan> {
        Plan::with_mode(blob, batch, trainable, Mode::Buffered)
    }

    /// Lay out the arena for `batch` samples, the layers in `trainable` and `mode`.
    pub fn with_mode(
        blob: &Blob<'_>,
        batch: usize,
        trainable: LayerMask,
        mode: Mode,
    ) -> Result<Plan> {
        let n = blob.layers.len();
        if batch == 0 || batch > 1 << 16 {
            return Err(Error::BadSettings {
                what: "batch must be between 1 and 65536",
            });
        }
        if names_beyond(trainable, n) {
            return Err(Error::BadTrainableMask { mask: trainable });
        }
        let prefix = Prefix::new(blob, batch, trainable, mode)?;
        let mut c = Cursor::start(blob, batch, prefix)?;
        let mut gscratch = mul(batch, blob.output_len())?;
        let mut mask: LayerMask = 0;
        let fused = mode == Mode::Device && blob.optimizer == Optimizer::Sgd;
        while let Some(node) = c.step(blob, batch, trainable, mode) {
            let node = node?;
            if node.adapts {
                mask |= 1 << (c.i - 1);
            }
            if node.input_grad {
                gscratch = gscratch.max(mul(batch, node.input.len())?);
            }
        }
        let Cursor {
            params,
            grads,
            norm,
            slot,
            next_slot,
            post,
            ..
        } = c;
        let opt_len = match blob.optimizer {
            Optimizer::Sgd => 0,
            Optimizer::AdamB1Zero => grads,
        };
        let plan = Plan {
            batch,
            params_len: params,
            grads_len: grads,
            opt_len,
            acts_len: next_slot,
            targets_len: mul(batch, blob.target_len())?,
            gscratch_len: gscratch,
            norm_len: norm,
            out_slot: slot,
            out_post: post,
            trainable: mask,
            mode,
            fused,
            prefix,
        };
        // Checked once here so that `arena_len` cannot overflow later.
        [
            plan.grads_len,
            plan.opt_len,
            plan.acts_len,
            plan.targets_len,
            plan.gscratch_len,
            plan.norm_len,
        ]
        .into_iter()
        .try_fold(plan.params_len, add)?;
        Ok(plan)
    }

    /// Layer `i`'s place in the arena (`None` past the last layer). `blob` must be the blob
    /// the plan was made for: it supplies the layers and their shapes.
    pub fn node(&self, blob: &Blob<'_>, i: usize) -> Option<Node> {
        self.nodes(blob).nth(i)
    }

    /// Every layer's place in the arena, in order. `blob` must be the blob the plan was made
    /// for.
    pub fn nodes<'p, 'b>(&self, blob: &'p Blob<'b>) -> Nodes<'p, 'b> {
        Nodes {
            blob,
            batch: self.batch,
            trainable: self.trainable,
            mode: self.mode,
            cursor: Cursor::start(blob, self.batch, self.prefix).ok(),
        }
    }

    /// Total f32 the arena must hold.
    pub fn arena_len(&self) -> usize {
        self.params_len
            + self.grads_len
            + self.opt_len
            + self.acts_len
            + self.targets_len
            + self.gscratch_len
            + self.norm_len
    }
}
