//! Pointer arguments from C: checked for NULL, alignment, address overflow and overlap
//! before any Rust reference to them exists.
//!
//! A call collects every region it reads or writes into [`Spans`] (its arrays and output
//! values, and the handles, arena and blob bytes it works on), checks that no region it
//! writes overlaps another, and only then turns the arrays into slices.

use crate::failure::What;
use core::mem::{align_of, size_of, MaybeUninit};

/// One region of memory a call reads or writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    start: usize,
    end: usize,
    name: &'static str,
    /// Non-zero: the call writes the region (a whole word, so that a span moves as words).
    written: usize,
}

impl Span {
    /// `bytes` bytes at `start`, read or written by the call.
    pub fn new(start: usize, bytes: usize, name: &'static str, written: bool) -> Span {
        Span {
            start,
            end: start.saturating_add(bytes),
            name,
            written: usize::from(written),
        }
    }

    /// The memory of `s`.
    pub fn of<T>(s: &[T], name: &'static str, written: bool) -> Span {
        Span::new(
            s.as_ptr() as usize,
            core::mem::size_of_val(s),
            name,
            written,
        )
    }

    /// The memory of one `T` at `p`.
    pub fn one<T>(p: *const T, name: &'static str, written: bool) -> Span {
        Span::new(p as usize, size_of::<T>(), name, written)
    }

    /// The same region, written by the call.
    pub fn written(self) -> Span {
        Span { written: 1, ..self }
    }
}

