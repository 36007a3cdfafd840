//! x86-64 hosts with AVX2 and FMA: the per-offset convolution of `conv_gemm` (forward, input
//! gradient, weight gradient) as kernels that read the channels-last padded images, the
//! output gradient and the weights where they lie: no gathered matrix and no packing. At
//! batch 1 matrixmultiply spends as long packing the weights as multiplying them, and in
//! training the gathers and packing of every product cost a third of its time.
//!
//! Bit-identical to the `general_mat_mul` path they replace (matrixmultiply's FMA kernel),
//! so a result never depends on which path ran: every product element is, per block of
//! [`KC`] values of the inner dimension, a chain of fused multiply-adds in order, from zero,
//! added onto the running value, from +0; the products of successive kernel offsets are
//! added in kernel order. The tests compare both paths bit for bit.
//!
//! Every kernel is an outer product: 12 accumulators (6 rows × 2 AVX registers of 8),
//! 2 vector loads and 6 broadcasts per 12 multiply-adds.
//!
//! Soundness: the public functions check the CPU and the buffers against the geometry
//! (`Layout::check`, panicking otherwise) before they call the `#[target_feature]` kernels;
//! each kernel reads through slices and asserts, once per block, that the last value it loads
//! lies inside them, so its unchecked loads stay in bounds whatever it is given. Each `unsafe`
//! block says why its operations are sound.
#![allow(unsafe_code)]

use std::vec::Vec;

