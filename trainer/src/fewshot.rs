//! Few-shot classification accuracy over held-out N-way K-shot episodes (the Omniglot
//! protocol): adapt on each episode's support set through the engine, classify its queries,
//! and report the accuracy with a 95% confidence interval over episodes for
//!
//! - **full adaptation** (every layer) with the **device** normalisation: batch statistics
//!   during the steps, then statistics recomputed from the support set and stored, so each
//!   query is classified on its own (`Learner::adapt` + `Learner::predict`, as on a device and
//!   in the exported ONNX);
//! - full adaptation with **transductive** normalisation: the queries classified together with
//!   their own batch statistics (`Learner::predict_batch_stats`), the paper's transductive
//!   setting;
//! - **head-only** adaptation: the body frozen with its stored statistics, only the last layer
//!   with parameters trained. The body's features of the support and query images are computed
//!   once ([`HeadSplit`]), then the head adapts on the cached features: the same arithmetic as
//!   a learner with the head-only mask, without re-running the body at every step.
//!
//! Episode `i` is drawn from its own random stream (`tasks::rng(seed, Eval, i)`), so results
//! do not depend on the thread count or on how many episodes are run.

use crate::meta::HeadStart;
use crate::model::{self, Arch};
use crate::stats::{accuracy, decimal, Stat};
use crate::tasks::{self, Episode, Stream, TaskFamily};
use anole::{submodel, Blob, LossKind, Options, OwnedLearner, SharedBlob, SliceSamples};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which normalisation schemes to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormMode {
    /// Statistics recomputed from the support set after adapting; per-sample prediction.
    Device,
    /// The query batch's own statistics (transductive).
    Transductive,
    /// Both.
    Both,
}

/// Which layers adapt.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptMode {
    /// Every layer.
    All,
    /// Only the last layer with parameters, on cached body features.
    Head,
    /// Both, reported side by side.
    Both,
}

/// How the head starts head-only adaptation.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadInit {
    /// From the support set: each class's weights twice the mean of its support features
    /// (its prototype μ), its bias −‖μ‖², so the head starts as the nearest-prototype
    /// classifier (squared Euclidean distance); then the steps fine-tune it.
    #[default]
    Prototypes,
    /// The meta-learned head, as stored in the blob.
    Meta,
}

/// What to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct FewShotConfig {
    /// Held-out episodes.
    pub episodes: usize,
    /// Support images per class (K).
    pub shots: usize,
    /// Query images per class.
    pub queries: usize,
    /// Adaptation steps.
    pub steps: u32,
    /// Adaptation minibatch (default: the blob's).
    pub batch: Option<usize>,
    /// Adaptation learning rate (default: the blob's).
    pub lr: Option<f32>,
    /// Seed of the held-out episodes.
    pub seed: u64,
    /// Normalisation schemes.
    pub norm: NormMode,
    /// Adapting layers.
    pub adapt: AdaptMode,
    /// Where head-only adaptation starts.
    pub head_init: HeadInit,
    /// Where full adaptation starts the head: the blob's, or the class prototypes of the
    /// support set's features (`Learner::init_head_prototypes`, first-order Proto-MAML).
    pub head_start: HeadStart,
    /// The factor on the logits of a head started from prototypes (the learners'
    /// [`head scale`](anole::Engine::set_head_scale): row c 2·s·μ_c, bias −s·‖μ_c‖²); `None`:
    /// the blob's ([`AdaptSettings::head_scale`](anole::blob::AdaptSettings::head_scale), 1
    /// before format version 3). Unscaled, the nearest-prototype logits saturate the softmax
    /// on the support set, so the steps after the start learn nothing; a smaller factor lets
    /// them learn.
    pub prototype_scale: Option<f32>,
}

