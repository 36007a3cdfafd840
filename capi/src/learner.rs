//! Learner handles: a model loaded into the caller's arena, adapted with SGD steps on
//! samples (a sample buffer or plain arrays), predicting, classifying, measuring the loss,
//! initialising a classifier head from prototypes, exported, reset.

use crate::args::{self, Array, Span, Spans};
use crate::blob::{BlobKind, BlobValue};
use crate::failure::What;
use crate::handle::{self, kind, Slot};
use crate::samples::{AnoleSamples, SamplesKind};
use crate::status::AnoleStatus;
use anole::{Blob, Learner, Samples, SliceSamples};
use core::ffi::c_void;

/// A learner (opaque): a blob's model in an arena of the caller's floats. Lives in
/// `ANOLE_LEARNER_SIZE` bytes of the caller's memory aligned to `ANOLE_HANDLE_ALIGN`; uses its
/// blob handle and its arena until `anole_learner_release`.
pub struct AnoleLearner {
    _opaque: [u8; 0],
}

/// Bytes of memory a learner handle needs (`anole_learner_init`), in a library built with
/// `extra-layers` (the default; see `ANOLE_BLOB_SIZE`).
#[cfg(all(target_pointer_width = "64", feature = "extra-layers"))]
pub const ANOLE_LEARNER_SIZE: usize = 384;
/// Bytes of memory a learner handle needs (`anole_learner_init`).
#[cfg(all(target_pointer_width = "64", not(feature = "extra-layers")))]
pub const ANOLE_LEARNER_SIZE: usize = 320;
/// Bytes of memory a learner handle needs (`anole_learner_init`), with or without
/// `extra-layers`.
#[cfg(target_pointer_width = "32")]
pub const ANOLE_LEARNER_SIZE: usize = 192;

/// Arena layout of `anole_learner_options.mode`: every parameter in the arena and a gradient
/// buffer; a failed step rolls back exactly. The host's layout.
pub const ANOLE_MODE_BUFFERED: u32 = 0;
/// Arena layout of `anole_learner_options.mode`: the smallest arena, the microcontroller's.
/// With SGD dense updates are fused into the backward pass and frozen layers are read from
/// the blob where it is (flash).
pub const ANOLE_MODE_DEVICE: u32 = 1;

/// How a learner is set up. `anole_learner_options_default` gives the blob's recommendation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnoleLearnerOptions {
    /// `ANOLE_MODE_BUFFERED` or `ANOLE_MODE_DEVICE`.
    pub mode: u32,
    /// Trainable layers: bit i set, layer i adapts (layers without parameters ignore theirs).
    /// 64 bits since the library read 64 layers; a library built without `extra-layers` holds
    /// 32 and refuses a mask naming layer 32 or above.
    pub trainable: u64,
    /// Most samples per step (one SGD minibatch); the arena grows with it.
    pub batch: usize,
    /// Learning rate of `anole_learner_adapt` (finite, >= 0).
    pub lr: f32,
}

/// What `anole_learner_adapt` did.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AnoleAdaptReport {
    /// Steps taken.
    pub steps: u32,
    /// Minibatch loss at the first step, before its update (NaN without steps).
    pub first_loss: f32,
    /// Minibatch loss at the last step, before its update (NaN without steps).
    pub last_loss: f32,
}

/// A learner's set-up and costs (`anole_learner_get_info`). The bytes an export writes are
/// not among them: `anole_learner_export_len` computes them (it lays out the whole blob,
/// kilobytes of stack on a device).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AnoleLearnerInfo {
    /// The options in force (the learning rate as last set).
    pub options: AnoleLearnerOptions,
    /// Optimizer steps since the last reset.
    pub steps_taken: u32,
    /// Floats of the arena the learner uses (the start of the arena given).
    pub arena_used: usize,
    /// Floats of parameters held in the arena (in device mode, frozen layers stay in the
    /// blob).
    pub params_in_arena: usize,
    /// Multiply-accumulates of one sample's forward pass.
    pub forward_macs: usize,
    /// Multiply-accumulates of one sample in one step: the forward pass, the weight
    /// gradients of adapting layers and the input gradients behind them (a step costs this
    /// times its minibatch).
    pub step_macs: usize,
}

