//! The Omniglot CNN (4 × conv 3×3/64/stride 2/pad 1 + norm + ReLU, flatten, dense 256→5, on
//! 1×28×28) loads, predicts, adapts on a small synthetic 5-way problem, recomputes its norm
//! statistics from the support set exactly, and adapts head-only.

mod common;

use anole::{Blob, Learner, Options, Plan, SliceSamples};
use common::*;

const WAYS: usize = 5;
const SHOTS: usize = 5;
const PIXELS: usize = 28 * 28;

/// `SHOTS` noisy copies of `WAYS` random stroke-like prototypes (about 20% ink), labels
/// 0..WAYS; a second draw with another seed gives a query set of the same classes.
fn task(seed: u64, query_seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let protos: Vec<Vec<f32>> = (0..WAYS)
        .map(|_| {
            (0..PIXELS)
                .map(|_| {
                    if rng.uniform(0.0, 1.0) < 0.2 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let draw = |rng: &mut Rng| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..SHOTS {
            for (c, p) in protos.iter().enumerate() {
                x.extend(p.iter().map(|&v| {
                    if rng.uniform(0.0, 1.0) < 0.05 {
                        1.0 - v
                    } else {
                        v
                    }
                }));
                y.push(c as f32);
            }
        }
        (x, y)
    };
    let (xs, ys) = draw(&mut rng);
    let (xq, yq) = draw(&mut Rng::new(query_seed));
    (xs, ys, xq, yq)
}

fn accuracy(l: &mut Learner<'_, '_>, x: &[f32], y: &[f32]) -> f32 {
    let mut hits = 0;
    for (row, &label) in x.chunks(PIXELS).zip(y) {
        hits += (l.classify(row).unwrap() == label as usize) as usize;
    }
    hits as f32 / y.len() as f32
}

fn model() -> Model {
    let mut m = omniglot(WAYS, 64);
    m.settings.optimizer = 1; // Adam with beta1 = 0, as in the paper's inner loop
    m.settings.lr = 1e-3;
    m.settings.batch = (WAYS * SHOTS) as u32;
    m.settings.steps = 10;
    m
}

#[test]
fn loads_predicts_and_adapts() {
    let m = model();
    assert_eq!(m.params.len(), 113_733);
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    assert_eq!(
        (blob.input_len(), blob.output_len(), blob.param_count()),
        (PIXELS, WAYS, 113_733)
    );
    let batch = WAYS * SHOTS;
    let mut arena = vec![0.0f32; blob.arena_len(batch).unwrap()];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    let (xs, ys, xq, yq) = task(1, 2);

    // Batch 1 and batch 25 predictions agree (stored statistics: per-sample inference).
    let mut y25 = vec![0.0f32; batch * WAYS];
    l.predict(&xs, &mut y25).unwrap();
    for (row, out) in xs.chunks(PIXELS).zip(y25.chunks(WAYS)).take(3) {
        let mut y1 = [0.0f32; WAYS];
        l.predict(row, &mut y1).unwrap();
        assert_eq!(&y1[..], out);
    }
    assert!(y25.iter().all(|v| v.is_finite()));

    let support = SliceSamples::new(&xs, &ys, PIXELS, 1).unwrap();
    let query = SliceSamples::new(&xq, &yq, PIXELS, 1).unwrap();
    let before = l.loss(&support).unwrap();
    let acc_before = accuracy(&mut l, &xq, &yq);
    let r = l.adapt(&support, 10).unwrap();
    let after = l.loss(&support).unwrap();
    let acc_after = accuracy(&mut l, &xq, &yq);
    println!(
        "omniglot CNN, all layers: support loss {before:.4} -> {after:.4} (minibatch {:.4} -> {:.4}), \
         query loss {:.4}, query accuracy {acc_before:.2} -> {acc_after:.2}",
        r.first_loss,
        r.last_loss,
        l.loss(&query).unwrap()
    );
    assert_eq!(r.steps, 10);
    assert!(after < 0.5 * before, "support loss {before} -> {after}");
    assert!(r.last_loss < r.first_loss);
    assert!(acc_after >= 0.8, "query accuracy {acc_after}");

    // The stored statistics are the support set's, layer by layer (f64 reference).
    let p = widen(l.params());
    let trace = reference_forward(&m, &p, &widen(&xs), batch, 0);
    let offs = m.layer_offsets();
    for (i, layer) in m.layers.iter().enumerate() {
        let anole::Layer::Norm { channels: c, .. } = *layer else {
            continue;
        };
        let x = &trace.acts[i];
        let sp = x.len() / batch / c;
        for ch in 0..c {
            let vals: Vec<f64> = (0..batch)
                .flat_map(|b| (0..sp).map(move |j| (b * c + ch) * sp + j))
                .map(|k| x[k])
                .collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            let (sm, sv) = (p[offs[i] + 2 * c + ch], p[offs[i] + 3 * c + ch]);
            assert!(
                (sm - mean).abs() <= 1e-4 * (1.0 + mean.abs()),
                "layer {i} ch {ch}: mean {sm} vs {mean}"
            );
            assert!(
                (sv - var).abs() <= 1e-4 * (1.0 + var.abs()),
                "layer {i} ch {ch}: var {sv} vs {var}"
            );
        }
    }

    // Exported and reloaded, the adapted model predicts identically.
    let mut out = vec![0u8; l.export_len()];
    let exported = l.export(&mut out).unwrap().to_vec();
    let blob2 = Blob::parse(&exported).unwrap();
    let mut arena2 = vec![
        0.0f32;
        blob2
            .arena_len(1)
            .unwrap()
            .max(Plan::new(&blob2, batch, 0).unwrap().arena_len())
    ];
    let mut l2 = Learner::with_options(
        &blob2,
        &mut arena2,
        Options {
            batch,
            trainable: 0,
            lr: 0.0,
        },
    )
    .unwrap();
    let (mut a, mut b) = (vec![0.0f32; batch * WAYS], vec![0.0f32; batch * WAYS]);
    l.predict(&xq, &mut a).unwrap();
    l2.predict(&xq, &mut b).unwrap();
    assert_eq!(a, b);
}

/// Every host kernel path the CPU has (baseline, AVX2, AVX-512, forced in turn by
/// `anole::simd::force`) adapts the CNN to the same bits and predicts the same bits: the
/// convolutions (with `gemm`: the AVX-512 and AVX2/FMA kernels), norm, ReLU, dense and Adam.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[test]
fn every_host_path_gives_the_same_bits() {
    use anole::simd::{force, Path};
    let bytes = model().encode();
    let blob = Blob::parse(&bytes).unwrap();
    let batch = WAYS * SHOTS;
    let (xs, ys, xq, _) = task(3, 4);
    let support = SliceSamples::new(&xs, &ys, PIXELS, 1).unwrap();
    let run = |p: Path| {
        let took = force(Some(p));
        let mut arena = vec![0.0f32; blob.arena_len(batch).unwrap()];
        let mut l = Learner::new(&blob, &mut arena).unwrap();
        l.adapt(&support, 3).unwrap();
        let mut y = vec![0.0f32; batch * WAYS];
        l.predict(&xq, &mut y).unwrap();
        let bits: Vec<u32> = l.params().iter().chain(&y).map(|v| v.to_bits()).collect();
        (took, bits)
    };
    let runs: Vec<(Path, Vec<u32>)> = [Path::Baseline, Path::Avx2, Path::Avx512]
        .into_iter()
        .map(run)
        .collect();
    force(None);
    println!(
        "paths run: {:?}",
        runs.iter().map(|r| r.0.name()).collect::<Vec<_>>()
    );
    for (took, bits) in &runs[1..] {
        let first = bits.iter().zip(&runs[0].1).position(|(a, b)| a != b);
        assert_eq!(first, None, "{took:?} against the baseline");
    }
}

#[test]
fn head_only_adaptation() {
    let m = model();
    let (xs, ys, xq, yq) = task(3, 4);
    let support = SliceSamples::new(&xs, &ys, PIXELS, 1).unwrap();
    let batch = WAYS * SHOTS;
    // A body with data statistics, as a meta-trained one has: one all-layer pass at learning
    // rate 0 changes nothing but the stored norm statistics, recomputed from the support set.
    let random = m.encode();
    let bytes = {
        let blob = Blob::parse(&random).unwrap();
        let mut arena = vec![0.0f32; blob.arena_len(batch).unwrap()];
        let mut l = Learner::new(&blob, &mut arena).unwrap();
        l.set_lr(0.0).unwrap();
        l.adapt(&support, 1).unwrap();
        let mut out = vec![0u8; l.export_len()];
        l.export(&mut out).unwrap().to_vec()
    };
    let blob = Blob::parse(&bytes).unwrap();
    let m = Model {
        params: (0..blob.wire.tensors.len())
            .flat_map(|t| {
                let mut v = vec![0.0f32; m.tensor_lens()[t]];
                blob.read_tensor(t, &mut v);
                v
            })
            .collect(),
        ..m
    };
    let head: anole::LayerMask = 1 << (m.layers.len() - 1);
    let full = Plan::new(&blob, batch, m.all_layers()).unwrap().arena_len();
    let plan = Plan::new(&blob, batch, head).unwrap();
    assert_eq!(plan.grads_len, 256 * WAYS + WAYS);
    assert!(plan.arena_len() < full);
    println!(
        "arena at batch {batch}: all layers {full} f32, head only {} f32",
        plan.arena_len()
    );
    let mut arena = vec![0.0f32; plan.arena_len()];
    let opts = Options {
        batch,
        trainable: head,
        lr: 0.01,
    };
    let mut l = Learner::with_options(&blob, &mut arena, opts).unwrap();
    let before = l.loss(&support).unwrap();
    let acc_before = accuracy(&mut l, &xq, &yq);
    l.adapt(&support, 20).unwrap();
    let after = l.loss(&support).unwrap();
    let acc_after = accuracy(&mut l, &xq, &yq);
    println!("omniglot CNN, head only: support loss {before:.4} -> {after:.4}, query accuracy {acc_before:.2} -> {acc_after:.2}");
    assert!(after < 0.5 * before, "support loss {before} -> {after}");
    assert!(acc_after >= 0.8, "query accuracy {acc_after}");
    // Everything but the head is bit-for-bit the blob's, norm statistics included.
    let head_off = *m.layer_offsets().last().unwrap();
    assert!(l.params()[..head_off]
        .iter()
        .zip(&m.params)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(l.params()[head_off..] != m.params[head_off..]);
}
