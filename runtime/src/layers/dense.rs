//! Dense (fully connected) layer: `y[b] = W x[b] + bias`, W `[outputs, inputs]` row-major.

use crate::dtype::Stored;

/// Where a dense kernel reads weights (or biases) from: `f32` values in the arena, or a tensor
/// as stored in the blob ([`Stored`], decoded as it is read).
pub trait Weights {
    /// Value `i` (row-major index); `i` within bounds.
    fn at(&self, i: usize) -> f32;
    /// The `N` values from `start`; `None` past the end.
    fn chunk<const N: usize>(&self, start: usize) -> Option<[f32; N]>;
}

impl Weights for [f32] {
    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        self.get(i).copied().unwrap_or(0.0)
    }
    #[inline(always)]
    fn chunk<const N: usize>(&self, start: usize) -> Option<[f32; N]> {
        let s = self.get(start..start.checked_add(N)?)?;
        let mut v = [0.0; N];
        v.copy_from_slice(s);
        Some(v)
    }
}

impl Weights for Stored<'_> {
    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        if i < self.len() {
            self.get(i)
        } else {
            0.0
        }
    }
    #[inline(always)]
    fn chunk<const N: usize>(&self, start: usize) -> Option<[f32; N]> {
        if start.checked_add(N)? > self.len() {
            return None;
        }
        let mut v = [0.0; N];
        for (k, o) in v.iter_mut().enumerate() {
            *o = self.get(start + k);
        }
        Some(v)
    }
}

/// Outputs the forward kernel computes together (weights loaded once for all samples): one
/// vector register of sums per sample (4 lanes; 8 on x86-64, one AVX register, two SSE ones).
#[cfg(not(target_arch = "x86_64"))]
const FWD_OUTPUTS: usize = 4;
#[cfg(target_arch = "x86_64")]
const FWD_OUTPUTS: usize = 8;
/// Samples the forward kernel computes together (each input value loaded once for all
/// outputs of the block).
const FWD_SAMPLES: usize = 5;

crate::simd::host_simd! {
    /// Forward for `n` samples: `x` is `n × inputs`, `y` is `n × outputs`.
    ///
    /// `y[b, o] = bias[o] + s` with `s` the sum of `w[o, i] · x[b, i]` over `i` in order, from 0.
    /// Blocks of outputs × samples keep their sums in registers while the weights of the block
    /// stream once per batch. On hard-float bare-metal Arm the 4 × 5 blocks run as FPU assembly
    /// (`vfp::forward_4x5`), the same additions in the same order.
    pub fn forward(
        inputs: usize,
        outputs: usize,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        n: usize,
    ) => forward_kernel
}

#[inline(always)]
fn forward_kernel(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if n > 2 * FWD_SAMPLES && inputs <= TRANSPOSED_MAX_INPUTS && outputs >= FWD_OUTPUTS {
        return forward_transposed(inputs, outputs, w, bias, x, y, n);
    }
    let mut b0 = 0;
    // x86-64 gathers each weight vector from `FWD_OUTPUTS` rows: twice the samples per block
    // halves that cost (10 sums registers of the 16).
    #[cfg(target_arch = "x86_64")]
    while b0 + 2 * FWD_SAMPLES <= n {
        forward_rows::<{ 2 * FWD_SAMPLES }>(inputs, outputs, w, bias, x, y, b0);
        b0 += 2 * FWD_SAMPLES;
    }
    while b0 + FWD_SAMPLES <= n {
        forward_rows::<FWD_SAMPLES>(inputs, outputs, w, bias, x, y, b0);
        b0 += FWD_SAMPLES;
    }
    while b0 < n {
        forward_rows::<1>(inputs, outputs, w, bias, x, y, b0);
        b0 += 1;
    }
}

/// Most inputs of a layer whose weights the x86-64 forward transposes block by block (on the
/// stack: `FWD_OUTPUTS × TRANSPOSED_MAX_INPUTS` values, 8 KB).
#[cfg(target_arch = "x86_64")]
const TRANSPOSED_MAX_INPUTS: usize = 256;

