//! `Learner::init_prototypes` and `Learner::init_head_prototypes`: the nearest-prototype start
//! of a classifier head, on cached features and on a whole model; `start_head` and
//! `start_and_adapt`, the start a blob records (format version 2).

mod common;

use anole::{Blob, Error, HeadStart, Layer, Learner, Options, SliceSamples};
use common::*;

fn head(dim: usize, classes: usize) -> Vec<u8> {
    Model::new(&[dim as u32], vec![dense(dim, classes)], CROSS_ENTROPY, 3).encode()
}

/// A learner at batch 4, the blob's other settings.
fn learner<'a>(blob: &'a Blob<'a>, arena: &'a mut Vec<f32>) -> Learner<'a, 'a> {
    let opts = Options {
        batch: 4,
        ..Options::from_blob(blob)
    };
    arena.resize(blob.arena_len(4).unwrap(), 0.0);
    Learner::with_options(blob, arena, opts).unwrap()
}

/// Four 3-value features of three classes, and their classes.
fn three_classes() -> ([f32; 12], [f32; 4]) {
    #[rustfmt::skip]
    let features = [
        1.0, 0.0, 0.0,
        3.0, 0.0, 0.0, // class 0: mean (2, 0, 0)
        0.0, 1.0, 1.0, // class 1: mean (0, 1, 1)
        0.0, 0.0, -4.0, // class 2: mean (0, 0, -4)
    ];
    (features, [0.0, 0.0, 1.0, 2.0])
}

/// Row c = 2·μ_c, bias c = −‖μ_c‖²; the head then classifies every input as its nearest
/// class mean, and optimizer state is cleared so adaptation fine-tunes from there.
#[test]
fn head_is_the_nearest_prototype_classifier() {
    let dim = 3;
    let bytes = head(dim, 3);
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    let (features, targets) = three_classes();
    let s = SliceSamples::new(&features, &targets, dim, 1).unwrap();
    l.init_prototypes(&s).unwrap();
    assert_eq!(
        l.params(),
        [4.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0, -8.0, -4.0, -2.0, -16.0]
    );
    let means = [[2.0f32, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, -4.0]];
    let mut rng = Rng::new(5);
    for _ in 0..300 {
        let x = rng.vec(dim, -5.0, 5.0);
        let dist = |c: usize| -> f32 { (0..dim).map(|i| (x[i] - means[c][i]).powi(2)).sum() };
        let nearest = (0..3).min_by(|&a, &b| dist(a).total_cmp(&dist(b))).unwrap();
        let got = l.classify(&x).unwrap();
        assert!(
            got == nearest || (dist(got) - dist(nearest)).abs() < 1e-3,
            "{x:?}"
        );
    }
    // Fine-tuning from the prototypes lowers the support loss.
    let before = l.loss(&s).unwrap();
    l.adapt(&s, 20).unwrap();
    assert!(l.loss(&s).unwrap() < before);
}

/// The start is class-symmetric: relabelling the support set's classes permutes the started
/// head's rows and biases, and nothing else.
#[test]
fn relabelling_permutes_the_started_head() {
    let (dim, classes) = (4, 3);
    let bytes = head(dim, classes);
    let blob = Blob::parse(&bytes).unwrap();
    let mut rng = Rng::new(11);
    let features = rng.vec(6 * dim, -2.0, 2.0);
    let targets = [0.0, 1.0, 2.0, 2.0, 0.0, 1.0];
    let relabel = [2usize, 0, 1]; // class c becomes relabel[c]
    let moved: Vec<f32> = targets
        .iter()
        .map(|&t| relabel[t as usize] as f32)
        .collect();
    let start = |targets: &[f32]| {
        let mut arena = Vec::new();
        let mut l = learner(&blob, &mut arena);
        let s = SliceSamples::new(&features, targets, dim, 1).unwrap();
        l.init_prototypes(&s).unwrap();
        l.params().to_vec()
    };
    let (a, b) = (start(&targets), start(&moved));
    let (wa, ba) = a.split_at(dim * classes);
    let (wb, bb) = b.split_at(dim * classes);
    for c in 0..classes {
        let d = relabel[c];
        assert_eq!(wa[c * dim..(c + 1) * dim], wb[d * dim..(d + 1) * dim]);
        assert_eq!(ba[c], bb[d]);
    }
}

