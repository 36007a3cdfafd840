//! The layer kinds beyond dense, convolution, norm, max pooling, ReLU, tanh and flatten, built
//! with the runtime's `extra-layers` feature (host builds have it through `std`). They sit in
//! one variant of [`Layer`], [`Layer::Extra`], and their passes run out of line: a device
//! build without the feature has none of their code (`extra_none.rs` stands in, with no
//! value), and with it the kernels of the seven first kinds keep the code they had.

use super::conv_general::{self as conv, Window2};
use super::{act, pool, prelu, Layer, Post, Shape, Window, MAX_DIM};
use crate::error::{Error, Result};
use crate::limits::MAX_LAYER_ARGS;
use crate::wire::{kind, RawLayer};

/// A layer of one of the other kinds (wire codes from [`kind::SIGMOID`] on).
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)] // fields are the layer's arguments, named as in docs/format.md
pub enum Extra {
    /// `1 / (1 + e^-x)`, in place.
    Sigmoid,
    /// `min(max(x, min), max)`, in place (ReLU6 is `min = 0, max = 6`); either bound may be
    /// infinite, `min < max`.
    Clip { min: f32, max: f32 },
    /// `x` where `x > 0`, else `slope[c] x`, with one learned slope per channel (per value
    /// of a vector), stored `[channels]`.
    PRelu { channels: usize },
    /// `x` where `x >= 0`, else `alpha x` (`alpha > 0`), in place.
    LeakyRelu { alpha: f32 },
    /// `min(max(alpha x + beta, 0), 1)`, in place.
    HardSigmoid { alpha: f32, beta: f32 },
    /// `x min(max(x / 6 + 1/2, 0), 1)`.
    HardSwish,
    /// Average of each k×k window (padding below the kernel); `include_pad`: the divisor is
    /// always `k²`, else the number of inputs the window covers.
    AvgPool2d { window: Window, include_pad: bool },
    /// Max pooling with padding (below the kernel; padding never wins); without padding it is
    /// [`Layer::MaxPool2d`].
    MaxPool2d { window: Window },
    /// Average of each channel: `[c, h, w]` to `[c, 1, 1]`.
    GlobalAvgPool,
    /// Convolution with a window of its own per axis, dilation and `groups` (1-D, non-square,
    /// uneven padding, grouped, depthwise), W stored `[out, in / groups, kh, kw]`, bias
    /// `[out]`. Both channel counts are multiples of `groups`; up to 65,535 channels.
    Conv {
        in_channels: u16,
        out_channels: u16,
        groups: u16,
        window: Window2,
    },
    /// Max or average pooling with a window of its own per axis (no dilation), padding below
    /// the kernel on each side.
    Pool { window: Window2, mode: PoolMode },
    /// The input plus value `from` (the input of layer `from`; 0 is the model's input), of the
    /// same shape: a residual connection.
    Add { from: u16 },
    /// Value `from` itself: the network goes on from there (the input is not read), as the
    /// shortcut of a residual block starts again from the block's input.
    Branch { from: u16 },
    /// The input and value `from` joined along the channels (images of one height and width,
    /// or vectors), the input's channels first, or value `from`'s when `from_first`.
    Concat { from: u16, from_first: bool },
}

/// What a [`Extra::Pool`] layer takes of each window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// The maximum (padding never wins).
    Max,
    /// The average of the inputs the window covers.
    Average,
    /// The sum over the whole window divided by its size (padding counts as zeros).
    AverageIncludePad,
}

impl PoolMode {
    const fn code(self) -> u32 {
        match self {
            PoolMode::Max => 0,
            PoolMode::Average => 1,
            PoolMode::AverageIncludePad => 2,
        }
    }
}

