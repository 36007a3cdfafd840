//! Text for C: the message of a status, the details of a handle's last failure, and floats
//! formatted the way the Rust firmware prints them (shortest text that reads back to the same
//! bits; also a float formatter for C libraries whose printf has none).

use crate::args;
use crate::failure::What;
use crate::handle::{self, Head};
use crate::status::AnoleStatus;
use core::ffi::{c_char, c_void};
use core::fmt::{self, Write};

/// The meaning of a status code, as a static NUL-terminated string ("unknown status code"
/// for a code no function returns). Never NULL.
#[no_mangle]
pub extern "C" fn anole_status_message(status: i32) -> *const c_char {
    match AnoleStatus::from_code(status) {
        Some(s) => s.message().as_ptr(),
        None => c"unknown status code".as_ptr(),
    }
}

/// Writes into a C buffer, truncating, and counts the full length.
struct Sink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the terminating NUL.
        let room = self.buf.len().saturating_sub(1).saturating_sub(self.len);
        let n = room.min(s.len());
        if let Some(dst) = self.buf.get_mut(self.len..self.len + n) {
            dst.copy_from_slice(&s.as_bytes()[..n]);
        }
        self.len += s.len();
        Ok(())
    }
}

/// Format `args` into `buf` (`buf_len` bytes, NUL-terminated, truncated if short); the full
/// length without the NUL goes to `needed` (if not NULL).
///
/// # Safety
/// `buf` is NULL or `buf_len` writable bytes; `needed` is NULL or writable.
unsafe fn write_text(
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
    args: fmt::Arguments<'_>,
) -> Result<usize, What> {
    let b = args::array(buf.cast::<u8>().cast_const(), buf_len, "buf")?;
    if !needed.is_null() {
        args::out(needed, "needed")?;
    }
    let mut spans = args::Spans::new();
    spans.array(&b, "buf", true);
    if !needed.is_null() {
        spans.add(args::Span::one(needed, "needed", true));
    }
    spans.check()?;
    // SAFETY: checked; writable by the contract.
    let bytes = unsafe { b.get_mut() };
    let mut sink = Sink { buf: bytes, len: 0 };
    // `Sink` never fails; formatting runtime values cannot either.
    let _ = sink.write_fmt(args);
    let full = sink.len;
    if let Some(last) = sink.buf.len().checked_sub(1) {
        sink.buf[full.min(last)] = 0;
    }
    if !needed.is_null() {
        // SAFETY: checked above.
        unsafe { args::put(needed, full) };
    }
    Ok(full)
}

/// The details of the last failed call on `handle` (any handle, live or released, or the
/// memory of a failed creation): the function, the argument or sizes, the runtime's reason.
/// Written into `buf` (`buf_len` bytes, NUL-terminated, truncated if short; NULL with 0 to
/// ask the length only); `*needed` (NULL: not wanted) gets the full length without the NUL.
/// A handle with no failure gives "no failure recorded". Failures that leave no handle (a
/// NULL or invalid handle argument) are only in the status.
///
/// # Safety
/// `handle` is NULL or points to at least a handle's head (any `ANOLE_*_SIZE` memory);
/// `buf` is NULL or `buf_len` writable bytes; `needed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_last_error(
    handle: *const c_void,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    let h = match unsafe { handle::any(handle, "handle") } {
        Ok(h) => h,
        Err(w) => return w.status(),
    };
    // SAFETY: `h` is a head of this library; the failure is copied out before `buf` is
    // written.
    let last = unsafe { Head::last(h) };
    // SAFETY: the caller's contract on `buf` and `needed`.
    let r = unsafe {
        match &last {
            Some(f) => write_text(buf, buf_len, needed, format_args!("{f}")),
            None => write_text(buf, buf_len, needed, format_args!("no failure recorded")),
        }
    };
    match r {
        Ok(_) => AnoleStatus::Ok,
        Err(w) => w.status(),
    }
}

/// Bytes of a buffer that holds any float `anole_format_f32` writes, with its NUL ("-" and
/// the 47 characters of the smallest subnormal, 0.000...001).
pub const ANOLE_FORMAT_F32_LEN: usize = 49;

/// Format `value` as the Rust firmware prints a float: the shortest decimal that reads back
/// to the same bits, without an exponent ("0.1", "-2.5", "NaN", "inf"), into `buf`
/// (`buf_len` bytes, NUL-terminated); `*written` (NULL: not wanted) gets its length without
/// the NUL. A buffer too short for the whole text is refused with
/// `ANOLE_STATUS_BUFFER_TOO_SMALL` and holds the empty string; `ANOLE_FORMAT_F32_LEN` bytes
/// always suffice.
///
/// # Safety
/// `buf` is NULL or `buf_len` writable bytes; `written` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_format_f32(
    value: f32,
    buf: *mut c_char,
    buf_len: usize,
    written: *mut usize,
) -> AnoleStatus {
    // SAFETY: the caller's contract.
    match unsafe { write_text(buf, buf_len, written, format_args!("{value}")) } {
        Ok(n) if n < buf_len => AnoleStatus::Ok,
        Ok(n) => {
            if buf_len > 0 {
                // SAFETY: `buf` holds `buf_len > 0` writable bytes (checked in write_text).
                unsafe { buf.write(0) };
            }
            What::TooShort {
                arg: "buf",
                needed: n + 1,
                available: buf_len,
            }
            .status()
        }
        Err(w) => w.status(),
    }
}
