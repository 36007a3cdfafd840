//! The device layout ([`Mode::Device`]): a smaller arena (no gradient buffer for dense layers
//! under SGD, frozen layers read from the blob), the same adapted model bit for bit as the
//! buffered layout, no `gradient()`, and a failed step never leaves a non-finite parameter.

mod common;

#[cfg(feature = "extra-layers")]
use anole::Extra;
use anole::{Blob, DType, Error, Layer, Learner, Mode, Options, Plan, SliceSamples};
use common::*;

/// Parameters of each layer.
fn layer_lens(m: &Model) -> Vec<usize> {
    m.layers
        .iter()
        .zip(m.shapes())
        .map(|(l, s)| l.param_len(s))
        .collect()
}

fn sine() -> Model {
    let mut m = Model::new(
        &[1],
        vec![
            dense(1, 64),
            Layer::Tanh,
            dense(64, 64),
            Layer::Tanh,
            dense(64, 1),
        ],
        MSE,
        21,
    );
    m.settings.batch = 10;
    m.settings.lr = 0.02;
    m
}

fn cnn() -> Model {
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
            dense(16, 7),
            Layer::Relu,
            dense(7, 3),
        ],
        CROSS_ENTROPY,
        12,
    );
    m.settings.batch = 6;
    m
}

/// Adapt the same samples in both layouts, for each trainable mask; the parameters, losses and
/// predictions must agree bit for bit, and the device arena must be smaller.
fn same_in_both_layouts(m: &Model, masks: &[anole::LayerMask], samples: usize) {
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let (x, t) = random_batch(m, samples, &mut Rng::new(5));
    let s = SliceSamples::new(&x, &t, m.input_len(), blob.target_len()).unwrap();
    for &mask in masks {
        let opts = Options {
            trainable: mask,
            ..Options::from_blob(&blob)
        };
        let buffered = Plan::new(&blob, opts.batch, mask).unwrap();
        let device = Plan::with_mode(&blob, opts.batch, mask, Mode::Device).unwrap();
        assert!(
            device.arena_len() < buffered.arena_len(),
            "mask {mask:#b}: device arena {} not below buffered {}",
            device.arena_len(),
            buffered.arena_len()
        );
        let mut a1 = vec![0.0f32; buffered.arena_len()];
        let mut a2 = vec![0.0f32; device.arena_len()];
        let mut l1 = Learner::with_options(&blob, &mut a1, opts).unwrap();
        let mut l2 = Learner::with_mode(&blob, &mut a2, opts, Mode::Device).unwrap();
        let r1 = l1.adapt(&s, 7).unwrap();
        let r2 = l2.adapt(&s, 7).unwrap();
        assert_eq!(r1.first_loss.to_bits(), r2.first_loss.to_bits());
        assert_eq!(r1.last_loss.to_bits(), r2.last_loss.to_bits());
        assert!(r1.last_loss < r1.first_loss, "mask {mask:#b}: {r1:?}");
        assert_eq!(l2.steps_taken(), 7);
        // The exported blobs (every tensor, frozen ones copied from the source) are identical.
        assert!(
            exported(&l1) == exported(&l2),
            "mask {mask:#b}: adapted models differ between the layouts"
        );
        // The device arena holds the parameters of adapting and norm layers only.
        let resident: usize = m
            .layers
            .iter()
            .zip(layer_lens(m))
            .enumerate()
            .filter(|(i, (l, _))| mask & (1 << i) != 0 || matches!(l, Layer::Norm { .. }))
            .map(|(_, (_, n))| n)
            .sum();
        assert_eq!(l2.params().len(), resident, "mask {mask:#b}");
        let (mut y1, mut y2) = (
            vec![0.0; samples * m.output_len()],
            vec![0.0; samples * m.output_len()],
        );
        l1.predict(&x, &mut y1).unwrap();
        l2.predict(&x, &mut y2).unwrap();
        assert_eq!(y1, y2);
        // One more explicit step each.
        let n = opts.batch.min(samples);
        let tl = blob.target_len();
        let a = l1
            .step(&x[..n * m.input_len()], &t[..n * tl], 0.01)
            .unwrap();
        let b = l2
            .step(&x[..n * m.input_len()], &t[..n * tl], 0.01)
            .unwrap();
        assert_eq!(a.to_bits(), b.to_bits());
        assert!(exported(&l1) == exported(&l2));
    }
}

