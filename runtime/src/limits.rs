//! The runtime's fixed bounds: how many layers, tensors and arguments a blob may hold, and how
//! large a dimension, a sample and a tensor may be. Every size the runtime computes after a
//! blob's validation stays within a 32-bit `usize` because of them.

/// Most layers a model may have: 64 in builds with the `extra-layers` feature (every host
/// build has it, through `std`), 32 in lean device builds, whose fixed-capacity lists of layers
/// and shapes keep their size. A blob of format version 1 or 2 holds at most [`MAX_LAYERS_V2`].
pub const MAX_LAYERS: usize = if cfg!(feature = "extra-layers") {
    64
} else {
    32
};
/// Most layers a blob of format version 1 or 2 may have (their trainable mask is a `u32`).
pub const MAX_LAYERS_V2: usize = 32;
/// A set of layers, bit `i` for layer `i` (the trainable mask), [`MAX_LAYERS`] bits: `u64` with
/// the `extra-layers` feature, `u32` without. On the wire it is a `u64` varint from format
/// version 3 on, a `u32` varint before: the same bytes for a mask below 2^32.
#[cfg(feature = "extra-layers")]
pub type LayerMask = u64;
/// A set of layers (see the `extra-layers` build's documentation): `u32` in a lean build.
#[cfg(not(feature = "extra-layers"))]
pub type LayerMask = u32;
/// Most tensors a model may have.
pub const MAX_TENSORS: usize = 64;
/// Most arguments of one layer record.
pub const MAX_LAYER_ARGS: usize = 6;
/// Most dimensions of the per-sample input shape.
pub const MAX_INPUT_RANK: usize = 3;
/// Largest size accepted for any one dimension or layer argument (guards overflow).
pub const MAX_DIM: usize = 1 << 20;
/// Most values one sample may hold at any point of the network.
pub const MAX_SHAPE_LEN: usize = MAX_DIM * 16;
/// Most elements of one tensor. With these bounds every size the runtime computes after
/// validation fits a 32-bit `usize`, so no later arithmetic can overflow on a device.
pub const MAX_TENSOR_LEN: usize = 1 << 26;

/// Whether `mask` names a layer at index `layers` or above (a model of `layers` layers has none).
pub(crate) fn names_beyond(mask: LayerMask, layers: usize) -> bool {
    // A shift by the mask's width or more (64 layers of a 64-bit mask) leaves nothing.
    u32::try_from(layers)
        .ok()
        .and_then(|n| mask.checked_shr(n))
        .is_some_and(|rest| rest != 0)
}

/// `mask` (a `u64`, as format version 3 and the C API hold it) as this build's [`LayerMask`],
/// if it fits: always with `extra-layers`, below 2^32 in a lean build.
pub fn layer_mask(mask: u64) -> Option<LayerMask> {
    // `LayerMask` is `u32` or `u64`: the cast keeps every bit when the shifted-out ones are 0.
    (mask.checked_shr(LayerMask::BITS).unwrap_or(0) == 0).then_some(mask as LayerMask)
}

/// `mask` as a `u64`, as format version 3 and the C API hold it.
// `LayerMask` is `u64` with `extra-layers` (the conversion is then the identity), `u32` without.
#[allow(clippy::useless_conversion)]
pub fn mask_to_u64(mask: LayerMask) -> u64 {
    u64::from(mask)
}
