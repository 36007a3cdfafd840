//! Update deltas (`anole::delta`): a dense delta reads back as the learner's adapted minus the
//! blob's parameters of the adapting layers, in binary16; top-k keeps exactly the k largest;
//! applying a delta moves a learner's parameters; every damaged or inconsistent delta is
//! refused with its own error, never a panic.

mod common;

use anole::delta::{self, DeltaError, Header, OVERHEAD};
use anole::{Blob, Layer, Learner, Options, SliceSamples};
use common::{dense, norm, Model, Rng, MSE};

const HEAD: Header = Header {
    round: 3,
    fingerprint: 0x0123_4567_89ab_cdef,
};

/// A small regression model: dense 2→8, norm, tanh, dense 8→3.
fn model() -> Model {
    Model::new(
        &[2],
        vec![dense(2, 8), norm(8), Layer::Tanh, dense(8, 3)],
        MSE,
        7,
    )
}

/// Adapt `blob` (trainable mask `mask`) on a few samples; return the learner's parameters
/// and the blob's.
fn adapted(
    blob: &Blob<'_>,
    mask: anole::LayerMask,
    arena: &mut Vec<f32>,
) -> (Vec<f32>, anole::Plan) {
    let opts = Options {
        trainable: mask,
        ..Options::from_blob(blob)
    };
    arena.resize(blob.arena_len(opts.batch).unwrap(), 0.0);
    let mut l = Learner::with_options(blob, arena, opts).unwrap();
    let mut rng = Rng::new(1);
    let x = rng.vec(20, -1.0, 1.0);
    let y = rng.vec(30, -1.0, 1.0);
    let s = SliceSamples::new(&x, &y, 2, 3).unwrap();
    l.adapt(&s, 5).unwrap();
    (l.params().to_vec(), l.plan().clone())
}

fn initial(blob: &Blob<'_>, plan: &anole::Plan) -> Vec<f32> {
    let mut arena = vec![0.0; plan.arena_len()];
    let l = Learner::with_options(
        blob,
        &mut arena,
        Options {
            trainable: plan.trainable,
            ..Options::from_blob(blob)
        },
    )
    .unwrap();
    l.params().to_vec()
}

#[test]
fn dense_delta_is_adapted_minus_initial_of_adapting_layers() {
    let bytes = model().encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    // Layers 0 (dense) and 3 (dense) adapt; the norm layer does not.
    let (params, plan) = adapted(&blob, 0b1001, &mut arena);
    let init = initial(&blob, &plan);
    let n = delta::coordinates(&blob, &plan);
    assert_eq!(n, 2 * 8 + 8 + 8 * 3 + 3);
    let mut out = vec![0u8; delta::encoded_len(n, None)];
    assert_eq!(out.len(), OVERHEAD + 2 * n);
    let written = delta::write(&blob, &plan, &params, HEAD, None, &mut out).unwrap();
    let d = delta::Delta::parse(written).unwrap();
    assert_eq!(d.header, HEAD);
    assert_eq!((d.coordinates, d.entries(), d.is_sparse()), (n, n, false));
    let mut dense = vec![0.0; n];
    d.to_dense(&mut dense).unwrap();
    // Coordinates: layer 0's 24 parameters, then layer 3's 27 (after the norm layer's 32).
    let positions: Vec<usize> = (0..24).chain(24 + 32..24 + 32 + 27).collect();
    let mut moved = 0;
    for (c, &p) in positions.iter().enumerate() {
        let want = half::f16::from_f32(params[p] - init[p]).to_f32();
        assert_eq!(dense[c].to_bits(), want.to_bits(), "coordinate {c}");
        moved += usize::from(dense[c] != 0.0);
    }
    assert!(moved > n / 2, "adaptation moved only {moved} of {n}");

    // Applying the delta to the initial parameters lands (to f16 precision) on the adapted ones.
    let mut back = init.clone();
    delta::apply(&blob, &plan, &mut back, &dense, 1.0).unwrap();
    for (i, (b, p)) in back.iter().zip(&params).enumerate() {
        assert!(
            (b - p).abs() <= 1e-3 * p.abs().max(1.0),
            "parameter {i}: {b} vs {p}"
        );
    }
    // The frozen norm layer is untouched.
    assert_eq!(back[24..56], init[24..56]);
}