impl Default for AnoleLearnerOptions {
    fn default() -> Self {
        AnoleLearnerOptions {
            mode: ANOLE_MODE_BUFFERED,
            trainable: 0,
            batch: 0,
            lr: 0.0,
        }
    }
}

/// What a learner handle holds.
pub(crate) struct LearnerValue {
    pub learner: Learner<'static, 'static>,
    /// The blob handle the learner was created on (its user count includes this learner).
    pub blob: *mut Slot<BlobValue>,
    /// The arena given.
    pub arena: Span,
}

kind!(
    LearnerKind,
    AnoleLearner,
    LearnerValue,
    b"anLR",
    "learner",
    "learner",
    ANOLE_LEARNER_SIZE
);

/// Options from C.
pub(crate) mod options {
    use super::*;
    use anole::{Mode, Options};

    /// The options `p` points to, or the blob's recommendation (buffered) for NULL.
    ///
    /// # Safety
    /// `p` is NULL or points to a readable `anole_learner_options` (aligned: checked here).
    pub unsafe fn read(
        blob: &Blob<'_>,
        p: *const AnoleLearnerOptions,
    ) -> Result<(Options, Mode), What> {
        if p.is_null() {
            return Ok((Options::from_blob(blob), Mode::Buffered));
        }
        if (p as usize) % core::mem::align_of::<AnoleLearnerOptions>() != 0 {
            return Err(What::Misaligned {
                arg: "options",
                align: core::mem::align_of::<AnoleLearnerOptions>(),
            });
        }
        // SAFETY: non-NULL, aligned, readable by the caller's contract; every bit pattern
        // of the integer and float fields is a value.
        let o = unsafe { p.read() };
        let mode = match o.mode {
            ANOLE_MODE_BUFFERED => Mode::Buffered,
            ANOLE_MODE_DEVICE => Mode::Device,
            _ => {
                return Err(What::Invalid {
                    arg: "options.mode",
                    why: "neither ANOLE_MODE_BUFFERED nor ANOLE_MODE_DEVICE",
                })
            }
        };
        let trainable = anole::limits::layer_mask(o.trainable).ok_or(What::Invalid {
            arg: "options.trainable",
            why: "names a layer from 32 on, more than this library (built without extra-layers) holds",
        })?;
        Ok((
            Options {
                batch: o.batch,
                trainable,
                lr: o.lr,
            },
            mode,
        ))
    }
}

/// Runtime calls in frames of their own, as the Rust firmware makes them (`app-sine`'s
/// `frame`): samples as `&dyn Samples`, each call an out-of-line function. The compiler then
/// lays the runtime's code out as it does for the Rust firmware (the same instruction counts
/// on a device), and each call's temporaries come and go with its own frame rather than
/// staying in the entry point's during the deepest path (a training step).
mod frame {
    use anole::{AdaptReport, Learner, Result, Samples};

    /// The steps, after the start of the head the blob records on a learner that has taken
    /// no step since its parameters were set (`Learner::start_and_adapt`).
    #[inline(never)]
    pub fn adapt(l: &mut Learner<'_, '_>, s: &dyn Samples, steps: u32) -> Result<AdaptReport> {
        l.start_and_adapt(s, steps)
    }
    #[inline(never)]
    pub fn start_head(l: &mut Learner<'_, '_>, s: &dyn Samples) -> Result<()> {
        l.start_head(s)
    }
    #[inline(never)]
    pub fn loss(l: &mut Learner<'_, '_>, s: &dyn Samples) -> Result<f32> {
        l.loss(s)
    }
    /// One sample (`x` and `y` of the model's input and output lengths) through the
    /// runtime's per-sample path, several through its batched one: the same outputs.
    #[inline(never)]
    pub fn predict(l: &mut Learner<'_, '_>, x: &[f32], y: &mut [f32]) -> Result<()> {
        let b = l.blob();
        if x.len() == b.input_len() && y.len() == b.output_len() {
            l.predict_one(x, y)
        } else {
            l.predict(x, y)
        }
    }
    #[inline(never)]
    pub fn step(l: &mut Learner<'_, '_>, x: &[f32], t: &[f32], lr: f32) -> Result<f32> {
        l.step(x, t, lr)
    }
    #[inline(never)]
    pub fn init_prototypes(l: &mut Learner<'_, '_>, s: &dyn Samples) -> Result<()> {
        l.init_prototypes(s)
    }
}

