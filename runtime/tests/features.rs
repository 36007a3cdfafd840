//! What a build carries: a blob that needs a layer kind, loss or optimizer this build leaves
//! out is refused when it loads, with an error naming the feature; one that needs nothing
//! left out loads and adapts. Run in every feature set (scripts/test.sh), so each refusal is
//! checked where it happens and each acceptance where the feature is on.

mod common;

use anole::blob::RawLayer;
use anole::{Blob, Error, Layer, Learner, SliceSamples};
use common::*;

/// A model of `layers` on `input`, with `loss`, `optimizer` and the blob's bytes.
fn bytes(input: &[u32], layers: Vec<Layer>, loss: u8, optimizer: u8) -> Vec<u8> {
    let mut m = Model::new(input, layers, loss, 7);
    m.settings.optimizer = optimizer;
    m.encode()
}

/// `Ok` when the blob loads and a learner over it is made, or the error with its message.
fn load(bytes: &[u8]) -> Result<(), (Error, String)> {
    let blob = Blob::parse(bytes).map_err(|e| (e, e.to_string()))?;
    let mut arena = vec![0.0; blob.arena_len(blob.settings().batch as usize).unwrap()];
    Learner::new(&blob, &mut arena).map_err(|e| (e, e.to_string()))?;
    Ok(())
}

/// Checks that the blob loads when `on`, and is otherwise refused as `expected` with a message
/// naming `feature`.
fn check(bytes: &[u8], on: bool, expected: Error, feature: &str) {
    match load(bytes) {
        Ok(()) => assert!(on, "loaded without the `{feature}` feature"),
        Err((e, msg)) => {
            assert!(!on, "refused with the `{feature}` feature: {msg}");
            assert_eq!(e, expected);
            assert!(
                msg.contains(&format!("its `{feature}` feature")),
                "message does not name the feature: {msg}"
            );
        }
    }
}

#[test]
fn convolutions_and_max_pooling_need_conv() {
    let on = cfg!(feature = "conv");
    let conv = bytes(
        &[1, 4, 4],
        vec![conv(1, 2, 3, 1, 1), Layer::Flatten, dense(32, 1)],
        MSE,
        0,
    );
    check(&conv, on, Error::UnknownLayer { layer: 0, kind: 1 }, "conv");
    let pool = bytes(
        &[1, 4, 4],
        vec![Layer::Relu, maxpool(2, 2), Layer::Flatten, dense(4, 1)],
        MSE,
        0,
    );
    check(&pool, on, Error::UnknownLayer { layer: 1, kind: 5 }, "conv");
}

#[test]
fn norm_layers_need_norm() {
    let m = bytes(&[3], vec![dense(3, 4), norm(4), dense(4, 1)], MSE, 0);
    let on = cfg!(feature = "norm");
    check(&m, on, Error::UnknownLayer { layer: 1, kind: 2 }, "norm");
}

#[test]
fn the_other_kinds_need_extra_layers() {
    // A clip layer (kind 8, [min, max] as f32 bits) in place of the ReLU, written as a record:
    // the test models' builder for it exists only with the feature.
    let m = Model::new(&[3], vec![dense(3, 4), Layer::Relu, dense(4, 1)], MSE, 7);
    let mut wire = m.wire();
    wire.layers[1] = RawLayer {
        kind: 8,
        args: [0.0f32.to_bits(), 6.0f32.to_bits()].into_iter().collect(),
    };
    let on = cfg!(feature = "extra-layers");
    check(
        &encode(&wire),
        on,
        Error::UnknownLayer { layer: 1, kind: 8 },
        "extra-layers",
    );
}

#[test]
fn cross_entropy_needs_its_feature() {
    let m = bytes(
        &[3],
        vec![dense(3, 4), Layer::Tanh, dense(4, 2)],
        CROSS_ENTROPY,
        0,
    );
    let on = cfg!(feature = "cross-entropy");
    check(&m, on, Error::BadLoss { code: 1 }, "cross-entropy");
}

#[test]
fn adam_needs_its_feature() {
    let m = bytes(&[3], vec![dense(3, 4), Layer::Tanh, dense(4, 1)], MSE, 1);
    let on = cfg!(feature = "adam");
    check(&m, on, Error::BadOptimizer { code: 1 }, "adam");
}

/// A learner is not made over a blob whose layers were changed, after it loaded, to a kind the
/// build leaves out: the passes never meet a kind they were built without.
#[cfg(not(feature = "norm"))]
#[test]
fn a_blob_changed_after_loading_is_checked_again() {
    let m = bytes(&[2], vec![dense(2, 2), Layer::Tanh, dense(2, 1)], MSE, 0);
    let mut blob = Blob::parse(&m).unwrap();
    blob.layers[1] = norm(2);
    let mut arena = vec![0.0; 4096];
    let made = Learner::new(&blob, &mut arena).map(|_| ());
    assert_eq!(made, Err(Error::UnknownLayer { layer: 1, kind: 2 }));
}

/// What every build carries (dense, ReLU, tanh, MSE, SGD) adapts in every build.
#[test]
fn the_minimal_model_adapts_in_every_build() {
    let m = bytes(
        &[1],
        vec![
            dense(1, 8),
            Layer::Relu,
            dense(8, 8),
            Layer::Tanh,
            dense(8, 1),
        ],
        MSE,
        0,
    );
    let blob = Blob::parse(&m).unwrap();
    let mut arena = vec![0.0; blob.arena_len(blob.settings().batch as usize).unwrap()];
    let mut learner = Learner::new(&blob, &mut arena).unwrap();
    let x = [-1.0, -0.3, 0.4, 1.0];
    let y = [0.5, -0.2, 0.3, -0.6];
    let samples = SliceSamples::new(&x, &y, 1, 1).unwrap();
    let report = learner.adapt(&samples, 20).unwrap();
    assert!(report.last_loss < report.first_loss, "{report:?}");
}

/// `Blob::features` names what a build needs for a blob, whatever this build has.
#[cfg(all(
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
#[test]
fn a_blob_names_the_features_it_needs() {
    let cnn = bytes(
        &[1, 4, 4],
        vec![
            conv(1, 2, 3, 1, 1),
            norm(2),
            Layer::Relu,
            Layer::Flatten,
            dense(32, 3),
        ],
        CROSS_ENTROPY,
        1,
    );
    let blob = Blob::parse(&cnn).unwrap();
    assert_eq!(blob.features(), ["conv", "norm", "cross-entropy", "adam"]);
    let mlp = bytes(&[1], vec![dense(1, 4), Layer::Tanh, dense(4, 1)], MSE, 0);
    assert!(Blob::parse(&mlp).unwrap().features().is_empty());
}
