//! `anole train`: meta-train an initialization and write DIR/init.postcard (plus an f16 copy),
//! DIR/init.onnx, DIR/card.json (the reproducing command, hyper-parameters, training budget,
//! metrics, sha256 of every artifact; for Omniglot the held-out characters) and a learning-curve
//! plot; checkpoints go to DIR/checkpoint/ and `--resume` continues from there. Prints the
//! training throughput. With `--sign KEY`, each blob also gets a signed envelope next to it
//! (DIR/init.signed, DIR/init.f16.signed), exactly as `anole sign` writes it.

use crate::checkpoint;
use crate::cmd::sign::{self as signing, read_signing_key, sign_blob};
use crate::data::omniglot::{Omniglot, Split};
use crate::eval::{self, EvalConfig, EvalReport};
use crate::fewshot::{self, AdaptMode, FewShotConfig, FewShotReport, HeadInit, NormMode};
use crate::meta::{self, Algo, Config, InnerOpt, InnerState, IterLoss, RunState};
use crate::model::{self, Arch, BlobMeta};
use crate::tasks::{self, OmniglotTasks, Stream, TaskFamily, TaskName};
use crate::{plots, progress};
use anole::{DType, Layer, Learner, Options, Plan, SliceSamples};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Storage dtype of the written blob.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DTypeArg {
    /// 32-bit floats.
    F32,
    /// IEEE half precision (half the flash).
    F16,
    /// bfloat16.
    Bf16,
}

impl DTypeArg {
    fn dtype(self) -> DType {
        match self {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::Bf16,
        }
    }
}

/// Arguments of `anole train`. Unset hyper-parameters take the task family's reference recipe.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Task family.
    #[arg(value_enum)]
    pub task: TaskName,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the initialization, the training tasks and (Omniglot) the paper split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Meta-iterations [sine: 30000; omniglot: 100000 5-way, 200000 20-way]; 0 writes the
    /// random initialization.
    #[arg(long)]
    pub iters: Option<u64>,
    /// Meta-learning algorithm.
    #[arg(long, value_enum, default_value_t = Algo::Reptile)]
    pub algo: Algo,
    /// Tasks per meta-iteration, run in parallel [sine: 1; omniglot: 5].
    #[arg(long)]
    pub meta_batch: Option<usize>,
    /// Sine: points per training task [50]. Omniglot: the K of the K-shot setting the card
    /// evaluates, one or a list [1,5] (training uses --train-shots).
    #[arg(long, value_delimiter = ',')]
    pub shots: Vec<usize>,
    /// Samples per training task: points (sine, same as --shots) or images per class
    /// (omniglot) [sine: 50; omniglot: 10].
    #[arg(long)]
    pub train_shots: Option<usize>,
    /// Inner-loop steps per task [sine: 5; omniglot: 5 5-way, 10 20-way].
    #[arg(long)]
    pub inner_steps: Option<usize>,
    /// Inner-loop minibatch [sine: 10; omniglot: 10 5-way, 20 20-way].
    #[arg(long)]
    pub inner_batch: Option<usize>,
    /// Inner-loop learning rate [sine: 0.02; omniglot: 0.001 5-way, 0.0005 20-way]; also the
    /// adaptation lr stored in the blob.
    #[arg(long)]
    pub inner_lr: Option<f32>,
    /// Initial outer step size, annealed linearly to 0 [sine: 0.1; omniglot: 1].
    #[arg(long)]
    pub outer_lr: Option<f32>,
    /// Inner-loop optimizer, stored in the blob: the device adapts with it too [sine: sgd;
    /// omniglot: adam (β1 = 0)].
    #[arg(long, value_enum)]
    pub inner_opt: Option<InnerOpt>,
    /// The inner Adam's state between tasks: reset for every task, or kept across tasks (the
    /// paper's reference code) [sine: reset; omniglot: keep with reptile and fomaml, reset with
    /// joint or --inner-opt sgd].
    #[arg(long, value_enum)]
    pub inner_state: Option<InnerState>,
    /// Storage dtype of init.postcard (with f32, an f16 copy init.f16.postcard is also written).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
    /// Adaptation steps recommended in the blob and used by the evaluation [sine: 32;
    /// omniglot: 50].
    #[arg(long)]
    pub adapt_steps: Option<u32>,
    /// Adaptation minibatch recommended in the blob and used by the evaluation [sine: the
    /// inner batch; omniglot: 5 5-way, 10 20-way].
    #[arg(long)]
    pub adapt_batch: Option<usize>,
    /// Held-out tasks (episodes) of the evaluation written to card.json.
    #[arg(long, visible_alias = "eval-episodes", default_value_t = 1000)]
    pub eval_tasks: usize,
    /// Sine: support points per held-out task in the evaluation [10].
    #[arg(long)]
    pub eval_shots: Option<usize>,
    /// Omniglot: folder holding images_background.zip and images_evaluation.zip (or the
    /// unzipped folders).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Omniglot: classes per episode.
    #[arg(long, default_value_t = 5)]
    pub ways: usize,
    /// Omniglot: channels of every convolution.
    #[arg(long, default_value_t = 64)]
    pub filters: usize,
    /// Omniglot: how characters divide into training and held-out classes.
    #[arg(long, value_enum, default_value_t = Split::Paper)]
    pub split: Split,
    /// Omniglot: use only this many characters, spread over the alphabets (quick runs, CI).
    #[arg(long)]
    pub subset: Option<usize>,
    /// Write a checkpoint every this many meta-iterations (0: only at the end) [sine: 0;
    /// omniglot: 1000].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Continue the run from DIR/checkpoint/ (same command otherwise); the result is the same
    /// as an uninterrupted run's.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many meta-iterations in all, leaving a checkpoint to --resume from (to
    /// split a long run into sessions).
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Also sign the exported blobs with this ed25519 secret key (from `anole keygen`), as
    /// `anole sign` does: init.postcard → init.signed, init.f16.postcard → init.f16.signed.
    /// The key is read before training starts.
    #[arg(long, value_name = "KEY_FILE")]
    pub sign: Option<PathBuf>,
}

