//! `anole train` with the paper's baselines and meta-updates, through the binary: `--algo maml`
//! and `--meta-update` runs write a card whose command repeats the run byte for byte, and bad
//! values fail in one line.

mod common;

use common::{anole, fails, ok};
use serde_json::Value;
use std::path::Path;

fn train(out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "train",
        "sine",
        "--out",
        out.to_str().unwrap(),
        "--iters",
        "60",
        "--eval-tasks",
        "10",
    ];
    args.extend_from_slice(extra);
    ok(&anole(&args));
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
    let out = tmp.path().join("x");
    let out = out.to_str().unwrap();
    let base = ["train", "sine", "--out", out, "--iters", "5"];
    let with = |extra: &[&'static str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        anole(&a)
    };
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
