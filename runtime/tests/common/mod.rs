//! Shared helpers of the integration tests: a deterministic random source, a model builder
//! that writes blobs with the runtime's own writer types, and an independent f64 reference
//! forward pass (naive loops, written from the layer definitions, sharing no code with the
//! runtime's kernels).
#![allow(dead_code)]

use anole::blob::{AdaptSettings, Provenance, RawTensor, Wire, MAGIC};
use anole::layers::Window;
#[cfg(feature = "extra-layers")]
use anole::layers::{PoolMode, Window2};
#[cfg(feature = "extra-layers")]
use anole::Extra;
use anole::{Blob, DType, Layer, Learner, Shape, TensorValues};

/// splitmix64: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

pub fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, padding: usize) -> Layer {
    Layer::Conv2d {
        in_channels: cin,
        out_channels: cout,
        window: Window {
            kernel,
            stride,
            padding,
        },
    }
}

pub fn dense(inputs: usize, outputs: usize) -> Layer {
    Layer::Dense { inputs, outputs }
}

pub fn norm(channels: usize) -> Layer {
    Layer::Norm {
        channels,
        eps: 1e-3,
    }
}

#[cfg(feature = "extra-layers")]
pub fn clip(min: f32, max: f32) -> Layer {
    Layer::Extra(Extra::Clip { min, max })
}

#[cfg(feature = "extra-layers")]
pub fn prelu(channels: usize) -> Layer {
    Layer::Extra(Extra::PRelu { channels })
}

#[cfg(feature = "extra-layers")]
pub fn avgpool(kernel: usize, stride: usize, padding: usize, include_pad: bool) -> Layer {
    Layer::Extra(Extra::AvgPool2d {
        window: Window {
            kernel,
            stride,
            padding,
        },
        include_pad,
    })
}

#[cfg(feature = "extra-layers")]
pub fn maxpool_padded(kernel: usize, stride: usize, padding: usize) -> Layer {
    Layer::Extra(Extra::MaxPool2d {
        window: Window {
            kernel,
            stride,
            padding,
        },
    })
}

/// A window of its own per axis: kernel, stride, dilation, padding before, padding after (each
/// `[height, width]`).
#[cfg(feature = "extra-layers")]
pub fn window2(k: [u16; 2], s: [u8; 2], d: [u8; 2], pb: [u8; 2], pe: [u8; 2]) -> Window2 {
    Window2 {
        kernel: k,
        stride: s,
        dilation: d,
        pad_begin: pb,
        pad_end: pe,
    }
}

/// The general convolution (see [`window2`]).
#[cfg(feature = "extra-layers")]
pub fn conv_general(cin: u16, cout: u16, groups: u16, window: Window2) -> Layer {
    Layer::Extra(Extra::Conv {
        in_channels: cin,
        out_channels: cout,
        groups,
        window,
    })
}

/// The general pooling (see [`window2`]; dilation ignored).
#[cfg(feature = "extra-layers")]
pub fn pool_general(mode: PoolMode, window: Window2) -> Layer {
    Layer::Extra(Extra::Pool { window, mode })
}

/// A residual addition of value `from` (the input of layer `from`).
#[cfg(feature = "extra-layers")]
pub fn add_from(from: u16) -> Layer {
    Layer::Extra(Extra::Add { from })
}

/// The input and value `from` joined along the channels.
#[cfg(feature = "extra-layers")]
pub fn concat_from(from: u16, from_first: bool) -> Layer {
    Layer::Extra(Extra::Concat { from, from_first })
}

/// A branch starting again from value `from`.
#[cfg(feature = "extra-layers")]
pub fn branch_from(from: u16) -> Layer {
    Layer::Extra(Extra::Branch { from })
}

pub fn maxpool(kernel: usize, stride: usize) -> Layer {
    Layer::MaxPool2d {
        window: Window {
            kernel,
            stride,
            padding: 0,
        },
    }
}

