//! In-place activations (ReLU, tanh, sigmoid, clip). Their backward pass is [`super::Post::deliver`], which needs only
//! the activation's output, so no pre-activation copy is kept.

crate::simd::host_simd! {
    /// `x = max(x, 0)` (NaN and -0 unchanged).
    pub fn relu(x: &mut [f32]) => relu_slice
}

#[inline(always)]
fn relu_slice(x: &mut [f32]) {
    for v in x {
        // A select and an unconditional store, so the loop vectorizes.
        *v = if *v < 0.0 { 0.0 } else { *v };
    }
}

crate::simd::host_simd! {
    /// `x = tanh(x)`, element by element with [`tanh`].
    pub fn tanh_in_place(x: &mut [f32]) => tanh_slice
}

#[inline(always)]
fn tanh_slice(x: &mut [f32]) {
    for v in x {
        *v = tanh(*v);
    }
}

crate::simd::host_simd! {
    /// `x = 1 / (1 + e^-x)`, element by element with [`sigmoid`].
    pub fn sigmoid_in_place(x: &mut [f32]) => sigmoid_slice
}

#[inline(always)]
fn sigmoid_slice(x: &mut [f32]) {
    for v in x {
        *v = sigmoid(*v);
    }
}

/// The logistic function as `(1 + tanh(x / 2)) / 2` with [`tanh`]: absolute error below
/// 2e-7 (measured against f64 in the unit test), the same bits on every target, and a loop
/// over it vectorizes as tanh's does. NaN stays NaN.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    0.5 + 0.5 * tanh(0.5 * x)
}

crate::simd::host_simd! {
    /// `x = min(max(x, lo), hi)` (NaN unchanged).
    pub fn clip(x: &mut [f32], lo: f32, hi: f32) => clip_slice
}

#[inline(always)]
fn clip_slice(x: &mut [f32], lo: f32, hi: f32) {
    for v in x {
        // Selects and an unconditional store, so the loop vectorizes; NaN fails both tests.
        let t = if *v < lo { lo } else { *v };
        *v = if t > hi { hi } else { t };
    }
}

/// Leaky ReLU: `x = alpha x` where `x < 0` (NaN unchanged).
pub fn leaky_relu(x: &mut [f32], alpha: f32) {
    for v in x {
        *v = if *v < 0.0 { alpha * *v } else { *v };
    }
}

/// Hard sigmoid: `x = min(max(alpha x + beta, 0), 1)` (NaN stays NaN).
pub fn hard_sigmoid(x: &mut [f32], alpha: f32, beta: f32) {
    for v in x {
        let t = alpha * *v + beta;
        let t = if t < 0.0 { 0.0 } else { t };
        *v = if t > 1.0 { 1.0 } else { t };
    }
}

/// `1 / 6`, the slope of the hard sigmoid inside hard swish.
const SIXTH: f32 = 1.0 / 6.0;

/// Hard swish: `y = x min(max(x / 6 + 1/2, 0), 1)`.
pub fn hard_swish(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        let t = SIXTH * x + 0.5;
        let t = if t < 0.0 { 0.0 } else { t };
        *y = x * if t > 1.0 { 1.0 } else { t };
    }
}

/// Hard swish backward: `gx = gy · d/dx` with `d/dx = 0` below -3, `1` above 3, else
/// `x / 3 + 1/2`.
pub fn hard_swish_grad(x: &[f32], gy: &[f32], gx: &mut [f32]) {
    for ((d, &x), &g) in gx.iter_mut().zip(x).zip(gy) {
        let t = SIXTH * x + 0.5;
        *d = g * if t <= 0.0 {
            0.0
        } else if t >= 1.0 {
            1.0
        } else {
            t + SIXTH * x
        };
    }
}

