//! Sub-models of a blob for head-only adaptation: the **body** (every layer before the head)
//! and the **head** (the last layer with parameters and the parameter-free layers after it),
//! each a valid [`Blob`] of its own, usable by its own learner. Their tensors borrow the
//! source's bytes: nothing is copied or re-encoded, so on a device the weights stay where the
//! source is (flash), in their stored dtype.
//!
//! The body's features of each input are computed once (a learner over the body, nothing
//! adapting), then a learner over the head adapts on the cached features: the same arithmetic
//! as a learner over the whole model with only the head trainable, without running the body
//! at every step.
//!
//! ```
//! # fn main() -> Result<(), anole::Error> {
//! # let bytes = include_bytes!("../../models/sine/init.postcard");
//! let whole = anole::Blob::parse(bytes)?;
//! let (mut body, mut head) = (anole::Blob::empty(), anole::Blob::empty());
//! anole::submodel::body_into(&whole, &mut body)?;
//! anole::submodel::head_into(&whole, &mut head)?;
//! assert_eq!(body.output_shape(), head.input_shape());
//! assert_eq!(body.layers.len() + head.layers.len(), whole.layers.len());
//! # Ok(()) }
//! ```
//!
//! The parts are written into blobs the caller provides ([`Blob::empty`], then
//! [`body_into`] and [`head_into`]) so that no second copy of a blob (a few kilobytes of
//! fixed-capacity lists) goes through a microcontroller's stack.

use crate::blob::{Blob, LossKind};
use crate::error::{Error, Result};
use crate::layers::Shape;
use crate::limits::LayerMask;
use core::ops::Range;

/// Index of the head: the last layer with parameters ([`Error::NoHead`] if no layer has any).
/// Layer 0 means the head is the whole model and there is no body.
pub fn head_layer(blob: &Blob<'_>) -> Result<usize> {
    blob.layers
        .iter()
        .rposition(|l| l.tensor_count() > 0)
        .ok_or(Error::NoHead)
}

/// Write the body of `blob` into `out`: its input, the layers before the head and their
/// tensors (borrowed). Nothing adapts: every layer frozen (norm layers use their stored
/// statistics), learning rate 0, no steps, batch 1 (a learner given other options computes
/// the same features); loss MSE over the features, the source's optimizer, head start meta. Errors:
/// [`Error::NoHead`]; [`Error::NoBody`] when the head is the first layer; on error `out` is
/// left empty.
pub fn body_into<'a>(blob: &Blob<'a>, out: &mut Blob<'a>) -> Result<()> {
    let h = head_layer(blob)?;
    if h == 0 {
        return Err(Error::NoBody);
    }
    assemble(blob, out, 0..h);
    out.wire.input_shape.clone_from(&blob.wire.input_shape);
    let a = &mut out.wire.adapt;
    a.loss = LossKind::Mse as u8;
    a.optimizer = blob.wire.adapt.optimizer;
    a.lr = 0.0;
    a.steps = 0;
    a.batch = 1;
    a.trainable = 0;
    a.lr_scale.clear();
    a.head_start = 0;
    a.head_scale = 1.0;
    out.validate_in_place()
}

/// Write the head of `blob` into `out`: its input is the body's output (the features), its
/// layers the head and those after it, with their tensors (borrowed); every layer adapts, with
/// the source's loss, optimizer, learning rate, steps, batch, head start and scale and the learning-rate
/// scales of these tensors. Errors: [`Error::NoHead`] (`out` unchanged), or the head's validation error
/// when its input cannot be a blob's input, e.g. a feature vector longer than
/// [`crate::limits::MAX_DIM`] (`out` left empty).
pub fn head_into<'a>(blob: &Blob<'a>, out: &mut Blob<'a>) -> Result<()> {
    let h = head_layer(blob)?;
    let n = blob.layers.len();
    let t = assemble(blob, out, h..n);
    out.wire.input_shape.clear();
    // At most three dimensions: the pushes cannot fail.
    let _ = match blob.shapes[h] {
        Shape::Flat(n) => out.wire.input_shape.push(n as u32),
        Shape::Chw(c, h, w) => [c, h, w]
            .into_iter()
            .try_for_each(|d| out.wire.input_shape.push(d as u32)),
    };
    let (w, a) = (&blob.wire.adapt, &mut out.wire.adapt);
    a.loss = w.loss;
    a.optimizer = w.optimizer;
    a.lr = w.lr;
    a.steps = w.steps;
    a.batch = w.batch;
    // Layers h to n - 1 of the source, 1 to MAX_LAYERS of them: the mask's lowest n - h bits.
    a.trainable = LayerMask::MAX >> (LayerMask::BITS as usize - (n - h));
    a.head_start = w.head_start;
    a.head_scale = w.head_scale;
    a.lr_scale.clear();
    // A tail of the source's scales (empty or one per tensor): never more than it holds.
    for &x in w.lr_scale.get(t..).unwrap_or(&[]) {
        let _ = a.lr_scale.push(x);
    }
    out.validate_in_place()
}

/// Make `out.wire` hold `src`'s header and provenance with `src`'s layers `layers` and their
/// tensors (borrowed), edited in place; returns the index of the first tensor taken.
fn assemble<'a>(src: &Blob<'a>, out: &mut Blob<'a>, layers: Range<usize>) -> usize {
    let first: usize = src.layers[..layers.start]
        .iter()
        .map(|l| l.tensor_count())
        .sum();
    let count: usize = src.layers[layers.clone()]
        .iter()
        .map(|l| l.tensor_count())
        .sum();
    let (w, o) = (&src.wire, &mut out.wire);
    o.magic = w.magic;
    o.version = w.version;
    o.provenance = w.provenance;
    // At most as many layers and tensors as the source holds: the pushes cannot fail.
    o.layers.clear();
    for l in &w.layers[layers] {
        let _ = o.layers.push(l.clone());
    }
    o.tensors.clear();
    for t in &w.tensors[first..first + count] {
        let _ = o.tensors.push(*t);
    }
    first
}
