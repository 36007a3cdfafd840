//! # anole C API
//!
//! The anole runtime for C: `libanole_capi.a` (one per target) and its header
//! `include/anole.h`, generated from this crate by cbindgen. A thin layer over the same engine
//! the Rust firmware and the trainer run, so C gets the same bits.
//!
//! No heap: every handle (blob, learner, sample buffer, store) lives in memory the caller
//! gives, `ANOLE_*_SIZE` bytes aligned to `ANOLE_HANDLE_ALIGN`, and so do the arena, sample
//! storage and buffers. Every function returns an `AnoleStatus`; `anole_status_message`
//! gives its meaning and `anole_last_error` the details of a handle's last failure.
//!
//! Nothing a C caller passes makes a call crash: NULL pointers, wrong lengths, misaligned or
//! short buffers, overlapping buffers, uninitialised, released, copied or busy handles and
//! handles of the wrong kind each return their own status (handles carry a tag and their own
//! address, checked on every call). What C cannot detect is the caller's to keep: memory
//! given to a handle, blob bytes, arenas and storage must stay valid and untouched until the
//! handle is released, a handle must not be used from two threads at once, and flash
//! callbacks must not call the library.
//!
//! Nothing here panics by design: every entry point is property-tested with arbitrary
//! arguments. On a device a panic would stop at an undefined instruction (a fault handler
//! runs); on a host the library links Rust's standard library, whose panic would abort.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// On a host the standard library provides the panic runtime a static library needs.
#[cfg(not(target_os = "none"))]
extern crate std;

mod args;
pub mod blob;
mod failure;
mod handle;
pub mod learner;
pub mod samples;
pub mod status;
pub mod store;
pub mod text;

pub use blob::*;
pub use handle::ANOLE_HANDLE_ALIGN;
pub use learner::*;
pub use samples::*;
pub use status::AnoleStatus;
pub use store::*;
pub use text::*;

/// Stop on a panic (there is none by design): an undefined instruction raises a fault the
/// firmware's handler sees; elsewhere spin.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(target_arch = "arm")]
    // SAFETY: `udf` only raises the undefined-instruction exception; it touches no memory.
    unsafe {
        core::arch::asm!("udf #0", options(nomem, nostack))
    };
    #[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
    // SAFETY: `unimp` only raises the illegal-instruction exception; it touches no memory.
    unsafe {
        core::arch::asm!("unimp", options(nomem, nostack))
    };
    loop {
        core::hint::spin_loop();
    }
}