/// x86-64 forward for batches of more than one 10-sample block: each block of `FWD_OUTPUTS` weight rows is transposed once
/// into `[inputs][FWD_OUTPUTS]`, so the kernel loads each input's weights as one vector
/// instead of gathering them from the rows, for all samples. Same sums in the same order as
/// [`forward_block`], bit for bit.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn forward_transposed(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    let mut wt = [[0.0f32; FWD_OUTPUTS]; TRANSPOSED_MAX_INPUTS];
    let wt = &mut wt[..inputs];
    let mut o0 = 0;
    while o0 + FWD_OUTPUTS <= outputs {
        for (o, row) in w[o0 * inputs..][..FWD_OUTPUTS * inputs]
            .chunks_exact(inputs)
            .enumerate()
        {
            for (t, &v) in wt.iter_mut().zip(row) {
                t[o] = v;
            }
        }
        let mut b0 = 0;
        while b0 + 2 * FWD_SAMPLES <= n {
            transposed_block::<{ 2 * FWD_SAMPLES }>(inputs, outputs, wt, bias, x, y, o0, b0);
            b0 += 2 * FWD_SAMPLES;
        }
        while b0 + FWD_SAMPLES <= n {
            transposed_block::<FWD_SAMPLES>(inputs, outputs, wt, bias, x, y, o0, b0);
            b0 += FWD_SAMPLES;
        }
        while b0 < n {
            transposed_block::<1>(inputs, outputs, wt, bias, x, y, o0, b0);
            b0 += 1;
        }
        o0 += FWD_OUTPUTS;
    }
    for o in o0..outputs {
        for b in 0..n {
            forward_block::<1, 1>(inputs, outputs, w, bias, x, y, o, b);
        }
    }
}

/// Outputs `o0..o0 + FWD_OUTPUTS` of samples `b0..b0 + S` from transposed weights `wt`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn transposed_block<const S: usize>(
    inputs: usize,
    outputs: usize,
    wt: &[[f32; FWD_OUTPUTS]],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    o0: usize,
    b0: usize,
) {
    let mut xr: [&[f32]; S] = [&[]; S];
    for (s, r) in xr.iter_mut().enumerate() {
        *r = &x[(b0 + s) * inputs..][..inputs];
    }
    let mut acc = [[0.0f32; FWD_OUTPUTS]; S];
    for (i, wv) in wt.iter().enumerate() {
        for s in 0..S {
            let xv = xr[s][i];
            for o in 0..FWD_OUTPUTS {
                acc[s][o] += wv[o] * xv;
            }
        }
    }
    for (s, a) in acc.iter().enumerate() {
        let yr = &mut y[(b0 + s) * outputs + o0..][..FWD_OUTPUTS];
        for o in 0..FWD_OUTPUTS {
            yr[o] = bias[o0 + o] + a[o];
        }
    }
}

/// Forward of samples `b0..b0 + S`, all outputs.
#[inline(always)]
fn forward_rows<const S: usize>(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    b0: usize,
) {
    let mut o0 = 0;
    while o0 + FWD_OUTPUTS <= outputs {
        forward_block::<FWD_OUTPUTS, S>(inputs, outputs, w, bias, x, y, o0, b0);
        o0 += FWD_OUTPUTS;
    }
    while o0 < outputs {
        forward_block::<1, S>(inputs, outputs, w, bias, x, y, o0, b0);
        o0 += 1;
    }
}

/// Outputs `o0..o0 + O` of samples `b0..b0 + S`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_block<const O: usize, const S: usize>(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    o0: usize,
    b0: usize,
) {
    let mut wr: [&[f32]; O] = [&[]; O];
    for (o, r) in wr.iter_mut().enumerate() {
        *r = &w[(o0 + o) * inputs..][..inputs];
    }
    let mut xr: [&[f32]; S] = [&[]; S];
    for (s, r) in xr.iter_mut().enumerate() {
        *r = &x[(b0 + s) * inputs..][..inputs];
    }
    #[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
    if O == 4 && S == 5 {
        if let Some(sums) = super::vfp::forward_4x5(inputs, &wr, &xr) {
            for (s, a) in sums.chunks_exact(O).enumerate() {
                let yr = &mut y[(b0 + s) * outputs + o0..][..O];
                for o in 0..O {
                    yr[o] = bias[o0 + o] + a[o];
                }
            }
            return;
        }
    }
    let mut acc = [[0.0f32; O]; S];
    for i in 0..inputs {
        let mut wv = [0.0f32; O];
        for o in 0..O {
            wv[o] = wr[o][i];
        }
        for s in 0..S {
            let xv = xr[s][i];
            for o in 0..O {
                acc[s][o] += wv[o] * xv;
            }
        }
    }
    for (s, a) in acc.iter().enumerate() {
        let yr = &mut y[(b0 + s) * outputs + o0..][..O];
        for o in 0..O {
            yr[o] = bias[o0 + o] + a[o];
        }
    }
}