#[test]
fn top_k_keeps_the_largest_magnitudes() {
    let bytes = model().encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let (params, plan) = adapted(&blob, 0b1111, &mut arena);
    let n = delta::coordinates(&blob, &plan);
    let mut full = vec![0u8; delta::encoded_len(n, None)];
    let full = delta::write(&blob, &plan, &params, HEAD, None, &mut full).unwrap();
    let mut dense = vec![0.0; n];
    delta::Delta::parse(full)
        .unwrap()
        .to_dense(&mut dense)
        .unwrap();
    for k in [1, 5, 17, n / 4] {
        let len = delta::encoded_len(n, Some(k));
        assert_eq!(len, OVERHEAD + 4 * k);
        let mut out = vec![0u8; len];
        let w = delta::write(&blob, &plan, &params, HEAD, Some(k), &mut out).unwrap();
        let d = delta::Delta::parse(w).unwrap();
        assert!(d.is_sparse());
        assert_eq!(d.entries(), k);
        let kept: Vec<(usize, f32)> = d.iter().collect();
        let mut sorted: Vec<f32> = dense.iter().map(|v| v.abs()).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let smallest_kept = kept.iter().map(|e| e.1.abs()).fold(f32::INFINITY, f32::min);
        assert_eq!(smallest_kept, sorted[k - 1], "k = {k}");
        for (c, v) in kept {
            assert_eq!(v, dense[c]);
        }
    }
    // A k as large as the dense form is written dense.
    let mut out = vec![0u8; delta::encoded_len(n, None)];
    let w = delta::write(&blob, &plan, &params, HEAD, Some(n), &mut out).unwrap();
    assert!(!delta::Delta::parse(w).unwrap().is_sparse());
}

#[test]
fn bad_arguments_are_errors() {
    let bytes = model().encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let (mut params, plan) = adapted(&blob, 0b1001, &mut arena);
    let n = delta::coordinates(&blob, &plan);
    let mut out = vec![0u8; delta::encoded_len(n, None)];
    let r = delta::write(&blob, &plan, &params, HEAD, Some(0), &mut out);
    assert_eq!(r.unwrap_err(), DeltaError::ZeroTopK);
    let r = delta::write(&blob, &plan, &params, HEAD, None, &mut out[..10]);
    assert!(matches!(r, Err(DeltaError::BufferTooSmall { .. })));
    let r = delta::write(&blob, &plan, &params[1..], HEAD, None, &mut out);
    assert!(matches!(r, Err(DeltaError::Coordinates { .. })));
    params[3] = f32::NAN;
    let r = delta::write(&blob, &plan, &params, HEAD, None, &mut out);
    assert_eq!(r.unwrap_err(), DeltaError::NonFinite { coordinate: 3 });
    let mut p = initial(&blob, &plan);
    let before = p.clone();
    let r = delta::apply(&blob, &plan, &mut p, &vec![0.0; n + 1], 1.0);
    assert!(matches!(r, Err(DeltaError::Coordinates { .. })));
    let mut huge = vec![0.0; n];
    huge[n - 1] = f32::MAX;
    let r = delta::apply(&blob, &plan, &mut p, &huge, 4.0);
    assert_eq!(r.unwrap_err(), DeltaError::NonFinite { coordinate: n - 1 });
    assert_eq!(p, before, "a refused apply changes nothing");
}

#[test]
fn damaged_deltas_are_refused() {
    let bytes = model().encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = Vec::new();
    let (params, plan) = adapted(&blob, 0b1111, &mut arena);
    let n = delta::coordinates(&blob, &plan);
    for top_k in [None, Some(9)] {
        let mut out = vec![0u8; delta::encoded_len(n, top_k)];
        let good = delta::write(&blob, &plan, &params, HEAD, top_k, &mut out)
            .unwrap()
            .to_vec();
        // Every truncation and every single-bit flip is an error, never a panic.
        for len in 0..good.len() {
            assert!(delta::Delta::parse(&good[..len]).is_err(), "{len} bytes");
        }
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(delta::Delta::parse(&bad).is_err(), "bit {bit}");
        }
        // With the CRC fixed up, the structural checks still refuse.
        let fix = |mut b: Vec<u8>| {
            let end = b.len() - 4;
            let crc = anole::wire::crc32(&b[..end]);
            b[end..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let mut nan = good.clone();
        let v = nan.len() - 6;
        nan[v..v + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
        let e = delta::Delta::parse(&fix(nan)).unwrap_err();
        assert!(matches!(e, DeltaError::NonFinite { .. }), "{e}");
        let mut version = good.clone();
        version[4] = 2;
        assert_eq!(
            delta::Delta::parse(&fix(version)).unwrap_err(),
            DeltaError::Version { found: 2 }
        );
        if top_k.is_some() {
            let mut order = good.clone();
            order.swap(28, 30);
            order.swap(29, 31);
            let e = delta::Delta::parse(&fix(order)).unwrap_err();
            assert!(matches!(e, DeltaError::BadIndex { entry: 1, .. }), "{e}");
        }
    }
}

#[test]
fn fingerprint_names_the_bytes() {
    let a = model().encode();
    let mut b = a.clone();
    let i = b.len() / 2;
    b[i] ^= 1;
    assert_eq!(delta::fingerprint(&a), delta::fingerprint(&a.clone()));
    assert_ne!(delta::fingerprint(&a), delta::fingerprint(&b));
}
