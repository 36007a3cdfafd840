//! `Learner::init_prototypes`: the nearest-prototype start of a classifier head.

mod common;

use anole::{Blob, Error, Layer, Learner, Options, SliceSamples};
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

/// Row c = 2·μ_c, bias c = −‖μ_c‖²; the head then classifies every input as its nearest
/// class mean, and optimizer state is cleared so adaptation fine-tunes from there.
#[test]
fn head_is_the_nearest_prototype_classifier() {
    let dim = 3;
    let bytes = head(dim, 3);
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let mut l = learner(&blob, &mut arena);
    #[rustfmt::skip]
    let features = [
        1.0, 0.0, 0.0,
        3.0, 0.0, 0.0, // class 0: mean (2, 0, 0)
        0.0, 1.0, 1.0, // class 1: mean (0, 1, 1)
        0.0, 0.0, -4.0, // class 2: mean (0, 0, -4)
    ];
    let targets = [0.0, 0.0, 1.0, 2.0];
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