/// [`forward`] with the weights and biases read from any [`Weights`] (a frozen layer's
/// tensors in flash, decoded as they are read); the same sums in the same order, bit for bit.
pub fn forward_from<W: Weights + ?Sized, B: Weights + ?Sized>(
    inputs: usize,
    outputs: usize,
    w: &W,
    bias: &B,
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    for (xr, yr) in x
        .chunks_exact(inputs)
        .zip(y.chunks_exact_mut(outputs))
        .take(n)
    {
        for (o, yo) in yr.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for (i, &xv) in xr.iter().enumerate() {
                acc += w.at(o * inputs + i) * xv;
            }
            *yo = bias.at(o) + acc;
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
        weight_grad(inputs, outputs, x, g, dw, db, n);
    }
    if let Some(gx) = gx {
        input_grad(inputs, outputs, w, g, gx, n);
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

/// Output rows the weight-gradient kernels handle together (coefficients shared by a chunk).
const ROWS: usize = 4;
/// Inputs per chunk of the blocked kernels (vector width as for `FWD_OUTPUTS`).
#[cfg(not(target_arch = "x86_64"))]
const CHUNK: usize = 4;
#[cfg(target_arch = "x86_64")]
const CHUNK: usize = 8;
/// Samples the input-gradient kernel handles together (weights loaded once for all of them).
const SAMPLES: usize = 5;

/// `acc[r][k] = Σ_b g[b, o0 + r] · x[b, i0 + k]`, summed over the `n` samples in order. Every
/// weight-gradient value of the runtime comes from here, whatever the blocking, so the buffered
/// gradient and the fused update see the same sums bit for bit.
#[inline(always)]
fn weight_sums<const RB: usize, const CB: usize>(
    inputs: usize,
    outputs: usize,
    x: &[f32],
    g: &[f32],
    n: usize,
    o0: usize,
    i0: usize,
) -> [[f32; CB]; RB] {
    let mut acc = [[0.0f32; CB]; RB];
    #[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
    if RB == 4 && CB == 4 && whole_samples(inputs, outputs, x, g, n) {
        let (gb, xb) = (g.get(o0..).unwrap_or(&[]), x.get(i0..).unwrap_or(&[]));
        if let Some(sums) = super::vfp::weight_sums_4x4(gb, outputs, xb, inputs, n) {
            for (r, a) in acc.iter_mut().enumerate() {
                a.copy_from_slice(&sums[r * CB..][..CB]);
            }
            return acc;
        }
    }
    for (xr, gr) in x.chunks_exact(inputs).zip(g.chunks_exact(outputs)).take(n) {
        let (Some(xs), Some(gs)) = (xr.get(i0..i0 + CB), gr.get(o0..o0 + RB)) else {
            break;
        };
        for r in 0..RB {
            for k in 0..CB {
                acc[r][k] += gs[r] * xs[k];
            }
        }
    }
    acc
}

/// Hands every weight-gradient sum to `sink(o, i0, sums)` (sums of row `o`, inputs
/// `i0..i0 + sums.len()`), block by block; stops and returns false when `sink` does. The full
/// `ROWS × CHUNK` blocks of each band of `ROWS` rows are first offered to
/// `band(state, o0, cols)` (columns `0..cols`), which may do them all itself (`Some(ok)`, as if
/// their rows went through `sink` block by block, in order) or decline (`None`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn for_weight_sums<T: ?Sized>(
    state: &mut T,
    inputs: usize,
    outputs: usize,
    x: &[f32],
    g: &[f32],
    n: usize,
    mut band: impl FnMut(&mut T, usize, usize) -> Option<bool>,
    mut sink: impl FnMut(&mut T, usize, usize, &[f32]) -> bool,
) -> bool {
    let full_rows = outputs - outputs % ROWS;
    let full_cols = inputs - inputs % CHUNK;
    let mut o0 = 0;
    while o0 < full_rows {
        let mut i0 = 0;
        if full_cols > 0 {
            match band(state, o0, full_cols) {
                Some(true) => i0 = full_cols,
                Some(false) => return false,
                None => {}
            }
        }
        while i0 < full_cols {
            let acc = weight_sums::<ROWS, CHUNK>(inputs, outputs, x, g, n, o0, i0);
            for (r, a) in acc.iter().enumerate() {
                if !sink(state, o0 + r, i0, a) {
                    return false;
                }
            }
            i0 += CHUNK;
        }
        while i0 < inputs {
            let acc = weight_sums::<ROWS, 1>(inputs, outputs, x, g, n, o0, i0);
            for (r, a) in acc.iter().enumerate() {
                if !sink(state, o0 + r, i0, a) {
                    return false;
                }
            }
            i0 += 1;
        }
        o0 += ROWS;
    }
    while o0 < outputs {
        let mut i0 = 0;
        while i0 < full_cols {
            let [a] = weight_sums::<1, CHUNK>(inputs, outputs, x, g, n, o0, i0);
            if !sink(state, o0, i0, &a) {
                return false;
            }
            i0 += CHUNK;
        }
        while i0 < inputs {
            let [a] = weight_sums::<1, 1>(inputs, outputs, x, g, n, o0, i0);
            if !sink(state, o0, i0, &a) {
                return false;
            }
            i0 += 1;
        }
        o0 += 1;
    }
    true
}

/// Whether `x` and `g` hold whole rows for all `n` samples, as the Rust sums (which stop at the
/// last whole row) need for the Arm kernels to see the same samples.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
#[inline(always)]
fn whole_samples(inputs: usize, outputs: usize, x: &[f32], g: &[f32], n: usize) -> bool {
    n.saturating_mul(inputs) <= x.len() && n.saturating_mul(outputs) <= g.len()
}

// The Arm kernels are written for these block sizes.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
const _: () =
    assert!(ROWS == 4 && CHUNK == 4 && FWD_OUTPUTS == 4 && FWD_SAMPLES == 5 && SAMPLES == 5);

/// `db[o] = Σ_b g[b, o]`, summed over the `n` samples in order.
fn bias_sums(outputs: usize, g: &[f32], n: usize, db: &mut [f32]) {
    db.fill(0.0);
    for gr in g.chunks_exact(outputs).take(n) {
        for (d, &v) in db.iter_mut().zip(gr) {
            *d += v;
        }
    }
}

crate::simd::host_simd! {
    /// Weight and bias gradients of `n` samples (written, not accumulated).
    fn weight_grad(
        inputs: usize,
        outputs: usize,
        x: &[f32],
        g: &[f32],
        dw: &mut [f32],
        db: &mut [f32],
        n: usize,
    ) => weight_grad_kernel
}

#[inline(always)]
fn weight_grad_kernel(
    inputs: usize,
    outputs: usize,
    x: &[f32],
    g: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    n: usize,
) {
    for_weight_sums(
        dw,
        inputs,
        outputs,
        x,
        g,
        n,
        |_, _, _| None,
        |dw, o, i0, sums| {
            if let Some(d) = dw.get_mut(o * inputs + i0..o * inputs + i0 + sums.len()) {
                d.copy_from_slice(sums);
            }
            true
        },
    );
    bias_sums(outputs, g, n, db);
}

crate::simd::host_simd! {
    /// `gx[b, i] = Σ_o g[b, o] · w[o, i]` for the `n` samples (written, not accumulated): sums
    /// over the outputs in order, from 0, blocks of samples × inputs held in registers.
    pub fn input_grad(
        inputs: usize,
        outputs: usize,
        w: &[f32],
        g: &[f32],
        gx: &mut [f32],
        n: usize,
    ) => input_grad_kernel
}

#[inline(always)]
fn input_grad_kernel(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    g: &[f32],
    gx: &mut [f32],
    n: usize,
) {
    let full_cols = inputs - inputs % CHUNK;
    let mut b0 = 0;
    while b0 < n {
        let mut i0 = 0;
        if b0 + SAMPLES <= n {
            while i0 < full_cols {
                input_block::<SAMPLES, CHUNK>(inputs, outputs, w, g, gx, b0, i0);
                i0 += CHUNK;
            }
            while i0 < inputs {
                input_block::<SAMPLES, 1>(inputs, outputs, w, g, gx, b0, i0);
                i0 += 1;
            }
            b0 += SAMPLES;
        } else {
            while i0 < full_cols {
                input_block::<1, CHUNK>(inputs, outputs, w, g, gx, b0, i0);
                i0 += CHUNK;
            }
            while i0 < inputs {
                input_block::<1, 1>(inputs, outputs, w, g, gx, b0, i0);
                i0 += 1;
            }
            b0 += 1;
        }
    }
}

/// `gx` of samples `b0..b0 + S`, inputs `i0..i0 + C`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
// `o` indexes the S output-gradient rows at once (one coefficient per sample per output).
#[allow(clippy::needless_range_loop)]
fn input_block<const S: usize, const C: usize>(
    inputs: usize,
    outputs: usize,
    w: &[f32],
    g: &[f32],
    gx: &mut [f32],
    b0: usize,
    i0: usize,
) {
    let mut gr: [&[f32]; S] = [&[]; S];
    for (s, r) in gr.iter_mut().enumerate() {
        *r = &g[(b0 + s) * outputs..][..outputs];
    }
    #[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
    if S == 5 && C == 4 {
        if let Some(sums) = super::vfp::input_grad_5x4(outputs, &w[i0..], inputs, &gr) {
            for (s, a) in sums.chunks_exact(C).enumerate() {
                gx[(b0 + s) * inputs + i0..][..C].copy_from_slice(a);
            }
            return;
        }
    }
    let mut acc = [[0.0f32; C]; S];
    // Row `o` of `w`, columns `i0..i0 + C`, at `off`.
    let mut off = i0;
    for o in 0..outputs {
        let wv = &w[off..off + C];
        off += inputs;
        for s in 0..S {
            let c = gr[s][o];
            for k in 0..C {
                acc[s][k] += c * wv[k];
            }
        }
    }
    for (s, a) in acc.iter().enumerate() {
        gx[(b0 + s) * inputs + i0..][..C].copy_from_slice(a);
    }
}

/// [`input_grad`] with the weights read from any [`Weights`] (a frozen layer's tensor in
/// flash, decoded as it is read); the same sums in the same order, bit for bit.
pub fn input_grad_from<W: Weights + ?Sized>(
    inputs: usize,
    outputs: usize,
    w: &W,
    g: &[f32],
    gx: &mut [f32],
    n: usize,
) {
    for (gxr, gr) in gx
        .chunks_exact_mut(inputs)
        .zip(g.chunks_exact(outputs))
        .take(n)
    {
        for (i, d) in gxr.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for (o, &c) in gr.iter().enumerate() {
                acc += c * w.at(o * inputs + i);
            }
            *d = acc;
        }
    }
}