impl Args {
    /// The run's hyper-parameters: the recipe of the task family, overridden by the flags.
    pub fn config(&self) -> Result<Config> {
        let base = match self.task {
            TaskName::Sine => Config::sine(),
            TaskName::Omniglot => Config::omniglot(self.ways),
        };
        let sine_points = match (self.task, self.shots.as_slice()) {
            (TaskName::Sine, []) => None,
            (TaskName::Sine, [n]) => Some(*n),
            (TaskName::Sine, _) => bail!("--shots: sine takes one number of points per task"),
            (TaskName::Omniglot, _) => None,
        };
        if sine_points.is_some() && self.train_shots.is_some() {
            bail!("--shots and --train-shots both set the points per sine task: give one");
        }
        Ok(Config {
            algo: self.algo,
            iters: self.iters.unwrap_or(base.iters),
            meta_batch: self.meta_batch.unwrap_or(base.meta_batch),
            shots: sine_points.or(self.train_shots).unwrap_or(base.shots),
            inner_steps: self.inner_steps.unwrap_or(base.inner_steps),
            inner_batch: self.inner_batch.unwrap_or(base.inner_batch),
            inner_lr: self.inner_lr.unwrap_or(base.inner_lr),
            outer_lr: self.outer_lr.unwrap_or(base.outer_lr),
            inner_opt: self.inner_opt.unwrap_or(base.inner_opt),
            inner_state: self.inner_state.unwrap_or(match self.task {
                TaskName::Omniglot
                    if self.algo != Algo::Joint
                        && self.inner_opt.unwrap_or(base.inner_opt) == InnerOpt::Adam =>
                {
                    InnerState::Keep
                }
                _ => InnerState::Reset,
            }),
            seed: self.seed,
        })
    }

    fn adapt_steps(&self) -> u32 {
        self.adapt_steps.unwrap_or(match self.task {
            TaskName::Sine => 32,
            TaskName::Omniglot => 50,
        })
    }

    fn adapt_batch(&self, cfg: &Config) -> usize {
        self.adapt_batch.unwrap_or(match self.task {
            TaskName::Sine => cfg.inner_batch,
            TaskName::Omniglot if self.ways <= 5 => 5,
            TaskName::Omniglot => 10,
        })
    }

    /// Omniglot: the K-shot settings evaluated.
    fn eval_ks(&self) -> Vec<usize> {
        if self.shots.is_empty() {
            vec![1, 5]
        } else {
            self.shots.clone()
        }
    }

    fn checkpoint_every(&self) -> u64 {
        self.checkpoint_every.unwrap_or(match self.task {
            TaskName::Sine => 0,
            TaskName::Omniglot => 1000,
        })
    }

    /// The command line that reproduces this run, every hyper-parameter spelled out.
    pub fn command(&self, cfg: &Config) -> String {
        let mut s = self.command_with_out(cfg, &self.out);
        // Not part of the run's identity (checkpoints): signing does not change the blobs.
        if let Some(key) = &self.sign {
            s.push_str(&format!(" --sign {}", key.display()));
        }
        s
    }

    fn command_with_out(&self, cfg: &Config, out: &Path) -> String {
        match self.task {
            TaskName::Sine => {
                let mut s = format!(
                "anole train {} --out {} --seed {} --iters {} --algo {} --meta-batch {} --shots {} --inner-steps {} --inner-batch {} \
                 --inner-lr {} --outer-lr {} --inner-opt {} --dtype {} --adapt-steps {} --eval-tasks {} --eval-shots {}",
                self.task.as_str(),
                out.display(),
                cfg.seed,
                cfg.iters,
                cfg.algo.as_str(),
                cfg.meta_batch,
                cfg.shots,
                cfg.inner_steps,
                cfg.inner_batch,
                cfg.inner_lr,
                cfg.outer_lr,
                cfg.inner_opt.as_str(),
                self.dtype.dtype().name(),
                self.adapt_steps(),
                self.eval_tasks,
                self.eval_shots.unwrap_or(10),
                );
                // Only when given, so that the reference command keeps its form.
                if let Some(b) = self.adapt_batch {
                    s.push_str(&format!(" --adapt-batch {b}"));
                }
                s
            }
            TaskName::Omniglot => {
                let ks: Vec<String> = self.eval_ks().iter().map(|k| k.to_string()).collect();
                let data = self
                    .data
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                let mut s = format!(
                    "anole train omniglot --data {data} --out {} --ways {} --shots {} --filters {} --split {} --seed {} --iters {} \
                     --algo {} --meta-batch {} --train-shots {} --inner-steps {} --inner-batch {} --inner-lr {} --outer-lr {} \
                     --inner-opt {} --dtype {} --adapt-steps {} --adapt-batch {} --eval-tasks {}",
                    out.display(),
                    self.ways,
                    ks.join(","),
                    self.filters,
                    self.split,
                    cfg.seed,
                    cfg.iters,
                    cfg.algo.as_str(),
                    cfg.meta_batch,
                    cfg.shots,
                    cfg.inner_steps,
                    cfg.inner_batch,
                    cfg.inner_lr,
                    cfg.outer_lr,
                    cfg.inner_opt.as_str(),
                    self.dtype.dtype().name(),
                    self.adapt_steps(),
                    self.adapt_batch(cfg),
                    self.eval_tasks,
                );
                if let Some(n) = self.subset {
                    s.push_str(&format!(" --subset {n}"));
                }
                s.push_str(&format!(" --inner-state {}", cfg.inner_state.as_str()));
                s
            }
        }
    }