use crate::simd::Path;
use core::arch::x86_64::{
    __m256, __m512, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_setzero_ps, _mm256_storeu_ps, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

/// Channels per block: two AVX registers, one AVX-512 register.
pub const CH_BLOCK: usize = 16;
/// The most rows of a block of any kernel (the AVX-512 kernels', set where `drivers!` runs).
const MAX_ROWS: usize = 16;
/// The depth of matrixmultiply's f32 blocks (`S_KC`): its chain of multiply-adds restarts
/// every `KC` values of the inner dimension, and so do these kernels'.
const KC: usize = 256;

/// Calls the kernel `$f::<R>` built for the block's number of rows (`1..=6` or `1..=16`), so
/// each block size gets its accumulators in registers.
macro_rules! by_rows {
    (6, $rows:expr, $f:ident($($a:expr),* $(,)?)) => {
        match $rows {
            6 => $f::<6>($($a),*),
            5 => $f::<5>($($a),*),
            4 => $f::<4>($($a),*),
            3 => $f::<3>($($a),*),
            2 => $f::<2>($($a),*),
            _ => $f::<1>($($a),*),
        }
    };
    (16, $rows:expr, $f:ident($($a:expr),* $(,)?)) => {
        match $rows {
            16 => $f::<16>($($a),*),
            15 => $f::<15>($($a),*),
            14 => $f::<14>($($a),*),
            13 => $f::<13>($($a),*),
            12 => $f::<12>($($a),*),
            11 => $f::<11>($($a),*),
            10 => $f::<10>($($a),*),
            9 => $f::<9>($($a),*),
            8 => $f::<8>($($a),*),
            7 => $f::<7>($($a),*),
            _ => by_rows!(6, $rows, $f($($a),*)),
        }
    };
}

/// A block's results: up to [`MAX_ROWS`] rows of [`CH_BLOCK`] values.
type Block = [[f32; CH_BLOCK]; MAX_ROWS];

/// Fuzzing builds only: when set, [`usable`] says no, so the host convolution takes its
/// matrix-product path and a fuzz target can compare both paths bit for bit.
#[cfg(fuzzing)]
pub static DISABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The kernels' path: AVX-512 or AVX2 (with FMA), or `Baseline` when they cannot run.
fn cpu() -> Path {
    #[cfg(fuzzing)]
    if DISABLED.load(core::sync::atomic::Ordering::Relaxed) {
        return Path::Baseline;
    }
    crate::simd::path()
}

/// Whether this CPU runs the kernels and the geometry suits them (whole blocks of output and
/// input channels, at least one of each).
pub fn usable(cin: usize, cout: usize) -> bool {
    blocks(cin) && blocks(cout) && cpu() >= Path::Avx2
}

/// Whether `c` channels are whole blocks, at least one.
fn blocks(c: usize) -> bool {
    c > 0 && c.is_multiple_of(CH_BLOCK)
}

/// The weights `[cout, cin, k²]` reordered for [`forward`] into `out`: block `b` of
/// [`CH_BLOCK`] output channels, then input channel `ci`, then kernel offset `j`, then the
/// block's output channels (contiguous). Each input channel's `k² × 16` values are one
/// contiguous run, written whole from the block's 16 rows (no power-of-two strides, which
/// would make the writes contend for one L1 set).
pub fn reorder_forward(cout: usize, cin: usize, kk: usize, wt: &[f32], out: &mut [f32]) {
    for (wb, ob) in wt
        .chunks_exact(CH_BLOCK * cin * kk)
        .zip(out.chunks_exact_mut(cin * kk * CH_BLOCK))
        .take(cout / CH_BLOCK)
    {
        for (ci, oc) in ob.chunks_exact_mut(kk * CH_BLOCK).enumerate() {
            for (t, w) in wb.chunks_exact(cin * kk).enumerate() {
                for (o, &v) in oc.chunks_exact_mut(CH_BLOCK).zip(&w[ci * kk..][..kk]) {
                    o[t] = v;
                }
            }
        }
    }
}

/// The weights `[cout, cin, k²]` reordered for [`backward_input`] into `out`: kernel offset
/// `j`, then output channel `co`, then the input channels (contiguous). Per output channel
/// and 8 input channels, the `8 × k²` weights (one contiguous run) are transposed into k²
/// runs of 8, each written whole.
pub fn reorder_input_grad(cout: usize, cin: usize, kk: usize, wt: &[f32], out: &mut [f32]) {
    let out = &mut out[..cout * cin * kk];
    for (co, row) in wt.chunks_exact(cin * kk).take(cout).enumerate() {
        let blocks = row.chunks_exact(8 * kk);
        let (rest, c_rest) = (blocks.remainder(), cin - cin % 8);
        for (b, block) in blocks.enumerate() {
            for j in 0..kk {
                let v: [f32; 8] = core::array::from_fn(|i| block[i * kk + j]);
                out[(j * cout + co) * cin + 8 * b..][..8].copy_from_slice(&v);
            }
        }
        // The last `cin mod 8` input channels, one value at a time.
        for (i, w) in rest.chunks_exact(kk).enumerate() {
            for (j, &v) in w.iter().enumerate() {
                out[(j * cout + co) * cin + c_rest + i] = v;
            }
        }
    }
}

/// Where the windows lie: `n` padded images of `image_len` floats each (`ph × pw` pixels of
/// `cin` channels); output position `p` of a sample reads, for kernel offset `j`, the pixel
/// `origins[j] + starts[p]`. The output (gradient) is `n × cout × P`.
pub struct Layout<'a> {
    pub n: usize,
    pub image_len: usize,
    pub cin: usize,
    pub cout: usize,
    pub starts: &'a [usize],
    pub origins: &'a [usize],
}

impl Layout<'_> {
    fn positions(&self) -> usize {
        self.n * self.starts.len()
    }
    /// For position `q` (sample-major), its window's first float in the images at offset 0
    /// and its first value in the output (channel 0).
    fn at(&self, q: usize) -> (usize, usize) {
        let plane = self.starts.len();
        let (s, p) = (q / plane, q % plane);
        (
            s * self.image_len + self.starts[p] * self.cin,
            s * self.cout * plane + p,
        )
    }
    /// Panics unless the CPU has AVX2 and FMA (whatever path [`usable`] chose: the kernels
    /// need only the features), the channels come in whole blocks, the images,
    /// the output and the weights are as large as the geometry says, and every window lies
    /// inside its image, all in checked arithmetic: then no index the kernels compute
    /// overflows. (The kernels bound their own unchecked reads as well, block by block.)
    fn check(&self, images: usize, out: usize, weights: usize, what: &str) {
        let fits = || -> Option<bool> {
            let plane = self.starts.len();
            let reach = (self.origins.iter().max().copied().unwrap_or(0))
                .checked_add(self.starts.iter().max().copied().unwrap_or(0))?
                .checked_add(1)?;
            Some(
                reach.checked_mul(self.cin)? <= self.image_len
                    && self.n.checked_mul(self.image_len)? <= images
                    && self.n.checked_mul(self.cout)?.checked_mul(plane)? <= out
                    && (self.cout.checked_mul(self.cin)?).checked_mul(self.origins.len())?
                        <= weights,
            )
        };
        assert!(
            blocks(self.cin) && blocks(self.cout) && crate::simd::widest() >= Path::Avx2,
            "conv_fma::{what}: a CPU without AVX2 and FMA, or channels not in blocks of {CH_BLOCK}"
        );
        assert!(
            fits() == Some(true),
            "conv_fma::{what}: buffers too small for the geometry, or a window outside its image"
        );
    }
}

