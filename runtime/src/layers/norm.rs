//! Per-channel normalisation: `y = gamma (x - mean) / sqrt(var + eps) + beta`.
//!
//! Two sources for `mean` and `var`:
//! - **batch** statistics over the samples and positions of the current batch, used while
//!   adapting (as in the paper's reference); the backward pass goes through them;
//! - **stored** statistics, used for every prediction. After adapting, the learner recomputes
//!   them from the support set and stores them in the parameters (see `Learner::adapt`), so a
//!   prediction depends on one sample only and the ONNX export is a plain BatchNormalization.
//!
//! Tensors: `gamma[C]`, `beta[C]`, `mean[C]`, `var[C]`. Statistics are biased (divide by N).

/// A norm layer's parameters as stored, its four tensors back to back: scale, shift, then the
/// stored mean and variance, `C` values each.
#[derive(Clone, Copy, Debug)]
pub struct Params<'p> {
    /// Scale (gamma).
    pub gamma: &'p [f32],
    /// Shift (beta).
    pub beta: &'p [f32],
    /// Stored mean.
    pub mean: &'p [f32],
    /// Stored variance.
    pub var: &'p [f32],
}

impl<'p> Params<'p> {
    /// The four tensors of a layer of `c` channels in `params` (at least `4 × c` values).
    pub fn split(c: usize, params: &'p [f32]) -> Params<'p> {
        let (gamma, rest) = params.split_at(c);
        let (beta, rest) = rest.split_at(c);
        let (mean, var) = rest.split_at(c);
        Params {
            gamma,
            beta,
            mean,
            var,
        }
    }
}

/// Where the stored statistics (mean, then variance) lie among the parameters of a layer of
/// `c` channels: what adaptation recomputes rather than trains.
pub const fn stats(c: usize) -> core::ops::Range<usize> {
    2 * c..4 * c
}

/// Lanes of the per-channel sums: each sum over a sample's positions is kept as 8 partial sums
/// added in a fixed order, so the result is the same on every target and the loop vectorizes
/// on the host (a single running sum is one long chain of dependent additions).
const LANES: usize = 8;

/// `Σ f(a[i], b[i])` over the common length, in [`LANES`] partial sums.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..LANES {
            acc[k] += f(x[k], y[k]);
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += f(x, y);
    }
    sum
}

/// Channel `ch`'s sum over the `n` samples and, about the mean `sum / count`, its sum of
/// squared deviations.
#[inline(always)]
fn sums(c: usize, s: usize, x: &[f32], n: usize, ch: usize, count: f32) -> (f32, f32) {
    let plane = |b: usize| &x[(b * c + ch) * s..(b * c + ch + 1) * s];
    let mut sum = 0.0f32;
    for b in 0..n {
        sum += lane_sum(plane(b), plane(b), |v, _| v);
    }
    let mean = sum / count;
    let mut sq = 0.0f32;
    for b in 0..n {
        sq += lane_sum(plane(b), plane(b), |v, _| (v - mean) * (v - mean));
    }
    (sum, sq)
}

