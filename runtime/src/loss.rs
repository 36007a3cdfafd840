//! Losses and their gradients with respect to the model output.

/// Mean squared error over all `y.len()` values; writes `dL/dy` into `g` when given.
pub fn mse(y: &[f32], t: &[f32], g: Option<&mut [f32]>) -> f32 {
    let inv = 1.0 / y.len() as f32;
    let loss = y.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() * inv;
    if let Some(g) = g {
        for ((gv, a), b) in g.iter_mut().zip(y).zip(t) {
            *gv = 2.0 * (a - b) * inv;
        }
    }
    loss
}

/// Softmax cross-entropy, mean over the `n` rows of `k` logits; `labels` holds one class index
/// per row (validated by the caller). Writes `dL/dlogits` into `g` when given.
pub fn cross_entropy(logits: &[f32], labels: &[f32], k: usize, g: Option<&mut [f32]>) -> f32 {
    let n = labels.len();
    let inv = 1.0 / n as f32;
    let mut total = 0.0f32;
    let mut g = g;
    for (row, (z, &label)) in logits.chunks_exact(k).zip(labels).enumerate() {
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f32 = z.iter().map(|&v| libm::expf(v - max)).sum();
        let lse = max + libm::logf(sum);
        let label = label as usize;
        total += lse - z[label];
        if let Some(g) = g.as_mut() {
            for (c, (gv, &v)) in g[row * k..(row + 1) * k].iter_mut().zip(z).enumerate() {
                let p = libm::expf(v - lse);
                *gv = (p - if c == label { 1.0 } else { 0.0 }) * inv;
            }
        }
    }
    total * inv
}

/// Index of the largest value (first on ties); 0 for an empty slice.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
