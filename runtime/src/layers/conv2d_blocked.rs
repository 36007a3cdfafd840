//! Register-blocked direct convolution for Arm microcontrollers: the forward pass of 3 × 3,
//! stride-2, padding-1 layers (every layer of the Omniglot CNN's body).
//!
//! The additions are those of [`super::conv2d::forward_from`] in the same order: each output
//! starts from its bias, then adds `w · x` for input channel `ci`, kernel row `ky` and column
//! `kx` in increasing order, skipping the taps that fall on the padding (not adding `w · 0`,
//! which would turn a `-0.0` sum into `+0.0`). Only the loops around those chains change, so
//! the results are the same bits (the tests below compare them on many shapes, and the
//! firmware's kernel check compares the assembly with a scalar loop). The direct loop runs a
//! few output columns per weight with its loop and bounds bookkeeping around every
//! multiply-accumulate. Here a block of [`CB`] output channels × up to [`P`] output columns of
//! one row keeps its sums in floating-point registers across [`CI`] input channels; each input
//! value is loaded once per block and kernel row and serves `CB` outputs, each weight once per
//! block, from a buffer into which the block's weights are decoded once per image (from flash,
//! for a frozen layer).
//!
//! On hard-float Armv7E-M (Cortex-M4F and up) the block is assembly (`asm_block`): the sums in
//! `s0`–`s15`, the inputs under a kernel row in `s16`–`s24` (one `vldm`), a column of weights
//! in `s25`–`s28` (one `vldmia`); the taps on the left and right padding are skipped by
//! conditional execution, so every shape of block runs the same code. Elsewhere (the host's
//! tests, Armv6-M) the same block is Rust (`rust_block`).
//!
//! The entry points ([`forward`], [`input_grad`], [`weight_grad`]) are not inlined: their
//! weight buffers then take stack only while a convolution runs, not in the frame of every
//! model's passes (inlined, they added 5 KB to the sine firmware's peak stack).

#![allow(unsafe_code)]

use super::conv2d::Geometry;
use crate::dtype::f16_to_f32;

/// Output channels per block.
const CB: usize = 4;
/// Output columns per block, at most.
const P: usize = 4;
/// Input channels per pass over the output (the weight buffer's size): 4.5 KB of stack.
const CI: usize = 32;
/// Weights per input channel in the buffer: `[ky][kx][c]`.
const TAPS: usize = 9 * CB;

/// Where the kernels read a layer's weights from.
pub(super) trait Source {
    /// Weight `i`.
    fn at(&self, i: usize) -> f32;
    /// Weights `start..start + out.len()`, into `out`.
    fn run(&self, start: usize, out: &mut [f32]);
}

/// Weights read one at a time through a function.
pub(super) struct Each<F>(pub F);

impl<F: Fn(usize) -> f32> Source for Each<F> {
    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        (self.0)(i)
    }
    #[inline(always)]
    fn run(&self, start: usize, out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = (self.0)(start + k);
        }
    }
}

/// Weights stored as little-endian f16 (a frozen layer in the blob).
pub(super) struct F16<'a>(pub &'a [u8]);

impl Source for F16<'_> {
    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        f16_to_f32(u16::from_le_bytes([self.0[2 * i], self.0[2 * i + 1]]))
    }
    #[inline(always)]
    fn run(&self, start: usize, out: &mut [f32]) {
        let bytes = &self.0[2 * start..][..2 * out.len()];
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        }
    }
}

/// Whether [`forward`] computes layers of geometry `g`.
pub(super) fn applies(g: &Geometry) -> bool {
    g.win.kernel == 3 && g.win.stride == 2 && g.win.padding == 1
}

/// [`super::conv2d::forward_from`] for a geometry that [`applies`] (and passes
/// [`Geometry::check`]), the same results, with the weights read from `wt`. Returns false,
/// having done nothing, for any other geometry.
///
/// # Panics
/// As `forward_from`, when `x` or `y` is shorter than `n` samples need or `wt` or `bias`
/// panic.
///
/// Not inlined: see the module notes.
#[inline(never)]
pub(super) fn forward(
    g: &Geometry,
    wt: impl Source,
    bias: impl Fn(usize) -> f32,
    x: &[f32],
    y: &mut [f32],
    n: usize,
) -> bool {
    if !applies(g) {
        return false;
    }
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let mut buf = [0.0f32; CI * TAPS];
    for (xs, ys) in x
        .chunks_exact(g.cin * plane_in)
        .zip(y.chunks_exact_mut(g.cout * plane_out))
        .take(n)
    {
        for (co, yc) in ys.chunks_exact_mut(plane_out).enumerate() {
            yc.fill(bias(co));
        }
        let full = g.cout / CB * CB;
        let (blocks, rest) = ys.split_at_mut(full * plane_out);
        for (b, yb) in blocks.chunks_exact_mut(CB * plane_out).enumerate() {
            for ci0 in (0..g.cin).step_by(CI) {
                let cn = CI.min(g.cin - ci0);
                gather(&mut buf, cn, &wt, |k, c| {
                    ((b * CB + c) * g.cin + ci0 + k) * 9
                });
                let xc = &xs[ci0 * plane_in..(ci0 + cn) * plane_in];
                sweep(g, &buf[..cn * TAPS], xc, yb);
            }
        }
        for (c, yc) in rest.chunks_exact_mut(plane_out).enumerate() {
            single(g, &wt, full + c, xs, yc);
        }
    }
    true
}

/// Decodes the 9 weights of `cn` channel pairs into `buf`, `[k][ky][kx][c]`: those of pair
/// `(k, c)` (`k < cn`, `c < CB`) start at weight `start(k, c)`.
#[inline(always)]
fn gather(
    buf: &mut [f32; CI * TAPS],
    cn: usize,
    wt: &impl Source,
    start: impl Fn(usize, usize) -> usize,
) {
    let mut taps = [0.0f32; 9];
    for c in 0..CB {
        for k in 0..cn {
            wt.run(start(k, c), &mut taps);
            for (t, &v) in taps.iter().enumerate() {
                buf[k * TAPS + t * CB + c] = v;
            }
        }
    }
}

