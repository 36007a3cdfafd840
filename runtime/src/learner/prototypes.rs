//! A classifier head started from class prototypes (nearest-prototype initialisation): on
//! cached features ([`Engine::init_prototypes`]) or on a whole model, the body's features
//! computed by a forward pass ([`Engine::init_head_prototypes`]); the head started as the blob
//! says ([`Engine::start_head`], [`Engine::start_and_adapt`]).

use super::{split, AdaptReport, Arena, BlobRef, Engine};
use crate::blob::{HeadStart, LossKind};
use crate::buffer::Samples;
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::plan::Node;

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// Start a classifier head from class prototypes: sets the model's first layer, a dense layer
    /// with one output per class, to the nearest-prototype classifier of `samples` (inputs: feature
    /// vectors, e.g. a frozen body's outputs; targets: class indices). Row c becomes 2·s·μ_c and
    /// bias c −s·‖μ_c‖², μ_c the mean input of class c and s the learner's
    /// [head scale](Engine::head_scale) (the blob's, 1 unless set), so the logits are
    /// s·(‖x‖² − ‖x − μ_c‖²) up to the shared s·‖x‖²; sums in f32 in sample order, the same bits
    /// on every target. Then
    /// [`Learner::adapt`](super::Learner::adapt) fine-tunes it (head-only adaptation on cached
    /// features). Clears optimizer state.
    ///
    /// Errors, with the parameters unchanged: [`Error::NotAHead`], [`Error::NoSamples`], a bad
    /// sample ([`Error::SampleLength`], [`Error::NonFiniteSample`], [`Error::BadLabel`]), or
    /// [`Error::MissingClass`]. If the features are so large that a prototype overflows, the
    /// learner is [`Learner::reset`](super::Learner::reset) to the blob's parameters and the error
    /// is [`Error::NonFiniteParameter`] (step 0).
    pub fn init_prototypes<S: Samples + ?Sized>(&mut self, samples: &S) -> Result<()> {
        let node = self
            .plan
            .nodes(self.blob.get())
            .next()
            .ok_or(Error::NotAHead)?;
        let (inputs, outputs) = self.head_shape(&node)?;
        for i in 0..samples.len() {
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
        }
        check_classes(samples, outputs)?;
        let r = split(&self.plan, self.arena.as_mut());
        let (w, b) = head(r.params, &node, inputs, outputs);
        w.fill(0.0);
        b.fill(0.0);
        for i in 0..samples.len() {
            add_to_class(w, b, class_of(samples, i), samples.input(i));
        }
        self.finish_prototypes(&node, inputs, outputs)
    }

    /// Start the classifier head of a whole model from class prototypes (first-order
    /// Proto-MAML's initialisation, Triantafillou et al. 2020): the model's last layer, a dense
    /// layer with one output per class, becomes the nearest-prototype classifier (as
    /// [`Engine::init_prototypes`]) of the features `samples` give at its input. The features
    /// are computed with the support set's own statistics in adapting norm layers (first
    /// recomputed from `samples`, as after [`Learner::adapt`](super::Learner::adapt)) and with
    /// the stored ones in frozen norm layers. Then `adapt` fine-tunes the model (all layers or
    /// the head only). Clears optimizer state.
    ///
    /// Errors, with the parameters unchanged: [`Error::NotAHead`] (the last layer is not an
    /// adapting dense layer with one output per class, or the loss is not cross-entropy),
    /// [`Error::NoSamples`], a bad sample ([`Error::SampleLength`],
    /// [`Error::NonFiniteSample`], [`Error::BadLabel`]), [`Error::MissingClass`], or
    /// [`Error::NonFiniteParameter`] from a norm statistic that overflows (as
    /// [`Engine::refresh_norm_stats`]). If a prototype overflows, the learner is
    /// [`Learner::reset`](super::Learner::reset) and the error is
    /// [`Error::NonFiniteParameter`] (step 0).
    pub fn init_head_prototypes<S: Samples + ?Sized>(&mut self, samples: &S) -> Result<()> {
        let last = self
            .blob
            .get()
            .layers
            .len()
            .checked_sub(1)
            .ok_or(Error::NotAHead)?;
        let node = self
            .plan
            .node(self.blob.get(), last)
            .ok_or(Error::NotAHead)?;
        let (inputs, outputs) = self.head_shape(&node)?;
        if samples.is_empty() {
            return Err(Error::NoSamples);
        }
        self.check_all(samples)?;
        check_classes(samples, outputs)?;
        self.refresh_norm_stats(samples)?;
        {
            let r = split(&self.plan, self.arena.as_mut());
            let (w, b) = head(r.params, &node, inputs, outputs);
            w.fill(0.0);
            b.fill(0.0);
        }
        let mut start = 0;
        while start < samples.len() {
            let end = (start + self.plan.batch).min(samples.len());
            let m = self.load(samples, start..end);
            self.forward(m, false, last);
            let r = split(&self.plan, self.arena.as_mut());
            let (w, b) = head(r.params, &node, inputs, outputs);
            let features = &r.acts[node.in_slot..node.in_slot + m * inputs];
            for (j, x) in features.chunks_exact(inputs).enumerate() {
                add_to_class(w, b, class_of(samples, start + j), x);
            }
            start = end;
        }
        self.finish_prototypes(&node, inputs, outputs)
    }

    /// Where the blob says adaptation starts the head ([`Blob::head_start`](crate::Blob)).
    pub fn head_start(&self) -> HeadStart {
        self.blob.get().head_start
    }

    /// The factor on the logits of a head started from class prototypes
    /// ([`Engine::init_prototypes`], [`Engine::init_head_prototypes`]): the blob's
    /// [`AdaptSettings::head_scale`](crate::blob::AdaptSettings::head_scale) (1 in a blob older
    /// than format version 3) unless `set_head_scale` (feature `std`) changed it.
    pub fn head_scale(&self) -> f32 {
        #[cfg(feature = "std")]
        return self.head_scale;
        #[cfg(not(feature = "std"))]
        self.blob.get().settings().head_scale
    }

    /// Set the factor on the logits of the next head started from class prototypes, for an
    /// experiment (feature `std`: a device's learner keeps its blob's, and its size);
    /// [`BadSettings`](Error::BadSettings) unless `scale` is finite and `> 0`. The head already
    /// started keeps its logits.
    #[cfg(feature = "std")]
    pub fn set_head_scale(&mut self, scale: f32) -> Result<()> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::BadSettings {
                what: "head scale must be finite and > 0",
            });
        }
        self.head_scale = scale;
        Ok(())
    }

    /// Start the head as the blob says, on the support set `samples`, before adapting on them:
    /// under [`HeadStart::Prototypes`] the nearest-prototype classifier of their features
    /// ([`Engine::init_head_prototypes`], which clears optimizer state), under
    /// [`HeadStart::Meta`] nothing (the head keeps its parameters). The one call a device
    /// makes after [`Learner::reset`](super::Learner::reset) and before
    /// [`Learner::adapt`](super::Learner::adapt) to adapt as the blob was meta-learned to;
    /// [`Engine::start_and_adapt`] makes both. Errors: those of `init_head_prototypes`, with
    /// the parameters unchanged.
    pub fn start_head<S: Samples + ?Sized>(&mut self, samples: &S) -> Result<()> {
        match self.head_start() {
            HeadStart::Meta => Ok(()),
            HeadStart::Prototypes => self.init_head_prototypes(samples),
        }
    }

    /// [`Learner::adapt`](super::Learner::adapt) as the blob recommends: a learner that has
    /// taken no step since its parameters were last set (created,
    /// [`reset`](super::Learner::reset), [`set_params`](super::Learner::set_params), ...,
    /// i.e. [`steps_taken`](super::Learner::steps_taken) is 0) first starts its head on
    /// `samples` ([`Engine::start_head`]); then `steps` steps. What the C API's and the Python
    /// package's `adapt` run. A learner that has stepped, or whose optimizer state was loaded
    /// with a step count, continues from its parameters.
    pub fn start_and_adapt<S: Samples + ?Sized>(
        &mut self,
        samples: &S,
        steps: u32,
    ) -> Result<AdaptReport> {
        if self.steps == 0 {
            self.start_head(samples)?;
        }
        self.adapt(samples, steps)
    }

    /// The (inputs, outputs) of `node` if it can be a classifier head started from
    /// prototypes: an adapting dense layer with one output per class of a cross-entropy model.
    fn head_shape(&self, node: &Node) -> Result<(usize, usize)> {
        let Layer::Dense { inputs, outputs } = node.layer else {
            return Err(Error::NotAHead);
        };
        let blob = self.blob.get();
        if !node.resident || blob.loss != LossKind::CrossEntropy || blob.output_len() != outputs {
            return Err(Error::NotAHead);
        }
        Ok((inputs, outputs))
    }

    /// Turn the class sums in the head's weight rows (counts in its biases) into the
    /// nearest-prototype classifier, its logits multiplied by the head scale; clears optimizer
    /// state. On overflow resets the learner.
    fn finish_prototypes(&mut self, node: &Node, inputs: usize, outputs: usize) -> Result<()> {
        let scale = self.head_scale();
        let r = split(&self.plan, self.arena.as_mut());
        let (w, b) = head(r.params, node, inputs, outputs);
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
            // Unscaled, the head is the nearest-prototype classifier as it always was (a
            // product by 1 gives the same bits, at the cost of a pass over the weights).
            if scale != 1.0 {
                for v in row.iter_mut() {
                    *v *= scale;
                    finite &= v.is_finite();
                }
                *bias *= scale;
                finite &= bias.is_finite();
            }
        }
        if !finite {
            self.reset();
            return Err(Error::NonFiniteParameter { step: 0 });
        }
        self.clear_state();
        Ok(())
    }
}