    /// Errors on flags that do not apply to the task family.
    fn check_flags(&self) -> Result<()> {
        let omniglot_only = [
            ("--data", self.data.is_some()),
            ("--subset", self.subset.is_some()),
        ];
        match self.task {
            TaskName::Sine => {
                if self.inner_state == Some(InnerState::Keep) {
                    bail!("--inner-state keep is for the omniglot task family (its evaluation adapts from the kept state)");
                }
                for (flag, set) in omniglot_only {
                    if set {
                        bail!("{flag} is for the omniglot task family");
                    }
                }
            }
            TaskName::Omniglot => {
                if self.data.is_none() {
                    bail!("omniglot needs --data PATH (the folder holding images_background.zip and images_evaluation.zip)");
                }
                if self.eval_shots.is_some() {
                    bail!("--eval-shots is for sine; omniglot evaluates the K-shot settings given with --shots");
                }
                if self.shots.contains(&0) {
                    bail!("--shots must be at least 1");
                }
            }
        }
        if self.adapt_steps == Some(0) {
            bail!("--adapt-steps must be at least 1");
        }
        if self.adapt_batch == Some(0) {
            bail!("--adapt-batch must be at least 1");
        }
        if self.stop_after == Some(0) {
            bail!("--stop-after must be at least 1");
        }
        Ok(())
    }
}

/// The error that ends a run at `--stop-after`.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}

fn to_json<T: serde::Serialize>(r: &T) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or(serde_json::Value::Null)
}

/// The family a run trains on, with what the card needs to know about it.
struct Family {
    family: Box<dyn TaskFamily>,
    /// Omniglot: the held-out characters.
    held_out: Option<Vec<String>>,
    /// Omniglot: characters loaded.
    characters: usize,
}

fn family(args: &Args) -> Result<Family> {
    match args.task {
        TaskName::Sine => Ok(Family {
            family: Box::new(tasks::Sine),
            held_out: None,
            characters: 0,
        }),
        TaskName::Omniglot => {
            let path = args
                .data
                .as_ref()
                .ok_or_else(|| anyhow!("omniglot needs --data PATH"))?;
            let mut data = Omniglot::load(path)?;
            if let Some(n) = args.subset {
                data = data.subset(n)?;
            }
            let data = Arc::new(data);
            let fam = OmniglotTasks::new(&data, args.split, args.seed, args.ways, args.filters)?;
            Ok(Family {
                held_out: Some(fam.held_out()),
                characters: data.characters().len(),
                family: Box::new(fam),
            })
        }
    }
}

/// Mean of the last `k` losses (and of the accuracies measured among them).
fn recent(curve: &[IterLoss], k: usize) -> (f32, f32, Option<f32>) {
    let k = k.min(curve.len()).max(1);
    let tail = &curve[curve.len().saturating_sub(k)..];
    let n = tail.len().max(1) as f32;
    let acc: Vec<f32> = tail.iter().filter_map(|l| l.accuracy).collect();
    (
        tail.iter().map(|l| l.before).sum::<f32>() / n,
        tail.iter().map(|l| l.after).sum::<f32>() / n,
        (!acc.is_empty()).then(|| acc.iter().sum::<f32>() / acc.len() as f32),
    )
}

fn progress_message(curve: &[IterLoss]) -> String {
    let (before, after, acc) = recent(curve, 256);
    match acc {
        Some(a) => format!(
            "loss {before:.3} → {after:.3}, meta-train acc {:.1}%",
            100.0 * a
        ),
        None => format!("loss {before:.3} → {after:.3}"),
    }
}

/// The name of the signed envelope of the blob `name`: `init.postcard` → `init.signed`,
/// `init.f16.postcard` → `init.f16.signed` (the names `anole sign` is shown with).
fn signed_name(name: &str) -> String {
    format!("{}.signed", name.strip_suffix(".postcard").unwrap_or(name))
}

/// The signing key of `--sign`, read (and checked) before any training.
struct Signer {
    key: ed25519_dalek::SigningKey,
    path: PathBuf,
}

