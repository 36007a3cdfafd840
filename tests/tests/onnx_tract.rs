//! The exported ONNX computes what the device computes: tract's outputs equal
//! `Learner::predict` within 1e-5 on random inputs, for initializations and adapted models,
//! for the sine MLP and the Omniglot CNN (norm statistics refreshed by adaptation), at several
//! batch sizes through the one symbolic batch dimension.

use anole::{Blob, DType, Layer};
use anole_tests::{adapted, blob_bytes, max_abs_diff, rng, runtime_predict, uniform, TractModel};
use anole_trainer::export::onnx::onnx_bytes;
use anole_trainer::model::Arch;

/// Tolerance of the comparison.
const TOL: f32 = 1e-5;

/// Compare tract and the runtime on `batches` random batches; returns the largest difference.
fn compare(bytes: &[u8], batches: &[usize], lo: f32, hi: f32, seed: u64) -> f32 {
    let blob = Blob::parse(bytes).unwrap();
    let model = TractModel::load(&onnx_bytes(&blob).unwrap()).unwrap();
    let dims: Vec<usize> = blob.wire.input_shape.iter().map(|&d| d as usize).collect();
    let mut r = rng(seed);
    let mut worst = 0.0f32;
    for &n in batches {
        let x = uniform(&mut r, n * blob.input_len(), lo, hi);
        let mut shape = vec![n];
        shape.extend(&dims);
        let got = model.run(&shape, &x).unwrap();
        let want = runtime_predict(bytes, &x);
        let d = max_abs_diff(&got, &want);
        assert!(d <= TOL, "batch {n}: tract differs from the runtime by {d}");
        worst = worst.max(d);
    }
    worst
}

fn sine_support(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let x = uniform(&mut r, 10, -5.0, 5.0);
    let y = x.iter().map(|v| 2.5 * (v + 0.7).sin()).collect();
    (x, y)
}

#[test]
fn sine_initialization_and_adapted_model() {
    let init = blob_bytes(&Arch::sine(), DType::F32, 0, 0.02, 10, 1);
    let d0 = compare(&init, &[1, 7, 100], -5.0, 5.0, 10);
    let (x, y) = sine_support(2);
    let adapted = adapted(&init, &x, &y, 32);
    assert_ne!(adapted, init);
    let d1 = compare(&adapted, &[1, 10, 33], -5.0, 5.0, 11);
    println!("sine: max |tract - runtime| init {d0:e}, adapted {d1:e}");
}

#[test]
fn half_precision_blobs_export_their_decoded_values() {
    for dtype in [DType::F16, DType::Bf16] {
        let init = blob_bytes(&Arch::sine(), dtype, 0, 0.02, 10, 3);
        let (x, y) = sine_support(4);
        let adapted = adapted(&init, &x, &y, 8);
        compare(&init, &[5], -5.0, 5.0, 12);
        compare(&adapted, &[5], -5.0, 5.0, 13);
    }
}

fn omniglot_support(ways: usize, shots: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let x = uniform(&mut r, ways * shots * 784, 0.0, 1.0);
    let y = (0..ways * shots).map(|i| (i % ways) as f32).collect();
    (x, y)
}

#[test]
fn omniglot_cnn_with_refreshed_norm_statistics() {
    let init = blob_bytes(&Arch::omniglot(5, 64), DType::F32, 1, 0.001, 5, 5);
    let d0 = compare(&init, &[1, 3], 0.0, 1.0, 20);
    let (x, y) = omniglot_support(5, 1, 6);
    let adapted = adapted(&init, &x, &y, 5);
    // Adaptation refreshed the stored statistics away from the initial mean 0 / variance 1.
    let b = Blob::parse(&adapted).unwrap();
    let mut mean = vec![0.0; 64];
    b.read_tensor(4, &mut mean);
    assert!(
        mean.iter().any(|m| m.abs() > 1e-3),
        "norm statistics were not refreshed"
    );
    let d1 = compare(&adapted, &[1, 3], 0.0, 1.0, 21);
    println!("omniglot 5-way, 64 filters: max |tract - runtime| init {d0:e}, adapted {d1:e}");
}

#[test]
fn maxpool_and_norm_on_vectors() {
    use anole::layers::Window;
    let arch = Arch {
        input_shape: vec![2, 9, 9],
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
            Layer::Relu,
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
                outputs: 12,
            },
            Layer::Norm {
                channels: 12,
                eps: 1e-3,
            },
            Layer::Tanh,
            Layer::Dense {
                inputs: 12,
                outputs: 3,
            },
        ],
    };
    let init = blob_bytes(&arch, DType::F32, 1, 0.05, 6, 7);
    let mut r = rng(8);
    let x = uniform(&mut r, 6 * 162, -1.0, 1.0);
    let y: Vec<f32> = (0..6).map(|i| (i % 3) as f32).collect();
    let adapted = adapted(&init, &x, &y, 10);
    compare(&init, &[1, 4], -1.0, 1.0, 30);
    compare(&adapted, &[1, 4], -1.0, 1.0, 31);
}

#[test]
fn sigmoid_clip_and_prelu() {
    let arch = anole_tests::activations_arch();
    let init = blob_bytes(&arch, DType::F32, 1, 0.05, 6, 12);
    let mut r = rng(13);
    let x = uniform(&mut r, 6 * 128, -1.0, 1.0);
    let y: Vec<f32> = (0..6).map(|i| (i % 3) as f32).collect();
    let adapted = adapted(&init, &x, &y, 10);
    // Adaptation moved the second PReLU's slopes (tensor 7) away from their initial 0.25 (the
    // first one's negative outputs are clipped to 0 by the ReLU6 after it, so its slopes get
    // no gradient).
    let b = Blob::parse(&adapted).unwrap();
    let mut slopes = vec![0.0; 6];
    b.read_tensor(7, &mut slopes);
    assert!(
        slopes.iter().any(|s| (s - 0.25).abs() > 1e-4),
        "slopes did not adapt: {slopes:?}"
    );
    compare(&init, &[1, 4], -1.0, 1.0, 32);
    compare(&adapted, &[1, 4], -1.0, 1.0, 33);
}

#[test]
fn pooling_and_hard_activations() {
    let arch = anole_tests::pooling_arch();
    let init = blob_bytes(&arch, DType::F32, 1, 0.05, 6, 14);
    let mut r = rng(15);
    let x = uniform(&mut r, 6 * 128, -1.0, 1.0);
    let y: Vec<f32> = (0..6).map(|i| (i % 3) as f32).collect();
    let adapted = adapted(&init, &x, &y, 10);
    compare(&init, &[1, 4], -3.0, 3.0, 34);
    compare(&adapted, &[1, 4], -3.0, 3.0, 35);
}
