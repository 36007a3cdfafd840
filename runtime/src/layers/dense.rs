//! Dense (fully connected) layer: `y[b] = W x[b] + bias`, W `[outputs, inputs]` row-major.

/// Forward for `n` samples: `x` is `n × inputs`, `y` is `n × outputs`.
pub fn forward(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    for (xr, yr) in x
        .chunks_exact(inputs)
        .zip(y.chunks_exact_mut(outputs))
        .take(n)
    {
        for ((yo, wr), &bo) in yr.iter_mut().zip(w.chunks_exact(inputs)).zip(bias) {
            *yo = bo + dot(wr, xr);
        }
    }
}

/// Backward for `n` samples given `g = dL/dy` (`n × outputs`): writes (not accumulates) the
/// weight and bias gradients when given, and `gx = dL/dx` (`n × inputs`) when given.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    x: &[f32],
    g: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    if let Some((dw, db)) = params_grad {
        dw.fill(0.0);
        db.fill(0.0);
        // Two samples per pass over dW: half the loads and stores of the gradient rows.
        let mut rows = x.chunks_exact(inputs).zip(g.chunks_exact(outputs)).take(n);
        loop {
            match (rows.next(), rows.next()) {
                (Some((x0, g0)), Some((x1, g1))) => {
                    for (((dwr, dbo), &a0), &a1) in dw
                        .chunks_exact_mut(inputs)
                        .zip(db.iter_mut())
                        .zip(g0)
                        .zip(g1)
                    {
                        *dbo += a0 + a1;
                        for ((d, &u), &v) in dwr.iter_mut().zip(x0).zip(x1) {
                            *d += a0 * u + a1 * v;
                        }
                    }
                }
                (Some((x0, g0)), None) => {
                    for ((dwr, dbo), &a0) in dw.chunks_exact_mut(inputs).zip(db.iter_mut()).zip(g0)
                    {
                        *dbo += a0;
                        axpy(a0, x0, dwr);
                    }
                    break;
                }
                _ => break,
            }
        }
    }
    if let Some(gx) = gx {
        for (gxr, gr) in gx
            .chunks_exact_mut(inputs)
            .zip(g.chunks_exact(outputs))
            .take(n)
        {
            gxr.fill(0.0);
            // Two weight rows per pass over the input gradient.
            let mut wrows = w.chunks_exact(inputs).zip(gr);
            loop {
                match (wrows.next(), wrows.next()) {
                    (Some((w0, &a0)), Some((w1, &a1))) => {
                        for ((d, &u), &v) in gxr.iter_mut().zip(w0).zip(w1) {
                            *d += a0 * u + a1 * v;
                        }
                    }
                    (Some((w0, &a0)), None) => {
                        axpy(a0, w0, gxr);
                        break;
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Dot product over eight lanes (two SSE / one AVX register); written with fixed-size chunks so
/// the compiler vectorizes it. The summation order is fixed, so results are reproducible.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; L];
    let mut ca = a.chunks_exact(L);
    let mut cb = b.chunks_exact(L);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// `y += a * x`.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}
