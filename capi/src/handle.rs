//! Handles in the caller's memory. A handle is a [`Slot`]: a [`Head`] the library checks on
//! every call (a tag naming the kind, the handle's own address, a busy flag, the learners
//! using a blob, the last failure), then the value. Creating a handle claims the memory,
//! releasing it overwrites the tag, so a NULL, misaligned, uninitialised, released, copied,
//! busy or wrong-kind handle is refused with its own status before anything else is read.

use crate::args::{Span, Spans};
use crate::failure::{Failure, What};
use crate::status::AnoleStatus;
use core::ffi::c_void;
use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::{addr_of, addr_of_mut};

/// Alignment, in bytes, of the memory every handle lives in (`ANOLE_*_SIZE` bytes at an
/// address that is a multiple of this).
pub const ANOLE_HANDLE_ALIGN: usize = 8;

const fn tag(b: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*b)
}

/// Tag of memory whose handle was released.
const RELEASED: u32 = tag(b"anRL");
/// Tag of memory whose handle creation failed (it holds only the failure).
const FAILED: u32 = tag(b"anFL");

/// The checked part at the start of every handle.
#[repr(C)]
pub(crate) struct Head {
    /// The kind's tag while live; [`RELEASED`] or [`FAILED`] after.
    tag: u32,
    /// Non-zero while a call on this handle runs.
    busy: u32,
    /// The handle's own address: a copy elsewhere is not a handle.
    addr: usize,
    /// Blobs: live learners created on this blob.
    users: usize,
    /// The last failed call on this handle.
    last: Option<Failure>,
}

/// A handle: its head, then its value (initialised once the tag is the kind's).
#[repr(C, align(8))]
pub(crate) struct Slot<V> {
    head: Head,
    value: MaybeUninit<V>,
}

/// A kind of handle.
pub(crate) trait Kind {
    /// The opaque C type of the handle.
    type Handle;
    /// What the handle holds.
    type Value;
    /// Tag of a live handle of this kind.
    const TAG: u32;
    /// Kind name in messages.
    const NAME: &'static str;
    /// Name of a handle argument of this kind.
    const ARG: &'static str;
    /// The handle's memory, in messages about overlapping buffers.
    const REGION: &'static str;
    /// Bytes of memory the header tells C to give (`ANOLE_*_SIZE`).
    const SIZE: usize;
}

/// Declare a handle kind and check its `ANOLE_*_SIZE` at compile time: at least the slot's
/// size and less than 64 bytes over it (the constants are the slot size rounded up to 64).
macro_rules! kind {
    ($kind:ident, $handle:ty, $value:ty, $tag:literal, $name:literal, $arg:literal, $size:expr) => {
        pub(crate) struct $kind;
        impl $crate::handle::Kind for $kind {
            type Handle = $handle;
            type Value = $value;
            const TAG: u32 = u32::from_le_bytes(*$tag);
            const NAME: &'static str = $name;
            const ARG: &'static str = $arg;
            const REGION: &'static str = concat!("the ", $name, " handle");
            const SIZE: usize = $size;
        }
        // A mismatch reports the two sizes: "expected an array with a size of SIZE, found
        // one with a size of (slot size rounded up to 64)". Update the constant and
        // regenerate include/anole.h.
        const _: [(); $size] =
            [(); $crate::handle::rounded(core::mem::size_of::<$crate::handle::Slot<$value>>())];
        const _: () = assert!(
            core::mem::align_of::<$crate::handle::Slot<$value>>()
                == $crate::handle::ANOLE_HANDLE_ALIGN
        );
    };
}
pub(crate) use kind;

/// `n` rounded up to a multiple of 64.
pub(crate) const fn rounded(n: usize) -> usize {
    n.div_ceil(64) * 64
}

const _: () = assert!(align_of::<Slot<u8>>() == ANOLE_HANDLE_ALIGN);

/// Name of the live kind with tag `t`.
fn kind_name(t: u32) -> Option<&'static str> {
    use crate::{blob::BlobKind, learner::LearnerKind, samples::SamplesKind, store::StoreKind};
    [
        (BlobKind::TAG, BlobKind::NAME),
        (LearnerKind::TAG, LearnerKind::NAME),
        (SamplesKind::TAG, SamplesKind::NAME),
        (StoreKind::TAG, StoreKind::NAME),
    ]
    .iter()
    .find(|(k, _)| *k == t)
    .map(|(_, n)| *n)
}