impl Signer {
    fn read(path: &Path) -> Result<Signer> {
        let key = read_signing_key(path).map_err(|e| anyhow!("--sign: {e:#}"))?;
        Ok(Signer {
            key,
            path: path.to_path_buf(),
        })
    }

    /// Signs every blob of `artifacts` and writes each envelope next to its blob.
    fn sign_all(&self, out: &Path, artifacts: &[(&str, Vec<u8>)]) -> Result<Vec<Signed>> {
        let mut signed = Vec::with_capacity(artifacts.len());
        for (name, blob) in artifacts {
            let bytes = sign_blob(blob, &self.key).map_err(|e| anyhow!("signing {name}: {e:#}"))?;
            let file = signed_name(name);
            write(&out.join(&file), &bytes)?;
            signed.push(Signed {
                file,
                blob: name.to_string(),
                bytes,
            });
        }
        Ok(signed)
    }

    /// What card.json records about the signature.
    fn card(&self, signed: &[Signed]) -> serde_json::Value {
        let public = self.key.verifying_key().to_bytes();
        let envelopes: serde_json::Map<String, serde_json::Value> = signed
            .iter()
            .map(|s| (s.file.clone(), json!(s.blob)))
            .collect();
        json!({
            "algorithm": "ed25519",
            "format": "anole signed envelope version 1 (anole::sign), as written by anole sign",
            "public_key": signing::hex(&public),
            "key_id": signing::hex(&anole::sign::key_id(&public)),
            "secret_key_file": self.path.display().to_string(),
            "envelopes": envelopes,
            "check": signed.first().map(|s| format!("anole verify --pubkey {}.pub --in {}", self.path.display(), s.file)),
        })
    }
}

/// A signed envelope written by `--sign`.
struct Signed {
    /// Its file name in the output folder.
    file: String,
    /// The blob it wraps.
    blob: String,
    bytes: Vec<u8>,
}

