//! Meta-training throughput: Reptile on the sine family with the reference recipe (one task
//! per iteration, 5 inner SGD steps on minibatches of 10 of its 50 points), serial and with a
//! meta-batch of 2 run in parallel. Reported as meta-iterations per second ("elements").

use anole_trainer::meta::{self, Algo, Config};
use anole_trainer::tasks::Sine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ITERS: u64 = 500;

fn reptile(c: &mut Criterion) {
    let mut g = c.benchmark_group("meta-train sine");
    g.throughput(Throughput::Elements(ITERS));
    g.sample_size(20);
    for (name, algo, meta_batch) in [
        ("reptile serial", Algo::Reptile, 1),
        ("reptile meta-batch 2", Algo::Reptile, 2),
        ("fomaml serial", Algo::Fomaml, 1),
        ("joint serial", Algo::Joint, 1),
    ] {
        let cfg = Config {
            algo,
            iters: ITERS,
            meta_batch,
            ..Config::sine()
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                meta::train(&Sine::default(), &cfg, |_, _| {})
                    .map(|t| t.params[0])
                    .unwrap_or(f32::NAN)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, reptile);
criterion_main!(benches);
