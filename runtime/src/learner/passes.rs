//! The forward pass, the loss and its output gradient, and the backward pass over the rows
//! loaded in the arena: each layer's kernel called on its slice of the arena.

use super::optim::sgd_layer;
use super::{split, Arena, BlobRef, Engine};
use crate::blob::{Blob, LossKind};
use crate::error::{Error, Result};
#[cfg(feature = "norm")]
use crate::layers::norm;
use crate::layers::{act, dense, Layer};
#[cfg(feature = "conv")]
use crate::layers::{conv2d, maxpool};
use crate::loss;
use crate::plan::Node;

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// Forward pass over the first `n` loaded rows through layers `..upto`. `train` uses batch
    /// statistics in trainable norm layers.
    // `train`, `trainable` and `i` serve the norm layers alone.
    #[cfg_attr(not(feature = "norm"), allow(unused_variables))]
    pub(super) fn forward(&mut self, n: usize, train: bool, upto: usize) {
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
                    Layer::Extra(e) => e.apply(y),
                    _ => {}
                }
                continue;
            }
            if let (Layer::Extra(e), Some(k)) = (node.layer, node.layer.reads()) {
                // A residual addition, a branch or a concatenation: reads value k too.
                let v = self.plan.node(self.blob.get(), k);
                let (from, vl) = v.map_or((0, 0), |v| (v.in_slot, v.input.len()));
                let (before, y) = r.acts.split_at_mut(node.out_slot);
                let x = &before[node.in_slot..node.in_slot + n * il];
                e.join_forward(x, &before[from..from + n * vl], &mut y[..n * ol], n);
                continue;
            }
            if node.overwrites {
                // A frozen norm layer in front of the first adapting one (device layout).
                #[cfg(feature = "norm")]
                if let Layer::Norm { channels: c, eps } = node.layer {
                    let s = node.input.channels_spatial().1;
                    let xy = &mut r.acts[node.in_slot..node.in_slot + n * il];
                    let p = norm::Params::split(c, params);
                    norm::forward_stored_in_place(c, s, eps, p.gamma, p.beta, p.mean, p.var, xy, n);
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
                #[cfg(feature = "conv")]
                Layer::Conv2d { .. } if !node.resident => {
                    let geo = conv2d::Geometry::of(node.layer, node.input, node.output);
                    let (w, b) = (
                        self.blob.get().stored(node.tensor0),
                        self.blob.get().stored(node.tensor0 + 1),
                    );
                    conv2d::forward_stored(&geo, &w, &b, x, y, n);
                }
                #[cfg(feature = "conv")]
                Layer::Conv2d { .. } => {
                    let geo = conv2d::Geometry::of(node.layer, node.input, node.output);
                    let (w, b) = geo.split(params);
                    conv2d::forward(&geo, w, b, x, y, n);
                }
                #[cfg(feature = "norm")]
                Layer::Norm { channels: c, eps } => {
                    let s = node.input.channels_spatial().1;
                    let p = norm::Params::split(c, params);
                    if train && trainable & (1 << i) != 0 {
                        let save = &mut r.norm[node.scratch..node.scratch + 2 * c];
                        norm::forward_batch(c, s, eps, p.gamma, p.beta, x, y, n, save);
                    } else {
                        norm::forward_stored(c, s, eps, p.gamma, p.beta, p.mean, p.var, x, y, n);
                    }
                }
                #[cfg(feature = "conv")]
                Layer::MaxPool2d { .. } => maxpool::forward(
                    &maxpool::Geometry::of(node.layer, node.input, node.output),
                    x,
                    y,
                    n,
                ),
                Layer::Relu | Layer::Tanh | Layer::Flatten => {}
                _ => forward_other(&node, self.blob.get(), params, x, y, n),
            }
        }
    }

    /// Loss of the first `n` loaded rows (after a full forward pass); with `grad`, also writes
    /// `dL/d(output)` over the output activations.
    pub(super) fn loss_of_loaded(&mut self, n: usize, grad: bool) -> f32 {
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
            #[cfg(feature = "cross-entropy")]
            LossKind::CrossEntropy => loss::cross_entropy(y, t, ol, g),
            // Not built in: a learner over such a blob is never made (`Engine::plan_for`).
            #[cfg(not(feature = "cross-entropy"))]
            LossKind::CrossEntropy => f32::NAN,
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
    /// [`Mode::Device`](crate::Mode::Device)).
    #[cfg_attr(not(feature = "norm"), allow(unused_variables))]
    pub(super) fn backward(&mut self, n: usize, sgd: Option<f32>) -> bool {
        let trainable = self.plan.trainable;
        let scales = &self.blob.get().settings().lr_scale;
        let r = split(&self.plan, self.arena.as_mut());
        if crate::plan::reads_again(self.blob.get()) {
            for node in self.plan.nodes(self.blob.get()) {
                if let Some(side) = node.in_side() {
                    r.acts[side..side + n * node.input.len()].fill(0.0);
                }
            }
        }
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
            if let (Layer::Extra(e), Some(k)) = (node.layer, node.layer.reads()) {
                // Value k gets its share of the output gradient (in its side buffer, which
                // comes before this layer's output), the input the rest.
                let v = self.plan.node(self.blob.get(), k);
                let (side, vl) = v.map_or((0, 0), |v| (v.in_side().unwrap_or(0), v.input.len()));
                let (before, after) = r.acts.split_at_mut(node.out_slot);
                let gx = if node.input_grad {
                    Some(&mut r.gscratch[..n * il])
                } else {
                    None
                };
                e.join_backward(&after[..n * ol], gx, &mut before[side..side + n * vl], n);
                pass_input_gradient(&node, r.acts, r.gscratch, n * il);
                continue;
            }
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
                #[cfg(feature = "conv")]
                Layer::Conv2d { .. } if !node.resident => {
                    if let Some(gx) = gx {
                        let w = self.blob.get().stored(node.tensor0);
                        conv2d::input_grad_stored(
                            &conv2d::Geometry::of(node.layer, node.input, node.output),
                            &w,
                            g,
                            gx,
                            n,
                        );
                    }
                }
                #[cfg(feature = "conv")]
                Layer::Conv2d { .. } => {
                    let geo = conv2d::Geometry::of(node.layer, node.input, node.output);
                    let (w, _) = geo.split(&r.params[prange]);
                    let pg = pg.as_deref_mut().map(|s| s.split_at_mut(w.len()));
                    conv2d::backward(&geo, w, x, g, pg, gx, n);
                }
                #[cfg(feature = "norm")]
                Layer::Norm { channels: c, eps } => {
                    let p = norm::Params::split(c, &r.params[prange]);
                    let s = node.input.channels_spatial().1;
                    let batch = trainable & (1 << i) != 0;
                    let scratch = &mut r.norm[node.scratch..node.scratch + 2 * c];
                    if !batch {
                        scratch[..c].copy_from_slice(p.mean);
                        norm::inv_std(p.var, eps, &mut scratch[c..]);
                    }
                    let (mean, inv) = scratch.split_at(c);
                    let pg = pg.as_deref_mut().map(|s| s.split_at_mut(c));
                    norm::backward(c, s, batch, p.gamma, mean, inv, x, g, pg, gx, n);
                }
                #[cfg(feature = "conv")]
                Layer::MaxPool2d { .. } => {
                    if let Some(gx) = gx {
                        maxpool::backward(
                            &maxpool::Geometry::of(node.layer, node.input, node.output),
                            x,
                            g,
                            gx,
                            n,
                        );
                    }
                }
                Layer::Relu | Layer::Tanh | Layer::Flatten => {}
                _ => backward_other(
                    &node,
                    self.blob.get(),
                    &r.params[prange],
                    x,
                    g,
                    pg.as_deref_mut(),
                    gx,
                    n,
                ),
            }
            // A layer with its own gradient buffer in a fused plan: update it now.
            if let (Some(lr), Some(pg), Some(goff)) = (sgd, pg, node.grads) {
                if !sgd_layer(r.params, pg, &node, goff, scales, lr) {
                    return false;
                }
            }
            pass_input_gradient(&node, r.acts, r.gscratch, n * il);
        }
        true
    }

    /// Forward, loss and backward on the first `n` loaded rows. With `sgd = Some(lr)` on a
    /// fused plan the update is applied during the backward pass and the step is counted.
    pub(super) fn grad_loaded(&mut self, n: usize, sgd: Option<f32>) -> Result<f32> {
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
    pub(super) fn step_loaded(&mut self, n: usize, lr: f32) -> Result<f32> {
        let l = self.grad_loaded(n, Some(lr))?;
        if !self.plan.fused {
            self.update(lr)?;
        }
        Ok(l)
    }
}

