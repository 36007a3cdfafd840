//! 2-D convolution with square kernel, stride and symmetric zero padding, CHW layout.
//! W is `[out, in, k, k]`, one bias per output channel.

#[cfg(all(target_arch = "arm", feature = "conv-kernels"))]
use super::conv2d_blocked as blocked;
use super::{Layer, Shape, Window, MAX_DIM};
#[cfg(all(target_arch = "arm", feature = "conv-kernels"))]
use crate::dtype::DType;
use crate::dtype::Stored;
use crate::error::{Error, Result};

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
    /// Whether these are the sizes of a convolution layer a blob could hold, as [`forward`] and
    /// [`backward`] require: channels, kernel and stride from 1 to [`MAX_DIM`], padding up to
    /// it, a non-empty input within [`super::MAX_SHAPE_LEN`] values, a kernel that fits the
    /// padded input, `oh × ow` the output size the window gives, and output and weights within
    /// the runtime's limits (the layer's own checks at load). No size computed from a geometry
    /// that passes overflows.
    pub fn check(&self) -> Result<()> {
        let bad = |what| Err(Error::BadGeometry { what });
        let win = self.win;
        if [self.cin, self.cout, win.kernel, win.stride]
            .into_iter()
            .any(|d| d == 0 || d > MAX_DIM)
            || win.padding > MAX_DIM
        {
            return bad("a channel count, the kernel or the stride is 0 or above MAX_DIM, or the padding above MAX_DIM");
        }
        let input = Shape::Chw(self.cin, self.h, self.w);
        if self.h == 0 || self.w == 0 || input.checked_len().is_none() {
            return bad("the input is empty or exceeds MAX_SHAPE_LEN values");
        }
        let layer = Layer::Conv2d {
            in_channels: self.cin,
            out_channels: self.cout,
            window: win,
        };
        if !layer.accepts(input) {
            return bad("the kernel is larger than the padded input");
        }
        if layer.checked_tensor_len(0).is_none() {
            return bad("the weights exceed MAX_TENSOR_LEN values");
        }
        match layer.output_shape(input) {
            Some(out) if out == Shape::Chw(self.cout, self.oh, self.ow) => Ok(()),
            Some(_) => bad("the output size is not the one the window gives"),
            None => bad("the output exceeds MAX_SHAPE_LEN values"),
        }
    }
    fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    /// A 1×1, stride-1, unpadded (pointwise) convolution: its output plane is its input's.
    fn is_pointwise(&self) -> bool {
        let w = self.win;
        w.kernel == 1 && w.stride == 1 && w.padding == 0
    }
    fn out_len(&self) -> usize {
        self.cout * self.oh * self.ow
    }
    fn weights_len(&self) -> usize {
        self.cout * self.cin * self.win.kernel * self.win.kernel
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

/// The contract of [`forward`] and [`backward`]: `g` passes [`Geometry::check`], then each
/// buffer `buffers` names (what it is, its length, the values it needs) holds what `n` samples
/// need. Panics naming the function and what is wrong otherwise.
fn expect_valid<const B: usize>(
    g: &Geometry,
    function: &str,
    n: usize,
    buffers: impl FnOnce() -> [(&'static str, usize, Size); B],
) {
    if let Err(e) = g.check() {
        panic!("conv2d::{function}: {e}");
    }
    for (name, len, size) in buffers() {
        let need = match size {
            Size::PerSample(v) => n.checked_mul(v),
            Size::Layer(v) => Some(v),
        };
        if need.is_none_or(|need| len < need) {
            panic!(
                "conv2d::{function}: {name} holds {len} values, fewer than {n} samples of this \
                 geometry need"
            );
        }
    }
}

/// How many values a buffer of [`expect_valid`] needs.
#[derive(Clone, Copy)]
enum Size {
    /// This many per sample.
    PerSample(usize),
    /// This many whatever the batch.
    Layer(usize),
}

/// Forward for `n` samples: `x` is `n × cin×h×w`, `y` is `n × cout×oh×ow`.
/// With the `gemm` feature (host), large convolutions go through im2col and a tuned matrix
/// product instead (`conv_gemm`).
///
/// # Panics
/// When `g` fails [`Geometry::check`] or a slice is shorter than `n` samples need (the message
/// says which); nothing is read or written then.
pub fn forward(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    expect_valid(g, "forward", n, || {
        [
            ("the weights", wt.len(), Size::Layer(g.weights_len())),
            ("the bias", bias.len(), Size::Layer(g.cout)),
            ("the input", x.len(), Size::PerSample(g.in_len())),
            ("the output", y.len(), Size::PerSample(g.out_len())),
        ]
    });
    if n == 0 {
        return;
    }
    #[cfg(feature = "gemm")]
    if host_kernels(g) {
        return super::conv_gemm::forward(g, wt, bias, x, y, n);
    }
    forward_from(g, |i| wt[i], |co| bias[co], x, y, n);
}

/// Backward for `n` samples given `gy = dL/dy`: writes weight and bias gradients when given,
/// and `gx = dL/dx` when given (`gemm` feature: see [`forward`]). With `n = 0` the weight and
/// bias gradients are zeros.
///
/// # Panics
/// When `g` fails [`Geometry::check`] or a slice is shorter than `n` samples need (the message
/// says which); nothing is read or written then.
pub fn backward(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    mut params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    // A buffer the call does not use is not checked: `usize::MAX` passes.
    let (dw, db, x_len) = params_grad
        .as_ref()
        .map_or((usize::MAX, usize::MAX, usize::MAX), |(dw, db)| {
            (dw.len(), db.len(), x.len())
        });
    let gx_len = gx.as_ref().map_or(usize::MAX, |gx| gx.len());
    expect_valid(g, "backward", n, || {
        [
            ("the weights", wt.len(), Size::Layer(g.weights_len())),
            ("the input", x_len, Size::PerSample(g.in_len())),
            (
                "the output gradient",
                gy.len(),
                Size::PerSample(g.out_len()),
            ),
            ("the weight gradient", dw, Size::Layer(g.weights_len())),
            ("the bias gradient", db, Size::Layer(g.cout)),
            ("the input gradient", gx_len, Size::PerSample(g.in_len())),
        ]
    });
    if n == 0 {
        if let Some((dw, db)) = params_grad.as_mut() {
            dw[..g.weights_len()].fill(0.0);
            db[..g.cout].fill(0.0);
        }
        return;
    }
    #[cfg(feature = "gemm")]
    if host_kernels(g) {
        return super::conv_gemm::backward(g, wt, x, gy, params_grad, gx, n);
    }
    // The direct kernels (every device build's path).
    if let Some((dw, db)) = params_grad {
        bias_grad(g, gy, db, n);
        #[cfg(all(target_arch = "arm", feature = "conv-kernels"))]
        if super::conv2d_blocked::weight_grad(g, x, gy, dw, n) {
            if let Some(gx) = gx {
                input_grad_from(g, |i| wt[i], gy, gx, n);
            }
            return;
        }
        weight_grad_direct(g, x, gy, dw, n);
    }
    if let Some(gx) = gx {
        input_grad_from(g, |i| wt[i], gy, gx, n);
    }
}

/// The bias gradient of [`backward`] (`db`, written): per sample, each output channel's
/// output gradients summed in order, added onto `db`.
fn bias_grad(g: &Geometry, gy: &[f32], db: &mut [f32], n: usize) {
    db.fill(0.0);
    for gs in gy.chunks_exact(g.out_len()).take(n) {
        for (d, gc) in db.iter_mut().zip(gs.chunks_exact(g.oh * g.ow)) {
            *d += gc.iter().sum::<f32>();
        }
    }
}

/// The weight gradient of [`backward`]'s direct path (`dw`, written): per sample, output and
/// input channel and kernel tap, the sum over the output positions, added onto `dw`.
pub(super) fn weight_grad_direct(g: &Geometry, x: &[f32], gy: &[f32], dw: &mut [f32], n: usize) {
    let k = g.win.kernel;
    let (s, p) = (g.win.stride, g.win.padding);
    let plane = g.oh * g.ow;
    dw.fill(0.0);
    for (xs, gs) in x
        .chunks_exact(g.in_len())
        .zip(gy.chunks_exact(g.out_len()))
        .take(n)
    {
        for (co, gc) in gs.chunks_exact(plane).enumerate() {
            if g.is_pointwise() {
                // A pointwise convolution: each weight's gradient is a dot product of two
                // planes, in the order of the rows and columns.
                let dwc = &mut dw[co * g.cin..(co + 1) * g.cin];
                for (d, xc) in dwc.iter_mut().zip(xs.chunks_exact(plane)) {
                    let mut acc = 0.0f32;
                    for (&gv, &xv) in gc.iter().zip(xc) {
                        acc += gv * xv;
                    }
                    *d += acc;
                }
                continue;
            }
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

/// Whether [`forward`] and [`backward`] take the host kernels of `conv_gemm` for `g`.
#[cfg(feature = "gemm")]
fn host_kernels(g: &Geometry) -> bool {
    #[cfg(any(test, fuzzing))]
    if !HOST.get() {
        return false;
    }
    super::conv_gemm::worthwhile(g)
}

#[cfg(all(feature = "gemm", any(test, fuzzing)))]
std::thread_local! {
    /// Tests and fuzzing builds only: whether this thread's calls may take the host kernels
    /// (else every call runs the direct ones, the device's).
    static HOST: core::cell::Cell<bool> = const { core::cell::Cell::new(true) };
}

/// Tests and fuzzing builds only: runs `f` with [`forward`] and [`backward`] on the direct
/// kernels (the device's), whatever the features, on this thread.
#[cfg(any(all(test, feature = "gemm"), fuzzing))]
pub(crate) fn direct<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "gemm")]
    let was = HOST.replace(false);
    let r = f();
    #[cfg(feature = "gemm")]
    HOST.set(was);
    r
}

/// The direct [`forward`] with weight `i` and bias `co` read through `wt(i)` and `bias(co)`:
/// a frozen layer's tensors decoded in place from the blob (flash), each weight once per
/// sample and output channel. [`forward`]'s direct path (every device build) is this kernel.
/// On Arm, 3 × 3 stride-2 padding-1 layers run register-blocked (`conv2d_blocked`), with the
/// same additions in the same order.
pub fn forward_from(
    g: &Geometry,
    wt: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    #[cfg(all(target_arch = "arm", feature = "conv-kernels"))]
    if super::conv2d_blocked::forward(g, blocked::Each(&wt), &bias, x, y, n) {
        return;
    }
    forward_direct(g, wt, bias, x, y, n);
}

/// [`forward_from`] for a frozen layer's weights and bias as stored in the blob: on Arm, runs
/// of f16 weights are decoded in one loop.
pub fn forward_stored(
    g: &Geometry,
    wt: &Stored<'_>,
    bias: &Stored<'_>,
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    #[cfg(all(target_arch = "arm", feature = "conv-kernels"))]
    if wt.dtype == DType::F16 {
        let f16 = blocked::F16(wt.bytes);
        if super::conv2d_blocked::forward(g, f16, |c| bias.get(c), x, y, n) {
            return;
        }
    }
    forward_from(g, |i| wt.get(i), |c| bias.get(c), x, y, n);
}

/// Weights [`forward_direct`] decodes at a time (one output channel's, a run of input
/// channels at once): 1 KB of stack.
const WEIGHT_RUN: usize = 256;

/// [`forward_from`]'s loops for every geometry. Per output channel, its weights are decoded a
/// run of input channels at a time into a buffer on the stack (each weight once per sample,
/// whatever the dtype); each output is then summed in a register, four neighbouring outputs of
/// a row at once where every tap is inside the input. Every output gets the additions of the
/// straightforward loops ([`forward_plain`]) in their order, bias first, then input channel,
/// kernel row and kernel column ascending, so the bits are the same. Out of line, so that the
/// buffer is on the stack only while it runs.
#[inline(never)]
pub(super) fn forward_direct(
    g: &Geometry,
    wt: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    let k = g.win.kernel;
    let taps = k * k;
    if taps > WEIGHT_RUN {
        return forward_plain(g, wt, bias, x, y, n);
    }
    let (s, p) = (g.win.stride, g.win.padding);
    let (hw, plane) = (g.h * g.w, g.oh * g.ow);
    let run = (WEIGHT_RUN / taps).min(g.cin);
    // Output columns whose every tap is inside the input: ox·s >= p and ox·s − p + k <= w.
    let (ox_lo, _) = g.valid(g.w, g.ow, 0);
    let (_, ox_hi) = g.valid(g.w, g.ow, k - 1);
    let mut wbuf = [0.0f32; WEIGHT_RUN];
    for (xs, ys) in x
        .chunks_exact(g.in_len())
        .zip(y.chunks_exact_mut(g.out_len()))
        .take(n)
    {
        for (co, yc) in ys.chunks_exact_mut(plane).enumerate() {
            yc.fill(bias(co));
            let mut ci0 = 0;
            while ci0 < g.cin {
                let ci1 = (ci0 + run).min(g.cin);
                let wb = &mut wbuf[..(ci1 - ci0) * taps];
                let base = (co * g.cin + ci0) * taps;
                for (j, v) in wb.iter_mut().enumerate() {
                    *v = wt(base + j);
                }
                let wb = &*wb;
                let xs = &xs[ci0 * hw..ci1 * hw];
                if g.is_pointwise() {
                    pointwise_run(wb, xs, hw, yc);
                    ci0 = ci1;
                    continue;
                }
                for (oy, yrow) in yc.chunks_exact_mut(g.ow).enumerate() {
                    // Kernel rows inside the input for this output row.
                    let ky0 = p.saturating_sub(oy * s);
                    let ky1 = (g.h + p).saturating_sub(oy * s).min(k);
                    let mut ox = 0;
                    while ox < g.ow {
                        if ox >= ox_lo && ox + 4 <= ox_hi {
                            let first = ox * s - p;
                            let mut a = [yrow[ox], yrow[ox + 1], yrow[ox + 2], yrow[ox + 3]];
                            for (xc, wc) in xs.chunks_exact(hw).zip(wb.chunks_exact(taps)) {
                                for ky in ky0..ky1 {
                                    let row = (oy * s + ky - p) * g.w + first;
                                    let xr = &xc[row..row + 3 * s + k];
                                    for (kx, &wv) in wc[ky * k..(ky + 1) * k].iter().enumerate() {
                                        let xx = &xr[kx..kx + 3 * s + 1];
                                        a[0] += wv * xx[0];
                                        a[1] += wv * xx[s];
                                        a[2] += wv * xx[2 * s];
                                        a[3] += wv * xx[3 * s];
                                    }
                                }
                            }
                            yrow[ox..ox + 4].copy_from_slice(&a);
                            ox += 4;
                        } else {
                            let kx0 = p.saturating_sub(ox * s);
                            let kx1 = (g.w + p).saturating_sub(ox * s).min(k);
                            let mut acc = yrow[ox];
                            for (xc, wc) in xs.chunks_exact(hw).zip(wb.chunks_exact(taps)) {
                                for ky in ky0..ky1 {
                                    let row = (oy * s + ky - p) * g.w;
                                    for kx in kx0..kx1 {
                                        acc += wc[ky * k + kx] * xc[row + ox * s + kx - p];
                                    }
                                }
                            }
                            yrow[ox] = acc;
                            ox += 1;
                        }
                    }
                }
                ci0 = ci1;
            }
        }
    }
}

/// One run of input channels of a 1×1, stride-1, unpadded convolution into the output plane
/// `yc` (already holding the bias and the earlier runs): weights `wb` (one per input channel),
/// inputs `xs` (the run's planes of `hw` values), four outputs at a time in registers, input
/// channels ascending.
fn pointwise_run(wb: &[f32], xs: &[f32], hw: usize, yc: &mut [f32]) {
    let mut blocks = yc.chunks_exact_mut(4);
    let mut at = 0;
    for yb in &mut blocks {
        let mut a = [yb[0], yb[1], yb[2], yb[3]];
        for (xc, &wv) in xs.chunks_exact(hw).zip(wb) {
            let xx = &xc[at..at + 4];
            a[0] += wv * xx[0];
            a[1] += wv * xx[1];
            a[2] += wv * xx[2];
            a[3] += wv * xx[3];
        }
        yb.copy_from_slice(&a);
        at += 4;
    }
    for (j, yv) in blocks.into_remainder().iter_mut().enumerate() {
        let mut acc = *yv;
        for (xc, &wv) in xs.chunks_exact(hw).zip(wb) {
            acc += wv * xc[at + j];
        }
        *yv = acc;
    }
}

/// The straightforward loops of [`forward_direct`] (for kernels of more than [`WEIGHT_RUN`]
/// taps, and the reference its tests compare with): per output channel, input channel and
/// kernel tap, the whole output plane.
fn forward_plain(
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
    #[cfg(all(target_arch = "arm", feature = "conv-kernels"))]
    if super::conv2d_blocked::input_grad(g, blocked::Each(&wt), gy, gx, n) {
        return;
    }
    input_grad_direct(g, wt, gy, gx, n);
}

/// [`input_grad_from`] for a frozen layer's weights as stored in the blob: on Arm, runs of f16
/// weights are decoded in one loop.
pub fn input_grad_stored(g: &Geometry, wt: &Stored<'_>, gy: &[f32], gx: &mut [f32], n: usize) {
    #[cfg(all(target_arch = "arm", feature = "conv-kernels"))]
    if wt.dtype == DType::F16 {
        if super::conv2d_blocked::input_grad(g, blocked::F16(wt.bytes), gy, gx, n) {
            return;
        }
    }
    input_grad_from(g, |i| wt.get(i), gy, gx, n);
}

/// [`input_grad_from`]'s loops for every geometry: [`input_grad_plain`]'s, except for a 1×1,
/// stride-1, unpadded (pointwise) convolution, whose input gradient is summed four pixels at a
/// time in registers, the weights that reach an input channel decoded a run of output channels
/// at a time into a buffer on the stack, in the same order (output channels ascending), so the
/// bits are the same. (Summed in registers, a 3 × 3 layer's input gradient took more
/// instructions on the Cortex-M4F than the plain loops: ResNet-8's step 514.6 M against 724.4 M.)
/// Out of line, so that the buffer is on the stack only while it runs.
#[inline(never)]
pub(super) fn input_grad_direct(
    g: &Geometry,
    wt: impl Fn(usize) -> f32,
    gy: &[f32],
    gx: &mut [f32],
    n: usize,
) {
    if !g.is_pointwise() {
        return input_grad_plain(g, wt, gy, gx, n);
    }
    let plane = g.oh * g.ow;
    let run = WEIGHT_RUN.min(g.cout);
    let mut wbuf = [0.0f32; WEIGHT_RUN];
    for (gxs, gs) in gx
        .chunks_exact_mut(g.in_len())
        .zip(gy.chunks_exact(g.out_len()))
        .take(n)
    {
        gxs.fill(0.0);
        for (ci, gxc) in gxs.chunks_exact_mut(plane).enumerate() {
            let mut co0 = 0;
            while co0 < g.cout {
                let co1 = (co0 + run).min(g.cout);
                let wb = &mut wbuf[..co1 - co0];
                for (co, v) in (co0..co1).zip(wb.iter_mut()) {
                    *v = wt(co * g.cin + ci);
                }
                pointwise_run(wb, &gs[co0 * plane..co1 * plane], plane, gxc);
                co0 = co1;
            }
        }
    }
}

/// The straightforward loops of [`input_grad_direct`] (every convolution but a pointwise one,
/// and the reference its tests compare with).
fn input_grad_plain(g: &Geometry, wt: impl Fn(usize) -> f32, gy: &[f32], gx: &mut [f32], n: usize) {
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

/// Hooks for the differential fuzz target of `runtime/fuzz`, compiled only in fuzzing builds
/// (`cargo fuzz` sets `--cfg fuzzing`): [`forward`] and [`backward`] on the direct kernels
/// whatever the features, and the host convolution kept off its AVX2/FMA kernels.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Runs `f` with [`super::forward`] and [`super::backward`] on the direct kernels (the
    /// device's), on this thread.
    pub fn direct<R>(f: impl FnOnce() -> R) -> R {
        super::direct(f)
    }

    /// Whether the host convolution may run its AVX2/FMA kernels (where the CPU has them; on by
    /// default), for every thread. Off, it takes the matrix-product path, whose results are the
    /// same bits.
    #[cfg(all(feature = "gemm", target_arch = "x86_64"))]
    pub fn set_fma(on: bool) {
        super::super::conv_fma::DISABLED.store(!on, core::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::layers::{MAX_SHAPE_LEN, MAX_TENSOR_LEN};
    use std::vec;

    fn geometry(cin: usize, h: usize, cout: usize, k: usize, s: usize, p: usize) -> Geometry {
        let win = Window {
            kernel: k,
            stride: s,
            padding: p,
        };
        let o = win.out(h).unwrap_or(0);
        Geometry {
            cin,
            h,
            w: h,
            cout,
            oh: o,
            ow: o,
            win,
        }
    }

    /// The geometry of the soundness report: `16·cin` wraps to 256 in 64 bits, so buffers
    /// for a 16 → 16 1×1 convolution of 4 × 4 pixels match every unchecked product.
    fn wrapping() -> Geometry {
        Geometry {
            cin: (1 << 60) + 16,
            ..geometry(16, 4, 16, 1, 1, 0)
        }
    }

    fn what(g: Geometry) -> &'static str {
        match g.check() {
            Err(Error::BadGeometry { what }) => what,
            other => panic!("{g:?}: {other:?}"),
        }
    }

    /// The register-summed loops (forward and input gradient) give the straightforward loops'
    /// bits: strides, paddings (also
    /// beyond the kernel), kernels from 1×1 to 5×5, rows of every length around the blocks of
    /// four, input channels beyond one weight run.
    #[test]
    fn direct_forward_matches_the_plain_loops_bit_for_bit() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let mut cases = 0;
        for (cin, h, w, cout, k, s, p) in [
            (1, 28, 28, 4, 3, 2, 1),
            (64, 5, 25, 3, 1, 1, 0),
            (3, 9, 11, 2, 3, 1, 1),
            (2, 7, 13, 3, 5, 2, 2),
            (2, 4, 9, 2, 5, 3, 7),
            (40, 3, 6, 2, 3, 1, 1),
            (1, 6, 6, 1, 2, 2, 0),
            (300, 2, 5, 2, 1, 1, 0),
            (2, 17, 17, 2, 16, 1, 3),
            (1, 20, 20, 1, 17, 1, 0),
        ] {
            let win = Window {
                kernel: k,
                stride: s,
                padding: p,
            };
            let (Some(oh), Some(ow)) = (win.out(h), win.out(w)) else {
                panic!("case {cin} {h} {w} {k} {s} {p} does not fit");
            };
            let g = Geometry {
                cin,
                h,
                w,
                cout,
                oh,
                ow,
                win,
            };
            g.check().unwrap();
            let n = 2;
            let x: vec::Vec<f32> = (0..n * g.in_len()).map(|_| next()).collect();
            let wt: vec::Vec<f32> = (0..g.weights_len()).map(|_| next()).collect();
            let b: vec::Vec<f32> = (0..cout).map(|_| next()).collect();
            let (mut y0, mut y1) = (vec![f32::NAN; n * g.out_len()], vec![0.0; n * g.out_len()]);
            forward_plain(&g, |i| wt[i], |c| b[c], &x, &mut y0, n);
            forward_direct(&g, |i| wt[i], |c| b[c], &x, &mut y1, n);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<vec::Vec<_>>();
            assert_eq!(bits(&y0), bits(&y1), "{g:?}");
            // The input gradient, from an output gradient of the output's shape.
            let gy: vec::Vec<f32> = (0..n * g.out_len()).map(|_| next()).collect();
            let (mut gx0, mut gx1) = (vec![f32::NAN; n * g.in_len()], vec![1.0; n * g.in_len()]);
            input_grad_plain(&g, |i| wt[i], &gy, &mut gx0, n);
            input_grad_direct(&g, |i| wt[i], &gy, &mut gx1, n);
            assert_eq!(bits(&gx0), bits(&gx1), "input gradient {g:?}");
            // The weight gradient: per sample, each weight's sum over the output positions in
            // row order, added onto the earlier samples'.
            let mut dw0 = vec![0.0f32; g.weights_len()];
            for (xs, gs) in x.chunks_exact(g.in_len()).zip(gy.chunks_exact(g.out_len())) {
                for (i, d) in dw0.iter_mut().enumerate() {
                    let (co, ci, ky, kx) = (i / (cin * k * k), i / (k * k) % cin, i / k % k, i % k);
                    let mut acc = 0.0f32;
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (iy, ix) = (oy * s + ky, ox * s + kx);
                            if iy >= p && ix >= p && iy - p < h && ix - p < w {
                                acc += gs[(co * oh + oy) * ow + ox]
                                    * xs[(ci * h + iy - p) * w + ix - p];
                            }
                        }
                    }
                    *d += acc;
                }
            }
            let mut dw1 = vec![f32::NAN; g.weights_len()];
            weight_grad_direct(&g, &x, &gy, &mut dw1, n);
            assert_eq!(bits(&dw0), bits(&dw1), "weight gradient {g:?}");
            cases += 1;
        }
        assert_eq!(cases, 10);
    }

    #[test]
    fn check_accepts_layers_and_refuses_the_rest() {
        for g in [
            geometry(1, 28, 64, 3, 2, 1),
            geometry(64, 2, 64, 3, 2, 1),
            geometry(16, 4, 16, 5, 3, 7),
            geometry(3, 1, 2, 1, 1, 0),
        ] {
            assert_eq!(g.check(), Ok(()), "{g:?}");
        }
        let ok = geometry(16, 4, 16, 3, 1, 1);
        assert!(what(wrapping()).contains("MAX_DIM"));
        for g in [
            Geometry { cin: 0, ..ok },
            Geometry {
                cout: MAX_DIM + 1,
                ..ok
            },
            Geometry {
                win: Window {
                    stride: 0,
                    ..ok.win
                },
                ..ok
            },
            Geometry {
                win: Window {
                    padding: usize::MAX / 2 + 1,
                    ..ok.win
                },
                ..ok
            },
        ] {
            assert!(what(g).contains("MAX_DIM"), "{g:?}");
        }
        assert!(what(Geometry { h: 0, ..ok }).contains("empty"));
        assert!(what(Geometry {
            w: MAX_SHAPE_LEN,
            ..ok
        })
        .contains("MAX_SHAPE_LEN"));
        assert!(what(geometry(16, 2, 16, 5, 1, 1)).contains("kernel"));
        assert!(what(Geometry { oh: 5, ..ok }).contains("output size"));
        assert!(what(Geometry { ow: 3, ..ok }).contains("output size"));
        let wide = geometry(MAX_DIM, 1, MAX_TENSOR_LEN / MAX_DIM + 1, 1, 1, 0);
        assert!(what(wide).contains("weights"));
        let padded = geometry(16, 1, 1, 1, 1, MAX_DIM);
        assert!(what(padded).contains("output exceeds"));
    }

    /// The report's reproducer: every unchecked size check passes, the host path would read
    /// 2^62 bytes past the images. Refused before anything is read.
    #[test]
    #[should_panic(expected = "conv2d::forward: convolution geometry")]
    fn forward_refuses_a_wrapping_geometry() {
        let (wt, b, x) = ([0.5f32; 256], [0.0f32; 16], [1.0f32; 256]);
        forward(&wrapping(), &wt, &b, &x, &mut [0.0; 256], 1);
    }

    #[test]
    #[should_panic(expected = "conv2d::backward: convolution geometry")]
    fn backward_refuses_a_wrapping_geometry() {
        let (wt, x, gy) = ([0.5f32; 256], [1.0f32; 256], [1.0f32; 256]);
        let (mut dw, mut db, mut gx) = ([0.0f32; 256], [0.0f32; 16], [0.0f32; 256]);
        let pg = Some((&mut dw[..], &mut db[..]));
        backward(&wrapping(), &wt, &x, &gy, pg, Some(&mut gx), 1);
    }

    #[test]
    #[should_panic(expected = "conv2d::forward: the input holds 31 values")]
    fn forward_refuses_a_short_input() {
        let g = geometry(2, 4, 2, 3, 1, 1);
        forward(&g, &[0.0; 36], &[0.0; 2], &[0.0; 31], &mut [0.0; 64], 2);
    }

    #[test]
    #[should_panic(expected = "conv2d::backward: the input gradient holds 63 values")]
    fn backward_refuses_a_short_input_gradient() {
        let g = geometry(2, 4, 2, 3, 1, 1);
        let gx = Some(&mut [0.0; 63][..]);
        backward(&g, &[0.0; 36], &[0.0; 64], &[0.0; 64], None, gx, 2);
    }

    /// An empty batch: the weight and bias gradients are zeros, nothing else is touched (on
    /// the host's FMA path too: a 16 → 16 3×3 layer).
    #[test]
    fn empty_batch() {
        for g in [geometry(16, 4, 16, 3, 1, 1), geometry(1, 5, 2, 3, 2, 1)] {
            let wt = vec![0.25f32; g.weights_len()];
            let mut y = [7.0f32; 4];
            forward(&g, &wt, &vec![1.0; g.cout], &[], &mut y, 0);
            assert_eq!(y, [7.0; 4]);
            let (mut dw, mut db) = (vec![3.0f32; wt.len()], vec![3.0f32; g.cout]);
            let mut gx: [f32; 0] = [];
            let pg = Some((&mut dw[..], &mut db[..]));
            backward(&g, &wt, &[], &[], pg, Some(&mut gx), 0);
            assert!(dw.iter().chain(&db).all(|&v| v.to_bits() == 0), "{g:?}");
        }
    }
}
