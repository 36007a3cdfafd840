//! anole-trainer: the workstation side of anole. Every forward, backward and SGD step of
//! meta-training goes through the device engine (`anole::Learner`), so the initialization is
//! tuned for exactly the arithmetic the device runs.

pub mod checkpoint;
pub mod cli;
pub mod cmd;
pub mod csvio;
pub mod data;
pub mod eval;
pub mod export;
pub mod fewshot;
pub mod meta;
pub mod model;
pub mod plots;
pub mod progress;
pub mod tasks;