/// Bad requests leave the parameters as they were.
#[test]
fn errors_leave_the_parameters_unchanged() {
    let bytes = head(2, 3);
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    let start = l.params().to_vec();
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let cases: [(&[f32], &[f32], Error); 4] = [
        (&x, &[0.0, 1.0, 1.0], Error::MissingClass { class: 2 }),
        (&x, &[0.0, 1.5, 2.0], Error::BadLabel { sample: 1 }),
        (&x, &[0.0, 1.0, 3.0], Error::BadLabel { sample: 2 }),
        (
            &[1.0, f32::NAN, 3.0, 4.0, 5.0, 6.0],
            &[0.0, 1.0, 2.0],
            Error::NonFiniteSample { sample: 0 },
        ),
    ];
    for (inputs, targets, err) in cases {
        let s = SliceSamples::new(inputs, targets, 2, 1).unwrap();
        assert_eq!(l.init_prototypes(&s), Err(err));
        assert_eq!(l.params(), start);
    }
    let none = SliceSamples::new(&[], &[], 2, 1).unwrap();
    assert_eq!(l.init_prototypes(&none), Err(Error::NoSamples));
    // Features whose prototype overflows: back to the blob's parameters.
    let big = [3e38, 3e38, 0.0, 0.0, 1.0, 1.0];
    l.adapt(&SliceSamples::new(&x, &[0.0, 1.0, 2.0], 2, 1).unwrap(), 3)
        .unwrap();
    let s = SliceSamples::new(&big, &[0.0, 1.0, 2.0], 2, 1).unwrap();
    assert_eq!(
        l.init_prototypes(&s),
        Err(Error::NonFiniteParameter { step: 0 })
    );
    assert_eq!(l.params(), start);
}

/// Only a model that starts with a dense classifier layer can take prototypes.
#[test]
fn not_a_head() {
    let s = SliceSamples::new(&[0.5, 0.5], &[0.0], 2, 1).unwrap();
    for bytes in [
        // A regression model.
        Model::new(&[2], vec![dense(2, 1)], MSE, 1).encode(),
        // A classifier whose first layer is not its last.
        Model::new(
            &[2],
            vec![dense(2, 4), Layer::Relu, dense(4, 3)],
            CROSS_ENTROPY,
            1,
        )
        .encode(),
    ] {
        let blob = Blob::parse(&bytes).unwrap();
        let mut arena = Vec::new();
        let mut l = learner(&blob, &mut arena);
        assert_eq!(l.init_prototypes(&s), Err(Error::NotAHead));
    }
}

/// Three 1×8×8 images, one per class of [`small_cnn`].
fn one_shot(rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    (rng.vec(3 * 64, -1.0, 1.0), vec![2.0, 0.0, 1.0])
}

/// Head-only: the whole model's head started from prototypes equals a head learner started
/// from the body's cached features (the `anole::submodel` split), bit for bit.
#[test]
fn whole_model_head_matches_the_cached_features_head() {
    let model = small_cnn(7, 4);
    let bytes = model.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let (x, y) = one_shot(&mut Rng::new(3));
    let s = SliceSamples::new(&x, &y, 64, 1).unwrap();
    let head_bit = 1 << (model.layers.len() - 1);
    let opts = Options {
        batch: 2,
        trainable: head_bit,
        ..Options::from_blob(&blob)
    };
    let mut arena = vec![0.0; blob.arena_len(2).unwrap()];
    let mut whole = Learner::with_options(&blob, &mut arena, opts).unwrap();
    let before = whole.params().to_vec();
    whole.init_head_prototypes(&s).unwrap();

    let (mut body, mut head_blob) = (Blob::empty(), Blob::empty());
    anole::submodel::body_into(&blob, &mut body).unwrap();
    anole::submodel::head_into(&blob, &mut head_blob).unwrap();
    let mut barena = vec![0.0; body.arena_len(1).unwrap()];
    let mut b = Learner::new(&body, &mut barena).unwrap();
    let mut features = vec![0.0; 3 * 16];
    for (xi, fi) in x.chunks(64).zip(features.chunks_mut(16)) {
        b.predict(xi, fi).unwrap();
    }
    let mut harena = vec![0.0; head_blob.arena_len(4).unwrap()];
    let mut h = Learner::new(&head_blob, &mut harena).unwrap();
    h.init_prototypes(&SliceSamples::new(&features, &y, 16, 1).unwrap())
        .unwrap();
    let n = whole.params().len();
    let head_len = h.params().len();
    assert_eq!(&whole.params()[n - head_len..], h.params());
    // The body (frozen norm statistics included) is untouched.
    assert_eq!(&whole.params()[..n - head_len], &before[..n - head_len]);
}

