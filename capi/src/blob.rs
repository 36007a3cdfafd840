//! Blob handles: a model parsed in place from bytes the caller keeps (flash or RAM), plain or
//! in a signed envelope; what it holds; the arena a learner of it needs.

use crate::args::{self, Span, Spans};
use crate::failure::What;
use crate::handle::{self, kind, Slot};
use crate::learner::{options, AnoleLearnerOptions};
use crate::status::AnoleStatus;
use anole::{Blob, HeadStart, LossKind, Optimizer, Plan};
use core::ffi::c_void;

/// A parsed model (opaque). Lives in `ANOLE_BLOB_SIZE` bytes of the caller's memory aligned
/// to `ANOLE_HANDLE_ALIGN`, and borrows the blob bytes it was parsed from: both must stay
/// untouched until `anole_blob_release`.
pub struct AnoleBlob {
    _opaque: [u8; 0],
}

/// Bytes of memory a blob handle needs (`anole_blob_parse`): a library built with
/// `extra-layers` (the default) holds up to 64 layers, one built without it (define
/// `ANOLE_LEAN` before including this header) up to 32 in a smaller handle.
#[cfg(all(target_pointer_width = "64", feature = "extra-layers"))]
pub const ANOLE_BLOB_SIZE: usize = 9920;
/// Bytes of memory a blob handle needs (`anole_blob_parse`).
#[cfg(all(target_pointer_width = "64", not(feature = "extra-layers")))]
pub const ANOLE_BLOB_SIZE: usize = 6080;
/// Bytes of memory a blob handle needs (`anole_blob_parse`).
#[cfg(all(target_pointer_width = "32", feature = "extra-layers"))]
pub const ANOLE_BLOB_SIZE: usize = 5952;
/// Bytes of memory a blob handle needs (`anole_blob_parse`).
#[cfg(all(target_pointer_width = "32", not(feature = "extra-layers")))]
pub const ANOLE_BLOB_SIZE: usize = 3648;

/// Bytes of an ed25519 public key (`anole_blob_parse_signed`).
pub const ANOLE_PUBLIC_KEY_LEN: usize = 32;
const _: () = assert!(ANOLE_PUBLIC_KEY_LEN == anole::sign::PUBLIC_KEY_LEN);

/// What a blob handle holds: the parsed blob and where its bytes are.
pub(crate) struct BlobValue {
    pub blob: Blob<'static>,
    /// The bytes given to the parse call (the whole envelope for a signed blob).
    pub bytes: Span,
    /// Bytes of the blob itself (inside the envelope for a signed blob).
    pub blob_len: usize,
}

kind!(
    BlobKind,
    AnoleBlob,
    BlobValue,
    b"anBB",
    "blob",
    "blob",
    ANOLE_BLOB_SIZE
);

/// Loss code of `anole_blob_info.loss`: mean squared error (regression; a target has
/// `output_len` values).
pub const ANOLE_LOSS_MSE: u32 = 0;
/// Loss code of `anole_blob_info.loss`: softmax cross-entropy (classification; a target is one
/// class index stored as a float).
pub const ANOLE_LOSS_CROSS_ENTROPY: u32 = 1;
/// Head start of `anole_blob_info.head_start`: adaptation starts from the blob's parameters.
pub const ANOLE_HEAD_START_META: u32 = 0;
/// Head start of `anole_blob_info.head_start` (format version 2): adaptation starts the head
/// from the class prototypes of the support set (`anole_learner_start_head`).
pub const ANOLE_HEAD_START_PROTOTYPES: u32 = 1;
/// Optimizer code of `anole_blob_info.optimizer`: plain SGD.
pub const ANOLE_OPTIMIZER_SGD: u32 = 0;
/// Optimizer code of `anole_blob_info.optimizer`: Adam with beta1 = 0.
pub const ANOLE_OPTIMIZER_ADAM: u32 = 1;