/// Check that `p` may point to a handle: not NULL, aligned.
fn check_ptr(p: *const c_void, arg: &'static str) -> Result<*mut Head, What> {
    if p.is_null() {
        return Err(What::Null { arg });
    }
    if (p as usize) % ANOLE_HANDLE_ALIGN != 0 {
        return Err(What::Misaligned {
            arg,
            align: ANOLE_HANDLE_ALIGN,
        });
    }
    Ok(p.cast_mut().cast::<Head>())
}

/// Read `(tag, addr, busy)` of the head at `h`.
///
/// # Safety
/// `h` is non-NULL, aligned, and points to at least `size_of::<Head>()` readable bytes.
unsafe fn peek(h: *const Head) -> (u32, usize, bool) {
    // SAFETY: the caller guarantees `h` points to a readable, aligned head-sized region;
    // plain integer fields accept any bit pattern.
    unsafe {
        (
            addr_of!((*h).tag).read(),
            addr_of!((*h).addr).read(),
            addr_of!((*h).busy).read() != 0,
        )
    }
}

/// `p` as a live, idle handle of kind `K`.
///
/// # Safety
/// `p` is NULL or points to at least `K::SIZE` bytes of readable memory (the C contract of
/// every handle argument).
pub(crate) unsafe fn live<K: Kind>(
    p: *const K::Handle,
    arg: &'static str,
) -> Result<*mut Slot<K::Value>, What> {
    let h = check_ptr(p.cast(), arg)?;
    // SAFETY: `h` is non-NULL and aligned, and the caller guarantees the memory behind it.
    let (t, addr, busy) = unsafe { peek(h) };
    let own = addr == h as usize;
    if t == K::TAG && own && !busy {
        return Ok(h.cast());
    }
    Err(refused::<K>(t, own, busy, arg))
}

/// Why a handle with tag `t` (at its own address if `own`, running a call if `busy`) is not
/// a live, idle handle of kind `K`. Out of line: every call checks its handles, few fail.
#[cold]
#[inline(never)]
fn refused<K: Kind>(t: u32, own: bool, busy: bool, arg: &'static str) -> What {
    if !own {
        return What::NotAHandle { arg };
    }
    if t == K::TAG && busy {
        return What::Busy { arg };
    }
    if t == RELEASED || t == FAILED {
        return What::Released { arg };
    }
    match kind_name(t) {
        Some(found) => What::WrongHandle {
            arg,
            found,
            expected: K::NAME,
        },
        None => What::NotAHandle { arg },
    }
}

/// The head of `p` if `p` is any handle of this library, live, released or failed (for
/// `anole_last_error`).
///
/// # Safety
/// As [`live`], with the smallest handle size.
pub(crate) unsafe fn any(p: *const c_void, arg: &'static str) -> Result<*mut Head, What> {
    let h = check_ptr(p, arg)?;
    // SAFETY: as in `live`.
    let (t, addr, _) = unsafe { peek(h) };
    if addr == h as usize && (t == RELEASED || t == FAILED || kind_name(t).is_some()) {
        Ok(h)
    } else {
        Err(What::NotAHandle { arg })
    }
}

/// Claim `len` bytes at `mem` for a new handle of kind `K`: checks them and writes a head
/// tagged "failed" (so a failed creation leaves its failure readable); the caller writes the
/// value and then calls [`Slot::activate`]. Memory holding a blob that learners use, or a
/// handle whose call is running, is refused: it is still in use.
///
/// # Safety
/// `mem` is NULL or points to `len` writable bytes that nothing else uses.
pub(crate) unsafe fn claim<K: Kind>(
    mem: *mut c_void,
    len: usize,
    arg: &'static str,
) -> Result<*mut Slot<K::Value>, What> {
    let h = check_ptr(mem, arg)?;
    if len < K::SIZE || len < size_of::<Slot<K::Value>>() {
        return Err(What::MemoryTooSmall {
            arg,
            needed: K::SIZE,
            available: len,
        });
    }
    // SAFETY: `h` is non-NULL, aligned and heads `len >= K::SIZE` bytes the caller gave.
    let (t, addr, busy) = unsafe { peek(h) };
    if addr == h as usize && kind_name(t).is_some() {
        if busy {
            return Err(What::Busy { arg });
        }
        // SAFETY: as above; `users` is a plain integer.
        let users = unsafe { addr_of!((*h).users).read() };
        if t == crate::blob::BlobKind::TAG && users > 0 {
            return Err(What::BlobInUse { arg, users });
        }
    }
    // SAFETY: the caller gives `len` writable bytes at `mem`, enough for a head.
    unsafe {
        h.write(Head {
            tag: FAILED,
            busy: 0,
            addr: h as usize,
            users: 0,
            last: None,
        })
    };
    Ok(h.cast())
}

