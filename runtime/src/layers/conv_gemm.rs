//! Host convolution (feature `gemm`): im2col plus a tuned matrix product (ndarray's
//! `general_mat_mul`, which runs `matrixmultiply`'s SIMD kernels), for meta-training on a
//! workstation. Same maths and the same tensors as the direct kernels in `conv2d.rs`, which
//! the device uses: only the order of the additions differs (results agree to float
//! rounding, checked by the tests below). Needs a heap for the im2col scratch, so it is
//! host-only; a device build never enables it.

extern crate std;

use super::conv2d::Geometry;
use core::cell::RefCell;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use std::vec;
use std::vec::Vec;

std::thread_local! {
    /// Per-thread scratch for the patch matrix, the product and the output gradient,
    /// reused between calls so a meta-training step allocates nothing after its first pass.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Below this many multiply-accumulates per sample the direct kernel is as fast.
const MIN_MACS: usize = 4096;

/// Whether the GEMM path pays off for this geometry.
pub fn worthwhile(g: &Geometry) -> bool {
    g.cout * g.oh * g.ow * g.cin * g.win.kernel * g.win.kernel >= MIN_MACS
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut v = s.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

/// Rows of the patch matrix: one per (input channel, kernel row, kernel column).
fn rows(g: &Geometry) -> usize {
    g.cin * g.win.kernel * g.win.kernel
}

/// A sample's channel plane with its padding made explicit: the input copied into a zeroed
/// `ph × pw` plane at offset (padding, padding), so every window reads inside it.
struct Padded {
    ph: usize,
    pw: usize,
}

impl Padded {
    fn new(g: &Geometry) -> Padded {
        let (k, st) = (g.win.kernel, g.win.stride);
        // Rows (columns) 0..(o-1)·stride + kernel of the padded plane are read; the input
        // itself ends at padding + h (w).
        let ph = ((g.oh - 1) * st + k).max(g.win.padding + g.h);
        // Plus stride − 1 zero columns, so the window row of any offset spans `ow · stride`
        // values inside the plane (the row copies below step through such a span).
        let pw = ((g.ow - 1) * st + k).max(g.win.padding + g.w) + st - 1;
        Padded { ph, pw }
    }
    fn len(&self) -> usize {
        self.ph * self.pw
    }
    /// The kernel offsets in kernel order (row, then column): each one's index `ky·k + kx`
    /// and where its windows start in a padded plane, `ky·pw + kx`.
    fn offsets(&self, k: usize) -> impl Iterator<Item = (usize, usize)> {
        let pw = self.pw;
        (0..k).flat_map(move |ky| (0..k).map(move |kx| (ky * k + kx, ky * pw + kx)))
    }
}

/// Fills `cols` (`rows × n·P`, row-major, P = oh·ow) with the input patches of `n` samples:
/// column `s·P + oy·ow + ox` of row (ci, ky, kx) holds the input under kernel offset (ky, kx)
/// of output position (oy, ox) of sample `s`, zero where it overlaps the padding. `planes`
/// holds the padded input planes.
fn im2col(g: &Geometry, pad: &Padded, planes: &mut [f32], x: &[f32], n: usize, cols: &mut [f32]) {
    let k = g.win.kernel;
    pad_planes(g, pad, x, n, planes);
    for (j, origin) in pad.offsets(k) {
        let rows = Rows {
            first: j,
            step: k * k,
        };
        gather(g, pad, planes, n, origin, rows, cols);
    }
}

/// Writes into the input gradient `gx` the patch-matrix gradient `cols` summed back onto the
/// input positions (the transpose of [`im2col`]); contributions to one position are added in
/// kernel order (row, then column), from 0. `planes` is scratch for the padded planes.
fn col2im(g: &Geometry, pad: &Padded, planes: &mut [f32], cols: &[f32], n: usize, gx: &mut [f32]) {
    let k = g.win.kernel;
    planes.fill(0.0);
    for (j, origin) in pad.offsets(k) {
        let rows = Rows {
            first: j,
            step: k * k,
        };
        scatter_add(g, pad, cols, n, origin, rows, planes);
    }
    unpad_planes(g, pad, planes, n, gx);
}

/// Convolutions with at least this many input channels run as one matrix product per kernel
/// offset over a `cin × n·P` gather that stays in cache, instead of one product over the whole
/// (`kernel²` times larger) im2col matrix, whose writes and reads go to memory. Chosen by the
/// geometry alone, never by the batch size, so a sample's output does not depend on the batch
/// it is predicted in (per-element sums in the same order at batch 1 and 25; a test checks
/// it).
const PER_OFFSET_MIN_CIN: usize = 8;

/// Copies each of the `n × cin` input planes into its zero-padded plane in `planes`.
fn pad_planes(g: &Geometry, pad: &Padded, x: &[f32], n: usize, planes: &mut [f32]) {
    let p = g.win.padding;
    planes.fill(0.0);
    for (xc, pc) in x
        .chunks_exact(g.h * g.w)
        .take(n * g.cin)
        .zip(planes.chunks_exact_mut(pad.len()))
    {
        for (iy, row) in xc.chunks_exact(g.w).enumerate() {
            pc[(iy + p) * pad.pw + p..][..g.w].copy_from_slice(row);
        }
    }
}

/// The interior of each padded plane (the input positions) copied back into `gx`.
fn unpad_planes(g: &Geometry, pad: &Padded, planes: &[f32], n: usize, gx: &mut [f32]) {
    let p = g.win.padding;
    for (gc, pc) in gx
        .chunks_exact_mut(g.h * g.w)
        .take(n * g.cin)
        .zip(planes.chunks_exact(pad.len()))
    {
        for (iy, row) in gc.chunks_exact_mut(g.w).enumerate() {
            row.copy_from_slice(&pc[(iy + p) * pad.pw + p..][..g.w]);
        }
    }
}

/// The per-offset matrix `cin × n·P`: channel `ci` in row `ci`.
const PER_OFFSET: Rows = Rows { first: 0, step: 1 };

/// Which matrix row holds input channel `ci`: `first + ci · step` (the per-offset matrix: 0 and
/// 1; the im2col matrix: the offset's index and `kernel²`).
#[derive(Clone, Copy)]
struct Rows {
    first: usize,
    step: usize,
}

/// Row `oy` of the window of kernel offset `off` in a padded plane: `ow · stride` values from
/// which every stride-th is read (inside the plane: see `Padded::new`).
#[inline(always)]
fn window_row(
    pad: &Padded,
    st: usize,
    ow: usize,
    off: usize,
    oy: usize,
) -> core::ops::Range<usize> {
    let start = off + oy * st * pad.pw;
    start..start + ow * st
}

/// For kernel offset `off` (= ky·pw + kx in the padded plane), the input value under each
/// output position, for every channel and sample, into row `rows` of channel `ci` of `m`
/// (`… × n·P`), columns `s·P ..`.
fn gather(
    g: &Geometry,
    pad: &Padded,
    planes: &[f32],
    n: usize,
    off: usize,
    rows: Rows,
    m: &mut [f32],
) {
    let (ow, st) = (g.ow, g.win.stride);
    let plane = g.oh * ow;
    let width = n * plane;
    for (i, pc) in planes.chunks_exact(pad.len()).take(n * g.cin).enumerate() {
        let (s, ci) = (i / g.cin, i % g.cin);
        let dst = &mut m[(rows.first + ci * rows.step) * width + s * plane..][..plane];
        for (oy, drow) in dst.chunks_exact_mut(ow).enumerate() {
            let src = &pc[window_row(pad, st, ow, off, oy)];
            if st == 1 {
                drow.copy_from_slice(src);
            } else {
                for (d, step) in drow.iter_mut().zip(src.chunks_exact(st)) {
                    *d = step[0];
                }
            }
        }
    }
}

/// The transpose of [`gather`]: adds rows `rows` of `m` onto the padded planes at kernel
/// offset `off`.
fn scatter_add(
    g: &Geometry,
    pad: &Padded,
    m: &[f32],
    n: usize,
    off: usize,
    rows: Rows,
    planes: &mut [f32],
) {
    let (ow, st) = (g.ow, g.win.stride);
    let plane = g.oh * ow;
    let width = n * plane;
    for (i, pc) in planes
        .chunks_exact_mut(pad.len())
        .take(n * g.cin)
        .enumerate()
    {
        let (s, ci) = (i / g.cin, i % g.cin);
        let src = &m[(rows.first + ci * rows.step) * width + s * plane..][..plane];
        for (oy, srow) in src.chunks_exact(ow).enumerate() {
            let dst = &mut pc[window_row(pad, st, ow, off, oy)];
            for (step, &v) in dst.chunks_exact_mut(st).zip(srow) {
                step[0] += v;
            }
        }
    }
}

/// The `cout × cin` weights of kernel offset `j = ky·k + kx`, viewed in place in
/// `[cout, cin, k, k]`.
fn offset_weights<'w>(g: &Geometry, wt: &'w [f32], j: usize) -> ArrayView2<'w, f32> {
    let k = g.win.kernel;
    ArrayView2::from_shape((g.cout, g.cin).strides((g.cin * k * k, k * k)), &wt[j..])
        .expect("weights sized for their shape")
}

