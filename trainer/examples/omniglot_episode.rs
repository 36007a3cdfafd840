//! Writes the Omniglot episode the `firmware-examples/omniglot-m4` firmware embeds: one N-way
//! K-shot episode of held-out characters, preprocessed by the trainer (28×28, exactly the
//! network input of training and `anole eval`), bit-packed (Omniglot's preprocessed pixels are
//! all 0 or 255), with the host's head-only predictions for comparison on the device; a text
//! file next to it (`episode.txt`) names the characters and the host's accuracy.
//!
//! The episode is episode 0 of `anole eval --seed SEED`: the same support and query images, so
//! `anole eval --model MODEL --data DATA --ways 5 --shots 5 --queries 15 --adapt head --tasks 1
//! --seed SEED` reports the accuracy the host expects.
//!
//! ```text
//! cargo run --release -p anole-trainer --example omniglot_episode -- \
//!     --model models/omniglot-5way/init.f16.postcard --data ../shared/data/omniglot \
//!     --out firmware-examples/omniglot-m4/episode.bin
//! ```
//!
//! File format (version 1, integers little-endian), read by `omniglot-m4/src/episode.rs`:
//!
//! ```text
//! 0   4   magic "AOEP"
//! 4   1   version (1)
//! 5   1   ways N
//! 6   1   shots K (support images per class)
//! 7   1   queries Q (query images per class)
//! 8   1   side (28)
//! 9   3   zero
//! 12  4   CRC-32 trailer of the model blob the host predictions were made with
//! 16  N·K support labels, then N·Q query labels, then N·Q host predictions (u8 each)
//! ..  N·K + N·Q images of side² bits each (row-major, most significant bit first,
//!     1 = white paper = input 1.0, 0 = ink = input 0.0), support first
//! ```

use anole::{Blob, LossKind};
use anole_trainer::data::omniglot::{Omniglot, Split};
use anole_trainer::fewshot::{
    self, AdaptMode, Features, FewShotConfig, HeadInit, HeadSplit, NormMode,
};
use anole_trainer::model;
use anole_trainer::tasks::omniglot::read_held_out;
use anole_trainer::tasks::omniglot::OmniglotTasks;
use anole_trainer::tasks::{rng, Stream, TaskFamily};
use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;

const SIDE: usize = 28;