impl<V> Slot<V> {
    /// The head.
    ///
    /// # Safety
    /// `s` points to a claimed or live slot.
    pub unsafe fn head(s: *mut Slot<V>) -> *mut Head {
        // SAFETY: `head` is the first field of the slot the caller vouches for.
        unsafe { addr_of_mut!((*s).head) }
    }

    /// Where the value goes (initialised once the slot is live).
    ///
    /// # Safety
    /// `s` points to a claimed or live slot.
    pub unsafe fn value(s: *mut Slot<V>) -> *mut V {
        // SAFETY: `value` is a field of the slot the caller vouches for.
        unsafe { addr_of_mut!((*s).value).cast() }
    }

    /// Mark a claimed slot whose value was written as a live handle of kind `K`.
    ///
    /// # Safety
    /// `s` was claimed for kind `K` and its value is initialised.
    pub unsafe fn activate<K: Kind<Value = V>>(s: *mut Slot<V>) {
        // SAFETY: the head of a claimed slot is initialised and writable.
        unsafe { (*Self::head(s)).tag = K::TAG }
    }

    /// Release a live slot: it is no handle any more. Its last failure stays readable.
    ///
    /// # Safety
    /// `s` is a live slot.
    pub unsafe fn release(s: *mut Slot<V>) {
        // SAFETY: the head of a live slot is initialised and writable.
        unsafe { (*Self::head(s)).tag = RELEASED }
    }

    /// The blob's user count.
    ///
    /// # Safety
    /// `s` is a live slot.
    pub unsafe fn users(s: *mut Slot<V>) -> *mut usize {
        // SAFETY: a field of the live head.
        unsafe { addr_of_mut!((*Self::head(s)).users) }
    }

    /// Whether `s` is still a live handle of kind `K` at its own address (a learner checks its
    /// blob on every call).
    ///
    /// # Safety
    /// `s` points to at least a head's worth of readable memory.
    pub unsafe fn is_live<K: Kind<Value = V>>(s: *mut Slot<V>) -> bool {
        // SAFETY: the caller guarantees the memory; `s` came from a live slot, so is aligned.
        let (t, addr, _) = unsafe { peek(Self::head(s)) };
        t == K::TAG && addr == s as usize
    }

    /// Set or clear the busy flag.
    ///
    /// # Safety
    /// `s` is a live slot.
    pub unsafe fn set_busy(s: *mut Slot<V>, busy: bool) {
        // SAFETY: the head of a live slot is initialised and writable.
        unsafe { (*Self::head(s)).busy = u32::from(busy) }
    }
}

impl Head {
    /// Record `f` as the last failure and return its status.
    ///
    /// # Safety
    /// `h` is the head of a claimed or live slot.
    pub unsafe fn fail(h: *mut Head, f: Failure) -> AnoleStatus {
        // SAFETY: the caller vouches for the head.
        unsafe { (*h).last = Some(f) };
        f.what.status()
    }

    /// The last failure recorded.
    ///
    /// # Safety
    /// `h` is the head of a claimed, live, released or failed slot.
    pub unsafe fn last(h: *mut Head) -> Option<Failure> {
        // SAFETY: the caller vouches for the head, whose `last` was written by `claim`.
        unsafe { (*h).last }
    }
}