impl Extra {
    /// Decode layer `index` from its wire record (kind above [`kind::FLATTEN`]).
    pub(super) fn from_raw(index: usize, raw: &RawLayer) -> Result<Extra> {
        let bad = Error::BadLayerArgs {
            layer: index,
            kind: raw.kind,
        };
        let dim = |v: u32| {
            if v == 0 || v as usize > MAX_DIM {
                Err(bad)
            } else {
                Ok(v as usize)
            }
        };
        Ok(match (raw.kind, raw.args.as_slice()) {
            (kind::SIGMOID, &[]) => Extra::Sigmoid,
            (kind::CLIP, &[lo, hi]) => {
                let (min, max) = (f32::from_bits(lo), f32::from_bits(hi));
                if min.is_nan() || max.is_nan() || min >= max {
                    return Err(bad);
                }
                Extra::Clip { min, max }
            }
            (kind::PRELU, &[c]) => Extra::PRelu { channels: dim(c)? },
            (kind::LEAKY_RELU, &[a]) => {
                let alpha = f32::from_bits(a);
                if !(alpha.is_finite() && alpha > 0.0) {
                    return Err(bad);
                }
                Extra::LeakyRelu { alpha }
            }
            (kind::HARD_SIGMOID, &[a, b]) => {
                let (alpha, beta) = (f32::from_bits(a), f32::from_bits(b));
                if !(alpha.is_finite() && beta.is_finite()) {
                    return Err(bad);
                }
                Extra::HardSigmoid { alpha, beta }
            }
            (kind::HARD_SWISH, &[]) => Extra::HardSwish,
            (kind::AVGPOOL2D, &[k, s, p, inc]) if inc <= 1 && p < k => Extra::AvgPool2d {
                window: Window {
                    kernel: dim(k)?,
                    stride: dim(s)?,
                    padding: p as usize,
                },
                include_pad: inc == 1,
            },
            // The padded form of max pooling (the unpadded one has two arguments).
            (kind::MAXPOOL2D, &[k, s, p]) if p > 0 && p < k => Extra::MaxPool2d {
                window: Window {
                    kernel: dim(k)?,
                    stride: dim(s)?,
                    padding: p as usize,
                },
            },
            (kind::GLOBAL_AVGPOOL, &[]) => Extra::GlobalAvgPool,
            (kind::CONV, &[i, o, g, k, sd, pads]) => {
                let window = Window2::from_args([k, sd, pads]).ok_or(bad)?;
                let small = |v: u32| u16::try_from(v).ok().filter(|v| *v > 0).ok_or(bad);
                let (in_channels, out_channels, groups) = (small(i)?, small(o)?, small(g)?);
                if in_channels % groups != 0 || out_channels % groups != 0 {
                    return Err(bad);
                }
                Extra::Conv {
                    in_channels,
                    out_channels,
                    groups,
                    window,
                }
            }
            (kind::ADD, &[from]) if from as usize <= index => Extra::Add { from: from as u16 },
            (kind::BRANCH, &[from]) if (from as usize) < index => {
                Extra::Branch { from: from as u16 }
            }
            (kind::CONCAT, &[from, first]) if from as usize <= index && first <= 1 => {
                Extra::Concat {
                    from: from as u16,
                    from_first: first == 1,
                }
            }
            (kind::POOL, &[mode, k, sd, pads]) => {
                // No dilation: the stride's two bytes only.
                let window = Window2::from_args([k, sd | 0x0101_0000, pads]).ok_or(bad)?;
                let below = |p: [u8; 2]| {
                    (p[0] as u16) < window.kernel[0] && (p[1] as u16) < window.kernel[1]
                };
                if sd > 0xffff || !(below(window.pad_begin) && below(window.pad_end)) {
                    return Err(bad);
                }
                let mode = match mode {
                    0 => PoolMode::Max,
                    1 => PoolMode::Average,
                    2 => PoolMode::AverageIncludePad,
                    _ => return Err(bad),
                };
                Extra::Pool { window, mode }
            }
            _ => return Err(bad),
        })
    }

