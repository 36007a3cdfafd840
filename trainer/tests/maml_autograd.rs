//! The second-order MAML meta-gradient of `anole train --algo maml` (engine gradients, central
//! differences for the Hessian-vector products) against the exact one, computed in float64 by
//! automatic differentiation through the inner SGD steps (`maml_reference.py`, with the
//! `autograd` package, which it installs with pip when missing): the sine MLP at two
//! initializations, three tasks, 1 to 5 inner steps, at the paper's inner lr and at a larger
//! one. The error is also printed for several difference steps (`--nocapture`), and the
//! second-order part must be far larger than the error (the test tells MAML from FOMAML).
//!
//! Skipped (loudly) only when python3 or pip is unavailable, and never under CI (`CI` set).

use anole::{DType, Layer, Options, OwnedLearner};
use anole_trainer::meta::maml::{meta_gradient, Tape, HVP_STEP};
use anole_trainer::meta::{adapt_settings, Config};
use anole_trainer::model::{encode_blob, shared, Arch, BlobMeta};
use anole_trainer::tasks::{self, Batch, Sine, Stream, TaskFamily};
use serde_json::json;
use std::process::Command;

/// Relative error (‖engine − exact‖ / ‖exact‖) allowed at [`HVP_STEP`].
const TOL: f64 = 1e-4;
/// Difference steps whose error is printed.
const STEPS: [f32; 5] = [1e-4, 1e-3, 3e-3, 1e-2, 3e-2];

fn learner(arch: &Arch, phi: &[f32], batch: usize, lr: f32) -> OwnedLearner {
    let cfg = Config {
        inner_lr: lr,
        inner_batch: batch,
        ..Config::sine()
    };
    let meta = BlobMeta {
        dtype: DType::F32,
        settings: adapt_settings(&Sine::default(), &cfg, 5, batch),
        algorithm: "maml".into(),
        task: "sine".into(),
        seed: 0,
        meta_iterations: 0,
    };
    let blob = shared(encode_blob(arch, phi, &meta).unwrap()).unwrap();
    OwnedLearner::with_options(
        &blob,
        Options {
            batch,
            trainable: arch.all_layers(),
            lr,
        },
    )
    .unwrap()
}

fn norm(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|a| a * a).sum::<f64>().sqrt()
}

fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("maml_reference.py cannot run under CI: {why}");
    }
    eprintln!("\n*** SKIPPED exact MAML meta-gradients (autograd): {why} ***\n");
}

/// One case: meta-parameters (index into the initializations), task, inner steps, inner lr.
struct Case {
    phi: usize,
    task: Batch,
    steps: usize,
    lr: f32,
}

#[test]
fn maml_meta_gradient_matches_exact_autograd() {
    let arch = Arch::sine();
    let layers: Vec<[usize; 2]> = arch
        .layers
        .iter()
        .filter_map(|l| match *l {
            Layer::Dense { inputs, outputs } => Some([outputs, inputs]),
            _ => None,
        })
        .collect();
    let batch = 10;
    let inits: Vec<Vec<f32>> = (0..2)
        .map(|s| Sine::default().init_params(s).unwrap())
        .collect();
    let mut rng = tasks::rng(11, Stream::Train, 0);
    let task_list: Vec<Batch> = (0..3)
        .map(|_| Sine::default().train_task(&mut rng, 50).unwrap())
        .collect();
    let mut cases = Vec::new();
    for (phi, steps, lr) in [
        (0, 1, 0.02),
        (0, 2, 0.02),
        (1, 3, 0.02),
        (0, 5, 0.02),
        (1, 2, 0.1),
        (0, 4, 0.1),
    ] {
        for task in &task_list {
            cases.push(Case {
                phi,
                task: task.clone(),
                steps,
                lr,
            });
        }
    }
    // The reference runs once per inner lr (the script takes one).
    let mut exact: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for lr in [0.02f32, 0.1] {
        let dir = tempfile::tempdir().unwrap();
        let mut scratch = Default::default();
        let chosen: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].lr == lr).collect();
        for (phi, params) in inits.iter().enumerate() {
            let ids: Vec<usize> = chosen
                .iter()
                .copied()
                .filter(|&i| cases[i].phi == phi)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let spec: Vec<_> = ids
                .iter()
                .map(|&i| {
                    let c = &cases[i];
                    let minibatches: Vec<_> = (0..c.steps)
                        .map(|s| {
                            let (x, y) = c.task.minibatch(s, batch, &mut scratch);
                            json!({ "x": x, "y": y })
                        })
                        .collect();
                    json!({ "minibatches": minibatches })
                })
                .collect();
            std::fs::write(
                dir.path().join("cases.json"),
                json!({ "layers": layers, "params": params, "lr": lr, "cases": spec }).to_string(),
            )
            .unwrap();
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/maml_reference.py");
            let out = match Command::new(&python).arg(script).arg(dir.path()).output() {
                Ok(o) => o,
                Err(e) => return skip(&format!("cannot run {python}: {e}")),
            };
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {}
                Some(77) => return skip(stderr.trim()),
                _ => panic!("maml_reference.py failed:\n{stderr}"),
            }
            let reference: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.path().join("reference.json")).unwrap(),
            )
            .unwrap();
            let grads = reference["gradients"].as_array().unwrap();
            assert_eq!(grads.len(), ids.len());
            for (&i, g) in ids.iter().zip(grads) {
                exact[i] = g
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
            }
        }
    }

    let mut tape = Tape::default();
    let mut fo = vec![0.0f32; inits[0].len()];
    println!("lr     k  step     relative error   second-order part");
    for (i, c) in cases.iter().enumerate() {
        let phi = &inits[c.phi];
        let ex = &exact[i];
        assert_eq!(ex.len(), phi.len());
        let ex_norm = norm(ex.iter().copied());
        let mut l = learner(&arch, phi, batch, c.lr);
        // First-order MAML: the last minibatch's gradient at the adapted parameters.
        meta_gradient(
            &mut l, &c.task, phi, c.steps, batch, c.lr, HVP_STEP, &mut tape,
        )
        .unwrap();
        let adapted = tape.adapted().to_vec();
        l.set_params(&adapted).unwrap();
        let (x, y) = {
            let mut scratch = Default::default();
            let (x, y) = c.task.minibatch(c.steps - 1, batch, &mut scratch);
            (x.to_vec(), y.to_vec())
        };
        l.gradient(&x, &y).unwrap();
        l.gradient_into(&mut fo).unwrap();
        let second = norm(ex.iter().zip(&fo).map(|(&e, &f)| e - f as f64)) / ex_norm;
        for h in STEPS {
            meta_gradient(&mut l, &c.task, phi, c.steps, batch, c.lr, h, &mut tape).unwrap();
            let err = norm(ex.iter().zip(tape.gradient()).map(|(&e, &g)| e - g as f64)) / ex_norm;
            println!("{:<6} {}  {h:<8} {err:<16.3e} {second:.3e}", c.lr, c.steps);
            if h == HVP_STEP {
                assert!(
                    err < TOL,
                    "case {i} (k = {}, lr {}): relative error {err:.3e}",
                    c.steps,
                    c.lr
                );
                if c.steps > 1 {
                    assert!(
                        second > 20.0 * err,
                        "case {i} (k = {}, lr {}): second-order part {second:.3e} not above the error {err:.3e}",
                        c.steps,
                        c.lr
                    );
                } else {
                    assert!(second < TOL, "k = 1 is the plain gradient");
                }
            }
        }
    }
}
