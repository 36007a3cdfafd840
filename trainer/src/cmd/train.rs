//! `anole train <family>`: meta-train an initialization on a task family (its recipe in
//! `crate::tasks`) and write DIR/init.postcard (plus an f16 copy), DIR/init.onnx, DIR/card.json
//! (`crate::card`: the reproducing command, hyper-parameters, training budget, the family's
//! held-out results, sha256 of every artifact) and a learning-curve plot; checkpoints go to
//! DIR/checkpoint/ and `--resume` continues from there. Prints the training throughput. With
//! `--sign KEY`, each blob also gets a signed envelope next to it (DIR/init.signed,
//! DIR/init.f16.signed), exactly as `anole sign` writes it.

use crate::calibrate;
use crate::card::{self, Adaptation, Artifact, Card, Hyperparameters, TaskSamples, WallTime};
use crate::checkpoint;
use crate::export::optimizer_state::{optimizer_state_blob, OPTIMIZER_STATE_FILE};
use crate::files::{sha256_hex, write};
use crate::meta::schedule::{Minibatches, Tail};
use crate::meta::{self, Config, InnerState, IterLoss};
use crate::model::{self, Arch, BlobMeta};
use crate::signing::{Signed, Signer};
use crate::stats::{decimal, recent};
use crate::tasks::recipe::{Evaluation, Exported, Prepared, Recipe, TrainOptions};
use crate::tasks::{TaskFamily, TrainFamily};
use crate::{plots, progress};
use anole::{DType, Layer, LossKind, SharedBlob};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Arguments of `anole train`: the task family, then its arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub family: TrainFamily,
}

/// Run `anole train`.
pub fn run(args: Args) -> Result<()> {
    let recipe = args.family.recipe();
    let cfg = recipe.config()?;
    cfg.validate()?;
    let opts = recipe.options();
    // A bad key must fail now, not after hours of training.
    let signer = opts.sign.as_deref().map(Signer::read).transpose()?;
    let prepared = recipe.prepare(&cfg)?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("{}: cannot create the output directory", opts.out.display()))?;
    let run = Run::new(recipe, &cfg, prepared.family());
    let Some(session) = run.train()? else {
        return Ok(());
    };
    let exports = run.export(&session, signer.as_ref())?;
    run.finish(prepared.as_ref(), &session, exports)
}

/// A run of a recipe: what every stage needs.
struct Run<'a> {
    recipe: &'a dyn Recipe,
    opts: &'a TrainOptions,
    cfg: &'a Config,
    family: &'a dyn TaskFamily,
    arch: Arch,
    adapt_steps: u32,
    adapt_batch: usize,
    /// What every blob of the run records (dtype, algorithm and iterations set per blob).
    meta: BlobMeta,
    /// The run's identity for checkpoints: the command without the output folder.
    identity: String,
}

/// A finished meta-training session.
struct Session {
    trained: meta::Trained,
    /// The parameters' fingerprint after [`FINGERPRINT_ITERATIONS`], for runs that long.
    fingerprint: Option<card::Checkpoint>,
    curve: Vec<IterLoss>,
    /// When this session's training started.
    started: Instant,
    /// Training seconds over every session.
    train_secs: f64,
    /// Training seconds of the sessions before a `--resume`.
    prior_secs: f64,
    /// Meta-iterations per second.
    per_sec: f64,
}