/// Runs `$f` of the AVX-512 drivers or the AVX2 ones, as the path allows; `check` confirmed
/// that the CPU has at least AVX2 and FMA.
macro_rules! dispatch {
    ($f:ident($($a:expr),* $(,)?)) => {
        match cpu() {
            // SAFETY: calling a `#[target_feature]` function needs only that the CPU has its
            // features; the path is `Avx512` only when every feature `avx512` enables was
            // detected on this CPU (`simd::path` never exceeds `simd::widest`).
            Path::Avx512 => unsafe { avx512::$f($($a),*) },
            // SAFETY: as above; `check` confirmed AVX2 and FMA (`simd::widest`).
            _ => unsafe { avx2::$f($($a),*) },
        }
    };
}

/// `y` = the convolution of `images` with the weights `wr` (from [`reorder_forward`]), plus
/// `bias`.
pub fn forward(lay: &Layout<'_>, images: &[f32], wr: &[f32], bias: &[f32], y: &mut [f32]) {
    lay.check(images.len(), y.len(), wr.len(), "forward");
    assert!(bias.len() >= lay.cout, "conv_fma::forward: bias too short");
    dispatch!(forward_run(lay, images, wr, bias, y))
}

/// Adds onto `grad` (padded images like the input's, channels last) the input gradient of
/// output gradient `gy`, with the weights `wr` (from [`reorder_input_grad`]): per kernel
/// offset in order, each position's `cin` values onto the pixel under its window.
pub fn backward_input(lay: &Layout<'_>, gy: &[f32], wr: &[f32], grad: &mut [f32]) {
    lay.check(grad.len(), gy.len(), wr.len(), "backward_input");
    dispatch!(input_run(lay, gy, wr, grad))
}

/// The weight gradient of output gradient `gy` and the input `images`, written (not added)
/// into `dw` (`[cout, cin, k²]`); zeros for an empty batch.
pub fn backward_weights(lay: &Layout<'_>, images: &[f32], gy: &[f32], dw: &mut [f32]) {
    lay.check(images.len(), gy.len(), dw.len(), "backward_weights");
    dispatch!(weights_run(lay, images, gy, dw))
}

/// Every position's window (its first float in the images) and output-gradient value
/// (channel 0), sample-major, with the largest of each: a kernel bounds all its reads of a
/// block with one comparison per buffer.
struct Positions {
    pix: Vec<usize>,
    gq: Vec<usize>,
    /// The largest of `pix` and of `gq`; `None` when there is no position.
    last: Option<(usize, usize)>,
}

impl Positions {
    fn new(lay: &Layout<'_>) -> Positions {
        let (pix, gq): (Vec<usize>, Vec<usize>) = (0..lay.positions()).map(|q| lay.at(q)).unzip();
        let last = pix.iter().max().copied().zip(gq.iter().max().copied());
        Positions { pix, gq, last }
    }
}

