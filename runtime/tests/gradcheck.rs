//! Finite-difference gradient checks of every layer kind and both losses against an
//! independent f64 reference: the runtime's analytical gradient (`Learner::gradient` +
//! `gradient_into`, f32) must match central differences of the f64 reference loss.
//!
//! Every network starts with a trainable layer, so the gradient with respect to the input of
//! each later layer (dense, conv, norm in both modes, ReLU, tanh, max pooling, flatten) is
//! checked through the parameters of that first layer.

mod common;

#[cfg(feature = "extra-layers")]
use anole::Extra;
use anole::{Blob, Layer, Learner, Options};
use common::*;

/// Relative step of the f64 central differences (truncation error ~h², rounding ~1e-16/h).
const H: f64 = 1e-6;
/// Per-parameter tolerance: `|g - fd| <= ATOL_REL * max|fd| + RTOL * |fd|`.
const ATOL_REL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

struct Case {
    name: &'static str,
    model: Model,
    batch: usize,
    trainable: anole::LayerMask,
}

fn case(
    name: &'static str,
    input: &[u32],
    layers: Vec<Layer>,
    loss: u8,
    batch: usize,
    seed: u64,
) -> Case {
    let model = Model::new(input, layers, loss, seed);
    let trainable = model.all_layers();
    Case {
        name,
        model,
        batch,
        trainable,
    }
}

/// Run the check; returns (max abs error, max |fd|) for reporting.
fn check(c: &Case) -> (f64, f64) {
    let m = &c.model;
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap_or_else(|e| panic!("{}: blob: {e}", c.name));
    let opts = Options {
        batch: c.batch,
        trainable: c.trainable,
        lr: 0.0,
    };
    let mut arena = vec![
        0.0f32;
        anole::Plan::new(&blob, c.batch, c.trainable)
            .unwrap()
            .arena_len()
    ];
    let mut learner = Learner::with_options(&blob, &mut arena, opts).unwrap();
    let mut rng = Rng::new(0xC0FFEE ^ c.batch as u64);
    let (x, t) = random_batch(m, c.batch, &mut rng);
    let loss32 = learner
        .gradient(&x, &t)
        .unwrap_or_else(|e| panic!("{}: gradient: {e}", c.name));
    let mut g = vec![0.0f32; m.params.len()];
    learner.gradient_into(&mut g).unwrap();

    // Which norm layers use batch statistics: the trainable ones (the learner's scheme).
    let batch_stats = learner.plan().trainable;
    let p0 = widen(learner.params());
    assert_eq!(
        p0,
        widen(&m.params),
        "{}: loaded parameters differ from the blob",
        c.name
    );
    let (x64, t64) = (widen(&x), widen(&t));
    let loss_at = |p: &[f64]| {
        let tr = reference_forward(m, p, &x64, c.batch, batch_stats);
        reference_loss(m.settings.loss, tr.acts.last().unwrap(), &t64, c.batch)
    };
    let loss64 = loss_at(&p0);
    assert!(
        (loss32 as f64 - loss64).abs() <= 1e-5 * (1.0 + loss64.abs()),
        "{}: loss f32 {loss32} vs f64 reference {loss64}",
        c.name
    );

    // Parameter ranges of trainable and frozen layers.
    let shapes = m.shapes();
    let offs = m.layer_offsets();
    let mut trained = vec![false; m.params.len()];
    for (i, l) in m.layers.iter().enumerate() {
        if c.trainable & (1 << i) != 0 {
            trained[offs[i]..offs[i] + l.param_len(shapes[i])].fill(true);
        }
    }
    let mut fd = vec![0.0f64; m.params.len()];
    let mut p = p0.clone();
    for j in 0..p.len() {
        if !trained[j] {
            assert_eq!(
                g[j], 0.0,
                "{}: frozen parameter {j} has gradient {}",
                c.name, g[j]
            );
            continue;
        }
        let h = H * p0[j].abs().max(1.0);
        p[j] = p0[j] + h;
        let lp = loss_at(&p);
        p[j] = p0[j] - h;
        let lm = loss_at(&p);
        p[j] = p0[j];
        fd[j] = (lp - lm) / (2.0 * h);
    }
    let scale = fd.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(
        scale > 1e-4,
        "{}: gradient is vanishingly small ({scale}); the check would be vacuous",
        c.name
    );
    let mut worst = 0.0f64;
    for j in 0..p.len() {
        let err = (g[j] as f64 - fd[j]).abs();
        worst = worst.max(err);
        assert!(
            err <= ATOL_REL * scale + RTOL * fd[j].abs(),
            "{}: parameter {j} (layer {}): analytical {} vs finite difference {} (max |fd| {scale})",
            c.name,
            offs.iter().rposition(|&o| o <= j).unwrap_or(0),
            g[j],
            fd[j]
        );
    }
    // Every trainable weight tensor must carry gradient, else a layer could be silently skipped.
    let mut off = 0;
    for (i, (l, s)) in m.layers.iter().zip(&shapes).enumerate() {
        if c.trainable & (1 << i) != 0 && l.tensor_count() > 0 {
            let len = l.tensor_len(*s, 0);
            let norm = g[off..off + len]
                .iter()
                .map(|v| v.abs())
                .fold(0.0, f32::max);
            assert!(
                norm > 0.0,
                "{}: layer {i} ({}) got an all-zero gradient",
                c.name,
                l.name()
            );
        }
        off += l.param_len(*s);
    }
    println!(
        "{:<28} loss {loss64:>9.5}  max|fd| {scale:.3e}  max err {worst:.2e}",
        c.name
    );
    (worst, scale)
}

