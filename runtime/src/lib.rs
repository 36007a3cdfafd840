//! # anole — few-shot adaptation on the device
//!
//! A `no_std`, heap-free engine that loads a meta-learned initialization (a *blob*) from
//! flash, adapts it to local samples with a few first-order SGD steps, and predicts. The
//! workstation trainer runs every inner-loop step through this same code.
//!
//! ```no_run
//! use anole::{Blob, Learner, SampleBuffer};
//! static BLOB: &[u8] = &[]; // include_bytes!("init.postcard")
//! static mut ARENA: [f32; 12_000] = [0.0; 12_000];
//! # fn main() -> Result<(), anole::Error> {
//! let blob = Blob::parse(BLOB)?;
//! // SAFETY (example): ARENA is only borrowed here, once.
//! let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
//! let mut learner = Learner::new(&blob, arena)?;
//! let mut samples: SampleBuffer<10, 1, 1> = SampleBuffer::new();
//! samples.push(&[0.5], &[1.2])?;
//! learner.adapt(&samples, blob.settings().steps)?;
//! let mut y = [0.0];
//! learner.predict(&[0.7], &mut y)?;
//! # Ok(()) }
//! ```
//!
//! On a microcontroller, use the device layout: `Learner::with_mode(&blob, arena, opts,
//! Mode::Device)` (SGD fused into the backward pass, frozen layers read from flash; the arena
//! needs [`Blob::device_arena_len`] f32), and parse in place
//! (`let mut blob = Blob::empty(); blob.parse_in_place(BLOB)?`). See [`plan::Mode`].
//!
//! On a host (feature `std`), `OwnedLearner` is the same engine with its own arena and a
//! `SharedBlob` that any number of learners read: `OwnedLearner::new(&SharedBlob::parse(bytes)?)?`
//! (see the `host` module).
//!
//! # Modules
//!
//! Each uses only those listed before it: [`limits`], [`dtype`] and [`simd`] (leaves; `simd`
//! chooses the host kernels' vector path), [`wire`] (the encoded records), [`error`],
//! [`layers`] (shapes, parameters and kernels of each layer kind), [`blob`] (parsing and
//! validation), [`plan`] (the arena layout) and [`submodel`] (a blob's body and head),
//! [`learner`], then `host`, `persist` and `sign`. [`buffer`] and [`loss`] stand apart. Every
//! method of [`Blob`] is in `blob.rs`; its arena sizes and `Blob::parse_signed` call into
//! [`plan`] and `sign`.
#![no_std]
#![deny(missing_docs)]
// `unsafe` only in `simd::host_simd` (x86-64 host builds: the AVX-512 and AVX2 copies of a
// kernel, called when the CPU has them), `layers::conv_fma` (x86-64 hosts with the `gemm`
// feature: the AVX-512 and AVX2/FMA convolution kernels, their loads bounded by assertions)
// and `layers::vfp` (hard-float bare-metal Arm: FPU assembly kernels), each block with its
// proof of soundness.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub mod blob;
pub mod buffer;
pub mod delta;
pub mod dtype;
pub mod error;
#[cfg(feature = "std")]
pub mod host;
pub mod layers;
pub mod learner;
pub mod limits;
pub mod loss;
#[cfg(feature = "persist")]
pub mod persist;
pub mod plan;
#[cfg(feature = "sign")]
pub mod sign;
pub mod simd;
pub mod submodel;
pub mod wire;

pub use blob::{Blob, DType, HeadStart, LossKind, Optimizer, OPTIMIZER_STATE};
pub use buffer::{SampleBuffer, Samples, SliceSamples};
pub use error::{Error, Result};
#[cfg(feature = "std")]
pub use host::{OwnedLearner, SharedBlob};
pub use layers::{Extra, Layer, Shape};
pub use learner::{AdaptReport, Engine, Learner, Options, TensorValues};
pub use limits::LayerMask;
#[cfg(feature = "persist")]
pub use persist::{Loaded, Refused, Store};
pub use plan::{Mode, Plan};