/// The drivers of one path, in module `$m`: its functions enable `$feat`, block `$rows` rows
/// and call the kernels `$chain` and `$outer`. The path changes how many rows share a block,
/// never the order of any element's sum.
macro_rules! drivers {
    ($m:ident, $feat:literal, $rows:tt, $chain:ident, $outer:ident) => {
        mod $m {
            use super::*;

            #[target_feature(enable = $feat)]
            pub(super) fn forward_run(
                lay: &Layout<'_>,
                images: &[f32],
                wr: &[f32],
                bias: &[f32],
                y: &mut [f32],
            ) {
                let (cin, cout, kk) = (lay.cin, lay.cout, lay.origins.len());
                let plane = lay.starts.len();
                let total = lay.positions();
                // Per input channel of a block: the weights of its k² offsets, 16 values each.
                let step = kk * CH_BLOCK;
                let mut q = 0;
                while q < total {
                    let rows = $rows.min(total - q);
                    let px = Rows::new(core::array::from_fn(|t| {
                        if t < rows {
                            lay.at(q + t).0
                        } else {
                            0
                        }
                    }));
                    for b in 0..cout / CH_BLOCK {
                        let wb = &wr[b * cin * step..][..cin * step];
                        let mut sums = [[0.0f32; CH_BLOCK]; MAX_ROWS];
                        // Per offset and KC input channels: the weights of (ci, j) at
                        // (ci·k² + j)·16 in the block's, each position's input value at its
                        // pixel + origin·cin + ci.
                        for (j, &origin) in lay.origins.iter().enumerate() {
                            let (w, x) = (&wb[j * CH_BLOCK..], &images[origin * cin..]);
                            by_rows!($rows, rows, $chain(cin, w, step, x, &px, 1, &mut sums));
                        }
                        for (t, v) in sums.iter().enumerate().take(rows) {
                            let (s, p) = ((q + t) / plane, (q + t) % plane);
                            for (u, &value) in v.iter().enumerate() {
                                let co = b * CH_BLOCK + u;
                                y[(s * cout + co) * plane + p] = value + bias[co];
                            }
                        }
                    }
                    q += rows;
                }
            }

            #[target_feature(enable = $feat)]
            pub(super) fn input_run(lay: &Layout<'_>, gy: &[f32], wr: &[f32], grad: &mut [f32]) {
                let (cin, cout) = (lay.cin, lay.cout);
                let plane = lay.starts.len();
                let total = lay.positions();
                for (j, &origin) in lay.origins.iter().enumerate() {
                    let wj = &wr[j * cout * cin..][..cout * cin];
                    let mut q = 0;
                    while q < total {
                        let rows = $rows.min(total - q);
                        // Each position's output gradient (channel `co` at + co·P) and pixel.
                        let (mut gq, mut px) = ([0usize; MAX_ROWS], [0usize; MAX_ROWS]);
                        for t in 0..rows {
                            (px[t], gq[t]) = lay.at(q + t);
                        }
                        let gq = Rows::new(gq);
                        for c0 in (0..cin).step_by(CH_BLOCK) {
                            // Chain over the output channels: weights of (j, co) at co·cin + c0
                            // in the offset's.
                            let mut sums = [[0.0f32; CH_BLOCK]; MAX_ROWS];
                            by_rows!(
                                $rows,
                                rows,
                                $chain(cout, &wj[c0..], cin, gy, &gq, plane, &mut sums)
                            );
                            for (t, v) in sums.iter().enumerate().take(rows) {
                                let d = &mut grad[px[t] + origin * cin + c0..][..CH_BLOCK];
                                for (dv, &value) in d.iter_mut().zip(v) {
                                    *dv += value;
                                }
                            }
                        }
                        q += rows;
                    }
                }
            }

            #[target_feature(enable = $feat)]
            pub(super) fn weights_run(
                lay: &Layout<'_>,
                images: &[f32],
                gy: &[f32],
                dw: &mut [f32],
            ) {
                let (cin, cout, kk) = (lay.cin, lay.cout, lay.origins.len());
                let plane = lay.starts.len();
                let pos = Positions::new(lay);
                if pos.last.is_none() {
                    // No position: every sum is empty.
                    dw[..cout * cin * kk].fill(0.0);
                    return;
                }
                for (j, &origin) in lay.origins.iter().enumerate() {
                    let mut co0 = 0;
                    while co0 < cout {
                        let rows = $rows.min(cout - co0);
                        let g = &gy[co0 * plane..];
                        for c0 in (0..cin).step_by(CH_BLOCK) {
                            let mut sums = [[0.0f32; CH_BLOCK]; MAX_ROWS];
                            let x = &images[origin * cin + c0..];
                            by_rows!($rows, rows, $outer(&pos, plane, g, x, &mut sums));
                            for (t, v) in sums.iter().enumerate().take(rows) {
                                for (u, &value) in v.iter().enumerate() {
                                    dw[((co0 + t) * cin + c0 + u) * kk + j] = value;
                                }
                            }
                        }
                        co0 += rows;
                    }
                }
            }
        }
    };
}