/// What a blob holds (`anole_blob_get_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AnoleBlobInfo {
    /// Floats in one input sample.
    pub input_len: usize,
    /// Floats in one prediction.
    pub output_len: usize,
    /// Floats in one target: `output_len` for MSE, 1 (a class index) for cross-entropy.
    pub target_len: usize,
    /// Layers.
    pub layers: usize,
    /// Parameters (all tensors).
    pub params: usize,
    /// Bytes of the blob (without a signed envelope).
    pub blob_len: usize,
    /// `ANOLE_LOSS_MSE` or `ANOLE_LOSS_CROSS_ENTROPY`.
    pub loss: u32,
    /// `ANOLE_OPTIMIZER_SGD` or `ANOLE_OPTIMIZER_ADAM`.
    pub optimizer: u32,
    /// Recommended learning rate.
    pub lr: f32,
    /// Recommended adaptation steps.
    pub steps: u32,
    /// Recommended batch (samples per step).
    pub batch: u32,
    /// Recommended trainable layers: bit i set, layer i adapts (64 bits: a blob of format
    /// version 3 may have up to 64 layers).
    pub trainable: u64,
    /// Where adaptation starts the head: `ANOLE_HEAD_START_META` or
    /// `ANOLE_HEAD_START_PROTOTYPES`.
    pub head_start: u32,
    /// Meta-iterations the initialisation was trained for.
    pub meta_iterations: u64,
    /// The factor on the logits of a head started from class prototypes (format version 3;
    /// 1 for older blobs): row c of the head becomes 2·s·μ_c, its bias −s·‖μ_c‖².
    pub head_scale: f32,
}

/// Parse `bytes` into `mem` as the blob `*out`. `check` checks the other arguments (adding
/// their regions); `open` gives the blob inside `bytes` (the bytes themselves, or the blob
/// in a verified envelope). Generic, so that a plain parse links no signature code.
///
/// # Safety
/// `mem`: NULL or `mem_len` writable bytes; `bytes`: NULL or `len` readable bytes; `out`:
/// NULL or writable. On success `mem` and `bytes` belong to the handle until released.
unsafe fn parse<K>(
    (mem, mem_len): (*mut c_void, usize),
    (bytes, len): (*const u8, usize),
    check: impl FnOnce(&mut Spans) -> Result<K, What>,
    open: impl FnOnce(K, &'static [u8]) -> Result<&'static [u8], What>,
    out: *mut *mut AnoleBlob,
    func: &'static str,
) -> AnoleStatus {
    let init = |s: *mut Slot<BlobValue>| -> Result<(), What> {
        let data = args::array(bytes, len, "bytes")?;
        let mut spans = Spans::new();
        spans
            .add(Span::new(
                mem as usize,
                mem_len,
                "the handle's memory",
                true,
            ))
            .array(&data, "bytes", false);
        let k = check(&mut spans)?;
        spans.check()?;
        // SAFETY: checked above; the C contract keeps the bytes alive and unchanged until
        // the handle is released.
        let data: &'static [u8] = unsafe { data.get() };
        // SAFETY: `s` was claimed: its value is writable memory of the right type.
        let v = unsafe { Slot::value(s) };
        // SAFETY: as above; writing the whole value initialises it.
        unsafe {
            v.write(BlobValue {
                blob: Blob::empty(),
                bytes: Span::of(data, "the blob's bytes", false),
                blob_len: 0,
            })
        };
        // SAFETY: just initialised; nothing else refers to the claimed slot.
        let value = unsafe { &mut *v };
        let inner = open(k, data)?;
        value.blob.parse_in_place(inner)?;
        value.blob_len = inner.len();
        Ok(())
    };
    // SAFETY: the caller's contract on `mem` and `out`; `init` checks its own arguments.
    unsafe { handle::create::<BlobKind>(mem, mem_len, out, func, init) }
}

/// Parse and validate the blob `bytes` (`len` bytes: magic, version, CRC, layers, shapes,
/// sizes, finite weights, settings) into `mem` (`ANOLE_BLOB_SIZE` bytes aligned to
/// `ANOLE_HANDLE_ALIGN`); `*out` becomes the handle, or NULL on failure. Nothing is copied:
/// the handle reads `bytes` where they are (flash is fine), so they must stay in place and
/// unchanged until `anole_blob_release`. After a failure, `anole_last_error(mem, ...)` says
/// why.
///
/// # Safety
/// `mem` is NULL or points to `mem_len` writable bytes; `bytes` is NULL or points to `len`
/// readable bytes; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_blob_parse(
    mem: *mut c_void,
    mem_len: usize,
    bytes: *const u8,
    len: usize,
    out: *mut *mut AnoleBlob,
) -> AnoleStatus {
    let (check, open) = (|_: &mut Spans| Ok(()), |(), data| Ok(data));
    // SAFETY: the caller's contract, passed on.
    unsafe {
        parse(
            (mem, mem_len),
            (bytes, len),
            check,
            open,
            out,
            "anole_blob_parse",
        )
    }
}