/// The weights (`outputs` rows of `inputs`) and biases of the dense layer `node` in `params`.
fn head<'p>(
    params: &'p mut [f32],
    node: &Node,
    inputs: usize,
    outputs: usize,
) -> (&'p mut [f32], &'p mut [f32]) {
    let (w, rest) = params[node.params..].split_at_mut(inputs * outputs);
    (w, &mut rest[..outputs])
}

/// The class of sample `i`, checked by [`check_classes`].
fn class_of<S: Samples + ?Sized>(samples: &S, i: usize) -> usize {
    samples.target(i).first().copied().unwrap_or(0.0) as usize
}

/// Every sample's target is a class index below `outputs` and every class has a sample.
fn check_classes<S: Samples + ?Sized>(samples: &S, outputs: usize) -> Result<()> {
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
        class(i)?;
    }
    for c in 0..outputs {
        if !(0..n).any(|i| class(i) == Ok(c)) {
            return Err(Error::MissingClass { class: c });
        }
    }
    Ok(())
}

/// Add feature vector `x` to class `c`'s sum (weight row) and count (bias).
fn add_to_class(w: &mut [f32], b: &mut [f32], c: usize, x: &[f32]) {
    let inputs = x.len();
    for (acc, &v) in w[c * inputs..(c + 1) * inputs].iter_mut().zip(x) {
        *acc += v;
    }
    b[c] += 1.0;
}
