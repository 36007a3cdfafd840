//! Pins the arena size: for the sine MLP (1→64→64→1, tanh) at batch 10 the learner needs no
//! more than parameters + gradients + the activations of one batch (input and every layer's
//! output), and the exact figure is asserted so any regression shows.

mod common;

use anole::{Blob, Layer, Learner, Plan};
use common::*;

fn sine() -> Model {
    Model::new(
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
    )
}

#[test]
fn sine_mlp_arena_at_batch_10() {
    let m = sine();
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let batch = 10;
    let params = blob.param_count();
    assert_eq!(params, 4353);
    let grads = params; // every layer adapts
    let shapes = m.shapes();
    let activations = batch * shapes.iter().map(|s| s.len()).sum::<usize>();
    assert_eq!(activations, 10 * (1 + 64 + 64 + 64 + 64 + 1));
    let bound = params + grads + activations;

    let arena = blob.arena_len(batch).unwrap();
    let plan = Plan::new(&blob, batch, blob.settings().trainable).unwrap();
    println!(
        "sine MLP, batch {batch}: arena {arena} f32 ({} bytes) = params {} + grads {} + optimizer {} + activations {} \
         + targets {} + gradient scratch {} + norm scratch {}; bound params + grads + activations = {bound}",
        4 * arena,
        plan.params_len,
        plan.grads_len,
        plan.opt_len,
        plan.acts_len,
        plan.targets_len,
        plan.gscratch_len,
        plan.norm_len
    );
    assert!(
        arena <= bound,
        "arena {arena} exceeds params + grads + activations = {bound}"
    );
    assert_eq!(arena, 10_656, "arena size changed");

    // The figure is exact: the learner works in that many f32 and refuses one fewer.
    let mut exact = vec![0.0f32; arena];
    let mut l = Learner::new(&blob, &mut exact).unwrap();
    let xs: Vec<f32> = (0..10).map(|i| i as f32 * 0.5 - 2.5).collect();
    let ys: Vec<f32> = xs.iter().map(|x| x.sin()).collect();
    l.adapt(&anole::SliceSamples::new(&xs, &ys, 1, 1).unwrap(), 5)
        .unwrap();
    let mut short = vec![0.0f32; arena - 1];
    assert!(Learner::new(&blob, &mut short).is_err());

    // Prediction only (nothing adapts) needs parameters and activations only.
    let predict = Plan::new(&blob, 1, 0).unwrap().arena_len();
    println!("sine MLP, predict only at batch 1: {predict} f32");
    assert!(predict <= params + shapes.iter().map(|s| s.len()).sum::<usize>() + 1);
}

#[cfg(all(
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
#[test]
fn omniglot_cnn_arena_figures() {
    let m = omniglot(5, 64);
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let all = m.all_layers();
    let head = 1 << (m.layers.len() - 1);
    for (what, batch, mask) in [
        ("all layers", 25, all),
        ("all layers", 5, all),
        ("head only", 25, head),
        ("predict", 1, 0),
    ] {
        let plan = Plan::new(&blob, batch, mask).unwrap();
        println!(
            "omniglot CNN, {what}, batch {batch}: {} f32 ({:.1} KiB)",
            plan.arena_len(),
            plan.arena_len() as f64 * 4.0 / 1024.0
        );
        // The same bound as for the MLP, plus per-channel scratch of the norm layers.
        let acts: usize = batch * m.shapes().iter().map(|s| s.len()).sum::<usize>();
        assert!(plan.arena_len() <= plan.params_len + plan.grads_len + acts + plan.norm_len);
    }
}
