//! Max pooling over k×k windows with a stride, no padding, CHW layout. The backward pass
//! routes each output gradient to the first maximum of its window.

use super::Window;

/// Sizes: channels, input height and width, output height and width.
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
    /// Kernel and stride.
    pub win: Window,
}

impl Geometry {
    /// The geometry of pooling `layer` from per-sample shape `input` to `output`. A validated
    /// blob gives the layer image shapes on both sides; anything else gives a geometry with no
    /// channels.
    pub fn of(layer: super::Layer, input: super::Shape, output: super::Shape) -> Geometry {
        use super::{Layer, Shape};
        match (layer, input, output) {
            (Layer::MaxPool2d { window }, Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) => Geometry {
                c,
                h,
                w,
                oh,
                ow,
                win: window,
            },
            _ => Geometry {
                c: 0,
                h: 0,
                w: 0,
                oh: 0,
                ow: 0,
                win: Window {
                    kernel: 1,
                    stride: 1,
                    padding: 0,
                },
            },
        }
    }
}

fn argmax(g: &Geometry, xc: &[f32], oy: usize, ox: usize) -> usize {
    let (k, s) = (g.win.kernel, g.win.stride);
    let mut best = oy * s * g.w + ox * s;
    for ky in 0..k {
        for kx in 0..k {
            let i = (oy * s + ky) * g.w + ox * s + kx;
            if xc[i] > xc[best] {
                best = i;
            }
        }
    }
    best
}

/// Forward for `n` samples.
pub fn forward(g: &Geometry, x: &[f32], y: &mut [f32], n: usize) {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    for (xc, yc) in x.chunks_exact(ip).zip(y.chunks_exact_mut(op)).take(n * g.c) {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                yc[oy * g.ow + ox] = xc[argmax(g, xc, oy, ox)];
            }
        }
    }
}

/// Backward for `n` samples: `gx` (zeroed here) receives each `gy` at its window's maximum.
pub fn backward(g: &Geometry, x: &[f32], gy: &[f32], gx: &mut [f32], n: usize) {
    let (ip, op) = (g.h * g.w, g.oh * g.ow);
    gx[..n * g.c * ip].fill(0.0);
    for ((xc, gc), gxc) in x
        .chunks_exact(ip)
        .zip(gy.chunks_exact(op))
        .zip(gx.chunks_exact_mut(ip))
        .take(n * g.c)
    {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                gxc[argmax(g, xc, oy, ox)] += gc[oy * g.ow + ox];
            }
        }
    }
}
