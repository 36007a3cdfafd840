//! The stored normalisation statistics of a meta-learned network. Meta-training only ever uses
//! batch statistics; the statistics stored in the blob serve predictions without adaptation and
//! the frozen body of head-only adaptation, so they are set from freshly drawn training tasks
//! once training ends.

use crate::meta::{self, Config};
use crate::model::{self, Arch, BlobMeta};
use crate::tasks::{self, Stream, TaskFamily};
use anole::{DType, Layer, Options, OwnedLearner, SliceSamples};
use anyhow::{Context, Result};

/// Training tasks whose samples set the stored normalisation statistics.
pub const STATISTICS_TASKS: usize = 40;

/// `params` of `arch` with the stored statistics of every norm layer set to those of
/// [`STATISTICS_TASKS`] training tasks of `family` drawn for a run of `cfg` (layer by layer, as
/// `Learner::refresh_norm_stats` does after adapting). Unchanged when the network has no norm
/// layer.
pub fn norm_statistics(
    arch: &Arch,
    params: &[f32],
    family: &dyn TaskFamily,
    cfg: &Config,
) -> Result<Vec<f32>> {
    if !arch.layers.iter().any(|l| matches!(l, Layer::Norm { .. })) {
        return Ok(params.to_vec());
    }
    let mut rng = tasks::rng(cfg.seed, Stream::Init, 1);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..STATISTICS_TASKS {
        let b = family.train_task(&mut rng, cfg.shots)?;
        x.extend_from_slice(b.input_slice());
        y.extend_from_slice(b.target_slice());
    }
    let meta = BlobMeta {
        dtype: DType::F32,
        settings: meta::adapt_settings(family, cfg, 1, cfg.inner_batch),
        algorithm: cfg.algo.as_str().into(),
        task: family.name().into(),
        seed: cfg.seed,
        meta_iterations: 0,
    };
    let blob = model::shared(model::encode_blob(arch, params, &meta)?)?;
    let opts = Options {
        batch: 100,
        trainable: arch.all_layers(),
        lr: 0.0,
    };
    let mut l = OwnedLearner::with_options(&blob, opts)?;
    let (il, tl) = (blob.blob().input_len(), blob.blob().target_len());
    l.refresh_norm_stats(&SliceSamples::new(&x, &y, il, tl)?)
        .context("normalisation statistics of the meta-learned network")?;
    Ok(l.params().to_vec())
}