/// Pass layer `node`'s input gradient (its first `len` values in `gscratch`) on to its input
/// buffer, when one is needed: plus what later readers of that input sent it, through the
/// in-place activations applied to it.
#[inline(always)]
fn pass_input_gradient(node: &Node, acts: &mut [f32], gscratch: &mut [f32], len: usize) {
    if !node.input_grad {
        return;
    }
    if let Some(side) = node.in_side() {
        for (d, &v) in gscratch[..len].iter_mut().zip(&acts[side..side + len]) {
            *d += v;
        }
    }
    node.in_post.deliver(
        &gscratch[..len],
        &mut acts[node.in_slot..node.in_slot + len],
    );
}

// The other layer kinds run through the two functions below, kept out of line: inlined into
// `forward` and `backward` their code changed the register allocation of the kernels inlined
// there (the frozen convolution's inner loop spilled a register on the Cortex-M4F: +5.5%
// instructions per Omniglot image in a model that uses none of them).

/// Forward pass of an [`Extra`](crate::layers::Extra) layer that is not in place. `params`
/// are the layer's resident parameters (unused when it reads the blob).
#[inline(never)]
fn forward_other(node: &Node, blob: &Blob<'_>, params: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    let Layer::Extra(e) = node.layer else { return };
    if node.resident {
        e.forward(node.input, |k| params[k], x, y, n);
    } else {
        let (w, b, wl) = stored_pair(node, blob);
        e.forward(
            node.input,
            |k| if k < wl { w.get(k) } else { b.get(k - wl) },
            x,
            y,
            n,
        );
    }
}

