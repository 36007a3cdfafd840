//! Unit tests of the learner on a small CNN built here (the integration tests in
//! `runtime/tests` cover the rest through the public API).

use super::*;
use crate::blob::{AdaptSettings, Provenance, FORMAT_VERSION_1, MAGIC};
use crate::dtype::DType;
use crate::layers::{Layer, Window};
use crate::limits::MAX_TENSORS;
use crate::loss;
use crate::wire::{Wire, OPTIMIZER_STATE};
use heapless::Vec as HVec;

const BATCH: usize = 4;
const IN: usize = 2 * 3 * 3;

/// conv 3×3 (2 → 3 channels, padding 1) → norm → ReLU → flatten → dense 27 → 2, on
/// 2×3×3 inputs, cross-entropy; parameters from a fixed formula, stored statistics
/// deliberately unlike any batch's.
fn blob_bytes(buf: &mut [u8]) -> &[u8] {
    blob_bytes_with(buf, 0)
}

/// [`blob_bytes`] with optimizer code `optimizer`.
fn blob_bytes_with(buf: &mut [u8], optimizer: u8) -> &[u8] {
    let layers = [
        Layer::Conv2d {
            in_channels: 2,
            out_channels: 3,
            window: Window {
                kernel: 3,
                stride: 1,
                padding: 1,
            },
        },
        Layer::Norm {
            channels: 3,
            eps: 1e-3,
        },
        Layer::Relu,
        Layer::Flatten,
        Layer::Dense {
            inputs: 27,
            outputs: 2,
        },
    ];
    let wave = |n: usize, k: f32| -> [f32; 54] {
        let mut v = [0.0; 54];
        for (i, x) in v.iter_mut().enumerate().take(n) {
            *x = 0.3 * libm::sinf(k * (i as f32 + 1.0));
        }
        v
    };
    let (cw, cb, dw, db) = (wave(54, 1.3), wave(3, 2.1), wave(54, 0.7), wave(2, 3.3));
    let (gamma, beta, mean, var) = ([1.2, 0.8, 1.0], [0.1, -0.2, 0.3], [0.5; 3], [4.0; 3]);
    let tensors: [&[f32]; 8] = [&cw, &cb[..3], &gamma, &beta, &mean, &var, &dw, &db[..2]];
    let mut wire = Wire {
        magic: MAGIC,
        version: FORMAT_VERSION_1,
        input_shape: HVec::new(),
        layers: HVec::new(),
        tensors: HVec::<TensorValues<'_>, MAX_TENSORS>::new(),
        adapt: AdaptSettings {
            loss: 1,
            optimizer,
            lr: 0.1,
            steps: 5,
            batch: BATCH as u32,
            trainable: 0b11111,
            head_start: 0,
            head_scale: 1.0,
            lr_scale: HVec::new(),
        },
        provenance: Provenance {
            algorithm: "test",
            task: "test",
            seed: 0,
            meta_iterations: 0,
        },
    };
    for d in [2, 3, 3] {
        wire.input_shape.push(d).unwrap();
    }
    for l in layers {
        wire.layers.push(l.to_raw()).unwrap();
    }
    for values in tensors {
        let _ = wire.tensors.push(TensorValues {
            dtype: DType::F32,
            values,
        });
    }
    Blob::encode_wire(&wire, buf).unwrap()
}

fn inputs(shift: f32) -> [f32; BATCH * IN] {
    let mut x = [0.0; BATCH * IN];
    for (i, v) in x.iter_mut().enumerate() {
        *v = libm::sinf(0.37 * i as f32 + shift) + 0.1 * (i % 5) as f32;
    }
    x
}

/// Four Adam steps in one go equal two, then the parameters and optimizer state carried
/// into a learner that had taken other steps, then two more: bit for bit.
#[test]
fn carried_optimizer_state_continues_exactly() {
    let mut buf = [0u8; 4096];
    let bytes = blob_bytes_with(&mut buf, 1);
    let blob = Blob::parse(bytes).unwrap();
    let y = [0.0, 1.0, 1.0, 0.0];
    let mut a_arena = [0.0f32; 4096];
    let mut a = Learner::new(&blob, &mut a_arena).unwrap();
    for s in 0..4 {
        a.step(&inputs(s as f32), &y, 0.01).unwrap();
    }
    let mut b_arena = [0.0f32; 4096];
    let mut b = Learner::new(&blob, &mut b_arena).unwrap();
    for s in 0..2 {
        b.step(&inputs(s as f32), &y, 0.01).unwrap();
    }
    let (steps, state) = b.optimizer_state();
    assert_eq!(steps, 2);
    assert!(state.iter().any(|&v| v > 0.0));
    let mut c_arena = [0.0f32; 4096];
    let mut c = Learner::new(&blob, &mut c_arena).unwrap();
    c.step(&inputs(9.0), &y, 0.05).unwrap();
    c.set_params(b.params()).unwrap();
    assert_eq!(c.optimizer_state().0, 0);
    assert!(c.optimizer_state().1.iter().all(|&v| v == 0.0));
    c.set_optimizer_state(steps, state).unwrap();
    for s in 2..4 {
        c.step(&inputs(s as f32), &y, 0.01).unwrap();
    }
    assert_eq!(c.params(), a.params());
    assert_eq!(c.optimizer_state(), a.optimizer_state());
    // The same through an optimizer-state blob.
    let mut sbuf = [0u8; 4096];
    let sbytes = b.export_optimizer_state(&mut sbuf).unwrap();
    assert_eq!(sbytes.len(), b.optimizer_state_len());
    let sblob = Blob::parse(sbytes).unwrap();
    assert_eq!(sblob.wire.provenance.algorithm, OPTIMIZER_STATE);
    let mut d_arena = [0.0f32; 4096];
    let mut d = Learner::new(&blob, &mut d_arena).unwrap();
    assert_eq!(
        d.load_optimizer_state_from(&blob),
        Err(Error::NotOptimizerState)
    );
    d.set_params(b.params()).unwrap();
    d.load_optimizer_state_from(&sblob).unwrap();
    assert_eq!(d.optimizer_state(), b.optimizer_state());
    for s in 2..4 {
        d.step(&inputs(s as f32), &y, 0.01).unwrap();
    }
    assert_eq!(d.params(), a.params());
    // A refused state changes nothing.
    let before = c.params().to_vec();
    let mut bad = c.optimizer_state().1.to_vec();
    bad[0] = f32::NAN;
    assert_eq!(
        c.set_optimizer_state(7, &bad),
        Err(Error::BadOptimizerState { index: 0 })
    );
    assert_eq!(c.optimizer_state(), a.optimizer_state());
    assert_eq!(c.params(), &before[..]);
}