/// The paper's Omniglot CNN: 4 × [conv 3×3 stride 2 pad 1, norm, ReLU], flatten, dense to
/// `ways` classes, on 1×28×28 inputs.
pub fn omniglot(ways: usize, filters: usize) -> Model {
    let mut layers = Vec::new();
    let mut cin = 1;
    for _ in 0..4 {
        layers.extend([conv(cin, filters, 3, 2, 1), norm(filters), Layer::Relu]);
        cin = filters;
    }
    layers.extend([Layer::Flatten, dense(4 * filters, ways)]);
    Model::new(&[1, 28, 28], layers, CROSS_ENTROPY, 1)
}

/// A small CNN with every kind of layer that has parameters: 2 × [conv 3×3 stride 2 pad 1,
/// norm, ReLU], flatten, dense to 3 classes, on 1×8×8 inputs; parameters drawn from `seed`.
pub fn small_cnn(seed: u64, batch: u32) -> Model {
    let mut m = Model::new(
        &[1, 8, 8],
        vec![
            conv(1, 4, 3, 2, 1),
            norm(4),
            Layer::Relu,
            conv(4, 4, 3, 2, 1),
            norm(4),
            Layer::Relu,
            Layer::Flatten,
            dense(16, 3),
        ],
        CROSS_ENTROPY,
        seed,
    );
    m.settings.batch = batch;
    m
}

/// A model on the host: architecture, f32 parameters in blob order, and its settings.
#[derive(Clone, Debug)]
pub struct Model {
    pub input: Vec<u32>,
    pub layers: Vec<Layer>,
    pub params: Vec<f32>,
    pub dtype: DType,
    pub settings: AdaptSettings,
}

/// Loss codes as stored.
pub const MSE: u8 = 0;
pub const CROSS_ENTROPY: u8 = 1;

impl Model {
    /// A model with parameters drawn from `seed`: weights U(±1/sqrt(fan_in)), biases U(±0.5),
    /// norm scale U(0.5, 1.5), shift U(±0.5), mean U(±0.5), variance U(0.5, 2).
    pub fn new(input: &[u32], layers: Vec<Layer>, loss: u8, seed: u64) -> Model {
        let mut m = Model {
            input: input.to_vec(),
            layers,
            params: Vec::new(),
            dtype: DType::F32,
            settings: AdaptSettings {
                loss,
                optimizer: 0,
                lr: 0.01,
                steps: 10,
                batch: 10,
                trainable: 0,
                head_start: 0,
                head_scale: 1.0,
                lr_scale: heapless::Vec::new(),
            },
        };
        m.settings.trainable = m.all_layers();
        let mut rng = Rng::new(seed);
        let shapes = m.shapes();
        for (l, s) in m.layers.iter().zip(&shapes) {
            if let Some(fan_in) = l.fan_in() {
                let bound = 1.0 / (fan_in as f32).sqrt();
                m.params.extend(rng.vec(l.tensor_len(*s, 0), -bound, bound));
                m.params.extend(rng.vec(l.tensor_len(*s, 1), -0.5, 0.5));
                continue;
            }
            match *l {
                Layer::Norm { channels, .. } => {
                    m.params.extend(rng.vec(channels, 0.5, 1.5));
                    m.params.extend(rng.vec(channels, -0.5, 0.5));
                    m.params.extend(rng.vec(channels, -0.5, 0.5));
                    m.params.extend(rng.vec(channels, 0.5, 2.0));
                }
                #[cfg(feature = "extra-layers")]
                Layer::Extra(Extra::PRelu { channels }) => {
                    m.params.extend(rng.vec(channels, -0.3, 0.6))
                }
                _ => {}
            }
        }
        m
    }

    /// Bitmask with every layer set.
    pub fn all_layers(&self) -> anole::LayerMask {
        anole::LayerMask::MAX >> (anole::LayerMask::BITS as usize - self.layers.len())
    }