/// The regions every learner call works on: the handle and arena (written), its blob handle
/// and bytes (read). Disjoint since the learner was created (checked then).
fn own_regions(s: *mut Slot<LearnerValue>, v: &LearnerValue) -> [Span; 4] {
    // SAFETY: the blob is checked live by `with_value` before this is called.
    let bytes = unsafe { (*Slot::value(v.blob)).bytes };
    [
        handle::region::<LearnerKind>(s, true),
        v.arena.written(),
        handle::region::<BlobKind>(v.blob, false),
        bytes.read(),
    ]
}

/// [`own_regions`] as the first, trusted regions of a call.
fn context(s: *mut Slot<LearnerValue>, v: &LearnerValue) -> Spans {
    let mut spans = Spans::new();
    for r in own_regions(s, v) {
        spans.add(r);
    }
    spans.trust();
    spans
}

/// Run `f` on the live learner `p`, whose blob must be live too; a failure is recorded in
/// the learner.
///
/// # Safety
/// `p` follows the handle contract; `f` upholds the safety of what it does.
#[inline(always)]
unsafe fn with_value(
    p: *mut AnoleLearner,
    func: &'static str,
    f: impl FnOnce(*mut Slot<LearnerValue>, &mut LearnerValue) -> Result<(), What>,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<LearnerKind>(p, func, |s| {
            // SAFETY: `s` is live, and marked busy: no other reference to its value exists.
            let v = &mut *Slot::value(s);
            // SAFETY: a live learner's blob pointer came from a live blob; its memory stays
            // the caller's to keep (the handle contract).
            if !Slot::is_live::<BlobKind>(v.blob) {
                return Err(What::NotAHandle {
                    arg: "the learner's blob",
                });
            }
            f(s, v)
        })
    }
}

/// [`with_value`] with the call's regions so far ([`context`]).
///
/// # Safety
/// As [`with_value`].
unsafe fn with(
    p: *mut AnoleLearner,
    func: &'static str,
    f: impl FnOnce(&mut LearnerValue, Spans) -> Result<(), What>,
) -> AnoleStatus {
    // SAFETY: passed on.
    unsafe {
        with_value(p, func, |s, v| {
            let spans = context(s, v);
            f(v, spans)
        })
    }
}

/// Checked input arrays of `n` samples: inputs and targets.
fn sample_arrays(
    spans: &mut Spans,
    inputs: *const f32,
    inputs_len: usize,
    targets: *const f32,
    targets_len: usize,
) -> Result<(Array<f32>, Array<f32>), What> {
    let x = args::array(inputs, inputs_len, "inputs")?;
    let t = args::array(targets, targets_len, "targets")?;
    spans.array(&x, "inputs", false).array(&t, "targets", false);
    Ok((x, t))
}

/// A live sample buffer handle for reading, with its regions added to `spans`.
///
/// # Safety
/// `p` follows the handle contract.
unsafe fn samples<'a>(
    p: *const AnoleSamples,
    spans: &mut Spans,
) -> Result<&'a crate::samples::SamplesValue, What> {
    // SAFETY: the handle contract.
    let s = unsafe { handle::live::<SamplesKind>(p, "samples")? };
    spans.add(handle::region::<SamplesKind>(s, false));
    // SAFETY: live: the value is initialised; only shared references are made during the
    // call (the buffer is not busy, and it is not this call's subject).
    let v = unsafe { &*Slot::value(s) };
    spans.add(v.storage_span());
    Ok(v)
}

/// Write an adapt report if asked for.
///
/// # Safety
/// `report` is NULL or was checked with `args::out` against the call's regions.
unsafe fn report(report: *mut AnoleAdaptReport, r: anole::AdaptReport) {
    if !report.is_null() {
        // SAFETY: checked by the caller.
        unsafe {
            args::put(
                report,
                AnoleAdaptReport {
                    steps: r.steps,
                    first_loss: r.first_loss,
                    last_loss: r.last_loss,
                },
            )
        }
    }
}

