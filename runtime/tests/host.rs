//! The owning host learner ([`OwnedLearner`], feature `std`): the same engine as a borrowed
//! [`Learner`] bit for bit in both layouts, its state kept across calls, one blob shared by
//! many learners, usable from other threads, and the same errors.

mod common;

use anole::{Blob, Error, Learner, Mode, Options, OwnedLearner, Plan, SharedBlob, SliceSamples};
use common::*;

fn cnn() -> Model {
    let mut m = small_cnn(5, 4);
    m.settings.steps = 3;
    m
}

/// The same model with the inner Adam (β1 = 0).
fn cnn_adam() -> Model {
    let mut m = cnn();
    m.settings.optimizer = 1;
    m
}

/// Four samples of a model, drawn from a seed.
struct Support {
    x: Vec<f32>,
    y: Vec<f32>,
    input_len: usize,
}

impl Support {
    fn new(m: &Model, seed: u64) -> Support {
        let (x, y) = random_batch(m, 4, &mut Rng::new(seed));
        Support {
            x,
            y,
            input_len: m.input_len(),
        }
    }
    fn samples(&self) -> SliceSamples<'_> {
        SliceSamples::new(&self.x, &self.y, self.input_len, 1).unwrap()
    }
}

/// A sequence of every kind of call, on a borrowed and an owned learner side by side: each
/// result, the parameters, optimizer state and exported bytes agree bit for bit.
fn same_as_borrowed(m: &Model, opts: Options, mode: Mode) {
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let shared = SharedBlob::parse(bytes.clone()).unwrap();
    let mut arena = vec![
        0.0f32;
        Plan::with_mode(&blob, opts.batch, opts.trainable, mode)
            .unwrap()
            .arena_len()
    ];
    let mut b = Learner::with_mode(&blob, &mut arena, opts, mode).unwrap();
    let mut o = OwnedLearner::with_mode(&shared, opts, mode).unwrap();
    assert_eq!(o.plan().arena_len(), b.plan().arena_len());
    assert_eq!(o.options(), opts);
    assert_eq!(o.export_vec(), bytes, "unadapted export is the blob");

    let mut rng = Rng::new(3);
    let (x, y) = random_batch(m, 6, &mut rng);
    let s = SliceSamples::new(&x, &y, m.input_len(), 1).unwrap();
    assert_eq!(o.adapt(&s, 2), b.adapt(&s, 2));
    let n = opts.batch.min(6);
    let (bx, by) = (&x[..n * m.input_len()], &y[..n]);
    assert_eq!(o.step(bx, by, 0.03), b.step(bx, by, 0.03));
    o.set_lr(0.05).unwrap();
    b.set_lr(0.05).unwrap();
    assert_eq!(o.adapt(&s, 1), b.adapt(&s, 1));
    assert_eq!(o.steps_taken(), 4);
    assert_eq!(o.steps_taken(), b.steps_taken());
    assert_eq!(o.params(), b.params());
    assert_eq!(o.optimizer_state(), b.optimizer_state());
    assert_eq!(o.loss(&s), b.loss(&s));
    let (mut po, mut pb) = (vec![0.0; 6 * 3], vec![0.0; 6 * 3]);
    o.predict(&x, &mut po).unwrap();
    b.predict(&x, &mut pb).unwrap();
    assert_eq!(po, pb);
    assert_eq!(
        o.classify(&x[..m.input_len()]),
        b.classify(&x[..m.input_len()])
    );
    let (mut qo, mut qb) = (vec![0.0; n * 3], vec![0.0; n * 3]);
    o.predict_batch_stats(bx, &mut qo).unwrap();
    b.predict_batch_stats(bx, &mut qb).unwrap();
    assert_eq!(qo, qb);
    if mode == Mode::Buffered {
        assert_eq!(o.gradient(bx, by), b.gradient(bx, by));
        let (mut go, mut gb) = (vec![0.0; o.params().len()], vec![0.0; b.params().len()]);
        o.gradient_into(&mut go).unwrap();
        b.gradient_into(&mut gb).unwrap();
        assert_eq!(go, gb);
    }
    assert_eq!(o.export_vec(), b.export_vec());
    assert_eq!(o.export_len(), b.export_len());
    assert_eq!(
        o.export_optimizer_state_vec(),
        b.export_optimizer_state_vec()
    );
    assert_eq!(o.refresh_norm_stats(&s), b.refresh_norm_stats(&s));
    assert_eq!(o.params(), b.params());

    // Parameters and optimizer state move between the two kinds.
    let mut o2 = OwnedLearner::with_mode(&shared, opts, mode).unwrap();
    o2.set_params(b.params()).unwrap();
    let (steps, state) = b.optimizer_state();
    o2.set_optimizer_state(steps, state).unwrap();
    assert_eq!(o2.step(bx, by, 0.01), b.step(bx, by, 0.01));
    assert_eq!(o2.params(), b.params());
    o.reset();
    b.reset();
    assert_eq!(o.params(), b.params());
    assert_eq!(o.steps_taken(), 0);
}

#[test]
fn owned_equals_borrowed_in_both_layouts() {
    for m in [cnn(), cnn_adam()] {
        let blob_bytes = m.encode();
        let blob = Blob::parse(&blob_bytes).unwrap();
        let all = Options::from_blob(&blob);
        let head = Options {
            trainable: 1 << 7,
            batch: 3,
            lr: 0.02,
        };
        let body = Options {
            trainable: 0b11,
            ..all
        };
        for opts in [all, head, body] {
            for mode in [Mode::Buffered, Mode::Device] {
                same_as_borrowed(&m, opts, mode);
            }
        }
    }
}