// Rows per block (positions, or output channels for the weight gradient). AVX2: 6 × 2
// accumulators, 2 vector registers and a broadcast fill the 16 AVX registers. AVX-512: 16
// accumulators of one register each and a vector, in the 32 registers.
drivers!(avx2, "avx2,fma", 6, chain, outer);
drivers!(
    avx512,
    "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma",
    16,
    chain512,
    outer512
);

/// Where the rows of a block start in a buffer, with the largest of them: a kernel bounds the
/// reads of every row with one comparison.
struct Rows {
    at: [usize; MAX_ROWS],
    /// The largest of `at` (by construction).
    max: usize,
}

impl Rows {
    fn new(at: [usize; MAX_ROWS]) -> Rows {
        let max = at.into_iter().max().unwrap_or(0);
        Rows { at, max }
    }
}

/// `R` rows of [`CH_BLOCK`] sums over `depth` terms, added onto `sums`: term `k` of row `t`
/// is the vector `w[k·w_step..][..16]` times the scalar `x[xs.at[t] + k·x_step]`. (Forward: the
/// rows are positions, the vectors output channels, the terms input channels; input
/// gradient: rows positions, vectors input channels, terms output channels.) Panics unless
/// the last term of every row lies inside `w` and `x`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn chain<const R: usize>(
    depth: usize,
    w: &[f32],
    w_step: usize,
    x: &[f32],
    xs: &Rows,
    x_step: usize,
    sums: &mut Block,
) {
    let Some(last) = depth.checked_sub(1) else {
        return; // no term: the sums stay as they are
    };
    chain_bounds(last, w, w_step, x, xs, x_step);
    let (w, x) = (w.as_ptr(), x.as_ptr());
    let mut sum = [[_mm256_setzero_ps(); 2]; R];
    for t in 0..R {
        sum[t] = load16(&sums[t]);
    }
    let mut k0 = 0;
    while k0 < depth {
        let k1 = (k0 + KC).min(depth);
        let mut ab = [[_mm256_setzero_ps(); 2]; R];
        for k in k0..k1 {
            // SAFETY: `k <= last`, so the 16 floats from `k·w_step` lie inside `w` (asserted
            // by `chain_bounds` for `last`, and `k·w_step <= last·w_step`).
            let (w0, w1) = unsafe {
                let at = w.add(k * w_step);
                (_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8)))
            };
            for (acc, &at) in ab.iter_mut().zip(&xs.at) {
                // SAFETY: `k <= last` and `at <= xs.max`, so `at + k·x_step` lies inside `x`
                // (asserted by `chain_bounds` for `last` and `xs.max`).
                let v = unsafe { &*x.add(at + k * x_step) };
                let b = _mm256_broadcast_ss(v);
                acc[0] = _mm256_fmadd_ps(w0, b, acc[0]);
                acc[1] = _mm256_fmadd_ps(w1, b, acc[1]);
            }
        }
        for t in 0..R {
            sum[t][0] = _mm256_add_ps(sum[t][0], ab[t][0]);
            sum[t][1] = _mm256_add_ps(sum[t][1], ab[t][1]);
        }
        k0 = k1;
    }
    for t in 0..R {
        store16(&mut sums[t], sum[t]);
    }
}

/// [`chain`] in AVX-512 registers: each row's 16 sums in one register, every lane the same
/// chain of fused multiply-adds as in `chain`'s two registers, so the same bits.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
#[inline]
fn chain512<const R: usize>(
    depth: usize,
    w: &[f32],
    w_step: usize,
    x: &[f32],
    xs: &Rows,
    x_step: usize,
    sums: &mut Block,
) {
    let Some(last) = depth.checked_sub(1) else {
        return; // no term: the sums stay as they are
    };
    chain_bounds(last, w, w_step, x, xs, x_step);
    let (w, x) = (w.as_ptr(), x.as_ptr());
    let mut sum = [_mm512_setzero_ps(); R];
    for t in 0..R {
        sum[t] = load512(&sums[t]);
    }
    let mut k0 = 0;
    while k0 < depth {
        let k1 = (k0 + KC).min(depth);
        let mut ab = [_mm512_setzero_ps(); R];
        for k in k0..k1 {
            // SAFETY: `k <= last`, so the 16 floats from `k·w_step` lie inside `w` (asserted
            // by `chain_bounds` for `last`, and `k·w_step <= last·w_step`).
            let wv = unsafe { _mm512_loadu_ps(w.add(k * w_step)) };
            for (acc, &at) in ab.iter_mut().zip(&xs.at) {
                // SAFETY: `k <= last` and `at <= xs.max`, so `at + k·x_step` lies inside `x`
                // (asserted by `chain_bounds` for `last` and `xs.max`).
                let v = unsafe { *x.add(at + k * x_step) };
                *acc = _mm512_fmadd_ps(wv, _mm512_set1_ps(v), *acc);
            }
        }
        for t in 0..R {
            sum[t] = _mm512_add_ps(sum[t], ab[t]);
        }
        k0 = k1;
    }
    for t in 0..R {
        store512(&mut sums[t], sum[t]);
    }
}