/// Fill `*options` with the blob's recommended set-up: its batch, trainable layers and
/// learning rate, in `ANOLE_MODE_BUFFERED` (set `mode` to `ANOLE_MODE_DEVICE` on a
/// microcontroller).
///
/// # Safety
/// `blob` follows the handle contract; `options` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_options_default(
    blob: *mut crate::blob::AnoleBlob,
    options: *mut AnoleLearnerOptions,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::query::<BlobKind, _>(
            blob,
            "anole_learner_options_default",
            options,
            "options",
            None,
            |v| {
                let o = anole::Options::from_blob(&v.blob);
                Ok(AnoleLearnerOptions {
                    mode: ANOLE_MODE_BUFFERED,
                    trainable: anole::limits::mask_to_u64(o.trainable),
                    batch: o.batch,
                    lr: o.lr,
                })
            },
        )
    }
}

/// Create a learner of `blob` in `mem` (`ANOLE_LEARNER_SIZE` bytes aligned to
/// `ANOLE_HANDLE_ALIGN`) with the arena `arena` (`arena_len` floats, at least
/// `anole_arena_len` for these options) and `options` (NULL: the blob's recommendation,
/// buffered); `*out` becomes the handle, or NULL on failure. The learner starts at the blob's
/// meta-initialisation. The blob cannot be released while the learner lives; the arena is
/// the learner's until `anole_learner_release`.
///
/// # Safety
/// `mem`: NULL or `mem_len` writable bytes; `blob`: the handle contract; `arena`: NULL or
/// `arena_len` writable floats; `options`: NULL or readable; `out`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_init(
    mem: *mut c_void,
    mem_len: usize,
    blob: *mut crate::blob::AnoleBlob,
    arena: *mut f32,
    arena_len: usize,
    options: *const AnoleLearnerOptions,
    out: *mut *mut AnoleLearner,
) -> AnoleStatus {
    let init = |s: *mut Slot<LearnerValue>| -> Result<(), What> {
        // SAFETY: the handle contract.
        let bs = unsafe { handle::live::<BlobKind>(blob, "blob")? };
        let a = args::array(arena.cast_const(), arena_len, "arena")?;
        // SAFETY: live blob: its value is initialised; shared access only.
        let bv: &'static BlobValue = unsafe { &*Slot::value(bs) };
        let mut spans = Spans::new();
        spans
            .add(Span::new(
                mem as usize,
                mem_len,
                "the learner's memory",
                true,
            ))
            .array(&a, "arena", true)
            .add(handle::region::<BlobKind>(bs, false))
            .add(bv.bytes);
        if !options.is_null() {
            spans.add(Span::one(options, "options", false));
        }
        spans.check()?;
        // SAFETY: `options` is NULL or readable (contract); alignment is checked inside.
        let (opts, mode) = unsafe { options::read(&bv.blob, options)? };
        let arena_span = Span::new(
            arena as usize,
            arena_len * core::mem::size_of::<f32>(),
            "the learner's arena",
            true,
        );
        // SAFETY: checked, and disjoint from every other region; the arena is the learner's
        // until it is released (the C contract).
        let arena: &'static mut [f32] = unsafe { a.get_mut() };
        let learner = Learner::with_mode(&bv.blob, arena, opts, mode)?;
        // SAFETY: `s` was claimed: its value is writable; the blob is live, so its user count
        // may be raised (this learner lowers it when released).
        unsafe {
            Slot::value(s).write(LearnerValue {
                learner,
                blob: bs,
                arena: arena_span,
            });
            *Slot::users(bs) += 1;
        }
        Ok(())
    };
    // SAFETY: the caller's contract on `mem` and `out`; `init` checks its own arguments.
    unsafe { handle::create::<LearnerKind>(mem, mem_len, out, "anole_learner_init", init) }
}

/// Release the learner: its memory and arena are the caller's again, and its blob has one
/// user less.
///
/// # Safety
/// `learner` follows the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_release(learner: *mut AnoleLearner) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<LearnerKind>(learner, "anole_learner_release", |s| {
            // SAFETY: `s` is live and busy.
            let blob = (*Slot::value(s)).blob;
            // SAFETY: the blob pointer came from a live blob; if it still is one, it counts
            // this learner among its users.
            if Slot::is_live::<BlobKind>(blob) {
                let users = Slot::users(blob);
                *users = (*users).saturating_sub(1);
            }
            Slot::release(s);
            Ok(())
        })
    }
}

/// Back to the blob's meta-initialisation: parameters as stored, no steps taken.
///
/// # Safety
/// `learner` follows the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_reset(learner: *mut AnoleLearner) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_reset", |v, _| {
            v.learner.reset();
            Ok(())
        })
    }
}

