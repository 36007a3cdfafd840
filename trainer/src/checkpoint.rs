//! Training checkpoints in `OUT/checkpoint/`, so that `anole train --resume` continues a run
//! and ends with the same bytes as an uninterrupted one:
//!
//! - `params.postcard`: the meta-parameters as an f32 blob (readable by every `anole` command);
//! - `state.json`: the reproducing command, meta-iterations done, the training-task
//!   generator's position, training seconds so far, the algorithm's step count and the sha256
//!   of the other files;
//! - `curve.bin`: per meta-iteration, the loss before and after the inner loop and the
//!   meta-training accuracy (NaN when not measured), as little-endian f32 triples;
//! - `algo.bin`: the algorithm's per-parameter state (joint training with Adam), if any.
//!
//! A checkpoint is written to `checkpoint.new/` and then swapped in, so an interrupted write
//! leaves the previous checkpoint (or `checkpoint.old/`) intact.

use crate::files::{read, sha256_hex, write};
use crate::meta::{AlgoState, IterLoss, RunState};
use crate::model::{self, Arch, BlobMeta};
use anole::DType;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Format of `state.json`.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    command: String,
    iteration: u64,
    /// Decimal, since JSON numbers cannot hold a u128 exactly.
    rng_word_pos: String,
    algo_steps: u64,
    training_seconds: f64,
    params_sha256: String,
    curve_sha256: String,
    algo_sha256: Option<String>,
}

/// What a checkpoint restores.
pub struct Restored {
    /// Where the run stands.
    pub state: RunState,
    /// The learning curve up to there.
    pub curve: Vec<IterLoss>,
    /// Training wall time already spent, in seconds.
    pub training_seconds: f64,
}

/// The checkpoint folder of output directory `out`.
pub fn dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn f32_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(f32::to_le_bytes).collect()
}

/// Write a checkpoint of `state` into `out/checkpoint/`. `params_blob` is `state.params` as an
/// f32 blob; `command` identifies the run (resuming requires the same command).
pub fn save(
    out: &Path,
    command: &str,
    state: &RunState,
    params_blob: &[u8],
    curve: &[IterLoss],
    training_seconds: f64,
) -> Result<()> {
    let final_dir = dir(out);
    let new = out.join("checkpoint.new");
    let old = out.join("checkpoint.old");
    if new.exists() {
        std::fs::remove_dir_all(&new)
            .with_context(|| format!("{}: cannot remove", new.display()))?;
    }
    std::fs::create_dir_all(&new).with_context(|| format!("{}: cannot create", new.display()))?;
    let curve_bytes = f32_bytes(
        curve
            .iter()
            .flat_map(|l| [l.before, l.after, l.accuracy.unwrap_or(f32::NAN)]),
    );
    let algo_bytes = f32_bytes(state.algo.values.iter().copied());
    write(&new.join("params.postcard"), params_blob)?;
    write(&new.join("curve.bin"), &curve_bytes)?;
    if !algo_bytes.is_empty() {
        write(&new.join("algo.bin"), &algo_bytes)?;
    }
    let file = StateFile {
        format: FORMAT,
        command: command.to_string(),
        iteration: state.iteration,
        rng_word_pos: state.rng_word_pos.to_string(),
        algo_steps: state.algo.steps,
        training_seconds,
        params_sha256: sha256_hex(params_blob),
        curve_sha256: sha256_hex(&curve_bytes),
        algo_sha256: (!algo_bytes.is_empty()).then(|| sha256_hex(&algo_bytes)),
    };
    let text = serde_json::to_string_pretty(&file).context("state.json")?;
    write(&new.join("state.json"), text.as_bytes())?;
    if old.exists() {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("{}: cannot remove", old.display()))?;
    }
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old)
            .with_context(|| format!("{}: cannot move aside", final_dir.display()))?;
    }
    std::fs::rename(&new, &final_dir)
        .with_context(|| format!("{}: cannot rename", new.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("{}: cannot remove", old.display()))?;
    }
    Ok(())
}