/// An array argument checked for NULL, alignment and size, not yet a slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Array<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Array<T> {
    /// The slice (empty for a zero length, whatever the pointer).
    ///
    /// # Safety
    /// The C caller gives `len` readable `T` at the pointer, alive for `'a`, and nothing
    /// writes them meanwhile (checked against the call's other regions by [`Spans::check`]).
    pub unsafe fn get<'a>(self) -> &'a [T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: non-NULL, aligned and within the address space (checked in `array`); the
        // caller vouches for the memory and its exclusivity.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The mutable slice.
    ///
    /// # Safety
    /// As [`Array::get`], writable, and nothing else reads or writes it meanwhile.
    pub unsafe fn get_mut<'a>(self) -> &'a mut [T] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as in `get`, plus the caller's exclusivity.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Check an array argument: `len` elements of `T` at `p` (NULL allowed only when `len` is 0).
pub(crate) fn array<T>(p: *const T, len: usize, arg: &'static str) -> Result<Array<T>, What> {
    if len == 0 {
        return Ok(Array {
            ptr: core::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        });
    }
    out(p.cast_mut(), arg)?;
    let fits = len
        .checked_mul(size_of::<T>())
        .filter(|b| *b <= isize::MAX as usize)
        .and_then(|b| (p as usize).checked_add(b))
        .is_some();
    if !fits {
        return Err(What::Invalid {
            arg,
            why: "length runs past the end of the address space",
        });
    }
    Ok(Array {
        ptr: p.cast_mut(),
        len,
    })
}

/// Check an output value pointer: non-NULL and aligned.
pub(crate) fn out<T>(p: *mut T, arg: &'static str) -> Result<*mut T, What> {
    if p.is_null() {
        return Err(What::Null { arg });
    }
    if (p as usize) % align_of::<T>() != 0 {
        return Err(What::Misaligned {
            arg,
            align: align_of::<T>(),
        });
    }
    Ok(p)
}

/// An optional output of a call: NULL is allowed, anything else must be aligned; added to
/// `spans` as written.
pub(crate) fn optional_out<T>(
    p: *mut T,
    arg: &'static str,
    spans: &mut Spans,
) -> Result<*mut T, What> {
    if !p.is_null() {
        required_out(p, arg, spans)?;
    }
    Ok(p)
}

/// A required output of a call, added to `spans` as written.
pub(crate) fn required_out<T>(
    p: *mut T,
    arg: &'static str,
    spans: &mut Spans,
) -> Result<*mut T, What> {
    let p = out(p, arg)?;
    spans.add(Span::one(p, arg, true));
    Ok(p)
}

/// Most regions one call checks.
const MAX_SPANS: usize = 8;

/// The regions of one call (at most [`MAX_SPANS`]). Cheap to build and check: nothing is
/// initialised before it is added (a learner's predict call runs this for one sample).
pub(crate) struct Spans {
    spans: [MaybeUninit<Span>; MAX_SPANS],
    len: usize,
    /// The first `trusted` regions are known not to overlap one another (a handle's own
    /// regions, checked when it was created).
    trusted: usize,
}

impl Spans {
    /// No regions.
    pub fn new() -> Spans {
        Spans {
            spans: [const { MaybeUninit::uninit() }; MAX_SPANS],
            len: 0,
            trusted: 0,
        }
    }

    /// Add a region. More than [`MAX_SPANS`] would be a bug in this crate: `check` then
    /// refuses the call rather than leave a region unchecked.
    pub fn add(&mut self, s: Span) -> &mut Spans {
        match self.spans.get_mut(self.len) {
            Some(slot) => {
                slot.write(s);
                self.len += 1;
            }
            // Past the end: `len` says so (`check` refuses), and stays there.
            None => self.len = MAX_SPANS + 1,
        }
        self
    }

    /// Mark the regions added so far as known not to overlap one another.
    pub fn trust(&mut self) -> &mut Spans {
        self.trusted = self.len;
        self
    }

    /// Add an array read (`written` false) or written by the call.
    pub fn array<T>(&mut self, a: &Array<T>, name: &'static str, written: bool) -> &mut Spans {
        self.add(Span::new(
            a.ptr as usize,
            a.len * size_of::<T>(),
            name,
            written,
        ))
    }

    /// Refuse when a written region overlaps any other region.
    pub fn check(&self) -> Result<(), What> {
        if self.len > MAX_SPANS {
            return Err(What::Invalid {
                arg: "(all)",
                why: "more buffers than the library checks in one call",
            });
        }
        // SAFETY: `add` initialised the first `len` (<= MAX_SPANS) entries, and
        // `MaybeUninit<Span>` has the layout of `Span`.
        let spans =
            unsafe { core::slice::from_raw_parts(self.spans.as_ptr().cast::<Span>(), self.len) };
        for (j, b) in spans.iter().enumerate().skip(self.trusted.max(1)) {
            if b.start >= b.end {
                continue;
            }
            for a in &spans[..j] {
                // One of them written, and each starts before the other ends (an empty
                // region overlaps nothing).
                if (a.written | b.written) != 0
                    && a.start < b.end
                    && b.start < a.end
                    && a.start < a.end
                {
                    let (arg, other) = if b.written != 0 {
                        (b.name, a.name)
                    } else {
                        (a.name, b.name)
                    };
                    return Err(What::Overlap { arg, other });
                }
            }
        }
        Ok(())
    }
}

/// Write `v` to the checked output pointer `p`.
///
/// # Safety
/// `p` came from [`out`] and was checked against the call's regions; the caller gives it
/// writable.
pub(crate) unsafe fn put<T>(p: *mut T, v: T) {
    // SAFETY: non-NULL and aligned (checked by `out`), writable by the C contract.
    unsafe { p.write(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(spans: &[(usize, usize, bool)], trusted: usize) -> Result<(), What> {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        let mut s = Spans::new();
        for (i, &(start, len, written)) in spans.iter().enumerate() {
            s.add(Span::new(start, len, names[i], written));
            if i + 1 == trusted {
                s.trust();
            }
        }
        s.check()
    }

    #[test]
    fn a_written_region_may_not_overlap_another() {
        assert_eq!(checked(&[(0, 8, false), (8, 8, true)], 0), Ok(()));
        assert_eq!(
            checked(&[(0, 8, false), (7, 8, true)], 0),
            Err(What::Overlap {
                arg: "b",
                other: "a"
            })
        );
        assert_eq!(
            checked(&[(0, 8, true), (4, 1, false)], 0),
            Err(What::Overlap {
                arg: "a",
                other: "b"
            })
        );
        // Two reads may overlap; an empty region overlaps nothing.
        assert_eq!(checked(&[(0, 8, false), (0, 8, false)], 0), Ok(()));
        assert_eq!(checked(&[(0, 8, true), (4, 0, true)], 0), Ok(()));
        // Trusted regions are not compared with one another, but with the others.
        assert_eq!(
            checked(&[(0, 8, true), (0, 8, true), (16, 4, false)], 2),
            Ok(())
        );
        assert!(checked(&[(0, 8, true), (0, 8, true), (4, 4, false)], 2).is_err());
    }

    #[test]
    fn more_regions_than_fit_refuse_the_call() {
        let nine = [(0, 1, false); 9];
        assert!(matches!(checked(&nine, 0), Err(What::Invalid { .. })));
        assert_eq!(checked(&nine[..8], 0), Ok(()));
    }
}