/// Every layer adapting: the norm statistics are the support set's (as after `adapt`), and
/// with one shot per class every support image is its own class's prototype.
#[test]
fn whole_model_head_classifies_its_support_set() {
    let model = small_cnn(11, 4);
    let bytes = model.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let (x, y) = one_shot(&mut Rng::new(5));
    let s = SliceSamples::new(&x, &y, 64, 1).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    let mut arena2 = Vec::new();
    let mut r = learner(&blob, &mut arena2);
    r.refresh_norm_stats(&s).unwrap();
    l.init_head_prototypes(&s).unwrap();
    let head_len = 16 * 3 + 3;
    let n = l.params().len();
    assert_eq!(&l.params()[..n - head_len], &r.params()[..n - head_len]);
    assert_ne!(&l.params()[n - head_len..], &r.params()[n - head_len..]);
    for (xi, &c) in x.chunks(64).zip(&y) {
        assert_eq!(l.classify(xi).unwrap(), c as usize);
    }
    assert_eq!(l.optimizer_state().0, 0);
    // Then adaptation fine-tunes from there.
    let start = l.loss(&s).unwrap();
    l.adapt(&s, 5).unwrap();
    assert!(l.loss(&s).unwrap() <= start);
}

/// Bad requests on a whole model leave its parameters as they were; a model whose last layer
/// is not a dense classifier head is refused.
#[test]
fn whole_model_errors() {
    let bytes = small_cnn(2, 4).encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    let start = l.params().to_vec();
    let x = Rng::new(1).vec(3 * 64, -1.0, 1.0);
    let mut nan = x.clone();
    nan[70] = f32::NAN;
    let cases: [(&[f32], &[f32], Error); 4] = [
        (&x, &[0.0, 1.0, 1.0], Error::MissingClass { class: 2 }),
        (&x, &[0.0, 0.5, 2.0], Error::BadLabel { sample: 1 }),
        (&x, &[0.0, 1.0, 3.0], Error::BadLabel { sample: 2 }),
        (&nan, &[0.0, 1.0, 2.0], Error::NonFiniteSample { sample: 1 }),
    ];
    for (inputs, targets, err) in cases {
        let s = SliceSamples::new(inputs, targets, 64, 1).unwrap();
        assert_eq!(l.init_head_prototypes(&s), Err(err));
        assert_eq!(l.params(), start);
    }
    let none = SliceSamples::new(&[], &[], 64, 1).unwrap();
    assert_eq!(l.init_head_prototypes(&none), Err(Error::NoSamples));
    let wrong = SliceSamples::new(&x[..60], &[0.0], 60, 1).unwrap();
    assert!(matches!(
        l.init_head_prototypes(&wrong),
        Err(Error::SampleLength { .. })
    ));
    assert_eq!(l.params(), start);
    let s = SliceSamples::new(&[0.5, 0.5], &[0.0], 2, 1).unwrap();
    for bytes in [
        Model::new(&[2], vec![dense(2, 4), Layer::Relu, dense(4, 1)], MSE, 1).encode(),
        Model::new(&[2], vec![dense(2, 4), Layer::Relu], CROSS_ENTROPY, 1).encode(),
    ] {
        let blob = Blob::parse(&bytes).unwrap();
        let mut arena = Vec::new();
        let mut l = learner(&blob, &mut arena);
        assert_eq!(l.init_head_prototypes(&s), Err(Error::NotAHead));
    }
}