/// State is kept between calls: two adaptations in a row equal one of as many steps (the
/// support set fits one batch, so every step sees all of it), and changing the learning rate
/// keeps the parameters and the Adam state.
#[test]
fn state_is_kept_across_calls() {
    let m = cnn_adam();
    let shared = SharedBlob::parse(m.encode()).unwrap();
    let support = Support::new(&m, 9);
    let s = support.samples();
    let mut once = OwnedLearner::new(&shared).unwrap();
    once.adapt(&s, 5).unwrap();
    let mut twice = OwnedLearner::new(&shared).unwrap();
    twice.adapt(&s, 2).unwrap();
    let lr = twice.options().lr;
    twice.set_lr(lr).unwrap();
    assert_eq!(twice.steps_taken(), 2);
    assert!(twice.optimizer_state().1.iter().any(|&v| v > 0.0));
    twice.adapt(&s, 3).unwrap();
    assert_eq!(twice.steps_taken(), 5);
    assert_eq!(twice.params(), once.params());
    assert_eq!(twice.optimizer_state(), once.optimizer_state());
    assert_ne!(twice.params(), OwnedLearner::new(&shared).unwrap().params());
}

/// A clone carries the state and then goes its own way; the original is untouched.
#[test]
fn clones_are_independent() {
    let m = cnn();
    let shared = SharedBlob::parse(m.encode()).unwrap();
    let support = Support::new(&m, 4);
    let s = support.samples();
    let mut a = OwnedLearner::new(&shared).unwrap();
    a.adapt(&s, 1).unwrap();
    let before = a.params().to_vec();
    let mut c = a.clone();
    assert_eq!(c.params(), &before[..]);
    assert_eq!(c.steps_taken(), 1);
    c.adapt(&s, 2).unwrap();
    assert_eq!(a.params(), &before[..]);
    a.adapt(&s, 2).unwrap();
    assert_eq!(a.params(), c.params());
}

/// A thousand learners of one blob read one copy of its bytes; each adapts on its own, in
/// other threads.
#[test]
fn many_learners_share_one_blob_across_threads() {
    fn send_static<T: Send + Sync + 'static>(_: &T) {}
    let m = cnn();
    let shared = SharedBlob::parse(m.encode()).unwrap();
    let mut fleet: Vec<OwnedLearner> = (0..1000)
        .map(|_| OwnedLearner::new(&shared).unwrap())
        .collect();
    send_static(&fleet[0]);
    send_static(&shared);
    assert!(fleet
        .iter()
        .all(|l| l.shared_blob().bytes().as_ptr() == shared.bytes().as_ptr()));
    assert!(fleet.iter().all(|l| core::ptr::eq(l.blob(), shared.blob())));
    std::thread::scope(|scope| {
        for (t, chunk) in fleet.chunks_mut(250).enumerate() {
            let m = &m;
            scope.spawn(move || {
                for (i, l) in chunk.iter_mut().enumerate() {
                    let support = Support::new(m, (t * 250 + i) as u64);
                    l.adapt(&support.samples(), 1).unwrap();
                }
            });
        }
    });
    // Device k adapted on its own samples (seed k), as a lone learner would.
    for k in [0, 1, 999] {
        let mut alone = OwnedLearner::new(&shared).unwrap();
        alone
            .adapt(&Support::new(&m, k as u64).samples(), 1)
            .unwrap();
        assert_eq!(fleet[k].params(), alone.params());
    }
    assert_ne!(fleet[0].params(), fleet[1].params());
}

/// Bad blobs and options are refused with the borrowed learner's errors; `?` converts them.
#[test]
fn errors_are_the_runtime_errors() -> Result<(), Box<dyn std::error::Error>> {
    let m = cnn();
    let bytes = m.encode();
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        SharedBlob::parse(bad.clone()).err(),
        Blob::parse(&bad).err()
    );
    assert!(matches!(
        SharedBlob::parse(&bad[..]),
        Err(Error::CrcMismatch { .. })
    ));
    let shared = SharedBlob::parse(bytes)?;
    let opts = Options::from_blob(shared.blob());
    assert!(matches!(
        OwnedLearner::with_options(
            &shared,
            Options {
                lr: f32::NAN,
                ..opts
            }
        ),
        Err(Error::BadSettings { .. })
    ));
    assert!(matches!(
        OwnedLearner::with_options(&shared, Options { batch: 0, ..opts }),
        Err(Error::BadSettings { .. })
    ));
    assert_eq!(
        OwnedLearner::with_options(
            &shared,
            Options {
                trainable: 1 << 20,
                ..opts
            }
        )
        .err(),
        Some(Error::BadTrainableMask { mask: 1 << 20 })
    );
    let mut l = OwnedLearner::with_mode(&shared, opts, Mode::Device)?;
    let mut g = vec![0.0; l.params().len()];
    assert!(matches!(
        l.gradient_into(&mut g),
        Err(Error::BadSettings { .. })
    ));
    assert_eq!(
        l.set_lr(-1.0).err().map(|e| e.to_string()),
        Some("adaptation settings: learning rate must be finite and >= 0".to_string())
    );
    let x = vec![0.0; 2 * m.input_len()];
    let e = l.predict(&x, &mut [0.0; 5]).unwrap_err();
    assert_eq!(
        e,
        Error::BufferTooSmall {
            needed: 6,
            available: 5
        }
    );
    let mut y = [0.0; 6];
    l.predict(&x, &mut y)?;
    Ok(())
}
