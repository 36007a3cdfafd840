//! PReLU: `y = x` where `x > 0`, else `slope[c] · x`, one learned slope per channel (per value
//! of a vector). Not in place: the backward pass needs the input for the slopes' gradient.
//! Slopes are read through `slope(c)`, so a frozen layer's slopes are decoded from the blob.

/// Forward for `n` samples of `c` channels of `s` values each.
pub fn forward(
    c: usize,
    s: usize,
    slope: impl Fn(usize) -> f32,
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    let len = n * c * s;
    for (k, (xc, yc)) in x[..len]
        .chunks_exact(s)
        .zip(y[..len].chunks_exact_mut(s))
        .enumerate()
    {
        let a = slope(k % c);
        for (y, &x) in yc.iter_mut().zip(xc) {
            *y = if x > 0.0 { x } else { a * x };
        }
    }
}

/// Backward for `n` samples: the slopes' gradient is written to `ga` (when given, `[c]`), the
/// input gradient to `gx` (when given).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    c: usize,
    s: usize,
    slope: impl Fn(usize) -> f32,
    x: &[f32],
    gy: &[f32],
    mut ga: Option<&mut [f32]>,
    mut gx: Option<&mut [f32]>,
    n: usize,
) {
    let len = n * c * s;
    if let Some(ga) = ga.as_deref_mut() {
        ga[..c].fill(0.0);
    }
    for (k, (xc, gc)) in x[..len]
        .chunks_exact(s)
        .zip(gy[..len].chunks_exact(s))
        .enumerate()
    {
        let ch = k % c;
        if let Some(ga) = ga.as_deref_mut() {
            let mut acc = 0.0f32;
            for (&x, &g) in xc.iter().zip(gc) {
                acc += if x > 0.0 { 0.0 } else { g * x };
            }
            ga[ch] += acc;
        }
        if let Some(gx) = gx.as_deref_mut() {
            let a = slope(ch);
            for ((d, &x), &g) in gx[k * s..(k + 1) * s].iter_mut().zip(xc).zip(gc) {
                *d = if x > 0.0 { g } else { a * g };
            }
        }
    }
}