    /// Per-layer input shapes, then the output shape.
    pub fn shapes(&self) -> Vec<Shape> {
        let mut s = Shape::from_dims(&self.input).expect("test model input shape");
        let mut v = vec![s];
        for l in &self.layers {
            s = l
                .output_shape_after(s, |k| v.get(k).copied())
                .expect("test model layers chain");
            v.push(s);
        }
        v
    }

    pub fn input_len(&self) -> usize {
        self.shapes()[0].len()
    }

    pub fn output_len(&self) -> usize {
        self.shapes().last().map(|s| s.len()).unwrap_or(0)
    }

    /// Element count of every tensor, in blob order.
    pub fn tensor_lens(&self) -> Vec<usize> {
        let shapes = self.shapes();
        let mut v = Vec::new();
        for (l, s) in self.layers.iter().zip(&shapes) {
            for k in 0..l.tensor_count() {
                v.push(l.tensor_len(*s, k));
            }
        }
        v
    }

    /// Offset of each layer's parameters in the flat parameter vector.
    pub fn layer_offsets(&self) -> Vec<usize> {
        let shapes = self.shapes();
        let mut off = 0;
        let mut v = Vec::new();
        for (l, s) in self.layers.iter().zip(&shapes) {
            v.push(off);
            off += l.param_len(*s);
        }
        v
    }

    /// The payload with tensors given as f32 values (encoded to `dtype` while writing).
    pub fn wire(&self) -> Wire<'static, TensorValues<'_>> {
        let mut tensors = heapless::Vec::new();
        let mut off = 0;
        for len in self.tensor_lens() {
            tensors
                .push(TensorValues {
                    dtype: self.dtype,
                    values: &self.params[off..off + len],
                })
                .expect("test model has too many tensors");
            off += len;
        }
        let mut w = Wire {
            magic: MAGIC,
            version: 0,
            input_shape: self.input.iter().copied().collect(),
            layers: self.layers.iter().map(|l| l.to_raw()).collect(),
            tensors,
            adapt: self.settings.clone(),
            provenance: Provenance {
                algorithm: "test",
                task: "unit",
                seed: 7,
                meta_iterations: 0,
            },
        };
        w.version = w.format_version();
        w
    }

    /// The blob bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.wire())
    }
}

/// Encode a payload with the runtime's no_std writer (CRC appended).
pub fn encode<T: serde::Serialize>(wire: &Wire<'_, T>) -> Vec<u8> {
    let mut out = vec![0u8; anole::blob::encoded_len(wire)];
    let n = Blob::encode_wire(wire, &mut out).expect("encode").len();
    out.truncate(n);
    out
}

/// The blob `l` exports, through the no_std writer.
pub fn exported(l: &Learner<'_, '_>) -> Vec<u8> {
    let mut out = vec![0u8; l.export_len()];
    let n = l.export(&mut out).expect("export").len();
    out.truncate(n);
    out
}

/// A payload with raw tensors copied from a parsed blob, for tests that corrupt single fields.
pub fn raw_wire<'a>(blob: &Blob<'a>) -> Wire<'a, RawTensor<'a>> {
    blob.wire.clone()
}

/// The f32 outputs of an f32 slice, widened.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Activations of an f64 reference forward pass.
pub struct Trace {
    /// `acts[i]` is the input of layer `i` (n rows); the last entry is the output.
    pub acts: Vec<Vec<f64>>,
}