impl FewShotConfig {
    /// A card's evaluation of `episodes` K-shot episodes (`shots`), one query per class,
    /// `steps` steps with the blob's batch and lr, seed 0, every layer adapting with the
    /// device's normalisation, the head started from the blob's parameters (meta) and
    /// head-only adaptation from prototypes; the other settings by struct update.
    pub fn card(episodes: usize, shots: usize, steps: u32) -> FewShotConfig {
        FewShotConfig {
            episodes,
            shots,
            queries: 1,
            steps,
            batch: None,
            lr: None,
            seed: 0,
            norm: NormMode::Device,
            adapt: AdaptMode::All,
            head_init: HeadInit::Prototypes,
            head_start: HeadStart::Meta,
            prototype_scale: None,
        }
    }
}

/// One measured setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// "all" or "head".
    pub adaptation: String,
    /// "device" or "transductive".
    pub normalisation: String,
    /// Query accuracy over episodes.
    pub accuracy: Stat,
}

/// A few-shot evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FewShotReport {
    /// Task family.
    pub task: String,
    /// Classes per episode.
    pub ways: usize,
    /// Support images per class.
    pub shots: usize,
    /// Query images per class.
    pub queries: usize,
    /// Episodes.
    pub episodes: usize,
    /// Adaptation steps.
    pub steps: u32,
    /// Adaptation minibatch.
    pub batch: usize,
    /// Adaptation learning rate.
    pub lr: f64,
    /// Seed of the episodes.
    pub seed: u64,
    /// Where head-only adaptation started.
    pub head_init: HeadInit,
    /// Where full adaptation started the head (left out of JSON when the blob's).
    #[serde(default, skip_serializing_if = "HeadStart::is_meta")]
    pub head_start: HeadStart,
    /// The factor on a prototype-started head's logits, the blob's unless the configuration
    /// gave one (left out of JSON when 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub prototype_scale: f64,
    /// One row per (adaptation, normalisation) measured.
    pub rows: Vec<Row>,
}

impl FewShotReport {
    /// The accuracy of one setting.
    pub fn accuracy(&self, adaptation: &str, normalisation: &str) -> Option<Stat> {
        self.rows
            .iter()
            .find(|r| r.adaptation == adaptation && r.normalisation == normalisation)
            .map(|r| r.accuracy)
    }

    /// Plain-text table rows (no header), one per setting.
    pub fn table_rows(&self) -> String {
        let mut s = String::new();
        for r in &self.rows {
            s.push_str(&format!(
                "{:>5}  {:>5}  {:<18}  {:<12}  {:>17}\n",
                self.ways,
                self.shots,
                match (r.adaptation.as_str(), self.head_init) {
                    ("all", _) if self.head_start == HeadStart::Prototypes => {
                        "all, prototypes"
                    }
                    ("all", _) => "all layers",
                    (_, HeadInit::Prototypes) => "head, prototypes",
                    (_, HeadInit::Meta) => "head, meta init",
                },
                &r.normalisation,
                format!(
                    "{:.2}% ± {:.2}%",
                    100.0 * r.accuracy.mean,
                    100.0 * r.accuracy.ci95
                ),
            ));
        }
        s
    }

    /// The header line of [`FewShotReport::table_rows`].
    pub fn table_header() -> String {
        format!(
            "{:>5}  {:>5}  {:<18}  {:<12}  {:>17}\n",
            "ways", "shots", "adapting", "norm", "accuracy (±95%)"
        )
    }

    /// One line describing the protocol (whatever the number of shots).
    pub fn describe(&self) -> String {
        let scale = if is_one(&self.prototype_scale) {
            String::new()
        } else {
            format!(", prototype logits × {}", self.prototype_scale)
        };
        format!(
            "{} held-out {}-way episodes per setting, {} quer{} per class; {} steps, batch {}, lr {}, seed {}{scale}",
            self.episodes,
            self.ways,
            self.queries,
            if self.queries == 1 { "y" } else { "ies" },
            self.steps,
            self.batch,
            self.lr,
            self.seed
        )
    }
}

