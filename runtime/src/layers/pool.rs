//! Average pooling (k×k windows, a stride, zero padding counted in the divisor or not), max
//! pooling with padding (padding never wins) and global average pooling, CHW layout. Every
//! window overlaps the input (padding is smaller than the kernel).

use super::maxpool::Geometry;
use super::{Shape, Window};

/// The geometry of pooling an image `input` with `win` (no channels if `input` is not an image
/// or the window does not fit: nothing is computed).
pub fn geometry(win: Window, input: Shape) -> Geometry {
    let (c, h, w, oh, ow) = match input {
        Shape::Chw(c, h, w) => match (win.out(h), win.out(w)) {
            (Some(oh), Some(ow)) => (c, h, w, oh, ow),
            _ => (0, 0, 0, 0, 0),
        },
        Shape::Flat(_) => (0, 0, 0, 0, 0),
    };
    Geometry {
        c,
        h,
        w,
        oh,
        ow,
        win,
    }
}

/// The input rows (or columns) `lo..hi` of output row (column) `o` along an axis of `n`.
fn span(g: &Geometry, o: usize, n: usize) -> (usize, usize) {
    let (k, s, p) = (g.win.kernel, g.win.stride, g.win.padding);
    (
        (o * s).saturating_sub(p),
        (o * s + k).saturating_sub(p).min(n),
    )
}

/// Each output of each plane of `n` samples: `f(plane, output index, rows, columns)`.
fn each(g: &Geometry, n: usize, mut f: impl FnMut(usize, usize, (usize, usize), (usize, usize))) {
    for plane in 0..n * g.c {
        for oy in 0..g.oh {
            let rows = span(g, oy, g.h);
            for ox in 0..g.ow {
                f(plane, oy * g.ow + ox, rows, span(g, ox, g.w));
            }
        }
    }
}

/// The divisor of a window: `k²` when padding counts, else the inputs it covers.
fn count(g: &Geometry, include_pad: bool, rows: (usize, usize), cols: (usize, usize)) -> f32 {
    if include_pad {
        (g.win.kernel * g.win.kernel) as f32
    } else {
        ((rows.1 - rows.0) * (cols.1 - cols.0)) as f32
    }
}

/// Average pooling forward for `n` samples.
pub fn avg_forward(g: &Geometry, include_pad: bool, x: &[f32], y: &mut [f32], n: usize) {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    each(g, n, |plane, o, rows, cols| {
        let xc = &x[plane * ip..(plane + 1) * ip];
        let mut sum = 0.0f32;
        for iy in rows.0..rows.1 {
            for v in &xc[iy * g.w + cols.0..iy * g.w + cols.1] {
                sum += v;
            }
        }
        y[plane * op + o] = sum / count(g, include_pad, rows, cols);
    });
}

/// Average pooling backward for `n` samples: `gx` (zeroed here) receives each output's
/// gradient shared over its window.
pub fn avg_backward(g: &Geometry, include_pad: bool, gy: &[f32], gx: &mut [f32], n: usize) {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    gx[..n * g.c * ip].fill(0.0);
    each(g, n, |plane, o, rows, cols| {
        let d = gy[plane * op + o] / count(g, include_pad, rows, cols);
        let gxc = &mut gx[plane * ip..(plane + 1) * ip];
        for iy in rows.0..rows.1 {
            for v in &mut gxc[iy * g.w + cols.0..iy * g.w + cols.1] {
                *v += d;
            }
        }
    });
}

/// Index in its plane of the first maximum of a window.
fn argmax(g: &Geometry, xc: &[f32], rows: (usize, usize), cols: (usize, usize)) -> usize {
    let mut best = rows.0 * g.w + cols.0;
    for iy in rows.0..rows.1 {
        for ix in cols.0..cols.1 {
            if xc[iy * g.w + ix] > xc[best] {
                best = iy * g.w + ix;
            }
        }
    }
    best
}

/// Max pooling with padding, forward for `n` samples.
pub fn max_forward(g: &Geometry, x: &[f32], y: &mut [f32], n: usize) {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    each(g, n, |plane, o, rows, cols| {
        let xc = &x[plane * ip..(plane + 1) * ip];
        y[plane * op + o] = xc[argmax(g, xc, rows, cols)];
    });
}

/// Max pooling with padding, backward for `n` samples: `gx` (zeroed here) receives each
/// output's gradient at its window's first maximum.
pub fn max_backward(g: &Geometry, x: &[f32], gy: &[f32], gx: &mut [f32], n: usize) {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    gx[..n * g.c * ip].fill(0.0);
    each(g, n, |plane, o, rows, cols| {
        let xc = &x[plane * ip..(plane + 1) * ip];
        gx[plane * ip + argmax(g, xc, rows, cols)] += gy[plane * op + o];
    });
}

/// Global average pooling forward: `n · c` planes of `s` values to one value each.
pub fn global_forward(planes: usize, s: usize, x: &[f32], y: &mut [f32]) {
    for (xc, y) in x.chunks_exact(s).zip(y.iter_mut()).take(planes) {
        *y = xc.iter().sum::<f32>() / s as f32;
    }
}

/// Global average pooling backward: each plane's gradient shared over its `s` values.
pub fn global_backward(planes: usize, s: usize, gy: &[f32], gx: &mut [f32]) {
    for (gxc, g) in gx.chunks_exact_mut(s).zip(gy).take(planes) {
        gxc.fill(g / s as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_with_and_without_padding_in_the_divisor() {
        // One 3×3 plane, 2×2 windows, stride 2, padding 1: output 2×2.
        let x: [f32; 9] = core::array::from_fn(|i| (i + 1) as f32);
        let win = Window {
            kernel: 2,
            stride: 2,
            padding: 1,
        };
        let g = geometry(win, Shape::Chw(1, 3, 3));
        assert_eq!((g.oh, g.ow), (2, 2));
        let mut y = [0.0; 4];
        avg_forward(&g, false, &x, &mut y, 1);
        assert_eq!(y, [1.0, 2.5, 5.5, 7.0]);
        avg_forward(&g, true, &x, &mut y, 1);
        assert_eq!(y, [0.25, 1.25, 2.75, 7.0]);
        max_forward(&g, &x, &mut y, 1);
        assert_eq!(y, [1.0, 3.0, 7.0, 9.0]);
        let mut gx = [0.0; 9];
        max_backward(&g, &x, &[1.0, 2.0, 3.0, 4.0], &mut gx, 1);
        assert_eq!(gx, [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 4.0]);
    }
}
