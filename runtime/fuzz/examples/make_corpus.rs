//! Writes the seed corpus kept in `corpus/<target>/`: a few small valid blobs (every dtype,
//! every layer kind, both losses, both optimizers, a version-2 blob whose head starts from
//! prototypes, a version-3 one whose prototype start is scaled, a 16 → 16 convolution that takes the host's
//! FMA kernels) and edge cases for `blob_parse`, well-formed and hostile inputs for
//! `learner_samples`, and layers for every path of `conv_paths` with raw sizes that wrap. Run
//! from `runtime/fuzz`: `cargo run --example make_corpus`.

use anole::blob::{
    encode_to_vec, AdaptSettings, Provenance, Wire, FORMAT_VERSION, FORMAT_VERSION_1,
    FORMAT_VERSION_2, MAGIC,
};
use anole::layers::Window;
use anole::{DType, Layer, Shape, TensorValues};
use std::fs;
use std::path::Path;

fn blob(
    input: &[u32],
    layers: &[Layer],
    loss: u8,
    optimizer: u8,
    dtype: DType,
    version: u16,
    (head_start, head_scale): (u8, f32),
) -> Vec<u8> {
    let mut shape = Shape::from_dims(input).expect("input shape");
    let mut lens = Vec::new();
    for l in layers {
        for k in 0..l.tensor_count() {
            lens.push(l.tensor_len(shape, k));
        }
        shape = l.output_shape(shape).expect("layers chain");
    }
    let params: Vec<f32> = (0..lens.iter().sum::<usize>())
        .map(|i| 0.3 * ((i as f32) * 1.3).cos() + 0.6)
        .collect();
    let mut tensors = heapless::Vec::new();
    let mut off = 0;
    for len in &lens {
        let _ = tensors.push(TensorValues {
            dtype,
            values: &params[off..off + len],
        });
        off += len;
    }
    let wire = Wire {
        magic: MAGIC,
        version,
        input_shape: input.iter().copied().collect(),
        layers: layers.iter().map(|l| l.to_raw()).collect(),
        tensors,
        adapt: AdaptSettings {
            loss,
            optimizer,
            lr: 0.05,
            steps: 3,
            batch: 2,
            trainable: anole::LayerMask::MAX >> (anole::LayerMask::BITS as usize - layers.len()),
            head_start,
            head_scale,
            lr_scale: if lens.len() == 4 {
                [1.0, 0.5, 1.0, 2.0].into_iter().collect()
            } else {
                heapless::Vec::new()
            },
        },
        provenance: Provenance {
            algorithm: "reptile",
            task: "seed",
            seed: 1,
            meta_iterations: 10,
        },
    };
    encode_to_vec(&wire)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("corpus file");
}

