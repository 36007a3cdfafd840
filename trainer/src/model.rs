//! Architectures and blobs on the host: build a blob from an architecture and f32 parameters,
//! read a blob file with a clear error, and the reference initialisations.

use anole::blob::{AdaptSettings, Provenance, Wire, MAGIC, MAX_TENSORS};
use anole::layers::Window;
use anole::LayerMask;
use anole::{Blob, DType, Extra, Layer, Shape, SharedBlob, TensorValues};
use anyhow::{anyhow, bail, Context, Result};
use rand::Rng;
use std::path::Path;

/// A network: per-sample input shape and layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    /// `[n]` or `[c, h, w]`.
    pub input_shape: Vec<u32>,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

impl Arch {
    /// The paper's sine regressor: 1 → 64 → 64 → 1 with tanh.
    pub fn sine() -> Arch {
        Arch {
            input_shape: vec![1],
            layers: vec![
                Layer::Dense {
                    inputs: 1,
                    outputs: 64,
                },
                Layer::Tanh,
                Layer::Dense {
                    inputs: 64,
                    outputs: 64,
                },
                Layer::Tanh,
                Layer::Dense {
                    inputs: 64,
                    outputs: 1,
                },
            ],
        }
    }

    /// The paper's Omniglot CNN: 4 × [conv 3×3, `filters`, stride 2, padding 1 → norm → ReLU]
    /// → flatten → dense to `ways` classes, on 1×28×28 inputs.
    pub fn omniglot(ways: usize, filters: usize) -> Arch {
        let mut layers = Vec::new();
        let mut cin = 1;
        for _ in 0..4 {
            layers.push(Layer::Conv2d {
                in_channels: cin,
                out_channels: filters,
                window: Window {
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                },
            });
            layers.push(Layer::Norm {
                channels: filters,
                eps: 1e-3,
            });
            layers.push(Layer::Relu);
            cin = filters;
        }
        layers.push(Layer::Flatten);
        layers.push(Layer::Dense {
            inputs: filters * 4,
            outputs: ways,
        });
        Arch {
            input_shape: vec![1, 28, 28],
            layers,
        }
    }

    /// Per-layer input shapes, then the output shape; errors if the layers do not chain.
    pub fn shapes(&self) -> Result<Vec<Shape>> {
        let mut s = Shape::from_dims(&self.input_shape)
            .ok_or_else(|| anyhow!("bad input shape {:?}", self.input_shape))?;
        let mut out = vec![s];
        for (i, l) in self.layers.iter().enumerate() {
            s = l
                .output_shape_after(s, |k| out.get(k).copied())
                .ok_or_else(|| anyhow!("layer {i} ({}) does not accept shape {s:?}", l.name()))?;
            out.push(s);
        }
        Ok(out)
    }

    /// Element count of every tensor, in blob order.
    pub fn tensor_lens(&self) -> Result<Vec<usize>> {
        let shapes = self.shapes()?;
        let mut v = Vec::new();
        for (l, s) in self.layers.iter().zip(&shapes) {
            for k in 0..l.tensor_count() {
                v.push(l.tensor_len(*s, k));
            }
        }
        Ok(v)
    }

    /// Total parameters.
    pub fn param_count(&self) -> Result<usize> {
        Ok(self.tensor_lens()?.iter().sum())
    }

    /// Bitmask with every layer set (all adapt).
    pub fn all_layers(&self) -> LayerMask {
        LayerMask::MAX
            .checked_shr(LayerMask::BITS.saturating_sub(self.layers.len() as u32))
            .unwrap_or(0)
    }

    /// Bitmask of the last layer with parameters only (head-only adaptation).
    pub fn head_only(&self) -> LayerMask {
        self.layers
            .iter()
            .rposition(|l| l.tensor_count() > 0)
            .map(|i| 1 << i)
            .unwrap_or(0)
    }

