//! `card.json`, the model card `anole train` writes next to its artifacts: the command that
//! reproduces the run, its hyper-parameters and budget, how the blob adapts, the size and sha256
//! of every file, and the task family's own section (its held-out results and what else the
//! family records; see the `CardSection` of each family in [`crate::tasks`]).
//!
//! One typed structure, written by [`write`] and read back by [`read`]. Keys are written sorted
//! (as in every card written so far, the shipped `models/*/card.json` among them), so that a card
//! reads the same whichever family wrote it.

use crate::files;
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// [`Adaptation::normalisation`] of a network with norm layers: the engine's scheme.
pub const NORMALISATION: &str = "batch statistics during the steps; then statistics recomputed from the support set and stored, so each query is predicted on its own (the device's scheme, also the exported ONNX's)";

/// A model card: what every run records, then the family's section `F` (its fields sit at the
/// top level of the JSON object, beside the common ones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Card<F> {
    /// The `anole train` command line that reproduces the run.
    pub command: String,
    /// The task family's name (as in the blob's provenance).
    pub task: String,
    /// The meta-learning algorithm, or `random` for an initialization trained 0 iterations.
    pub algorithm: String,
    /// Seed of the initialization and the training tasks.
    pub seed: u64,
    /// The layers, as the runtime prints them.
    pub architecture: String,
    /// Number of parameters.
    pub parameters: usize,
    /// Meta-training hyper-parameters.
    pub hyperparameters: Hyperparameters,
    /// How the blob adapts on a device.
    pub adaptation: Adaptation,
    /// Every file written, by name.
    pub artifacts: BTreeMap<String, Artifact>,
    /// Wall time of the run.
    pub wall_time_s: WallTime,
    /// Version of the `anole` trainer that wrote the card.
    pub anole_version: String,
    /// A fingerprint of the run's first meta-iterations, which `--stop-after` reproduces in
    /// seconds; absent from runs too short for it and from cards written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// With `--sign`: the key and the signed envelopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// The task family's section.
    #[serde(flatten)]
    pub family: F,
}

/// The meta-parameters after the first meta-iterations of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Meta-iterations done.
    pub iteration: u64,
    /// sha256 of the meta-parameters as little-endian f32, lower-case hex (what `anole train
    /// --stop-after` prints when it stops there).
    pub params_sha256: String,
}

/// Meta-training hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    /// Meta-iterations run.
    pub meta_iterations: u64,
    /// Tasks per meta-iteration.
    pub meta_batch: usize,
    /// Samples of one training task.
    #[serde(flatten)]
    pub samples: TaskSamples,
    /// Inner-loop steps per task.
    pub inner_steps: usize,
    /// Inner-loop minibatch.
    pub inner_batch: usize,
    /// Inner-loop learning rate.
    pub inner_lr: f64,
    /// Initial outer step size.
    pub outer_lr: f64,
    /// How the outer step size changes over the run.
    pub outer_lr_schedule: String,
    /// Inner-loop optimizer.
    pub inner_optimizer: String,
    /// The inner optimizer's state between tasks (`reset` or `keep`); absent from cards
    /// written before the option existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_optimizer_state: Option<String>,
    /// How inner minibatches were drawn (`--minibatches`), when not the default `cycle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_minibatches: Option<String>,
    /// Where the last inner minibatch came from (`--tail`), when not the default `shared`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_tail: Option<String>,
    /// Storage dtype of `init.postcard`.
    pub dtype: String,
}

/// The samples of one meta-training task, under the name that says what they count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskSamples {
    /// Regression: points per task.
    #[serde(rename = "points_per_task")]
    Points(usize),
    /// Classification: samples per class.
    #[serde(rename = "train_shots")]
    PerClass(usize),
}

/// How the blob adapts (its stored settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adaptation {
    /// Optimizer.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f64,
    /// Recommended steps.
    pub steps: u32,
    /// Recommended minibatch.
    pub batch: usize,
    /// Which layers adapt.
    pub trainable: String,
    /// Networks with norm layers: which statistics they use while adapting and predicting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<String>,
}

/// One file written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Size.
    pub bytes: usize,
    /// sha256, lower-case hex.
    pub sha256: String,
}

impl Artifact {
    /// The entry of a file holding `bytes`.
    pub fn of(bytes: &[u8]) -> Artifact {
        Artifact {
            bytes: bytes.len(),
            sha256: files::sha256_hex(bytes),
        }
    }
}

/// Wall time of a run, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WallTime {
    /// Meta-training, over every session of a resumed run.
    pub training: f64,
    /// Everything: training, evaluation and export.
    pub total: f64,
}

/// `--sign`: how the exported blobs were signed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Signature algorithm.
    pub algorithm: String,
    /// Envelope format.
    pub format: String,
    /// The public key, hex.
    pub public_key: String,
    /// Its key id, hex.
    pub key_id: String,
    /// The secret key file given.
    pub secret_key_file: String,
    /// Each envelope's file name and the blob it wraps.
    pub envelopes: BTreeMap<String, String>,
    /// A command that checks the first envelope.
    pub check: Option<String>,
}

/// Meta-training throughput of a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingBudget {
    /// Meta-iterations run.
    pub meta_iterations: u64,
    /// Training wall time in seconds.
    pub wall_time_s: f64,
    /// Meta-iterations per second (of the last session of a resumed run).
    pub meta_iterations_per_s: f64,
    /// Worker threads.
    pub threads: usize,
}

/// `card` as the text of a card file: pretty JSON, keys sorted, a final newline.
pub fn to_text<F: Serialize>(card: &Card<F>) -> Result<String> {
    // A `Value`'s objects are sorted maps: serializing through one sorts every key.
    let value = serde_json::to_value(card).context("card.json")?;
    Ok(serde_json::to_string_pretty(&value).context("card.json")? + "\n")
}

/// Write `card` to `path`.
pub fn write<F: Serialize>(path: &Path, card: &Card<F>) -> Result<()> {
    files::write(path, to_text(card)?.as_bytes())
}

/// Read the card at `path` with a family section of type `F` (`serde_json::Value` reads any).
pub fn read<F: DeserializeOwned>(path: &Path) -> Result<Card<F>> {
    let bytes = files::read(path)?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a model card of this kind", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped card reads as a typed card with its family's section and writes back
    /// byte for byte: the typed card is the format of the shipped ones.
    #[test]
    fn shipped_cards_round_trip() {
        use crate::tasks::{omniglot, sine};
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let mut seen = 0;
        for entry in std::fs::read_dir(&models).unwrap() {
            let path = entry.unwrap().path().join("card.json");
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let again = if path.parent().unwrap().ends_with("sine") {
                to_text(&read::<sine::CardSection>(&path).unwrap()).unwrap()
            } else {
                to_text(&read::<omniglot::CardSection>(&path).unwrap()).unwrap()
            };
            let differs = text.lines().zip(again.lines()).find(|(a, b)| a != b);
            assert!(
                again == text,
                "{} does not round-trip: {differs:?}",
                path.display()
            );
            // Any card reads with an untyped section too.
            let any: Card<serde_json::Value> = read(&path).unwrap();
            assert_eq!(to_text(&any).unwrap(), text);
            seen += 1;
        }
        assert!(seen >= 2, "no shipped cards found in {}", models.display());
    }

    #[test]
    fn a_card_that_is_not_one_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.json");
        std::fs::write(&path, "{\"command\": 3}").unwrap();
        let e = format!("{:#}", read::<serde_json::Value>(&path).unwrap_err());
        assert!(e.contains("card.json: not a model card"), "{e}");
    }
}