/// One output channel `co` (the last, partial block), onto the bias in `yc`: the direct loop's
/// chains, one output at a time.
fn single(g: &Geometry, wt: &impl Source, co: usize, xs: &[f32], yc: &mut [f32]) {
    let plane_in = g.h * g.w;
    for ci in 0..g.cin {
        let xc = &xs[ci * plane_in..(ci + 1) * plane_in];
        for ky in 0..3 {
            let (oy0, oy1) = g.valid(g.h, g.oh, ky);
            for kx in 0..3 {
                let wv = wt.at(((co * g.cin + ci) * 3 + ky) * 3 + kx);
                let (ox0, ox1) = g.valid(g.w, g.ow, kx);
                for oy in oy0..oy1 {
                    let xrow = &xc[(2 * oy + ky - 1) * g.w..][..g.w];
                    for ox in ox0..ox1 {
                        yc[oy * g.ow + ox] += wv * xrow[2 * ox + kx - 1];
                    }
                }
            }
        }
    }
}

/// One block's place and extent.
#[derive(Clone, Copy)]
struct Block {
    /// Output columns, 1 to [`P`].
    q: usize,
    /// Kernel rows on the input, `ky0..ky0 + rows`.
    ky0: usize,
    rows: usize,
    /// Index in an input plane of the value under kernel column 1 of the first output column,
    /// in the first kernel row (`x[2·oy + ky0 − 1][2·ox0]`).
    x0: usize,
    /// Index in an output plane of the first output.
    y0: usize,
    /// Whether the first column's tap `kx = 0` falls on the left padding.
    left: bool,
    /// Whether the last column's tap `kx = 2` falls on the right padding.
    right: bool,
}

/// Adds the `cn = wb.len() / TAPS` input channels of `xc` into the [`CB`] output planes `yb`,
/// block by block.
fn sweep(g: &Geometry, wb: &[f32], xc: &[f32], yb: &mut [f32]) {
    for oy in 0..g.oh {
        // Kernel row 0 falls on the padding for output row 0, row 2 when `2·oy + 1` is past
        // the last input row.
        let ky0 = usize::from(oy == 0);
        let ky1 = if 2 * oy + 1 < g.h { 3 } else { 2 };
        let mut ox0 = 0;
        while ox0 < g.ow {
            let q = P.min(g.ow - ox0);
            let b = Block {
                q,
                ky0,
                rows: ky1 - ky0,
                x0: (2 * oy + ky0 - 1) * g.w + 2 * ox0,
                y0: oy * g.ow + ox0,
                left: ox0 == 0,
                right: 2 * (ox0 + q - 1) + 1 >= g.w,
            };
            #[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
            if asm_block(g, &b, wb, xc, yb) {
                ox0 += q;
                continue;
            }
            match b.q {
                4 => rust_block::<4>(g, &b, wb, xc, yb),
                3 => rust_block::<3>(g, &b, wb, xc, yb),
                2 => rust_block::<2>(g, &b, wb, xc, yb),
                _ => rust_block::<1>(g, &b, wb, xc, yb),
            }
            ox0 += q;
        }
    }
}

/// Block `b` (`Q` columns) over all the input channels of `xc` and `wb`: the sums start from
/// the outputs in `yb` and are written back there.
#[inline(always)]
fn rust_block<const Q: usize>(g: &Geometry, b: &Block, wb: &[f32], xc: &[f32], yb: &mut [f32]) {
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let mut acc = [[0.0f32; Q]; CB];
    for (c, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&yb[c * plane_out + b.y0..][..Q]);
    }
    for (xp, wp) in xc.chunks_exact(plane_in).zip(wb.chunks_exact(TAPS)) {
        for r in 0..b.rows {
            let at = b.x0 + r * g.w;
            let wk = &wp[(b.ky0 + r) * 3 * CB..][..3 * CB];
            for kx in 0..3 {
                for j in 0..Q {
                    if (kx == 0 && j == 0 && b.left) || (kx == 2 && j == Q - 1 && b.right) {
                        continue;
                    }
                    let xv = xp[at + 2 * j + kx - 1];
                    for (c, a) in acc.iter_mut().enumerate() {
                        a[j] += wk[kx * CB + c] * xv;
                    }
                }
            }
        }
    }
    for (c, a) in acc.iter().enumerate() {
        yb[c * plane_out + b.y0..][..Q].copy_from_slice(a);
    }
}

/// The input gradient of [`super::conv2d::input_grad_from`] (`gx`, written) for a geometry
/// that [`applies`], the same results, weights read as [`forward`] reads them. Every input
/// gradient is a chain from `+0.0` over output channels in increasing order, each adding its
/// kernel rows in increasing order and, within a row, column 0 before column 2: here a block of
/// [`CB`] input channels × up to [`P`] columns of one input row keeps its chains in registers
/// across [`CI`] output channels. Returns false, having done nothing, for any other geometry.
///
/// # Panics
/// As `input_grad_from`, when `gy` or `gx` is shorter than `n` samples need or `wt` panics.
///
/// Not inlined: see the module notes.
#[inline(never)]
pub(super) fn input_grad(
    g: &Geometry,
    wt: impl Source,
    gy: &[f32],
    gx: &mut [f32],
    n: usize,
) -> bool {
    if !applies(g) {
        return false;
    }
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let mut buf = [0.0f32; CI * TAPS];
    for (gxs, gs) in gx
        .chunks_exact_mut(g.cin * plane_in)
        .zip(gy.chunks_exact(g.cout * plane_out))
        .take(n)
    {
        gxs.fill(0.0);
        let full = g.cin / CB * CB;
        let (blocks, rest) = gxs.split_at_mut(full * plane_in);
        for (b, gxb) in blocks.chunks_exact_mut(CB * plane_in).enumerate() {
            for co0 in (0..g.cout).step_by(CI) {
                let cn = CI.min(g.cout - co0);
                gather(&mut buf, cn, &wt, |k, c| {
                    ((co0 + k) * g.cin + b * CB + c) * 9
                });
                let gc = &gs[co0 * plane_out..(co0 + cn) * plane_out];
                sweep_input(g, &buf[..cn * TAPS], gc, gxb);
            }
        }
        for (c, gxc) in rest.chunks_exact_mut(plane_in).enumerate() {
            single_input(g, &wt, full + c, gs, gxc);
        }
    }
    true
}