/// The bounds of every load of a chain, checked once: the last vector ends inside `w`, and
/// the last scalar of the row starting farthest lies inside `x` (the other terms lie lower).
#[inline(always)]
fn chain_bounds(last: usize, w: &[f32], w_step: usize, x: &[f32], xs: &Rows, x_step: usize) {
    assert!(
        ends_within(0, last, w_step, CH_BLOCK, w.len())
            && ends_within(xs.max, last, x_step, 1, x.len()),
        "conv_fma::chain: a term outside its buffer"
    );
}

/// The weight gradient's block: `R` output channels (gradient rows at `g[t·plane..]`) by
/// [`CH_BLOCK`] input channels (`x[pix[q]..][..16]` at each position `q`), summed over every
/// position in order, per [`KC`] positions a chain from zero; written into `sums`: the output
/// gradient `g[gq[q] + t·plane]` times the vector of position `q`. Panics unless every read
/// lies inside `g` and `x`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn outer<const R: usize>(pos: &Positions, plane: usize, g: &[f32], x: &[f32], sums: &mut Block) {
    let mut sum = [[_mm256_setzero_ps(); 2]; R];
    if let Some((pix_max, gq_max)) = pos.last {
        outer_bounds(R, pix_max, gq_max, plane, g, x);
        let (g, x) = (g.as_ptr(), x.as_ptr());
        for (pb, gb) in pos.pix.chunks(KC).zip(pos.gq.chunks(KC)) {
            let mut ab = [[_mm256_setzero_ps(); 2]; R];
            for (&p, &o) in pb.iter().zip(gb) {
                // SAFETY: `p <= pix_max`, so the 16 floats from `p` lie inside `x` (asserted
                // by `outer_bounds`).
                let (x0, x1) = unsafe {
                    let at = x.add(p);
                    (_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8)))
                };
                for (t, acc) in ab.iter_mut().enumerate() {
                    // SAFETY: `o <= gq_max` and `t < R`, so `o + t·plane` lies inside `g`
                    // (asserted by `outer_bounds`).
                    let v = unsafe { &*g.add(o + t * plane) };
                    let b = _mm256_broadcast_ss(v);
                    acc[0] = _mm256_fmadd_ps(b, x0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(b, x1, acc[1]);
                }
            }
            for t in 0..R {
                sum[t][0] = _mm256_add_ps(sum[t][0], ab[t][0]);
                sum[t][1] = _mm256_add_ps(sum[t][1], ab[t][1]);
            }
        }
    }
    for t in 0..R {
        store16(&mut sums[t], sum[t]);
    }
}

/// [`outer`] in AVX-512 registers: each row's 16 sums in one register, every lane the same
/// chain of fused multiply-adds as in `outer`'s two registers, so the same bits.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
#[inline]
fn outer512<const R: usize>(pos: &Positions, plane: usize, g: &[f32], x: &[f32], sums: &mut Block) {
    let mut sum = [_mm512_setzero_ps(); R];
    if let Some((pix_max, gq_max)) = pos.last {
        outer_bounds(R, pix_max, gq_max, plane, g, x);
        let (g, x) = (g.as_ptr(), x.as_ptr());
        for (pb, gb) in pos.pix.chunks(KC).zip(pos.gq.chunks(KC)) {
            let mut ab = [_mm512_setzero_ps(); R];
            for (&p, &o) in pb.iter().zip(gb) {
                // SAFETY: `p <= pix_max`, so the 16 floats from `p` lie inside `x` (asserted
                // by `outer_bounds`).
                let xv = unsafe { _mm512_loadu_ps(x.add(p)) };
                for (t, acc) in ab.iter_mut().enumerate() {
                    // SAFETY: `o <= gq_max` and `t < R`, so `o + t·plane` lies inside `g`
                    // (asserted by `outer_bounds`).
                    let v = unsafe { *g.add(o + t * plane) };
                    *acc = _mm512_fmadd_ps(_mm512_set1_ps(v), xv, *acc);
                }
            }
            for t in 0..R {
                sum[t] = _mm512_add_ps(sum[t], ab[t]);
            }
        }
    }
    for t in 0..R {
        store512(&mut sums[t], sum[t]);
    }
}

