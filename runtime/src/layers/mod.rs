//! Layer kinds: their wire codes, shapes and parameter tensors. One file per kind holds its
//! forward and backward kernels, which work on a batch of `n` samples stored row after row
//! (each row in the layer's per-sample layout, CHW for images).

pub mod act;
pub mod conv2d;
#[cfg(any(test, all(target_arch = "arm", feature = "conv-kernels")))]
mod conv2d_blocked;
#[cfg(all(feature = "gemm", target_arch = "x86_64"))]
// Host builds only (`gemm`), which need Rust 1.89 (the AVX-512 intrinsics).
#[clippy::msrv = "1.89"]
mod conv_fma;
#[cfg(feature = "gemm")]
mod conv_gemm;
#[cfg(feature = "extra-layers")]
pub mod conv_general;
pub mod dense;
pub mod maxpool;
pub mod norm;
#[cfg(feature = "extra-layers")]
pub mod pool;
#[cfg(feature = "extra-layers")]
pub mod prelu;
// The layer kinds beyond the first seven: built with the `extra-layers` feature; without it
// `Extra` has no value, so they cost no code and every match over them vanishes.
#[cfg(feature = "extra-layers")]
pub mod extra;
#[cfg(not(feature = "extra-layers"))]
#[path = "extra_none.rs"]
pub mod extra;
#[cfg(all(target_arch = "arm", target_abi = "eabihf", target_os = "none"))]
mod vfp;

use crate::error::{Error, Result};
use crate::wire::RawLayer;
#[cfg(feature = "extra-layers")]
pub use conv_general::Window2;
#[cfg(feature = "extra-layers")]
pub use extra::PoolMode;
pub use extra::{Extra, ExtraPost};

pub use crate::limits::{MAX_DIM, MAX_SHAPE_LEN, MAX_TENSOR_LEN};
pub use crate::wire::kind;

/// Shape of one sample at a point of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A vector of `n` values.
    Flat(usize),
    /// An image: channels, height, width (stored channel-major).
    Chw(usize, usize, usize),
}

impl Shape {
    /// Number of values.
    pub const fn len(self) -> usize {
        match self {
            Shape::Flat(n) => n,
            Shape::Chw(c, h, w) => c * h * w,
        }
    }
    /// True when the shape holds no value (never for a validated model).
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }
    /// Channels and spatial size as normalisation sees them (a vector: n channels of size 1).
    pub const fn channels_spatial(self) -> (usize, usize) {
        match self {
            Shape::Flat(n) => (n, 1),
            Shape::Chw(c, h, w) => (c, h * w),
        }
    }
    /// Number of values, or `None` if it exceeds [`MAX_SHAPE_LEN`] (checked arithmetic).
    pub fn checked_len(self) -> Option<usize> {
        let n = match self {
            Shape::Flat(n) => n,
            Shape::Chw(c, h, w) => c.checked_mul(h)?.checked_mul(w)?,
        };
        (n <= MAX_SHAPE_LEN).then_some(n)
    }
    /// From stored dims (`[n]`, `[c, l]` or `[c, h, w]`; a 1-D signal `[c, l]` is the image
    /// `[c, 1, l]`); `None` if empty, zero or too large.
    pub fn from_dims(dims: &[u32]) -> Option<Shape> {
        let ok = |d: u32| d > 0 && (d as usize) <= MAX_DIM;
        let s = match *dims {
            [n] if ok(n) => Shape::Flat(n as usize),
            [c, l] if ok(c) && ok(l) => Shape::Chw(c as usize, 1, l as usize),
            [c, h, w] if ok(c) && ok(h) && ok(w) => Shape::Chw(c as usize, h as usize, w as usize),
            _ => return None,
        };
        s.checked_len().map(|_| s)
    }
}

/// Geometry of a 2-D convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Window {
    /// Output size along one axis of input size `n`; `None` if the window does not fit.
    pub const fn out(self, n: usize) -> Option<usize> {
        let padded = n + 2 * self.padding;
        if self.kernel == 0 || self.stride == 0 || padded < self.kernel {
            None
        } else {
            Some((padded - self.kernel) / self.stride + 1)
        }
    }
}

/// One layer of a model.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)] // fields are the layer's arguments, named as in docs/format.md
pub enum Layer {
    /// `y = W x + b`, W stored `[outputs, inputs]` row-major.
    Dense { inputs: usize, outputs: usize },
    /// 2-D convolution, W stored `[out, in, k, k]`, bias `[out]`.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        window: Window,
    },
    /// Per-channel normalisation with learned scale and shift and stored statistics
    /// (see `norm.rs` for when batch statistics are used).
    Norm { channels: usize, eps: f32 },
    /// `max(x, 0)`, in place.
    Relu,
    /// `tanh(x)`, in place.
    Tanh,
    /// Max pooling, no padding.
    MaxPool2d { window: Window },
    /// Image to vector (no data movement: CHW order is kept).
    Flatten,
    /// The other kinds (sigmoid, clip, PReLU, ...): see [`Extra`].
    Extra(Extra),
}