/// Set the learning rate of `anole_learner_adapt` (finite, >= 0).
///
/// # Safety
/// `learner` follows the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_set_lr(learner: *mut AnoleLearner, lr: f32) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_set_lr", |v, _| {
            Ok(v.learner.set_lr(lr)?)
        })
    }
}

/// Fill `*info` with the learner's options, steps taken, arena use and costs.
///
/// # Safety
/// `learner` follows the handle contract; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_get_info(
    learner: *mut AnoleLearner,
    info: *mut AnoleLearnerInfo,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_get_info", |v, mut spans| {
            let out = args::required_out(info, "info", &mut spans)?;
            spans.check()?;
            let l = &v.learner;
            let o = l.options();
            let plan = l.plan();
            let (mut forward, mut step) = (0usize, 0usize);
            for node in plan.nodes(l.blob()) {
                let m = node.layer.macs(node.input);
                forward += m;
                step += m * (1 + usize::from(node.adapts) + usize::from(node.input_grad));
            }
            // SAFETY: checked against the call's regions.
            args::put(
                out,
                AnoleLearnerInfo {
                    options: AnoleLearnerOptions {
                        mode: match plan.mode {
                            anole::Mode::Buffered => ANOLE_MODE_BUFFERED,
                            anole::Mode::Device => ANOLE_MODE_DEVICE,
                        },
                        trainable: anole::limits::mask_to_u64(plan.trainable),
                        batch: plan.batch,
                        lr: o.lr,
                    },
                    steps_taken: l.steps_taken(),
                    arena_used: plan.arena_len(),
                    params_in_arena: plan.params_len,
                    forward_macs: forward,
                    step_macs: step,
                },
            );
            Ok(())
        })
    }
}

/// Adapt on the samples in `samples` for `steps` steps at the learner's learning rate. Step s
/// uses the minibatch of min(batch, count) samples starting at s x minibatch (cyclically,
/// oldest sample first). `report` (NULL: not wanted) gets the steps and losses. On a failed
/// step the learner keeps the parameters of the last good one and still predicts.
///
/// A learner that has taken no step since its parameters were set (`anole_learner_init`,
/// `anole_learner_reset`, `anole_learner_load_params`, `anole_learner_init_prototypes`)
/// first starts its head as the blob says (`anole_learner_start_head`: from the class
/// prototypes of `samples` for a blob whose `head_start` is `ANOLE_HEAD_START_PROTOTYPES`);
/// later calls continue from the current parameters.
///
/// # Safety
/// `learner` and `samples` follow the handle contract; `report` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_adapt(
    learner: *mut AnoleLearner,
    samples: *const AnoleSamples,
    steps: u32,
    report: *mut AnoleAdaptReport,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with_value(learner, "anole_learner_adapt", |ls, v| {
            let ss = handle::live::<SamplesKind>(samples, "samples")?;
            // SAFETY: live: the value is initialised; only shared references are made during
            // the call (the buffer is not busy, and it is not this call's subject).
            let s = &*Slot::value(ss);
            if !report.is_null() {
                args::out(report, "report")?;
            }
            // The fixed-size check, as for predict: no list of regions in the frame the
            // training steps run under.
            let own = &*v;
            args::check_regions(move || {
                (
                    own_regions(ls, own),
                    [
                        handle::region::<SamplesKind>(ss, false),
                        s.storage_span(),
                        Span::out(report, "report"),
                    ],
                )
            })?;
            let done = frame::adapt(&mut v.learner, s, steps)?;
            self::report(report, done);
            Ok(())
        })
    }
}

/// `anole_learner_adapt` on samples given as arrays: `inputs` holds n x input_len floats,
/// `targets` n x target_len (`anole_blob_info`), sample after sample.
///
/// # Safety
/// `learner` follows the handle contract; `inputs`/`targets` are NULL or hold their lengths
/// in floats; `report` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_adapt_arrays(
    learner: *mut AnoleLearner,
    inputs: *const f32,
    inputs_len: usize,
    targets: *const f32,
    targets_len: usize,
    steps: u32,
    report: *mut AnoleAdaptReport,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_adapt_arrays", |v, mut spans| {
            let (x, t) = sample_arrays(&mut spans, inputs, inputs_len, targets, targets_len)?;
            let r = args::optional_out(report, "report", &mut spans)?;
            spans.check()?;
            let b = v.learner.blob();
            let s = SliceSamples::new(x.get(), t.get(), b.input_len(), b.target_len())?;
            let done = frame::adapt(&mut v.learner, &s, steps)?;
            self::report(r, done);
            Ok(())
        })
    }
}