/// The bounds of every load of an outer product of `rows` rows, checked once: the largest
/// position's vector ends inside `x`, its last row's gradient lies inside `g`.
#[inline(always)]
fn outer_bounds(rows: usize, pix_max: usize, gq_max: usize, plane: usize, g: &[f32], x: &[f32]) {
    assert!(
        ends_within(pix_max, 0, 0, CH_BLOCK, x.len())
            && ends_within(gq_max, rows - 1, plane, 1, g.len()),
        "conv_fma::outer: a position outside its buffer"
    );
}

/// Whether `width` values from `at + last·step` end within `len`, in checked arithmetic.
#[inline(always)]
fn ends_within(at: usize, last: usize, step: usize, width: usize, len: usize) -> bool {
    match last.checked_mul(step) {
        Some(o) => match at.checked_add(o) {
            Some(start) => start < len && width <= len - start,
            None => false,
        },
        None => false,
    }
}

/// A row of [`CH_BLOCK`] values as two AVX registers.
#[target_feature(enable = "avx2")]
#[inline]
fn load16(v: &[f32; CH_BLOCK]) -> [__m256; 2] {
    // SAFETY: `v` holds 16 floats: the 8 from its start and the 8 from its ninth.
    unsafe {
        [
            _mm256_loadu_ps(v.as_ptr()),
            _mm256_loadu_ps(v.as_ptr().add(8)),
        ]
    }
}

/// Two AVX registers into a row of [`CH_BLOCK`] values.
#[target_feature(enable = "avx2")]
#[inline]
fn store16(v: &mut [f32; CH_BLOCK], r: [__m256; 2]) {
    // SAFETY: `v` holds 16 floats, borrowed mutably: the 8 from its start and the 8 from its
    // ninth are written.
    unsafe {
        _mm256_storeu_ps(v.as_mut_ptr(), r[0]);
        _mm256_storeu_ps(v.as_mut_ptr().add(8), r[1]);
    }
}

/// A row of [`CH_BLOCK`] values as one AVX-512 register.
#[target_feature(enable = "avx512f")]
#[inline]
fn load512(v: &[f32; CH_BLOCK]) -> __m512 {
    // SAFETY: `v` holds the 16 floats read.
    unsafe { _mm512_loadu_ps(v.as_ptr()) }
}