/// The input gradient of one input channel `ci` (the last, partial block), onto `gxc`: the
/// direct loop's chains.
fn single_input(g: &Geometry, wt: &impl Source, ci: usize, gs: &[f32], gxc: &mut [f32]) {
    let plane_out = g.oh * g.ow;
    for (co, gc) in gs.chunks_exact(plane_out).enumerate() {
        for ky in 0..3 {
            let (oy0, oy1) = g.valid(g.h, g.oh, ky);
            for kx in 0..3 {
                let wv = wt.at(((co * g.cin + ci) * 3 + ky) * 3 + kx);
                let (ox0, ox1) = g.valid(g.w, g.ow, kx);
                for oy in oy0..oy1 {
                    let row = &mut gxc[(2 * oy + ky - 1) * g.w..][..g.w];
                    for ox in ox0..ox1 {
                        row[2 * ox + kx - 1] += wv * gc[oy * g.ow + ox];
                    }
                }
            }
        }
    }
}

/// The output rows and kernel rows that reach input row `iy`, kernel rows in increasing order:
/// an even row is under kernel row 1 of output row `iy / 2`; an odd one under row 0 of output
/// row `(iy + 1) / 2` (when there is one) and row 2 of `(iy − 1) / 2`.
fn rows_under(g: &Geometry, iy: usize) -> ([(usize, usize); 2], usize) {
    if iy % 2 == 0 {
        ([(1, iy / 2), (0, 0)], 1)
    } else if iy.div_ceil(2) < g.oh {
        ([(0, iy.div_ceil(2)), (2, (iy - 1) / 2)], 2)
    } else {
        ([(2, (iy - 1) / 2), (0, 0)], 1)
    }
}

/// Adds the `cn = wb.len() / TAPS` output channels of `gc` into the input gradients of the
/// [`CB`] input channels `gxb`, block by block.
fn sweep_input(g: &Geometry, wb: &[f32], gc: &[f32], gxb: &mut [f32]) {
    for iy in 0..g.h {
        let (rows, nrows) = rows_under(g, iy);
        let rows = &rows[..nrows];
        let mut ix0 = 0;
        while ix0 < g.w {
            let l = P.min(g.w - ix0);
            let last = ix0 + l - 1;
            // Column 0 of the kernel reaches an odd input column from the next output column.
            let right = last % 2 == 1 && last.div_ceil(2) >= g.ow;
            let at = iy * g.w + ix0;
            match l {
                4 => input_block::<4>(g, rows, ix0 / 2, right, wb, gc, gxb, at),
                3 => input_block::<3>(g, rows, ix0 / 2, right, wb, gc, gxb, at),
                2 => input_block::<2>(g, rows, ix0 / 2, right, wb, gc, gxb, at),
                _ => input_block::<1>(g, rows, ix0 / 2, right, wb, gc, gxb, at),
            }
            ix0 += l;
        }
    }
}

/// `L` input columns from the even column `2·m0` of one row (first gradient at `at` in each of
/// the [`CB`] planes `gxb`), over every output channel of `gc` and `wb`, through kernel rows
/// `rows` (`(ky, oy)`). An even column `2m` takes kernel column 1 of output column `m`; an odd
/// one `2m + 1` column 0 of output column `m + 1` (not when `right` and it is the last) and
/// then column 2 of `m`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn input_block<const L: usize>(
    g: &Geometry,
    rows: &[(usize, usize)],
    m0: usize,
    right: bool,
    wb: &[f32],
    gc: &[f32],
    gxb: &mut [f32],
    at: usize,
) {
    let plane_in = g.h * g.w;
    let plane_out = g.oh * g.ow;
    let mut acc = [[0.0f32; L]; CB];
    for (c, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&gxb[c * plane_in + at..][..L]);
    }
    for (wp, gp) in wb.chunks_exact(TAPS).zip(gc.chunks_exact(plane_out)) {
        for &(ky, oy) in rows {
            let grow = &gp[oy * g.ow..][..g.ow];
            let wk = &wp[ky * 3 * CB..][..3 * CB];
            for j in 0..L {
                let m = m0 + j / 2;
                if j % 2 == 0 {
                    let gv = grow[m];
                    for (c, a) in acc.iter_mut().enumerate() {
                        a[j] += wk[CB + c] * gv;
                    }
                } else {
                    if !(right && j == L - 1) {
                        let gv = grow[m + 1];
                        for (c, a) in acc.iter_mut().enumerate() {
                            a[j] += wk[c] * gv;
                        }
                    }
                    let gv = grow[m];
                    for (c, a) in acc.iter_mut().enumerate() {
                        a[j] += wk[2 * CB + c] * gv;
                    }
                }
            }
        }
    }
    for (c, a) in acc.iter().enumerate() {
        gxb[c * plane_in + at..][..L].copy_from_slice(a);
    }
}

/// The weight gradient of [`super::conv2d::backward`] (`dw`, written) for a geometry that
/// [`applies`], the same results: per sample, each weight's sum from `+0.0` over the output
/// positions in row-major order, added onto `dw` (from `+0.0`). Here a block of [`CB`] output
/// channels × the 3 kernel columns of one kernel row keeps its 12 sums in registers over the
/// positions, each output gradient loaded once per block and each input value serving
/// [`CB`] weights. Returns false, having done nothing, for any other geometry.
///
/// # Panics
/// When `x` or `gy` is shorter than `n` samples need or `dw` than the layer's weights.
///
/// Not inlined: see the module notes.
#[inline(never)]
pub(super) fn weight_grad(g: &Geometry, x: &[f32], gy: &[f32], dw: &mut [f32], n: usize) -> bool {
    if !applies(g) {
        return false;
    }
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    dw.fill(0.0);
    for (xs, gs) in x
        .chunks_exact(g.cin * plane_in)
        .zip(gy.chunks_exact(g.cout * plane_out))
        .take(n)
    {
        let mut co = 0;
        while co < g.cout {
            let cb = CB.min(g.cout - co);
            let gb = &gs[co * plane_out..(co + cb) * plane_out];
            for (ci, xc) in xs.chunks_exact(plane_in).enumerate() {
                for ky in 0..3 {
                    #[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
                    let done = if cb == CB {
                        asm_weight_block(g, gb, xc, ky)
                    } else {
                        None
                    };
                    #[cfg(not(all(
                        target_arch = "arm",
                        target_abi = "eabihf",
                        target_os = "none"
                    )))]
                    let done = None;
                    let sums = if let Some(sums) = done {
                        sums
                    } else if cb == CB {
                        weight_block::<CB>(g, gb, xc, ky)
                    } else {
                        let mut sums = [[0.0f32; 3]; CB];
                        for (c, gc) in gb.chunks_exact(plane_out).enumerate() {
                            sums[c] = weight_block::<1>(g, gc, xc, ky)[0];
                        }
                        sums
                    };
                    for (c, s) in sums.iter().enumerate().take(cb) {
                        let d = &mut dw[(((co + c) * g.cin + ci) * 3 + ky) * 3..][..3];
                        for (d, s) in d.iter_mut().zip(s) {
                            *d += s;
                        }
                    }
                }
            }
            co += cb;
        }
    }
    true
}

