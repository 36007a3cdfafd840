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

    /// An output value at `p`, written by the call (NULL, an output not wanted: an empty
    /// region, which overlaps nothing).
    pub fn out<T>(p: *mut T, name: &'static str) -> Span {
        let bytes = if p.is_null() { 0 } else { size_of::<T>() };
        Span::new(p as usize, bytes, name, true)
    }

    /// The same region, written by the call.
    pub fn written(self) -> Span {
        Span { written: 1, ..self }
    }

    /// The same region, only read by the call.
    pub fn read(self) -> Span {
        Span { written: 0, ..self }
    }

    /// Whether `self` and `b` overlap and one of them is written (an empty region overlaps
    /// nothing).
    #[inline(always)]
    fn conflicts(&self, b: &Span) -> bool {
        (self.written | b.written) != 0
            && self.start < b.end
            && b.start < self.end
            && self.start < self.end
            && b.start < b.end
    }
}

/// [`Spans::check`] for calls on a hot path (a learner's predict runs it for every sample):
/// `regions` gives `fixed`, regions known not to overlap one another (a handle's own), and
/// `args`, the call's other regions, in arrays whose sizes the compiler knows. Inlined, the
/// loops unroll, the pairs of two read regions fold away and nothing is stored to memory; a
/// conflict is reported out of line (`regions` called again), as [`Spans::check`] reports it
/// for the same regions in the same order.
#[inline(always)]
pub(crate) fn check_regions<const F: usize, const N: usize>(
    regions: impl Fn() -> ([Span; F], [Span; N]),
) -> Result<(), What> {
    const { assert!(F + N <= MAX_SPANS) };
    let (fixed, args) = regions();
    // Index loops: with constant bounds they unroll completely.
    #[allow(clippy::needless_range_loop)]
    for j in 0..N {
        for i in 0..F {
            if fixed[i].conflicts(&args[j]) {
                return Err(conflict(regions));
            }
        }
        for i in 0..j {
            if args[i].conflicts(&args[j]) {
                return Err(conflict(regions));
            }
        }
    }
    Ok(())
}

/// The error [`Spans::check`] gives for the regions of [`check_regions`]: `fixed` (trusted),
/// then `args`.
#[cold]
#[inline(never)]
fn conflict<const F: usize, const N: usize>(regions: impl Fn() -> ([Span; F], [Span; N])) -> What {
    let (fixed, args) = regions();
    let mut spans = Spans::new();
    for s in fixed {
        spans.add(s);
    }
    spans.trust();
    for s in args {
        spans.add(s);
    }
    match spans.check() {
        Err(what) => what,
        // Unreachable: `check_regions` found a conflict, which `check` finds too.
        Ok(()) => What::Invalid {
            arg: "(all)",
            why: "the library's overlap checks disagree",
        },
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

    /// The array's memory, read (`written` false) or written by the call.
    pub fn span(&self, name: &'static str, written: bool) -> Span {
        Span::new(self.ptr as usize, self.len * size_of::<T>(), name, written)
    }
}

/// Check an array argument: `len` elements of `T` at `p` (NULL allowed only when `len` is 0).
#[inline(always)]
pub(crate) fn array<T>(p: *const T, len: usize, arg: &'static str) -> Result<Array<T>, What> {
    if len == 0 {
        return Ok(Array {
            ptr: core::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        });
    }
    let fits = len
        .checked_mul(size_of::<T>())
        .filter(|b| *b <= isize::MAX as usize)
        .and_then(|b| (p as usize).checked_add(b))
        .is_some();
    if p.is_null() || (p as usize) % align_of::<T>() != 0 || !fits {
        return Err(array_refused(p, arg));
    }
    Ok(Array {
        ptr: p.cast_mut(),
        len,
    })
}

/// Why [`array`] refused a non-empty array at `p`. Out of line: few calls fail.
#[cold]
#[inline(never)]
fn array_refused<T>(p: *const T, arg: &'static str) -> What {
    match out(p.cast_mut(), arg) {
        Err(what) => what,
        Ok(_) => What::Invalid {
            arg,
            why: "length runs past the end of the address space",
        },
    }
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
        self.add(a.span(name, written))
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
    fn the_fixed_size_check_reports_what_the_list_check_reports() {
        // Two trusted regions (one written, one read) and three arguments, each placed in
        // turn everywhere on a small grid, each read or written.
        let names = ["a", "b", "c", "d", "e"];
        let span = |i: usize, (start, len, written): (usize, usize, bool)| {
            Span::new(start, len, names[i], written)
        };
        let fixed = [span(0, (8, 8, true)), span(1, (24, 8, false))];
        let places = [(0, 4), (6, 4), (12, 8), (16, 0), (14, 12), (30, 4), (40, 2)];
        let (mut conflicts, mut clean) = (0, 0);
        for (i, &(s0, l0)) in places.iter().enumerate() {
            for &(s1, l1) in &places[i..] {
                for &(s2, l2) in &places {
                    for w in 0..8 {
                        let args = [
                            span(2, (s0, l0, w & 1 != 0)),
                            span(3, (s1, l1, w & 2 != 0)),
                            span(4, (s2, l2, w & 4 != 0)),
                        ];
                        let mut list = Spans::new();
                        fixed.iter().for_each(|f| {
                            list.add(*f);
                        });
                        list.trust();
                        args.iter().for_each(|a| {
                            list.add(*a);
                        });
                        let expected = list.check();
                        assert_eq!(check_regions(|| (fixed, args)), expected);
                        match expected {
                            Ok(()) => clean += 1,
                            Err(_) => conflicts += 1,
                        }
                    }
                }
            }
        }
        assert!(conflicts > 100 && clean > 100, "{conflicts} {clean}");
    }

    #[test]
    fn more_regions_than_fit_refuse_the_call() {
        let nine = [(0, 1, false); 9];
        assert!(matches!(checked(&nine, 0), Err(What::Invalid { .. })));
        assert_eq!(checked(&nine[..8], 0), Ok(()));
    }
}