impl Layer {
    /// Decode layer `index` from its wire record.
    pub fn from_raw(index: usize, raw: &RawLayer) -> Result<Layer> {
        let a = &raw.args;
        let bad = Error::BadLayerArgs {
            layer: index,
            kind: raw.kind,
        };
        let dim = |v: u32| -> Result<usize> {
            let v = v as usize;
            if v == 0 || v > MAX_DIM {
                Err(bad)
            } else {
                Ok(v)
            }
        };
        if kind::missing_feature(raw.kind).is_some() {
            return Err(Error::UnknownLayer {
                layer: index,
                kind: raw.kind,
            });
        }
        let layer = match (raw.kind, a.as_slice()) {
            (kind::DENSE, &[i, o]) => Layer::Dense {
                inputs: dim(i)?,
                outputs: dim(o)?,
            },
            (kind::CONV2D, &[i, o, k, s, p]) => Layer::Conv2d {
                in_channels: dim(i)?,
                out_channels: dim(o)?,
                window: Window {
                    kernel: dim(k)?,
                    stride: dim(s)?,
                    padding: if p as usize > MAX_DIM {
                        return Err(bad);
                    } else {
                        p as usize
                    },
                },
            },
            (kind::NORM, &[c, eps]) => {
                let eps = f32::from_bits(eps);
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(bad);
                }
                Layer::Norm {
                    channels: dim(c)?,
                    eps,
                }
            }
            (kind::RELU, &[]) => Layer::Relu,
            (kind::TANH, &[]) => Layer::Tanh,
            (kind::MAXPOOL2D, &[k, s]) => Layer::MaxPool2d {
                window: Window {
                    kernel: dim(k)?,
                    stride: dim(s)?,
                    padding: 0,
                },
            },
            (kind::FLATTEN, &[]) => Layer::Flatten,
            // Max pooling with padding is one of the other kinds.
            (kind::MAXPOOL2D, &[_, _, _]) => Layer::Extra(Extra::from_raw(index, raw)?),
            (k, _) if k <= kind::FLATTEN => return Err(bad),
            (k, _) if k <= kind::LAST => Layer::Extra(Extra::from_raw(index, raw)?),
            (k, _) => {
                return Err(Error::UnknownLayer {
                    layer: index,
                    kind: k,
                })
            }
        };
        Ok(layer)
    }

    /// The runtime feature this layer's kind needs beyond what every build carries (a max
    /// pooling with padding is one of the other kinds: `extra-layers`; its wire code also
    /// needs `conv`, which [`kind::feature`] says).
    pub const fn feature(self) -> Option<crate::wire::Feature> {
        use crate::wire::Feature;
        match self {
            Layer::Conv2d { .. } | Layer::MaxPool2d { .. } => Some(Feature::CONV),
            Layer::Norm { .. } => Some(Feature::NORM),
            Layer::Extra(_) => Some(Feature::EXTRA_LAYERS),
            Layer::Dense { .. } | Layer::Relu | Layer::Tanh | Layer::Flatten => None,
        }
    }

    /// Encode as a wire record.
    pub fn to_raw(self) -> RawLayer {
        let mut args: heapless::Vec<u32, { crate::limits::MAX_LAYER_ARGS }> = heapless::Vec::new();
        let (kind, vals): (u8, &[usize]) = match self {
            Layer::Dense { inputs, outputs } => (kind::DENSE, &[inputs, outputs]),
            Layer::Conv2d {
                in_channels,
                out_channels,
                window,
            } => (
                kind::CONV2D,
                &[
                    in_channels,
                    out_channels,
                    window.kernel,
                    window.stride,
                    window.padding,
                ],
            ),
            Layer::Norm { channels, eps } => {
                let _ = args.push(channels as u32);
                let _ = args.push(eps.to_bits());
                (kind::NORM, &[])
            }
            Layer::Relu => (kind::RELU, &[]),
            Layer::Tanh => (kind::TANH, &[]),
            Layer::MaxPool2d { window } => (kind::MAXPOOL2D, &[window.kernel, window.stride]),
            Layer::Flatten => (kind::FLATTEN, &[]),
            Layer::Extra(e) => (e.to_raw(&mut args), &[]),
        };
        for v in vals {
            let _ = args.push(*v as u32);
        }
        RawLayer { kind, args }
    }

    /// Short name for listings.
    pub const fn name(self) -> &'static str {
        match self {
            Layer::Dense { .. } => "dense",
            Layer::Conv2d { .. } => "conv2d",
            Layer::Norm { .. } => "norm",
            Layer::Relu => "relu",
            Layer::Tanh => "tanh",
            Layer::MaxPool2d { .. } => "maxpool2d",
            Layer::Flatten => "flatten",
            Layer::Extra(e) => e.name(),
        }
    }

    /// Whether the layer accepts input `s` (right kind and channels, window fits), whatever
    /// the size of its output.
    pub fn accepts(self, s: Shape) -> bool {
        match (self, s) {
            (Layer::Dense { inputs, .. }, Shape::Flat(n)) => n == inputs,
            (
                Layer::Conv2d {
                    in_channels,
                    window,
                    ..
                },
                Shape::Chw(c, h, w),
            ) => c == in_channels && window.out(h).is_some() && window.out(w).is_some(),
            (Layer::Norm { channels, .. }, s) => s.channels_spatial().0 == channels,
            (Layer::MaxPool2d { window }, Shape::Chw(_, h, w)) => {
                window.out(h).is_some() && window.out(w).is_some()
            }
            (Layer::Relu | Layer::Tanh | Layer::Flatten, _) => true,
            (Layer::Extra(e), s) => e.accepts(s),
            _ => false,
        }
    }

    /// Output shape for input `s`, or `None` if `s` does not fit this layer or the output
    /// would exceed [`MAX_SHAPE_LEN`] values.
    pub fn output_shape(self, s: Shape) -> Option<Shape> {
        let out = match (self, s) {
            (Layer::Dense { inputs, outputs }, Shape::Flat(n)) if n == inputs => {
                Shape::Flat(outputs)
            }
            (
                Layer::Conv2d {
                    in_channels,
                    out_channels,
                    window,
                },
                Shape::Chw(c, h, w),
            ) if c == in_channels => Shape::Chw(out_channels, window.out(h)?, window.out(w)?),
            (Layer::Norm { channels, .. }, s) if s.channels_spatial().0 == channels => s,
            (Layer::Relu | Layer::Tanh, s) => s,
            (Layer::MaxPool2d { window }, Shape::Chw(c, h, w)) => {
                Shape::Chw(c, window.out(h)?, window.out(w)?)
            }
            (Layer::Flatten, s) => Shape::Flat(s.checked_len()?),
            (Layer::Extra(e), s) => e.output_shape(s)?,
            _ => return None,
        };
        match out.checked_len() {
            Some(n) if n > 0 => Some(out),
            _ => None,
        }
    }

    /// Inputs that feed one output of a layer with a weight and a bias (dense, the
    /// convolutions): what PyTorch's initialisation scales by; `None` for the other kinds.
    pub fn fan_in(self) -> Option<usize> {
        match self {
            Layer::Dense { inputs, .. } => Some(inputs),
            Layer::Conv2d {
                in_channels,
                window,
                ..
            } => Some(in_channels * window.kernel * window.kernel),
            Layer::Extra(e) => e.fan_in(),
            _ => None,
        }
    }

    /// The earlier value the layer reads besides its input, if any: `Some(k)` for a residual
    /// addition or a branch reading value `k`, the input of layer `k` (0: the model's input).
    pub const fn reads(self) -> Option<usize> {
        match self {
            Layer::Extra(e) => e.reads(),
            _ => None,
        }
    }

    /// Whether the layer is a branch: it starts again from an earlier value and does not read
    /// its input.
    pub const fn is_branch(self) -> bool {
        match self {
            Layer::Extra(e) => e.is_branch(),
            _ => false,
        }
    }

    /// Output shape for input `s` where `value(k)` is the shape of value `k` (the input of layer
    /// `k`) for the values before this layer: [`Layer::output_shape`], and for a layer that
    /// reads an earlier value, that value's shape (which an addition's input must have).
    pub fn output_shape_after(
        self,
        s: Shape,
        value: impl Fn(usize) -> Option<Shape>,
    ) -> Option<Shape> {
        match (self, self.reads()) {
            (Layer::Extra(e), Some(k)) => e.output_reading(s, value(k)?),
            _ => self.output_shape(s),
        }
    }

    /// Element count of tensor `k` with checked arithmetic; `None` if it exceeds
    /// [`MAX_TENSOR_LEN`]. Validation uses it so that [`Layer::tensor_len`] cannot overflow.
    pub fn checked_tensor_len(self, k: usize) -> Option<usize> {
        let n = match self {
            Layer::Dense { inputs, outputs } => {
                if k == 0 {
                    inputs.checked_mul(outputs)?
                } else {
                    outputs
                }
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                window,
            } => {
                if k == 0 {
                    out_channels
                        .checked_mul(in_channels)?
                        .checked_mul(window.kernel)?
                        .checked_mul(window.kernel)?
                } else {
                    out_channels
                }
            }
            Layer::Norm { channels, .. } => channels,
            Layer::Extra(e) => e.checked_tensor_len(k)?,
            _ => 0,
        };
        (n <= MAX_TENSOR_LEN).then_some(n)
    }

    /// Number of stored tensors.
    pub const fn tensor_count(self) -> usize {
        match self {
            Layer::Dense { .. } | Layer::Conv2d { .. } => 2,
            Layer::Norm { .. } => 4,
            Layer::Extra(e) => e.tensor_count(),
            _ => 0,
        }
    }

    /// Element count of tensor `k` (see docs/format.md for the order).
    pub const fn tensor_len(self, _input: Shape, k: usize) -> usize {
        match self {
            Layer::Dense { inputs, outputs } => {
                if k == 0 {
                    inputs * outputs
                } else {
                    outputs
                }
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                window,
            } => {
                if k == 0 {
                    out_channels * in_channels * window.kernel * window.kernel
                } else {
                    out_channels
                }
            }
            Layer::Norm { channels, .. } => channels,
            Layer::Extra(e) => e.tensor_len(k),
            _ => 0,
        }
    }

    /// All parameters of this layer (sum of its tensors).
    pub const fn param_len(self, input: Shape) -> usize {
        let mut k = 0;
        let mut total = 0;
        while k < self.tensor_count() {
            total += self.tensor_len(input, k);
            k += 1;
        }
        total
    }

    /// Parameters that SGD updates (a norm layer's statistics are not trained).
    pub const fn trained_len(self, input: Shape) -> usize {
        match self {
            Layer::Norm { channels, .. } => 2 * channels,
            _ => self.param_len(input),
        }
    }

    /// Whether the layer overwrites its input in place (activations, flatten).
    pub const fn in_place(self) -> bool {
        match self {
            Layer::Relu | Layer::Tanh | Layer::Flatten => true,
            Layer::Extra(e) => e.in_place(),
            _ => false,
        }
    }

    /// Multiply-accumulates of a forward pass for one sample (saturating).
    pub fn macs(self, input: Shape) -> usize {
        match (self, self.output_shape(input)) {
            (Layer::Dense { inputs, outputs }, _) => inputs.saturating_mul(outputs),
            (
                Layer::Conv2d {
                    in_channels,
                    window,
                    ..
                },
                Some(out),
            ) => out
                .len()
                .saturating_mul(in_channels)
                .saturating_mul(window.kernel)
                .saturating_mul(window.kernel),
            (Layer::Extra(e), Some(out)) => e.macs(out),
            _ => 0,
        }
    }
}