/// The head start a blob records: `start_head` is `init_head_prototypes` under prototypes and
/// leaves the parameters alone under meta; `start_and_adapt` starts the head of a learner that
/// has taken no step since its parameters were set, and continues the one that has.
#[test]
fn the_blob_says_where_the_head_starts() {
    let meta_model = small_cnn(13, 4);
    let mut proto_model = small_cnn(13, 4);
    proto_model.settings.head_start = HeadStart::Prototypes as u8;
    let (meta_bytes, proto_bytes) = (meta_model.encode(), proto_model.encode());
    let (meta, proto) = (
        Blob::parse(&meta_bytes).unwrap(),
        Blob::parse(&proto_bytes).unwrap(),
    );
    assert_eq!(meta.head_start, HeadStart::Meta);
    assert_eq!(proto.head_start, HeadStart::Prototypes);
    let (x, y) = one_shot(&mut Rng::new(9));
    let s = SliceSamples::new(&x, &y, 64, 1).unwrap();
    let mut arenas: Vec<Vec<f32>> = (0..4).map(|_| Vec::new()).collect();
    let [a0, a1, a2, a3] = &mut arenas[..] else {
        unreachable!()
    };

    let mut m = learner(&meta, a0);
    assert_eq!(m.head_start(), HeadStart::Meta);
    let before = m.params().to_vec();
    m.start_head(&s).unwrap();
    assert_eq!(m.params(), &before[..], "meta: the blob's head");

    let mut p = learner(&proto, a1);
    assert_eq!(p.head_start(), HeadStart::Prototypes);
    let mut by_hand = learner(&proto, a2);
    by_hand.init_head_prototypes(&s).unwrap();
    p.start_head(&s).unwrap();
    assert_eq!(p.params(), by_hand.params());
    assert_ne!(p.params(), &before[..]);

    // One call: the start, then the steps; a second call continues from where it stopped.
    let mut one = learner(&proto, a3);
    let r = one.start_and_adapt(&s, 3).unwrap();
    by_hand.adapt(&s, 3).unwrap();
    assert_eq!(one.params(), by_hand.params());
    assert_eq!(r.steps, 3);
    one.start_and_adapt(&s, 2).unwrap();
    by_hand.adapt(&s, 2).unwrap();
    assert_eq!(one.params(), by_hand.params());
    assert_eq!(one.steps_taken(), 5);
    // After a reset it starts again.
    one.reset();
    one.start_and_adapt(&s, 1).unwrap();
    by_hand.reset();
    by_hand.init_head_prototypes(&s).unwrap();
    by_hand.adapt(&s, 1).unwrap();
    assert_eq!(one.params(), by_hand.params());

    // Meta: start_and_adapt is adapt.
    m.reset();
    m.start_and_adapt(&s, 2).unwrap();
    let mut plain = learner(&meta, a2);
    plain.adapt(&s, 2).unwrap();
    assert_eq!(m.params(), plain.params());

    // A blob that says prototypes but has no head to start: the error of init_head_prototypes.
    let mut mse = Model::new(&[3], vec![dense(3, 2)], MSE, 1);
    mse.settings.head_start = HeadStart::Prototypes as u8;
    let bytes = mse.encode();
    let b = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&b, &mut arena);
    let xs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    let ys = [1.0, 0.0, 0.0, 1.0];
    let s = SliceSamples::new(&xs, &ys, 3, 2).unwrap();
    let before = l.params().to_vec();
    assert_eq!(l.start_and_adapt(&s, 1), Err(Error::NotAHead));
    assert_eq!(l.params(), &before[..]);
}

