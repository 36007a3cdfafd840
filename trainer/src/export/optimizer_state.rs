//! The inner optimizer's state a `--inner-state keep` run keeps across tasks, exported as an
//! optimizer-state blob next to the initialization, so that a device (or `anole eval/adapt
//! --optimizer-state`) can adapt from it.

use crate::meta::AlgoState;
use crate::model::{self, Arch, BlobMeta};
use anole::{DType, Options, OwnedLearner};
use anyhow::{Context, Result};

/// The file a `--inner-state keep` run writes the state to.
pub const OPTIMIZER_STATE_FILE: &str = "init.adam.postcard";

/// `state` as an optimizer-state blob of `arch` (f32): the state of the trainer's learners
/// (every layer adapting at learning rate `lr`), whose parameters are `params`. `meta` gives
/// the settings; the export writes its own provenance.
pub fn optimizer_state_blob(
    arch: &Arch,
    params: &[f32],
    state: &AlgoState,
    meta: &BlobMeta,
    lr: f32,
) -> Result<Vec<u8>> {
    let meta = BlobMeta {
        dtype: DType::F32,
        algorithm: anole::OPTIMIZER_STATE.into(),
        meta_iterations: 0,
        ..meta.clone()
    };
    let blob = model::shared(model::encode_blob(arch, params, &meta)?)?;
    let opts = Options {
        batch: 1,
        trainable: arch.all_layers(),
        lr,
    };
    let mut l = OwnedLearner::with_options(&blob, opts)?;
    if state.steps > 0 {
        let steps = u32::try_from(state.steps).unwrap_or(u32::MAX);
        l.set_optimizer_state(steps, &state.values)
            .context("the kept inner optimizer state")?;
    }
    Ok(l.export_optimizer_state_vec())
}
