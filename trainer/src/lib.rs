//! anole-trainer: the workstation side of anole. Every forward, backward and SGD step of
//! meta-training goes through the device engine (`anole::Learner`), so the initialization is
//! tuned for exactly the arithmetic the device runs.
//!
//! Without the default feature `full` only the input readers ([`csvio`], [`data::images`]) are
//! built: that is what the fuzz targets in `trainer/fuzz` link.

pub mod csvio;
pub mod data;

#[cfg(feature = "full")]
pub mod calibrate;
#[cfg(feature = "full")]
pub mod card;
#[cfg(feature = "full")]
pub mod checkpoint;
#[cfg(feature = "full")]
pub mod cli;
#[cfg(feature = "full")]
pub mod cmd;
#[cfg(feature = "full")]
pub mod eval;
#[cfg(feature = "full")]
pub mod export;
#[cfg(feature = "full")]
pub mod fewshot;
#[cfg(feature = "full")]
pub mod files;
#[cfg(feature = "full")]
pub mod meta;
#[cfg(feature = "full")]
pub mod model;
#[cfg(feature = "full")]
pub mod plots;
#[cfg(feature = "full")]
pub mod progress;
#[cfg(feature = "full")]
pub mod signing;
#[cfg(feature = "full")]
pub mod stats;
#[cfg(feature = "full")]
pub mod tasks;