/// Like `anole_blob_parse` for a signed envelope (`anole sign`): checks the envelope and its
/// ed25519 signature against the trusted `public_key` (`key_len` =
/// `ANOLE_PUBLIC_KEY_LEN` bytes) before parsing the blob inside. A plain blob, a blob signed
/// by another key and any altered byte are refused, each with its own status.
///
/// # Safety
/// As `anole_blob_parse`; `public_key` is NULL or points to `key_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn anole_blob_parse_signed(
    mem: *mut c_void,
    mem_len: usize,
    bytes: *const u8,
    len: usize,
    public_key: *const u8,
    key_len: usize,
    out: *mut *mut AnoleBlob,
) -> AnoleStatus {
    let check = |spans: &mut Spans| {
        if key_len != ANOLE_PUBLIC_KEY_LEN {
            return Err(What::Invalid {
                arg: "key_len",
                why: "an ed25519 public key is ANOLE_PUBLIC_KEY_LEN (32) bytes",
            });
        }
        let k = args::array(public_key, key_len, "public_key")?;
        spans.array(&k, "public_key", false);
        Ok(k)
    };
    let open = |k: args::Array<u8>, data| {
        let mut key = [0u8; ANOLE_PUBLIC_KEY_LEN];
        // SAFETY: checked by `check` (32 readable bytes, not written by the call).
        key.copy_from_slice(unsafe { k.get() });
        Ok(anole::sign::verify(data, &key)?)
    };
    let func = "anole_blob_parse_signed";
    // SAFETY: the caller's contract, passed on.
    unsafe { parse((mem, mem_len), (bytes, len), check, open, out, func) }
}

/// Release the blob: its memory and bytes are the caller's again. Refused with
/// `ANOLE_STATUS_IN_USE` while learners created on it are live.
///
/// # Safety
/// `blob` is NULL or points to `ANOLE_BLOB_SIZE` bytes (a handle, or memory that may be one).
#[no_mangle]
pub unsafe extern "C" fn anole_blob_release(blob: *mut AnoleBlob) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<BlobKind>(blob, "anole_blob_release", |s| {
            // SAFETY: `s` is live.
            let users = *Slot::users(s);
            if users > 0 {
                return Err(What::BlobInUse { arg: "blob", users });
            }
            // SAFETY: `s` is live.
            Slot::release(s);
            Ok(())
        })
    }
}

/// Fill `*info` with what the blob holds: sizes, loss, recommended settings.
///
/// # Safety
/// `blob` as for `anole_blob_release`; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_blob_get_info(
    blob: *mut AnoleBlob,
    info: *mut AnoleBlobInfo,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::query::<BlobKind, _>(blob, "anole_blob_get_info", info, "info", None, |v| {
            let b = &v.blob;
            let st = b.settings();
            Ok(AnoleBlobInfo {
                input_len: b.input_len(),
                output_len: b.output_len(),
                target_len: b.target_len(),
                layers: b.layers.len(),
                params: b.param_count(),
                blob_len: v.blob_len,
                loss: match b.loss {
                    LossKind::Mse => ANOLE_LOSS_MSE,
                    LossKind::CrossEntropy => ANOLE_LOSS_CROSS_ENTROPY,
                },
                optimizer: match b.optimizer {
                    Optimizer::Sgd => ANOLE_OPTIMIZER_SGD,
                    Optimizer::AdamB1Zero => ANOLE_OPTIMIZER_ADAM,
                },
                lr: st.lr,
                steps: st.steps,
                batch: st.batch,
                trainable: anole::limits::mask_to_u64(st.trainable),
                head_start: match b.head_start {
                    HeadStart::Meta => ANOLE_HEAD_START_META,
                    HeadStart::Prototypes => ANOLE_HEAD_START_PROTOTYPES,
                },
                meta_iterations: b.provenance().meta_iterations,
                head_scale: st.head_scale,
            })
        })
    }
}

/// Floats of arena a learner of this blob needs with these options (NULL: the blob's
/// recommended batch and trainable layers in `ANOLE_MODE_BUFFERED`), into `*out`. The same
/// figures `anole inspect` prints for sizing a static arena at compile time.
///
/// # Safety
/// `blob` as for `anole_blob_release`; `options` is NULL or readable; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn anole_arena_len(
    blob: *mut AnoleBlob,
    options: *const AnoleLearnerOptions,
    out: *mut usize,
) -> AnoleStatus {
    let reads = (!options.is_null()).then(|| Span::one(options, "options", false));
    // SAFETY: the handle contract; `options` is NULL or readable.
    unsafe {
        handle::query::<BlobKind, _>(blob, "anole_arena_len", out, "out", reads, |v| {
            let (opts, mode) = options::read(&v.blob, options)?;
            let plan = Plan::with_mode(&v.blob, opts.batch, opts.trainable, mode)?;
            Ok(plan.arena_len())
        })
    }
}
