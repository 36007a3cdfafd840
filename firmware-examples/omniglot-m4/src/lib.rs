//! Omniglot 5-way 5-shot on a microcontroller, written once for the board and the host tests:
//! the f16 meta-learned initialization stays in flash, the frozen body turns each support image
//! into features once, the head starts from their class prototypes and adapts on the cached
//! features for the blob's recommended steps, then every query image is classified (body +
//! adapted head) and compared with its label and with the host's prediction. Heap-free and `no_std`; the board supplies the clock and the
//! three RAM regions sized by the build script.
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod episode;

use anole::{Blob, Options, SliceSamples};
use board::Clock;
use core::fmt;
use episode::{Episode, EpisodeError, PIXELS};

/// The embedded model (`models/omniglot-5way/init.f16.postcard`, or the blob named by
/// `ANOLE_OMNIGLOT_MODEL` at build time), checked by the build script.
pub static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.postcard"));
/// The embedded episode (`episode.bin`), checked against [`BLOB`] by the build script.
pub static EPISODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/episode.bin"));

include!(concat!(env!("OUT_DIR"), "/sizes.rs"));

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AppError {
    /// The embedded blob does not parse.
    Blob(anole::Error),
    /// The blob cannot be split into body and head.
    Split(anole::Error),
    /// The embedded episode does not parse.
    Episode(EpisodeError),
    /// The episode does not fit the model or the buffers.
    Mismatch(&'static str),
    /// The runtime refused an operation.
    Runtime {
        /// What the firmware was doing.
        doing: &'static str,
        /// The runtime's error.
        error: anole::Error,
    },
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Blob(e) => write!(f, "embedded model blob: {e}"),
            AppError::Split(e) => write!(f, "{e}"),
            AppError::Episode(e) => write!(f, "{e}"),
            AppError::Mismatch(what) => write!(f, "{what}"),
            AppError::Runtime { doing, error } => write!(f, "{doing}: {error}"),
        }
    }
}

fn rt<T>(doing: &'static str, r: anole::Result<T>) -> Result<T, AppError> {
    r.map_err(|error| AppError::Runtime { doing, error })
}

/// Everything the firmware measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// Meta-iterations recorded in the blob.
    pub meta_iterations: u64,
    /// Where the blob says adaptation starts the head: prototypes for a model meta-learned from
    /// that start (`--head-start prototypes`). Head-only adaptation starts from the prototypes
    /// either way.
    pub head_start: anole::HeadStart,
    /// Parameters of the model.
    pub params: usize,
    /// Parameters the head adapts.
    pub head_params: usize,
    /// f32 of the body learner's arena (one image per pass, nothing adapting).
    pub body_arena: usize,
    /// f32 of the head learner's arena.
    pub head_arena: usize,
    /// Values per feature vector.
    pub features: usize,
    /// Classes, support images per class, query images.
    pub ways: usize,
    /// Support images per class.
    pub shots: usize,
    /// Query images.
    pub queries: usize,
    /// Steps taken.
    pub steps: u32,
    /// Minibatch of one step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f32,
    /// Minibatch loss at the first step and at the last (before its update).
    pub support_first: f32,
    /// Minibatch loss at the last step (before its update).
    pub support_last: f32,
    /// Queries classified correctly.
    pub correct: usize,
    /// Queries predicted as the host predicted them.
    pub host_agree: usize,
    /// Counts spent computing the support features (all images).
    pub feature_cost: u64,
    /// Counts spent in the head's adaptation steps.
    pub adapt_cost: u64,
    /// Counts spent classifying all queries (body + head, one image at a time).
    pub predict_cost: u64,
    /// Unit of the costs.
    pub unit: &'static str,
}