    /// Push the wire arguments; returns the kind code.
    pub(super) fn to_raw(self, args: &mut heapless::Vec<u32, MAX_LAYER_ARGS>) -> u8 {
        let (code, vals): (u8, &[u32]) = match self {
            Extra::Sigmoid => (kind::SIGMOID, &[]),
            Extra::Clip { min, max } => (kind::CLIP, &[min.to_bits(), max.to_bits()]),
            Extra::PRelu { channels } => (kind::PRELU, &[channels as u32]),
            Extra::LeakyRelu { alpha } => (kind::LEAKY_RELU, &[alpha.to_bits()]),
            Extra::HardSigmoid { alpha, beta } => {
                (kind::HARD_SIGMOID, &[alpha.to_bits(), beta.to_bits()])
            }
            Extra::HardSwish => (kind::HARD_SWISH, &[]),
            Extra::AvgPool2d {
                window,
                include_pad,
            } => (
                kind::AVGPOOL2D,
                &[
                    window.kernel as u32,
                    window.stride as u32,
                    window.padding as u32,
                    include_pad as u32,
                ],
            ),
            Extra::MaxPool2d { window } => (
                kind::MAXPOOL2D,
                &[
                    window.kernel as u32,
                    window.stride as u32,
                    window.padding as u32,
                ],
            ),
            Extra::GlobalAvgPool => (kind::GLOBAL_AVGPOOL, &[]),
            Extra::Conv {
                in_channels,
                out_channels,
                groups,
                window,
            } => {
                let w = window.to_args();
                for v in [
                    in_channels as u32,
                    out_channels as u32,
                    groups as u32,
                    w[0],
                    w[1],
                    w[2],
                ] {
                    let _ = args.push(v);
                }
                (kind::CONV, &[])
            }
            Extra::Pool { window, mode } => {
                let w = window.to_args();
                for v in [mode.code(), w[0], w[1] & 0xffff, w[2]] {
                    let _ = args.push(v);
                }
                (kind::POOL, &[])
            }
            Extra::Add { from } => {
                let _ = args.push(from as u32);
                (kind::ADD, &[])
            }
            Extra::Branch { from } => {
                let _ = args.push(from as u32);
                (kind::BRANCH, &[])
            }
            Extra::Concat { from, from_first } => {
                let _ = args.push(from as u32);
                let _ = args.push(from_first as u32);
                (kind::CONCAT, &[])
            }
        };
        for v in vals {
            let _ = args.push(*v);
        }
        code
    }

