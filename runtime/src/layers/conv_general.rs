//! The general convolution: a kernel, stride, dilation and padding of its own along each axis
//! (padding may differ before and after), and groups (depthwise when every group is one
//! channel). 1-D convolutions run as images of height 1. Direct loops in CHW layout; the
//! weight `[out, in / groups, kh, kw]` and the bias `[out]` are read through `param(i)` (the
//! bias after the weight), so a frozen layer's tensors are decoded from the blob.
//!
//! The square, ungrouped, undilated convolutions of [`super::Layer::Conv2d`] keep their own
//! faster kernels; the importer only writes this kind for the others.

use super::Shape;

/// The window of a convolution or pooling layer, per axis (height, then width). Kernels up to
/// 65,535 taps a side; strides, dilations and paddings up to 255 (12 bytes, so that a layer of
/// this kind is no larger than a square convolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2 {
    /// Kernel height and width.
    pub kernel: [u16; 2],
    /// Stride along each axis.
    pub stride: [u8; 2],
    /// Distance between kernel taps along each axis (1: none).
    pub dilation: [u8; 2],
    /// Zero padding before the first row and column (top, left).
    pub pad_begin: [u8; 2],
    /// Zero padding after the last row and column (bottom, right).
    pub pad_end: [u8; 2],
}

impl Window2 {
    /// Output size along `axis` (0 height, 1 width) for an input of `n`; `None` when the
    /// window does not fit or a size is zero.
    pub const fn out(self, axis: usize, n: usize) -> Option<usize> {
        let (k, s, d) = (
            self.kernel[axis] as usize,
            self.stride[axis] as usize,
            self.dilation[axis] as usize,
        );
        let padded = n + self.pad_begin[axis] as usize + self.pad_end[axis] as usize;
        if k == 0 || s == 0 || d == 0 {
            return None;
        }
        let span = d * (k - 1) + 1;
        if padded < span {
            None
        } else {
            Some((padded - span) / s + 1)
        }
    }

    /// Output image for an input image (same channels), if the window fits.
    pub const fn out_hw(self, h: usize, w: usize) -> Option<(usize, usize)> {
        match (self.out(0, h), self.out(1, w)) {
            (Some(oh), Some(ow)) => Some((oh, ow)),
            _ => None,
        }
    }

    /// Kernel taps (`kh · kw`).
    pub const fn taps(self) -> usize {
        self.kernel[0] as usize * self.kernel[1] as usize
    }

    /// Pack as three wire arguments: the kernel (height in the low 16 bits, width in the
    /// high), then stride and dilation, then the paddings before and after (a byte each:
    /// height, width, height, width from the low byte up).
    pub fn to_args(self) -> [u32; 3] {
        let bytes = |a: [u8; 2], b: [u8; 2]| u32::from_le_bytes([a[0], a[1], b[0], b[1]]);
        [
            self.kernel[0] as u32 | (self.kernel[1] as u32) << 16,
            bytes(self.stride, self.dilation),
            bytes(self.pad_begin, self.pad_end),
        ]
    }

    /// Unpack [`Window2::to_args`]; `None` if a kernel side, stride or dilation is zero.
    pub fn from_args(a: [u32; 3]) -> Option<Window2> {
        let [s0, s1, d0, d1] = a[1].to_le_bytes();
        let [b0, b1, e0, e1] = a[2].to_le_bytes();
        let w = Window2 {
            kernel: [a[0] as u16, (a[0] >> 16) as u16],
            stride: [s0, s1],
            dilation: [d0, d1],
            pad_begin: [b0, b1],
            pad_end: [e0, e1],
        };
        let positive = w.kernel[0] > 0
            && w.kernel[1] > 0
            && w.stride.iter().chain(&w.dilation).all(|v| *v > 0);
        positive.then_some(w)
    }
}

/// Sizes of a convolution over one sample.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub oc: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Groups (input and output channels are both split into this many).
    pub groups: usize,
    /// The window.
    pub win: Window2,
}