pub(crate) fn one() -> f64 {
    1.0
}

pub(crate) fn is_one(x: &f64) -> bool {
    *x == 1.0
}

/// A blob cut before its last layer with parameters ([`anole::submodel`]): the frozen `body`
/// (its norm layers use their stored statistics) and the `head` (that layer and any
/// parameter-free layers after it), each a blob of its own with the source's tensors as
/// stored, so body features can be computed once per image.
pub struct HeadSplit {
    /// The body: the source's input, up to the head's input. Empty when the head is the first
    /// layer (the features are then the inputs).
    pub body: Option<Vec<u8>>,
    /// The head: the source's loss, optimizer, learning rate and batch.
    pub head: Vec<u8>,
    /// Values per feature vector (the head's input length).
    pub features: usize,
}

impl HeadSplit {
    /// Split `blob` at its last layer with parameters.
    pub fn new(blob: &Blob<'_>) -> Result<HeadSplit> {
        let mut head = Blob::empty();
        submodel::head_into(blob, &mut head)?;
        let body = if submodel::head_layer(blob)? == 0 {
            None
        } else {
            let mut body = Blob::empty();
            submodel::body_into(blob, &mut body)?;
            Some(body.to_vec())
        };
        Ok(HeadSplit {
            body,
            head: head.to_vec(),
            features: head.input_len(),
        })
    }
}

/// A learner over a body blob that computes its features: nothing adapting, the norm layers
/// with their stored statistics.
#[derive(Clone)]
pub struct Features(OwnedLearner);

impl Features {
    /// Features of the body `body`.
    pub fn new(body: &SharedBlob) -> Result<Features> {
        let opts = Options {
            batch: 32,
            trainable: 0,
            lr: 0.0,
        };
        Ok(Features(
            OwnedLearner::with_options(body, opts).context("body")?,
        ))
    }

    /// Body features of `inputs` (`n × input_len`) into `out` (`n × features`).
    pub fn compute(&mut self, inputs: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let (il, ol) = (self.0.blob().input_len(), self.0.blob().output_len());
        out.resize(inputs.len() / il * ol, 0.0);
        self.0.predict(inputs, out).context("body features")
    }
}

/// Per-thread learners and buffers.
#[derive(Default)]
struct Scratch {
    full: Option<OwnedLearner>,
    trans: Option<OwnedLearner>,
    body: Option<Features>,
    head: Option<OwnedLearner>,
    outputs: Vec<f32>,
    support_features: Vec<f32>,
    query_features: Vec<f32>,
}

/// The learner of `blob` with `opts` in `slot` (made there the first time, or when the
/// options change), reset to the blob's parameters with a fresh optimizer: the same state as a
/// new learner.
fn fresh<'s>(
    slot: &'s mut Option<OwnedLearner>,
    blob: &SharedBlob,
    opts: Options,
) -> Result<&'s mut OwnedLearner> {
    let l = match slot.take() {
        Some(l) if l.options() == opts => slot.insert(l),
        _ => slot.insert(OwnedLearner::with_options(blob, opts)?),
    };
    l.reset();
    Ok(l)
}

/// Evaluate `blob` on `cfg.episodes` held-out episodes of `family` (a classification family
/// whose `eval_task` takes shots and queries per class); episodes run in parallel and
/// `progress` advances once per episode.
pub fn evaluate(
    blob: &SharedBlob,
    family: &dyn TaskFamily,
    cfg: &FewShotConfig,
    progress: &ProgressBar,
) -> Result<FewShotReport> {
    evaluate_from_state(blob, None, family, cfg, progress)
}

