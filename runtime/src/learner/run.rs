//! What a caller runs: a gradient, an optimizer step, an adaptation, predictions (with stored
//! or batch statistics) and the loss.

use super::{AdaptReport, Arena, BlobRef, Engine, NO_GRADIENT};
use crate::buffer::Samples;
use crate::error::{Error, Result};
use crate::loss;

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// Forward and backward on one minibatch (`inputs` `n × input_len`, `targets`
    /// `n × target_len`, `n <= batch`) without updating; returns the loss. The gradient is
    /// then available through [`Learner::gradient_into`](super::Learner::gradient_into).
    pub fn gradient(&mut self, inputs: &[f32], targets: &[f32]) -> Result<f32> {
        if self.plan.fused {
            return Err(NO_GRADIENT);
        }
        let s = self.check_batch(inputs, targets)?;
        let n = self.loaded_batch(&s)?;
        self.grad_loaded(n, None)
    }

    /// One optimizer step on one minibatch at learning rate `lr`; returns the loss before the
    /// update. On a non-finite loss or parameter the parameters are left unchanged (in
    /// [`Mode::Device`](crate::Mode::Device) the layers already updated in that backward pass keep
    /// their finite new values; see [`Mode::Device`](crate::Mode::Device)).
    pub fn step(&mut self, inputs: &[f32], targets: &[f32], lr: f32) -> Result<f32> {
        let s = self.check_batch(inputs, targets)?;
        let n = self.loaded_batch(&s)?;
        self.step_loaded(n, lr)
    }

    /// Adapt on `samples` for `steps` steps at the configured learning rate. Step `s` uses the
    /// minibatch of `min(batch, len)` samples starting at `s × minibatch` (cyclically), so a
    /// support set that fits in one batch is used whole at every step. Afterwards the statistics of
    /// trainable norm layers are recomputed from all samples (see `norm.rs`).
    ///
    /// On error the learner keeps the parameters of the last good step and still predicts: a step
    /// whose loss or update is not finite is not applied ([`Error::NonFiniteLoss`],
    /// [`Error::NonFiniteParameter`]), and statistics that would come out non-finite are not stored
    /// (the previous ones stay, [`Error::NonFiniteParameter`]). In
    /// [`Mode::Device`](crate::Mode::Device) a step that fails in the middle of its backward pass
    /// keeps the layers it had already updated (all parameters stay finite; see
    /// [`Mode::Device`](crate::Mode::Device)).
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

    /// Predict for `inputs` (`n × input_len`, any `n`), writing `n × output_len` values.
    pub fn predict(&mut self, inputs: &[f32], outputs: &mut [f32]) -> Result<()> {
        let (il, ol) = (self.blob.get().input_len(), self.blob.get().output_len());
        let n = self.rows(inputs)?;
        self.check_outputs(n, outputs)?;
        self.check_inputs(inputs)?;
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
    /// The same result as [`Learner::predict`](super::Learner::predict) on one sample, without
    /// its batching: the cheaper call for a device that predicts each reading as it arrives (the
    /// C API's per-sample path).
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

    /// Predict for `inputs` (`n × input_len`, `1 <= n <= batch`) with the *batch* statistics of
    /// these rows in every trainable norm layer, as the forward pass of an adaptation step computes
    /// them (frozen norm layers use their stored statistics, as in every pass). This is
    /// transductive: each row's output depends on the other rows. It is what meta-training and the
    /// paper's transductive evaluation measure; a device predicts per sample with
    /// [`Learner::predict`](super::Learner::predict). Parameters and stored statistics are not
    /// changed.
    pub fn predict_batch_stats(&mut self, inputs: &[f32], outputs: &mut [f32]) -> Result<()> {
        let ol = self.blob.get().output_len();
        let n = self.rows(inputs)?;
        self.check_pass_len(n)?;
        self.check_outputs(n, outputs)?;
        self.check_inputs(inputs)?;
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
}