    /// Short name for listings.
    pub const fn name(self) -> &'static str {
        match self {
            Extra::Sigmoid => "sigmoid",
            Extra::Clip { .. } => "clip",
            Extra::PRelu { .. } => "prelu",
            Extra::LeakyRelu { .. } => "leakyrelu",
            Extra::HardSigmoid { .. } => "hardsigmoid",
            Extra::HardSwish => "hardswish",
            Extra::AvgPool2d { .. } => "avgpool2d",
            Extra::MaxPool2d { .. } => "maxpool2d",
            Extra::GlobalAvgPool => "globalavgpool",
            Extra::Conv { .. } => "conv",
            Extra::Pool { .. } => "pool",
            Extra::Add { .. } => "add",
            Extra::Branch { .. } => "branch",
            Extra::Concat { .. } => "concat",
        }
    }

    /// See [`Layer::accepts`].
    pub(super) fn accepts(self, s: Shape) -> bool {
        match self {
            Extra::PRelu { channels } => s.channels_spatial().0 == channels,
            Extra::AvgPool2d { window, .. } | Extra::MaxPool2d { window } => {
                matches!(s, Shape::Chw(_, h, w) if window.out(h).is_some() && window.out(w).is_some())
            }
            Extra::GlobalAvgPool => matches!(s, Shape::Chw(..)),
            Extra::Conv {
                in_channels,
                window,
                ..
            } => matches!(s, Shape::Chw(c, h, w)
                if c == in_channels as usize && window.out_hw(h, w).is_some()),
            Extra::Pool { window, .. } => {
                matches!(s, Shape::Chw(_, h, w) if window.out_hw(h, w).is_some())
            }
            _ => true,
        }
    }

    /// See [`Layer::output_shape`] (before its size check).
    pub(super) fn output_shape(self, s: Shape) -> Option<Shape> {
        if !self.accepts(s) {
            return None;
        }
        Some(match (self, s) {
            (
                Extra::AvgPool2d { window, .. } | Extra::MaxPool2d { window },
                Shape::Chw(c, h, w),
            ) => Shape::Chw(c, window.out(h)?, window.out(w)?),
            (Extra::GlobalAvgPool, Shape::Chw(c, ..)) => Shape::Chw(c, 1, 1),
            (
                Extra::Conv {
                    out_channels,
                    window,
                    ..
                },
                Shape::Chw(_, h, w),
            ) => {
                let (oh, ow) = window.out_hw(h, w)?;
                Shape::Chw(out_channels as usize, oh, ow)
            }
            (Extra::Pool { window, .. }, Shape::Chw(c, h, w)) => {
                let (oh, ow) = window.out_hw(h, w)?;
                Shape::Chw(c, oh, ow)
            }
            // Shapes from the value they read (see `Layer::output_shape_after`).
            (Extra::Branch { .. } | Extra::Concat { .. }, _) => return None,
            _ => s,
        })
    }

    /// See [`Layer::tensor_count`].
    pub(super) const fn tensor_count(self) -> usize {
        match self {
            Extra::PRelu { .. } => 1,
            Extra::Conv { .. } => 2,
            _ => 0,
        }
    }

    /// See [`Layer::tensor_len`].
    pub(super) const fn tensor_len(self, k: usize) -> usize {
        match self {
            Extra::PRelu { channels } => channels,
            Extra::Conv {
                in_channels,
                out_channels,
                groups,
                window,
            } => {
                if k == 0 {
                    // At most MAX_DIM · MAX_DIM · 2^32: validation checks it with
                    // `checked_tensor_len` before any use of this value.
                    out_channels as usize * (in_channels / groups) as usize * window.taps()
                } else {
                    out_channels as usize
                }
            }
            _ => 0,
        }
    }

    /// See [`Layer::checked_tensor_len`].
    pub(super) fn checked_tensor_len(self, k: usize) -> Option<usize> {
        match self {
            Extra::Conv {
                in_channels,
                out_channels,
                groups,
                window,
            } if k == 0 => (out_channels as usize)
                .checked_mul((in_channels / groups) as usize)?
                .checked_mul(window.taps()),
            _ => Some(self.tensor_len(k)),
        }
    }

    /// Multiply-accumulates of a forward pass for one sample (saturating).
    pub(super) fn macs(self, output: Shape) -> usize {
        match self {
            Extra::Conv {
                in_channels,
                groups,
                window,
                ..
            } => output
                .len()
                .saturating_mul((in_channels / groups) as usize)
                .saturating_mul(window.taps()),
            _ => 0,
        }
    }

    /// The output of an [`Extra::Add`] (input `s` plus a value of shape `v`, which must match),
    /// an [`Extra::Branch`] (the value) or an [`Extra::Concat`] (the channels of both); others:
    /// [`Layer::output_shape`].
    pub(super) fn output_reading(self, s: Shape, v: Shape) -> Option<Shape> {
        match self {
            Extra::Add { .. } => (v == s).then_some(s),
            Extra::Branch { .. } => Some(v),
            Extra::Concat { .. } => match (s, v) {
                (Shape::Chw(a, h, w), Shape::Chw(b, h2, w2)) if (h, w) == (h2, w2) => {
                    Some(Shape::Chw(a.checked_add(b)?, h, w))
                }
                (Shape::Flat(a), Shape::Flat(b)) => Some(Shape::Flat(a.checked_add(b)?)),
                _ => None,
            },
            e => Layer::Extra(e).output_shape(s),
        }
    }

    /// Forward pass over `n` samples of a layer that reads an earlier value: `x` its input, `v`
    /// the value (each `n` rows), `y` its output.
    #[inline(never)]
    pub fn join_forward(self, x: &[f32], v: &[f32], y: &mut [f32], n: usize) {
        match self {
            Extra::Add { .. } => {
                for ((y, &a), &b) in y.iter_mut().zip(x).zip(v) {
                    *y = a + b;
                }
            }
            Extra::Branch { .. } => y.copy_from_slice(v),
            Extra::Concat { from_first, .. } => {
                let (il, vl) = (x.len() / n, v.len() / n);
                for ((y, x), v) in y
                    .chunks_exact_mut(il + vl)
                    .zip(x.chunks_exact(il))
                    .zip(v.chunks_exact(vl))
                {
                    let (a, b) = if from_first { (v, x) } else { (x, v) };
                    y[..a.len()].copy_from_slice(a);
                    y[a.len()..].copy_from_slice(b);
                }
            }
            _ => {}
        }
    }

    /// Backward pass of [`Extra::join_forward`]: the output gradient `g` is added to the
    /// value's gradient `gv` (its share of it) and written to the input's, `gx`, when given.
    #[inline(never)]
    pub fn join_backward(self, g: &[f32], gx: Option<&mut [f32]>, gv: &mut [f32], n: usize) {
        match self {
            Extra::Add { .. } | Extra::Branch { .. } => {
                for (d, &g) in gv.iter_mut().zip(g) {
                    *d += g;
                }
                if let Some(gx) = gx {
                    if self.is_branch() {
                        gx.fill(0.0);
                    } else {
                        gx.copy_from_slice(&g[..gx.len()]);
                    }
                }
            }
            Extra::Concat { from_first, .. } => {
                let vl = gv.len() / n;
                let il = g.len() / n - vl;
                let mut gx = gx;
                for (s, (g, gv)) in g
                    .chunks_exact(il + vl)
                    .zip(gv.chunks_exact_mut(vl))
                    .enumerate()
                {
                    let (gi, gvs) = if from_first {
                        let (a, b) = g.split_at(vl);
                        (b, a)
                    } else {
                        g.split_at(il)
                    };
                    for (d, &g) in gv.iter_mut().zip(gvs) {
                        *d += g;
                    }
                    if let Some(gx) = gx.as_deref_mut() {
                        gx[s * il..(s + 1) * il].copy_from_slice(gi);
                    }
                }
            }
            _ => {}
        }
    }

    /// See [`Layer::fan_in`].
    pub(super) fn fan_in(self) -> Option<usize> {
        match self {
            Extra::Conv {
                in_channels,
                groups,
                window,
                ..
            } => Some((in_channels / groups) as usize * window.taps()),
            _ => None,
        }
    }

    /// See [`Layer::is_branch`].
    pub(super) const fn is_branch(self) -> bool {
        matches!(self, Extra::Branch { .. })
    }

    /// The earlier value an [`Extra::Add`] or [`Extra::Branch`] reads.
    pub(super) const fn reads(self) -> Option<usize> {
        match self {
            Extra::Add { from } | Extra::Branch { from } | Extra::Concat { from, .. } => {
                Some(from as usize)
            }
            _ => None,
        }
    }

    /// See [`Layer::in_place`].
    pub(super) const fn in_place(self) -> bool {
        matches!(
            self,
            Extra::Sigmoid
                | Extra::Clip { .. }
                | Extra::LeakyRelu { .. }
                | Extra::HardSigmoid { .. }
        )
    }

    /// An in-place layer's forward pass over `x`.
    #[inline(never)]
    pub fn apply(self, x: &mut [f32]) {
        match self {
            Extra::Sigmoid => act::sigmoid_in_place(x),
            Extra::Clip { min, max } => act::clip(x, min, max),
            Extra::LeakyRelu { alpha } => act::leaky_relu(x, alpha),
            Extra::HardSigmoid { alpha, beta } => act::hard_sigmoid(x, alpha, beta),
            _ => {}
        }
    }

    /// Forward pass of a layer that is not in place over `n` samples of shape `input`;
    /// parameter `i` (its tensors one after the other) is `param(i)`.
    pub fn forward(
        self,
        input: Shape,
        param: impl Fn(usize) -> f32,
        x: &[f32],
        y: &mut [f32],
        n: usize,
    ) {
        let (c, s) = input.channels_spatial();
        match self {
            Extra::PRelu { channels: c } => prelu::forward(c, s, param, x, y, n),
            Extra::HardSwish => act::hard_swish(&x[..n * c * s], &mut y[..n * c * s]),
            Extra::AvgPool2d {
                window,
                include_pad,
            } => pool::avg_forward(&pool::geometry(window, input), include_pad, x, y, n),
            Extra::MaxPool2d { window } => {
                pool::max_forward(&pool::geometry(window, input), x, y, n)
            }
            Extra::GlobalAvgPool => pool::global_forward(n * c, s, x, y),
            Extra::Conv {
                out_channels,
                groups,
                window,
                ..
            } => {
                if let Some(g) =
                    conv::Geometry::of(input, out_channels as usize, groups as usize, window)
                {
                    conv::forward(&g, param, x, y, n);
                }
            }
            Extra::Pool { window, mode } => {
                let g = pool::geometry2(window, input);
                match mode {
                    PoolMode::Max => pool::max_forward(&g, x, y, n),
                    PoolMode::Average => pool::avg_forward(&g, false, x, y, n),
                    PoolMode::AverageIncludePad => pool::avg_forward(&g, true, x, y, n),
                }
            }
            _ => {}
        }
    }

    /// Backward pass of a layer that is not in place: the parameter gradient into `pg` (when
    /// given), the input gradient into `gx` (when given).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        self,
        input: Shape,
        param: impl Fn(usize) -> f32,
        x: &[f32],
        g: &[f32],
        pg: Option<&mut [f32]>,
        gx: Option<&mut [f32]>,
        n: usize,
    ) {
        let (c, s) = input.channels_spatial();
        if let Extra::PRelu { channels: c } = self {
            prelu::backward(c, s, param, x, g, pg, gx, n);
            return;
        }
        if let Extra::Conv {
            out_channels,
            groups,
            window,
            ..
        } = self
        {
            if let Some(geo) =
                conv::Geometry::of(input, out_channels as usize, groups as usize, window)
            {
                conv::backward(&geo, param, x, g, pg, gx, n);
            }
            return;
        }
        let Some(gx) = gx else { return };
        match self {
            Extra::HardSwish => act::hard_swish_grad(&x[..n * c * s], g, gx),
            Extra::AvgPool2d {
                window,
                include_pad,
            } => pool::avg_backward(&pool::geometry(window, input), include_pad, g, gx, n),
            Extra::MaxPool2d { window } => {
                pool::max_backward(&pool::geometry(window, input), x, g, gx, n)
            }
            Extra::GlobalAvgPool => pool::global_backward(n * c, s, g, gx),
            Extra::Pool { window, mode } => {
                let geo = pool::geometry2(window, input);
                match mode {
                    PoolMode::Max => pool::max_backward(&geo, x, g, gx, n),
                    PoolMode::Average => pool::avg_backward(&geo, false, g, gx, n),
                    PoolMode::AverageIncludePad => pool::avg_backward(&geo, true, g, gx, n),
                }
            }
            _ => {}
        }
    }
}