/// Views `data` as a row-major `r × c` matrix. The callers pass slices they sized exactly,
/// so the shape always matches.
fn view(data: &[f32], r: usize, c: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((r, c), &data[..r * c]).expect("slice sized for its matrix shape")
}

fn view_mut(data: &mut [f32], r: usize, c: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((r, c), &mut data[..r * c]).expect("slice sized for its matrix shape")
}

/// Forward for `n` samples, same contract as [`super::conv2d::forward`]. The batch is split
/// in two halves handed to `rayon::join`, so a thread left idle by the meta-batch (5 tasks on
/// 2 threads) takes one; the split is fixed, so results do not depend on the thread count.
pub fn forward(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    let (in_len, out_len) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    if n < 2 {
        return forward_part(g, wt, bias, x, y, n);
    }
    let h = n / 2;
    let (x0, x1) = x[..n * in_len].split_at(h * in_len);
    let (y0, y1) = y[..n * out_len].split_at_mut(h * out_len);
    rayon::join(
        || forward_part(g, wt, bias, x0, y0, h),
        || forward_part(g, wt, bias, x1, y1, n - h),
    );
}

fn forward_part(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    if g.cin >= PER_OFFSET_MIN_CIN {
        return forward_offsets(g, wt, bias, x, y, n);
    }
    let kk = rows(g);
    let plane = g.oh * g.ow;
    let width = n * plane;
    let pad = Padded::new(g);
    with_scratch(
        kk * width + g.cout * width + n * g.cin * pad.len(),
        |scratch| {
            let (cols, rest) = scratch.split_at_mut(kk * width);
            let (out, planes) = rest.split_at_mut(g.cout * width);
            im2col(g, &pad, planes, x, n, cols);
            general_mat_mul(
                1.0,
                &view(wt, g.cout, kk),
                &view(cols, kk, width),
                0.0,
                &mut view_mut(out, g.cout, width),
            );
            scatter(g, bias, out, y, n);
        },
    );
}