fn f32s(path: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        bail!("{}: truncated ({} bytes)", path.display(), bytes.len());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// [`save`] a run of `arch` at `state`: its meta-parameters as an f32 blob with `meta`'s
/// settings but the head start and its scale (provenance: algorithm `checkpoint`, the
/// meta-iterations done). The head start and scale are the exported blobs' to record: a checkpoint stays the version-1 blob it
/// always was, so a run's checkpoints are the same bytes whatever version its exports need.
pub fn save_run(
    out: &Path,
    command: &str,
    arch: &Arch,
    meta: &BlobMeta,
    state: &RunState,
    curve: &[IterLoss],
    training_seconds: f64,
) -> Result<()> {
    let mut meta = BlobMeta {
        dtype: DType::F32,
        algorithm: "checkpoint".into(),
        meta_iterations: state.iteration,
        ..meta.clone()
    };
    meta.settings.head_start = 0;
    meta.settings.head_scale = 1.0;
    let blob = model::encode_blob(arch, &state.params, &meta)?;
    save(out, command, state, &blob, curve, training_seconds).context("writing the checkpoint")
}

/// Read the checkpoint of `out` for a run of `command`; errors name the file at fault, or say
/// how the command differs.
pub fn load(out: &Path, command: &str) -> Result<Restored> {
    let mut d = dir(out);
    if !d.join("state.json").is_file() && out.join("checkpoint.old/state.json").is_file() {
        // A swap was interrupted after moving the previous checkpoint aside.
        d = out.join("checkpoint.old");
    }
    let state_path = d.join("state.json");
    if !state_path.is_file() {
        bail!(
            "--resume: no checkpoint in {} (expected {})",
            out.display(),
            state_path.display()
        );
    }
    let file: StateFile = serde_json::from_slice(&read(&state_path)?)
        .map_err(|e| anyhow!("{}: not a checkpoint state ({e})", state_path.display()))?;
    if file.format != FORMAT {
        bail!(
            "{}: checkpoint format {} is not supported (expected {FORMAT})",
            state_path.display(),
            file.format
        );
    }
    if file.command != command {
        bail!(
            "--resume: {} was written by a different run: `{}`; this run is `{}`",
            state_path.display(),
            file.command,
            command
        );
    }
    let check = |name: &str, bytes: &[u8], sha: &str| -> Result<()> {
        if sha256_hex(bytes) != sha {
            bail!(
                "{}: does not match its sha256 in state.json (a damaged checkpoint)",
                d.join(name).display()
            );
        }
        Ok(())
    };
    let params_path = d.join("params.postcard");
    let params_bytes = read(&params_path)?;
    check("params.postcard", &params_bytes, &file.params_sha256)?;
    let blob = model::parse(&params_bytes).with_context(|| params_path.display().to_string())?;
    let mut params = Vec::new();
    let arch = model::Arch::of(&blob);
    for (t, len) in arch.tensor_lens()?.into_iter().enumerate() {
        let mut v = vec![0.0f32; len];
        blob.read_tensor(t, &mut v);
        params.extend(v);
    }
    let curve_path = d.join("curve.bin");
    let curve_bytes = read(&curve_path)?;
    check("curve.bin", &curve_bytes, &file.curve_sha256)?;
    let values = f32s(&curve_path, &curve_bytes)?;
    if values.len() as u64 != 3 * file.iteration {
        bail!(
            "{}: {} values for {} meta-iterations",
            curve_path.display(),
            values.len(),
            file.iteration
        );
    }
    let curve = values
        .chunks_exact(3)
        .map(|v| IterLoss {
            before: v[0],
            after: v[1],
            accuracy: (!v[2].is_nan()).then_some(v[2]),
        })
        .collect();
    let algo_values = match &file.algo_sha256 {
        Some(sha) => {
            let p = d.join("algo.bin");
            let bytes = read(&p)?;
            check("algo.bin", &bytes, sha)?;
            f32s(&p, &bytes)?
        }
        None => Vec::new(),
    };
    let rng_word_pos = file.rng_word_pos.parse().map_err(|_| {
        anyhow!(
            "{}: rng_word_pos '{}' is not a number",
            state_path.display(),
            file.rng_word_pos
        )
    })?;
    Ok(Restored {
        state: RunState {
            iteration: file.iteration,
            params,
            rng_word_pos,
            algo: AlgoState {
                steps: file.algo_steps,
                values: algo_values,
            },
        },
        curve,
        training_seconds: file.training_seconds,
    })
}
