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
use ndarray::{ArrayView2, ArrayViewMut2};
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

/// Fills `cols` (`rows × n·P`, row-major, P = oh·ow) with the input patches of `n` samples:
/// column `s·P + oy·ow + ox` holds the window under output position (oy, ox) of sample `s`,
/// zero where it overlaps the padding.
fn im2col(g: &Geometry, x: &[f32], n: usize, cols: &mut [f32]) {
    let k = g.win.kernel;
    let (st, p) = (g.win.stride, g.win.padding);
    let plane = g.oh * g.ow;
    let in_len = g.cin * g.h * g.w;
    let width = n * plane;
    for ci in 0..g.cin {
        for ky in 0..k {
            let (oy0, oy1) = g.valid(g.h, g.oh, ky);
            for kx in 0..k {
                let (ox0, ox1) = g.valid(g.w, g.ow, kx);
                let r = (ci * k + ky) * k + kx;
                let row = &mut cols[r * width..(r + 1) * width];
                for (s, dst) in row.chunks_exact_mut(plane).enumerate() {
                    if ox0 == ox1 {
                        dst.fill(0.0);
                        continue;
                    }
                    let xc = &x[s * in_len + ci * g.h * g.w..][..g.h * g.w];
                    dst[..oy0 * g.ow].fill(0.0);
                    dst[oy1 * g.ow..].fill(0.0);
                    for oy in oy0..oy1 {
                        let iy = oy * st + ky - p;
                        let drow = &mut dst[oy * g.ow..(oy + 1) * g.ow];
                        drow[..ox0].fill(0.0);
                        drow[ox1..].fill(0.0);
                        let xs = xc[iy * g.w + ox0 * st + kx - p..(iy + 1) * g.w]
                            .iter()
                            .step_by(st);
                        for (d, &v) in drow[ox0..ox1].iter_mut().zip(xs) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// Adds the patch-matrix gradient `cols` back onto the input gradient `gx` (the transpose of
/// [`im2col`]).
fn col2im(g: &Geometry, cols: &[f32], n: usize, gx: &mut [f32]) {
    let k = g.win.kernel;
    let (st, p) = (g.win.stride, g.win.padding);
    let plane = g.oh * g.ow;
    let in_len = g.cin * g.h * g.w;
    let width = n * plane;
    gx[..n * in_len].fill(0.0);
    for ci in 0..g.cin {
        for ky in 0..k {
            let (oy0, oy1) = g.valid(g.h, g.oh, ky);
            for kx in 0..k {
                let (ox0, ox1) = g.valid(g.w, g.ow, kx);
                let r = (ci * k + ky) * k + kx;
                let row = &cols[r * width..(r + 1) * width];
                for (s, src) in row.chunks_exact(plane).enumerate() {
                    if ox0 == ox1 {
                        continue;
                    }
                    let gc = &mut gx[s * in_len + ci * g.h * g.w..][..g.h * g.w];
                    for oy in oy0..oy1 {
                        let iy = oy * st + ky - p;
                        let grow = gc[iy * g.w + ox0 * st + kx - p..(iy + 1) * g.w]
                            .iter_mut()
                            .step_by(st);
                        for (d, &v) in grow.zip(&src[oy * g.ow + ox0..oy * g.ow + ox1]) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// Views `data` as a row-major `r × c` matrix. The callers pass slices they sized exactly,
/// so the shape always matches.
fn view(data: &[f32], r: usize, c: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((r, c), &data[..r * c]).expect("slice sized for its matrix shape")
}

fn view_mut(data: &mut [f32], r: usize, c: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((r, c), &mut data[..r * c]).expect("slice sized for its matrix shape")
}

/// Forward for `n` samples, same contract as [`super::conv2d::forward`].
pub fn forward(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    let kk = rows(g);
    let plane = g.oh * g.ow;
    let width = n * plane;
    with_scratch(kk * width + g.cout * width, |scratch| {
        let (cols, out) = scratch.split_at_mut(kk * width);
        im2col(g, x, n, cols);
        general_mat_mul(
            1.0,
            &view(wt, g.cout, kk),
            &view(cols, kk, width),
            0.0,
            &mut view_mut(out, g.cout, width),
        );
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

/// Backward for `n` samples, same contract as [`super::conv2d::backward`].
pub fn backward(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    let kk = rows(g);
    let plane = g.oh * g.ow;
    let width = n * plane;
    let out_len = g.cout * plane;
    with_scratch(kk * width + g.cout * width, |scratch| {
        let (cols, gyc) = scratch.split_at_mut(kk * width);
        // The output gradient as a `cout × n·P` matrix.
        for (s, gs) in gy.chunks_exact(out_len).take(n).enumerate() {
            for (co, gc) in gs.chunks_exact(plane).enumerate() {
                gyc[co * width + s * plane..][..plane].copy_from_slice(gc);
            }
        }
        let gyv = view(gyc, g.cout, width);
        if let Some((dw, db)) = params_grad {
            im2col(g, x, n, cols);
            general_mat_mul(
                1.0,
                &gyv,
                &view(cols, kk, width).t(),
                0.0,
                &mut view_mut(dw, g.cout, kk),
            );
            for (co, d) in db.iter_mut().enumerate().take(g.cout) {
                *d = gyc[co * width..(co + 1) * width].iter().sum();
            }
        }
        if let Some(gx) = gx {
            general_mat_mul(
                1.0,
                &view(wt, g.cout, kk).t(),
                &gyv,
                0.0,
                &mut view_mut(cols, kk, width),
            );
            col2im(g, cols, n, gx);
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

    #[test]
    fn matches_direct_kernels() {
        for &(cin, h, cout, kernel, stride, padding, n) in &[
            (1, 28, 64, 3, 2, 1, 3),
            (3, 7, 5, 3, 2, 1, 2),
            (2, 9, 4, 3, 1, 1, 2),
            (4, 6, 3, 2, 2, 0, 1),
            (2, 5, 3, 5, 1, 2, 2),
            (1, 2, 2, 5, 1, 3, 2),
        ] {
            let win = Window {
                kernel,
                stride,
                padding,
            };
            let oh = (h + 2 * padding - kernel) / stride + 1;
            let g = Geometry {
                cin,
                h,
                w: h,
                cout,
                oh,
                ow: oh,
                win,
            };
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
}
