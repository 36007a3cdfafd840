//! Sample buffers: the samples a device collects, in a ring over the caller's floats. When
//! full, a new sample replaces the oldest, as `anole::SampleBuffer` does (whose sizes are
//! compile-time constants, which C cannot give).

use crate::args::{self, Span, Spans};
use crate::failure::What;
use crate::handle::{self, kind, Slot};
use crate::status::AnoleStatus;
use core::ffi::c_void;

/// A sample buffer (opaque): up to `capacity` samples in the caller's float storage. Lives
/// in `ANOLE_SAMPLES_SIZE` bytes of the caller's memory aligned to `ANOLE_HANDLE_ALIGN`;
/// uses the storage until `anole_samples_release`.
pub struct AnoleSamples {
    _opaque: [u8; 0],
}

/// Bytes of memory a sample buffer handle needs (`anole_samples_init`).
#[cfg(target_pointer_width = "64")]
pub const ANOLE_SAMPLES_SIZE: usize = 192;
/// Bytes of memory a sample buffer handle needs (`anole_samples_init`).
#[cfg(target_pointer_width = "32")]
pub const ANOLE_SAMPLES_SIZE: usize = 128;

/// What a sample buffer handle holds: a ring of `capacity` rows of `input_len + target_len`
/// floats, the oldest at row `head`.
pub(crate) struct SamplesValue {
    storage: &'static mut [f32],
    capacity: usize,
    input_len: usize,
    target_len: usize,
    head: usize,
    len: usize,
}

kind!(
    SamplesKind,
    AnoleSamples,
    SamplesValue,
    b"anSM",
    "sample buffer",
    "samples",
    ANOLE_SAMPLES_SIZE
);

impl SamplesValue {
    /// The storage given.
    pub fn storage_span(&self) -> Span {
        Span::of(self.storage, "the sample buffer's storage", false)
    }

    fn row(&self, i: usize) -> &[f32] {
        let stride = self.input_len + self.target_len;
        let r = (self.head + i) % self.capacity;
        &self.storage[r * stride..(r + 1) * stride]
    }

    /// Add a sample, dropping the oldest when full; refuses a sample of the wrong length or
    /// holding NaN or infinity (the buffer is unchanged).
    fn push(&mut self, input: &[f32], target: &[f32]) -> Result<(), anole::Error> {
        for (values, expected) in [(input, self.input_len), (target, self.target_len)] {
            if values.len() != expected {
                return Err(anole::Error::SampleLength {
                    sample: self.len,
                    expected,
                    found: values.len(),
                });
            }
        }
        if input.iter().chain(target).any(|v| !v.is_finite()) {
            return Err(anole::Error::NonFiniteSample { sample: self.len });
        }
        let stride = self.input_len + self.target_len;
        let r = if self.len == self.capacity {
            let oldest = self.head;
            self.head = (self.head + 1) % self.capacity;
            oldest
        } else {
            self.len += 1;
            (self.head + self.len - 1) % self.capacity
        };
        let row = &mut self.storage[r * stride..(r + 1) * stride];
        row[..self.input_len].copy_from_slice(input);
        row[self.input_len..].copy_from_slice(target);
        Ok(())
    }
}

impl anole::Samples for SamplesValue {
    fn len(&self) -> usize {
        self.len
    }
    fn input(&self, i: usize) -> &[f32] {
        &self.row(i)[..self.input_len]
    }
    fn target(&self, i: usize) -> &[f32] {
        &self.row(i)[self.input_len..]
    }
}