/// The sums of kernel row `ky`'s 3 columns for the `C` output channels of `gb` (planes one
/// after the other) and input channel `xc`, over the output positions in row-major order.
#[inline(always)]
fn weight_block<const C: usize>(g: &Geometry, gb: &[f32], xc: &[f32], ky: usize) -> [[f32; 3]; C] {
    let plane_out = g.oh * g.ow;
    let mut acc = [[0.0f32; 3]; C];
    let (oy0, oy1) = g.valid(g.h, g.oh, ky);
    for oy in oy0..oy1 {
        let xrow = &xc[(2 * oy + ky - 1) * g.w..][..g.w];
        let mut grows = [&[][..]; C];
        for (c, r) in grows.iter_mut().enumerate() {
            *r = &gb[c * plane_out + oy * g.ow..][..g.ow];
        }
        for ox in 0..g.ow {
            let mut gv = [0.0f32; C];
            for (v, r) in gv.iter_mut().zip(&grows) {
                *v = r[ox];
            }
            if ox > 0 {
                let xv = xrow[2 * ox - 1];
                for (a, v) in acc.iter_mut().zip(&gv) {
                    a[0] += v * xv;
                }
            }
            let xv = xrow[2 * ox];
            for (a, v) in acc.iter_mut().zip(&gv) {
                a[1] += v * xv;
            }
            if 2 * ox + 1 < g.w {
                let xv = xrow[2 * ox + 1];
                for (a, v) in acc.iter_mut().zip(&gv) {
                    a[2] += v * xv;
                }
            }
        }
    }
    acc
}

/// The assembly of [`asm_weight_block`]: per output row, position 0 (kernel column 0 on the
/// padding), the inner positions, then the last one when column 2 falls on the padding.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
macro_rules! asm_weight_rows {
    () => {
        concat!(
            "vpush {{d0-d15}}\n",
            "ldr {t}, [{prm}, #12]\n",
            "vldm {t}, {{s0-s11}}\n",
            "1:\n",
            "vldmia {g0}!, {{s12}}\n",
            "vldmia {g1}!, {{s13}}\n",
            "vldmia {g2}!, {{s14}}\n",
            "vldmia {g3}!, {{s15}}\n",
            "vldm {xp}, {{s16, s17}}\n",
            "add {xp}, {xp}, #4\n",
            "vmla.f32 s1, s12, s16\n",
            "vmla.f32 s4, s13, s16\n",
            "vmla.f32 s7, s14, s16\n",
            "vmla.f32 s10, s15, s16\n",
            "vmla.f32 s2, s12, s17\n",
            "vmla.f32 s5, s13, s17\n",
            "vmla.f32 s8, s14, s17\n",
            "vmla.f32 s11, s15, s17\n",
            "ldr {k}, [{prm}]\n",
            "cmp {k}, #0\n",
            "beq 3f\n",
            "2:\n",
            "vldmia {g0}!, {{s12}}\n",
            "vldmia {g1}!, {{s13}}\n",
            "vldmia {g2}!, {{s14}}\n",
            "vldmia {g3}!, {{s15}}\n",
            "vldm {xp}, {{s16, s17, s18}}\n",
            "add {xp}, {xp}, #8\n",
            "vmla.f32 s0, s12, s16\n",
            "vmla.f32 s3, s13, s16\n",
            "vmla.f32 s6, s14, s16\n",
            "vmla.f32 s9, s15, s16\n",
            "vmla.f32 s1, s12, s17\n",
            "vmla.f32 s4, s13, s17\n",
            "vmla.f32 s7, s14, s17\n",
            "vmla.f32 s10, s15, s17\n",
            "vmla.f32 s2, s12, s18\n",
            "vmla.f32 s5, s13, s18\n",
            "vmla.f32 s8, s14, s18\n",
            "vmla.f32 s11, s15, s18\n",
            "subs {k}, {k}, #1\n",
            "bne 2b\n",
            "3:\n",
            "ldr {t}, [{prm}, #4]\n",
            "cmp {t}, #0\n",
            "beq 4f\n",
            "vldmia {g0}!, {{s12}}\n",
            "vldmia {g1}!, {{s13}}\n",
            "vldmia {g2}!, {{s14}}\n",
            "vldmia {g3}!, {{s15}}\n",
            "vldm {xp}, {{s16, s17}}\n",
            "vmla.f32 s0, s12, s16\n",
            "vmla.f32 s3, s13, s16\n",
            "vmla.f32 s6, s14, s16\n",
            "vmla.f32 s9, s15, s16\n",
            "vmla.f32 s1, s12, s17\n",
            "vmla.f32 s4, s13, s17\n",
            "vmla.f32 s7, s14, s17\n",
            "vmla.f32 s10, s15, s17\n",
            "4:\n",
            "ldr {t}, [{prm}, #8]\n",
            "add {xp}, {xp}, {t}\n",
            "subs {rows}, {rows}, #1\n",
            "bne 1b\n",
            "ldr {t}, [{prm}, #12]\n",
            "vstm {t}, {{s0-s11}}\n",
            "vpop {{d0-d15}}\n",
        )
    };
}

