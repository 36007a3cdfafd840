//! Arena layout: where parameters, gradients, optimizer state, activations and scratch live
//! in the caller's `&mut [f32]`, computed once at load for a batch size and a set of
//! trainable layers.
//!
//! ```text
//! | params (all) | grads (trainable) | adam v (trainable, Adam only) | activations | targets | grad scratch | norm scratch |
//! ```
//! Activations: one buffer per layer output at `batch` rows; ReLU, Tanh and Flatten work in
//! place, so they add none. The backward pass writes each gradient over the activation it
//! belongs to, so the only extra is one scratch of the largest layer input that needs a
//! gradient.

use crate::blob::{Blob, Optimizer};
use crate::error::{Error, Result};
use crate::layers::{Layer, Post, Shape};
use heapless::Vec as HVec;

/// One layer's place in the arena.
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
    /// Activations applied in place to the input buffer (their derivative is applied when a
    /// gradient is written there).
    pub in_post: Post,
    /// Offset of this layer's parameters in the parameter region.
    pub params: usize,
    /// Index of this layer's first tensor in the blob.
    pub tensor0: usize,
    /// Offset of this layer's gradient (and Adam state) when the layer adapts.
    pub grads: Option<usize>,
    /// Whether the gradient with respect to the input is needed (a trainable layer precedes).
    pub input_grad: bool,
    /// Offset of this layer's scratch in the norm-scratch region (norm layers: `2 × C` for
    /// the saved batch statistics, and `2 × C` more when the layer adapts, for a copy of its
    /// stored statistics while they are recomputed).
    pub scratch: usize,
}

/// The full arena layout.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Largest number of samples in one forward or backward pass.
    pub batch: usize,
    /// Layers in order.
    pub nodes: HVec<Node, { crate::blob::MAX_LAYERS }>,
    /// f32 of parameters (every tensor, frozen ones included).
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
    pub trainable: u32,
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
    /// Lay out the arena for `batch` samples and the layers in `trainable` (bit per layer).
    pub fn new(blob: &Blob<'_>, batch: usize, trainable: u32) -> Result<Plan> {
        let n = blob.layers.len();
        if batch == 0 || batch > 1 << 16 {
            return Err(Error::BadSettings {
                what: "batch must be between 1 and 65536",
            });
        }
        if n < 32 && trainable >> n != 0 {
            return Err(Error::BadTrainableMask { mask: trainable });
        }
        let mut nodes = HVec::new();
        let (mut params, mut grads, mut norm) = (0usize, 0usize, 0usize);
        let mut tensor0 = 0usize;
        let mut slot = 0usize;
        let mut next_slot = mul(batch, blob.input_len())?;
        let mut post = Post::Identity;
        let mut mask = 0u32;
        let mut any_trainable_before = false;
        let mut gscratch = mul(batch, blob.output_len())?;
        for (i, layer) in blob.layers.iter().copied().enumerate() {
            let (input, output) = (blob.shapes[i], blob.shapes[i + 1]);
            let in_slot = slot;
            let in_post = post;
            let out_slot = if layer.in_place() {
                post = post
                    .then(layer)
                    .ok_or(Error::UnsupportedChain { layer: i })?;
                slot
            } else {
                post = Post::Identity;
                slot = next_slot;
                next_slot = add(next_slot, mul(batch, output.len())?)?;
                slot
            };
            let adapts = trainable & (1 << i) != 0 && layer.tensor_count() > 0;
            let grad_off = if adapts {
                mask |= 1 << i;
                let off = grads;
                grads = add(grads, layer.trained_len(input))?;
                Some(off)
            } else {
                None
            };
            let input_grad = any_trainable_before && !layer.in_place();
            if input_grad {
                gscratch = gscratch.max(mul(batch, input.len())?);
            }
            let scratch = norm;
            if let Layer::Norm { channels, .. } = layer {
                // Saved batch statistics (2 × C); an adapting layer also keeps a copy of its
                // stored statistics (2 × C) so a failed refresh can put them back.
                norm = add(norm, if adapts { 4 * channels } else { 2 * channels })?;
            }
            let _ = nodes.push(Node {
                layer,
                input,
                output,
                in_slot,
                out_slot,
                in_post,
                params,
                tensor0,
                grads: grad_off,
                input_grad,
                scratch,
            });
            params = add(params, layer.param_len(input))?;
            tensor0 += layer.tensor_count();
            any_trainable_before |= adapts;
        }
        let opt_len = match blob.optimizer {
            Optimizer::Sgd => 0,
            Optimizer::AdamB1Zero => grads,
        };
        let plan = Plan {
            batch,
            nodes,
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

impl Blob<'_> {
    /// f32 of arena a [`crate::Learner`] needs to adapt the blob's trainable layers at `batch`.
    pub fn arena_len(&self, batch: usize) -> Result<usize> {
        Ok(Plan::new(self, batch, self.settings().trainable)?.arena_len())
    }
}