impl Geometry {
    /// The geometry of a convolution from image `input` to `out_channels`; `None` unless
    /// `input` is an image the window fits.
    pub fn of(input: Shape, out_channels: usize, groups: usize, win: Window2) -> Option<Geometry> {
        let Shape::Chw(c, h, w) = input else {
            return None;
        };
        let (oh, ow) = win.out_hw(h, w)?;
        Some(Geometry {
            c,
            h,
            w,
            oc: out_channels,
            oh,
            ow,
            groups,
            win,
        })
    }

    /// Weight elements (`out · in / groups · kh · kw`).
    pub const fn weight_len(&self) -> usize {
        self.oc * (self.c / self.groups) * self.win.taps()
    }

    /// The input positions along `axis` that kernel tap `t` reads for output `o`, or `None` in
    /// the padding.
    #[inline]
    fn at(&self, axis: usize, o: usize, t: usize, n: usize) -> Option<usize> {
        let w = self.win;
        let p = o * w.stride[axis] as usize + t * w.dilation[axis] as usize;
        p.checked_sub(w.pad_begin[axis] as usize).filter(|&i| i < n)
    }

    /// Every multiply of one sample: `f(output index, weight index, input index)`, the inputs
    /// in the padding skipped. Indices are within the sample (input `[c, h, w]`, output
    /// `[oc, oh, ow]`).
    #[inline]
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (cg, og) = (self.c / self.groups, self.oc / self.groups);
        let [kh, kw] = [self.win.kernel[0] as usize, self.win.kernel[1] as usize];
        for o in 0..self.oc {
            let first = (o / og) * cg;
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let out = (o * self.oh + oy) * self.ow + ox;
                    for ci in 0..cg {
                        let plane = (first + ci) * self.h;
                        let wbase = (o * cg + ci) * kh;
                        for ky in 0..kh {
                            let Some(iy) = self.at(0, oy, ky, self.h) else {
                                continue;
                            };
                            for kx in 0..kw {
                                if let Some(ix) = self.at(1, ox, kx, self.w) {
                                    f(out, (wbase + ky) * kw + kx, (plane + iy) * self.w + ix);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Weights [`forward`] decodes at a time: one output channel's, when they are no more.
const WEIGHT_RUN: usize = 256;

impl Geometry {
    /// The kernel taps `lo..hi` along `axis` whose input lies inside an input of `n` for output
    /// `o` (what [`Geometry::at`] accepts, as a range).
    #[inline]
    fn tap_range(&self, axis: usize, o: usize, n: usize) -> (usize, usize) {
        let w = self.win;
        let (k, d) = (w.kernel[axis] as usize, w.dilation[axis] as usize);
        let (start, pad) = (o * w.stride[axis] as usize, w.pad_begin[axis] as usize);
        // start + t·d >= pad  and  start + t·d < n + pad
        let lo = pad.saturating_sub(start).div_ceil(d);
        let hi = (n + pad).saturating_sub(start).div_ceil(d).min(k);
        (lo, hi.max(lo))
    }
}

/// Forward pass for `n` samples: `y = conv(x, W) + b`. Per output channel, its weights are
/// decoded once per sample into a buffer on the stack, and each output is summed in a register
/// in [`forward_plain`]'s order (bias, then input channel, kernel row and column ascending, the
/// taps in the padding skipped): the same bits. Out of line, so that the buffer is on the stack
/// only while it runs.
#[inline(never)]
pub fn forward(g: &Geometry, param: impl Fn(usize) -> f32, x: &[f32], y: &mut [f32], n: usize) {
    let (cg, og) = (g.c / g.groups, g.oc / g.groups);
    let [kh, kw] = [g.win.kernel[0] as usize, g.win.kernel[1] as usize];
    let per_out = cg * kh * kw;
    if per_out > WEIGHT_RUN {
        return forward_plain(g, param, x, y, n);
    }
    let (il, ol, wl) = (g.c * g.h * g.w, g.oc * g.oh * g.ow, g.weight_len());
    let ([sy, sx], [dy, dx]) = (g.win.stride, g.win.dilation);
    let [py, px] = g.win.pad_begin;
    let (sy, sx, dy, dx, py, px) = (
        sy as usize,
        sx as usize,
        dy as usize,
        dx as usize,
        py as usize,
        px as usize,
    );
    let mut wbuf = [0.0f32; WEIGHT_RUN];
    for s in 0..n {
        let (xs, ys) = (&x[s * il..(s + 1) * il], &mut y[s * ol..(s + 1) * ol]);
        for (o, yc) in ys.chunks_exact_mut(g.oh * g.ow).enumerate() {
            let wb = &mut wbuf[..per_out];
            for (j, v) in wb.iter_mut().enumerate() {
                *v = param(o * per_out + j);
            }
            let wb = &*wb;
            let b = param(wl + o);
            let first = (o / og) * cg;
            let planes = &xs[first * g.h * g.w..(first + cg) * g.h * g.w];
            for (oy, yrow) in yc.chunks_exact_mut(g.ow).enumerate() {
                let (ky0, ky1) = g.tap_range(0, oy, g.h);
                for (ox, yv) in yrow.iter_mut().enumerate() {
                    let (kx0, kx1) = g.tap_range(1, ox, g.w);
                    let mut acc = b;
                    for (xc, wc) in planes.chunks_exact(g.h * g.w).zip(wb.chunks_exact(kh * kw)) {
                        for ky in ky0..ky1 {
                            let row = (oy * sy + ky * dy - py) * g.w;
                            let wr = &wc[ky * kw..(ky + 1) * kw];
                            for kx in kx0..kx1 {
                                acc += wr[kx] * xc[row + ox * sx + kx * dx - px];
                            }
                        }
                    }
                    *yv = acc;
                }
            }
        }
    }
}

/// [`forward`] through [`Geometry::each`], every multiply-add in memory (weights of more than
/// [`WEIGHT_RUN`] per output channel, and the reference of the tests).
fn forward_plain(g: &Geometry, param: impl Fn(usize) -> f32, x: &[f32], y: &mut [f32], n: usize) {
    let (il, ol, wl) = (g.c * g.h * g.w, g.oc * g.oh * g.ow, g.weight_len());
    let plane = g.oh * g.ow;
    for s in 0..n {
        let (xs, ys) = (&x[s * il..(s + 1) * il], &mut y[s * ol..(s + 1) * ol]);
        for (i, v) in ys.iter_mut().enumerate() {
            *v = param(wl + i / plane);
        }
        g.each(|o, k, i| ys[o] += param(k) * xs[i]);
    }
}

/// Backward pass for `n` samples: the weight and bias gradients into `pg` (when given,
/// `[weight, bias]`, overwritten), the input gradient into `gx` (when given, overwritten).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &Geometry,
    param: impl Fn(usize) -> f32,
    x: &[f32],
    gy: &[f32],
    mut pg: Option<&mut [f32]>,
    mut gx: Option<&mut [f32]>,
    n: usize,
) {
    let (il, ol, wl) = (g.c * g.h * g.w, g.oc * g.oh * g.ow, g.weight_len());
    let plane = g.oh * g.ow;
    if let Some(pg) = pg.as_deref_mut() {
        pg[..wl + g.oc].fill(0.0);
    }
    if let Some(gx) = gx.as_deref_mut() {
        gx[..n * il].fill(0.0);
    }
    for s in 0..n {
        let (xs, gs) = (&x[s * il..(s + 1) * il], &gy[s * ol..(s + 1) * ol]);
        if let Some(pg) = pg.as_deref_mut() {
            let (gw, gb) = pg.split_at_mut(wl);
            for (o, gb) in gb[..g.oc].iter_mut().enumerate() {
                *gb += gs[o * plane..(o + 1) * plane].iter().sum::<f32>();
            }
            g.each(|o, k, i| gw[k] += gs[o] * xs[i]);
        }
        if let Some(gx) = gx.as_deref_mut() {
            let gxs = &mut gx[s * il..(s + 1) * il];
            g.each(|o, k, i| gxs[i] += param(k) * gs[o]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_arguments_round_trip_and_sizes() {
        let w = Window2 {
            kernel: [10, 400],
            stride: [2, 2],
            dilation: [1, 3],
            pad_begin: [4, 200],
            pad_end: [5, 255],
        };
        assert_eq!(Window2::from_args(w.to_args()), Some(w));
        // 49 + 9 - 10 = 48, / 2 + 1 = 25; 1000 + 455 - (3·399 + 1) = 257, / 2 + 1 = 129.
        assert_eq!(w.out_hw(49, 1000), Some((25, 129)));
        assert_eq!(w.out_hw(49, 700), None);
        let mut zero = w.to_args();
        zero[1] &= 0x00ff_ffff; // the width's dilation
        assert_eq!(Window2::from_args(zero), None);
    }

    /// [`forward`] gives [`forward_plain`]'s bits: groups, depthwise, 1-D, dilations, strides
    /// and uneven paddings (also wider than the kernel), non-square kernels.
    #[test]
    fn forward_matches_the_plain_loops_bit_for_bit() {
        extern crate std;
        use std::vec::Vec;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let win = |k: [u16; 2], st: [u8; 2], d: [u8; 2], pb: [u8; 2], pe: [u8; 2]| Window2 {
            kernel: k,
            stride: st,
            dilation: d,
            pad_begin: pb,
            pad_end: pe,
        };
        for (c, h, w, oc, groups, wi) in [
            (
                1,
                49,
                10,
                8,
                1,
                win([10, 4], [2, 2], [1, 1], [4, 1], [5, 1]),
            ),
            (8, 25, 5, 8, 8, win([3, 3], [1, 1], [1, 1], [1, 1], [1, 1])),
            (6, 1, 40, 4, 2, win([1, 5], [1, 2], [1, 2], [0, 3], [0, 0])),
            (4, 9, 7, 4, 4, win([2, 3], [2, 1], [2, 1], [5, 0], [0, 6])),
            (3, 6, 6, 2, 1, win([3, 3], [1, 1], [1, 1], [0, 0], [0, 0])),
            (30, 3, 3, 2, 1, win([3, 3], [1, 1], [1, 1], [1, 1], [1, 1])),
        ] {
            let g = Geometry::of(Shape::Chw(c, h, w), oc, groups, wi).unwrap();
            let n = 2;
            let x: Vec<f32> = (0..n * c * h * w).map(|_| next()).collect();
            let p: Vec<f32> = (0..g.weight_len() + oc).map(|_| next()).collect();
            let ol = oc * g.oh * g.ow;
            let (mut y0, mut y1) = (std::vec![0.0; n * ol], std::vec![f32::NAN; n * ol]);
            forward_plain(&g, |k| p[k], &x, &mut y0, n);
            forward(&g, |k| p[k], &x, &mut y1, n);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y0), bits(&y1), "{g:?}");
        }
    }

    #[test]
    fn depthwise_one_d_with_dilation_and_uneven_padding() {
        // Two channels of length 5, depthwise (groups 2), kernel 2 dilated by 2, padding 1
        // before and 0 after: output length (5 + 1 - 3) + 1 = 4.
        let win = Window2 {
            kernel: [1, 2],
            stride: [1, 1],
            dilation: [1, 2],
            pad_begin: [0, 1],
            pad_end: [0, 0],
        };
        let g = Geometry::of(Shape::Chw(2, 1, 5), 2, 2, win).unwrap();
        assert_eq!((g.oh, g.ow, g.weight_len()), (1, 4, 4));
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0];
        let p = [1.0, 2.0, 3.0, -1.0, 0.5, 0.25]; // W [2, 1, 1, 2], then b
        let mut y = [0.0; 8];
        forward(&g, |k| p[k], &x, &mut y, 1);
        // Channel 0, output j reads inputs j - 1 and j + 1 (weights 1, 2), bias 0.5.
        // Channel 1 reads the same taps with weights 3, -1, bias 0.25.
        assert_eq!(y, [4.5, 7.5, 10.5, 13.5, -19.75, 0.25, 20.25, 40.25]);
    }
}