/// [`weight_block`] for [`CB`] channels in assembly: the sums `s(3c + kx)` over the rows of
/// kernel row `ky`, each position's 4 output gradients loaded through their plane's pointer
/// (`vldmia`, advancing it) and its 3 inputs by one `vldm`. `None` (nothing done) when the
/// output is 1 column wide or no output row lies under `ky`, or the slices are short (never
/// for [`weight_grad`]'s).
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
fn asm_weight_block(g: &Geometry, gb: &[f32], xc: &[f32], ky: usize) -> Option<[[f32; 3]; CB]> {
    use core::arch::asm;
    let plane_out = g.oh * g.ow;
    let (oy0, oy1) = g.valid(g.h, g.oh, ky);
    let rows = oy1 - oy0;
    // Kernel column 2 of the last output column on the right padding.
    let right = 2 * (g.ow - 1) + 1 >= g.w;
    let inner = g.ow.checked_sub(1 + usize::from(right))?;
    let fits = g.ow >= 2
        && rows >= 1
        && oy1 <= g.oh
        && 2 * oy1 + ky <= g.h + 1
        && oy0 * 2 + ky >= 1
        && gb.len() >= CB * plane_out
        && xc.len() >= g.h * g.w
        && 8 * g.w <= u32::MAX as usize;
    if !fits {
        return None;
    }
    let mut out = [[0.0f32; 3]; CB];
    // Inner positions; whether the last is on the right padding; bytes from where a row's
    // loads leave the input pointer to the next row's start; where the sums go.
    let prm: [u32; 4] = [
        inner as u32,
        u32::from(right),
        (8 * g.w - 4 - 8 * inner) as u32,
        out.as_mut_ptr() as u32,
    ];
    let at = oy0 * g.ow;
    // SAFETY: `fits` holds. Row `r < rows` (output row `oy0 + r < oh`, input row
    // `2·(oy0 + r) + ky − 1`, within `0..h` by `2·oy0 + ky >= 1` and `2·oy1 + ky <= h + 1`)
    // reads each plane's `ow` output gradients `gb[c·plane_out + (oy0 + r)·ow..][..ow]` (the
    // pointers advance one value per position, `1 + inner + right = ow` positions, so each
    // reaches the next row's start) and inputs of the input row only: columns 0 and 1 (the
    // width is at least 3 as `ow >= 2`), `2·ox − 1..=2·ox + 1` for the inner `ox`, at most
    // `2·ow − 1 < w` without right padding and `2·ow − 3` with it, and `2·ow − 3`, `2·ow − 2 <
    // w` for the last on the padding. After the row the pointer has advanced `4 + 8·inner`
    // bytes; `prm[2]` moves it to the next row's start, `2·w` values on. The sums are loaded
    // from and stored to `out` (12 `f32`s), borrowed mutably here. Registers and stack as in
    // `asm_block`.
    unsafe {
        asm!(
            asm_weight_rows!(),
            g0 = inout(reg) gb[at..].as_ptr() => _,
            g1 = inout(reg) gb[plane_out + at..].as_ptr() => _,
            g2 = inout(reg) gb[2 * plane_out + at..].as_ptr() => _,
            g3 = inout(reg) gb[3 * plane_out + at..].as_ptr() => _,
            xp = inout(reg) xc[(2 * oy0 + ky - 1) * g.w..].as_ptr() => _,
            rows = inout(reg) rows => _,
            prm = in(reg) prm.as_ptr(),
            k = out(reg) _,
            t = out(reg) _,
        );
    }
    Some(out)
}

/// The assembly of [`asm_block`] for 4 output columns.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
macro_rules! asm_q4 {
    () => {
        concat!(
            "vpush {{d0-d15}}\n",
            "ldr {t}, [{prm}, #16]\n",
            "mov {k}, {yp}\n",
            "vldm {k}, {{s0-s3}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s4-s7}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s8-s11}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s12-s15}}\n",
            "1:\n",
            "ldr {k}, [{prm}]\n",
            "2:\n",
            "ldr {t}, [{prm}, #12]\n",
            "lsls {t}, {t}, #31\n",
            "it pl\n",
            "vldrpl s16, [{xp}, #-4]\n",
            "it cc\n",
            "vldrcc s24, [{xp}, #28]\n",
            "vldm {xp}, {{s17-s23}}\n",
            "add {xp}, {xp}, {w4}\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "itttt pl\n",
            "vmlapl.f32 s0, s16, s25\n",
            "vmlapl.f32 s4, s16, s26\n",
            "vmlapl.f32 s8, s16, s27\n",
            "vmlapl.f32 s12, s16, s28\n",
            "vmla.f32 s1, s18, s25\n",
            "vmla.f32 s5, s18, s26\n",
            "vmla.f32 s9, s18, s27\n",
            "vmla.f32 s13, s18, s28\n",
            "vmla.f32 s2, s20, s25\n",
            "vmla.f32 s6, s20, s26\n",
            "vmla.f32 s10, s20, s27\n",
            "vmla.f32 s14, s20, s28\n",
            "vmla.f32 s3, s22, s25\n",
            "vmla.f32 s7, s22, s26\n",
            "vmla.f32 s11, s22, s27\n",
            "vmla.f32 s15, s22, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "vmla.f32 s0, s17, s25\n",
            "vmla.f32 s4, s17, s26\n",
            "vmla.f32 s8, s17, s27\n",
            "vmla.f32 s12, s17, s28\n",
            "vmla.f32 s1, s19, s25\n",
            "vmla.f32 s5, s19, s26\n",
            "vmla.f32 s9, s19, s27\n",
            "vmla.f32 s13, s19, s28\n",
            "vmla.f32 s2, s21, s25\n",
            "vmla.f32 s6, s21, s26\n",
            "vmla.f32 s10, s21, s27\n",
            "vmla.f32 s14, s21, s28\n",
            "vmla.f32 s3, s23, s25\n",
            "vmla.f32 s7, s23, s26\n",
            "vmla.f32 s11, s23, s27\n",
            "vmla.f32 s15, s23, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "vmla.f32 s0, s18, s25\n",
            "vmla.f32 s4, s18, s26\n",
            "vmla.f32 s8, s18, s27\n",
            "vmla.f32 s12, s18, s28\n",
            "vmla.f32 s1, s20, s25\n",
            "vmla.f32 s5, s20, s26\n",
            "vmla.f32 s9, s20, s27\n",
            "vmla.f32 s13, s20, s28\n",
            "vmla.f32 s2, s22, s25\n",
            "vmla.f32 s6, s22, s26\n",
            "vmla.f32 s10, s22, s27\n",
            "vmla.f32 s14, s22, s28\n",
            "itttt cc\n",
            "vmlacc.f32 s3, s24, s25\n",
            "vmlacc.f32 s7, s24, s26\n",
            "vmlacc.f32 s11, s24, s27\n",
            "vmlacc.f32 s15, s24, s28\n",
            "subs {k}, {k}, #1\n",
            "bne 2b\n",
            "ldr {t}, [{prm}, #4]\n",
            "add {xp}, {xp}, {t}\n",
            "ldr {t}, [{prm}, #8]\n",
            "add {wp}, {wp}, {t}\n",
            "subs {ci}, {ci}, #1\n",
            "bne 1b\n",
            "ldr {t}, [{prm}, #16]\n",
            "vstm {yp}, {{s0-s3}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s4-s7}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s8-s11}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s12-s15}}\n",
            "vpop {{d0-d15}}\n",
        )
    };
}