#[test]
fn sine_mlp_adapts_identically_in_a_smaller_arena() {
    let m = sine();
    same_in_both_layouts(&m, &[m.all_layers(), 1 << 4, 1 << 2 | 1 << 4], 10);
    // The sine MLP at batch 10: no gradient region at all.
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let p = Plan::with_mode(&blob, 10, m.all_layers(), Mode::Device).unwrap();
    assert_eq!(p.grads_len, 0);
    assert_eq!(
        blob.arena_len(10).unwrap() - blob.device_arena_len(10).unwrap(),
        4353
    );
    // Only the last layer adapting: its 65 parameters, activations 1,300, targets 10, the
    // output gradient 10; the two frozen layers stay in the blob.
    let last = Plan::with_mode(&blob, 10, 1 << 4, Mode::Device).unwrap();
    assert_eq!(last.arena_len(), 65 + 1300 + 10 + 10);
    // Prediction only: one sample's input 1 and two shared buffers of 64 (the output 1 reuses
    // the first), target 1, scratch 1.
    let predict = Plan::with_mode(&blob, 1, 0, Mode::Device).unwrap();
    assert_eq!(predict.arena_len(), 1 + 64 + 64 + 1 + 1);
}

#[test]
fn cnn_adapts_identically_in_a_smaller_arena() {
    let mut m = cnn();
    let head = 1 << 9;
    let masks = [m.all_layers(), head, head | 1 << 7, 1 << 3 | 1 << 9, 1];
    same_in_both_layouts(&m, &masks, 9);
    // Frozen layers stored as f16 and bf16 are decoded in place, unaligned, as read.
    for dtype in [DType::F16, DType::Bf16] {
        m.dtype = dtype;
        same_in_both_layouts(&m, &masks, 9);
    }
}

/// General convolutions (1-D, depthwise, grouped, dilated) frozen in the device layout read
/// their weight and bias from the blob, and adapt the same as in the buffered layout.
#[cfg(feature = "extra-layers")]
#[test]
fn general_convolutions_adapt_identically_in_a_smaller_arena() {
    use anole::layers::PoolMode;
    let mut m = Model::new(
        &[3, 16],
        vec![
            conv_general(3, 6, 1, window2([1, 5], [1, 2], [1, 1], [0, 2], [0, 1])),
            Layer::Relu,
            conv_general(6, 6, 6, window2([1, 3], [1, 1], [1, 2], [0, 2], [0, 2])),
            conv_general(6, 4, 2, window2([1, 1], [1, 1], [1, 1], [0, 0], [0, 0])),
            pool_general(
                PoolMode::Average,
                window2([1, 2], [1, 2], [1, 1], [0, 0], [0, 0]),
            ),
            Layer::Flatten,
            dense(16, 3),
        ],
        CROSS_ENTROPY,
        17,
    );
    m.settings.batch = 5;
    same_in_both_layouts(
        &m,
        &[m.all_layers(), 1 << 6, 1 << 3 | 1 << 6, 1 << 2 | 1 << 6],
        10,
    );
}

/// A residual network (identity and projection shortcuts, the model's input read again):
/// the same adapted model in both layouts, whichever layers adapt.
#[cfg(feature = "extra-layers")]
#[test]
fn residual_networks_adapt_identically_in_a_smaller_arena() {
    let mut m = Model::new(
        &[2, 6, 6],
        vec![
            conv(2, 3, 3, 1, 1),
            Layer::Relu,
            conv(3, 3, 3, 1, 1),
            norm(3),
            add_from(2),
            Layer::Relu,
            branch_from(0),
            conv(2, 3, 3, 1, 1),
            add_from(6),
            Layer::Flatten,
            dense(108, 3),
        ],
        CROSS_ENTROPY,
        18,
    );
    m.settings.batch = 4;
    same_in_both_layouts(
        &m,
        &[
            m.all_layers(),
            1 << 10,
            1 << 7 | 1 << 10,
            1 << 2 | 1 << 10,
            1 << 3 | 1 << 10,
        ],
        8,
    );
}

/// Branches joined along the channels: the same adapted model in both layouts.
#[cfg(feature = "extra-layers")]
#[test]
fn concatenated_branches_adapt_identically_in_a_smaller_arena() {
    let mut m = Model::new(
        &[2, 5, 5],
        vec![
            conv(2, 3, 3, 1, 1),
            Layer::Relu,
            conv(3, 2, 3, 1, 1),
            branch_from(2),
            conv(3, 2, 1, 1, 0),
            concat_from(3, false),
            concat_from(0, true),
            Layer::Flatten,
            dense(150, 3),
        ],
        CROSS_ENTROPY,
        19,
    );
    m.settings.batch = 4;
    same_in_both_layouts(&m, &[m.all_layers(), 1 << 8, 1 << 4 | 1 << 8], 8);
}