impl Report {
    /// Query accuracy in hundredths of a percent.
    pub fn accuracy_bp(&self) -> usize {
        self.correct * 10_000 / self.queries.max(1)
    }
    /// True when the accuracy is above chance (1 / ways).
    pub fn above_chance(&self) -> bool {
        self.correct * self.ways > self.queries
    }
    /// Cost of one head adaptation step (on cached features).
    pub fn per_step(&self) -> u64 {
        self.adapt_cost / u64::from(self.steps.max(1))
    }
    /// Cost of one support image's features (a body forward pass).
    pub fn per_feature(&self) -> u64 {
        self.feature_cost / (self.ways * self.shots).max(1) as u64
    }
    /// Cost of the whole episode: the support features, the head's adaptation and every
    /// query's classification.
    pub fn episode(&self) -> u64 {
        self.feature_cost + self.adapt_cost + self.predict_cost
    }
    /// Cost of classifying one query image (body + head).
    pub fn per_prediction(&self) -> u64 {
        self.predict_cost / self.queries.max(1) as u64
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model: reptile, {} meta-iterations, head start {}, {} parameters in flash (f16), head {} adapted",
            self.meta_iterations,
            self.head_start.name(),
            self.params,
            self.head_params
        )?;
        writeln!(
            f,
            "episode: {}-way {}-shot, {} query images of held-out characters",
            self.ways, self.shots, self.queries
        )?;
        writeln!(
            f,
            "arenas: body {} f32, head {} f32, support features {} x {} f32",
            self.body_arena,
            self.head_arena,
            self.ways * self.shots,
            self.features
        )?;
        writeln!(
            f,
            "adapt: head only, from class prototypes, {} steps at batch {} lr {}, support loss {} -> {}",
            self.steps, self.batch, self.lr, self.support_first, self.support_last
        )?;
        writeln!(f, "correct={}", self.correct)?;
        writeln!(f, "queries={}", self.queries)?;
        writeln!(
            f,
            "accuracy={}.{:02}",
            self.accuracy_bp() / 100,
            self.accuracy_bp() % 100
        )?;
        writeln!(f, "host_agreement={}/{}", self.host_agree, self.queries)?;
        writeln!(f, "cost_unit={}", self.unit)?;
        writeln!(f, "per_feature={}", self.per_feature())?;
        writeln!(f, "per_step={}", self.per_step())?;
        writeln!(f, "adaptation={}", self.feature_cost + self.adapt_cost)?;
        writeln!(f, "episode={}", self.episode())?;
        write!(f, "per_prediction={}", self.per_prediction())
    }
}

/// Runtime calls in frames of their own, so their temporaries do not stay on the stack
/// during the deepest path.
mod frame {
    use anole::{Blob, Learner, Mode, Options, Result, Samples};

    #[inline(never)]
    pub fn load<'b, 'a>(
        blob: &'b Blob<'b>,
        arena: &'a mut [f32],
        opts: Options,
    ) -> Result<Learner<'b, 'a>> {
        // Device layout: the frozen body's weights are read from the blob in flash (f16),
        // never copied, and its activations take turns in two buffers.
        Learner::with_mode(blob, arena, opts, Mode::Device)
    }
    #[inline(never)]
    pub fn adapt(
        learner: &mut Learner<'_, '_>,
        samples: &dyn Samples,
        steps: u32,
    ) -> Result<anole::AdaptReport> {
        learner.adapt(samples, steps)
    }
    #[inline(never)]
    pub fn init_prototypes(learner: &mut Learner<'_, '_>, samples: &dyn Samples) -> Result<()> {
        learner.init_prototypes(samples)
    }
    #[inline(never)]
    pub fn predict(learner: &mut Learner<'_, '_>, x: &[f32], y: &mut [f32]) -> Result<()> {
        learner.predict(x, y)
    }
}

/// Options of the body learner: one image per pass, nothing adapting.
pub fn body_options() -> Options {
    Options {
        batch: 1,
        trainable: 0,
        lr: 0.0,
    }
}

/// The model's two parts, each a [`Blob`] borrowing the embedded bytes. A board keeps them in a
/// static (two parsed blobs are a few KB that would otherwise sit on the stack).
pub struct Parts<'a> {
    /// The frozen body.
    pub body: Blob<'a>,
    /// The head.
    pub head: Blob<'a>,
}

impl Parts<'_> {
    /// Two empty blobs, filled by [`split_model`].
    pub const fn new() -> Self {
        Parts {
            body: Blob::empty(),
            head: Blob::empty(),
        }
    }
}

impl Default for Parts<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Parse `bytes` and split the model into frozen body and head, written into `parts` in place;
/// the parsed whole lives in this frame only and is gone when it returns.
#[inline(never)]
pub fn split_model<'a>(bytes: &'a [u8], parts: &mut Parts<'a>) -> Result<(), AppError> {
    let mut whole = Blob::empty();
    whole.parse_in_place(bytes).map_err(AppError::Blob)?;
    anole::submodel::body_into(&whole, &mut parts.body).map_err(AppError::Split)?;
    anole::submodel::head_into(&whole, &mut parts.head).map_err(AppError::Split)
}

