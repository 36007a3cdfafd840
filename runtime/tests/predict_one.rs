//! `Learner::predict_one`, the per-sample path: the outputs of `Learner::predict` bit for bit,
//! in both arena layouts, before and after adapting, and the same refusals.

mod common;

use anole::{Blob, Error, Layer, Learner, Mode, Options, Plan, SliceSamples};
use common::*;

/// Predict every row of `x` one at a time and all at once; the two must agree bit for bit.
fn agrees(l: &mut Learner<'_, '_>, x: &[f32], il: usize, ol: usize) {
    let n = x.len() / il;
    let mut all = vec![0.0f32; n * ol];
    l.predict(x, &mut all).unwrap();
    for (i, row) in x.chunks_exact(il).enumerate() {
        let mut one = vec![f32::NAN; ol];
        l.predict_one(row, &mut one).unwrap();
        let want = &all[i * ol..(i + 1) * ol];
        assert!(
            one.iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "row {i}: {one:?} != {want:?}"
        );
    }
}

fn same_as_predict(m: &Model) {
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let (il, ol) = (m.input_len(), m.output_len());
    let (x, t) = random_batch(m, 9, &mut Rng::new(3));
    let s = SliceSamples::new(&x, &t, il, blob.target_len()).unwrap();
    let opts = Options::from_blob(&blob);
    for mode in [Mode::Buffered, Mode::Device] {
        let plan = Plan::with_mode(&blob, opts.batch, opts.trainable, mode).unwrap();
        let mut arena = vec![0.0f32; plan.arena_len()];
        let mut l = Learner::with_mode(&blob, &mut arena, opts, mode).unwrap();
        agrees(&mut l, &x, il, ol);
        l.adapt(&s, 3).unwrap();
        agrees(&mut l, &x, il, ol);
    }
}

#[test]
fn one_sample_predicts_as_the_batched_call() {
    let mut sine = Model::new(
        &[1],
        vec![
            dense(1, 16),
            Layer::Tanh,
            dense(16, 16),
            Layer::Tanh,
            dense(16, 1),
        ],
        MSE,
        8,
    );
    sine.settings.batch = 4;
    same_as_predict(&sine);
    // Convolutions, norm layers (stored statistics) and several outputs.
    same_as_predict(&small_cnn(4, 3));
}

#[test]
fn wrong_lengths_and_non_finite_inputs_are_refused() {
    let m = small_cnn(5, 3);
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let (il, ol) = (m.input_len(), m.output_len());
    let mut arena = vec![0.0f32; Plan::new(&blob, 3, m.all_layers()).unwrap().arena_len()];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    let x = Rng::new(6).vec(il, -1.0, 1.0);
    let mut y = vec![0.0f32; ol];
    let mut before = vec![0.0f32; ol];
    l.predict_one(&x, &mut before).unwrap();
    assert_eq!(
        l.predict_one(&x[..il - 1], &mut y),
        Err(Error::SampleLength {
            sample: 0,
            expected: il,
            found: il - 1
        })
    );
    assert_eq!(
        l.predict_one(&x, &mut y[..ol - 1]),
        Err(Error::BufferTooSmall {
            needed: ol,
            available: ol - 1
        })
    );
    let mut bad = x.clone();
    bad[il / 2] = f32::INFINITY;
    assert_eq!(
        l.predict_one(&bad, &mut y),
        Err(Error::NonFiniteSample { sample: 0 })
    );
    // Two samples are not one.
    let two = [x.clone(), x.clone()].concat();
    assert!(matches!(
        l.predict_one(&two, &mut vec![0.0; 2 * ol]),
        Err(Error::SampleLength { .. })
    ));
    // Nothing changed.
    l.predict_one(&x, &mut y).unwrap();
    assert_eq!(y, before);
}