fn learner_input(model: u8, steps: u8, lr: f32, batch: u8, mask: u8, values: &[f32]) -> Vec<u8> {
    let mut v = vec![model, steps];
    v.extend_from_slice(&lr.to_le_bytes());
    v.extend_from_slice(&[batch, mask]);
    for x in values {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn main() {
    let w = |kernel, stride, padding| Window {
        kernel,
        stride,
        padding,
    };
    let mlp = [
        Layer::Dense {
            inputs: 3,
            outputs: 4,
        },
        Layer::Tanh,
        Layer::Relu,
        Layer::Dense {
            inputs: 4,
            outputs: 2,
        },
    ];
    let cnn = [
        Layer::Conv2d {
            in_channels: 1,
            out_channels: 2,
            window: w(3, 2, 1),
        },
        Layer::Norm {
            channels: 2,
            eps: 1e-3,
        },
        Layer::Relu,
        Layer::MaxPool2d { window: w(2, 1, 0) },
        Layer::Flatten,
        Layer::Dense {
            inputs: 8,
            outputs: 3,
        },
    ];
    // 16 → 16 channels, 3×3 over 4 × 4: the host runs it through its FMA kernels.
    let cnn16 = [
        Layer::Conv2d {
            in_channels: 16,
            out_channels: 16,
            window: w(3, 1, 1),
        },
        Layer::Relu,
        Layer::Flatten,
        Layer::Dense {
            inputs: 256,
            outputs: 3,
        },
    ];
    let dir = Path::new("corpus/blob_parse");
    write(
        dir,
        "cnn16_f32_ce",
        &blob(&[16, 4, 4], &cnn16, 1, 0, DType::F32, FORMAT_VERSION_1, (0, 1.0)),
    );
    write(
        dir,
        "mlp_f32",
        &blob(&[3], &mlp, 0, 0, DType::F32, FORMAT_VERSION_1, (0, 1.0)),
    );
    write(
        dir,
        "mlp_f16_adam",
        &blob(&[3], &mlp, 0, 1, DType::F16, FORMAT_VERSION_1, (0, 1.0)),
    );
    write(
        dir,
        "mlp_bf16_ce",
        &blob(&[3], &mlp, 1, 0, DType::Bf16, FORMAT_VERSION_1, (0, 1.0)),
    );
    write(
        dir,
        "cnn_f32_ce",
        &blob(&[1, 5, 5], &cnn, 1, 0, DType::F32, FORMAT_VERSION_1, (0, 1.0)),
    );
    write(
        dir,
        "cnn_f16",
        &blob(&[1, 5, 5], &cnn, 0, 1, DType::F16, FORMAT_VERSION_1, (0, 1.0)),
    );
    write(
        dir,
        "version_4",
        &blob(&[3], &mlp, 0, 0, DType::F32, FORMAT_VERSION + 1, (0, 1.0)),
    );
    write(
        dir,
        "mlp_f32_ce_prototypes",
        &blob(&[3], &mlp, 1, 0, DType::F32, FORMAT_VERSION_2, (1, 1.0)),
    );
    write(
        dir,
        "mlp_f32_ce_prototypes_scaled",
        &blob(&[3], &mlp, 1, 0, DType::F32, FORMAT_VERSION, (1, 0.25)),
    );
    let good = blob(&[3], &mlp, 0, 0, DType::F32, FORMAT_VERSION_1, (0, 1.0));
    write(dir, "truncated", &good[..good.len() / 2]);
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    write(dir, "crc_mismatch", &flipped);
    write(dir, "magic_only", b"ANOL\x01");
    write(dir, "empty", b"");

    // conv_paths: [mode, cin, cout, h, w, kernel, stride, padding, n, seed × 4] (see the
    // target's layout), and raw sizes after 0xC0.
    let dir = Path::new("corpus/conv_paths");
    for (name, bytes) in [
        ("fma_16_16_n2", &[0, 2, 2, 4, 4, 2, 0, 1, 2, 1, 2, 3, 4][..]),
        (
            "fma_32_48_stride2",
            &[0, 6, 10, 6, 5, 2, 1, 1, 3, 9, 8, 7, 6],
        ),
        (
            "fma_48_48_k5_p7",
            &[0, 10, 10, 11, 11, 4, 2, 7, 1, 5, 5, 5, 5],
        ),
        ("fma_16_16_n0", &[0, 2, 2, 4, 4, 2, 0, 1, 0, 1, 2, 3, 4]),
        ("gemm_15_17", &[0, 1, 3, 8, 8, 2, 0, 1, 2, 3, 1, 4, 1]),
        ("im2col_1_16", &[0, 0, 2, 11, 11, 2, 1, 1, 3, 2, 7, 1, 8]),
        (
            "forward_only_32_32",
            &[3, 6, 6, 9, 9, 2, 1, 2, 5, 6, 6, 6, 6],
        ),
        // cin = 2^60 + 16: 16·cin wraps to 256.
        (
            "raw_wrapping_cin",
            &[
                0xC0, 2, 60, 0, 4, 0, 4, 0, 16, 0, 4, 0, 4, 0, 1, 0, 1, 0, 0, 0, 1,
            ],
        ),
        (
            "raw_valid_16_16",
            &[
                0xC0, 0, 16, 0, 4, 0, 4, 0, 16, 0, 4, 0, 4, 0, 1, 0, 1, 0, 0, 0, 1,
            ],
        ),
        (
            "raw_batch_max",
            &[
                0xC0, 0, 16, 0, 4, 0, 4, 0, 16, 0, 4, 0, 4, 0, 1, 0, 1, 0, 0, 3, 0,
            ],
        ),
        (
            "raw_padding_2_63",
            &[
                0xC0, 0, 16, 0, 4, 0, 4, 0, 16, 0, 4, 0, 4, 0, 1, 0, 1, 1, 63, 0, 1,
            ],
        ),
    ] {
        write(dir, name, bytes);
    }

    let dir = Path::new("corpus/learner_samples");
    let mlp_rows: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
    write(
        dir,
        "mlp_sgd",
        &learner_input(0, 5, 0.05, 3, 0xFF, &mlp_rows),
    );
    write(
        dir,
        "mlp_adam_head",
        &learner_input(2, 9, 0.01, 1, 0x08, &mlp_rows),
    );
    let mut cnn_rows = Vec::new();
    for s in 0..3 {
        cnn_rows.extend((0..16).map(|i| ((i * (s + 1)) % 5) as f32 * 0.25));
        cnn_rows.push(s as f32);
    }
    write(
        dir,
        "cnn_sgd",
        &learner_input(1, 4, 0.1, 2, 0xFF, &cnn_rows),
    );
    write(
        dir,
        "cnn_adam",
        &learner_input(3, 15, 0.001, 8, 0x21, &cnn_rows),
    );
    let mut bad_label = cnn_rows.clone();
    bad_label[16] = 7.5;
    write(
        dir,
        "cnn_bad_label",
        &learner_input(1, 2, 0.1, 2, 0xFF, &bad_label),
    );
    let mut nan = mlp_rows.clone();
    nan[4] = f32::NAN;
    write(
        dir,
        "mlp_nan_target",
        &learner_input(0, 3, 0.05, 4, 0xFF, &nan),
    );
    write(
        dir,
        "mlp_lr_1e30",
        &learner_input(0, 15, 1e30, 4, 0xFF, &mlp_rows),
    );
    write(
        dir,
        "cnn_lr_1e30",
        &learner_input(1, 1, 1e30, 4, 0xFF, &cnn_rows),
    );
    write(
        dir,
        "mlp_lr_inf",
        &learner_input(0, 3, f32::INFINITY, 4, 0xFF, &mlp_rows),
    );
    write(
        dir,
        "mlp_ragged",
        &learner_input(0, 3, 0.05, 4, 0xFF, &mlp_rows[..7]),
    );
}