crate::simd::host_simd! {
    /// Forward with batch statistics; saves `mean` and `1/sqrt(var+eps)` per channel in `save`
    /// (`2 × C`) for the backward pass.
    pub fn forward_batch(
        c: usize,
        s: usize,
        eps: f32,
        gamma: &[f32],
        beta: &[f32],
        x: &[f32],
        y: &mut [f32],
        n: usize,
        save: &mut [f32],
    ) => forward_batch_kernel
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_batch_kernel(
    c: usize,
    s: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    x: &[f32],
    y: &mut [f32],
    n: usize,
    save: &mut [f32],
) {
    let (means, invs) = save.split_at_mut(c);
    let count = (n * s) as f32;
    for ch in 0..c {
        let (sum, sq) = sums(c, s, x, n, ch, count);
        let mean = sum / count;
        means[ch] = mean;
        invs[ch] = 1.0 / crate::simd::sqrt(sq / count + eps);
    }
    apply(c, s, gamma, beta, means, invs, x, y, n);
}

crate::simd::host_simd! {
    /// Forward with stored statistics.
    pub fn forward_stored(
        c: usize,
        s: usize,
        eps: f32,
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
        x: &[f32],
        y: &mut [f32],
        n: usize,
    ) => forward_stored_kernel
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_stored_kernel(
    c: usize,
    s: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    for ch in 0..c {
        let (scale, shift) = stored_affine(eps, gamma, beta, mean, var, ch);
        for b in 0..n {
            let r = (b * c + ch) * s..(b * c + ch + 1) * s;
            for (yv, xv) in y[r.clone()].iter_mut().zip(&x[r]) {
                *yv = xv * scale + shift;
            }
        }
    }
}

/// Channel `ch`'s normalisation with stored statistics as `x · scale + shift`.
fn stored_affine(
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    ch: usize,
) -> (f32, f32) {
    let inv = 1.0 / crate::simd::sqrt(var[ch] + eps);
    (gamma[ch] * inv, beta[ch] - gamma[ch] * inv * mean[ch])
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn apply(
    c: usize,
    s: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv: &[f32],
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    for b in 0..n {
        for ch in 0..c {
            let r = (b * c + ch) * s..(b * c + ch + 1) * s;
            for (yv, xv) in y[r.clone()].iter_mut().zip(&x[r]) {
                *yv = gamma[ch] * (xv - mean[ch]) * inv[ch] + beta[ch];
            }
        }
    }
}

crate::simd::host_simd! {
    /// Backward. `stats` is `(mean, inv_std)` per channel: the saved batch statistics when
    /// `batch` is true (the gradient then flows through them), else the stored ones.
    /// Writes `dgamma`, `dbeta` when given and `gx` when given.
    pub fn backward(
        c: usize,
        s: usize,
        batch: bool,
        gamma: &[f32],
        mean: &[f32],
        inv: &[f32],
        x: &[f32],
        g: &[f32],
        params_grad: Option<(&mut [f32], &mut [f32])>,
        gx: Option<&mut [f32]>,
        n: usize,
    ) => backward_kernel
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_kernel(
    c: usize,
    s: usize,
    batch: bool,
    gamma: &[f32],
    mean: &[f32],
    inv: &[f32],
    x: &[f32],
    g: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    let count = (n * s) as f32;
    let mut pg = params_grad;
    let mut gx = gx;
    for ch in 0..c {
        let (m, iv) = (mean[ch], inv[ch]);
        let (mut sg, mut sgx) = (0.0f32, 0.0f32);
        for b in 0..n {
            let r = (b * c + ch) * s..(b * c + ch + 1) * s;
            sg += lane_sum(&g[r.clone()], &g[r.clone()], |gv, _| gv);
            sgx += lane_sum(&g[r.clone()], &x[r], |gv, xv| gv * (xv - m) * iv);
        }
        if let Some((dgamma, dbeta)) = pg.as_mut() {
            dgamma[ch] = sgx;
            dbeta[ch] = sg;
        }
        if let Some(gx) = gx.as_mut() {
            let k = gamma[ch] * iv;
            for b in 0..n {
                let r = (b * c + ch) * s..(b * c + ch + 1) * s;
                for ((d, gv), xv) in gx[r.clone()].iter_mut().zip(&g[r.clone()]).zip(&x[r]) {
                    *d = if batch {
                        k * (gv - sg / count - (xv - m) * iv * sgx / count)
                    } else {
                        k * gv
                    };
                }
            }
        }
    }
}

/// Per-channel inverse standard deviations of stored variances into `inv`.
pub fn inv_std(var: &[f32], eps: f32, inv: &mut [f32]) {
    for (i, v) in inv.iter_mut().zip(var) {
        *i = 1.0 / crate::simd::sqrt(v + eps);
    }
}

/// Merge the statistics of a chunk of `n` samples into running per-channel `mean` and `m2`
/// (sum of squared deviations) over `count` values so far (Chan et al.'s parallel update).
#[allow(clippy::too_many_arguments)]
pub fn accumulate(
    c: usize,
    s: usize,
    x: &[f32],
    n: usize,
    mean: &mut [f32],
    m2: &mut [f32],
    count: usize,
) {
    let nb = (n * s) as f32;
    let na = (count * s) as f32;
    for ch in 0..c {
        let (sum, m2b) = sums(c, s, x, n, ch, nb);
        let mb = sum / nb;
        let delta = mb - mean[ch];
        let total = na + nb;
        mean[ch] += delta * nb / total;
        m2[ch] += m2b + delta * delta * na * nb / total;
    }
}

/// [`forward_stored`] writing over its input (`xy` is `n × c×s`): the same arithmetic, for
/// frozen layers whose input is not needed afterwards (the device layout's shared buffers).
#[allow(clippy::too_many_arguments)]
pub fn forward_stored_in_place(
    c: usize,
    s: usize,
    eps: f32,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    xy: &mut [f32],
    n: usize,
) {
    for b in 0..n {
        for ch in 0..c {
            let (scale, shift) = stored_affine(eps, gamma, beta, mean, var, ch);
            for v in &mut xy[(b * c + ch) * s..(b * c + ch + 1) * s] {
                *v = *v * scale + shift;
            }
        }
    }
}
