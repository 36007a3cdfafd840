//! 2-D convolution with square kernel, stride and symmetric zero padding, CHW layout.
//! W is `[out, in, k, k]`, one bias per output channel.

use super::Window;

/// Sizes of one convolution application.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Input channels, height, width.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel, stride, padding.
    pub win: Window,
}

impl Geometry {
    fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.cout * self.oh * self.ow
    }
    /// Range of output positions `o` along an axis of input size `n` for kernel offset `k`
    /// such that the input index `o*stride + k - padding` lies in `0..n`.
    pub(super) fn valid(&self, n: usize, on: usize, k: usize) -> (usize, usize) {
        let (s, p) = (self.win.stride, self.win.padding);
        // o*s + k >= p  and  o*s + k - p < n
        let lo = if k >= p { 0 } else { (p - k).div_ceil(s) };
        let hi = if n + p > k {
            ((n + p - k - 1) / s + 1).min(on)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
}

/// Forward for `n` samples: `x` is `n × cin×h×w`, `y` is `n × cout×oh×ow`.
/// With the `gemm` feature (host), large convolutions go through im2col and a tuned matrix
/// product instead (`conv_gemm`).
pub fn forward(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    #[cfg(feature = "gemm")]
    if super::conv_gemm::worthwhile(g) {
        return super::conv_gemm::forward(g, wt, bias, x, y, n);
    }
    forward_from(g, |i| wt[i], |co| bias[co], x, y, n);
}

/// Backward for `n` samples given `gy = dL/dy`: writes weight and bias gradients when given,
/// and `gx = dL/dx` when given (`gemm` feature: see [`forward`]).
pub fn backward(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    #[cfg(feature = "gemm")]
    if super::conv_gemm::worthwhile(g) {
        return super::conv_gemm::backward(g, wt, x, gy, params_grad, gx, n);
    }
    let k = g.win.kernel;
    let (s, p) = (g.win.stride, g.win.padding);
    let plane = g.oh * g.ow;
    if let Some((dw, db)) = params_grad {
        dw.fill(0.0);
        db.fill(0.0);
        for (xs, gs) in x
            .chunks_exact(g.in_len())
            .zip(gy.chunks_exact(g.out_len()))
            .take(n)
        {
            for (co, gc) in gs.chunks_exact(plane).enumerate() {
                db[co] += gc.iter().sum::<f32>();
                for ci in 0..g.cin {
                    let xc = &xs[ci * g.h * g.w..(ci + 1) * g.h * g.w];
                    for ky in 0..k {
                        let (oy0, oy1) = g.valid(g.h, g.oh, ky);
                        for kx in 0..k {
                            let (ox0, ox1) = g.valid(g.w, g.ow, kx);
                            let mut acc = 0.0f32;
                            for oy in oy0..oy1 {
                                let iy = oy * s + ky - p;
                                let grow = &gc[oy * g.ow..(oy + 1) * g.ow];
                                let xrow = &xc[iy * g.w..(iy + 1) * g.w];
                                for ox in ox0..ox1 {
                                    acc += grow[ox] * xrow[ox * s + kx - p];
                                }
                            }
                            dw[((co * g.cin + ci) * k + ky) * k + kx] += acc;
                        }
                    }
                }
            }
        }
    }
    if let Some(gx) = gx {
        input_grad_from(g, |i| wt[i], gy, gx, n);
    }
}

/// The direct [`forward`] with weight `i` and bias `co` read through `wt(i)` and `bias(co)`:
/// a frozen layer's tensors decoded in place from the blob (flash), each weight once per
/// sample and output channel. [`forward`]'s direct path (every device build) is this kernel.
pub fn forward_from(
    g: &Geometry,
    wt: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    let k = g.win.kernel;
    let (s, p) = (g.win.stride, g.win.padding);
    for (xs, ys) in x
        .chunks_exact(g.in_len())
        .zip(y.chunks_exact_mut(g.out_len()))
        .take(n)
    {
        for (co, yc) in ys.chunks_exact_mut(g.oh * g.ow).enumerate() {
            yc.fill(bias(co));
            for ci in 0..g.cin {
                let xc = &xs[ci * g.h * g.w..(ci + 1) * g.h * g.w];
                for ky in 0..k {
                    let (oy0, oy1) = g.valid(g.h, g.oh, ky);
                    for kx in 0..k {
                        let wv = wt(((co * g.cin + ci) * k + ky) * k + kx);
                        let (ox0, ox1) = g.valid(g.w, g.ow, kx);
                        for oy in oy0..oy1 {
                            let iy = oy * s + ky - p;
                            let yrow = &mut yc[oy * g.ow..(oy + 1) * g.ow];
                            let xrow = &xc[iy * g.w..(iy + 1) * g.w];
                            for ox in ox0..ox1 {
                                yrow[ox] += wv * xrow[ox * s + kx - p];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The direct input gradient of [`backward`] (`gx = dL/dx`, written) with weight `i` read
/// through `wt(i)`: a frozen layer in flash behind an adapting one, and [`backward`]'s own
/// direct path.
pub fn input_grad_from(
    g: &Geometry,
    wt: impl Fn(usize) -> f32,
    gy: &[f32],
    gx: &mut [f32],
    n: usize,
) {
    let k = g.win.kernel;
    let (s, p) = (g.win.stride, g.win.padding);
    let plane = g.oh * g.ow;
    for (gxs, gs) in gx
        .chunks_exact_mut(g.in_len())
        .zip(gy.chunks_exact(g.out_len()))
        .take(n)
    {
        gxs.fill(0.0);
        for (co, gc) in gs.chunks_exact(plane).enumerate() {
            for ci in 0..g.cin {
                let gxc = &mut gxs[ci * g.h * g.w..(ci + 1) * g.h * g.w];
                for ky in 0..k {
                    let (oy0, oy1) = g.valid(g.h, g.oh, ky);
                    for kx in 0..k {
                        let wv = wt(((co * g.cin + ci) * k + ky) * k + kx);
                        let (ox0, ox1) = g.valid(g.w, g.ow, kx);
                        for oy in oy0..oy1 {
                            let iy = oy * s + ky - p;
                            let grow = &gc[oy * g.ow..(oy + 1) * g.ow];
                            let gxrow = &mut gxc[iy * g.w..(iy + 1) * g.w];
                            for ox in ox0..ox1 {
                                gxrow[ox * s + kx - p] += wv * grow[ox];
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Geometry {
    /// The geometry of convolution `layer` from per-sample shape `input` to `output`. A validated
    /// blob gives the layer image shapes on both sides; anything else gives a geometry with no
    /// channels.
    pub fn of(layer: super::Layer, input: super::Shape, output: super::Shape) -> Geometry {
        use super::{Layer, Shape};
        match (layer, input, output) {
            (Layer::Conv2d { window, .. }, Shape::Chw(cin, h, w), Shape::Chw(cout, oh, ow)) => {
                Geometry {
                    cin,
                    h,
                    w,
                    cout,
                    oh,
                    ow,
                    win: window,
                }
            }
            _ => Geometry {
                cin: 0,
                h: 0,
                w: 0,
                cout: 0,
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

    /// The weights and the bias of a layer of this geometry, from its parameters as stored
    /// (weights first).
    pub fn split<'p>(&self, params: &'p [f32]) -> (&'p [f32], &'p [f32]) {
        params.split_at(params.len() - self.cout)
    }
}
