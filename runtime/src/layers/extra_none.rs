//! Stands in for `extra.rs` when the runtime is built without its `extra-layers` feature:
//! [`Extra`] and [`ExtraPost`] have no value, so the code that handles them is never built,
//! and a blob using one of these kinds is refused when it loads.

use super::{Layer, Post, Shape};
use crate::error::{Error, Result};
use crate::limits::MAX_LAYER_ARGS;
use crate::wire::RawLayer;

/// The other layer kinds: not built in (the `extra-layers` feature is off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Extra {}

impl Extra {
    /// Always an error: the kind is not built in.
    pub(super) fn from_raw(index: usize, raw: &RawLayer) -> Result<Extra> {
        Err(Error::UnknownLayer {
            layer: index,
            kind: raw.kind,
        })
    }
    pub(super) fn to_raw(self, _: &mut heapless::Vec<u32, MAX_LAYER_ARGS>) -> u8 {
        match self {}
    }
    /// Short name for listings.
    pub const fn name(self) -> &'static str {
        match self {}
    }
    pub(super) fn accepts(self, _: Shape) -> bool {
        match self {}
    }
    pub(super) fn output_shape(self, _: Shape) -> Option<Shape> {
        match self {}
    }
    pub(super) const fn tensor_count(self) -> usize {
        match self {}
    }
    pub(super) const fn tensor_len(self, _: usize) -> usize {
        match self {}
    }
    pub(super) fn checked_tensor_len(self, _: usize) -> Option<usize> {
        match self {}
    }
    pub(super) fn macs(self, _: Shape) -> usize {
        match self {}
    }
    pub(super) const fn reads(self) -> Option<usize> {
        match self {}
    }
    pub(super) const fn is_branch(self) -> bool {
        match self {}
    }
    pub(super) fn fan_in(self) -> Option<usize> {
        match self {}
    }
    /// Never called: there is no value.
    pub fn join_forward(self, _: &[f32], _: &[f32], _: &mut [f32], _: usize) {
        match self {}
    }
    /// Never called: there is no value.
    pub fn join_backward(self, _: &[f32], _: Option<&mut [f32]>, _: &mut [f32], _: usize) {
        match self {}
    }
    pub(super) fn output_reading(self, _: Shape, _: Shape) -> Option<Shape> {
        match self {}
    }
    pub(super) const fn in_place(self) -> bool {
        match self {}
    }
    /// An in-place layer's forward pass.
    pub fn apply(self, _: &mut [f32]) {
        match self {}
    }
    /// Forward pass of a layer that is not in place.
    pub fn forward(self, _: Shape, _: impl Fn(usize) -> f32, _: &[f32], _: &mut [f32], _: usize) {
        match self {}
    }
    /// Backward pass of a layer that is not in place.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        self,
        _: Shape,
        _: impl Fn(usize) -> f32,
        _: &[f32],
        _: &[f32],
        _: Option<&mut [f32]>,
        _: Option<&mut [f32]>,
        _: usize,
    ) {
        match self {}
    }
}

/// The derivative of the other in-place activations: not built in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExtraPost {}

impl ExtraPost {
    pub(super) fn after(_: Post, e: Extra) -> Option<ExtraPost> {
        match e {}
    }
    pub(super) fn then(self, _: Layer) -> Option<ExtraPost> {
        match self {}
    }
    pub(super) fn deliver(self, _: &[f32], _: &mut [f32]) {
        match self {}
    }
}
