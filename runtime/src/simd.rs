//! Host builds (feature `std`, x86-64): the hot kernels are compiled twice, once for the
//! build's baseline (SSE2) and once with AVX2, and each call runs the AVX2 copy when the CPU
//! has it. Both copies are the same Rust code, so they compute the same sums in the same order:
//! Rust never fuses a multiply and an add on its own (no FMA contraction), so the wider
//! registers change the speed, not a bit of the results. Devices and other hosts build the
//! kernel once, as before.

/// Defines `$name` with the given signature as a call to `$kernel` (an `#[inline(always)]`
/// function taking the same arguments), dispatched to an AVX2 copy of the kernel on x86-64
/// hosts that have AVX2.
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
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($a: $t),*) $(-> $r)? {
                    $kernel($($a),*)
                }
                if ::std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the only precondition of calling a `#[target_feature]` function
                    // is that the CPU supports the features it enables; AVX2 was detected on
                    // this CPU just above. The function body is safe code.
                    #[allow(unsafe_code)]
                    return unsafe { avx2($($a),*) };
                }
            }
            $kernel($($a),*)
        }
    };
}

pub(crate) use host_simd;

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