#[derive(Parser)]
#[command(about = "Write the bit-packed Omniglot episode of the omniglot-m4 firmware")]
struct Args {
    /// The model blob (f16 or f32) the firmware embeds.
    #[arg(long)]
    model: PathBuf,
    /// Folder holding images_background.zip and images_evaluation.zip (or the unzipped folders).
    #[arg(long)]
    data: PathBuf,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Support images per class.
    #[arg(long, default_value_t = 5)]
    shots: usize,
    /// Query images per class (Omniglot has 20 drawings per character).
    #[arg(long, default_value_t = 15)]
    queries: usize,
    /// Seed of the held-out episodes (`anole eval --seed`); episode 0 is written.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() {
    if let Err(e) = run(&Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Held-out characters as `anole eval` picks them: the model card's list next to the model,
/// else the paper split with the seed the model was trained with.
fn family(args: &Args, blob: &Blob<'_>, data: &Arc<Omniglot>) -> Result<OmniglotTasks> {
    let ways = blob.output_len();
    let filters = match blob.layers.first() {
        Some(anole::Layer::Conv2d { out_channels, .. }) => *out_channels,
        _ => bail!("{}: not an Omniglot CNN", args.model.display()),
    };
    let card = args.model.parent().map(|d| d.join("card.json"));
    match card.filter(|c| c.is_file()) {
        Some(c) => {
            let names = read_held_out(&c)?;
            let pool = data
                .pool(&names)
                .with_context(|| format!("{}: held-out characters", c.display()))?;
            eprintln!("{} held-out characters from {}", names.len(), c.display());
            OmniglotTasks::from_pools(None, pool, ways, filters)
        }
        None => {
            let seed = blob.provenance().seed;
            eprintln!("held-out characters of the paper split with seed {seed} (no card.json)");
            OmniglotTasks::new(data, Split::Paper, seed, ways, filters)
        }
    }
}

fn pack(image: &[f32], file: &str, row: usize) -> Result<[u8; SIDE * SIDE / 8]> {
    let mut out = [0u8; SIDE * SIDE / 8];
    for (i, &v) in image.iter().enumerate() {
        if v == 1.0 {
            out[i / 8] |= 0x80 >> (i % 8);
        } else if v != 0.0 {
            bail!("{file} row {row}: pixel {i} is {v}, not 0 or 1: the image cannot be bit-packed");
        }
    }
    Ok(out)
}

fn run(args: &Args) -> Result<()> {
    let shared = model::read_blob(&args.model)?;
    let blob = shared.blob();
    ensure!(
        blob.loss == LossKind::CrossEntropy && blob.input_len() == SIDE * SIDE,
        "{}: not a 28×28 classifier",
        args.model.display()
    );
    let ways = blob.output_len();
    ensure!(
        args.shots >= 1 && args.queries >= 1 && ways * (args.shots + args.queries) <= 255,
        "--shots and --queries must be at least 1 and the episode at most 255 images"
    );
    let data = Arc::new(Omniglot::load(&args.data)?);
    let fam = family(args, blob, &data)?;

    // Episode 0 of `anole eval --seed`, with its characters and drawings.
    let episode = fam.test_pool().episode(
        ways,
        args.shots,
        args.queries,
        &mut rng(args.seed, Stream::Eval, 0),
    )?;
    let check = fam.eval_task(
        &mut rng(args.seed, Stream::Eval, 0),
        args.shots,
        args.queries,
    )?;
    ensure!(
        check.support.input_slice() == episode.support_inputs.as_slice()
            && check.query.input_slice() == episode.query_inputs.as_slice(),
        "internal: the episode differs from anole eval's episode 0"
    );

    // The host's head-only predictions: the frozen body's features, then the head started from
    // the class prototypes and adapted on the support features for the blob's steps, exactly
    // as `anole eval --adapt head` does.
    let split = HeadSplit::new(blob)?;
    let body = split.body.ok_or_else(|| anyhow!("the model has no body"))?;
    let mut body = Features::new(&model::shared(body)?)?;
    let (mut sf, mut qf) = (Vec::new(), Vec::new());
    body.compute(&episode.support_inputs, &mut sf)?;
    body.compute(&episode.query_inputs, &mut qf)?;
    let mut learner = anole::OwnedLearner::new(&model::shared(split.head)?)?;
    let samples = anole::SliceSamples::new(&sf, &episode.support_labels, split.features, 1)?;
    let steps = blob.settings().steps;
    learner
        .init_prototypes(&samples)
        .context("prototype head")?;
    learner
        .adapt(&samples, steps)
        .context("adapting the head")?;
    let mut predictions = Vec::with_capacity(episode.query_labels.len());
    let mut logits = vec![0.0f32; ways];
    for f in qf.chunks_exact(split.features) {
        learner.predict(f, &mut logits)?;
        predictions.push(anole::loss::argmax(&logits) as u8);
    }
    let correct = predictions
        .iter()
        .zip(&episode.query_labels)
        .filter(|(p, &t)| f32::from(**p) == t)
        .count();
    // The same number through the evaluation code path.
    let cfg = FewShotConfig {
        prototype_scale: None,
        episodes: 1,
        shots: args.shots,
        queries: args.queries,
        steps,
        batch: None,
        lr: None,
        seed: args.seed,
        norm: NormMode::Device,
        adapt: AdaptMode::Head,
        head_init: HeadInit::Prototypes,
        head_start: anole_trainer::meta::HeadStart::Meta,
    };
    let report = fewshot::evaluate(&shared, &fam, &cfg, &indicatif::ProgressBar::hidden())?;
    let eval_acc = report
        .accuracy("head", "device")
        .ok_or_else(|| anyhow!("internal: no head-only row"))?
        .mean;
    let acc = correct as f64 / predictions.len() as f64;
    ensure!(
        (eval_acc - acc).abs() < 1e-12,
        "internal: head-only accuracy {acc} differs from anole eval's {eval_acc}"
    );

    let mut out = Vec::new();
    out.extend_from_slice(b"AOEP");
    out.extend_from_slice(&[
        1,
        ways as u8,
        args.shots as u8,
        args.queries as u8,
        SIDE as u8,
    ]);
    out.extend_from_slice(&[0; 3]);
    let bytes = shared.bytes();
    let crc = &bytes[bytes.len() - 4..];
    out.extend_from_slice(crc);
    out.extend(episode.support_labels.iter().map(|&l| l as u8));
    out.extend(episode.query_labels.iter().map(|&l| l as u8));
    out.extend_from_slice(&predictions);
    let name = args.out.display().to_string();
    for (row, img) in episode
        .support_inputs
        .chunks_exact(SIDE * SIDE)
        .chain(episode.query_inputs.chunks_exact(SIDE * SIDE))
        .enumerate()
    {
        out.extend_from_slice(&pack(img, &name, row)?);
    }
    std::fs::write(&args.out, &out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let pool = fam.test_pool();
    let mut text = format!(
        "{}: {}-way {}-shot episode 0 of seed {} ({} support + {} query images, {} bytes)\n",
        args.out.display(),
        ways,
        args.shots,
        args.seed,
        episode.support_labels.len(),
        episode.query_labels.len(),
        out.len()
    );
    for (label, class) in episode.classes.iter().enumerate() {
        text += &format!("class {label}: {}\n", pool.class_name(*class));
    }
    text += &format!(
        "host head-only accuracy: {correct}/{} = {:.2}% ({steps} steps; model {}, CRC {})\n",
        predictions.len(),
        100.0 * acc,
        args.model.display(),
        crc.iter()
            .rev()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let txt = args.out.with_extension("txt");
    std::fs::write(&txt, &text).with_context(|| format!("cannot write {}", txt.display()))?;
    print!("{text}");
    Ok(())
}