/// The derivative of in-place [`Extra`] activations, recovered from their output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExtraPost {
    /// Sigmoid: derivative `y (1 - y)`.
    Sigmoid,
    /// Clipping to `[min, max]` (ReLU and clips in any order and number, merged): derivative
    /// `[min < y < max]`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Leaky ReLU (`alpha > 0` keeps the sign): derivative `1` where `y > 0`, else `alpha`.
    LeakyRelu {
        /// Slope below zero.
        alpha: f32,
    },
    /// Hard sigmoid: derivative `alpha` where `0 < y < 1`, else 0.
    HardSigmoid {
        /// Slope.
        alpha: f32,
    },
}

impl ExtraPost {
    /// The post-op of `e` applied in place after `p`; `None` if the composition's derivative
    /// cannot be recovered from the final values.
    pub(super) fn after(p: Post, e: Extra) -> Option<ExtraPost> {
        use ExtraPost::*;
        Some(match (p, e) {
            (Post::Identity, Extra::Sigmoid) => Sigmoid,
            (Post::Identity, Extra::Clip { min, max }) => Clip { min, max },
            (Post::Identity, Extra::LeakyRelu { alpha }) => LeakyRelu { alpha },
            (Post::Identity, Extra::HardSigmoid { alpha, .. }) => HardSigmoid { alpha },
            // ReLU is the clip to [0, inf): clips compose into the clip to the intersection.
            (Post::Relu, Extra::Clip { min, max }) => Clip {
                min: min.max(0.0),
                max,
            },
            (Post::Extra(Clip { min, max }), Extra::Clip { min: lo, max: hi }) => Clip {
                min: min.max(lo),
                max: max.min(hi),
            },
            _ => return None,
        })
    }

