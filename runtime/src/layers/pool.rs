//! Average pooling (kh×kw windows, a stride, zero padding counted in the divisor or not), max
//! pooling with padding (padding never wins) and global average pooling, CHW layout. Every
//! window overlaps the input (padding is smaller than the kernel).

use super::conv_general::Window2;
use super::{Shape, Window};

/// Sizes of pooling one sample: channels, input and output height and width, and the window
/// per axis (height, width): kernel, stride, padding before.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel size per axis.
    pub kernel: [usize; 2],
    /// Stride per axis.
    pub stride: [usize; 2],
    /// Padding before the first row and column.
    pub pad: [usize; 2],
}

/// The geometry of pooling an image `input` with the square window `win` (no channels if
/// `input` is not an image or the window does not fit: nothing is computed).
pub fn geometry(win: Window, input: Shape) -> Geometry {
    let (k, s, p) = (win.kernel, win.stride, win.padding);
    let out = match input {
        Shape::Chw(_, h, w) => win.out(h).zip(win.out(w)),
        Shape::Flat(_) => None,
    };
    make(input, out, [k, k], [s, s], [p, p])
}

/// The geometry of pooling an image `input` with a window of its own per axis (see
/// [`geometry`]).
pub fn geometry2(win: Window2, input: Shape) -> Geometry {
    let out = match input {
        Shape::Chw(_, h, w) => win.out_hw(h, w),
        Shape::Flat(_) => None,
    };
    let k = win.kernel.map(usize::from);
    make(
        input,
        out,
        k,
        win.stride.map(usize::from),
        win.pad_begin.map(usize::from),
    )
}

fn make(
    input: Shape,
    out: Option<(usize, usize)>,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
) -> Geometry {
    let (c, h, w, oh, ow) = match (input, out) {
        (Shape::Chw(c, h, w), Some((oh, ow))) => (c, h, w, oh, ow),
        _ => (0, 0, 0, 0, 0),
    };
    Geometry {
        c,
        h,
        w,
        oh,
        ow,
        kernel,
        stride,
        pad,
    }
}

/// The input rows (`axis` 0) or columns (1) `lo..hi` of output row (column) `o` along an axis
/// of `n`.
fn span(g: &Geometry, axis: usize, o: usize, n: usize) -> (usize, usize) {
    let (k, s, p) = (g.kernel[axis], g.stride[axis], g.pad[axis]);
    (
        (o * s).saturating_sub(p),
        (o * s + k).saturating_sub(p).min(n),
    )
}

/// Each output of each plane of `n` samples: `f(plane, output index, rows, columns)`.
fn each(g: &Geometry, n: usize, mut f: impl FnMut(usize, usize, (usize, usize), (usize, usize))) {
    for plane in 0..n * g.c {
        for oy in 0..g.oh {
            let rows = span(g, 0, oy, g.h);
            for ox in 0..g.ow {
                f(plane, oy * g.ow + ox, rows, span(g, 1, ox, g.w));
            }
        }
    }
}

/// The divisor of a window: `kh · kw` when padding counts, else the inputs it covers.
fn count(g: &Geometry, include_pad: bool, rows: (usize, usize), cols: (usize, usize)) -> f32 {
    if include_pad {
        (g.kernel[0] * g.kernel[1]) as f32
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
