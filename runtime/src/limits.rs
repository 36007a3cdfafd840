//! The runtime's fixed bounds: how many layers, tensors and arguments a blob may hold, and how
//! large a dimension, a sample and a tensor may be. Every size the runtime computes after a
//! blob's validation stays within a 32-bit `usize` because of them.

/// Most layers a model may have.
pub const MAX_LAYERS: usize = 32;
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