/// The files a run exported before its evaluation.
struct Exports {
    /// `init.postcard`, then its f16 copy when it is f32.
    blobs: Vec<(&'static str, SharedBlob)>,
    /// `--inner-state keep`: the optimizer-state blob ([`OPTIMIZER_STATE_FILE`]).
    optimizer_state: Option<SharedBlob>,
    /// `--sign`: the envelopes and the card's entry about them.
    signed: Option<(Vec<Signed>, card::Signature)>,
}

/// Meta-iterations after which the card records a fingerprint of the parameters (runs longer
/// than this): a prefix of the run that `--stop-after` reproduces in seconds.
const FINGERPRINT_ITERATIONS: u64 = 10;

/// sha256 of meta-parameters, as little-endian f32: the card's `checkpoint` fingerprint.
fn params_sha256(params: &[f32]) -> String {
    let bytes: Vec<u8> = params.iter().flat_map(|v| v.to_le_bytes()).collect();
    sha256_hex(&bytes)
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

fn progress_message(curve: &[IterLoss]) -> String {
    let r = recent(curve, 256);
    let (before, after) = (r.before, r.after);
    match r.accuracy {
        Some(a) => format!(
            "loss {before:.3} → {after:.3}, meta-train acc {:.1}%",
            100.0 * a
        ),
        None => format!("loss {before:.3} → {after:.3}"),
    }
}

impl<'a> Run<'a> {
    fn new(recipe: &'a dyn Recipe, cfg: &'a Config, family: &'a dyn TaskFamily) -> Run<'a> {
        let adapt_steps = recipe.adapt_steps();
        let adapt_batch = recipe.adapt_batch(cfg);
        Run {
            recipe,
            opts: recipe.options(),
            cfg,
            family,
            arch: family.arch(),
            adapt_steps,
            adapt_batch,
            meta: BlobMeta {
                dtype: DType::F32,
                settings: meta::adapt_settings(family, cfg, adapt_steps, adapt_batch),
                algorithm: cfg.algo.as_str().into(),
                task: family.name().into(),
                seed: cfg.seed,
                meta_iterations: 0,
            },
            identity: recipe.command(cfg, Path::new("OUT")),
        }
    }

    /// The blob of `params` stored as `dtype`, with provenance `algorithm` after `iterations`.
    fn blob(
        &self,
        params: &[f32],
        dtype: DType,
        algorithm: &str,
        iterations: u64,
    ) -> Result<Vec<u8>> {
        let meta = BlobMeta {
            dtype,
            algorithm: algorithm.into(),
            meta_iterations: iterations,
            ..self.meta.clone()
        };
        model::encode_blob(&self.arch, params, &meta)
    }

    /// The provenance algorithm of the exported blobs.
    fn algorithm(&self) -> &'static str {
        if self.cfg.iters == 0 {
            "random"
        } else {
            self.cfg.algo.as_str()
        }
    }

    /// The iteration of the card's fingerprint, for runs longer than it.
    fn fingerprint_at(&self) -> Option<u64> {
        (self.cfg.iters > FINGERPRINT_ITERATIONS).then_some(FINGERPRINT_ITERATIONS)
    }

    /// The fingerprint of a run resumed past its iteration: the run's first iterations again,
    /// in memory.
    fn replay_fingerprint(&self, at: u64) -> Result<card::Checkpoint> {
        let mut hash = None;
        let result = meta::train_resumable(
            self.family,
            self.cfg,
            None,
            |done| done == at,
            |t, _, state| {
                if t + 1 < at {
                    return Ok(());
                }
                let s = state.ok_or_else(|| anyhow::anyhow!("internal: no state at {at}"))?;
                hash = Some(params_sha256(&s.params));
                Err(Stopped.into())
            },
        );
        match result {
            Err(e) if e.downcast_ref::<Stopped>().is_some() => {}
            Err(e) => return Err(e.context("replaying the fingerprint's meta-iterations")),
            Ok(_) => {}
        }
        let params_sha256 =
            hash.ok_or_else(|| anyhow::anyhow!("internal: the replay did not reach {at}"))?;
        Ok(card::Checkpoint {
            iteration: at,
            params_sha256,
        })
    }

    /// Meta-train, from the checkpoint with `--resume`, writing checkpoints on the way; `None`
    /// when the run stopped at `--stop-after`.
    fn train(&self) -> Result<Option<Session>> {
        let (cfg, out) = (self.cfg, &self.opts.out);
        let (start, mut curve, prior_secs) = if self.opts.resume {
            let r = checkpoint::load(out, &self.identity)?;
            eprintln!(
                "resuming {} at meta-iteration {} of {}",
                out.display(),
                r.state.iteration,
                cfg.iters
            );
            (Some(r.state), r.curve, r.training_seconds)
        } else {
            let curve = Vec::with_capacity(cfg.iters.min(1 << 24) as usize);
            (None, curve, 0.0)
        };
        let first = start.as_ref().map(|s| s.iteration).unwrap_or(0);
        let bar = progress::bar(cfg.iters, "train");
        bar.set_position(first);
        let interactive = progress::interactive();
        let every = self.recipe.checkpoint_every();
        let started = Instant::now();
        let mut last_draw = Instant::now();
        let mut last_log = Instant::now();
        let stop_at = self.opts.stop_after;
        let fingerprint_at = self.fingerprint_at();
        let mut fingerprint = None;
        let wants_state = |done: u64| {
            (every > 0 && done % every == 0)
                || stop_at == Some(done)
                || fingerprint_at == Some(done)
        };
        let result = meta::train_resumable(self.family, cfg, start, wants_state, |t, l, state| {
            curve.push(l);
            let done = t + 1;
            if last_draw.elapsed() > Duration::from_millis(100) || done == cfg.iters {
                bar.set_message(progress_message(&curve));
                bar.set_position(done);
                last_draw = Instant::now();
            }
            if !interactive && last_log.elapsed() > Duration::from_secs(60) {
                let secs = started.elapsed().as_secs_f64();
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
            if let Some(s) = state.filter(|_| fingerprint_at == Some(done) || stop) {
                fingerprint = Some(card::Checkpoint {
                    iteration: done,
                    params_sha256: params_sha256(&s.params),
                });
            }
            if let Some(s) = state.filter(|_| every > 0 || stop) {
                let secs = prior_secs + started.elapsed().as_secs_f64();
                checkpoint::save_run(out, &self.identity, &self.arch, &self.meta, s, &curve, secs)?;
            }
            if stop {
                return Err(Stopped.into());
            }
            Ok(())
        });
        let train_secs = prior_secs + started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let trained = match result {
            Ok(t) => t,
            Err(e) if e.downcast_ref::<Stopped>().is_some() => {
                let hash = fingerprint.map(|f| f.params_sha256).unwrap_or_default();
                println!(
                    "stopped after meta-iteration {} (parameters sha256 {hash}); continue with \
                     the same command and --resume",
                    curve.len()
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let session_iters = cfg.iters - first;
        let session_secs = started.elapsed().as_secs_f64();
        // This session's rate; the whole run's when this session trained nothing (a --resume
        // from the last checkpoint only writes the artifacts again).
        let per_sec = if session_iters > 0 && session_secs > 0.0 {
            session_iters as f64 / session_secs
        } else if train_secs > 0.0 {
            cfg.iters as f64 / train_secs
        } else {
            0.0
        };
        let fingerprint = match fingerprint_at {
            Some(at) if first >= at => Some(self.replay_fingerprint(at)?),
            Some(_) => fingerprint.filter(|f| Some(f.iteration) == fingerprint_at),
            None => None,
        };
        Ok(Some(Session {
            trained,
            fingerprint,
            curve,
            started,
            train_secs,
            prior_secs,
            per_sec,
        }))
    }

    /// Write the blobs (with their stored normalisation statistics), the kept optimizer state
    /// and, with `--sign`, their signed envelopes.
    fn export(&self, session: &Session, signer: Option<&Signer>) -> Result<Exports> {
        let (cfg, out) = (self.cfg, &self.opts.out);
        let trained = &session.trained;
        let params = calibrate::norm_statistics(&self.arch, &trained.params, self.family, cfg)?;
        let optimizer_state = if cfg.inner_state == InnerState::Keep {
            let bytes = optimizer_state_blob(
                &self.arch,
                &params,
                &trained.state,
                &self.meta,
                cfg.inner_lr,
            )?;
            write(&out.join(OPTIMIZER_STATE_FILE), &bytes)?;
            Some(model::shared(bytes)?)
        } else {
            None
        };
        let (algorithm, iterations) = (self.algorithm(), trained.iterations);
        let dtype = self.opts.dtype.dtype();
        let mut dtypes = vec![("init.postcard", dtype)];
        if dtype == DType::F32 {
            dtypes.push(("init.f16.postcard", DType::F16));
        }
        let mut blobs = Vec::new();
        for (name, dtype) in dtypes {
            let bytes = self.blob(&params, dtype, algorithm, iterations)?;
            write(&out.join(name), &bytes)?;
            blobs.push((name, model::shared(bytes)?));
        }
        let signed = match signer {
            Some(s) => {
                let signed = s.sign_all(out, blobs.iter().map(|(n, b)| (*n, b.bytes())))?;
                let entry = s.card(&signed);
                Some((signed, entry))
            }
            None => None,
        };
        Ok(Exports {
            blobs,
            optimizer_state,
            signed,
        })
    }

    /// Evaluate (the family's evaluation), plot the learning curve, export the ONNX, write the
    /// card and print what was written, the results and the throughput.
    fn finish(&self, prepared: &dyn Prepared, session: &Session, exports: Exports) -> Result<()> {
        let out = &self.opts.out;
        let Evaluation {
            section,
            files: plots,
            text,
        } = prepared.evaluate(&Exported {
            out,
            cfg: self.cfg,
            blobs: &exports.blobs,
            optimizer_state: exports.optimizer_state.as_ref(),
            adapt_steps: self.adapt_steps,
            curve: &session.curve,
            train_secs: session.train_secs,
            per_sec: session.per_sec,
        })?;
        let mut extra = vec![self.curve_plot(&session.curve)?];
        extra.extend(plots);
        if exports.optimizer_state.is_some() {
            extra.push(OPTIMIZER_STATE_FILE);
        }
        let onnx = crate::export::onnx::onnx_bytes(exports.blobs[0].1.blob())
            .context("init.onnx: ONNX export failed")?;
        write(&out.join("init.onnx"), &onnx)?;
        let mut files: Vec<(&str, &[u8])> =
            exports.blobs.iter().map(|(n, b)| (*n, b.bytes())).collect();
        files.push(("init.onnx", &onnx));
        let (signed, signature) = exports.signed.unzip();
        let signed = signed.unwrap_or_default();
        let card = self.card(session, &files, &signed, &extra, signature, section)?;
        card::write(&out.join("card.json"), &card)?;
        println!("wrote {}", out.display());
        for (name, bytes) in &files {
            println!(
                "  {name:<20} {:>8} bytes  sha256 {}",
                bytes.len(),
                sha256_hex(bytes)
            );
        }
        for s in &signed {
            println!(
                "  {:<20} {:>8} bytes  sha256 {}  (signed {})",
                s.file,
                s.bytes.len(),
                sha256_hex(&s.bytes),
                s.blob
            );
        }
        println!("  {}, card.json", extra.join(", "));
        print!("{text}");
        if self.cfg.iters > 0 {
            println!(
                "{} meta-iterations in {:.2} s: {:.2} meta-iterations/s",
                self.cfg.iters, session.train_secs, session.per_sec
            );
        }
        Ok(())
    }

    fn curve_plot(&self, curve: &[IterLoss]) -> Result<&'static str> {
        let title = format!(
            "{} on {}: {} meta-iterations, seed {}",
            self.algorithm(),
            self.family.name(),
            self.cfg.iters,
            self.cfg.seed
        );
        let name = "learning_curve.png";
        plots::learning_curve(&self.opts.out.join(name), curve, &title)?;
        Ok(name)
    }

    /// The model card: the files written (`extra` read back from the output folder), the
    /// run's settings and budget, and the family's section.
    fn card(
        &self,
        session: &Session,
        files: &[(&str, &[u8])],
        signed: &[Signed],
        extra: &[&str],
        signature: Option<card::Signature>,
        section: serde_json::Value,
    ) -> Result<Card<serde_json::Value>> {
        let (cfg, opts) = (self.cfg, self.opts);
        let mut artifacts: std::collections::BTreeMap<String, Artifact> = files
            .iter()
            .map(|(name, bytes)| (name.to_string(), Artifact::of(bytes)))
            .collect();
        for s in signed {
            artifacts.insert(s.file.clone(), Artifact::of(&s.bytes));
        }
        for name in extra {
            let bytes = std::fs::read(opts.out.join(name))
                .with_context(|| format!("{name}: cannot read back"))?;
            artifacts.insert(name.to_string(), Artifact::of(&bytes));
        }
        let mut command = self.recipe.command(cfg, &opts.out);
        // Not part of the run's identity (checkpoints): signing does not change the blobs.
        if let Some(key) = &opts.sign {
            command.push_str(&format!(" --sign {}", key.display()));
        }
        let has_norm = self
            .arch
            .layers
            .iter()
            .any(|l| matches!(l, Layer::Norm { .. }));
        Ok(Card {
            command,
            task: self.family.name().into(),
            algorithm: self.algorithm().into(),
            seed: cfg.seed,
            architecture: format!("{:?}", self.arch.layers),
            parameters: self.arch.param_count()?,
            hyperparameters: Hyperparameters {
                meta_iterations: cfg.iters,
                meta_batch: cfg.meta_batch,
                samples: match self.family.loss() {
                    LossKind::Mse => TaskSamples::Points(cfg.shots),
                    LossKind::CrossEntropy => TaskSamples::PerClass(cfg.shots),
                },
                inner_steps: cfg.inner_steps,
                inner_batch: cfg.inner_batch,
                inner_lr: decimal(cfg.inner_lr),
                outer_lr: decimal(cfg.outer_lr),
                outer_lr_schedule: "linear to 0".into(),
                inner_optimizer: cfg.inner_opt.as_str().into(),
                inner_optimizer_state: Some(cfg.inner_state.as_str().into()),
                inner_minibatches: (cfg.minibatches != Minibatches::Cycle)
                    .then(|| cfg.minibatches.as_str().into()),
                inner_tail: (cfg.tail != Tail::Shared).then(|| cfg.tail.as_str().into()),
                dtype: opts.dtype.dtype().name().into(),
            },
            adaptation: Adaptation {
                optimizer: cfg.inner_opt.as_str().into(),
                lr: decimal(cfg.inner_lr),
                steps: self.adapt_steps,
                batch: self.adapt_batch,
                trainable: "all layers".into(),
                normalisation: has_norm.then(|| card::NORMALISATION.into()),
            },
            artifacts,
            wall_time_s: WallTime {
                training: session.train_secs,
                total: session.prior_secs + session.started.elapsed().as_secs_f64(),
            },
            anole_version: env!("CARGO_PKG_VERSION").into(),
            checkpoint: session.fingerprint.clone(),
            signature,
            family: section,
        })
    }
}
