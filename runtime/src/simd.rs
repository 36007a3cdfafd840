//! Host builds (feature `std`, x86-64): the hot kernels are compiled three times, once for the
//! build's baseline (SSE2), once with AVX2 and once with AVX-512 (F, VL, BW, DQ), and each call
//! runs the widest copy the CPU has. The copies are the same Rust code, so they compute the
//! same sums in the same order: Rust never fuses a multiply and an add on its own (no FMA
//! contraction), so the wider registers change the speed, not a bit of the results. Devices
//! and other hosts build the kernel once, as before.
//!
//! The environment variable `ANOLE_HOST_SIMD` (`baseline`, `avx2` or `avx512`), read once at
//! the first kernel call, caps the path (to measure one path against another; a CPU without
//! the features named still takes a narrower one). Tests switch paths with [`force`].

/// Defines `$name` with the given signature as a call to `$kernel` (an `#[inline(always)]`
/// function taking the same arguments), dispatched to an AVX-512 or AVX2 copy of the kernel on
/// x86-64 hosts that have them ([`path`]).
macro_rules! host_simd {
    (
        $(#[$m:meta])*
        $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? => $kernel:path
    ) => {
        $(#[$m])*
        #[inline(never)] // one call per layer; keeps the kernel's registers to itself
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($a: $t),*) $(-> $r)? {
                    $kernel($($a),*)
                }
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($a: $t),*) $(-> $r)? {
                    $kernel($($a),*)
                }
                match $crate::simd::path() {
                    // SAFETY: the only precondition of calling a `#[target_feature]` function
                    // is that the CPU supports the features it enables; `path` says `Avx512`
                    // only when every feature `avx512` enables was detected on this CPU. The
                    // function body is safe code.
                    #[allow(unsafe_code)]
                    $crate::simd::Path::Avx512 => return unsafe { avx512($($a),*) },
                    // SAFETY: as above; `path` says `Avx2` only when AVX2 was detected.
                    #[allow(unsafe_code)]
                    $crate::simd::Path::Avx2 => return unsafe { avx2($($a),*) },
                    $crate::simd::Path::Baseline => {}
                }
            }
            $kernel($($a),*)
        }
    };
}

pub(crate) use host_simd;

/// The host kernels' vector paths, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// The build's baseline (SSE2 on x86-64).
    Baseline = 0,
    /// AVX2 (and, for the convolution kernels, FMA).
    Avx2 = 1,
    /// AVX-512 F, VL, BW and DQ (with AVX2 and FMA).
    Avx512 = 2,
}

impl Path {
    /// The name printed by the benchmark: `baseline`, `AVX2` or `AVX-512`.
    pub fn name(self) -> &'static str {
        match self {
            Path::Baseline => "baseline",
            Path::Avx2 => "AVX2",
            Path::Avx512 => "AVX-512",
        }
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod select {
    use super::Path;
    use core::sync::atomic::{AtomicU8, Ordering};

    /// The path taken, once chosen; `UNSET` before the first call.
    static CHOSEN: AtomicU8 = AtomicU8::new(UNSET);
    const UNSET: u8 = u8::MAX;

    fn from_u8(v: u8) -> Path {
        match v {
            2 => Path::Avx512,
            1 => Path::Avx2,
            _ => Path::Baseline,
        }
    }

    /// The widest path this CPU runs. `Avx2` needs AVX2 and FMA (the convolution kernels use
    /// both), `Avx512` everything the AVX-512 copies enable.
    pub fn widest() -> Path {
        use std::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma")) {
            Path::Baseline
        } else if has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512dq") {
            Path::Avx512
        } else {
            Path::Avx2
        }
    }

    /// The cap set by `ANOLE_HOST_SIMD`, if any (an unknown value sets none).
    fn cap() -> Option<Path> {
        match std::env::var("ANOLE_HOST_SIMD")
            .ok()?
            .to_ascii_lowercase()
            .as_str()
        {
            "baseline" | "sse2" => Some(Path::Baseline),
            "avx2" => Some(Path::Avx2),
            "avx512" | "avx-512" => Some(Path::Avx512),
            _ => None,
        }
    }

    #[inline]
    pub fn path() -> Path {
        match CHOSEN.load(Ordering::Relaxed) {
            UNSET => {
                let p = widest().min(cap().unwrap_or(Path::Avx512));
                CHOSEN.store(p as u8, Ordering::Relaxed);
                p
            }
            v => from_u8(v),
        }
    }

    pub fn force(p: Option<Path>) -> Path {
        CHOSEN.store(UNSET, Ordering::Relaxed);
        match p {
            Some(p) => {
                let p = widest().min(p);
                CHOSEN.store(p as u8, Ordering::Relaxed);
                p
            }
            None => path(),
        }
    }
}

/// The path the host kernels take: the widest the CPU has, capped by `ANOLE_HOST_SIMD`.
/// Always [`Path::Baseline`] on other builds.
#[inline]
pub fn path() -> Path {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    return select::path();
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    return Path::Baseline;
}

/// The widest path this CPU runs, whatever [`path`] takes: what the `unsafe` calls of the
/// `#[target_feature]` kernels check.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub(crate) fn widest() -> Path {
    select::widest()
}

/// Makes every thread's kernels take `p`, or the widest path below it that the CPU has;
/// `None` goes back to the default ([`path`]'s, `ANOLE_HOST_SIMD` read again). Returns the
/// path now taken. For tests and benchmarks comparing the paths: every path gives the same
/// bits, so kernels running on other threads meanwhile get the same results either way.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub fn force(p: Option<Path>) -> Path {
    select::force(p)
}

/// Tests: runs `f` once on every path this CPU has (narrowest first; only the baseline on
/// other builds), one such test at a time, then goes back to the default path.
#[cfg(test)]
pub(crate) fn each_path(mut f: impl FnMut(Path)) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        /// Back to the default path, even when `f` panics.
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                force(None);
            }
        }
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let _reset = Reset;
        for p in [Path::Baseline, Path::Avx2, Path::Avx512] {
            if p <= widest() {
                force(Some(p));
                f(p);
            }
        }
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    f(Path::Baseline);
}

/// Square root, correctly rounded either way: the compiler's own on hosts (so loops over it
/// vectorize, and it is encoded for the surrounding AVX code: `libm`'s x86 version is an
/// inline-assembly SSE `sqrtss`, which stalls when mixed into AVX code), `libm` on devices.
#[inline(always)]
pub(crate) fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "std")]
    return x.sqrt();
    #[cfg(not(feature = "std"))]
    return libm::sqrtf(x);
}
