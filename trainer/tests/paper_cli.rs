//! `anole train` with the paper's baselines, meta-updates and data schedules, through the
//! binary: `--algo maml`, `--meta-update`, `--minibatches` and `--tail` runs write a card whose
//! command repeats the run byte for byte, and bad values fail in one line.

mod common;

use common::{anole, fails, ok};
use serde_json::Value;
use std::path::Path;

/// `anole train sine` into `out` for `iters` meta-iterations with `extra` flags.
fn sine(out: &Path, iters: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "sine",
        "--out",
        out.to_str().unwrap(),
        "--iters",
        iters,
    ];
    args.extend_from_slice(extra);
    anole(&args)
}

/// A short run with a small evaluation, and its card.
fn train(out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--eval-tasks", "10"];
    args.extend_from_slice(extra);
    ok(&sine(out, "60", &args));
    serde_json::from_slice(&std::fs::read(out.join("card.json")).unwrap()).unwrap()
}

#[test]
fn card_commands_repeat_maml_and_combination_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, extra, flag) in [
        ("maml", &["--algo", "maml"][..], "--algo maml"),
        (
            "g1g3",
            &["--inner-steps", "3", "--meta-update", "g1+g3"][..],
            "--meta-update g1+g3",
        ),
        (
            "replace-separate",
            &[
                "--algo",
                "fomaml",
                "--inner-steps",
                "8",
                "--minibatches",
                "replace",
                "--tail",
                "separate",
            ][..],
            "--minibatches replace --tail separate",
        ),
        (
            "reshuffle",
            &["--inner-steps", "8", "--minibatches", "reshuffle"][..],
            "--minibatches reshuffle",
        ),
    ] {
        let a = tmp.path().join(name);
        let card = train(&a, extra);
        let command = card["command"].as_str().unwrap();
        assert!(command.contains(flag), "{command}");
        let b = tmp.path().join(format!("{name}-again"));
        let mut words: Vec<String> = command.split_whitespace().map(String::from).collect();
        let at = words.iter().position(|w| w == "--out").unwrap();
        words[at + 1] = b.to_str().unwrap().into();
        ok(&anole(&words[1..]));
        assert_eq!(
            std::fs::read(a.join("init.postcard")).unwrap(),
            std::fs::read(b.join("init.postcard")).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn bad_values_fail_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let with = |extra: &[&str]| sine(&tmp.path().join("x"), "5", extra);
    fails(
        &with(&[
            "--algo",
            "maml",
            "--inner-opt",
            "adam",
            "--inner-lr",
            "0.001",
        ]),
        &["--algo maml", "--inner-opt sgd"],
    );
    fails(
        &with(&["--algo", "fomaml", "--meta-update", "g1"]),
        &["--meta-update", "--algo reptile"],
    );
    fails(
        &with(&["--meta-update", "g6"]),
        &["g6", "--inner-steps is 5"],
    );
    let parse = with(&["--meta-update", "g2+g1"]);
    assert_eq!(parse.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&parse.stderr).contains("increase"));
}

/// The card records a non-default schedule and leaves the default out (so cards of existing
/// runs are unchanged); spelling the default out trains the same bits.
#[test]
fn cards_record_the_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = train(&tmp.path().join("plain"), &[]);
    let h = &plain["hyperparameters"];
    assert!(
        h.get("inner_minibatches").is_none() && h.get("inner_tail").is_none(),
        "{h}"
    );
    let spelled = train(
        &tmp.path().join("spelled"),
        &["--minibatches", "cycle", "--tail", "shared"],
    );
    assert_eq!(
        spelled["artifacts"]["init.postcard"],
        plain["artifacts"]["init.postcard"]
    );
    assert!(!spelled["command"].as_str().unwrap().contains("--tail"));
    let sep = train(
        &tmp.path().join("sep"),
        &["--minibatches", "replace", "--tail", "separate"],
    );
    assert_eq!(sep["hyperparameters"]["inner_minibatches"], "replace");
    assert_eq!(sep["hyperparameters"]["inner_tail"], "separate");
    assert_ne!(
        sep["artifacts"]["init.postcard"],
        plain["artifacts"]["init.postcard"]
    );
}

#[test]
fn bad_schedules_fail_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let with = |extra: &[&str]| sine(&tmp.path().join("x"), "5", extra);
    fails(
        &with(&["--algo", "joint", "--tail", "separate"]),
        &["--tail", "joint"],
    );
    // 50 points per task: a separate tail of 50 leaves nothing to train on.
    fails(
        &with(&["--tail", "separate", "--inner-batch", "50"]),
        &["--tail separate", "--inner-batch 50", "--train-shots"],
    );
    fails(
        &with(&[
            "--minibatches",
            "replace",
            "--tail",
            "separate",
            "--inner-batch",
            "30",
        ]),
        &["--minibatches replace", "--inner-batch 30 from 20"],
    );
    let parse = with(&["--minibatches", "sometimes"]);
    assert_eq!(parse.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&parse.stderr).contains("--minibatches"));
}
