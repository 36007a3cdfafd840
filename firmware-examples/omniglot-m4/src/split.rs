//! Head-only adaptation's split of a blob, in place: the frozen body (every layer before the
//! last layer with parameters) and the head (that layer and the parameter-free layers after
//! it), each a [`Blob`] of its own that borrows the source's tensor bytes, so the weights stay
//! where the source is (flash) in their stored dtype (f16) and nothing is copied or re-encoded.
//!
//! The body's features of each image are computed once with a learner over the body (nothing
//! adapting), then the head adapts on the cached features: the arithmetic of a learner over the
//! whole model with only the head trainable, as the trainer's `anole eval --adapt head`
//! (`HeadSplit` there, which writes the same two blobs as f32 files on the workstation).

use anole::blob::{AdaptSettings, RawLayer, RawTensor, Wire, MAX_INPUT_RANK, MAX_LAYERS};
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

fn dims(s: Shape) -> HVec<u32, MAX_INPUT_RANK> {
    let mut v = HVec::new();
    // Both arms push at most MAX_INPUT_RANK (3) values: the pushes cannot fail.
    match s {
        Shape::Flat(n) => {
            let _ = v.push(n as u32);
        }
        Shape::Chw(c, h, w) => {
            for d in [c, h, w] {
                let _ = v.push(d as u32);
            }
        }
    }
    v
}

fn layers(raw: &[RawLayer]) -> HVec<RawLayer, MAX_LAYERS> {
    raw.iter().cloned().collect()
}

fn tensors<'a>(raw: &[RawTensor<'a>]) -> HVec<RawTensor<'a>, { anole::blob::MAX_TENSORS }> {
    raw.iter().copied().collect()
}

/// The frozen body of `blob`: its input, layers `..head`, their tensors (borrowed); nothing
/// adapts, one sample per pass.
#[inline(never)]
pub fn body<'a>(blob: &Blob<'a>) -> Result<Blob<'a>, SplitError> {
    let h = head_layer(blob)?;
    let w = &blob.wire;
    let t: usize = blob.layers[..h].iter().map(|l| l.tensor_count()).sum();
    let wire = Wire {
        magic: w.magic,
        version: w.version,
        input_shape: w.input_shape.clone(),
        layers: layers(&w.layers[..h]),
        tensors: tensors(&w.tensors[..t]),
        adapt: AdaptSettings {
            loss: LossKind::Mse as u8,
            optimizer: w.adapt.optimizer,
            lr: 0.0,
            steps: 0,
            batch: 1,
            trainable: 0,
            lr_scale: HVec::new(),
        },
        provenance: w.provenance,
    };
    Blob::validate(wire).map_err(|error| SplitError::Part {
        part: "body",
        error,
    })
}

/// The head of `blob`: input = the body's output (the features), layers `head..`, their
/// tensors (borrowed); the source's loss, optimizer, learning rate, steps, batch and learning
/// rate scales, every layer adapting.
#[inline(never)]
pub fn head<'a>(blob: &Blob<'a>) -> Result<Blob<'a>, SplitError> {
    let h = head_layer(blob)?;
    let w = &blob.wire;
    let n = blob.layers.len();
    let t: usize = blob.layers[..h].iter().map(|l| l.tensor_count()).sum();
    let lr_scale = if w.adapt.lr_scale.is_empty() {
        HVec::new()
    } else {
        w.adapt.lr_scale[t..].iter().copied().collect()
    };
    let wire = Wire {
        magic: w.magic,
        version: w.version,
        input_shape: dims(blob.shapes[h]),
        layers: layers(&w.layers[h..]),
        tensors: tensors(&w.tensors[t..]),
        adapt: AdaptSettings {
            loss: w.adapt.loss,
            optimizer: w.adapt.optimizer,
            lr: w.adapt.lr,
            steps: w.adapt.steps,
            batch: w.adapt.batch,
            trainable: (1u32 << (n - h)) - 1,
            lr_scale,
        },
        provenance: w.provenance,
    };
    Blob::validate(wire).map_err(|error| SplitError::Part {
        part: "head",
        error,
    })
}