/// One AVX-512 register into a row of [`CH_BLOCK`] values.
#[target_feature(enable = "avx512f")]
#[inline]
fn store512(v: &mut [f32; CH_BLOCK], r: __m512) {
    // SAFETY: `v` holds 16 floats, borrowed mutably: the 16 written.
    unsafe { _mm512_storeu_ps(v.as_mut_ptr(), r) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::vec;

    /// The panic message of `f`, which must panic.
    fn panic_message(f: impl FnOnce()) -> std::string::String {
        let e = catch_unwind(AssertUnwindSafe(f)).expect_err("returned instead of panicking");
        e.downcast_ref::<std::string::String>()
            .cloned()
            .or_else(|| {
                e.downcast_ref::<&str>()
                    .map(|s| std::string::String::from(*s))
            })
            .unwrap_or_default()
    }

    /// A 1×1 convolution of 4 × 4 pixels (unpadded), `cin` → 16 channels, `n` samples.
    fn one_by_one(n: usize, cin: usize, starts: &[usize]) -> Layout<'_> {
        Layout {
            n,
            image_len: cin.wrapping_mul(16), // the wrapping test sets its own
            cin,
            cout: 16,
            starts,
            origins: &[0],
        }
    }

    /// The report's geometry reaches the kernels' checks directly: `16·cin` wraps to 256 in
    /// 64 bits, so the unchecked products matched buffers of 256 values; checked, it is
    /// refused before any read.
    #[test]
    fn wrapping_sizes_are_refused() {
        if !usable(16, 16) {
            return; // the CPU check refuses first, with its own message
        }
        let starts: Vec<usize> = (0..16).collect();
        let lay = Layout {
            image_len: 256,
            ..one_by_one(1, (1 << 60) + 16, &starts)
        };
        let (images, wr, bias) = (vec![1.0f32; 256], vec![0.5f32; 256], [0.0f32; 16]);
        let mut out = vec![0.0f32; 256];
        let m = panic_message(|| forward(&lay, &images, &wr, &bias, &mut out));
        assert!(m.contains("conv_fma::forward: buffers too small"), "{m}");
        let m = panic_message(|| backward_weights(&lay, &images, &out, &mut vec![0.0; 256]));
        assert!(
            m.contains("conv_fma::backward_weights: buffers too small"),
            "{m}"
        );
        let m = panic_message(|| backward_input(&lay, &out, &wr, &mut vec![0.0; 256]));
        assert!(
            m.contains("conv_fma::backward_input: buffers too small"),
            "{m}"
        );
    }

    /// An empty batch with empty buffers: nothing is read, the forward and the input
    /// gradient write nothing, the weight gradient is zeros.
    #[test]
    fn empty_batch() {
        if !usable(16, 16) {
            return;
        }
        let starts: Vec<usize> = (0..16).collect();
        let lay = one_by_one(0, 16, &starts);
        let wr = vec![0.5f32; 256];
        forward(&lay, &[], &wr, &[0.0; 16], &mut []);
        backward_input(&lay, &[], &wr, &mut []);
        let mut dw = vec![3.0f32; 256];
        backward_weights(&lay, &[], &[], &mut dw);
        assert!(dw.iter().all(|&v| v.to_bits() == 0));
    }

    /// `first`, then zeros: where a block's rows start.
    fn row_starts<const N: usize>(first: [usize; N]) -> [usize; MAX_ROWS] {
        core::array::from_fn(|t| if t < N { first[t] } else { 0 })
    }

    /// The kernels' own bounds: a chain whose last term lies past its buffer panics before
    /// it loads anything, however its caller computed the offsets.
    #[test]
    fn chain_bounds_its_loads() {
        if !usable(16, 16) {
            return;
        }
        let (w, x) = (vec![1.0f32; 16 * 4], vec![1.0f32; 8]);
        let run = |depth: usize, xs: [usize; MAX_ROWS]| {
            let mut sums = [[0.0f32; CH_BLOCK]; MAX_ROWS];
            // SAFETY: the CPU has AVX2 and FMA (`usable` above).
            unsafe { chain::<2>(depth, &w, 16, &x, &Rows::new(xs), 2, &mut sums) };
            sums[1][0]
        };
        // 4 terms: vectors at 0, 16, 32, 48 (the last ends at 64); scalars at xs[t] + 0, 2, 4, 6.
        assert_eq!(run(4, row_starts([0, 1])), 4.0);
        let m = panic_message(|| {
            run(5, [0; MAX_ROWS]);
        });
        assert!(
            m.contains("conv_fma::chain: a term outside its buffer"),
            "{m}"
        );
        let m = panic_message(|| {
            run(4, row_starts([0, 2]));
        });
        assert!(m.contains("a term outside"), "{m}");
        // The check covers every start given, read or not: conservative, never short.
        let m = panic_message(|| {
            run(4, row_starts([0, 0, 99]));
        });
        assert!(m.contains("a term outside"), "{m}");
    }

    /// Every weight lands where [`backward_input`] reads it, for channel counts with and
    /// without a remainder of 8.
    #[test]
    fn input_grad_order() {
        for &(cout, cin, kk) in &[(3, 16, 9), (2, 13, 4), (1, 5, 1)] {
            let wt: Vec<f32> = (0..cout * cin * kk).map(|i| i as f32).collect();
            let mut out = vec![-1.0; wt.len()];
            reorder_input_grad(cout, cin, kk, &wt, &mut out);
            for co in 0..cout {
                for ci in 0..cin {
                    for j in 0..kk {
                        let want = wt[(co * cin + ci) * kk + j];
                        assert_eq!(out[(j * cout + co) * cin + ci], want, "{co} {ci} {j}");
                    }
                }
            }
        }
    }
}