#[test]
fn dense_tanh_relu_mse() {
    check(&case(
        "dense+tanh+relu/mse",
        &[3],
        vec![
            dense(3, 6),
            Layer::Tanh,
            dense(6, 5),
            Layer::Relu,
            dense(5, 2),
        ],
        MSE,
        4,
        1,
    ));
}

#[test]
fn dense_relu_then_tanh_cross_entropy() {
    // ReLU followed by tanh in place: the composed derivative (1 - y²)[y > 0].
    check(&case(
        "dense+relu·tanh/ce",
        &[4],
        vec![dense(4, 6), Layer::Relu, Layer::Tanh, dense(6, 3)],
        CROSS_ENTROPY,
        5,
        2,
    ));
}

#[test]
fn dense_tanh_then_relu_output_activation_mse() {
    // tanh followed by ReLU, and an activation on the model output.
    check(&case(
        "dense+tanh·relu, out tanh/mse",
        &[3],
        vec![
            dense(3, 5),
            Layer::Tanh,
            Layer::Relu,
            dense(5, 3),
            Layer::Tanh,
        ],
        MSE,
        3,
        3,
    ));
}

#[test]
fn cross_entropy_batch_of_one() {
    check(&case(
        "dense/ce batch 1",
        &[4],
        vec![dense(4, 5)],
        CROSS_ENTROPY,
        1,
        4,
    ));
}

#[test]
fn conv_stride1_padding0_and_padding1() {
    check(&case(
        "conv s1p0 + s1p1/ce",
        &[2, 5, 5],
        vec![
            conv(2, 3, 3, 1, 0), // 3×3×3
            Layer::Relu,
            conv(3, 2, 2, 1, 1), // 2×4×4
            Layer::Tanh,
            Layer::Flatten,
            dense(32, 3),
        ],
        CROSS_ENTROPY,
        3,
        5,
    ));
}

#[test]
fn conv_stride2_padding1_and_padding0() {
    check(&case(
        "conv s2p1 + s2p0/mse",
        &[2, 9, 9],
        vec![
            conv(2, 3, 3, 2, 1), // 3×5×5
            Layer::Tanh,
            conv(3, 2, 3, 2, 0), // 2×2×2
            Layer::Flatten,
            dense(8, 2),
        ],
        MSE,
        3,
        6,
    ));
}