/// [`forward_part`] as one product per kernel offset, summed into the output in kernel order.
fn forward_offsets(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    let k = g.win.kernel;
    let width = n * g.oh * g.ow;
    let pad = Padded::new(g);
    let planes_len = n * g.cin * pad.len();
    with_scratch(planes_len + g.cin * width + g.cout * width, |scratch| {
        let (planes, rest) = scratch.split_at_mut(planes_len);
        let (xk, out) = rest.split_at_mut(g.cin * width);
        pad_planes(g, &pad, x, n, planes);
        for (j, origin) in pad.offsets(k) {
            gather(g, &pad, planes, n, origin, PER_OFFSET, xk);
            let beta = if j == 0 { 0.0 } else { 1.0 };
            general_mat_mul(
                1.0,
                &offset_weights(g, wt, j),
                &view(xk, g.cin, width),
                beta,
                &mut view_mut(out, g.cout, width),
            );
        }
        scatter(g, bias, out, y, n);
    });
}

/// Writes the `cout × n·P` product plus the bias into `y` (`n × cout×oh×ow`).
fn scatter(g: &Geometry, bias: &[f32], out: &[f32], y: &mut [f32], n: usize) {
    let plane = g.oh * g.ow;
    let width = n * plane;
    let out_len = g.cout * plane;
    for (s, ys) in y.chunks_exact_mut(out_len).take(n).enumerate() {
        for (co, yc) in ys.chunks_exact_mut(plane).enumerate() {
            let src = &out[co * width + s * plane..][..plane];
            for (d, &v) in yc.iter_mut().zip(src) {
                *d = v + bias[co];
            }
        }
    }
}

/// The output gradient `gy` (`n × cout×oh×ow`) as a `cout × n·P` matrix in `gyc`.
fn output_grad_matrix(g: &Geometry, gy: &[f32], n: usize, gyc: &mut [f32]) {
    let plane = g.oh * g.ow;
    let width = n * plane;
    for (s, gs) in gy.chunks_exact(g.cout * plane).take(n).enumerate() {
        for (co, gc) in gs.chunks_exact(plane).enumerate() {
            gyc[co * width + s * plane..][..plane].copy_from_slice(gc);
        }
    }
}