/// One optimizer step at learning rate `lr` on one minibatch (n <= batch samples as arrays,
/// as for `anole_learner_adapt_arrays`); `*loss` (NULL: not wanted) gets the loss before
/// the update.
///
/// # Safety
/// As `anole_learner_adapt_arrays`; `loss` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_step(
    learner: *mut AnoleLearner,
    inputs: *const f32,
    inputs_len: usize,
    targets: *const f32,
    targets_len: usize,
    lr: f32,
    loss: *mut f32,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with_value(learner, "anole_learner_step", |s, v| {
            let x = args::array(inputs, inputs_len, "inputs")?;
            let t = args::array(targets, targets_len, "targets")?;
            if !loss.is_null() {
                args::out(loss, "loss")?;
            }
            // A per-sample path: the fixed-size check.
            let own = &*v;
            args::check_regions(move || {
                (
                    own_regions(s, own),
                    [
                        x.span("inputs", false),
                        t.span("targets", false),
                        Span::out(loss, "loss"),
                    ],
                )
            })?;
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(What::Invalid {
                    arg: "lr",
                    why: "the learning rate must be finite and >= 0",
                });
            }
            let l = frame::step(&mut v.learner, x.get(), t.get(), lr)?;
            if !loss.is_null() {
                args::put(loss, l);
            }
            Ok(())
        })
    }
}

/// Predict: `inputs` holds n x input_len floats, `outputs` receives n x output_len
/// (`outputs_len` must be exactly that). Each sample is predicted on its own (stored
/// normalisation statistics).
///
/// # Safety
/// `learner` follows the handle contract; `inputs` is NULL or holds `inputs_len` floats;
/// `outputs` is NULL or has room for `outputs_len` floats.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_predict(
    learner: *mut AnoleLearner,
    inputs: *const f32,
    inputs_len: usize,
    outputs: *mut f32,
    outputs_len: usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with_value(learner, "anole_learner_predict", |s, v| {
            let x = args::array(inputs, inputs_len, "inputs")?;
            let y = args::array(outputs.cast_const(), outputs_len, "outputs")?;
            // The per-sample path: the fixed-size check (the same regions as `context` and
            // then the arrays).
            let own = &*v;
            args::check_regions(move || {
                (
                    own_regions(s, own),
                    [x.span("inputs", false), y.span("outputs", true)],
                )
            })?;
            Ok(frame::predict(&mut v.learner, x.get(), y.get_mut())?)
        })
    }
}

/// The predicted class (index of the largest output) of one input (`input_len` =
/// input_len floats), into `*class_index`.
///
/// # Safety
/// `learner` follows the handle contract; `input` is NULL or holds `input_len` floats;
/// `class_index` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_classify(
    learner: *mut AnoleLearner,
    input: *const f32,
    input_len: usize,
    class_index: *mut usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with_value(learner, "anole_learner_classify", |s, v| {
            let x = args::array(input, input_len, "input")?;
            let out = args::out(class_index, "class_index")?;
            // A per-sample path: the fixed-size check.
            let own = &*v;
            args::check_regions(move || {
                (
                    own_regions(s, own),
                    [x.span("input", false), Span::out(out, "class_index")],
                )
            })?;
            let b = v.learner.blob();
            if x.len() != b.input_len() {
                return Err(anole::Error::SampleLength {
                    sample: 0,
                    expected: b.input_len(),
                    found: x.len(),
                }
                .into());
            }
            let c = v.learner.classify(x.get())?;
            args::put(out, c);
            Ok(())
        })
    }
}

/// Mean loss over the samples in `samples` (no update), into `*loss`.
///
/// # Safety
/// `learner` and `samples` follow the handle contract; `loss` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_loss(
    learner: *mut AnoleLearner,
    samples: *const AnoleSamples,
    loss: *mut f32,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_loss", |v, mut spans| {
            let s = self::samples(samples, &mut spans)?;
            let out = args::required_out(loss, "loss", &mut spans)?;
            spans.check()?;
            let l = frame::loss(&mut v.learner, s)?;
            args::put(out, l);
            Ok(())
        })
    }
}

