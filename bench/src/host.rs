//! Host measurements of the engine: one adaptation step and one forward pass through
//! `anole::Learner`, and the same forward pass in tract from the exported ONNX file.

use crate::timing::{median_secs, median_secs_pair};
use anole::{Blob, Learner, Options};
use anole_trainer::model::Arch;
use anyhow::{anyhow, bail, Context, Result};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;
use tract_onnx::prelude::*;

/// A model as shipped: the blob and the ONNX file written next to it.
pub struct Model {
    /// `init.postcard` bytes.
    pub blob: Vec<u8>,
    /// `init.onnx` bytes.
    pub onnx: Vec<u8>,
}

impl Model {
    /// `DIR/init.postcard` and `DIR/init.onnx`.
    pub fn load(dir: &Path) -> Result<Model> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))
        };
        let m = Model {
            blob: read("init.postcard")?,
            onnx: read("init.onnx")?,
        };
        Blob::parse(&m.blob)
            .map_err(|e| anyhow!("{}: not a valid anole blob: {e}", dir.display()))?;
        Ok(m)
    }

    /// The parsed blob.
    pub fn parse(&self) -> Result<Blob<'_>> {
        Blob::parse(&self.blob).map_err(|e| anyhow!("blob: {e}"))
    }
}

/// Deterministic inputs for `rows` samples of `model`: x ~ U[−5, 5] for a one-input regressor,
/// binary images (20% ink on white) otherwise.
pub fn inputs(blob: &Blob<'_>, rows: usize) -> Vec<f32> {
    let n = blob.input_len();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..rows * n)
        .map(|_| {
            let u = uniform();
            if n == 1 {
                -5.0 + 10.0 * u
            } else if u < 0.2 {
                0.0
            } else {
                1.0
            }
        })
        .collect()
}

/// Targets for `x`: 2·sin(x + 0.5) for a regressor, labels cycling over the classes for a
/// classifier.
pub fn targets(blob: &Blob<'_>, x: &[f32]) -> Vec<f32> {
    let rows = x.len() / blob.input_len();
    match blob.loss {
        anole::LossKind::Mse => x.iter().map(|v| 2.0 * (v + 0.5).sin()).collect(),
        anole::LossKind::CrossEntropy => {
            (0..rows).map(|i| (i % blob.output_len()) as f32).collect()
        }
    }
}

/// Median seconds of one `Learner::step` over `batch` samples, every layer adapting, with the
/// blob's optimizer at `lr`.
pub fn adapt_step(model: &Model, batch: usize, lr: f32, budget: Duration) -> Result<f64> {
    let blob = model.parse()?;
    let opts = Options {
        batch,
        trainable: Arch::of(&blob).all_layers(),
        lr,
    };
    let mut arena = vec![
        0.0f32;
        anole::Plan::new(&blob, batch, opts.trainable)
            .map_err(|e| anyhow!("plan: {e}"))?
            .arena_len()
    ];
    let mut l = Learner::with_options(&blob, &mut arena, opts).map_err(|e| anyhow!("{e}"))?;
    let x = inputs(&blob, batch);
    let y = targets(&blob, &x);
    median_secs(budget, || {
        l.step(black_box(&x), black_box(&y), lr)
            .map(|loss| {
                black_box(loss);
            })
            .map_err(|e| anyhow!("adaptation step: {e}"))
    })
}

/// One forward pass measured in both engines on the same inputs.
pub struct Forward {
    /// anole: median seconds of `Learner::predict` on the batch.
    pub anole: f64,
    /// tract: median seconds of running the optimized ONNX model on the batch.
    pub tract: f64,
    /// Largest absolute difference between the two outputs.
    pub max_diff: f32,
    /// Largest absolute value of tract's outputs.
    pub max_abs: f32,
}

/// anole's `predict` against tract's run of the ONNX export, at `rows` samples per call.
/// tract gets the input shape as a concrete fact before optimizing (its fastest setting).
pub fn forward(model: &Model, rows: usize, budget: Duration) -> Result<Forward> {
    let blob = model.parse()?;
    let x = inputs(&blob, rows);
    let mut y = vec![0.0f32; rows * blob.output_len()];
    let mut arena = vec![
        0.0f32;
        anole::Plan::new(&blob, rows, 0)
            .map_err(|e| anyhow!("plan: {e}"))?
            .arena_len()
    ];
    let opts = Options {
        batch: rows,
        trainable: 0,
        lr: 0.0,
    };
    let mut l = Learner::with_options(&blob, &mut arena, opts).map_err(|e| anyhow!("{e}"))?;
    let mut shape = vec![rows];
    match blob.shapes.first() {
        Some(anole::Shape::Flat(n)) => shape.push(*n),
        Some(anole::Shape::Chw(c, h, w)) => shape.extend([*c, *h, *w]),
        None => bail!("the blob has no input shape"),
    }
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &model.onnx[..])
        .context("tract: reading the ONNX model")?
        .with_input_fact(0, f32::fact(&shape).into())
        .context("tract: input fact")?
        .into_optimized()
        .context("tract: optimizing")?
        .into_runnable()
        .context("tract: making runnable")?;
    let input = Tensor::from_shape(&shape, &x)?.into_tvalue();
    let mut out = tvec!();
    // Samples of the two interleaved, so both see the same machine.
    let (anole, tract) = median_secs_pair(
        budget,
        || {
            l.predict(black_box(&x), &mut y)
                .map_err(|e| anyhow!("predict: {e}"))
        },
        || {
            out = plan.run(tvec!(input.clone()))?;
            Ok(())
        },
    )?;
    let t: Vec<f32> = out
        .first()
        .ok_or_else(|| anyhow!("tract returned no output"))?
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect();
    if t.len() != y.len() {
        bail!(
            "tract returned {} values, anole {}: not the same model",
            t.len(),
            y.len()
        );
    }
    let max_diff = t
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let max_abs = t.iter().map(|a| a.abs()).fold(0.0f32, f32::max);
    Ok(Forward {
        anole,
        tract,
        max_diff,
        max_abs,
    })
}
