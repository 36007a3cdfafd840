//! How far the second-order MAML meta-gradient of `anole train --algo maml` depends on the step of
//! its finite-difference Hessian-vector products, on an Omniglot CNN (where ReLUs and batch
//! statistics make the gradient only piecewise smooth; the sine MLP is checked against exact
//! autograd in `tests/maml_autograd.rs`). For held-out 5-way training tasks at the blob's
//! parameters φ: the MAML meta-gradient with each difference step h, its relative distance to
//! the one at the training step (`HVP_STEP`), and the size of its second-order part
//! ‖MAML − FOMAML‖ / ‖MAML‖. If the distances between steps are small next to the second-order
//! part, the estimate is not what decides MAML's result.
//!
//! ```sh
//! cargo run --release -p anole-trainer --example maml_hvp_check -- \
//!     --model out/paper-maml-omniglot/maml-0.3/init.postcard --data ../shared/data/omniglot
//! ```

use anole::{Options, OwnedLearner};
use anole_trainer::data::omniglot::{Omniglot, Split};
use anole_trainer::meta::maml::{meta_gradient, Tape, HVP_STEP};
use anole_trainer::model;
use anole_trainer::tasks::omniglot::OmniglotTasks;
use anole_trainer::tasks::{rng, Stream, TaskFamily};
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments.
#[derive(Parser)]
struct Args {
    /// The blob whose parameters are φ (a 5-way Omniglot CNN).
    #[arg(long)]
    model: PathBuf,
    /// The Omniglot folder.
    #[arg(long)]
    data: PathBuf,
    /// Channels of the CNN's convolutions.
    #[arg(long, default_value_t = 16)]
    filters: usize,
    /// Tasks to measure.
    #[arg(long, default_value_t = 5)]
    tasks: u64,
    /// Inner steps k (k − 1 SGD steps, then the last minibatch's gradient).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Inner learning rate α.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Training shots per class of a task, and the inner minibatch.
    #[arg(long, default_value_t = 10)]
    shots: usize,
    /// Inner minibatch.
    #[arg(long, default_value_t = 10)]
    batch: usize,
}

fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&a| (a as f64) * (a as f64))
        .sum::<f64>()
        .sqrt()
}

fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let shared = model::read_blob(&args.model)?;
    let blob = shared.blob();
    let data = Arc::new(Omniglot::load(&args.data)?);
    let family = OmniglotTasks::new(&data, Split::Paper, 0, blob.output_len(), args.filters)?;
    let opts = Options {
        batch: args.batch,
        trainable: family.arch().all_layers(),
        lr: args.lr,
    };
    let mut learner = OwnedLearner::with_options(&shared, opts)?;
    let phi = learner.params().to_vec();
    let steps = [1e-4f32, 3e-4, 1e-3, HVP_STEP, 1e-2, 3e-2];
    println!(
        "φ = {}, {} parameters; k = {}, α = {}; distance to h = {HVP_STEP} (relative)",
        args.model.display(),
        phi.len(),
        args.steps,
        args.lr
    );
    println!(
        "task | {} | second-order part",
        steps.map(|h| format!("h = {h}")).join(" | ")
    );
    let mut tape = Tape::default();
    for t in 0..args.tasks {
        let task = family.train_task(&mut rng(7, Stream::Train, t), args.shots)?;
        let mut grads = Vec::new();
        for &h in &steps {
            meta_gradient(
                &mut learner,
                &task,
                &phi,
                args.steps,
                args.batch,
                args.lr,
                h,
                &mut tape,
            )?;
            grads.push(tape.gradient().to_vec());
        }
        // FOMAML: the last minibatch's gradient at the adapted parameters.
        let mut scratch = Default::default();
        let (x, y) = task.minibatch(args.steps - 1, args.batch, &mut scratch);
        learner.set_params(tape.adapted())?;
        learner.gradient(x, y)?;
        let mut fomaml = vec![0.0; phi.len()];
        learner.gradient_into(&mut fomaml)?;
        let reference = &grads[3];
        let cells: Vec<String> = grads
            .iter()
            .map(|g| format!("{:.1e}", distance(g, reference) / norm(reference)))
            .collect();
        println!(
            "{} | {} | {:.2}",
            t + 1,
            cells.join(" | "),
            distance(reference, &fomaml) / norm(reference)
        );
    }
    Ok(())
}