/// `anole_learner_loss` on samples given as arrays (as for `anole_learner_adapt_arrays`).
///
/// # Safety
/// As `anole_learner_adapt_arrays`; `loss` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_loss_arrays(
    learner: *mut AnoleLearner,
    inputs: *const f32,
    inputs_len: usize,
    targets: *const f32,
    targets_len: usize,
    loss: *mut f32,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_loss_arrays", |v, mut spans| {
            let (x, t) = sample_arrays(&mut spans, inputs, inputs_len, targets, targets_len)?;
            let out = args::required_out(loss, "loss", &mut spans)?;
            spans.check()?;
            let b = v.learner.blob();
            let s = SliceSamples::new(x.get(), t.get(), b.input_len(), b.target_len())?;
            let l = frame::loss(&mut v.learner, &s)?;
            args::put(out, l);
            Ok(())
        })
    }
}

/// A call that starts the head from samples (`frame::init_prototypes`, `frame::start_head`).
type HeadCall = fn(&mut Learner<'_, '_>, &dyn Samples) -> anole::Result<()>;

/// `f` on the samples of a samples handle, as `func`.
///
/// # Safety
/// `learner` and `samples` follow the handle contract.
unsafe fn head_call(
    learner: *mut AnoleLearner,
    samples: *const AnoleSamples,
    func: &'static str,
    f: HeadCall,
) -> AnoleStatus {
    // SAFETY: the caller's contract.
    unsafe {
        with(learner, func, |v, mut spans| {
            let s = self::samples(samples, &mut spans)?;
            spans.check()?;
            Ok(f(&mut v.learner, s)?)
        })
    }
}

/// `f` on samples given as arrays, as `func`.
///
/// # Safety
/// As `anole_learner_adapt_arrays`.
unsafe fn head_call_arrays(
    learner: *mut AnoleLearner,
    (inputs, inputs_len): (*const f32, usize),
    (targets, targets_len): (*const f32, usize),
    func: &'static str,
    f: HeadCall,
) -> AnoleStatus {
    // SAFETY: the caller's contract.
    unsafe {
        with(learner, func, |v, mut spans| {
            let (x, t) = sample_arrays(&mut spans, inputs, inputs_len, targets, targets_len)?;
            spans.check()?;
            let b = v.learner.blob();
            let s = SliceSamples::new(x.get(), t.get(), b.input_len(), b.target_len())?;
            Ok(f(&mut v.learner, &s)?)
        })
    }
}

/// Start a classifier head from class prototypes: the model's first layer, a dense layer
/// with one output per class under cross-entropy, becomes the nearest-class-mean classifier
/// of the samples in `samples` (inputs: feature vectors; targets: class indices, every class
/// at least once). Then `anole_learner_adapt` fine-tunes it.
///
/// # Safety
/// `learner` and `samples` follow the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_init_prototypes(
    learner: *mut AnoleLearner,
    samples: *const AnoleSamples,
) -> AnoleStatus {
    // SAFETY: the handle contract, passed on.
    unsafe {
        head_call(
            learner,
            samples,
            "anole_learner_init_prototypes",
            frame::init_prototypes,
        )
    }
}

/// `anole_learner_init_prototypes` on samples given as arrays (as for
/// `anole_learner_adapt_arrays`).
///
/// # Safety
/// As `anole_learner_adapt_arrays`.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_init_prototypes_arrays(
    learner: *mut AnoleLearner,
    inputs: *const f32,
    inputs_len: usize,
    targets: *const f32,
    targets_len: usize,
) -> AnoleStatus {
    // SAFETY: the handle contract, passed on.
    unsafe {
        head_call_arrays(
            learner,
            (inputs, inputs_len),
            (targets, targets_len),
            "anole_learner_init_prototypes_arrays",
            frame::init_prototypes,
        )
    }
}