/// Create an empty sample buffer in `mem` (`ANOLE_SAMPLES_SIZE` bytes aligned to
/// `ANOLE_HANDLE_ALIGN`) for up to `capacity` samples of `input_len` input and `target_len`
/// target floats (`anole_blob_info`), stored in `storage` (`storage_len` floats, at least
/// capacity x (input_len + target_len)); `*out` becomes the handle, or NULL on failure.
///
/// # Safety
/// `mem`: NULL or `mem_len` writable bytes; `storage`: NULL or `storage_len` writable floats;
/// `out`: NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // each size is its own C argument
pub unsafe extern "C" fn anole_samples_init(
    mem: *mut c_void,
    mem_len: usize,
    storage: *mut f32,
    storage_len: usize,
    capacity: usize,
    input_len: usize,
    target_len: usize,
    out: *mut *mut AnoleSamples,
) -> AnoleStatus {
    let init = |s: *mut Slot<SamplesValue>| -> Result<(), What> {
        for (arg, v) in [
            ("capacity", capacity),
            ("input_len", input_len),
            ("target_len", target_len),
        ] {
            if v == 0 {
                return Err(What::Invalid {
                    arg,
                    why: "must be at least 1",
                });
            }
        }
        let needed = input_len
            .checked_add(target_len)
            .and_then(|stride| stride.checked_mul(capacity))
            .ok_or(What::Invalid {
                arg: "capacity",
                why: "capacity x (input_len + target_len) overflows",
            })?;
        if storage_len < needed {
            return Err(What::TooShort {
                arg: "storage",
                needed,
                available: storage_len,
            });
        }
        let a = args::array(storage.cast_const(), storage_len, "storage")?;
        let mut spans = Spans::new();
        spans
            .add(Span::new(
                mem as usize,
                mem_len,
                "the handle's memory",
                true,
            ))
            .array(&a, "storage", true);
        spans.check()?;
        // SAFETY: checked and disjoint from the handle; the storage is the buffer's until
        // it is released (the C contract).
        let storage: &'static mut [f32] = unsafe { a.get_mut() };
        // SAFETY: `s` was claimed: its value is writable.
        unsafe {
            Slot::value(s).write(SamplesValue {
                storage: &mut storage[..needed],
                capacity,
                input_len,
                target_len,
                head: 0,
                len: 0,
            })
        };
        Ok(())
    };
    // SAFETY: the caller's contract on `mem` and `out`; `init` checks its own arguments.
    unsafe { handle::create::<SamplesKind>(mem, mem_len, out, "anole_samples_init", init) }
}

/// Add a sample (`input_len` input floats, `target_len` target floats: a regression target,
/// or one class index), replacing the oldest when the buffer is full. A sample of the wrong
/// length or holding NaN or infinity is refused and the buffer is unchanged.
///
/// # Safety
/// `samples` follows the handle contract; `input`/`target` are NULL or hold their lengths in
/// floats.
#[no_mangle]
pub unsafe extern "C" fn anole_samples_push(
    samples: *mut AnoleSamples,
    input: *const f32,
    input_len: usize,
    target: *const f32,
    target_len: usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<SamplesKind>(samples, "anole_samples_push", |s| {
            let x = args::array(input, input_len, "input")?;
            let t = args::array(target, target_len, "target")?;
            // SAFETY: live and busy: the only reference to the value.
            let v = &mut *Slot::value(s);
            let mut spans = Spans::new();
            spans
                .add(handle::region::<SamplesKind>(s, true))
                .add(v.storage_span().written())
                .array(&x, "input", false)
                .array(&t, "target", false);
            spans.check()?;
            Ok(v.push(x.get(), t.get())?)
        })
    }
}

/// The number of samples held, into `*count`.
///
/// # Safety
/// `samples` follows the handle contract; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_samples_count(
    samples: *mut AnoleSamples,
    count: *mut usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::query::<SamplesKind, _>(samples, "anole_samples_count", count, "count", None, |v| {
            Ok(v.len)
        })
    }
}

/// Remove every sample.
///
/// # Safety
/// `samples` follows the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_samples_clear(samples: *mut AnoleSamples) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<SamplesKind>(samples, "anole_samples_clear", |s| {
            // SAFETY: live and busy.
            let v = &mut *Slot::value(s);
            v.head = 0;
            v.len = 0;
            Ok(())
        })
    }
}

/// Release the sample buffer: its memory and storage are the caller's again.
///
/// # Safety
/// `samples` follows the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_samples_release(samples: *mut AnoleSamples) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<SamplesKind>(samples, "anole_samples_release", |s| {
            // SAFETY: live.
            Slot::release(s);
            Ok(())
        })
    }
}
