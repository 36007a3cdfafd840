//! Shared helpers of the end-to-end tests (in `tests/`): reference blobs, adapted blobs,
//! random inputs, and running an ONNX model in tract.

use anole::blob::AdaptSettings;
use anole::{Blob, DType, Learner, SliceSamples};
use anole_trainer::model::{encode_blob, Arch, BlobMeta};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;

/// A seeded random number generator.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A blob of `arch` with seeded PyTorch-style parameters and the given settings.
pub fn blob_bytes(arch: &Arch, dtype: DType, loss: u8, lr: f32, batch: u32, seed: u64) -> Vec<u8> {
    let params = arch
        .init_params(&mut rng(seed))
        .expect("architecture chains");
    let meta = BlobMeta {
        dtype,
        settings: AdaptSettings {
            loss,
            optimizer: 0,
            lr,
            steps: 32,
            batch,
            trainable: arch.all_layers(),
            head_start: 0,
            head_scale: 1.0,
            lr_scale: Default::default(),
        },
        algorithm: "random".into(),
        task: "end-to-end".into(),
        seed,
        meta_iterations: 0,
    };
    encode_blob(arch, &params, &meta).expect("blob encodes")
}

/// `n` uniform values in `[lo, hi)`.
pub fn uniform(rng: &mut impl Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Adapt `bytes` on `inputs`/`targets` for `steps` steps with its own settings and return the
/// exported adapted blob.
pub fn adapted(bytes: &[u8], inputs: &[f32], targets: &[f32], steps: u32) -> Vec<u8> {
    let blob = Blob::parse(bytes).expect("blob parses");
    let mut arena = vec![
        0.0;
        blob.arena_len(blob.settings().batch as usize)
            .expect("plan")
    ];
    let mut l = Learner::new(&blob, &mut arena).expect("learner");
    let s =
        SliceSamples::new(inputs, targets, blob.input_len(), blob.target_len()).expect("samples");
    l.adapt(&s, steps).expect("adaptation");
    l.export_vec()
}

/// The runtime's predictions for `inputs` (any number of rows).
pub fn runtime_predict(bytes: &[u8], inputs: &[f32]) -> Vec<f32> {
    let blob = Blob::parse(bytes).expect("blob parses");
    let mut arena = vec![
        0.0;
        blob.arena_len(blob.settings().batch as usize)
            .expect("plan")
    ];
    let mut l = Learner::new(&blob, &mut arena).expect("learner");
    let mut out = vec![0.0; inputs.len() / blob.input_len() * blob.output_len()];
    l.predict(inputs, &mut out).expect("prediction");
    out
}

/// An ONNX model loaded, optimized and made runnable by tract, with its batch left symbolic.
pub struct TractModel(std::sync::Arc<TypedRunnableModel>);

impl TractModel {
    /// Load ONNX bytes.
    pub fn load(onnx: &[u8]) -> Result<TractModel> {
        let m = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])?
            .into_optimized()?
            .into_runnable()?;
        Ok(TractModel(m))
    }

    /// Run on `inputs` of shape `shape` (batch first); returns the output values.
    pub fn run(&self, shape: &[usize], inputs: &[f32]) -> Result<Vec<f32>> {
        let t = Tensor::from_shape(shape, inputs)?;
        let out = self.0.run(tvec!(t.into_tvalue()))?;
        Ok(out[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect())
    }
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A small CNN classifier on `[2, 8, 8]` inputs with every activation kind beyond ReLU and
/// tanh: PReLU per channel and per value, ReLU6 (`Clip(0, 6)`), sigmoid, and a clip with an
/// infinite lower bound.
pub fn activations_arch() -> Arch {
    use anole::layers::Window;
    use anole::{Extra, Layer};
    Arch {
        input_shape: vec![2, 8, 8],
        layers: vec![
            Layer::Conv2d {
                in_channels: 2,
                out_channels: 4,
                window: Window {
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
            },
            Layer::Extra(Extra::PRelu { channels: 4 }),
            Layer::Extra(Extra::Clip { min: 0.0, max: 6.0 }),
            Layer::MaxPool2d {
                window: Window {
                    kernel: 2,
                    stride: 2,
                    padding: 0,
                },
            },
            Layer::Flatten,
            Layer::Dense {
                inputs: 64,
                outputs: 10,
            },
            Layer::Extra(Extra::Sigmoid),
            Layer::Dense {
                inputs: 10,
                outputs: 6,
            },
            Layer::Extra(Extra::PRelu { channels: 6 }),
            Layer::Extra(Extra::Clip {
                min: f32::NEG_INFINITY,
                max: 1.5,
            }),
            Layer::Dense {
                inputs: 6,
                outputs: 3,
            },
        ],
    }
}

/// A small CNN classifier on `[2, 8, 8]` inputs with the pooling kinds and the other
/// activations: leaky ReLU, average pooling with and without the padding in the divisor,
/// hard swish, padded max pooling, hard sigmoid and global average pooling.
pub fn pooling_arch() -> Arch {
    use anole::layers::Window;
    use anole::{Extra, Layer};
    let win = |kernel, stride, padding| Window {
        kernel,
        stride,
        padding,
    };
    Arch {
        input_shape: vec![2, 8, 8],
        layers: vec![
            Layer::Conv2d {
                in_channels: 2,
                out_channels: 4,
                window: win(3, 1, 1),
            },
            Layer::Extra(Extra::LeakyRelu { alpha: 0.1 }),
            Layer::Extra(Extra::AvgPool2d {
                window: win(3, 2, 1),
                include_pad: false,
            }),
            Layer::Extra(Extra::HardSwish),
            Layer::Extra(Extra::MaxPool2d {
                window: win(3, 1, 1),
            }),
            Layer::Extra(Extra::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }),
            Layer::Extra(Extra::AvgPool2d {
                window: win(2, 2, 0),
                include_pad: true,
            }),
            Layer::Extra(Extra::GlobalAvgPool),
            Layer::Flatten,
            Layer::Dense {
                inputs: 4,
                outputs: 3,
            },
        ],
    }
}
