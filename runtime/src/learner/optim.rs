//! The inner optimizers: SGD and Adam with β1 = 0, applied per trained tensor (each with its
//! learning-rate scale), all of an update checked finite before any of it is written.

use super::{split, Arena, BlobRef, Engine};
use crate::blob::{Blob, Optimizer};
use crate::error::{Error, Result};
use crate::plan::{Node, Plan};

#[cfg(feature = "adam")]
const ADAM_BETA2: f32 = 0.999;
#[cfg(feature = "adam")]
const ADAM_EPS: f32 = 1e-8;

/// One trained tensor: where its parameters and gradient (and Adam state) start, its length
/// and its learning rate.
pub(super) struct Trained {
    /// Index of the tensor in the blob.
    pub(super) tensor: usize,
    pub(super) params: usize,
    pub(super) grads: usize,
    pub(super) len: usize,
    pub(super) lr: f32,
}

/// The tensors an update changes: the trained tensors of adapting layers (a norm layer's
/// statistics are not trained), each with `lr` times its per-tensor scale.
pub(super) fn trained_tensors<'p>(
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

/// SGD on one adapting layer of a fused plan ([`crate::Mode::Device`]) from its own gradient
/// buffer `pg`, which starts at offset `goff` of the gradient region: all of its tensors, or
/// none (false) when a new value would not be finite.
pub(super) fn sgd_layer(
    params: &mut [f32],
    pg: &[f32],
    node: &Node,
    goff: usize,
    scales: &[f32],
    lr: f32,
) -> bool {
    let mut ts = node_tensors(node, goff, scales, lr);
    if !ts.all(|t| {
        let p = &params[t.params..][..t.len];
        let g = &pg[t.grads - goff..][..t.len];
        p.iter()
            .zip(g)
            .fold(true, |ok, (&p, &g)| ok & (p - t.lr * g).is_finite())
    }) {
        return false;
    }
    for t in node_tensors(node, goff, scales, lr) {
        let g = &pg[t.grads - goff..][..t.len];
        for (p, &g) in params[t.params..][..t.len].iter_mut().zip(g) {
            *p -= t.lr * g;
        }
    }
    true
}

/// Adam with beta1 = 0: new parameter and second-moment estimate.
#[cfg(feature = "adam")]
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

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// Apply the update from the current gradients, or nothing if any parameter would become
    /// non-finite: a checking pass, then an applying pass, each a straight loop per tensor.
    pub(super) fn update(&mut self, lr: f32) -> Result<()> {
        let step = self.steps + 1;
        let optimizer = self.blob.get().optimizer;
        let scales = &self.blob.get().settings().lr_scale;
        #[cfg(feature = "adam")]
        let bias2 = 1.0 - libm::powf(ADAM_BETA2, step as f32);
        let r = split(&self.plan, self.arena.as_mut());
        // Every new value is checked before any is written, so a failed step loses nothing.
        let finite = trained_tensors(&self.plan, self.blob.get(), scales, lr).all(|t| {
            let (p, g) = (&r.params[t.params..][..t.len], &r.grads[t.grads..][..t.len]);
            match optimizer {
                Optimizer::Sgd => sgd_finite(p, g, t.lr),
                #[cfg(feature = "adam")]
                Optimizer::AdamB1Zero => adam_finite(p, g, &r.opt[t.grads..][..t.len], t.lr, bias2),
                // Not built in: a learner over such a blob is never made (`Engine::plan_for`).
                #[cfg(not(feature = "adam"))]
                Optimizer::AdamB1Zero => false,
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
                #[cfg(feature = "adam")]
                Optimizer::AdamB1Zero => {
                    adam_apply(p, g, &mut r.opt[t.grads..][..t.len], t.lr, bias2)
                }
                #[cfg(not(feature = "adam"))]
                Optimizer::AdamB1Zero => {}
            }
        }
        self.steps = step;
        Ok(())
    }
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

#[cfg(feature = "adam")]
crate::simd::host_simd! {
    /// Whether every parameter Adam would write is finite.
    fn adam_finite(p: &[f32], g: &[f32], v: &[f32], lr: f32, bias2: f32) -> bool => adam_finite_kernel
}

#[cfg(feature = "adam")]
#[inline(always)]
fn adam_finite_kernel(p: &[f32], g: &[f32], v: &[f32], lr: f32, bias2: f32) -> bool {
    all_finite(p, g, v, |p, g, v| adam(p, g, v, lr, bias2).0)
}

#[cfg(feature = "adam")]
crate::simd::host_simd! {
    /// One Adam (β1 = 0) step over a tensor: parameters `p` and second moments `v`.
    fn adam_apply(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, bias2: f32) => adam_apply_kernel
}

#[cfg(feature = "adam")]
#[inline(always)]
fn adam_apply_kernel(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, bias2: f32) {
    for ((p, &g), v) in p.iter_mut().zip(g).zip(v) {
        (*p, *v) = adam(*p, g, *v, lr, bias2);
    }
}