/// Backward and SGD update in one pass, for `n` samples given `g = dL/dy` (`n × outputs`):
/// first `gx = dL/dx` (when given) from the weights as they are, then `w -= lr_w · dL/dW` and
/// `bias -= lr_b · dL/db`, each gradient value used as soon as it is summed (no gradient
/// buffer). The new values equal, bit for bit, those of [`backward`] followed by `p -= lr · g`.
///
/// New values are checked a block (a few weights) at a time before the block is written: at
/// the first block holding a non-finite value it returns `false`, with the blocks before it
/// updated (all finite) and the rest of `w` and all of `bias` unchanged.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // one call per layer; keeps the kernel's registers to itself
pub fn backward_sgd(
    inputs: usize,
    outputs: usize,
    w: &mut [f32],
    bias: &mut [f32],
    x: &[f32],
    g: &[f32],
    gx: Option<&mut [f32]>,
    n: usize,
    lr_w: f32,
    lr_b: f32,
) -> bool {
    if let Some(gx) = gx {
        input_grad(inputs, outputs, w, g, gx, n);
    }
    // The fused band kernel of hard-float Arm (sums, update and check in registers).
    #[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
    let band = |w: &mut [f32], o0: usize, cols: usize| {
        if !whole_samples(inputs, outputs, x, g, n) {
            return None;
        }
        let p = w.get_mut(o0.checked_mul(inputs)?..)?;
        super::vfp::sgd_band_4x4(g.get(o0..)?, outputs, x, inputs, n, p, cols / 4, lr_w)
    };
    #[cfg(not(all(target_arch = "arm", target_abi = "eabihf", target_os = "none")))]
    let band = |_: &mut [f32], _: usize, _: usize| None;
    let ok = for_weight_sums(w, inputs, outputs, x, g, n, band, |w, o, i0, sums| {
        let Some(p) = w.get_mut(o * inputs + i0..o * inputs + i0 + sums.len()) else {
            return true;
        };
        // `z` stays 0 while every new value is finite and becomes NaN otherwise: one
        // multiply-accumulate per value instead of a compare and branch.
        let mut new = [0.0f32; CHUNK];
        let mut z = 0.0f32;
        for ((q, &p), &s) in new.iter_mut().zip(p.iter()).zip(sums) {
            *q = p - lr_w * s;
            z += *q * 0.0;
        }
        if z != 0.0 {
            return false;
        }
        p.copy_from_slice(&new[..p.len()]);
        true
    });
    if !ok {
        return false;
    }
    // The bias, four outputs at a time: sums over the samples in order (as `bias_sums`),
    // then each checked before it is written.
    let mut o0 = 0;
    while o0 < outputs.min(bias.len()) {
        let m = (outputs.min(bias.len()) - o0).min(4);
        let mut acc = [0.0f32; 4];
        for gr in g.chunks_exact(outputs).take(n) {
            for (a, &v) in acc.iter_mut().zip(&gr[o0..o0 + m]) {
                *a += v;
            }
        }
        for (b, &a) in bias[o0..o0 + m].iter_mut().zip(&acc) {
            let new = *b - lr_b * a;
            if !new.is_finite() {
                return false;
            }
            *b = new;
        }
        o0 += m;
    }
    true
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    fn values(seed: u32, len: usize) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The dispatched kernels on every path the CPU has (baseline, AVX2, AVX-512 copies on
    /// x86-64 hosts) and the kernels as built for the baseline give the same bits: wider
    /// registers, same sums in the same order. Also the sums themselves: in input order from 0,
    /// as the doc comments promise.
    #[test]
    fn dispatched_kernels_match_baseline_bit_for_bit() {
        crate::simd::each_path(|_| {
            for &(inputs, outputs, n) in &[
                (1, 64, 10),
                (64, 64, 10),
                (64, 1, 25),
                (7, 13, 3),
                (256, 5, 11),
            ] {
                let w = values(1, inputs * outputs);
                let b = values(2, outputs);
                let x = values(3, n * inputs);
                let g = values(4, n * outputs);
                let (mut y0, mut y1) = (vec![0.0; n * outputs], vec![1.0; n * outputs]);
                super::forward(inputs, outputs, &w, &b, &x, &mut y0, n);
                super::forward_kernel(inputs, outputs, &w, &b, &x, &mut y1, n);
                assert_eq!(y0, y1);
                for s in 0..n {
                    for o in 0..outputs {
                        let mut acc = 0.0f32;
                        for i in 0..inputs {
                            acc += w[o * inputs + i] * x[s * inputs + i];
                        }
                        assert_eq!(y0[s * outputs + o], b[o] + acc);
                    }
                }
                let (mut gx0, mut gx1) = (vec![0.0; n * inputs], vec![1.0; n * inputs]);
                super::input_grad(inputs, outputs, &w, &g, &mut gx0, n);
                super::input_grad_kernel(inputs, outputs, &w, &g, &mut gx1, n);
                assert_eq!(gx0, gx1);
                let (mut dw0, mut db0) = (vec![0.0; w.len()], vec![0.0; outputs]);
                let (mut dw1, mut db1) = (vec![1.0; w.len()], vec![1.0; outputs]);
                super::weight_grad(inputs, outputs, &x, &g, &mut dw0, &mut db0, n);
                super::weight_grad_kernel(inputs, outputs, &x, &g, &mut dw1, &mut db1, n);
                assert_eq!((dw0, db0), (dw1, db1));
            }
        });
    }
}