#[test]
fn conv_even_input_stride2_padding1() {
    // The Omniglot geometry on a small image: 8 → 4 → 2 with k3 s2 p1.
    check(&case(
        "conv s2p1 even/ce",
        &[1, 8, 8],
        vec![
            conv(1, 3, 3, 2, 1),
            Layer::Relu,
            conv(3, 3, 3, 2, 1),
            Layer::Relu,
            Layer::Flatten,
            dense(12, 4),
        ],
        CROSS_ENTROPY,
        4,
        7,
    ));
}

#[test]
fn norm_batch_statistics_conv() {
    check(&case(
        "conv+norm(batch)/ce",
        &[2, 4, 4],
        vec![
            conv(2, 3, 3, 1, 1),
            norm(3),
            Layer::Relu,
            Layer::Flatten,
            dense(48, 3),
        ],
        CROSS_ENTROPY,
        4,
        8,
    ));
}

#[test]
fn norm_batch_statistics_flat() {
    check(&case(
        "dense+norm(batch)/mse",
        &[3],
        vec![dense(3, 4), norm(4), Layer::Tanh, dense(4, 2)],
        MSE,
        5,
        9,
    ));
}

#[test]
fn norm_stored_statistics_conv() {
    // Frozen norm between trainable layers: prediction-mode statistics, and the gradient
    // with respect to its input must reach the conv layer before it.
    let mut c = case(
        "conv+norm(stored)/ce",
        &[2, 4, 4],
        vec![
            conv(2, 3, 3, 1, 1),
            norm(3),
            Layer::Relu,
            Layer::Flatten,
            dense(48, 3),
        ],
        CROSS_ENTROPY,
        4,
        10,
    );
    c.trainable = 0b10001;
    check(&c);
}

#[test]
fn norm_stored_statistics_flat() {
    let mut c = case(
        "dense+norm(stored)/mse",
        &[3],
        vec![dense(3, 4), norm(4), Layer::Tanh, dense(4, 2)],
        MSE,
        5,
        11,
    );
    c.trainable = 0b1001;
    check(&c);
}

#[test]
fn maxpool_overlapping_windows() {
    // k3 s2: neighbouring windows share a row/column, so gradients accumulate.
    check(&case(
        "conv+maxpool k3s2/mse",
        &[1, 7, 7],
        vec![
            conv(1, 2, 3, 1, 1),
            maxpool(3, 2),
            Layer::Tanh,
            Layer::Flatten,
            dense(18, 2),
        ],
        MSE,
        3,
        12,
    ));
}

#[test]
fn maxpool_disjoint_windows() {
    check(&case(
        "conv+relu+maxpool k2s2/ce",
        &[1, 6, 6],
        vec![
            conv(1, 2, 3, 1, 1),
            Layer::Relu,
            maxpool(2, 2),
            Layer::Flatten,
            dense(18, 3),
        ],
        CROSS_ENTROPY,
        3,
        13,
    ));
}

#[test]
fn frozen_layers_in_the_middle() {
    // The input gradient must flow through frozen dense and conv layers.
    let mut c = case(
        "frozen middle dense/mse",
        &[3],
        vec![
            dense(3, 5),
            Layer::Tanh,
            dense(5, 4),
            Layer::Relu,
            dense(4, 2),
        ],
        MSE,
        4,
        14,
    );
    c.trainable = 0b10001;
    check(&c);
    let mut c = case(
        "frozen middle conv/ce",
        &[1, 6, 6],
        vec![
            conv(1, 2, 3, 1, 1),
            Layer::Relu,
            conv(2, 2, 3, 2, 1),
            Layer::Flatten,
            dense(18, 3),
        ],
        CROSS_ENTROPY,
        3,
        15,
    );
    c.trainable = 0b10001;
    check(&c);
}

#[test]
fn head_only() {
    let mut c = case(
        "head only/ce",
        &[1, 6, 6],
        vec![
            conv(1, 2, 3, 2, 1),
            norm(2),
            Layer::Relu,
            Layer::Flatten,
            dense(18, 3),
        ],
        CROSS_ENTROPY,
        3,
        16,
    );
    c.trainable = 1 << 4;
    check(&c);
}