/// Start the head as the blob says (`anole_blob_info.head_start`) on the support set
/// `samples`: for `ANOLE_HEAD_START_PROTOTYPES`, the model's last layer (a dense layer with one
/// output per class under cross-entropy, adapting) becomes the nearest-prototype classifier of
/// the features the samples give at its input (norm layers that adapt use the samples'
/// statistics), and the optimizer state is cleared; for `ANOLE_HEAD_START_META`, nothing
/// changes. `anole_learner_adapt` does this itself on a learner that has taken no step since
/// its parameters were set; call it before `anole_learner_step` loops. On failure the
/// parameters are unchanged.
///
/// # Safety
/// `learner` and `samples` follow the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_start_head(
    learner: *mut AnoleLearner,
    samples: *const AnoleSamples,
) -> AnoleStatus {
    // SAFETY: the handle contract, passed on.
    unsafe {
        head_call(
            learner,
            samples,
            "anole_learner_start_head",
            frame::start_head,
        )
    }
}

/// `anole_learner_start_head` on samples given as arrays (as for
/// `anole_learner_adapt_arrays`).
///
/// # Safety
/// As `anole_learner_adapt_arrays`.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_start_head_arrays(
    learner: *mut AnoleLearner,
    inputs: *const f32,
    inputs_len: usize,
    targets: *const f32,
    targets_len: usize,
) -> AnoleStatus {
    // SAFETY: the handle contract, passed on.
    unsafe {
        head_call_arrays(
            learner,
            (inputs, inputs_len),
            (targets, targets_len),
            "anole_learner_start_head_arrays",
            frame::start_head,
        )
    }
}

/// Bytes `anole_learner_export` writes, into `*len`.
///
/// # Safety
/// `learner` follows the handle contract; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_export_len(
    learner: *mut AnoleLearner,
    len: *mut usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_export_len", |v, mut spans| {
            let out = args::required_out(len, "len", &mut spans)?;
            spans.check()?;
            args::put(out, v.learner.export_len());
            Ok(())
        })
    }
}

/// Write the current (adapted) parameters as a blob into `out` (room for `out_len` bytes,
/// at least `anole_learner_export_len`); `*written` gets the bytes written. The blob has the
/// architecture, dtypes, settings and provenance of the learner's blob; unadapted, it is the
/// same bytes. `anole_blob_parse` reads it back, `anole_learner_load_params` loads it.
///
/// # Safety
/// `learner` follows the handle contract; `out` is NULL or has room for `out_len` bytes;
/// `written` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_export(
    learner: *mut AnoleLearner,
    out: *mut u8,
    out_len: usize,
    written: *mut usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_export", |v, mut spans| {
            let o = args::array(out.cast_const(), out_len, "out")?;
            spans.array(&o, "out", true);
            let w = args::required_out(written, "written", &mut spans)?;
            spans.check()?;
            let n = v.learner.export(o.get_mut())?.len();
            args::put(w, n);
            Ok(())
        })
    }
}

/// Load the parameters of `adapted`, a blob of the same architecture as the learner's (such
/// as one `anole_learner_export` wrote and the device kept), into the learner; steps taken
/// restart at 0. A blob of another architecture is refused and nothing changes.
///
/// # Safety
/// `learner` and `adapted` follow the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_learner_load_params(
    learner: *mut AnoleLearner,
    adapted: *mut crate::blob::AnoleBlob,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        with(learner, "anole_learner_load_params", |v, mut spans| {
            let bs = handle::live::<BlobKind>(adapted, "adapted")?;
            spans.add(handle::region::<BlobKind>(bs, false));
            // SAFETY: live blob, shared access only.
            let other = &*Slot::value(bs);
            spans.add(other.bytes);
            spans.check()?;
            Ok(v.learner.load_params_from(&other.blob)?)
        })
    }
}

/// The learner of the live handle `p` and its regions, for the store (which marks it busy
/// while it works).
///
/// # Safety
/// `p` follows the handle contract.
pub(crate) unsafe fn checked(
    p: *mut AnoleLearner,
    arg: &'static str,
) -> Result<(*mut Slot<LearnerValue>, Spans), What> {
    // SAFETY: the handle contract.
    let s = unsafe { handle::live::<LearnerKind>(p, arg)? };
    // SAFETY: live: the value is initialised; this shared borrow ends before return.
    let v = unsafe { &*Slot::value(s) };
    // SAFETY: the blob pointer of a live learner came from a live blob.
    if !unsafe { Slot::is_live::<BlobKind>(v.blob) } {
        return Err(What::NotAHandle {
            arg: "the learner's blob",
        });
    }
    Ok((s, context(s, v)))
}
