//! A classifier head started from class prototypes (nearest-prototype initialisation).

use super::{split, Arena, BlobRef, Engine};
use crate::blob::LossKind;
use crate::buffer::Samples;
use crate::error::{Error, Result};
use crate::layers::Layer;

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// Start a classifier head from class prototypes: sets the model's first layer, a dense layer
    /// with one output per class, to the nearest-prototype classifier of `samples` (inputs: feature
    /// vectors, e.g. a frozen body's outputs; targets: class indices). Row c becomes 2·μ_c and bias
    /// c −‖μ_c‖², μ_c the mean input of class c, so the logits are ‖x‖² − ‖x − μ_c‖² up to the
    /// shared ‖x‖²; sums in f32 in sample order, the same bits on every target. Then
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
        self.clear_state();
        Ok(())
    }
}