    /// PyTorch's default initialisation: weights and biases U(±1/sqrt(fan_in)); norm scale 1,
    /// shift 0, statistics mean 0 / variance 1.
    pub fn init_params(&self, rng: &mut impl Rng) -> Result<Vec<f32>> {
        let shapes = self.shapes()?;
        let mut p = Vec::with_capacity(self.param_count()?);
        for (l, s) in self.layers.iter().zip(&shapes) {
            // Weights and bias U(±1/sqrt(fan_in)).
            if let Some(fan_in) = l.fan_in() {
                let bound = 1.0 / (fan_in as f32).sqrt();
                for k in 0..2 {
                    for _ in 0..l.tensor_len(*s, k) {
                        p.push(rng.random_range(-bound..bound));
                    }
                }
                continue;
            }
            match *l {
                Layer::Norm { channels, .. } => {
                    p.extend(std::iter::repeat_n(1.0, channels));
                    p.extend(std::iter::repeat_n(0.0, channels));
                    p.extend(std::iter::repeat_n(0.0, channels));
                    p.extend(std::iter::repeat_n(1.0, channels));
                }
                // PyTorch's initial slope.
                Layer::Extra(Extra::PRelu { channels }) => {
                    p.extend(std::iter::repeat_n(0.25, channels))
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// The architecture of a parsed blob.
    pub fn of(blob: &Blob<'_>) -> Arch {
        Arch {
            input_shape: blob.wire.input_shape.iter().copied().collect(),
            layers: blob.layers.iter().copied().collect(),
        }
    }
}

/// Storage dtype of a written blob (`--dtype`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DTypeArg {
    /// 32-bit floats.
    F32,
    /// IEEE half precision (half the flash).
    F16,
    /// bfloat16.
    Bf16,
}

impl DTypeArg {
    /// The dtype.
    pub fn dtype(self) -> DType {
        match self {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::Bf16,
        }
    }
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> DType {
        d.dtype()
    }
}

/// Everything needed to write a blob besides the parameters.
#[derive(Clone, Debug)]
pub struct BlobMeta {
    /// Storage dtype of every tensor.
    pub dtype: DType,
    /// Recommended adaptation settings.
    pub settings: AdaptSettings,
    /// Algorithm name for provenance.
    pub algorithm: String,
    /// Task family for provenance.
    pub task: String,
    /// Seed.
    pub seed: u64,
    /// Meta-iterations run.
    pub meta_iterations: u64,
}

/// Encode `params` for `arch` as a blob and check that it parses back.
pub fn encode_blob(arch: &Arch, params: &[f32], meta: &BlobMeta) -> Result<Vec<u8>> {
    let lens = arch.tensor_lens()?;
    if lens.len() > MAX_TENSORS {
        bail!("{} tensors exceed the format's {MAX_TENSORS}", lens.len());
    }
    if params.len() != lens.iter().sum::<usize>() {
        bail!(
            "{} parameters given, architecture has {}",
            params.len(),
            lens.iter().sum::<usize>()
        );
    }
    let mut tensors = heapless::Vec::<TensorValues<'_>, MAX_TENSORS>::new();
    let mut off = 0;
    for len in lens {
        let _ = tensors.push(TensorValues {
            dtype: meta.dtype,
            values: &params[off..off + len],
        });
        off += len;
    }
    let mut wire = Wire {
        magic: MAGIC,
        version: 0,
        input_shape: arch.input_shape.iter().copied().collect(),
        layers: arch.layers.iter().map(|l| l.to_raw()).collect(),
        tensors,
        adapt: meta.settings.clone(),
        provenance: Provenance {
            algorithm: &meta.algorithm,
            task: &meta.task,
            seed: meta.seed,
            meta_iterations: meta.meta_iterations,
        },
    };
    wire.version = wire.format_version();
    let bytes = anole::blob::encode_to_vec(&wire);
    Blob::parse(&bytes).context("internal: written blob does not parse")?;
    Ok(bytes)
}

/// Read a blob file and parse it, for the host's learners; the error names the file.
pub fn read_blob(path: &Path) -> Result<SharedBlob> {
    let bytes = crate::files::read(path)?;
    SharedBlob::parse(bytes).with_context(|| format!("{}: not a valid anole blob", path.display()))
}

/// Read a blob file; an ONNX file gets a hint to convert it first.
pub fn read_model(path: &Path) -> Result<SharedBlob> {
    read_blob(path).map_err(|e| {
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
        {
            anyhow!(
                "{e:#} (an ONNX file: convert it with `anole import {} --out model.postcard`)",
                path.display()
            )
        } else {
            e
        }
    })
}

/// Parse blob bytes.
pub fn parse(bytes: &[u8]) -> Result<Blob<'_>> {
    Ok(Blob::parse(bytes)?)
}

/// Parse blob bytes into a blob the host's learners ([`anole::OwnedLearner`]) share.
pub fn shared(bytes: impl Into<Box<[u8]>>) -> Result<SharedBlob> {
    Ok(SharedBlob::parse(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anole::{OwnedLearner, SliceSamples};
    use rand::SeedableRng;

    fn sine_blob(seed: u64) -> Vec<u8> {
        let arch = Arch::sine();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let params = arch.init_params(&mut rng).unwrap();
        let meta = BlobMeta {
            dtype: DType::F32,
            settings: AdaptSettings {
                loss: 0,
                optimizer: 0,
                lr: 0.02,
                steps: 32,
                batch: 10,
                trainable: arch.all_layers(),
                head_start: 0,
                head_scale: 1.0,
                lr_scale: Default::default(),
            },
            algorithm: "random".into(),
            task: "sine".into(),
            seed,
            meta_iterations: 0,
        };
        encode_blob(&arch, &params, &meta).unwrap()
    }

    #[test]
    fn sine_adapts_and_roundtrips() {
        let bytes = sine_blob(1);
        let mut l = OwnedLearner::new(&shared(bytes.clone()).unwrap()).unwrap();
        assert_eq!(l.export_vec(), bytes);
        let xs: Vec<f32> = (0..10).map(|i| -5.0 + i as f32).collect();
        let ys: Vec<f32> = xs.iter().map(|x| 2.0 * (x + 0.5f32).sin()).collect();
        let s = SliceSamples::new(&xs, &ys, 1, 1).unwrap();
        let before = l.loss(&s).unwrap();
        let r = l.adapt(&s, 200).unwrap();
        let after = l.loss(&s).unwrap();
        assert!(after < before * 0.5, "{before} -> {after} ({r:?})");
        // Finite-difference check of the gradient on the first parameters.
        l.reset();
        let p0 = l.params().to_vec();
        l.gradient(&xs, &ys).unwrap();
        let mut g = vec![0.0; p0.len()];
        l.gradient_into(&mut g).unwrap();
        for i in [0usize, 5, 64, 100, 2000, 4300, 4352] {
            let mut p = p0.clone();
            let h = 1e-2;
            p[i] += h;
            l.set_params(&p).unwrap();
            let lp = l.loss(&s).unwrap();
            p[i] -= 2.0 * h;
            l.set_params(&p).unwrap();
            let lm = l.loss(&s).unwrap();
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-3 + 1e-2 * fd.abs(),
                "param {i}: fd {fd} vs {}",
                g[i]
            );
        }
    }
}