/// [`evaluate`], full adaptation starting every episode from the optimizer state in `state`
/// (an optimizer-state blob, e.g. `init.adam.postcard` of a `--inner-state keep` run) instead of
/// a fresh optimizer. Head-only adaptation always starts fresh.
pub fn evaluate_from_state(
    blob: &SharedBlob,
    state: Option<&Blob<'_>>,
    family: &dyn TaskFamily,
    cfg: &FewShotConfig,
    progress: &ProgressBar,
) -> Result<FewShotReport> {
    let opts = options(blob.blob(), family, cfg)?;
    let head_scale = cfg
        .prototype_scale
        .unwrap_or(blob.blob().settings().head_scale);
    let (full, head) = match cfg.adapt {
        AdaptMode::All => (true, false),
        AdaptMode::Head => (false, true),
        AdaptMode::Both => (true, true),
    };
    let (device, transductive) = match cfg.norm {
        NormMode::Device => (true, false),
        NormMode::Transductive => (false, true),
        NormMode::Both => (true, true),
    };
    let split = head.then(|| HeadSplit::new(blob.blob())).transpose()?;
    let (body, head) = match split {
        Some(s) => (
            s.body.map(model::shared).transpose()?,
            Some(model::shared(s.head)?),
        ),
        None => (None, None),
    };
    let episodes = Episodes {
        blob,
        state,
        family,
        cfg,
        opts,
        head_scale,
        full,
        device,
        transductive,
        body,
        head,
    };
    let rows = episodes.rows();
    let per_episode: Vec<Result<Vec<f64>>> = (0..cfg.episodes)
        .into_par_iter()
        .map_init(Scratch::default, |scratch, i| {
            let r = episodes
                .accuracies(scratch, i)
                .with_context(|| format!("held-out episode {}", i + 1));
            progress.inc(1);
            r
        })
        .collect();
    let mut values = vec![Vec::with_capacity(cfg.episodes); rows.len()];
    for r in per_episode {
        for (k, a) in r?.into_iter().enumerate() {
            values[k].push(a);
        }
    }
    Ok(FewShotReport {
        task: family.name().to_string(),
        ways: blob.blob().output_len(),
        shots: cfg.shots,
        queries: cfg.queries,
        episodes: cfg.episodes,
        steps: cfg.steps,
        batch: opts.batch,
        lr: decimal(opts.lr),
        seed: cfg.seed,
        head_init: cfg.head_init,
        head_start: cfg.head_start,
        prototype_scale: decimal(head_scale),
        rows: rows
            .iter()
            .zip(&values)
            .map(|(&(adaptation, normalisation), v)| Row {
                adaptation: adaptation.to_string(),
                normalisation: normalisation.to_string(),
                accuracy: Stat::of(v),
            })
            .collect(),
    })
}

/// The adaptation options of an evaluation of `blob` on `family` with `cfg` (every layer
/// adapting); errors on settings that cannot be evaluated.
fn options(blob: &Blob<'_>, family: &dyn TaskFamily, cfg: &FewShotConfig) -> Result<Options> {
    if cfg.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    if cfg.shots == 0 {
        bail!("--shots must be at least 1");
    }
    if cfg.queries == 0 {
        bail!("--queries must be at least 1");
    }
    if let Some(s) = cfg.prototype_scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("--prototype-scale must be a finite number > 0, got {s}");
    }
    if blob.loss != LossKind::CrossEntropy || family.loss() != LossKind::CrossEntropy {
        bail!("few-shot accuracy needs a classification (cross-entropy) model and task family");
    }
    let arch = Arch::of(blob);
    if arch != family.arch() {
        bail!(
            "the model's architecture ({} classes) does not match the {} task family's ({} classes)",
            blob.output_len(),
            family.name(),
            family.arch().shapes()?.last().map(|s| s.len()).unwrap_or(0)
        );
    }
    let mut opts = Options::from_blob(blob);
    opts.trainable = arch.all_layers();
    if let Some(lr) = cfg.lr {
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("--lr must be a finite number >= 0, got {lr}");
        }
        opts.lr = lr;
    }
    if let Some(b) = cfg.batch {
        if b == 0 {
            bail!("--batch must be at least 1");
        }
        opts.batch = b;
    }
    Ok(opts)
}