/// tanh without branches or calls, so loops over it vectorize on the host and stay cheap on a
/// Cortex-M FPU. Absolute error below 2.5e-7 everywhere (measured against f64 in the unit
/// test), relative error below 1e-6 for |x| >= 1e-30.
///
/// - |x| < 0.25: the odd Taylor series to x^9 (truncation error < 3e-9 there);
/// - otherwise `1 - 2 / (e^{2|x|} + 1)` with the sign of x, where `e^a` is computed as
///   `2^k · p(r)`, `a = k ln 2 + r`, |r| <= ln2 / 2, and p the degree-7 Taylor polynomial of
///   `e^r` (relative error < 6e-9); `2^k` is built from its exponent bits. `a` is capped at 40,
///   where tanh is 1 in f32.
#[inline]
pub fn tanh(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75; // ln 2 split so k·LN2_HI is exact for k < 2^8
    const LN2_LO: f32 = 1.428_606_8e-6;
    const TWO23: f32 = 8_388_608.0;
    let sign = x.to_bits() & 0x8000_0000;
    let ax = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    // Large: 1 - 2 / (e^{2|x|} + 1).
    // `a` is 40 for NaN too, as with `min`; written as a compare so it maps to one `minps`.
    let a = if 2.0 * ax < 40.0 { 2.0 * ax } else { 40.0 };
    // k = floor(a·log2 e + 0.5), with t in [0.5, 58.3]. Computed without a float-to-int
    // conversion (Rust's saturating `as` does not vectorize): t rounded to the nearest integer
    // by adding and removing 2^23, less one where that rounded up.
    let t = a * LOG2E + 0.5;
    let near = (t + TWO23) - TWO23;
    let kf = if near > t { near - 1.0 } else { near };
    let r = (a - kf * LN2_HI) - kf * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^k from its exponent bits: kf + 127 + 2^23 holds kf + 127 in its mantissa bits.
    let e = p * f32::from_bits(((kf + (127.0 + TWO23)).to_bits() & 0x007f_ffff) << 23);
    let large = 1.0 - 2.0 / (e + 1.0);
    // Small: x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835.
    let x2 = ax * ax;
    let small = ax
        * (1.0
            + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
    let t = if ax < 0.25 { small } else { large };
    let t = if ax.is_nan() { ax } else { t }; // NaN stays NaN, so divergence is seen
    f32::from_bits(t.to_bits() | sign)
}

#[cfg(test)]
mod tests {
    /// The previous formulation of the large branch's `k` (a float-to-int conversion): the
    /// conversion-free one must give the same `k`, so `tanh` is unchanged bit for bit.
    #[test]
    fn floor_without_conversion_matches_truncation() {
        const LOG2E: f32 = core::f32::consts::LOG2_E;
        const TWO23: f32 = 8_388_608.0;
        // Every float a in [0, 40] whose bit pattern is a multiple of 7, plus 40 itself.
        let mut bits = 0u32;
        while bits <= 40.0f32.to_bits() {
            let a = f32::from_bits(bits);
            let t = a * LOG2E + 0.5;
            let near = (t + TWO23) - TWO23;
            let kf = if near > t { near - 1.0 } else { near };
            assert_eq!(kf, (t as i32) as f32, "a = {a}");
            let e = f32::from_bits(((kf + (127.0 + TWO23)).to_bits() & 0x007f_ffff) << 23);
            assert_eq!(e.to_bits(), ((t as i32 + 127) as u32) << 23, "a = {a}");
            bits += if bits + 7 > 40.0f32.to_bits() && bits < 40.0f32.to_bits() {
                40.0f32.to_bits() - bits
            } else {
                7
            };
        }
    }

    /// The dispatched slice kernel, on every path the CPU has (baseline, AVX2, AVX-512 on
    /// x86-64 hosts), gives the scalar bits.
    #[test]
    fn tanh_in_place_matches_scalar_bit_for_bit() {
        crate::simd::each_path(|p| {
            let xs: [f32; 203] = core::array::from_fn(|i| (i as f32 - 101.0) * 0.173);
            let mut ys = xs;
            super::tanh_in_place(&mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                assert_eq!(y.to_bits(), super::tanh(*x).to_bits(), "{x}, {p:?}");
            }
        });
    }

    #[test]
    fn sigmoid_matches_f64() {
        let mut worst = 0.0f64;
        let mut x = -40.0f32;
        while x <= 40.0 {
            let exact = 1.0 / (1.0 + (-(x as f64)).exp());
            worst = worst.max((super::sigmoid(x) as f64 - exact).abs());
            x += 1.7e-4;
        }
        assert!(worst < 2e-7, "worst absolute error {worst}");
        assert!(super::sigmoid(f32::INFINITY) == 1.0 && super::sigmoid(f32::NEG_INFINITY) == 0.0);
        assert!(super::sigmoid(f32::NAN).is_nan());
        let xs: [f32; 203] = core::array::from_fn(|i| (i as f32 - 101.0) * 0.173);
        let mut ys = xs;
        super::sigmoid_in_place(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            assert_eq!(y.to_bits(), super::sigmoid(*x).to_bits(), "{x}");
        }
    }

    #[test]
    fn clip_keeps_nan_and_bounds() {
        let mut x = [-7.0f32, -0.0, 0.5, 6.0, 9.0, f32::NAN, f32::INFINITY];
        super::clip(&mut x, 0.0, 6.0);
        assert_eq!(&x[..5], &[0.0, -0.0, 0.5, 6.0, 6.0]);
        assert!(x[5].is_nan() && x[6] == 6.0);
        let mut y = [-1e30f32, 3.0];
        super::clip(&mut y, f32::NEG_INFINITY, 1.0);
        assert_eq!(y, [-1e30, 1.0]);
    }

    #[test]
    fn tanh_matches_f64() {
        let mut worst_abs = 0.0f64;
        let mut worst_rel = 0.0f64;
        let mut x = -30.0f32;
        while x <= 30.0 {
            let exact = (x as f64).tanh();
            let got = super::tanh(x) as f64;
            worst_abs = worst_abs.max((got - exact).abs());
            if exact != 0.0 {
                worst_rel = worst_rel.max(((got - exact) / exact).abs());
            }
            x += 1.3e-4;
        }
        for x in [
            0.0f32, -0.0, 1e-30, -1e-20, 0.2499999, 0.25, 9.0, 20.0, 1e30, -1e30,
        ] {
            let exact = (x as f64).tanh();
            let got = super::tanh(x) as f64;
            assert!(
                (got - exact).abs() <= 2.5e-7
                    && (exact == 0.0 || ((got - exact) / exact).abs() < 1e-6),
                "{x}: {got} vs {exact}"
            );
        }
        assert!(worst_abs < 2.5e-7, "worst absolute error {worst_abs}");
        assert!(worst_rel < 1e-6, "worst relative error {worst_rel}");
        assert!(super::tanh(f32::INFINITY) == 1.0 && super::tanh(f32::NEG_INFINITY) == -1.0);
        assert!(super::tanh(f32::NAN).is_nan());
    }
}