/// SGD keeps no optimizer state: its optimizer-state blob holds zeros in every tensor,
/// in both layouts (the device layout has gradient buffers but no state).
#[test]
fn sgd_exports_an_all_zero_optimizer_state() {
    let mut buf = [0u8; 4096];
    let bytes = blob_bytes(&mut buf);
    let blob = Blob::parse(bytes).unwrap();
    let y = [0.0, 1.0, 1.0, 0.0];
    for mode in [Mode::Buffered, Mode::Device] {
        let mut arena = [0.0f32; 4096];
        let mut l = Learner::with_mode(&blob, &mut arena, Options::from_blob(&blob), mode).unwrap();
        l.step(&inputs(0.0), &y, 0.01).unwrap();
        let mut sbuf = [0u8; 4096];
        let sbytes = l.export_optimizer_state(&mut sbuf).unwrap();
        assert_eq!(sbytes.len(), l.optimizer_state_len());
        let state = Blob::parse(sbytes).unwrap();
        assert_eq!(state.wire.provenance.algorithm, OPTIMIZER_STATE);
        assert_eq!(state.wire.provenance.meta_iterations, 1);
        assert!(state
            .wire
            .tensors
            .iter()
            .all(|t| t.data.iter().all(|&b| b == 0)));
    }
}

#[test]
fn predict_batch_stats_is_the_adaptation_forward_pass() {
    let mut buf = [0u8; 4096];
    let bytes = blob_bytes(&mut buf);
    let blob = Blob::parse(bytes).unwrap();
    let x = inputs(0.0);
    let y = [0.0, 1.0, 1.0, 0.0];
    let mut arena = [0.0f32; 4096];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    let mut params = [0.0f32; 512];
    let np = l.params().len();
    params[..np].copy_from_slice(l.params());

    let mut out = [0.0f32; BATCH * 2];
    l.predict_batch_stats(&x, &mut out).unwrap();
    assert_eq!(l.params(), &params[..np], "parameters changed");
    // Its outputs give exactly the loss of a gradient step's forward pass on these rows.
    let ce = loss::cross_entropy(&out, &y, 2, None);
    assert_eq!(ce, l.gradient(&x, &y).unwrap());
    // Stored statistics set to these rows' statistics give the same outputs per sample.
    let mut stored = [0.0f32; BATCH * 2];
    l.refresh_norm_stats(&SliceSamples::new(&x, &y, IN, 1).unwrap())
        .unwrap();
    l.predict(&x, &mut stored).unwrap();
    for (a, b) in out.iter().zip(&stored) {
        assert!((a - b).abs() < 1e-5, "{out:?} vs {stored:?}");
    }
    // ... but not with the blob's own statistics, and a row depends on the other rows.
    l.reset();
    l.predict(&x, &mut stored).unwrap();
    assert!(out.iter().zip(&stored).any(|(a, b)| (a - b).abs() > 1e-3));
    let mut other = inputs(1.0);
    other[..IN].copy_from_slice(&x[..IN]);
    let mut out2 = [0.0f32; BATCH * 2];
    l.predict_batch_stats(&other, &mut out2).unwrap();
    assert_ne!(out[..2], out2[..2]);
    // Fewer rows than the batch are fine; more, none, or a wrong buffer are refused.
    l.predict_batch_stats(&x[..2 * IN], &mut out[..4]).unwrap();
    let mut big = [0.0f32; (BATCH + 1) * IN];
    big[..BATCH * IN].copy_from_slice(&x);
    let mut big_out = [0.0f32; (BATCH + 1) * 2];
    assert_eq!(
        l.predict_batch_stats(&big, &mut big_out),
        Err(Error::BatchTooLarge {
            requested: BATCH + 1,
            capacity: BATCH
        })
    );
    assert_eq!(l.predict_batch_stats(&[], &mut []), Err(Error::NoSamples));
    assert!(l.predict_batch_stats(&x, &mut out[..3]).is_err());
}

#[test]
fn frozen_norm_layers_keep_stored_statistics() {
    let mut buf = [0u8; 4096];
    let bytes = blob_bytes(&mut buf);
    let blob = Blob::parse(bytes).unwrap();
    let x = inputs(0.5);
    let mut arena = [0.0f32; 4096];
    let opts = Options {
        trainable: 1 << 4,
        ..Options::from_blob(&blob)
    };
    let mut l = Learner::with_options(&blob, &mut arena, opts).unwrap();
    let (mut a, mut b) = ([0.0f32; BATCH * 2], [0.0f32; BATCH * 2]);
    l.predict_batch_stats(&x, &mut a).unwrap();
    l.predict(&x, &mut b).unwrap();
    assert_eq!(a, b);
}