/// The assembly of [`asm_block`] for 3 output columns.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
macro_rules! asm_q3 {
    () => {
        concat!(
            "vpush {{d0-d15}}\n",
            "ldr {t}, [{prm}, #16]\n",
            "mov {k}, {yp}\n",
            "vldm {k}, {{s0-s2}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s3-s5}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s6-s8}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s9-s11}}\n",
            "1:\n",
            "ldr {k}, [{prm}]\n",
            "2:\n",
            "ldr {t}, [{prm}, #12]\n",
            "lsls {t}, {t}, #31\n",
            "it pl\n",
            "vldrpl s16, [{xp}, #-4]\n",
            "it cc\n",
            "vldrcc s22, [{xp}, #20]\n",
            "vldm {xp}, {{s17-s21}}\n",
            "add {xp}, {xp}, {w4}\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "itttt pl\n",
            "vmlapl.f32 s0, s16, s25\n",
            "vmlapl.f32 s3, s16, s26\n",
            "vmlapl.f32 s6, s16, s27\n",
            "vmlapl.f32 s9, s16, s28\n",
            "vmla.f32 s1, s18, s25\n",
            "vmla.f32 s4, s18, s26\n",
            "vmla.f32 s7, s18, s27\n",
            "vmla.f32 s10, s18, s28\n",
            "vmla.f32 s2, s20, s25\n",
            "vmla.f32 s5, s20, s26\n",
            "vmla.f32 s8, s20, s27\n",
            "vmla.f32 s11, s20, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "vmla.f32 s0, s17, s25\n",
            "vmla.f32 s3, s17, s26\n",
            "vmla.f32 s6, s17, s27\n",
            "vmla.f32 s9, s17, s28\n",
            "vmla.f32 s1, s19, s25\n",
            "vmla.f32 s4, s19, s26\n",
            "vmla.f32 s7, s19, s27\n",
            "vmla.f32 s10, s19, s28\n",
            "vmla.f32 s2, s21, s25\n",
            "vmla.f32 s5, s21, s26\n",
            "vmla.f32 s8, s21, s27\n",
            "vmla.f32 s11, s21, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "vmla.f32 s0, s18, s25\n",
            "vmla.f32 s3, s18, s26\n",
            "vmla.f32 s6, s18, s27\n",
            "vmla.f32 s9, s18, s28\n",
            "vmla.f32 s1, s20, s25\n",
            "vmla.f32 s4, s20, s26\n",
            "vmla.f32 s7, s20, s27\n",
            "vmla.f32 s10, s20, s28\n",
            "itttt cc\n",
            "vmlacc.f32 s2, s22, s25\n",
            "vmlacc.f32 s5, s22, s26\n",
            "vmlacc.f32 s8, s22, s27\n",
            "vmlacc.f32 s11, s22, s28\n",
            "subs {k}, {k}, #1\n",
            "bne 2b\n",
            "ldr {t}, [{prm}, #4]\n",
            "add {xp}, {xp}, {t}\n",
            "ldr {t}, [{prm}, #8]\n",
            "add {wp}, {wp}, {t}\n",
            "subs {ci}, {ci}, #1\n",
            "bne 1b\n",
            "ldr {t}, [{prm}, #16]\n",
            "vstm {yp}, {{s0-s2}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s3-s5}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s6-s8}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s9-s11}}\n",
            "vpop {{d0-d15}}\n",
        )
    };
}