/// Independent f64 forward pass of `model` with parameters `p` over `n` rows of `x`. A norm
/// layer whose bit is set in `batch_stats` uses the batch's statistics, otherwise its stored
/// ones.
pub fn reference_forward(
    model: &Model,
    p: &[f64],
    x: &[f64],
    n: usize,
    batch_stats: anole::LayerMask,
) -> Trace {
    let shapes = model.shapes();
    let offs = model.layer_offsets();
    let mut acts = vec![x.to_vec()];
    for (i, layer) in model.layers.iter().enumerate() {
        let (sin, sout) = (shapes[i], shapes[i + 1]);
        let x = acts.last().expect("input");
        let pl = &p[offs[i]..offs[i] + layer.param_len(sin)];
        if let Some(k) = layer.reads() {
            // A residual addition of value k, or a branch starting again from it.
            let v = acts[k].clone();
            let y = match *layer {
                #[cfg(feature = "extra-layers")]
                Layer::Extra(Extra::Concat { from_first, .. }) => {
                    let (il, vl) = (x.len() / n, v.len() / n);
                    let mut y = Vec::new();
                    for s in 0..n {
                        let (xs, vs) = (&x[s * il..(s + 1) * il], &v[s * vl..(s + 1) * vl]);
                        let (a, b) = if from_first { (vs, xs) } else { (xs, vs) };
                        y.extend_from_slice(a);
                        y.extend_from_slice(b);
                    }
                    y
                }
                _ if layer.is_branch() => v,
                _ => x.iter().zip(&v).map(|(a, b)| a + b).collect(),
            };
            acts.push(y);
            continue;
        }
        let y = match *layer {
            Layer::Dense { inputs, outputs } => {
                let mut y = vec![0.0; n * outputs];
                for b in 0..n {
                    for o in 0..outputs {
                        let mut s = pl[inputs * outputs + o];
                        for j in 0..inputs {
                            s += pl[o * inputs + j] * x[b * inputs + j];
                        }
                        y[b * outputs + o] = s;
                    }
                }
                y
            }
            Layer::Conv2d {
                in_channels: ci_n,
                out_channels: co_n,
                window,
            } => {
                let (Shape::Chw(_, h, w), Shape::Chw(_, oh, ow)) = (sin, sout) else {
                    panic!("conv on a flat shape")
                };
                let k = window.kernel as i64;
                let (s, pad) = (window.stride as i64, window.padding as i64);
                let mut y = vec![0.0; n * sout.len()];
                for b in 0..n {
                    for co in 0..co_n {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let mut acc = pl[co_n * ci_n * (k * k) as usize + co];
                                for ci in 0..ci_n {
                                    for ky in 0..k {
                                        for kx in 0..k {
                                            let iy = oy as i64 * s + ky - pad;
                                            let ix = ox as i64 * s + kx - pad;
                                            if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64
                                            {
                                                continue;
                                            }
                                            let wv = pl[(((co * ci_n + ci) as i64 * k + ky) * k
                                                + kx)
                                                as usize];
                                            let xv = x[b * sin.len()
                                                + ci * h * w
                                                + iy as usize * w
                                                + ix as usize];
                                            acc += wv * xv;
                                        }
                                    }
                                }
                                y[b * sout.len() + (co * oh + oy) * ow + ox] = acc;
                            }
                        }
                    }
                }
                y
            }
            Layer::Norm { channels: c, eps } => {
                let sp = sin.len() / c;
                let eps = eps as f64;
                let (gamma, beta, mean, var) =
                    (&pl[..c], &pl[c..2 * c], &pl[2 * c..3 * c], &pl[3 * c..]);
                let mut y = vec![0.0; n * sin.len()];
                for ch in 0..c {
                    let idx = |b: usize, j: usize| b * sin.len() + ch * sp + j;
                    let (m, v) = if batch_stats & (1 << i) != 0 {
                        let cnt = (n * sp) as f64;
                        let m = (0..n)
                            .flat_map(|b| (0..sp).map(move |j| (b, j)))
                            .map(|(b, j)| x[idx(b, j)])
                            .sum::<f64>()
                            / cnt;
                        let v = (0..n)
                            .flat_map(|b| (0..sp).map(move |j| (b, j)))
                            .map(|(b, j)| (x[idx(b, j)] - m).powi(2))
                            .sum::<f64>()
                            / cnt;
                        (m, v)
                    } else {
                        (mean[ch], var[ch])
                    };
                    for b in 0..n {
                        for j in 0..sp {
                            y[idx(b, j)] =
                                gamma[ch] * (x[idx(b, j)] - m) / (v + eps).sqrt() + beta[ch];
                        }
                    }
                }
                y
            }
            Layer::Relu => x.iter().map(|&v| v.max(0.0)).collect(),
            Layer::Tanh => x.iter().map(|&v| v.tanh()).collect(),
            Layer::Flatten => x.clone(),
            #[cfg(feature = "extra-layers")]
            Layer::Extra(e) => extra_reference(e, layer, pl, x, n, sin, sout),
            // Without the feature there are no other kinds.
            #[cfg(not(feature = "extra-layers"))]
            Layer::Extra(e) => match e {},
            Layer::MaxPool2d { window } => {
                let (Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) = (sin, sout) else {
                    panic!("maxpool on a flat shape")
                };
                let (k, s) = (window.kernel, window.stride);
                let mut y = vec![0.0; n * sout.len()];
                for b in 0..n {
                    for ch in 0..c {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let mut m = f64::NEG_INFINITY;
                                for ky in 0..k {
                                    for kx in 0..k {
                                        m = m.max(
                                            x[b * sin.len()
                                                + ch * h * w
                                                + (oy * s + ky) * w
                                                + ox * s
                                                + kx],
                                        );
                                    }
                                }
                                y[b * sout.len() + (ch * oh + oy) * ow + ox] = m;
                            }
                        }
                    }
                }
                y
            }
        };
        acts.push(y);
    }
    Trace { acts }
}

