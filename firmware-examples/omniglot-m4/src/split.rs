//! Head-only adaptation's split of a blob, in place: the frozen body (every layer before the
//! last layer with parameters) and the head (that layer and the parameter-free layers after
//! it), each a [`Blob`] of its own that borrows the source's tensor bytes, so the weights stay
//! where the source is (flash) in their stored dtype (f16) and nothing is copied or re-encoded.
//!
//! The body's features of each image are computed once with a learner over the body (nothing
//! adapting), then the head adapts on the cached features: the arithmetic of a learner over the
//! whole model with only the head trainable, as the trainer's `anole eval --adapt head`
//! (`HeadSplit` there, which writes the same two blobs as f32 files on the workstation).

use anole::blob::MAX_INPUT_RANK;
use anole::{Blob, Error, LossKind, Shape};
use heapless::Vec as HVec;

/// What can keep a blob from being split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitError {
    /// No layer has parameters.
    NoHead,
    /// The last layer with parameters is the first layer: there is no body.
    NoBody,
    /// One of the two parts does not validate.
    Part {
        /// "body" or "head".
        part: &'static str,
        /// Why.
        error: Error,
    },
}

impl core::fmt::Display for SplitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SplitError::NoHead => write!(f, "the model has no layer with parameters"),
            SplitError::NoBody => write!(
                f,
                "the model's only layer with parameters is its first: no body to freeze"
            ),
            SplitError::Part { part, error } => write!(f, "the model's {part}: {error}"),
        }
    }
}

/// Index of the head: the last layer with parameters.
pub fn head_layer(blob: &Blob<'_>) -> Result<usize, SplitError> {
    let h = blob
        .layers
        .iter()
        .rposition(|l| l.tensor_count() > 0)
        .ok_or(SplitError::NoHead)?;
    if h == 0 {
        return Err(SplitError::NoBody);
    }
    Ok(h)
}

fn dims(s: Shape, out: &mut HVec<u32, MAX_INPUT_RANK>) {
    out.clear();
    // Both arms push at most MAX_INPUT_RANK (3) values: the pushes cannot fail.
    match s {
        Shape::Flat(n) => {
            let _ = out.push(n as u32);
        }
        Shape::Chw(c, h, w) => {
            for d in [c, h, w] {
                let _ = out.push(d as u32);
            }
        }
    }
}

/// Makes `out.wire` a copy of `src`'s header and provenance, with `src`'s layers `layers` and
/// tensors `tensors` (borrowed), edited in place: no second blob goes through the stack.
fn assemble<'a>(
    src: &Blob<'a>,
    out: &mut Blob<'a>,
    layers: core::ops::Range<usize>,
    tensors: core::ops::Range<usize>,
) {
    let (w, o) = (&src.wire, &mut out.wire);
    o.magic = w.magic;
    o.version = w.version;
    o.layers.clear();
    // At most as many layers and tensors as the source holds: the pushes cannot fail.
    for l in &w.layers[layers] {
        let _ = o.layers.push(l.clone());
    }
    o.tensors.clear();
    for t in &w.tensors[tensors] {
        let _ = o.tensors.push(*t);
    }
    o.provenance = w.provenance;
}

/// Writes the frozen body of `blob` into `out`: its input, layers `..head`, their tensors
/// (borrowed); nothing adapts, one sample per pass.
#[inline(never)]
pub fn body_into<'a>(blob: &Blob<'a>, out: &mut Blob<'a>) -> Result<(), SplitError> {
    let h = head_layer(blob)?;
    let t: usize = blob.layers[..h].iter().map(|l| l.tensor_count()).sum();
    assemble(blob, out, 0..h, 0..t);
    let (w, a) = (&blob.wire, &mut out.wire.adapt);
    out.wire.input_shape.clone_from(&w.input_shape);
    a.loss = LossKind::Mse as u8;
    a.optimizer = w.adapt.optimizer;
    a.lr = 0.0;
    a.steps = 0;
    a.batch = 1;
    a.trainable = 0;
    a.lr_scale.clear();
    out.validate_in_place().map_err(|error| SplitError::Part {
        part: "body",
        error,
    })
}

/// Writes the head of `blob` into `out`: input = the body's output (the features), layers
/// `head..`, their tensors (borrowed); the source's loss, optimizer, learning rate, steps,
/// batch and learning rate scales, every layer adapting.
#[inline(never)]
pub fn head_into<'a>(blob: &Blob<'a>, out: &mut Blob<'a>) -> Result<(), SplitError> {
    let h = head_layer(blob)?;
    let n = blob.layers.len();
    let t: usize = blob.layers[..h].iter().map(|l| l.tensor_count()).sum();
    assemble(blob, out, h..n, t..blob.wire.tensors.len());
    dims(blob.shapes[h], &mut out.wire.input_shape);
    let (w, a) = (&blob.wire.adapt, &mut out.wire.adapt);
    a.loss = w.loss;
    a.optimizer = w.optimizer;
    a.lr = w.lr;
    a.steps = w.steps;
    a.batch = w.batch;
    a.trainable = (1u32 << (n - h)) - 1;
    a.lr_scale.clear();
    if !w.lr_scale.is_empty() {
        // A tail of the source's scales: never more than it holds.
        for &x in &w.lr_scale[t..] {
            let _ = a.lr_scale.push(x);
        }
    }
    out.validate_in_place().map_err(|error| SplitError::Part {
        part: "head",
        error,
    })
}