#[test]
fn omniglot_shaped_cnn_small() {
    // The Omniglot architecture (4 × conv k3 s2 p1 + norm + ReLU, flatten, dense) with few
    // filters so every parameter can be checked.
    let mut layers = Vec::new();
    let mut cin = 1;
    for _ in 0..4 {
        layers.extend([conv(cin, 2, 3, 2, 1), norm(2), Layer::Relu]);
        cin = 2;
    }
    layers.extend([Layer::Flatten, dense(2 * 2 * 2, 5)]);
    check(&case(
        "omniglot-shaped (2 filters)",
        &[1, 28, 28],
        layers,
        CROSS_ENTROPY,
        5,
        17,
    ));
}

/// One SGD step moves every trainable parameter by `-lr × scale × gradient` (per-tensor
/// learning-rate scale), one Adam (beta1 = 0) step by `-lr g / (sqrt(v̂) + eps)`.
#[test]
fn update_rules() {
    for optimizer in [0u8, 1] {
        let mut m = Model::new(&[3], vec![dense(3, 4), Layer::Tanh, dense(4, 2)], MSE, 20);
        m.settings.optimizer = optimizer;
        m.settings.batch = 4;
        m.settings.lr_scale = [1.0, 0.5, 0.0, 2.0].into_iter().collect();
        let bytes = m.encode();
        let blob = Blob::parse(&bytes).unwrap();
        let mut arena = vec![0.0f32; blob.arena_len(4).unwrap()];
        let mut l = Learner::new(&blob, &mut arena).unwrap();
        let (x, t) = random_batch(&m, 4, &mut Rng::new(21));
        let lr = 0.1f32;
        for step in 1..=3 {
            let before = l.params().to_vec();
            l.gradient(&x, &t).unwrap();
            let mut g = vec![0.0; before.len()];
            l.gradient_into(&mut g).unwrap();
            let mut v_state = vec![0.0f64; before.len()];
            if optimizer == 1 {
                // Rebuild Adam's second moment from scratch for this check: replay the steps.
                v_state = adam_v(&m, &x, &t, step, lr);
            }
            l.step(&x, &t, lr).unwrap();
            let after = l.params();
            let lens = m.tensor_lens();
            let mut off = 0;
            for (k, len) in lens.iter().enumerate() {
                let scale = m.settings.lr_scale[k] as f64;
                for j in off..off + len {
                    let expected = match optimizer {
                        0 => before[j] as f64 - lr as f64 * scale * g[j] as f64,
                        _ => {
                            let vhat = v_state[j] / (1.0 - 0.999f64.powi(step));
                            before[j] as f64
                                - lr as f64 * scale * g[j] as f64 / (vhat.sqrt() + 1e-8)
                        }
                    };
                    assert!(
                        (after[j] as f64 - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                        "optimizer {optimizer} step {step} param {j}: {} vs {expected}",
                        after[j]
                    );
                }
                off += len;
            }
        }
    }
}

/// Adam's second moment after `step` steps, replayed on a fresh learner.
fn adam_v(m: &Model, x: &[f32], t: &[f32], step: i32, lr: f32) -> Vec<f64> {
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = vec![0.0f32; blob.arena_len(m.settings.batch as usize).unwrap()];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    let mut v = vec![0.0f64; m.params.len()];
    for s in 1..=step {
        l.gradient(x, t).unwrap();
        let mut g = vec![0.0; v.len()];
        l.gradient_into(&mut g).unwrap();
        for (vi, gi) in v.iter_mut().zip(&g) {
            *vi = 0.999 * *vi + 0.001 * (*gi as f64) * (*gi as f64);
        }
        if s < step {
            l.step(x, t, lr).unwrap();
        }
    }
    v
}

#[cfg(feature = "extra-layers")]
#[test]
fn sigmoid_clip_prelu_on_vectors_mse() {
    // PReLU with per-value slopes of both signs, a clip merged with the ReLU after it, and
    // sigmoid in place, on the model output too.
    check(&case(
        "dense+prelu+clip·relu+sigmoid, out sigmoid/mse",
        &[3],
        vec![
            dense(3, 6),
            prelu(6),
            dense(6, 5),
            clip(-0.4, 0.3),
            Layer::Relu,
            dense(5, 4),
            Layer::Extra(Extra::Sigmoid),
            dense(4, 2),
            Layer::Extra(Extra::Sigmoid),
        ],
        MSE,
        5,
        40,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn prelu_clip_on_images_cross_entropy() {
    // Per-channel PReLU slopes over the spatial positions; ReLU6 as `Clip(0, 6)`; a clip with
    // an infinite lower bound at the model output.
    check(&case(
        "conv+prelu+conv+clip6/ce",
        &[2, 5, 5],
        vec![
            conv(2, 3, 3, 1, 1),
            prelu(3),
            conv(3, 4, 3, 2, 1),
            clip(0.0, 6.0),
            Layer::Flatten,
            dense(36, 3),
            clip(f32::NEG_INFINITY, 0.8),
        ],
        CROSS_ENTROPY,
        4,
        41,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn leaky_relu_hard_sigmoid_hard_swish_on_vectors_mse() {
    // Leaky ReLU and hard sigmoid in place (their derivative from the output), hard swish
    // from its input, on the model output too.
    check(&case(
        "dense+leaky+dense+hardswish+dense+hardsigmoid, out leaky/mse",
        &[3],
        vec![
            dense(3, 6),
            Layer::Extra(Extra::LeakyRelu { alpha: 0.1 }),
            dense(6, 5),
            Layer::Extra(Extra::HardSwish),
            dense(5, 4),
            Layer::Extra(Extra::HardSigmoid {
                alpha: 0.3,
                beta: 0.4,
            }),
            dense(4, 2),
            Layer::Extra(Extra::LeakyRelu { alpha: 0.2 }),
        ],
        MSE,
        5,
        42,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn average_max_and_global_pooling_cross_entropy() {
    // Average pooling with padding outside and inside the divisor, padded max pooling with
    // overlapping windows, global average pooling to a vector.
    check(&case(
        "conv+avgpool(pad)+hardswish+maxpool(pad)+avgpool(incl)+globalavg/ce",
        &[2, 7, 7],
        vec![
            conv(2, 3, 3, 1, 1),
            avgpool(3, 2, 1, false),
            Layer::Extra(Extra::HardSwish),
            conv(3, 4, 3, 1, 1),
            maxpool_padded(3, 1, 1),
            avgpool(2, 2, 1, true),
            Layer::Extra(Extra::GlobalAvgPool),
            Layer::Flatten,
            dense(4, 3),
        ],
        CROSS_ENTROPY,
        4,
        43,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn one_d_depthwise_dilated_uneven_padding_and_pooling_cross_entropy() {
    // A 1-D CNN as on accelerometers: input [3 channels, 17 samples]; a strided 1-D
    // convolution with uneven padding, a depthwise dilated one, a grouped pointwise one, 1-D
    // max pooling with padding after, average pooling.
    use anole::layers::PoolMode;
    check(&case(
        "conv1d+depthwise(dil 2)+grouped+pool1d/ce",
        &[3, 17],
        vec![
            conv_general(3, 6, 1, window2([1, 5], [1, 2], [1, 1], [0, 1], [0, 2])),
            Layer::Relu,
            conv_general(6, 6, 6, window2([1, 3], [1, 1], [1, 2], [0, 2], [0, 2])),
            conv_general(6, 4, 2, window2([1, 1], [1, 1], [1, 1], [0, 0], [0, 0])),
            pool_general(
                PoolMode::Max,
                window2([1, 3], [1, 2], [1, 1], [0, 0], [0, 1]),
            ),
            pool_general(
                PoolMode::Average,
                window2([1, 2], [1, 2], [1, 1], [0, 1], [0, 0]),
            ),
            Layer::Flatten,
            dense(4 * 2, 3),
        ],
        CROSS_ENTROPY,
        4,
        44,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn non_square_strided_grouped_convolution_and_pooling_mse() {
    // DS-CNN's first layer (a tall kernel, stride 2 both ways, uneven padding), a depthwise
    // 3x3, padded average pooling that counts the padding, a non-square max pooling.
    use anole::layers::PoolMode;
    check(&case(
        "conv(5x3 s2)+depthwise+avgpool(incl)+maxpool(2x1)/mse",
        &[2, 9, 6],
        vec![
            conv_general(2, 4, 1, window2([5, 3], [2, 2], [1, 1], [2, 1], [1, 0])),
            conv_general(4, 4, 4, window2([3, 3], [1, 1], [1, 1], [1, 1], [1, 1])),
            pool_general(
                PoolMode::AverageIncludePad,
                window2([2, 2], [1, 1], [1, 1], [1, 0], [0, 1]),
            ),
            pool_general(
                PoolMode::Max,
                window2([2, 1], [2, 1], [1, 1], [0, 0], [0, 0]),
            ),
            Layer::Flatten,
            dense(4 * 2 * 3, 2),
        ],
        MSE,
        3,
        45,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn residual_blocks_identity_and_projection_shortcuts_cross_entropy() {
    // ResNet-8's two kinds of block on a small image: an identity shortcut (the block's input,
    // a ReLU's output, added to the second convolution's normalised output), then a
    // projection shortcut (a branch back to the block's input through a strided 1x1
    // convolution, added to the main path's end); a ReLU after each addition. Values are
    // numbered as layer inputs: the first block reads value 3 (the input of layer 3).
    check(&case(
        "resnet blocks: identity + projection/ce",
        &[2, 6, 6],
        vec![
            conv(2, 3, 3, 1, 1), // 0
            norm(3),             // 1
            Layer::Relu,         // 2
            conv(3, 3, 3, 1, 1), // 3: block 1 reads value 3
            norm(3),             // 4
            Layer::Relu,         // 5
            conv(3, 3, 3, 1, 1), // 6
            norm(3),             // 7
            add_from(3),         // 8
            Layer::Relu,         // 9
            conv(3, 4, 3, 2, 1), // 10: block 2 reads value 10
            norm(4),             // 11
            Layer::Relu,         // 12
            conv(4, 4, 3, 1, 1), // 13
            norm(4),             // 14
            branch_from(10),     // 15: the shortcut starts from value 10
            conv(3, 4, 1, 2, 0), // 16
            add_from(15),        // 17: plus the main path's end (value 15)
            Layer::Relu,         // 18
            Layer::Extra(Extra::GlobalAvgPool),
            Layer::Flatten,
            dense(4, 3),
        ],
        CROSS_ENTROPY,
        4,
        46,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn residual_on_vectors_and_the_models_input_mse() {
    // An addition of the model's input (value 0) and of a value read twice.
    check(&case(
        "dense residuals/mse",
        &[5],
        vec![
            dense(5, 5),
            Layer::Tanh,
            add_from(0),
            dense(5, 5),
            add_from(2),
            add_from(2),
            dense(5, 2),
        ],
        MSE,
        3,
        47,
    ));
}

#[cfg(feature = "extra-layers")]
#[test]
fn concatenations_of_branches_cross_entropy() {
    // An Inception-like block: two paths from one value (a 3x3 and a 1x1 convolution) joined
    // along the channels, then a DenseNet-like join of a value with the block's input, the
    // earlier value first; on vectors, a join of a hidden layer with the model's input.
    check(&case(
        "concat blocks/ce",
        &[2, 5, 5],
        vec![
            conv(2, 3, 3, 1, 1),   // 0
            Layer::Relu,           // 1
            conv(3, 2, 3, 1, 1),   // 2: reads value 2
            branch_from(2),        // 3
            conv(3, 2, 1, 1, 0),   // 4
            concat_from(3, false), // 5: [1x1 path, 3x3 path]: 4 channels
            norm(4),               // 6
            concat_from(2, true),  // 7: [value 2, this]: 7 channels
            Layer::Relu,           // 8
            Layer::Extra(Extra::GlobalAvgPool),
            Layer::Flatten,
            dense(7, 3),
        ],
        CROSS_ENTROPY,
        3,
        48,
    ));
    check(&case(
        "concat vectors/mse",
        &[4],
        vec![dense(4, 3), Layer::Tanh, concat_from(0, false), dense(7, 2)],
        MSE,
        3,
        49,
    ));
}