/// The head scale s: row c = 2·s·μ_c, bias c = −s·‖μ_c‖², the unscaled start times s bit for
/// bit, from the blob's settings (format version 3) or `set_head_scale`; the body is untouched.
#[test]
fn a_head_scale_multiplies_the_started_logits() {
    let dim = 3;
    let (features, targets) = three_classes();
    let s = SliceSamples::new(&features, &targets, dim, 1).unwrap();
    let unscaled = [
        4.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0, -8.0, -4.0, -2.0, -16.0,
    ];
    let mut m = Model::new(&[dim as u32], vec![dense(dim, 3)], CROSS_ENTROPY, 3);
    m.settings.head_scale = 0.25;
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    assert_eq!(blob.wire.version, 3);
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    assert_eq!(l.head_scale(), 0.25);
    l.init_prototypes(&s).unwrap();
    assert_eq!(l.params(), unscaled.map(|v| 0.25 * v));
    // A blob without a scale: 1, the unscaled start; with `std`, a scale set on the learner.
    let plain = head(dim, 3);
    let plain = Blob::parse(&plain).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&plain, &mut arena);
    assert_eq!(l.head_scale(), 1.0);
    l.init_prototypes(&s).unwrap();
    assert_eq!(l.params(), unscaled);
    #[cfg(feature = "std")]
    {
        l.set_head_scale(0.25).unwrap();
        l.init_prototypes(&s).unwrap();
        assert_eq!(l.params(), unscaled.map(|v| 0.25 * v));
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                l.set_head_scale(bad),
                Err(Error::BadSettings { .. })
            ));
        }
        assert_eq!(l.head_scale(), 0.25, "a refused scale leaves the scale");
    }

    // A whole model: the blob's prototype start, scaled; the body as the unscaled start has it.
    let mut model = small_cnn(13, 4);
    model.settings.head_start = HeadStart::Prototypes as u8;
    let unscaled_bytes = model.encode();
    model.settings.head_scale = 0.5;
    let scaled_bytes = model.encode();
    let (a, b) = (
        Blob::parse(&unscaled_bytes).unwrap(),
        Blob::parse(&scaled_bytes).unwrap(),
    );
    let (x, y) = one_shot(&mut Rng::new(9));
    let s = SliceSamples::new(&x, &y, 64, 1).unwrap();
    let (mut arena_a, mut arena_b) = (Vec::new(), Vec::new());
    let (mut la, mut lb) = (learner(&a, &mut arena_a), learner(&b, &mut arena_b));
    la.start_head(&s).unwrap();
    lb.start_head(&s).unwrap();
    let n = la.params().len();
    let last = a.layers.len() - 1;
    let h = a.output_len() * (a.shapes[last].len() + 1);
    assert_eq!(la.params()[..n - h], lb.params()[..n - h]);
    for (u, v) in la.params()[n - h..].iter().zip(&lb.params()[n - h..]) {
        assert_eq!(*v, 0.5 * u);
    }
}

/// Unscaled, a prototype start on well separated features saturates the softmax: the support
/// loss is 0 in f32 and the steps after it learn nothing. Scaled by 0.01 the loss is above 0
/// and head-only adaptation lowers it.
#[test]
fn a_scaled_start_leaves_the_steps_something_to_learn() {
    let dim = 2;
    #[rustfmt::skip]
    let features = [
        10.0, 0.0, 12.0, 0.0, // class 0: mean (11, 0)
        0.0, 10.0, 0.0, 12.0, // class 1: mean (0, 11)
        -10.0, -10.0, -12.0, -12.0, // class 2: mean (-11, -11)
    ];
    let targets = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0];
    let s = SliceSamples::new(&features, &targets, dim, 1).unwrap();
    let mut m = Model::new(&[dim as u32], vec![dense(dim, 3)], CROSS_ENTROPY, 3);
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    l.init_prototypes(&s).unwrap();
    let started = l.params().to_vec();
    let r = l.adapt(&s, 5).unwrap();
    assert_eq!((r.first_loss, r.last_loss), (0.0, 0.0), "saturated");
    assert_eq!(l.params(), &started[..], "nothing learned");

    m.settings.head_scale = 0.01;
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    l.init_prototypes(&s).unwrap();
    let r = l.adapt(&s, 5).unwrap();
    assert!(r.first_loss > 0.0, "{r:?}");
    assert!(r.last_loss < r.first_loss, "{r:?}");
}