/// Run `anole train`.
pub fn run(args: Args) -> Result<()> {
    args.check_flags()?;
    let cfg = args.config()?;
    cfg.validate()?;
    // A bad key must fail now, not after hours of training.
    let signer = args.sign.as_deref().map(Signer::read).transpose()?;
    let fam = family(&args)?;
    let family = fam.family.as_ref();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output directory", args.out.display()))?;
    let arch = family.arch();
    let adapt_steps = args.adapt_steps();
    let adapt_batch = args.adapt_batch(&cfg);
    // The run's identity for checkpoints: the command without the output folder.
    let identity = args.command_with_out(&cfg, Path::new("OUT"));
    let blob_meta = |dtype, algorithm: &str, iterations| BlobMeta {
        dtype,
        settings: meta::adapt_settings(family, &cfg, adapt_steps, adapt_batch),
        algorithm: algorithm.into(),
        task: family.name().into(),
        seed: cfg.seed,
        meta_iterations: iterations,
    };

    // Resume.
    let (start, mut curve, prior_secs) = if args.resume {
        let r = checkpoint::load(&args.out, &identity)?;
        eprintln!(
            "resuming {} at meta-iteration {} of {}",
            args.out.display(),
            r.state.iteration,
            cfg.iters
        );
        (Some(r.state), r.curve, r.training_seconds)
    } else {
        (
            None,
            Vec::with_capacity(cfg.iters.min(1 << 24) as usize),
            0.0,
        )
    };
    let first = start.as_ref().map(|s| s.iteration).unwrap_or(0);

    // Meta-train.
    let bar = progress::bar(cfg.iters, "train");
    bar.set_position(first);
    let interactive = progress::interactive();
    let every = args.checkpoint_every();
    let start_time = Instant::now();
    let mut last_draw = Instant::now();
    let mut last_log = Instant::now();
    let stop_at = args.stop_after;
    let wants_state = |done: u64| (every > 0 && done % every == 0) || stop_at == Some(done);
    let result = meta::train_resumable(family, &cfg, start, wants_state, |t, l, state| {
        curve.push(l);
        let done = t + 1;
        if last_draw.elapsed() > Duration::from_millis(100) || done == cfg.iters {
            bar.set_message(progress_message(&curve));
            bar.set_position(done);
            last_draw = Instant::now();
        }
        if !interactive && last_log.elapsed() > Duration::from_secs(60) {
            let secs = start_time.elapsed().as_secs_f64();
            let rate = (done - first) as f64 / secs.max(1e-9);
            eprintln!(
                "train {done}/{} ({rate:.2} meta-iterations/s, ETA {:.0} s): {}",
                cfg.iters,
                (cfg.iters - done) as f64 / rate.max(1e-9),
                progress_message(&curve)
            );
            last_log = Instant::now();
        }
        let stop = stop_at == Some(done) && done < cfg.iters;
        if let Some(s) = state.filter(|_| every > 0 || stop) {
            let secs = prior_secs + start_time.elapsed().as_secs_f64();
            save_checkpoint(&args.out, &identity, &arch, s, &curve, secs, &blob_meta)?;
        }
        if stop {
            return Err(Stopped.into());
        }
        Ok(())
    });
    let train_secs = prior_secs + start_time.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let trained = match result {
        Ok(t) => t,
        Err(e) if e.downcast_ref::<Stopped>().is_some() => {
            println!(
                "stopped after meta-iteration {}; continue with the same command and --resume",
                curve.len()
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let session_iters = cfg.iters - first;
    let session_secs = start_time.elapsed().as_secs_f64();
    // This session's rate; the whole run's when this session trained nothing (a --resume
    // from the last checkpoint only writes the artifacts again).
    let per_sec = if session_iters > 0 && session_secs > 0.0 {
        session_iters as f64 / session_secs
    } else if train_secs > 0.0 {
        cfg.iters as f64 / train_secs
    } else {
        0.0
    };
    let mut run = Run {
        args: &args,
        cfg: &cfg,
        fam: &fam,
        arch,
        curve: &curve,
        train_secs,
        prior_secs,
        per_sec,
        adapt_steps,
        adapt_batch,
        algorithm: if cfg.iters == 0 {
            "random"
        } else {
            cfg.algo.as_str()
        },
        signed: Vec::new(),
        signature: None,
        optimizer_state: None,
    };
    let params = run.stored_statistics(&trained.params)?;
    if cfg.inner_state == InnerState::Keep {
        let bytes = optimizer_state_blob(&run.arch, &params, &trained.state, &cfg, &blob_meta)?;
        write(&args.out.join(OPTIMIZER_STATE_FILE), &bytes)?;
        run.optimizer_state = Some(bytes);
    }
    let dtype = args.dtype.dtype();
    let main = model::encode_blob(
        &run.arch,
        &params,
        &blob_meta(dtype, run.algorithm, trained.iterations),
    )?;
    let mut artifacts: Vec<(&str, Vec<u8>)> = vec![("init.postcard", main)];
    if dtype == DType::F32 {
        artifacts.push((
            "init.f16.postcard",
            model::encode_blob(
                &run.arch,
                &params,
                &blob_meta(DType::F16, run.algorithm, trained.iterations),
            )?,
        ));
    }
    for (name, bytes) in &artifacts {
        write(&args.out.join(name), bytes)?;
    }
    if let Some(signer) = &signer {
        let signed = signer.sign_all(&args.out, &artifacts)?;
        run.signature = Some(signer.card(&signed));
        run.signed = signed;
    }
    match args.task {
        TaskName::Sine => run.finish_sine(artifacts, start_time),
        TaskName::Omniglot => run.finish_omniglot(artifacts, start_time),
    }
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    out: &Path,
    identity: &str,
    arch: &Arch,
    state: &RunState,
    curve: &[IterLoss],
    secs: f64,
    blob_meta: &dyn Fn(DType, &str, u64) -> BlobMeta,
) -> Result<()> {
    let blob = model::encode_blob(
        arch,
        &state.params,
        &blob_meta(DType::F32, "checkpoint", state.iteration),
    )?;
    checkpoint::save(out, identity, state, &blob, curve, secs).context("writing the checkpoint")
}

/// A finished meta-training run, before its artifacts are evaluated and described.
struct Run<'a> {
    args: &'a Args,
    cfg: &'a Config,
    fam: &'a Family,
    arch: Arch,
    curve: &'a [IterLoss],
    train_secs: f64,
    /// Training seconds of the sessions before a `--resume`.
    prior_secs: f64,
    per_sec: f64,
    adapt_steps: u32,
    adapt_batch: usize,
    algorithm: &'static str,
    /// `--sign`: the signed envelopes written.
    signed: Vec<Signed>,
    /// `--sign`: the card's `signature` entry.
    signature: Option<serde_json::Value>,
    /// `--inner-state keep`: the optimizer-state blob written ([`OPTIMIZER_STATE_FILE`]).
    optimizer_state: Option<Vec<u8>>,
}

/// The optimizer-state blob a `--inner-state keep` run writes next to its initialization.
pub const OPTIMIZER_STATE_FILE: &str = "init.adam.postcard";

/// The card's name for the evaluation of `init.postcard` adapting from the kept optimizer
/// state.
const STATE_RUN: &str = "init.postcard + init.adam.postcard";

/// The kept inner optimizer state as an optimizer-state blob of `arch` (f32): the state of the
/// trainer's learners (every layer adapting), whose parameters are `params`.
fn optimizer_state_blob(
    arch: &Arch,
    params: &[f32],
    state: &meta::AlgoState,
    cfg: &Config,
    blob_meta: &dyn Fn(DType, &str, u64) -> BlobMeta,
) -> Result<Vec<u8>> {
    // Only the architecture and settings matter: the export writes its own provenance.
    let bytes = model::encode_blob(
        arch,
        params,
        &blob_meta(DType::F32, anole::OPTIMIZER_STATE, 0),
    )?;
    let blob = model::parse(&bytes)?;
    let opts = Options {
        batch: 1,
        trainable: arch.all_layers(),
        lr: cfg.inner_lr,
    };
    let len = Plan::new(&blob, opts.batch, opts.trainable)
        .map_err(|e| anyhow!("arena plan: {e}"))?
        .arena_len();
    let mut arena = vec![0.0f32; len];
    let mut l = Learner::with_options(&blob, &mut arena, opts).map_err(|e| anyhow!("{e}"))?;
    if state.steps > 0 {
        let steps = u32::try_from(state.steps).unwrap_or(u32::MAX);
        l.set_optimizer_state(steps, &state.values)
            .map_err(|e| anyhow!("the kept inner optimizer state: {e}"))?;
    }
    Ok(l.export_optimizer_state_vec())
}

/// Episodes of the f16 copy's check in an Omniglot card.
const F16_CHECK_EPISODES: usize = 100;

/// Training tasks whose images set the stored normalisation statistics.
const STATISTICS_TASKS: usize = 40;

impl Run<'_> {
    /// The meta-parameters with the stored statistics of every norm layer set to those of
    /// [`STATISTICS_TASKS`] freshly drawn training tasks (layer by layer, as
    /// `Learner::refresh_norm_stats` does after adapting). Meta-training itself only ever uses
    /// batch statistics; the stored ones serve predictions without adaptation and the frozen
    /// body of head-only adaptation. Unchanged when the network has no norm layer.
    fn stored_statistics(&self, params: &[f32]) -> Result<Vec<f32>> {
        if !self
            .arch
            .layers
            .iter()
            .any(|l| matches!(l, Layer::Norm { .. }))
        {
            return Ok(params.to_vec());
        }
        let family = self.fam.family.as_ref();
        let mut rng = tasks::rng(self.cfg.seed, Stream::Init, 1);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..STATISTICS_TASKS {
            let b = family.train_task(&mut rng, self.cfg.shots)?;
            x.extend_from_slice(b.input_slice());
            y.extend_from_slice(b.target_slice());
        }
        let meta = BlobMeta {
            dtype: DType::F32,
            settings: meta::adapt_settings(family, self.cfg, 1, self.cfg.inner_batch),
            algorithm: self.algorithm.into(),
            task: family.name().into(),
            seed: self.cfg.seed,
            meta_iterations: 0,
        };
        let bytes = model::encode_blob(&self.arch, params, &meta)?;
        let blob = model::parse(&bytes)?;
        let opts = Options {
            batch: 100,
            trainable: self.arch.all_layers(),
            lr: 0.0,
        };
        let len = Plan::new(&blob, opts.batch, opts.trainable)
            .map_err(|e| anyhow!("{e}"))?
            .arena_len();
        let mut arena = vec![0.0f32; len];
        let mut l = Learner::with_options(&blob, &mut arena, opts).map_err(|e| anyhow!("{e}"))?;
        let il = blob.input_len();
        let s = SliceSamples::new(&x, &y, il, blob.target_len()).map_err(|e| anyhow!("{e}"))?;
        l.refresh_norm_stats(&s)
            .map_err(|e| anyhow!("normalisation statistics of the meta-learned network: {e}"))?;
        Ok(l.params().to_vec())
    }

    fn curve_plot(&self) -> Result<&'static str> {
        let title = format!(
            "{} on {}: {} meta-iterations, seed {}",
            self.algorithm,
            self.fam.family.name(),
            self.cfg.iters,
            self.cfg.seed
        );
        let name = "learning_curve.png";
        plots::learning_curve(&self.args.out.join(name), self.curve, &title)?;
        Ok(name)
    }

    fn files_json(
        &self,
        artifacts: &[(&str, Vec<u8>)],
        extra: &[&str],
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut files = serde_json::Map::new();
        for (name, bytes) in artifacts {
            files.insert(
                name.to_string(),
                json!({ "bytes": bytes.len(), "sha256": sha256_hex(bytes) }),
            );
        }
        for s in &self.signed {
            files.insert(
                s.file.clone(),
                json!({ "bytes": s.bytes.len(), "sha256": sha256_hex(&s.bytes) }),
            );
        }
        for name in extra {
            let bytes = std::fs::read(self.args.out.join(name))
                .with_context(|| format!("{name}: cannot read back"))?;
            files.insert(
                name.to_string(),
                json!({ "bytes": bytes.len(), "sha256": sha256_hex(&bytes) }),
            );
        }
        Ok(files)
    }

    fn onnx(&self, artifacts: &mut Vec<(&str, Vec<u8>)>) -> Result<()> {
        let onnx = {
            let blob = model::parse(&artifacts[0].1)?;
            crate::export::onnx::onnx_bytes(&blob)
                .map_err(|e| anyhow!("init.onnx: ONNX export failed: {e:#}"))?
        };
        write(&self.args.out.join("init.onnx"), &onnx)?;
        artifacts.push(("init.onnx", onnx));
        Ok(())
    }

    fn print_files(&self, artifacts: &[(&str, Vec<u8>)], extra: &str) {
        println!("wrote {}", self.args.out.display());
        for (name, bytes) in artifacts {
            println!(
                "  {name:<20} {:>8} bytes  sha256 {}",
                bytes.len(),
                sha256_hex(bytes)
            );
        }
        for s in &self.signed {
            println!(
                "  {:<20} {:>8} bytes  sha256 {}  (signed {})",
                s.file,
                s.bytes.len(),
                sha256_hex(&s.bytes),
                s.blob
            );
        }
        println!("  {extra}");
    }

    fn print_speed(&self) {
        if self.cfg.iters > 0 {
            println!(
                "{} meta-iterations in {:.2} s: {:.2} meta-iterations/s",
                self.cfg.iters, self.train_secs, self.per_sec
            );
        }
    }

    fn write_card(&self, card: &serde_json::Value) -> Result<()> {
        let mut card = card.clone();
        if let (Some(sig), Some(obj)) = (&self.signature, card.as_object_mut()) {
            obj.insert("signature".into(), sig.clone());
        }
        let text =
            serde_json::to_string_pretty(&card).map_err(|e| anyhow!("card.json: {e}"))? + "\n";
        write(&self.args.out.join("card.json"), text.as_bytes())
    }

    fn finish_sine(&self, mut artifacts: Vec<(&str, Vec<u8>)>, start: Instant) -> Result<()> {
        let (args, cfg) = (self.args, self.cfg);
        let family = self.fam.family.as_ref();
        let eval_shots = args.eval_shots.unwrap_or(10);
        // Quick evaluation on held-out tasks (seed 0 of the evaluation stream, as `anole eval`).
        let eval_cfg = EvalConfig::standard(args.eval_tasks, eval_shots, self.adapt_steps, 0);
        let mut metrics = serde_json::Map::new();
        let mut main_report: Option<EvalReport> = None;
        for (name, bytes) in &artifacts {
            let blob = model::parse(bytes)?;
            let bar = progress::bar(eval_cfg.tasks as u64, "eval");
            let report = eval::evaluate(&blob, family, &eval_cfg, &bar)
                .with_context(|| format!("evaluating {name}"))?;
            bar.finish_and_clear();
            metrics.insert(name.to_string(), to_json(&report));
            main_report.get_or_insert(report);
        }
        let main_report = main_report.ok_or_else(|| anyhow!("internal: no artifact evaluated"))?;
        let curve_png = self.curve_plot()?;
        let adapt_png = "adaptation.png";
        {
            let main_blob = model::parse(&artifacts[0].1)?;
            plots::sine_adaptation(
                &args.out.join(adapt_png),
                &main_blob,
                0,
                eval_shots,
                self.adapt_steps,
                4,
            )?;
        }
        self.onnx(&mut artifacts)?;
        let files = self.files_json(&artifacts, &[curve_png, adapt_png])?;
        let curve = self.curve;
        let tail = curve.len().div_ceil(100).max(1).min(curve.len());
        let recent = &curve[curve.len() - tail..];
        let mean = |f: fn(&IterLoss) -> f32| {
            if recent.is_empty() {
                None
            } else {
                Some(recent.iter().map(f).sum::<f32>() / recent.len() as f32)
            }
        };
        let card = json!({
            "command": args.command(cfg),
            "task": family.name(),
            "algorithm": self.algorithm,
            "seed": cfg.seed,
            "architecture": format!("{:?}", self.arch.layers),
            "parameters": self.arch.param_count()?,
            "hyperparameters": {
                "meta_iterations": cfg.iters,
                "meta_batch": cfg.meta_batch,
                "points_per_task": cfg.shots,
                "inner_steps": cfg.inner_steps,
                "inner_batch": cfg.inner_batch,
                "inner_lr": eval::decimal(cfg.inner_lr),
                "outer_lr": eval::decimal(cfg.outer_lr),
                "outer_lr_schedule": "linear to 0",
                "inner_optimizer": cfg.inner_opt.as_str(),
                "inner_optimizer_state": cfg.inner_state.as_str(),
                "dtype": args.dtype.dtype().name(),
            },
            "adaptation": {
                "optimizer": cfg.inner_opt.as_str(),
                "lr": eval::decimal(cfg.inner_lr),
                "steps": self.adapt_steps,
                "batch": self.adapt_batch,
                "trainable": "all layers",
            },
            "meta_train_loss_last_1pct": { "before_inner_steps": mean(|l| l.before), "last_inner_minibatch": mean(|l| l.after) },
            "metrics": metrics,
            "artifacts": files,
            "wall_time_s": { "training": self.train_secs, "total": self.prior_secs + start.elapsed().as_secs_f64() },
            "meta_iterations_per_s": self.per_sec,
            "threads": rayon::current_num_threads(),
            "anole_version": env!("CARGO_PKG_VERSION"),
        });
        self.write_card(&card)?;
        self.print_files(&artifacts, &format!("{curve_png}, {adapt_png}, card.json"));
        print!("{}", main_report.table());
        self.print_speed();
        Ok(())
    }

    fn finish_omniglot(&self, mut artifacts: Vec<(&str, Vec<u8>)>, start: Instant) -> Result<()> {
        let (args, cfg) = (self.args, self.cfg);
        let family = self.fam.family.as_ref();
        // Evaluation on held-out episodes, K-shot for every K asked: the f32 blob in every
        // setting; the f16 copy, as a check, with the device's scheme on at most
        // F16_CHECK_EPISODES of the same episodes.
        let eval_start = Instant::now();
        let mut reports: Vec<(String, FewShotReport)> = Vec::new();
        let state = self
            .optimizer_state
            .as_deref()
            .map(model::parse)
            .transpose()?;
        // Every blob from a fresh optimizer (what a device given the blob alone does); with a
        // kept inner state, the f32 blob once more, fully adapted, from that state.
        let mut runs: Vec<(String, &[u8], Option<&anole::Blob<'_>>)> = artifacts
            .iter()
            .map(|(name, bytes)| (name.to_string(), &bytes[..], None))
            .collect();
        if let Some(st) = &state {
            runs.push((STATE_RUN.to_string(), &artifacts[0].1[..], Some(st)));
        }
        for (name, bytes, state) in &runs {
            let blob = model::parse(bytes)?;
            let f32_blob = name.as_str() != "init.f16.postcard";
            for &k in &args.eval_ks() {
                let fcfg = FewShotConfig {
                    episodes: if f32_blob {
                        args.eval_tasks
                    } else {
                        args.eval_tasks.min(F16_CHECK_EPISODES)
                    },
                    shots: k,
                    queries: 1,
                    steps: self.adapt_steps,
                    batch: None,
                    lr: None,
                    seed: 0,
                    norm: if f32_blob {
                        NormMode::Both
                    } else {
                        NormMode::Device
                    },
                    adapt: if name == "init.postcard" {
                        AdaptMode::Both
                    } else {
                        AdaptMode::All
                    },
                    head_init: HeadInit::Prototypes,
                };
                let bar = progress::bar(fcfg.episodes as u64, &format!("{k}-shot"));
                let report = fewshot::evaluate_from_state(&blob, *state, family, &fcfg, &bar)
                    .with_context(|| format!("evaluating {name}"))?;
                bar.finish_and_clear();
                reports.push((name.clone(), report));
            }
        }
        let eval_secs = eval_start.elapsed().as_secs_f64();
        let curve_png = self.curve_plot()?;
        self.onnx(&mut artifacts)?;
        let mut extra = vec![curve_png];
        if self.optimizer_state.is_some() {
            extra.push(OPTIMIZER_STATE_FILE);
        }
        let files = self.files_json(&artifacts, &extra)?;
        // The last 1% of the run (at least 64 meta-iterations, so that accuracies were measured).
        let (before, after, acc) = recent(self.curve, self.curve.len().div_ceil(100).max(64));
        let mut metrics = serde_json::Map::new();
        for (name, r) in &reports {
            let entry = metrics.entry(name.clone()).or_insert_with(|| json!([]));
            if let Some(a) = entry.as_array_mut() {
                a.push(to_json(r));
            }
        }
        let held_out = self.fam.held_out.clone().unwrap_or_default();
        let card = json!({
            "command": args.command(cfg),
            "task": family.name(),
            "ways": args.ways,
            "filters": args.filters,
            "data": {
                "split": args.split.to_string(),
                "split_seed": cfg.seed,
                "characters": self.fam.characters,
                "subset": args.subset,
                "training_classes": "training characters × 4 rotations (0°, 90°, 180°, 270°)",
                "held_out_characters_count": held_out.len(),
            },
            "algorithm": self.algorithm,
            "seed": cfg.seed,
            "architecture": format!("{:?}", self.arch.layers),
            "parameters": self.arch.param_count()?,
            "hyperparameters": {
                "meta_iterations": cfg.iters,
                "meta_batch": cfg.meta_batch,
                "train_shots": cfg.shots,
                "inner_steps": cfg.inner_steps,
                "inner_batch": cfg.inner_batch,
                "inner_lr": eval::decimal(cfg.inner_lr),
                "outer_lr": eval::decimal(cfg.outer_lr),
                "outer_lr_schedule": "linear to 0",
                "inner_optimizer": cfg.inner_opt.as_str(),
                "inner_optimizer_state": cfg.inner_state.as_str(),
                "dtype": args.dtype.dtype().name(),
            },
            "adaptation": {
                "optimizer": cfg.inner_opt.as_str(),
                "lr": eval::decimal(cfg.inner_lr),
                "steps": self.adapt_steps,
                "batch": self.adapt_batch,
                "trainable": "all layers",
                "normalisation": "batch statistics during the steps; then statistics recomputed from the support set and stored, so each query is predicted on its own (the device's scheme, also the exported ONNX's)",
            },
            "stored_statistics": format!(
                "the initialization's norm statistics are those of {} images of {STATISTICS_TASKS} training tasks; used when predicting without adaptation and by head-only adaptation",
                STATISTICS_TASKS * cfg.shots * args.ways
            ),
            "training_budget": {
                "meta_iterations": cfg.iters,
                "wall_time_s": self.train_secs,
                "meta_iterations_per_s": self.per_sec,
                "threads": rayon::current_num_threads(),
            },
            "meta_train_last_1pct": {
                "loss_before_inner_steps": before,
                "loss_last_inner_minibatch": after,
                "accuracy_last_inner_minibatch": acc,
            },
            "results": metrics,
            "evaluation_wall_time_s": eval_secs,
            "artifacts": files,
            "wall_time_s": { "training": self.train_secs, "total": self.prior_secs + start.elapsed().as_secs_f64() },
            "anole_version": env!("CARGO_PKG_VERSION"),
            "held_out_characters": held_out,
        });
        self.write_card(&card)?;
        self.print_files(&artifacts, &format!("{}, card.json", extra.join(", ")));
        let mut first = true;
        for (name, r) in &reports {
            if first {
                print!("{}", FewShotReport::table_header());
                first = false;
            }
            if name == "init.postcard" {
                print!("{}", r.table_rows());
            } else {
                for line in r.table_rows().lines() {
                    println!("{line}  ({name})");
                }
            }
        }
        if let Some((_, r)) = reports.first() {
            println!("({})", r.describe());
        }
        self.print_speed();
        Ok(())
    }
}