/// Run on the embedded [`BLOB`] and [`EPISODE`] with `parts` to split the model into and
/// three RAM regions of at least [`REGION_A`], [`REGION_B`] and [`HEAD_PARAMS`] f32. Region A
/// holds the body's arena, then the head's while it adapts, then the body's again; region B
/// the cached support features, then the adapted head's arena; the third region keeps the
/// adapted head's parameters in between. So RAM is the largest of what is live at once, not
/// the sum of the three arenas.
pub fn run(
    parts: &mut Parts<'static>,
    region_a: &mut [f32],
    region_b: &mut [f32],
    saved_head: &mut [f32],
    clock: &mut impl Clock,
) -> Result<Report, AppError> {
    let episode = Episode::parse(EPISODE).map_err(AppError::Episode)?;
    split_model(BLOB, parts)?;
    adapt_and_classify(
        &parts.body,
        &parts.head,
        &episode,
        region_a,
        region_b,
        saved_head,
        clock,
    )
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn adapt_and_classify(
    body: &Blob<'_>,
    head: &Blob<'_>,
    episode: &Episode<'_>,
    region_a: &mut [f32],
    region_b: &mut [f32],
    saved_head: &mut [f32],
    clock: &mut impl Clock,
) -> Result<Report, AppError> {
    let f = body.output_len();
    let (ns, nq) = (episode.support_len(), episode.query_len());
    if body.input_len() != PIXELS || head.output_len() != episode.ways {
        return Err(AppError::Mismatch(
            "the episode's images or classes do not fit the model",
        ));
    }
    if region_b.len() < ns * f || ns > MAX_SUPPORT {
        return Err(AppError::Mismatch(
            "the support features do not fit their buffer",
        ));
    }
    let hp = head.param_count();
    if saved_head.len() < hp {
        return Err(AppError::Mismatch(
            "the head's parameters do not fit their buffer",
        ));
    }
    let mut x = [0.0f32; PIXELS];

    // 1. The frozen body (region A): features of every support image, once (region B).
    let (body_arena, feature_cost) = {
        let mut loaded = frame::load(body, region_a, body_options());
        let body_learner = rt("loading the body", loaded.as_mut().map_err(|e| *e))?;
        let t0 = clock.now();
        for (i, out) in region_b[..ns * f].chunks_exact_mut(f).enumerate() {
            episode.support_input(i, &mut x);
            rt("support features", frame::predict(body_learner, &x, out))?;
        }
        (body_learner.plan().arena_len(), clock.now() - t0)
    };

    // 2. The head adapts (region A, free again) on the cached features (region B); its
    // adapted parameters are kept aside.
    let opts = Options::from_blob(head);
    let (head_arena, adapted, adapt_cost) = {
        let mut hloaded = frame::load(head, region_a, opts);
        let head_learner = rt("loading the head", hloaded.as_mut().map_err(|e| *e))?;
        let mut labels = [0.0f32; MAX_SUPPORT];
        for (l, &s) in labels.iter_mut().zip(episode.support_labels) {
            *l = f32::from(s);
        }
        let support = rt(
            "support set",
            SliceSamples::new(&region_b[..ns * f], &labels[..ns], f, 1),
        )?;
        // The head starts as the nearest-prototype classifier of the support features, whatever
        // the blob's head start (`Report::head_start`): the meta-learned head on frozen features
        // is no start for the steps, and a model trained with `--head-start prototypes` was
        // meta-learned for exactly this one. The head's blob carries the setting
        // (`anole::submodel::head_into`); its learner's `start_head` would do the same here.
        rt(
            "prototype head",
            frame::init_prototypes(head_learner, &support),
        )?;
        let t0 = clock.now();
        let adapted = rt(
            "adapting the head",
            frame::adapt(head_learner, &support, head.settings().steps),
        )?;
        let cost = clock.now() - t0;
        saved_head[..hp].copy_from_slice(head_learner.params());
        (head_learner.plan().arena_len(), adapted, cost)
    };

    // 3. Each query on its own: the body (region A), then the adapted head (region B: the
    // support features are no longer needed).
    let mut loaded = frame::load(body, region_a, body_options());
    let body_learner = rt("loading the body", loaded.as_mut().map_err(|e| *e))?;
    let mut hloaded = frame::load(head, region_b, opts);
    let head_learner = rt("loading the head", hloaded.as_mut().map_err(|e| *e))?;
    rt(
        "restoring the adapted head",
        head_learner.set_params(&saved_head[..hp]),
    )?;
    let (mut correct, mut host_agree, mut predict_cost) = (0, 0, 0);
    let mut feat = [0.0f32; MAX_FEATURES];
    let mut logits = [0.0f32; MAX_WAYS];
    let (feat, logits) = (&mut feat[..f], &mut logits[..episode.ways]);
    for i in 0..nq {
        episode.query_input(i, &mut x);
        let t = clock.now();
        rt("query features", frame::predict(body_learner, &x, feat))?;
        rt(
            "classifying a query",
            frame::predict(head_learner, feat, logits),
        )?;
        let class = anole::loss::argmax(logits);
        predict_cost += clock.now() - t;
        correct += usize::from(class == usize::from(episode.query_labels[i]));
        host_agree += usize::from(class == usize::from(episode.host_predictions[i]));
    }

    Ok(Report {
        meta_iterations: head.provenance().meta_iterations,
        head_start: head.head_start,
        params: body.param_count() + head.param_count(),
        head_params: head.param_count(),
        body_arena,
        head_arena,
        features: f,
        ways: episode.ways,
        shots: episode.shots,
        queries: nq,
        steps: adapted.steps,
        batch: opts.batch,
        lr: opts.lr,
        support_first: adapted.first_loss,
        support_last: adapted.last_loss,
        correct,
        host_agree,
        feature_cost,
        adapt_cost,
        predict_cost,
        unit: clock.unit(),
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use board::CallCount;
    use std::vec;

    #[test]
    fn the_episode_is_classified_above_chance_as_the_trainer_does() {
        let (mut b, mut h, mut f) = (
            vec![0.0; REGION_A],
            vec![0.0; REGION_B],
            vec![0.0; HEAD_PARAMS],
        );
        let mut parts = Parts::new();
        let r = run(&mut parts, &mut b, &mut h, &mut f, &mut CallCount(0)).unwrap();
        assert!(r.above_chance(), "{r}");
        assert_eq!(r.host_agree, r.queries, "{r}");
        assert_eq!((r.ways, r.shots, r.queries), (5, 5, 75));
        assert_eq!((r.body_arena, r.head_arena), (BODY_ARENA, HEAD_ARENA));
        assert_eq!(r.steps, Blob::parse(BLOB).unwrap().settings().steps);
    }

    #[test]
    fn the_split_keeps_every_tensor_and_only_the_head_adapts() {
        let blob = Blob::parse(BLOB).unwrap();
        let mut parts = Parts::new();
        split_model(BLOB, &mut parts).unwrap();
        let (body, head) = (&parts.body, &parts.head);
        assert_eq!(body.param_count() + head.param_count(), blob.param_count());
        assert_eq!(body.output_len(), head.input_len());
        assert_eq!(head.output_len(), blob.output_len());
        assert_eq!(body.settings().trainable, 0);
        assert_eq!(head.settings().trainable, 1);
        // Borrowed, not copied: the head's weights are the source's bytes.
        let last = blob.wire.tensors.len() - 2;
        assert_eq!(
            head.wire.tensors[0].data.as_ptr(),
            blob.wire.tensors[last].data.as_ptr()
        );
    }

    #[test]
    fn a_small_arena_is_refused() {
        let (mut b, mut h, mut f) = (
            vec![0.0; HEAD_ARENA - 1],
            vec![0.0; REGION_B],
            vec![0.0; HEAD_PARAMS],
        );
        assert!(matches!(
            run(&mut Parts::new(), &mut b, &mut h, &mut f, &mut CallCount(0)),
            Err(AppError::Runtime {
                error: anole::Error::ArenaTooSmall { .. },
                ..
            })
        ));
    }

    #[test]
    fn bad_episodes_are_refused() {
        assert!(matches!(
            Episode::parse(&EPISODE[..100]),
            Err(EpisodeError::Truncated { .. })
        ));
        let mut e = EPISODE.to_vec();
        e[0] = b'X';
        assert_eq!(Episode::parse(&e).unwrap_err(), EpisodeError::BadHeader);
        let mut e = EPISODE.to_vec();
        e[8] = 32;
        assert_eq!(
            Episode::parse(&e).unwrap_err(),
            EpisodeError::BadSide { side: 32 }
        );
        let mut e = EPISODE.to_vec();
        e[16] = 5;
        assert_eq!(
            Episode::parse(&e).unwrap_err(),
            EpisodeError::BadLabel { offset: 16 }
        );
    }
}