/// The assembly of [`asm_block`] for 2 output columns.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
macro_rules! asm_q2 {
    () => {
        concat!(
            "vpush {{d0-d15}}\n",
            "ldr {t}, [{prm}, #16]\n",
            "mov {k}, {yp}\n",
            "vldm {k}, {{s0-s1}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s2-s3}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s4-s5}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s6-s7}}\n",
            "1:\n",
            "ldr {k}, [{prm}]\n",
            "2:\n",
            "ldr {t}, [{prm}, #12]\n",
            "lsls {t}, {t}, #31\n",
            "it pl\n",
            "vldrpl s16, [{xp}, #-4]\n",
            "it cc\n",
            "vldrcc s20, [{xp}, #12]\n",
            "vldm {xp}, {{s17-s19}}\n",
            "add {xp}, {xp}, {w4}\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "itttt pl\n",
            "vmlapl.f32 s0, s16, s25\n",
            "vmlapl.f32 s2, s16, s26\n",
            "vmlapl.f32 s4, s16, s27\n",
            "vmlapl.f32 s6, s16, s28\n",
            "vmla.f32 s1, s18, s25\n",
            "vmla.f32 s3, s18, s26\n",
            "vmla.f32 s5, s18, s27\n",
            "vmla.f32 s7, s18, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "vmla.f32 s0, s17, s25\n",
            "vmla.f32 s2, s17, s26\n",
            "vmla.f32 s4, s17, s27\n",
            "vmla.f32 s6, s17, s28\n",
            "vmla.f32 s1, s19, s25\n",
            "vmla.f32 s3, s19, s26\n",
            "vmla.f32 s5, s19, s27\n",
            "vmla.f32 s7, s19, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "vmla.f32 s0, s18, s25\n",
            "vmla.f32 s2, s18, s26\n",
            "vmla.f32 s4, s18, s27\n",
            "vmla.f32 s6, s18, s28\n",
            "itttt cc\n",
            "vmlacc.f32 s1, s20, s25\n",
            "vmlacc.f32 s3, s20, s26\n",
            "vmlacc.f32 s5, s20, s27\n",
            "vmlacc.f32 s7, s20, s28\n",
            "subs {k}, {k}, #1\n",
            "bne 2b\n",
            "ldr {t}, [{prm}, #4]\n",
            "add {xp}, {xp}, {t}\n",
            "ldr {t}, [{prm}, #8]\n",
            "add {wp}, {wp}, {t}\n",
            "subs {ci}, {ci}, #1\n",
            "bne 1b\n",
            "ldr {t}, [{prm}, #16]\n",
            "vstm {yp}, {{s0-s1}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s2-s3}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s4-s5}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s6-s7}}\n",
            "vpop {{d0-d15}}\n",
        )
    };
}

/// The assembly of [`asm_block`] for 1 output column.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
macro_rules! asm_q1 {
    () => {
        concat!(
            "vpush {{d0-d15}}\n",
            "ldr {t}, [{prm}, #16]\n",
            "mov {k}, {yp}\n",
            "vldm {k}, {{s0}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s1}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s2}}\n",
            "add {k}, {k}, {t}\n",
            "vldm {k}, {{s3}}\n",
            "1:\n",
            "ldr {k}, [{prm}]\n",
            "2:\n",
            "ldr {t}, [{prm}, #12]\n",
            "lsls {t}, {t}, #31\n",
            "it pl\n",
            "vldrpl s16, [{xp}, #-4]\n",
            "it cc\n",
            "vldrcc s18, [{xp}, #4]\n",
            "vldm {xp}, {{s17}}\n",
            "add {xp}, {xp}, {w4}\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "itttt pl\n",
            "vmlapl.f32 s0, s16, s25\n",
            "vmlapl.f32 s1, s16, s26\n",
            "vmlapl.f32 s2, s16, s27\n",
            "vmlapl.f32 s3, s16, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "vmla.f32 s0, s17, s25\n",
            "vmla.f32 s1, s17, s26\n",
            "vmla.f32 s2, s17, s27\n",
            "vmla.f32 s3, s17, s28\n",
            "vldmia {wp}!, {{s25-s28}}\n",
            "itttt cc\n",
            "vmlacc.f32 s0, s18, s25\n",
            "vmlacc.f32 s1, s18, s26\n",
            "vmlacc.f32 s2, s18, s27\n",
            "vmlacc.f32 s3, s18, s28\n",
            "subs {k}, {k}, #1\n",
            "bne 2b\n",
            "ldr {t}, [{prm}, #4]\n",
            "add {xp}, {xp}, {t}\n",
            "ldr {t}, [{prm}, #8]\n",
            "add {wp}, {wp}, {t}\n",
            "subs {ci}, {ci}, #1\n",
            "bne 1b\n",
            "ldr {t}, [{prm}, #16]\n",
            "vstm {yp}, {{s0}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s1}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s2}}\n",
            "add {yp}, {yp}, {t}\n",
            "vstm {yp}, {{s3}}\n",
            "vpop {{d0-d15}}\n",
        )
    };
}