/// f64 reference loss: MSE over all outputs, or softmax cross-entropy mean over rows.
/// The f64 reference of one of the other layer kinds (the `extra-layers` feature).
#[cfg(feature = "extra-layers")]
fn extra_reference(
    e: Extra,
    layer: &Layer,
    pl: &[f64],
    x: &[f64],
    n: usize,
    sin: Shape,
    sout: Shape,
) -> Vec<f64> {
    match e {
        Extra::Add { .. } | Extra::Branch { .. } | Extra::Concat { .. } => {
            unreachable!("read in reference_forward")
        }
        Extra::Sigmoid => x.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
        Extra::Clip { min, max } => x.iter().map(|&v| v.clamp(min as f64, max as f64)).collect(),
        Extra::PRelu { channels } => {
            let sp = sin.len() / channels;
            x.iter()
                .enumerate()
                .map(|(j, &v)| {
                    if v > 0.0 {
                        v
                    } else {
                        pl[(j / sp) % channels] * v
                    }
                })
                .collect()
        }
        Extra::LeakyRelu { alpha } => x
            .iter()
            .map(|&v| if v < 0.0 { alpha as f64 * v } else { v })
            .collect(),
        Extra::HardSigmoid { alpha, beta } => x
            .iter()
            .map(|&v| (alpha as f64 * v + beta as f64).clamp(0.0, 1.0))
            .collect(),
        Extra::HardSwish => x
            .iter()
            .map(|&v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0))
            .collect(),
        Extra::GlobalAvgPool => {
            let Shape::Chw(c, h, w) = sin else {
                panic!("global pooling on a flat shape")
            };
            (0..n * c)
                .map(|p| x[p * h * w..(p + 1) * h * w].iter().sum::<f64>() / (h * w) as f64)
                .collect()
        }
        Extra::Conv {
            in_channels,
            out_channels,
            groups,
            window: win,
        } => {
            let (Shape::Chw(_, h, w), Shape::Chw(_, oh, ow)) = (sin, sout) else {
                panic!("conv on a flat shape")
            };
            let (cg, og) = (
                (in_channels / groups) as usize,
                (out_channels / groups) as usize,
            );
            let [kh, kw] = win.kernel.map(|v| v as i64);
            let wlen = out_channels as usize * cg * (kh * kw) as usize;
            let mut y = vec![0.0; n * sout.len()];
            for b in 0..n {
                for co in 0..out_channels as usize {
                    for oy in 0..oh as i64 {
                        for ox in 0..ow as i64 {
                            let mut acc = pl[wlen + co];
                            for ci in 0..cg {
                                let c = (co / og) * cg + ci;
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let iy = oy * win.stride[0] as i64
                                            + ky * win.dilation[0] as i64
                                            - win.pad_begin[0] as i64;
                                        let ix = ox * win.stride[1] as i64
                                            + kx * win.dilation[1] as i64
                                            - win.pad_begin[1] as i64;
                                        if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                            continue;
                                        }
                                        let wi = ((co * cg + ci) as i64 * kh + ky) * kw + kx;
                                        acc += pl[wi as usize]
                                            * x[b * sin.len()
                                                + c * h * w
                                                + iy as usize * w
                                                + ix as usize];
                                    }
                                }
                            }
                            y[b * sout.len() + (co * oh + oy as usize) * ow + ox as usize] = acc;
                        }
                    }
                }
            }
            y
        }
        Extra::Pool { window: win, mode } => {
            let (Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) = (sin, sout) else {
                panic!("pooling on a flat shape")
            };
            let [kh, kw] = win.kernel.map(|v| v as i64);
            let mut y = vec![0.0; n * sout.len()];
            for p in 0..n * c {
                for oy in 0..oh as i64 {
                    for ox in 0..ow as i64 {
                        let mut vals = Vec::new();
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = oy * win.stride[0] as i64 + ky - win.pad_begin[0] as i64;
                                let ix = ox * win.stride[1] as i64 + kx - win.pad_begin[1] as i64;
                                if iy >= 0 && ix >= 0 && iy < h as i64 && ix < w as i64 {
                                    vals.push(x[p * h * w + iy as usize * w + ix as usize]);
                                }
                            }
                        }
                        y[p * oh * ow + oy as usize * ow + ox as usize] = match mode {
                            PoolMode::AverageIncludePad => {
                                vals.iter().sum::<f64>() / (kh * kw) as f64
                            }
                            PoolMode::Average => vals.iter().sum::<f64>() / vals.len() as f64,
                            PoolMode::Max => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                        };
                    }
                }
            }
            y
        }
        Extra::AvgPool2d { window, .. } | Extra::MaxPool2d { window } => {
            let (Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) = (sin, sout) else {
                panic!("pooling on a flat shape")
            };
            let (k, s, pad) = (
                window.kernel as i64,
                window.stride as i64,
                window.padding as i64,
            );
            let mut y = vec![0.0; n * sout.len()];
            for p in 0..n * c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut vals = Vec::new();
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = oy as i64 * s + ky - pad;
                                let ix = ox as i64 * s + kx - pad;
                                if iy >= 0 && ix >= 0 && iy < h as i64 && ix < w as i64 {
                                    vals.push(x[p * h * w + iy as usize * w + ix as usize]);
                                }
                            }
                        }
                        y[p * oh * ow + oy * ow + ox] = match *layer {
                            Layer::Extra(Extra::AvgPool2d {
                                include_pad: true, ..
                            }) => vals.iter().sum::<f64>() / (k * k) as f64,
                            Layer::Extra(Extra::AvgPool2d { .. }) => {
                                vals.iter().sum::<f64>() / vals.len() as f64
                            }
                            _ => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                        };
                    }
                }
            }
            y
        }
    }
}

pub fn reference_loss(loss: u8, y: &[f64], t: &[f64], n: usize) -> f64 {
    if loss == MSE {
        y.iter().zip(t).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len() as f64
    } else {
        let k = y.len() / n;
        let mut total = 0.0;
        for (row, &label) in y.chunks(k).zip(t) {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            total += lse - row[label as usize];
        }
        total / n as f64
    }
}

/// Random inputs and targets for `n` samples of `model` (class labels for cross-entropy).
pub fn random_batch(model: &Model, n: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let x = rng.vec(n * model.input_len(), -1.0, 1.0);
    let t = if model.settings.loss == MSE {
        rng.vec(n * model.output_len(), -1.0, 1.0)
    } else {
        (0..n)
            .map(|_| rng.below(model.output_len()) as f32)
            .collect()
    };
    (x, t)
}
