//! Engine benchmarks: one adaptation step of the sine MLP (1→64→64→1, tanh, batch 10) and its
//! forward pass at batch 25, one
//! forward pass of the Omniglot CNN (4 × conv 3×3/64/stride 2 + norm + ReLU, dense 256→5) at
//! batch 1 and 25, and one all-layer adaptation step of that CNN at batch 25. Short sample
//! times keep `cargo bench -p anole --features std` under a minute (without `std` the host
//! kernels are the baseline build's, without their AVX2 copies).

#[path = "../tests/common/mod.rs"]
mod common;

use anole::{Blob, Layer, Learner, Options};
use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration;

fn sine_step(c: &mut Criterion) {
    let m = Model::new(
        &[1],
        vec![
            dense(1, 64),
            Layer::Tanh,
            dense(64, 64),
            Layer::Tanh,
            dense(64, 1),
        ],
        MSE,
        1,
    );
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).expect("sine blob");
    let mut arena = vec![0.0f32; blob.arena_len(10).expect("plan")];
    let mut l = Learner::new(&blob, &mut arena).expect("learner");
    let x: Vec<f32> = (0..10).map(|i| -5.0 + i as f32).collect();
    let y: Vec<f32> = x.iter().map(|v| 2.0 * (v + 0.5).sin()).collect();
    c.bench_function("sine_mlp/adapt_step_batch10", |b| {
        b.iter(|| l.step(black_box(&x), black_box(&y), 1e-3).expect("step"))
    });
    let mut arena = vec![0.0f32; blob.arena_len(25).expect("plan")];
    let mut l = Learner::with_options(
        &blob,
        &mut arena,
        Options {
            batch: 25,
            trainable: 0,
            lr: 0.0,
        },
    )
    .expect("learner");
    let x: Vec<f32> = (0..25).map(|i| -5.0 + 0.4 * i as f32).collect();
    let mut out = vec![0.0f32; 25];
    c.bench_function("sine_mlp/forward_batch25", |b| {
        b.iter(|| l.predict(black_box(&x), &mut out).expect("predict"))
    });
}

fn omniglot(c: &mut Criterion) {
    let m = common::omniglot(5, 64);
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).expect("omniglot blob");
    let mut rng = Rng::new(9);
    let x: Vec<f32> = (0..25 * 784)
        .map(|_| {
            if rng.uniform(0.0, 1.0) < 0.2 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let labels: Vec<f32> = (0..25).map(|i| (i % 5) as f32).collect();

    let opts = Options {
        batch: 25,
        trainable: 0,
        lr: 0.0,
    };
    let mut arena = vec![0.0f32; anole::Plan::new(&blob, 25, 0).expect("plan").arena_len()];
    let mut l = Learner::with_options(&blob, &mut arena, opts).expect("learner");
    let mut y = vec![0.0f32; 25 * 5];
    c.bench_function("omniglot_cnn/forward_batch1", |b| {
        b.iter(|| {
            l.predict(black_box(&x[..784]), &mut y[..5])
                .expect("predict")
        })
    });
    c.bench_function("omniglot_cnn/forward_batch25", |b| {
        b.iter(|| l.predict(black_box(&x), &mut y).expect("predict"))
    });

    let all = m.all_layers();
    let opts = Options {
        batch: 25,
        trainable: all,
        lr: 1e-3,
    };
    let mut arena = vec![0.0f32; anole::Plan::new(&blob, 25, all).expect("plan").arena_len()];
    let mut l = Learner::with_options(&blob, &mut arena, opts).expect("learner");
    c.bench_function("omniglot_cnn/adapt_step_batch25", |b| {
        b.iter(|| {
            l.step(black_box(&x), black_box(&labels), 1e-4)
                .expect("step")
        })
    });
}

criterion_group! {
    name = engine;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = sine_step, omniglot
}
criterion_main!(engine);
