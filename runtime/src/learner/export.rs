//! Export: the adapted parameters, or the optimizer state, written as a blob of the learner's
//! architecture, straight from the arena (no intermediate buffer).

use super::optim::trained_tensors;
use super::{Arena, BlobRef, Engine};
use crate::blob::Blob;
use crate::dtype::DType;
use crate::error::Result;
use crate::limits::MAX_TENSORS;
use crate::wire::{Provenance, RawTensor, TensorValues, Wire, OPTIMIZER_STATE};
use heapless::Vec as HVec;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

#[cfg(feature = "std")]
extern crate std;

impl<B: BlobRef, A: Arena> Engine<B, A> {
    fn wire(&self) -> Wire<'_, Exported<'_>> {
        let w = &self.blob.get().wire;
        let mut tensors: HVec<Exported<'_>, MAX_TENSORS> = HVec::new();
        for node in self.plan.nodes(self.blob.get()) {
            if !node.resident {
                for t in node.tensor0..node.tensor0 + node.layer.tensor_count() {
                    let _ = tensors.push(Exported::Stored(w.tensors[t]));
                }
                continue;
            }
            let mut off = node.params;
            for k in 0..node.layer.tensor_count() {
                let len = node.layer.tensor_len(node.input, k);
                let _ = tensors.push(Exported::Values(TensorValues {
                    dtype: self.blob.get().dtypes[node.tensor0 + k],
                    values: &self.arena.as_ref()[off..off + len],
                }));
                off += len;
            }
        }
        self.wire_with(tensors, w.provenance)
    }

    /// This learner's blob's header, layers and settings with `tensors` and `provenance`.
    fn wire_with<'s, 't>(
        &'s self,
        tensors: HVec<Exported<'t>, MAX_TENSORS>,
        provenance: Provenance<'s>,
    ) -> Wire<'s, Exported<'t>> {
        let w = &self.blob.get().wire;
        Wire {
            magic: w.magic,
            version: w.version,
            input_shape: w.input_shape.clone(),
            layers: w.layers.clone(),
            tensors,
            adapt: w.adapt.clone(),
            provenance,
        }
    }

    /// An optimizer-state blob of this learner's architecture: each trained tensor holds its
    /// optimizer state (Adam's second moments), every other tensor (and, under SGD, which
    /// keeps no state, every tensor) zeros; provenance
    /// algorithm [`OPTIMIZER_STATE`], `meta_iterations` the optimizer steps taken.
    fn state_wire(&self) -> Wire<'_, Exported<'_>> {
        let opt = &self.arena.as_ref()[self.opt_range()];
        let scales = &self.blob.get().settings().lr_scale;
        let mut trained = trained_tensors(&self.plan, self.blob.get(), scales, 0.0).peekable();
        let mut tensors: HVec<Exported<'_>, MAX_TENSORS> = HVec::new();
        for node in self.plan.nodes(self.blob.get()) {
            for k in 0..node.layer.tensor_count() {
                let t = node.tensor0 + k;
                let dtype = self.blob.get().dtypes[t];
                // SGD keeps no state: its trained tensors are zeros too.
                let state = trained
                    .next_if(|tr| tr.tensor == t)
                    .and_then(|tr| opt.get(tr.grads..tr.grads + tr.len));
                let tensor = match state {
                    Some(values) => Exported::Values(TensorValues { dtype, values }),
                    None => Exported::Zeros {
                        dtype,
                        len: node.layer.tensor_len(node.input, k),
                    },
                };
                let _ = tensors.push(tensor);
            }
        }
        let mut provenance = self.blob.get().wire.provenance;
        provenance.algorithm = OPTIMIZER_STATE;
        provenance.meta_iterations = self.steps as u64;
        self.wire_with(tensors, provenance)
    }

    /// Bytes [`Learner::export_optimizer_state`](super::Learner::export_optimizer_state) writes.
    pub fn optimizer_state_len(&self) -> usize {
        crate::blob::encoded_len(&self.state_wire())
    }

    /// Write the optimizer's state as an optimizer-state blob into `out`: the architecture,
    /// dtypes and settings of this learner's blob, the optimizer state (Adam's second moments)
    /// in each trained tensor, zeros in the others (all zeros under SGD, which keeps no
    /// state), and the steps taken in the provenance's `meta_iterations`, under algorithm
    /// [`OPTIMIZER_STATE`]. A learner of the same architecture continues from it with
    /// [`Learner::load_optimizer_state_from`](super::Learner::load_optimizer_state_from).
    pub fn export_optimizer_state<'o>(&self, out: &'o mut [u8]) -> Result<&'o [u8]> {
        Blob::encode_wire(&self.state_wire(), out)
    }

    /// [`Learner::export_optimizer_state`](super::Learner::export_optimizer_state) into a fresh
    /// vector (host convenience).
    #[cfg(feature = "std")]
    pub fn export_optimizer_state_vec(&self) -> std::vec::Vec<u8> {
        crate::blob::encode_to_vec(&self.state_wire())
    }

    /// Bytes [`Learner::export`](super::Learner::export) writes.
    pub fn export_len(&self) -> usize {
        crate::blob::encoded_len(&self.wire())
    }

    /// Write the current (adapted) parameters as a blob into `out`, with the source blob's
    /// architecture, dtypes, settings and provenance. Unadapted, the output is bit-identical
    /// to the source blob.
    pub fn export<'o>(&self, out: &'o mut [u8]) -> Result<&'o [u8]> {
        Blob::encode_wire(&self.wire(), out)
    }

    /// Export into a fresh vector (host convenience).
    #[cfg(feature = "std")]
    pub fn export_vec(&self) -> std::vec::Vec<u8> {
        crate::blob::encode_to_vec(&self.wire())
    }
}

/// A tensor of an exported blob: values from the arena, or a frozen layer's tensor copied as
/// stored. Both serialize as a [`crate::blob::RawTensor`].
#[derive(Clone, Copy, Debug)]
enum Exported<'v> {
    Values(TensorValues<'v>),
    Stored(RawTensor<'v>),
    /// `len` zeros.
    Zeros {
        dtype: DType,
        len: usize,
    },
}

impl Serialize for Exported<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        match self {
            Exported::Values(t) => t.serialize(s),
            Exported::Stored(t) => t.serialize(s),
            Exported::Zeros { dtype, len } => {
                let mut st = s.serialize_struct("RawTensor", 2)?;
                st.serialize_field("dtype", &(*dtype as u8))?;
                st.serialize_field("data", &ZeroBytes(len * dtype.size()))?;
                st.end()
            }
        }
    }
}

/// A byte sequence of this many zeros (0.0 in every dtype).
struct ZeroBytes(usize);

impl Serialize for ZeroBytes {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0))?;
        for _ in 0..self.0 {
            seq.serialize_element(&0u8)?;
        }
        seq.end()
    }
}