/// An evaluation: what every episode adapts and measures.
struct Episodes<'a> {
    blob: &'a SharedBlob,
    /// Where full adaptation's optimizer starts, when not fresh.
    state: Option<&'a Blob<'a>>,
    family: &'a dyn TaskFamily,
    cfg: &'a FewShotConfig,
    /// Full adaptation's options.
    opts: Options,
    /// The factor on the logits of a head started from prototypes, in both adaptations.
    head_scale: f32,
    /// Measure full adaptation.
    full: bool,
    /// ... with the device's normalisation.
    device: bool,
    /// ... with the transductive normalisation.
    transductive: bool,
    /// Head-only adaptation: the frozen body (none when the head is the first layer) and the
    /// head.
    body: Option<SharedBlob>,
    head: Option<SharedBlob>,
}

impl Episodes<'_> {
    /// The (adaptation, normalisation) of every accuracy an episode gives, in order.
    fn rows(&self) -> Vec<(&'static str, &'static str)> {
        let mut rows = Vec::new();
        if self.full && self.device {
            rows.push(("all", "device"));
        }
        if self.full && self.transductive {
            rows.push(("all", "transductive"));
        }
        if self.head.is_some() {
            // The frozen body keeps its stored statistics either way: one row.
            rows.push(("head", "device"));
        }
        rows
    }

    /// The query accuracies of held-out episode `i`, one per row.
    fn accuracies(&self, scratch: &mut Scratch, i: usize) -> Result<Vec<f64>> {
        let cfg = self.cfg;
        let episode = self.family.eval_task(
            &mut tasks::rng(cfg.seed, Stream::Eval, i as u64),
            cfg.shots,
            cfg.queries,
        )?;
        let mut acc = Vec::with_capacity(3);
        if self.full {
            self.adapt_all(scratch, &episode, &mut acc)?;
        }
        if let Some(head) = &self.head {
            acc.push(self.adapt_head(head, scratch, &episode)?);
        }
        Ok(acc)
    }

    /// Full adaptation on the episode's support set; the query accuracy with the device's
    /// and/or the transductive normalisation, appended to `acc`.
    fn adapt_all(
        &self,
        scratch: &mut Scratch,
        episode: &Episode,
        acc: &mut Vec<f64>,
    ) -> Result<()> {
        let (opts, steps) = (self.opts, self.cfg.steps);
        let ways = self.blob.blob().output_len();
        let (qx, qy) = (episode.query.input_slice(), episode.query.target_slice());
        let l = fresh(&mut scratch.full, self.blob, opts)?;
        if self.cfg.head_start == HeadStart::Prototypes {
            l.set_head_scale(self.head_scale)?;
            l.init_head_prototypes(&episode.support.samples()?)
                .context("starting the head from class prototypes")?;
        }
        if let Some(st) = self.state {
            l.load_optimizer_state_from(st).context("optimizer state")?;
        }
        l.adapt(&episode.support.samples()?, steps)
            .with_context(|| format!("adapting {steps} steps"))?;
        scratch.outputs.resize(qy.len() * ways, 0.0);
        if self.device {
            l.predict(qx, &mut scratch.outputs).context("predict")?;
            acc.push(accuracy(&scratch.outputs, qy, ways));
        }
        if self.transductive {
            if qy.len() <= opts.batch {
                l.predict_batch_stats(qx, &mut scratch.outputs)
                    .context("predict")?;
            } else {
                // A learner as wide as the query set, with the adapted parameters.
                let wide = Options {
                    batch: qy.len(),
                    ..opts
                };
                let t = fresh(&mut scratch.trans, self.blob, wide)?;
                t.set_params(l.params())?;
                t.predict_batch_stats(qx, &mut scratch.outputs)
                    .context("predict")?;
            }
            acc.push(accuracy(&scratch.outputs, qy, ways));
        }
        Ok(())
    }

    /// Head-only adaptation on the body's features of the episode's support set; the query
    /// accuracy.
    fn adapt_head(
        &self,
        head: &SharedBlob,
        scratch: &mut Scratch,
        episode: &Episode,
    ) -> Result<f64> {
        let steps = self.cfg.steps;
        let ways = self.blob.blob().output_len();
        let (qx, qy) = (episode.query.input_slice(), episode.query.target_slice());
        let (sf, qf): (&[f32], &[f32]) = match &self.body {
            Some(b) => {
                let features = match scratch.body.take() {
                    Some(f) => scratch.body.insert(f),
                    None => scratch.body.insert(Features::new(b)?),
                };
                features.compute(episode.support.input_slice(), &mut scratch.support_features)?;
                features.compute(qx, &mut scratch.query_features)?;
                (&scratch.support_features, &scratch.query_features)
            }
            None => (episode.support.input_slice(), qx),
        };
        let hopts = Options {
            trainable: Arch::of(head.blob()).all_layers(),
            ..self.opts
        };
        let l = fresh(&mut scratch.head, head, hopts)?;
        let s = SliceSamples::new(
            sf,
            episode.support.target_slice(),
            head.blob().input_len(),
            1,
        )
        .context("features")?;
        if self.cfg.head_init == HeadInit::Prototypes {
            l.set_head_scale(self.head_scale)?;
            l.init_prototypes(&s).context("prototype head")?;
        }
        l.adapt(&s, steps)
            .with_context(|| format!("adapting the head {steps} steps"))?;
        scratch.outputs.resize(qy.len() * ways, 0.0);
        l.predict(qf, &mut scratch.outputs).context("predict")?;
        Ok(accuracy(&scratch.outputs, qy, ways))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BlobMeta;
    use anole::blob::AdaptSettings;
    use anole::DType;
    use rand::{Rng, SeedableRng};

    fn blob_bytes(ways: usize, filters: usize, optimizer: u8, dtype: DType) -> Vec<u8> {
        let arch = Arch::omniglot(ways, filters);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut params = arch.init_params(&mut rng).unwrap();
        // Stored statistics unlike the initial 0 / 1, so that using them matters.
        for v in params.iter_mut() {
            if *v == 0.0 {
                *v = 0.05;
            }
        }
        let meta = BlobMeta {
            dtype,
            settings: AdaptSettings {
                loss: 1,
                optimizer,
                lr: 1e-3,
                steps: 7,
                batch: 4,
                trainable: arch.all_layers(),
                head_start: 0,
                head_scale: 1.0,
                lr_scale: Default::default(),
            },
            algorithm: "random".into(),
            task: "omniglot".into(),
            seed: 3,
            meta_iterations: 0,
        };
        model::encode_blob(&arch, &params, &meta).unwrap()
    }

    /// Cached features + head learner = a learner over the whole model with the head-only
    /// mask, bit for bit (adapted head parameters and query outputs), for SGD and Adam, f32 and
    /// f16 blobs.
    #[test]
    fn cached_head_equals_the_head_only_learner() {
        for (optimizer, dtype) in [(0, DType::F32), (1, DType::F32), (1, DType::F16)] {
            let bytes = blob_bytes(5, 6, optimizer, dtype);
            let shared = SharedBlob::parse(bytes).unwrap();
            let blob = shared.blob();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
            let n = 10;
            let x: Vec<f32> = (0..n * 784).map(|_| rng.random_range(0.0..1.0)).collect();
            let y: Vec<f32> = (0..n).map(|i| (i % 5) as f32).collect();
            let q: Vec<f32> = (0..5 * 784).map(|_| rng.random_range(0.0..1.0)).collect();

            let arch = Arch::of(blob);
            let opts = Options {
                trainable: arch.head_only(),
                ..Options::from_blob(blob)
            };
            let mut full = OwnedLearner::with_options(&shared, opts).unwrap();
            full.adapt(&SliceSamples::new(&x, &y, 784, 1).unwrap(), 7)
                .unwrap();
            let mut expected = vec![0.0; 25];
            full.predict(&q, &mut expected).unwrap();

            let split = HeadSplit::new(blob).unwrap();
            assert_eq!(split.features, 4 * 6);
            let body_bytes = split.body.unwrap();
            let mut body = Features::new(&SharedBlob::parse(body_bytes).unwrap()).unwrap();
            let head = SharedBlob::parse(split.head).unwrap();
            let (mut sf, mut qf) = (Vec::new(), Vec::new());
            body.compute(&x, &mut sf).unwrap();
            body.compute(&q, &mut qf).unwrap();
            let hopts = Options {
                trainable: 1,
                ..opts
            };
            let mut h = OwnedLearner::with_options(&head, hopts).unwrap();
            h.adapt(&SliceSamples::new(&sf, &y, 24, 1).unwrap(), 7)
                .unwrap();
            let mut got = vec![0.0; 25];
            h.predict(&qf, &mut got).unwrap();
            assert_eq!(got, expected, "optimizer {optimizer}, {dtype:?}");
            let np = full.params().len();
            assert_eq!(h.params(), &full.params()[np - h.params().len()..]);
            // And the head did move.
            h.reset();
            assert_ne!(h.params(), &full.params()[np - h.params().len()..]);
        }
    }

    /// `--prototype-scale` sets the learners' head scale: the head started from prototypes
    /// is the unscaled one times the factor, nothing else moves; without it the blob's scale
    /// is used.
    #[test]
    fn prototype_scale_multiplies_the_head_alone() {
        use crate::data::Split;
        use crate::tasks::{OmniglotTasks, Stream};
        let data = std::sync::Arc::new(crate::tasks::omniglot::test_data().subset(60).unwrap());
        let fam = OmniglotTasks::new(&data, Split::Paper, 0, 5, 6).unwrap();
        let blob = SharedBlob::parse(blob_bytes(5, 6, 1, DType::F32)).unwrap();
        let episode = fam
            .eval_task(&mut tasks::rng(1, Stream::Eval, 0), 2, 1)
            .unwrap();
        let support = episode.support.samples().unwrap();
        let opts = Options::from_blob(blob.blob());
        let mut l = OwnedLearner::with_options(&blob, opts).unwrap();
        l.init_head_prototypes(&support).unwrap();
        let before = l.params().to_vec();
        l.reset();
        l.set_head_scale(0.25).unwrap();
        l.init_head_prototypes(&support).unwrap();
        let features = blob.blob().shapes[blob.blob().layers.len() - 1].len();
        let head = 5 * (features + 1);
        let n = before.len();
        assert_eq!(l.params()[..n - head], before[..n - head]);
        for (a, b) in l.params()[n - head..].iter().zip(&before[n - head..]) {
            assert_eq!(*a, b * 0.25);
        }
        // Without steps a scaled prototype head predicts the same classes; a factor that is
        // not a positive number is refused.
        let mut cfg = FewShotConfig {
            prototype_scale: None,
            episodes: 4,
            shots: 2,
            queries: 2,
            steps: 0,
            batch: None,
            lr: None,
            seed: 1,
            norm: NormMode::Device,
            adapt: AdaptMode::Both,
            head_init: HeadInit::Prototypes,
            head_start: HeadStart::Prototypes,
        };
        let unscaled = evaluate(&blob, &fam, &cfg, &ProgressBar::hidden()).unwrap();
        cfg.prototype_scale = Some(0.5);
        let scaled = evaluate(&blob, &fam, &cfg, &ProgressBar::hidden()).unwrap();
        assert_eq!(scaled.rows, unscaled.rows);
        assert!(scaled.describe().contains("prototype logits × 0.5"));
        assert!(!unscaled.describe().contains("prototype logits"));
        // A blob whose settings hold the factor: the evaluation's default.
        let bytes = blob_bytes(5, 6, 1, DType::F32);
        let mut w = Blob::parse(&bytes).unwrap().wire;
        w.adapt.head_scale = 0.5;
        w.version = w.format_version();
        let own = SharedBlob::parse(anole::blob::encode_to_vec(&w)).unwrap();
        cfg.prototype_scale = None;
        let from_blob = evaluate(&own, &fam, &cfg, &ProgressBar::hidden()).unwrap();
        assert_eq!(from_blob.prototype_scale, 0.5);
        assert!(from_blob.describe().contains("prototype logits × 0.5"));
        for bad in [0.0, -1.0, f32::NAN] {
            cfg.prototype_scale = Some(bad);
            let e = evaluate(&blob, &fam, &cfg, &ProgressBar::hidden()).unwrap_err();
            assert!(e.to_string().contains("--prototype-scale"), "{e}");
        }
    }

    /// On real episodes: head-only rows from `evaluate` equal a per-episode head-only learner,
    /// the transductive row equals predictions with the query batch's statistics, and the
    /// result does not depend on the number of threads.
    #[test]
    fn evaluate_matches_direct_learners_and_is_thread_independent() {
        use crate::data::Split;
        use crate::tasks::OmniglotTasks;
        let data = std::sync::Arc::new(crate::tasks::omniglot::test_data().subset(60).unwrap());
        let fam = OmniglotTasks::new(&data, Split::Paper, 0, 5, 6).unwrap();
        let bytes = blob_bytes(5, 6, 1, DType::F32);
        let blob = SharedBlob::parse(bytes).unwrap();
        let cfg = FewShotConfig {
            prototype_scale: None,
            episodes: 6,
            shots: 2,
            queries: 2,
            steps: 5,
            batch: None,
            lr: Some(0.01),
            seed: 4,
            norm: NormMode::Both,
            adapt: AdaptMode::Both,
            head_init: HeadInit::Meta,
            head_start: HeadStart::Meta,
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| evaluate(&blob, &fam, &cfg, &ProgressBar::hidden()).unwrap())
        };
        let r = run(1);
        assert_eq!(r, run(2));
        assert_eq!(r.rows.len(), 3);
        // By hand.
        let arch = Arch::of(blob.blob());
        let mut sums = [0.0f64; 3];
        for i in 0..6 {
            let e = fam
                .eval_task(&mut tasks::rng(4, Stream::Eval, i), 2, 2)
                .unwrap();
            let s = e.support.samples().unwrap();
            let (qx, qy) = (e.query.input_slice(), e.query.target_slice());
            for (k, mask) in [arch.all_layers(), arch.head_only()]
                .into_iter()
                .enumerate()
            {
                let opts = Options {
                    batch: 4,
                    trainable: mask,
                    lr: 0.01,
                };
                let mut l = OwnedLearner::with_options(&blob, opts).unwrap();
                l.adapt(&s, 5).unwrap();
                let mut out = vec![0.0; 50];
                l.predict(qx, &mut out).unwrap();
                sums[if k == 0 { 0 } else { 2 }] += accuracy(&out, qy, 5);
                if k == 0 {
                    // 10 queries > batch 4: a wide learner with the adapted parameters.
                    let wide = Options { batch: 10, ..opts };
                    let mut t = OwnedLearner::with_options(&blob, wide).unwrap();
                    t.set_params(l.params()).unwrap();
                    t.predict_batch_stats(qx, &mut out).unwrap();
                    sums[1] += accuracy(&out, qy, 5);
                }
            }
        }
        for (k, row) in r.rows.iter().enumerate() {
            assert!(
                (row.accuracy.mean - sums[k] / 6.0).abs() < 1e-12,
                "{row:?} vs {}",
                sums[k] / 6.0
            );
        }
        assert!(r.table_rows().contains("head, meta init"));
    }
}
