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

use std::vec::Vec;

use core::arch::x86_64::{
    _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

/// Channels per block: two AVX registers.
pub const CH_BLOCK: usize = 16;
/// Rows per block (positions, or output channels for the weight gradient): 6 × 2
/// accumulators, 2 vector registers and a broadcast fill the 16 AVX registers.
const ROWS: usize = 6;
/// The depth of matrixmultiply's f32 blocks (`S_KC`): its chain of multiply-adds restarts
/// every `KC` values of the inner dimension, and so do these kernels'.
const KC: usize = 256;

/// Calls the kernel `$f::<R>` built for the block's number of rows (`1..=ROWS`), so each
/// block size gets its accumulators in registers.
macro_rules! by_rows {
    ($rows:expr, $f:ident($($a:expr),* $(,)?)) => {
        match $rows {
            6 => $f::<6>($($a),*),
            5 => $f::<5>($($a),*),
            4 => $f::<4>($($a),*),
            3 => $f::<3>($($a),*),
            2 => $f::<2>($($a),*),
            _ => $f::<1>($($a),*),
        }
    };
}

/// A block's results: `ROWS` rows of [`CH_BLOCK`] values.
type Block = [[f32; CH_BLOCK]; ROWS];

fn cpu() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Whether this CPU runs the kernels and the geometry suits them (whole blocks of output and
/// input channels).
pub fn usable(cin: usize, cout: usize) -> bool {
    cout % CH_BLOCK == 0 && cin % CH_BLOCK == 0 && cpu()
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
    /// The checks that bound every read and write of the kernels (so their loads need no
    /// checks of their own): the images, the output and the weights are as large as the
    /// geometry says, and every window lies inside its image.
    fn check(&self, images: usize, out: usize, weights: usize, what: &str) {
        let reach = self.origins.iter().max().copied().unwrap_or(0)
            + self.starts.iter().max().copied().unwrap_or(0)
            + 1;
        let plane = self.starts.len();
        assert!(
            usable(self.cin, self.cout)
                && reach * self.cin <= self.image_len
                && images >= self.n * self.image_len
                && out >= self.n * self.cout * plane
                && weights >= self.cout * self.cin * self.origins.len(),
            "conv_fma::{what}: CPU without AVX2 and FMA, or buffers too small for the geometry"
        );
    }
}

/// `y` = the convolution of `images` with the weights `wr` (from [`reorder_forward`]), plus
/// `bias`.
pub fn forward(lay: &Layout<'_>, images: &[f32], wr: &[f32], bias: &[f32], y: &mut [f32]) {
    lay.check(images.len(), y.len(), wr.len(), "forward");
    assert!(bias.len() >= lay.cout, "conv_fma::forward: bias too short");
    // SAFETY: `check` confirmed AVX2 and FMA on this CPU (calling a `#[target_feature]`
    // function needs nothing else) and bounded every pointer `forward_run` reads.
    #[allow(unsafe_code)]
    unsafe {
        forward_run(lay, images, wr, bias, y)
    }
}

/// # Safety
/// The CPU has AVX2 and FMA; the buffers passed `Layout::check`.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
unsafe fn forward_run(lay: &Layout<'_>, images: &[f32], wr: &[f32], bias: &[f32], y: &mut [f32]) {
    let (cin, cout, kk) = (lay.cin, lay.cout, lay.origins.len());
    let plane = lay.starts.len();
    let total = lay.positions();
    let img = images.as_ptr();
    let mut q = 0;
    while q < total {
        let rows = ROWS.min(total - q);
        let mut px = [0usize; ROWS];
        for (t, p) in px.iter_mut().enumerate().take(rows) {
            *p = lay.at(q + t).0;
        }
        for b in 0..cout / CH_BLOCK {
            let wb = wr[b * kk * cin * CH_BLOCK..].as_ptr();
            let mut sums = [[0.0f32; CH_BLOCK]; ROWS];
            // Per offset and KC input channels: the weights of (ci, j) at wb + (ci·k² + j)·16,
            // each position's input value at its pixel + origin·cin + ci.
            let step = kk * CH_BLOCK;
            for (j, &origin) in lay.origins.iter().enumerate() {
                let w = wb.add(j * CH_BLOCK);
                let x = img.add(origin * cin);
                by_rows!(rows, chain(cin, w, step, x, &px, 1, &mut sums));
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

/// Adds onto `grad` (padded images like the input's, channels last) the input gradient of
/// output gradient `gy`, with the weights `wr` (from [`reorder_input_grad`]): per kernel
/// offset in order, each position's `cin` values onto the pixel under its window.
pub fn backward_input(lay: &Layout<'_>, gy: &[f32], wr: &[f32], grad: &mut [f32]) {
    lay.check(grad.len(), gy.len(), wr.len(), "backward_input");
    // SAFETY: as in `forward`.
    #[allow(unsafe_code)]
    unsafe {
        input_run(lay, gy, wr, grad)
    }
}

/// # Safety
/// The CPU has AVX2 and FMA; the buffers passed `Layout::check`.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
unsafe fn input_run(lay: &Layout<'_>, gy: &[f32], wr: &[f32], grad: &mut [f32]) {
    let (cin, cout) = (lay.cin, lay.cout);
    let plane = lay.starts.len();
    let total = lay.positions();
    for (j, &origin) in lay.origins.iter().enumerate() {
        let wj = wr[j * cout * cin..].as_ptr();
        let mut q = 0;
        while q < total {
            let rows = ROWS.min(total - q);
            // Each position's output gradient (channel `co` at + co·P) and pixel.
            let (mut gq, mut px) = ([0usize; ROWS], [0usize; ROWS]);
            for t in 0..rows {
                (px[t], gq[t]) = lay.at(q + t);
            }
            let g = gy.as_ptr();
            for c0 in (0..cin).step_by(CH_BLOCK) {
                // Chain over the output channels: weights of (j, co) at wj + co·cin + c0.
                let mut sums = [[0.0f32; CH_BLOCK]; ROWS];
                let w = wj.add(c0);
                by_rows!(rows, chain(cout, w, cin, g, &gq, plane, &mut sums));
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

/// The weight gradient of output gradient `gy` and the input `images`, written (not added)
/// into `dw` (`[cout, cin, k²]`).
pub fn backward_weights(lay: &Layout<'_>, images: &[f32], gy: &[f32], dw: &mut [f32]) {
    lay.check(images.len(), gy.len(), dw.len(), "backward_weights");
    // SAFETY: as in `forward`.
    #[allow(unsafe_code)]
    unsafe {
        weights_run(lay, images, gy, dw)
    }
}

/// # Safety
/// The CPU has AVX2 and FMA; the buffers passed `Layout::check`.
#[target_feature(enable = "avx2,fma")]
#[allow(unsafe_code)]
unsafe fn weights_run(lay: &Layout<'_>, images: &[f32], gy: &[f32], dw: &mut [f32]) {
    let (cin, cout, kk) = (lay.cin, lay.cout, lay.origins.len());
    let plane = lay.starts.len();
    let total = lay.positions();
    // Per position: its window's first float and its output gradient's first value.
    let (pix, gq): (Vec<usize>, Vec<usize>) = (0..total).map(|q| lay.at(q)).unzip();
    let (img, g) = (images.as_ptr(), gy.as_ptr());
    for (j, &origin) in lay.origins.iter().enumerate() {
        let x = img.add(origin * cin);
        let mut co0 = 0;
        while co0 < cout {
            let rows = ROWS.min(cout - co0);
            let gc = g.add(co0 * plane);
            for c0 in (0..cin).step_by(CH_BLOCK) {
                let mut sums = [[0.0f32; CH_BLOCK]; ROWS];
                by_rows!(rows, outer(&pix, &gq, plane, gc, x.add(c0), &mut sums));
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

/// `R` rows of [`CH_BLOCK`] sums over `depth` terms, added onto `sums`: term `k` of row `t`
/// is the vector at `w + k·w_step` times the scalar at `x + xs[t] + k·x_step`. (Forward: the
/// rows are positions, the vectors output channels, the terms input channels; input
/// gradient: rows positions, vectors input channels, terms output channels.)
///
/// # Safety
/// AVX2 and FMA; every address named above inside its buffer.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(unsafe_code)]
unsafe fn chain<const R: usize>(
    depth: usize,
    w: *const f32,
    w_step: usize,
    x: *const f32,
    xs: &[usize; ROWS],
    x_step: usize,
    sums: &mut Block,
) {
    let mut sum = [[_mm256_setzero_ps(); 2]; R];
    for t in 0..R {
        sum[t][0] = _mm256_loadu_ps(sums[t].as_ptr());
        sum[t][1] = _mm256_loadu_ps(sums[t].as_ptr().add(8));
    }
    let mut k0 = 0;
    while k0 < depth {
        let k1 = (k0 + KC).min(depth);
        let mut ab = [[_mm256_setzero_ps(); 2]; R];
        for k in k0..k1 {
            let w0 = _mm256_loadu_ps(w.add(k * w_step));
            let w1 = _mm256_loadu_ps(w.add(k * w_step + 8));
            for t in 0..R {
                let b = _mm256_broadcast_ss(&*x.add(xs[t] + k * x_step));
                ab[t][0] = _mm256_fmadd_ps(w0, b, ab[t][0]);
                ab[t][1] = _mm256_fmadd_ps(w1, b, ab[t][1]);
            }
        }
        for t in 0..R {
            sum[t][0] = _mm256_add_ps(sum[t][0], ab[t][0]);
            sum[t][1] = _mm256_add_ps(sum[t][1], ab[t][1]);
        }
        k0 = k1;
    }
    for t in 0..R {
        _mm256_storeu_ps(sums[t].as_mut_ptr(), sum[t][0]);
        _mm256_storeu_ps(sums[t].as_mut_ptr().add(8), sum[t][1]);
    }
}

/// The weight gradient's block: `R` output channels (gradient rows at `g + t·plane`) by
/// [`CH_BLOCK`] input channels (at `x` in each pixel), summed over every position `q` in
/// order, per [`KC`] positions a chain from zero added onto `sums`: the output gradient at
/// `g + gq[q] + t·plane` times the vector at `x + pix[q]`.
///
/// # Safety
/// AVX2 and FMA; every address named above inside its buffer.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(unsafe_code)]
unsafe fn outer<const R: usize>(
    pix: &[usize],
    gq: &[usize],
    plane: usize,
    g: *const f32,
    x: *const f32,
    sums: &mut Block,
) {
    let mut sum = [[_mm256_setzero_ps(); 2]; R];
    for (pb, gb) in pix.chunks(KC).zip(gq.chunks(KC)) {
        let mut ab = [[_mm256_setzero_ps(); 2]; R];
        for (&p, &o) in pb.iter().zip(gb) {
            let x0 = _mm256_loadu_ps(x.add(p));
            let x1 = _mm256_loadu_ps(x.add(p + 8));
            for (t, acc) in ab.iter_mut().enumerate() {
                let b = _mm256_broadcast_ss(&*g.add(o + t * plane));
                acc[0] = _mm256_fmadd_ps(b, x0, acc[0]);
                acc[1] = _mm256_fmadd_ps(b, x1, acc[1]);
            }
        }
        for t in 0..R {
            sum[t][0] = _mm256_add_ps(sum[t][0], ab[t][0]);
            sum[t][1] = _mm256_add_ps(sum[t][1], ab[t][1]);
        }
    }
    for t in 0..R {
        _mm256_storeu_ps(sums[t].as_mut_ptr(), sum[t][0]);
        _mm256_storeu_ps(sums[t].as_mut_ptr().add(8), sum[t][1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

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