    /// This post-op followed by one of the first in-place kinds (flatten excepted).
    pub(super) fn then(self, layer: Layer) -> Option<ExtraPost> {
        match (self, layer) {
            (ExtraPost::Clip { min, max }, Layer::Relu) => Some(ExtraPost::Clip {
                min: min.max(0.0),
                max,
            }),
            _ => None,
        }
    }

    /// See [`Post::deliver`].
    #[inline(never)]
    pub(super) fn deliver(self, g: &[f32], y_then_grad: &mut [f32]) {
        match self {
            ExtraPost::Sigmoid => {
                for (d, &g) in y_then_grad.iter_mut().zip(g) {
                    *d = g * (*d * (1.0 - *d));
                }
            }
            ExtraPost::Clip { min, max } => {
                for (d, &g) in y_then_grad.iter_mut().zip(g) {
                    *d = if *d > min && *d < max { g } else { 0.0 };
                }
            }
            ExtraPost::LeakyRelu { alpha } => {
                for (d, &g) in y_then_grad.iter_mut().zip(g) {
                    *d = if *d > 0.0 { g } else { alpha * g };
                }
            }
            ExtraPost::HardSigmoid { alpha } => {
                for (d, &g) in y_then_grad.iter_mut().zip(g) {
                    *d = if *d > 0.0 && *d < 1.0 { alpha * g } else { 0.0 };
                }
            }
        }
    }
}
