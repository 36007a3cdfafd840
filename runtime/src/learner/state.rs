//! The learner's state: the parameters (reset to the blob's, replaced, loaded from another
//! blob), the optimizer state (read, restored, loaded from an optimizer-state blob) and the
//! last gradient.

use super::optim::trained_tensors;
use super::{Arena, BlobRef, Engine, NO_GRADIENT};
use crate::blob::Blob;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::wire::OPTIMIZER_STATE;

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// Back to the meta-initialization stored in the blob; clears optimizer state.
    pub fn reset(&mut self) {
        let own = self.blob.get();
        read_resident(&self.plan, own, own, self.arena.as_mut());
        self.clear_state();
    }

    /// Zero the optimizer state, gradients and working regions, and the step count: what
    /// follows every replacement of the parameters.
    pub(super) fn clear_state(&mut self) {
        let p = self.plan.params_len;
        self.arena.as_mut()[p..].fill(0.0);
        self.steps = 0;
    }

    /// The parameters in the arena, in blob tensor order, as f32: all of them in
    /// [`Mode::Buffered`](crate::Mode::Buffered); in [`Mode::Device`](crate::Mode::Device) those of
    /// adapting and norm layers (frozen dense and convolution layers are read from the blob and are
    /// not here).
    pub fn params(&self) -> &[f32] {
        &self.arena.as_ref()[..self.plan.params_len]
    }

    /// Replace the parameters in the arena (e.g. the trainer's meta-parameters; the same
    /// length and order as [`Learner::params`](super::Learner::params)); clears optimizer state.
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.plan.params_len {
            return Err(Error::ParamCount {
                expected: self.plan.params_len,
                found: params.len(),
            });
        }
        if let Some(bad) = params.iter().position(|v| !v.is_finite()) {
            // Name the tensor holding the bad value.
            let mut tensor = 0;
            let mut end = 0;
            for node in self.plan.nodes(self.blob.get()) {
                if !node.resident {
                    tensor += node.layer.tensor_count();
                    continue;
                }
                for k in 0..node.layer.tensor_count() {
                    end += node.layer.tensor_len(node.input, k);
                    if bad < end {
                        return Err(Error::NonFiniteWeight { tensor });
                    }
                    tensor += 1;
                }
            }
            return Err(Error::NonFiniteWeight { tensor });
        }
        self.arena.as_mut()[..params.len()].copy_from_slice(params);
        self.clear_state();
        Ok(())
    }

    /// The optimizer's state: the steps taken since the last reset and the per-parameter state
    /// (Adam's second-moment estimates, one per trained parameter in gradient order; empty for
    /// SGD). With [`Learner::set_optimizer_state`](super::Learner::set_optimizer_state) a caller
    /// can carry it from one task to the next, as the trainer's `--inner-state keep` does.
    pub fn optimizer_state(&self) -> (u32, &[f32]) {
        (self.steps, &self.arena.as_ref()[self.opt_range()])
    }

    /// Where the optimizer state lies in the arena (after the parameters and gradients).
    pub(super) fn opt_range(&self) -> core::ops::Range<usize> {
        let o = self.plan.params_len + self.plan.grads_len;
        o..o + self.plan.opt_len
    }

    /// Restore a state [`Learner::optimizer_state`](super::Learner::optimizer_state) returned (of a
    /// learner with the same blob and options), after
    /// [`Learner::set_params`](super::Learner::set_params) or
    /// [`Learner::reset`](super::Learner::reset) cleared it. Nothing changes on an error.
    pub fn set_optimizer_state(&mut self, steps: u32, state: &[f32]) -> Result<()> {
        if state.len() != self.plan.opt_len {
            return Err(Error::OptimizerStateLen {
                expected: self.plan.opt_len,
                found: state.len(),
            });
        }
        if let Some(index) = state.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::BadOptimizerState { index });
        }
        let opt = self.opt_range();
        self.arena.as_mut()[opt].copy_from_slice(state);
        self.steps = steps;
        Ok(())
    }

    /// Load the optimizer state of an optimizer-state blob (written by
    /// [`Learner::export_optimizer_state`](super::Learner::export_optimizer_state), e.g. the
    /// trainer's `init.adam.postcard`) of the same input shape and layers; its dtypes may differ.
    /// Each trained tensor of this learner takes its state from the same tensor of `state`, and the
    /// step count (Adam's bias correction) becomes the blob's `meta_iterations`. Call it after
    /// [`Learner::reset`](super::Learner::reset) or
    /// [`Learner::set_params`](super::Learner::set_params), which clear the state. Refused, with
    /// nothing changed: a blob that is not an optimizer state ([`Error::NotOptimizerState`]), of
    /// another architecture ([`Error::ArchitectureMismatch`]), for a learner whose optimizer keeps
    /// no state ([`Error::OptimizerStateLen`]), or holding a negative value in a trained tensor
    /// ([`Error::BadOptimizerState`], indexed in
    /// [`Learner::optimizer_state`](super::Learner::optimizer_state) order).
    pub fn load_optimizer_state_from(&mut self, state: &Blob<'_>) -> Result<()> {
        if state.wire.provenance.algorithm != OPTIMIZER_STATE {
            return Err(Error::NotOptimizerState);
        }
        let own = &self.blob.get().wire;
        if state.wire.input_shape != own.input_shape || state.wire.layers != own.layers {
            return Err(Error::ArchitectureMismatch);
        }
        if self.plan.opt_len == 0 {
            return Err(Error::OptimizerStateLen {
                expected: 0,
                found: self.plan.grads_len,
            });
        }
        let scales = &self.blob.get().settings().lr_scale;
        for t in trained_tensors(&self.plan, self.blob.get(), scales, 0.0) {
            let (dtype, data) = (state.dtypes[t.tensor], state.wire.tensors[t.tensor].data);
            if let Some(j) = (0..t.len).position(|j| dtype.get(data, j) < 0.0) {
                return Err(Error::BadOptimizerState { index: t.grads + j });
            }
        }
        let o = self.opt_range().start;
        for t in trained_tensors(&self.plan, self.blob.get(), scales, 0.0) {
            state.read_tensor(t.tensor, &mut self.arena.as_mut()[o + t.grads..][..t.len]);
        }
        self.steps = u32::try_from(state.wire.provenance.meta_iterations).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Replace all parameters with those of `other`, a blob of the same architecture (input shape,
    /// layers and tensor dtypes) as the one this learner was loaded from, such as adapted
    /// parameters exported earlier with [`Learner::export`](super::Learner::export) and persisted.
    /// Decodes straight into the arena (no intermediate buffer); clears optimizer state. The other
    /// blob's settings and provenance are ignored. A blob of another architecture is refused with
    /// [`Error::ArchitectureMismatch`] and the parameters are left unchanged. In
    /// [`Mode::Device`](crate::Mode::Device) frozen dense and convolution layers are read from this
    /// learner's own blob, so `other` must store the same bytes for them (else
    /// `ArchitectureMismatch`).
    pub fn load_params_from(&mut self, other: &Blob<'_>) -> Result<()> {
        let own = &self.blob.get().wire;
        if other.wire.input_shape != own.input_shape
            || other.wire.layers != own.layers
            || other.dtypes != self.blob.get().dtypes
        {
            return Err(Error::ArchitectureMismatch);
        }
        for node in self.plan.nodes(self.blob.get()).filter(|n| !n.resident) {
            for t in node.tensor0..node.tensor0 + node.layer.tensor_count() {
                if other.wire.tensors[t].data != own.tensors[t].data {
                    return Err(Error::ArchitectureMismatch);
                }
            }
        }
        read_resident(&self.plan, self.blob.get(), other, self.arena.as_mut());
        self.clear_state();
        Ok(())
    }

    /// The gradient of the last [`Learner::gradient`](super::Learner::gradient) or step, written
    /// into `out` in parameter order (zeros for frozen layers and norm statistics).
    pub fn gradient_into(&self, out: &mut [f32]) -> Result<()> {
        if self.plan.fused {
            return Err(NO_GRADIENT);
        }
        if out.len() != self.plan.params_len {
            return Err(Error::ParamCount {
                expected: self.plan.params_len,
                found: out.len(),
            });
        }
        out.fill(0.0);
        let g0 = self.plan.params_len;
        for node in self.plan.nodes(self.blob.get()) {
            if let Some(goff) = node.grads {
                let len = node.layer.trained_len(node.input);
                out[node.params..node.params + len]
                    .copy_from_slice(&self.arena.as_ref()[g0 + goff..g0 + goff + len]);
            }
        }
        Ok(())
    }
}

/// Decode the tensors of the layers `plan` keeps in the arena (every layer in
/// [`Mode::Buffered`](crate::Mode::Buffered)) from `from`, a blob of `own`'s architecture, into
/// the parameter region of `arena`.
fn read_resident(plan: &Plan, own: &Blob<'_>, from: &Blob<'_>, arena: &mut [f32]) {
    for node in plan.nodes(own).filter(|n| n.resident) {
        let mut off = node.params;
        for k in 0..node.layer.tensor_count() {
            let len = node.layer.tensor_len(node.input, k);
            from.read_tensor(node.tensor0 + k, &mut arena[off..off + len]);
            off += len;
        }
    }
}