/// Bias gradient: each row of the `cout × width` output-gradient matrix summed.
fn bias_grad(g: &Geometry, gyc: &[f32], width: usize, db: &mut [f32]) {
    for (co, d) in db.iter_mut().enumerate().take(g.cout) {
        *d = gyc[co * width..(co + 1) * width].iter().sum();
    }
}

/// Backward for `n` samples, same contract as [`super::conv2d::backward`]. Split in two
/// halves of the batch like [`forward`]; the weight and bias gradients are the first half's
/// plus the second's.
pub fn backward(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    let (in_len, out_len) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    if n < 2 {
        return backward_part(g, wt, x, gy, params_grad, gx, n);
    }
    let h = n / 2;
    let (x0, x1) = x[..n * in_len].split_at(h * in_len);
    let (gy0, gy1) = gy[..n * out_len].split_at(h * out_len);
    let (gx0, gx1) = match gx {
        Some(gx) => {
            let (a, b) = gx[..n * in_len].split_at_mut(h * in_len);
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    match params_grad {
        Some((dw, db)) => {
            let (mut dw1, mut db1) = (vec![0.0; dw.len()], vec![0.0; db.len()]);
            rayon::join(
                || backward_part(g, wt, x0, gy0, Some((&mut *dw, &mut *db)), gx0, h),
                || backward_part(g, wt, x1, gy1, Some((&mut dw1, &mut db1)), gx1, n - h),
            );
            for (d, e) in dw.iter_mut().zip(&dw1) {
                *d += e;
            }
            for (d, e) in db.iter_mut().zip(&db1) {
                *d += e;
            }
        }
        None => {
            rayon::join(
                || backward_part(g, wt, x0, gy0, None, gx0, h),
                || backward_part(g, wt, x1, gy1, None, gx1, n - h),
            );
        }
    }
}

fn backward_part(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    if g.cin >= PER_OFFSET_MIN_CIN {
        return backward_offsets(g, wt, x, gy, params_grad, gx, n);
    }
    let kk = rows(g);
    let plane = g.oh * g.ow;
    let width = n * plane;
    let pad = Padded::new(g);
    with_scratch(
        kk * width + g.cout * width + n * g.cin * pad.len(),
        |scratch| {
            let (cols, rest) = scratch.split_at_mut(kk * width);
            let (gyc, planes) = rest.split_at_mut(g.cout * width);
            output_grad_matrix(g, gy, n, gyc);
            let gyv = view(gyc, g.cout, width);
            if let Some((dw, db)) = params_grad {
                im2col(g, &pad, planes, x, n, cols);
                general_mat_mul(
                    1.0,
                    &gyv,
                    &view(cols, kk, width).t(),
                    0.0,
                    &mut view_mut(dw, g.cout, kk),
                );
                bias_grad(g, gyc, width, db);
            }
            if let Some(gx) = gx {
                general_mat_mul(
                    1.0,
                    &view(wt, g.cout, kk).t(),
                    &gyv,
                    0.0,
                    &mut view_mut(cols, kk, width),
                );
                col2im(g, &pad, planes, cols, n, gx);
            }
        },
    );
}

/// [`backward_part`] as one product per kernel offset: the weight gradient of each offset
/// written in place in `[cout, cin, k, k]`, the input gradient summed onto padded planes in
/// kernel order.
fn backward_offsets(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    let k = g.win.kernel;
    let plane = g.oh * g.ow;
    let width = n * plane;
    let pad = Padded::new(g);
    let planes_len = n * g.cin * pad.len();
    with_scratch(planes_len + g.cin * width + g.cout * width, |scratch| {
        let (planes, rest) = scratch.split_at_mut(planes_len);
        let (xk, gyc) = rest.split_at_mut(g.cin * width);
        output_grad_matrix(g, gy, n, gyc);
        let gyv = view(gyc, g.cout, width);
        if let Some((dw, db)) = params_grad {
            pad_planes(g, &pad, x, n, planes);
            for (j, origin) in pad.offsets(k) {
                gather(g, &pad, planes, n, origin, PER_OFFSET, xk);
                let mut dwk = ArrayViewMut2::from_shape(
                    (g.cout, g.cin).strides((g.cin * k * k, k * k)),
                    &mut dw[j..],
                )
                .expect("weight gradient sized for its shape");
                general_mat_mul(1.0, &gyv, &view(xk, g.cin, width).t(), 0.0, &mut dwk);
            }
            bias_grad(g, gyc, width, db);
        }
        if let Some(gx) = gx {
            planes.fill(0.0);
            for (j, origin) in pad.offsets(k) {
                general_mat_mul(
                    1.0,
                    &offset_weights(g, wt, j).t(),
                    &gyv,
                    0.0,
                    &mut view_mut(xk, g.cin, width),
                );
                scatter_add(g, &pad, xk, n, origin, PER_OFFSET, planes);
            }
            unpad_planes(g, &pad, planes, n, gx);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::conv2d;
    use super::super::Window;
    use super::*;
    use std::vec;

    fn lcg(seed: &mut u32) -> f32 {
        *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    }

    fn close(a: &[f32], b: &[f32]) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{i}: {x} vs {y}");
        }
    }

    /// A square `h × h` input, square kernel, same stride and padding on both axes.
    fn square(
        cin: usize,
        h: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Geometry {
        let oh = (h + 2 * padding - kernel) / stride + 1;
        Geometry {
            cin,
            h,
            w: h,
            cout,
            oh,
            ow: oh,
            win: Window {
                kernel,
                stride,
                padding,
            },
        }
    }

    #[test]
    fn matches_direct_kernels() {
        for &(cin, h, cout, kernel, stride, padding, n) in &[
            (1, 28, 64, 3, 2, 1, 3),
            (3, 7, 5, 3, 2, 1, 2),
            (2, 9, 4, 3, 1, 1, 2),
            (4, 6, 3, 2, 2, 0, 1),
            (2, 5, 3, 5, 1, 2, 2),
            (1, 2, 2, 5, 1, 3, 2),
            (64, 14, 64, 3, 2, 1, 5),
            (8, 5, 3, 3, 1, 1, 3),
            (9, 6, 4, 2, 2, 0, 1),
            (8, 3, 2, 5, 1, 3, 2),
            (8, 10, 3, 4, 3, 2, 2),
            (8, 11, 2, 3, 2, 0, 2),
        ] {
            let g = square(cin, h, cout, kernel, stride, padding);
            let oh = g.oh;
            let mut seed = 7;
            let mut rnd = |len: usize| (0..len).map(|_| lcg(&mut seed)).collect::<Vec<_>>();
            let wt = rnd(cout * cin * kernel * kernel);
            let b = rnd(cout);
            let x = rnd(n * cin * h * h);
            let gy = rnd(n * cout * oh * oh);
            let mut y0 = vec![0.0; gy.len()];
            let mut y1 = y0.clone();
            conv2d::forward(&g, &wt, &b, &x, &mut y0, n);
            forward(&g, &wt, &b, &x, &mut y1, n);
            close(&y1, &y0);
            let (mut dw0, mut db0, mut gx0) =
                (vec![0.0; wt.len()], vec![0.0; cout], vec![0.0; x.len()]);
            let (mut dw1, mut db1, mut gx1) = (dw0.clone(), db0.clone(), vec![1.0; x.len()]);
            conv2d::backward(
                &g,
                &wt,
                &x,
                &gy,
                Some((&mut dw0, &mut db0)),
                Some(&mut gx0),
                n,
            );
            backward(
                &g,
                &wt,
                &x,
                &gy,
                Some((&mut dw1, &mut db1)),
                Some(&mut gx1),
                n,
            );
            close(&dw1, &dw0);
            close(&db1, &db0);
            close(&gx1, &gx0);
        }
    }
    /// A sample's forward output does not depend on the batch it is computed in: the same
    /// bits alone and at batch 7, for the im2col and the per-offset paths.
    #[test]
    fn forward_is_batch_independent() {
        for &(cin, h, cout, stride) in &[(1, 28, 16, 2), (64, 14, 64, 2), (8, 7, 4, 1)] {
            let g = square(cin, h, cout, 3, stride, 1);
            let oh = g.oh;
            let n = 7;
            let mut seed = 3;
            let mut rnd = |len: usize| (0..len).map(|_| lcg(&mut seed)).collect::<Vec<_>>();
            let wt = rnd(cout * cin * 9);
            let b = rnd(cout);
            let x = rnd(n * cin * h * h);
            let out_len = cout * oh * oh;
            let mut all = vec![0.0; n * out_len];
            forward(&g, &wt, &b, &x, &mut all, n);
            for s in 0..n {
                let mut one = vec![0.0; out_len];
                forward(
                    &g,
                    &wt,
                    &b,
                    &x[s * cin * h * h..][..cin * h * h],
                    &mut one,
                    1,
                );
                assert_eq!(one, all[s * out_len..][..out_len], "cin {cin}, sample {s}");
            }
        }
    }
}