/// Activation applied in place to a buffer, remembered so its derivative can be applied from
/// the buffer's final values when a gradient arrives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Post {
    /// Nothing applied.
    Identity,
    /// ReLU.
    Relu,
    /// Tanh.
    Tanh,
    /// ReLU and tanh in either order: derivative `(1 - y^2) [y > 0]`.
    ReluTanh,
    /// The other in-place activations: see [`ExtraPost`].
    Extra(ExtraPost),
}

impl Post {
    /// The post-op after also applying `layer` in place; `None` if the composition's
    /// derivative cannot be recovered from the final values (tanh twice).
    pub fn then(self, layer: Layer) -> Option<Post> {
        use Post::*;
        Some(match (self, layer) {
            (p, Layer::Flatten) => p,
            (Identity | Relu, Layer::Relu) => Relu,
            (Identity, Layer::Tanh) => Tanh,
            (Tanh | ReluTanh, Layer::Relu) | (Relu, Layer::Tanh) => ReluTanh,
            (p, Layer::Extra(e)) => return ExtraPost::after(p, e).map(Extra),
            (Extra(p), l) => return p.then(l).map(Extra),
            _ => return None,
        })
    }

    /// `g` becomes the gradient with respect to the pre-activation, given the post-activation
    /// values `y`, writing over `y` (element by element, so `dst` may alias the values).
    #[inline]
    pub fn deliver(self, g: &[f32], y_then_grad: &mut [f32]) {
        match self {
            Post::Identity => y_then_grad.copy_from_slice(g),
            Post::Relu => {
                for (d, &g) in y_then_grad.iter_mut().zip(g) {
                    *d = if *d > 0.0 { g } else { 0.0 };
                }
            }
            Post::Tanh => {
                for (d, &g) in y_then_grad.iter_mut().zip(g) {
                    *d = g * (1.0 - *d * *d);
                }
            }
            Post::ReluTanh => {
                for (d, &g) in y_then_grad.iter_mut().zip(g) {
                    *d = if *d > 0.0 { g * (1.0 - *d * *d) } else { 0.0 };
                }
            }
            Post::Extra(p) => p.deliver(g, y_then_grad),
        }
    }
}
