//! Divergence: a learning rate that blows up makes `adapt` stop with an error, the learner
//! keeps the parameters of the last good step (all finite), and it still predicts.

mod common;

use anole::{Blob, Error, Layer, Learner, SliceSamples};
use common::*;

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
        11,
    );
    m.settings.batch = 10;
    m
}

fn cnn() -> Model {
    small_cnn(12, 6)
}

/// Adapt at `lr` until it fails; check the rollback against a replay of the good steps.
fn diverge(m: &Model, lr: f32, max_steps: u32) -> Error {
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let n = m.settings.batch as usize;
    let (x, t) = random_batch(m, n, &mut Rng::new(3));
    let s = SliceSamples::new(&x, &t, m.input_len(), blob.target_len()).unwrap();
    let mut arena = vec![0.0f32; blob.arena_len(n).unwrap()];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    l.set_lr(lr).unwrap();
    let err = l
        .adapt(&s, max_steps)
        .expect_err("a huge learning rate must diverge");
    let failed_step = match err {
        Error::NonFiniteLoss { step } | Error::NonFiniteParameter { step } => step,
        e => panic!("unexpected error {e}"),
    };
    assert!(failed_step >= 1);
    assert_eq!(
        l.steps_taken(),
        failed_step - 1,
        "steps counted past the failure"
    );
    let kept = l.params().to_vec();
    assert!(
        kept.iter().all(|v| v.is_finite()),
        "a non-finite parameter survived"
    );

    // The same good steps on a fresh learner give exactly the kept parameters.
    let mut arena2 = vec![0.0f32; blob.arena_len(n).unwrap()];
    let mut replay = Learner::new(&blob, &mut arena2).unwrap();
    replay.set_lr(lr).unwrap();
    for k in 0..failed_step - 1 {
        let xs = &x[..];
        replay
            .step(xs, &t, lr)
            .unwrap_or_else(|e| panic!("replayed step {}: {e}", k + 1));
    }
    let expected = replay.params();
    assert!(
        kept.iter()
            .zip(expected)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "parameters after the failure differ from those of the last good step"
    );

    // Still predicts, and the error's message says what happened.
    let mut y = vec![0.0f32; n * m.output_len()];
    l.predict(&x, &mut y).expect("predict after divergence");
    assert!(!err.to_string().is_empty());
    println!("lr {lr:e}: {err} (after {} good steps)", failed_step - 1);

    // Reset and a sane learning rate adapt again.
    l.reset();
    l.set_lr(1e-3).unwrap();
    l.adapt(&s, 3).expect("adapts again after reset");
    err
}

#[test]
fn sine_mlp_diverges_and_rolls_back() {
    let m = sine();
    let e = diverge(&m, 1e6, 1000);
    assert!(matches!(
        e,
        Error::NonFiniteLoss { .. } | Error::NonFiniteParameter { .. }
    ));
    diverge(&m, 3e37, 1000);
}

#[test]
fn cnn_with_norm_diverges_and_rolls_back() {
    let m = cnn();
    diverge(&m, 1e8, 1000);
}

/// One step at an absurd learning rate leaves finite but huge weights; recomputing the norm
/// statistics from them overflows. The learner refuses to store non-finite statistics and
/// puts the previous ones back.
#[test]
fn overflowing_norm_statistics_are_refused() {
    let m = cnn();
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let (x, t) = random_batch(&m, 6, &mut Rng::new(4));
    let s = SliceSamples::new(&x, &t, m.input_len(), 1).unwrap();
    let mut arena = vec![0.0f32; blob.arena_len(6).unwrap()];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    let stats_before: Vec<f32> = stats(&m, l.params());
    l.set_lr(1e30).unwrap();
    let r = l.adapt(&s, 1);
    assert!(
        l.params().iter().all(|v| v.is_finite()),
        "non-finite parameter after {r:?}"
    );
    match r {
        Err(Error::NonFiniteParameter { step }) => {
            assert_eq!(step, 1);
            assert_eq!(
                stats(&m, l.params()),
                stats_before,
                "statistics not restored"
            );
        }
        other => panic!("expected the refresh to overflow, got {other:?}"),
    }
    let mut y = vec![0.0f32; 6 * 3];
    l.predict(&x, &mut y)
        .expect("predicts after the refused refresh");
}

/// The stored mean and variance of every norm layer.
fn stats(m: &Model, p: &[f32]) -> Vec<f32> {
    let shapes = m.shapes();
    let offs = m.layer_offsets();
    let mut v = Vec::new();
    for (i, l) in m.layers.iter().enumerate() {
        if let Layer::Norm { channels: c, .. } = *l {
            let _ = shapes[i];
            v.extend_from_slice(&p[offs[i] + 2 * c..offs[i] + 4 * c]);
        }
    }
    v
}