/// Block `b` as [`rust_block`] computes it, in assembly; false (nothing done) when the buffers
/// do not hold everything the block touches (never for the blocks [`sweep`] makes).
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
fn asm_block(g: &Geometry, b: &Block, wb: &[f32], xc: &[f32], yb: &mut [f32]) -> bool {
    use core::arch::asm;
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let cn = wb.len() / TAPS;
    let q = b.q;
    // The last input value the block reads: the right one of the last channel's last row when
    // it is not padding, else the last under kernel column 1.
    let last_x = (cn.wrapping_sub(1) * plane_in)
        .checked_add(b.x0 + (b.rows - 1) * g.w + 2 * q - 1 - usize::from(b.right));
    let fits = (1..=P).contains(&q)
        && cn >= 1
        && cn * TAPS == wb.len()
        && xc.len() >= cn * plane_in
        && (1..=3).contains(&b.rows)
        && b.ky0 + b.rows <= 3
        && (b.left || b.x0 % g.w >= 1)
        && last_x.is_some_and(|i| i < xc.len())
        && b.y0 + q <= plane_out
        && yb.len() >= CB * plane_out
        && plane_in * 4 <= u32::MAX as usize;
    if !fits {
        return false;
    }
    // rows; bytes from the end of a channel's rows to the next channel's first (input, then
    // weights); bit 0 left padding, bit 1 right padding; bytes between output planes.
    let prm: [u32; 5] = [
        b.rows as u32,
        (4 * (plane_in - b.rows * g.w)) as u32,
        (4 * (TAPS - b.rows * 3 * CB)) as u32,
        u32::from(b.left) | u32::from(b.right) << 1,
        (4 * plane_out) as u32,
    ];
    let xp = xc[b.x0..].as_ptr();
    let wp = wb[b.ky0 * 3 * CB..].as_ptr();
    let yp = yb[b.y0..].as_mut_ptr();
    macro_rules! run {
        ($body:expr) => {
            // SAFETY: the block reads and writes only inside the three slices, as `fits` checks:
            // channel `ci < cn`, row `r < rows` of the input reads `xc[ci·plane_in + x0 +
            // r·w + i]` for `i` in `0..2q − 1` (one `vldm`), `i = −1` only when `left` is false
            // (then `x0` is not at the start of a row, so the index is within the channel) and
            // `i = 2q − 1` only when `right` is false, all at most `last_x < xc.len()`; the
            // weights `wb[ci·TAPS + (ky0 + r)·12..][..12]`, within `cn·TAPS = wb.len()` since
            // `ky0 + rows <= 3`; the outputs `yb[c·plane_out + y0..][..q]` for `c < 4`, within
            // `yb` since `y0 + q <= plane_out`. The pointers advance by the loads (`vldmia`)
            // and by the byte counts of `prm`, which return them to exactly those places. `yb`
            // is borrowed mutably for the call and `xc`, `wb` are not written. The
            // conditional loads and multiply-accumulates run on the flags that `lsls` sets from
            // `prm[3]` (N: left, C: right), which nothing between them changes. Floating-point
            // registers are saved and restored by the block (`vpush`/`vpop`), as in `vfp.rs`;
            // every general register it changes is an operand declared clobbered.
            unsafe {
                asm!(
                    $body,
                    xp = inout(reg) xp => _,
                    wp = inout(reg) wp => _,
                    yp = inout(reg) yp => _,
                    ci = inout(reg) cn => _,
                    w4 = in(reg) 4 * g.w,
                    prm = in(reg) prm.as_ptr(),
                    k = out(reg) _,
                    t = out(reg) _,
                )
            }
        };
    }
    match q {
        4 => run!(asm_q4!()),
        3 => run!(asm_q3!()),
        2 => run!(asm_q2!()),
        _ => run!(asm_q1!()),
    }
    true
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::{conv2d, Window};
    use super::*;
    use std::vec::Vec;

    /// Deterministic values with zeros of both signs and a spread of magnitudes.
    fn values(seed: u32, len: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                match s % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => (s >> 8) as f32 / (1u32 << 23) as f32 * 2.0 - 1.0,
                }
            })
            .collect()
    }

    fn geometry(cin: usize, h: usize, w: usize, cout: usize) -> Geometry {
        let win = Window {
            kernel: 3,
            stride: 2,
            padding: 1,
        };
        Geometry {
            cin,
            h,
            w,
            cout,
            oh: win.out(h).unwrap(),
            ow: win.out(w).unwrap(),
            win,
        }
    }

    /// The same bits as the direct loop on every size of image from 1 × 1 to 15 × 15 and
    /// channel counts around the block size and the weight buffer's (`CI`), batches of 1 and
    /// 2, biases of `-0.0` included.
    #[test]
    fn forward_gives_the_direct_loops_bits() {
        let mut seed = 0;
        let small = [(1, 4), (2, 5), (3, 8), (1, 1), (5, 3), (4, 9)].map(|c| (c, 1..16));
        let wide = [(CI, 4), (CI + 1, 6), (2 * CI + 3, 5)].map(|c| (c, 1..6));
        for ((cin, cout), hs) in small.into_iter().chain(wide) {
            for h in hs {
                for w in [1, 2, 3, 4, 5, 7, 8, 14, h] {
                    let g = geometry(cin, h, w, cout);
                    g.check().unwrap();
                    seed += 1;
                    let n = 1 + seed as usize % 2;
                    // Weights that f16 holds exactly, read as f32 or (every other shape) f16.
                    let halves: Vec<u16> = values(seed, cout * cin * 9)
                        .iter()
                        .map(|&v| half::f16::from_f32(v).to_bits())
                        .collect();
                    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
                    let wt: Vec<f32> = halves.iter().map(|&h| f16_to_f32(h)).collect();
                    let mut bias = values(seed + 7, cout);
                    bias[0] = -0.0;
                    let x = values(seed + 13, n * cin * h * w);
                    let len = n * cout * g.oh * g.ow;
                    let (mut want, mut got) = (std::vec![1.5; len], std::vec![2.5; len]);
                    conv2d::forward_direct(&g, |i| wt[i], |c| bias[c], &x, &mut want, n);
                    let done = if seed % 2 == 0 {
                        forward(&g, Each(|i| wt[i]), |c| bias[c], &x, &mut got, n)
                    } else {
                        forward(&g, F16(&bytes), |c| bias[c], &x, &mut got, n)
                    };
                    assert!(done);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{g:?}, n = {n}");
                }
            }
        }
    }

    /// The input and weight gradients: the same bits as the direct loops on the shapes of
    /// the forward test.
    #[test]
    fn gradients_give_the_direct_loops_bits() {
        let mut seed = 1000;
        let small = [(1, 4), (4, 2), (5, 3), (8, 1), (9, 4)].map(|c| (c, 1..16));
        let wide = [(4, CI), (6, CI + 1), (5, 2 * CI + 3)].map(|c| (c, 1..6));
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for ((cin, cout), hs) in small.into_iter().chain(wide) {
            for h in hs {
                for w in [1, 2, 3, 4, 5, 7, 8, 14, h] {
                    let g = geometry(cin, h, w, cout);
                    seed += 1;
                    let n = 1 + seed as usize % 2;
                    let wt = values(seed, cout * cin * 9);
                    let x = values(seed + 3, n * cin * h * w);
                    let gy = values(seed + 5, n * cout * g.oh * g.ow);
                    let (mut want, mut got) = (std::vec![1.5; x.len()], std::vec![2.5; x.len()]);
                    conv2d::input_grad_direct(&g, |i| wt[i], &gy, &mut want, n);
                    assert!(input_grad(&g, Each(|i| wt[i]), &gy, &mut got, n));
                    assert_eq!(bits(&got), bits(&want), "input gradient {g:?}, n = {n}");
                    let mut dw0 = std::vec![0.0; wt.len()];
                    conv2d::weight_grad_direct(&g, &x, &gy, &mut dw0, n);
                    let mut dw = std::vec![7.0; wt.len()];
                    assert!(weight_grad(&g, &x, &gy, &mut dw, n));
                    assert_eq!(bits(&dw), bits(&dw0), "weight gradient {g:?}, n = {n}");
                }
            }
        }
    }

    #[test]
    fn other_windows_are_left_to_the_direct_loop() {
        let mut g = geometry(1, 6, 6, 1);
        g.win.padding = 0;
        g.oh = 2;
        g.ow = 2;
        let mut y = [3.0f32; 4];
        assert!(!forward(&g, Each(|_| 1.0), |_| 0.0, &[1.0; 36], &mut y, 1));
        assert_eq!(y, [3.0; 4]);
    }
}