/// Run `f` on the live handle `p` of kind `K` (marked busy meanwhile); a failure is recorded
/// in the handle as the failure of `func`.
///
/// # Safety
/// `p` is NULL or points to `K::SIZE` bytes of memory (the handle contract), and `f` upholds
/// the safety of what it does with the slot.
pub(crate) unsafe fn call<K: Kind>(
    p: *const K::Handle,
    func: &'static str,
    f: impl FnOnce(*mut Slot<K::Value>) -> Result<(), What>,
) -> AnoleStatus {
    // SAFETY: the caller's handle contract.
    let s = match unsafe { live::<K>(p, K::ARG) } {
        Ok(s) => s,
        Err(what) => return what.status(),
    };
    // SAFETY: `s` is live.
    unsafe { Slot::set_busy(s, true) };
    let r = f(s);
    // SAFETY: `s` stays live: the busy flag kept every other call off it.
    unsafe { Slot::set_busy(s, false) };
    match r {
        Ok(()) => AnoleStatus::Ok,
        // SAFETY: `s` is live.
        Err(what) => unsafe { Head::fail(Slot::head(s), Failure { func, what }) },
    }
}

/// The memory of the handle `s` of kind `K` as a region of a call.
pub(crate) fn region<K: Kind>(s: *mut Slot<K::Value>, written: bool) -> Span {
    Span::new(s as usize, K::SIZE, K::REGION, written)
}

/// Answer a query on the live handle `p` of kind `K`: `f` computes the answer from the
/// handle's value (with `reads`, the other regions it reads), written to `out`.
///
/// # Safety
/// `p` follows the handle contract; `out` is NULL or writable; `f` upholds the safety of
/// what it does.
pub(crate) unsafe fn query<K: Kind, T>(
    p: *const K::Handle,
    func: &'static str,
    out: *mut T,
    out_arg: &'static str,
    reads: Option<Span>,
    f: impl FnOnce(&K::Value) -> Result<T, What>,
) -> AnoleStatus {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        call::<K>(p, func, |s| {
            let out = crate::args::out(out, out_arg)?;
            let mut spans = Spans::new();
            spans
                .add(region::<K>(s, false))
                .add(Span::one(out, out_arg, true));
            if let Some(r) = reads {
                spans.add(r);
            }
            spans.check()?;
            // SAFETY: `s` is live and busy: only shared references to its value are made.
            let v = f(&*Slot::value(s))?;
            crate::args::put(out, v);
            Ok(())
        })
    }
}

/// Create a handle of kind `K` in `mem`: claim it, run `init` to write the value, activate
/// it; a failure is recorded in the memory (readable with `anole_last_error`) and `*out` is
/// set to NULL. On success `*out` is the handle.
///
/// # Safety
/// `mem` is NULL or points to `len` writable bytes nothing else uses; `out` is NULL or
/// writable; `init` upholds the safety of what it does.
pub(crate) unsafe fn create<K: Kind>(
    mem: *mut c_void,
    len: usize,
    out: *mut *mut K::Handle,
    func: &'static str,
    init: impl FnOnce(*mut Slot<K::Value>) -> Result<(), What>,
) -> AnoleStatus {
    if out.is_null() {
        return What::Null { arg: "out" }.status();
    }
    if (out as usize) % align_of::<*mut K::Handle>() != 0 {
        return What::Misaligned {
            arg: "out",
            align: align_of::<*mut K::Handle>(),
        }
        .status();
    }
    let (o, m) = (out as usize, mem as usize);
    if o < m.saturating_add(len) && m < o.saturating_add(size_of::<*mut K::Handle>()) {
        return What::Overlap {
            arg: "out",
            other: "the handle's memory",
        }
        .status();
    }
    // SAFETY: `out` is non-NULL and aligned; the caller gives it writable.
    unsafe { out.write(core::ptr::null_mut()) };
    // SAFETY: the caller's contract on `mem`.
    let s = match unsafe { claim::<K>(mem, len, "mem") } {
        Ok(s) => s,
        Err(what) => return what.status(),
    };
    if let Err(what) = init(s) {
        // SAFETY: `s` was claimed.
        return unsafe { Head::fail(Slot::head(s), Failure { func, what }) };
    }
    // SAFETY: `init` wrote the value.
    unsafe {
        Slot::activate::<K>(s);
        out.write(s.cast());
    }
    AnoleStatus::Ok
}