/// Head-only adaptation in the device layout: the arena holds the head (and the norm layers'
/// few values), not the frozen body's weights, and two activation buffers for the body.
#[cfg(feature = "extra-layers")]
#[test]
fn new_activations_adapt_identically_in_a_smaller_arena() {
    // PReLU frozen (slopes read from the blob) or adapting, with sigmoid and ReLU6 in place.
    let mut m = Model::new(
        &[2, 6, 6],
        vec![
            conv(2, 4, 3, 2, 1),
            prelu(4),
            conv(4, 4, 3, 1, 1),
            clip(0.0, 6.0),
            Layer::Flatten,
            dense(36, 8),
            Layer::Extra(Extra::Sigmoid),
            prelu(8),
            dense(8, 3),
        ],
        CROSS_ENTROPY,
        13,
    );
    m.settings.batch = 6;
    same_in_both_layouts(
        &m,
        &[m.all_layers(), 1 << 8, 1 << 7 | 1 << 8, 1 << 2 | 1 << 8],
        12,
    );
}

#[test]
fn head_only_arena_excludes_the_frozen_body() {
    let mut m = cnn();
    m.dtype = DType::F16;
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let head = 1 << 9;
    let buffered = Plan::new(&blob, 6, head).unwrap();
    let device = Plan::with_mode(&blob, 6, head, Mode::Device).unwrap();
    let lens = layer_lens(&m);
    let norms: usize = [1, 4].iter().map(|&i| lens[i]).sum();
    assert_eq!(buffered.params_len, blob.param_count());
    assert_eq!(device.params_len, lens[9] + norms);
    assert_eq!(device.grads_len, 0);
    // The frozen body's activations take turns in two buffers (the 4×4×4 and 2×2×4 conv
    // outputs; the dense 16→7 output reuses the first; norm layers work in place): per sample
    // the input 64, the buffers 64 and 16, the head's output 3 — instead of every layer's
    // output (64 + 64 + 64 + 16 + 16 + 7 + 3).
    assert_eq!(buffered.acts_len, 6 * (64 + 64 + 64 + 16 + 16 + 7 + 3));
    assert_eq!(device.acts_len, 6 * (64 + 64 + 16 + 3));
    assert_eq!(
        buffered.arena_len() - device.arena_len(),
        (blob.param_count() - lens[9] - norms) + lens[9] + (buffered.acts_len - device.acts_len)
    );
}

#[test]
fn no_gradient_without_a_gradient_buffer() {
    let m = sine();
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = vec![0.0f32; blob.device_arena_len(10).unwrap()];
    let mut l =
        Learner::with_mode(&blob, &mut arena, Options::from_blob(&blob), Mode::Device).unwrap();
    let (x, t) = random_batch(&m, 10, &mut Rng::new(1));
    assert!(matches!(l.gradient(&x, &t), Err(Error::BadSettings { .. })));
    let mut g = vec![0.0; l.params().len()];
    assert!(matches!(
        l.gradient_into(&mut g),
        Err(Error::BadSettings { .. })
    ));
    // The arena a buffered learner needs is refused as too small only when it is.
    let mut small = vec![0.0f32; blob.device_arena_len(10).unwrap() - 1];
    assert!(matches!(
        Learner::with_mode(&blob, &mut small, Options::from_blob(&blob), Mode::Device),
        Err(Error::ArenaTooSmall { .. })
    ));
}

/// A learning rate that blows up: the step that fails is reported, every parameter stays
/// finite, the learner still predicts and adapts again after a reset.
fn diverges_finite(m: &Model, lr: f32) {
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let n = m.settings.batch as usize;
    let (x, t) = random_batch(m, n, &mut Rng::new(3));
    let s = SliceSamples::new(&x, &t, m.input_len(), blob.target_len()).unwrap();
    let mut arena = vec![0.0f32; blob.device_arena_len(n).unwrap()];
    let opts = Options {
        lr,
        ..Options::from_blob(&blob)
    };
    let mut l = Learner::with_mode(&blob, &mut arena, opts, Mode::Device).unwrap();
    let err = l
        .adapt(&s, 1000)
        .expect_err("a huge learning rate must diverge");
    let step = match err {
        Error::NonFiniteLoss { step } | Error::NonFiniteParameter { step } => step,
        e => panic!("unexpected error {e}"),
    };
    assert_eq!(l.steps_taken(), step - 1);
    assert!(l.params().iter().all(|v| v.is_finite()));
    let mut y = vec![0.0f32; n * m.output_len()];
    l.predict(&x, &mut y).expect("predict after divergence");
    l.reset();
    l.set_lr(1e-3).unwrap();
    l.adapt(&s, 3).expect("adapts again after reset");
}

#[test]
fn divergence_leaves_finite_parameters() {
    diverges_finite(&sine(), 1e6);
    diverges_finite(&sine(), 3e37);
    for lr in [1e8, 3e37] {
        diverges_finite(&cnn(), lr);
    }
}