/// Backward pass of the layers [`forward_other`] runs: the parameter gradient into `pg` (when
/// the layer adapts), the input gradient into `gx` (when needed).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn backward_other(
    node: &Node,
    blob: &Blob<'_>,
    params: &[f32],
    x: &[f32],
    g: &[f32],
    pg: Option<&mut [f32]>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    let Layer::Extra(e) = node.layer else { return };
    if node.resident {
        e.backward(node.input, |k| params[k], x, g, pg, gx, n);
    } else {
        let (w, b, wl) = stored_pair(node, blob);
        let param = |k| if k < wl { w.get(k) } else { b.get(k - wl) };
        e.backward(node.input, param, x, g, None, gx, n);
    }
}

/// A frozen layer's tensors as the blob stores them, read as one run of parameters: the first
/// tensor, the second (the first again for a layer of one tensor) and the first's length.
fn stored_pair<'a>(
    node: &Node,
    blob: &Blob<'a>,
) -> (crate::dtype::Stored<'a>, crate::dtype::Stored<'a>, usize) {
    let w = blob.stored(node.tensor0);
    let second = if node.layer.tensor_count() > 1 {
        node.tensor0 + 1
    } else {
        node.tensor0
    };
    let wl = node.layer.tensor_len(node.input, 0);
    (w, blob.stored(second), wl)
}
