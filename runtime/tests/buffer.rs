//! The device's sample ring buffer: replaces the oldest sample when full, refuses samples of
//! the wrong length or holding NaN/infinity without changing its contents, and feeds the
//! learner.

mod common;

use anole::{Blob, Error, Layer, Learner, SampleBuffer, Samples};
use common::*;

fn contents<const N: usize, const I: usize, const T: usize>(
    b: &SampleBuffer<N, I, T>,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    (0..b.len())
        .map(|i| (b.input(i).to_vec(), b.target(i).to_vec()))
        .collect()
}

#[test]
fn replaces_the_oldest_when_full() {
    let mut b: SampleBuffer<3, 2, 1> = SampleBuffer::new();
    assert_eq!(b.capacity(), 3);
    assert!(b.is_empty());
    for i in 0..7 {
        let v = i as f32;
        b.push(&[v, -v], &[10.0 * v]).unwrap();
        assert_eq!(b.len(), (i + 1).min(3));
        // Oldest first, newest last.
        let first = (i as i32 - 2).max(0) as f32;
        assert_eq!(b.input(0), &[first, -first]);
        assert_eq!(b.target(b.len() - 1), &[10.0 * v]);
    }
    assert_eq!(
        contents(&b),
        vec![
            (vec![4.0, -4.0], vec![40.0]),
            (vec![5.0, -5.0], vec![50.0]),
            (vec![6.0, -6.0], vec![60.0])
        ]
    );
    b.clear();
    assert_eq!(b.len(), 0);
}

#[test]
fn refuses_bad_samples_without_changing_contents() {
    let mut b: SampleBuffer<3, 2, 1> = SampleBuffer::new();
    b.push(&[1.0, 2.0], &[3.0]).unwrap();
    b.push(&[4.0, 5.0], &[6.0]).unwrap();
    b.push(&[7.0, 8.0], &[9.0]).unwrap();
    let before = contents(&b);
    let bad: [(&[f32], &[f32]); 6] = [
        (&[1.0], &[1.0]),
        (&[1.0, 2.0, 3.0], &[1.0]),
        (&[1.0, 2.0], &[]),
        (&[f32::NAN, 2.0], &[1.0]),
        (&[1.0, f32::NEG_INFINITY], &[1.0]),
        (&[1.0, 2.0], &[f32::INFINITY]),
    ];
    for (x, t) in bad {
        let e = b.push(x, t).expect_err("bad sample accepted");
        assert!(
            matches!(
                e,
                Error::SampleLength { .. } | Error::NonFiniteSample { .. }
            ),
            "{e}"
        );
        assert_eq!(
            contents(&b),
            before,
            "contents changed by a refused sample {x:?} {t:?}"
        );
    }
}

#[test]
fn feeds_the_learner() {
    let m = Model::new(&[2], vec![dense(2, 8), Layer::Tanh, dense(8, 1)], MSE, 5);
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = vec![0.0f32; blob.arena_len(10).unwrap()];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    let mut b: SampleBuffer<8, 2, 1> = SampleBuffer::new();
    // 20 pushes through a buffer of 8: the ring wraps, the learner sees the last 8 in order.
    for i in 0..20 {
        let x = [i as f32 * 0.1, 1.0 - i as f32 * 0.05];
        b.push(&x, &[x[0] - x[1]]).unwrap();
    }
    let before = l.loss(&b).unwrap();
    l.set_lr(0.05).unwrap();
    l.adapt(&b, 50).unwrap();
    let after = l.loss(&b).unwrap();
    assert!(after < 0.5 * before, "loss {before} -> {after}");
}
