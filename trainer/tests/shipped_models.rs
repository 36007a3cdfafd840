//! The shipped models are what their cards' commands write. The sine model in full: the
//! command is read from `models/sine/card.json`, run into a temporary folder, and every file it
//! writes must equal the shipped one byte for byte (the blobs, the ONNX, the plots) and the card
//! must match in every field but those that describe the machine's speed (wall times, the rate,
//! the thread count). Every shipped card with a `checkpoint` fingerprint: its command run with
//! `--stop-after` to the fingerprint's iteration must reach the same parameters. A change to the
//! code that alters a model's bits fails here: reship the model with its card's command.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn shipped() -> PathBuf {
    models().join("sine")
}

fn anole(args: &[String]) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_anole"))
        .args(args)
        // The cards' relative paths (`--data ../shared/…`) are the repository root's.
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("the anole binary runs");
    assert!(
        run.status.success(),
        "anole {args:?} failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).expect("utf-8 output")
}

/// The parameters' sha256 that `anole train … --stop-after` prints when it stops.
fn stop_hash(stdout: &str) -> String {
    let (_, rest) = stdout
        .split_once("(parameters sha256 ")
        .unwrap_or_else(|| panic!("no parameters hash in: {stdout}"));
    rest.split(')').next().unwrap().to_string()
}

fn card(dir: &Path) -> Value {
    let path = dir.join("card.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The card's command with its output folder replaced by `out`: the words after `anole`, and
/// the folder the command names.
fn command_into(card: &Value, out: &Path) -> (Vec<String>, String) {
    let command = card["command"].as_str().expect("the card has its command");
    let mut words: Vec<String> = command.split_whitespace().map(String::from).collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("anole"),
        "{command}"
    );
    let at = words
        .iter()
        .position(|w| w == "--out")
        .unwrap_or_else(|| panic!("no --out in {command}"));
    let folder = words.get(at + 1).expect("a folder after --out").clone();
    words[at + 1] = out.to_str().expect("utf-8 temp path").to_string();
    (words.split_off(1), folder)
}

/// The card without the fields that measure the machine rather than the run.
fn without_timings(mut card: Value) -> Value {
    let o = card.as_object_mut().expect("the card is an object");
    for key in ["wall_time_s", "meta_iterations_per_s", "threads"] {
        assert!(o.remove(key).is_some(), "the card has no {key}");
    }
    card
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "the card's full run (100,000 meta-iterations): release builds only"
)]
fn card_command_writes_the_shipped_model() {
    let model = shipped();
    let shipped_card = card(&model);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sine");
    let (args, folder) = command_into(&shipped_card, &out);
    assert_eq!(folder, "models/sine", "the card names its own folder");
    anole(&args);
    let artifacts = shipped_card["artifacts"]
        .as_object()
        .expect("the card lists its files");
    for name in ["init.postcard", "init.f16.postcard", "init.onnx"] {
        assert!(artifacts.contains_key(name), "the card lists {name}");
    }
    for name in artifacts.keys() {
        let (a, b) = (
            std::fs::read(model.join(name)).unwrap_or_else(|e| panic!("shipped {name}: {e}")),
            std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("written {name}: {e}")),
        );
        let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(
            a == b,
            "{name}: the card's command writes {} bytes, {differing} of them different from the \
             shipped {} bytes",
            b.len(),
            a.len()
        );
    }
    let mut written = card(&out);
    // The command as the shipped card spells it: with its own folder.
    let (_, written_folder) = command_into(&written, &out);
    assert_eq!(written_folder, out.to_str().unwrap());
    let command = written["command"].as_str().unwrap().replacen(
        &format!("--out {written_folder} "),
        &format!("--out {folder} "),
        1,
    );
    written["command"] = command.into();
    assert_eq!(without_timings(written), without_timings(shipped_card));
}

#[test]
fn the_card_command_is_complete() {
    // Every hyper-parameter and the training inputs are spelled out, so a change of a default
    // cannot change what the command writes.
    let c = card(&shipped());
    let command = c["command"].as_str().unwrap();
    for flag in [
        "--seed",
        "--iters",
        "--algo",
        "--meta-batch",
        "--shots",
        "--points",
        "--inner-steps",
        "--inner-batch",
        "--inner-lr",
        "--outer-lr",
        "--inner-opt",
        "--dtype",
        "--adapt-steps",
        "--eval-tasks",
        "--eval-shots",
    ] {
        assert!(
            command.split_whitespace().any(|w| w == flag),
            "{flag} missing from {command}"
        );
    }
    assert_eq!(c["training_points"], "grid");
}

/// Every shipped card with a fingerprint: the command stopped at its iteration reaches the
/// same parameters (the sine card has one; Omniglot cards written since it exists have one and
/// need the data set at `../shared/data/omniglot`).
#[test]
fn shipped_fingerprints_reproduce() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(models()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("card.json").is_file() {
            continue;
        }
        let c = card(&dir);
        let Some(fp) = c.get("checkpoint") else {
            continue;
        };
        let iteration = fp["iteration"].as_u64().expect("checkpoint.iteration");
        let tmp = tempfile::tempdir().unwrap();
        let (mut args, _) = command_into(&c, &tmp.path().join("run"));
        args.extend(["--stop-after".into(), iteration.to_string()]);
        assert_eq!(
            stop_hash(&anole(&args)),
            fp["params_sha256"]
                .as_str()
                .expect("checkpoint.params_sha256"),
            "{}: the first {iteration} meta-iterations reach other parameters",
            dir.display()
        );
        checked.push(dir);
    }
    assert!(
        checked.contains(&shipped()),
        "the sine card has a fingerprint: {checked:?}"
    );
}

/// The card's fingerprint is what `--stop-after` prints at its iteration, also for a run
/// resumed past it (which replays the first iterations); runs no longer than it have none.
#[test]
fn fingerprint_is_the_stopped_runs_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let args: Vec<String> = ["train", "sine", "--out", out.to_str().unwrap()]
            .iter()
            .chain(&["--eval-tasks", "5"])
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        (anole(&args), out)
    };
    let (_, full) = run("full", &["--iters", "40", "--seed", "3"]);
    let fp = card(&full)["checkpoint"].clone();
    assert_eq!(fp["iteration"], 10, "{fp}");
    let (stopped, part) = run(
        "part",
        &["--iters", "40", "--seed", "3", "--stop-after", "10"],
    );
    assert_eq!(stop_hash(&stopped), fp["params_sha256"].as_str().unwrap());
    // Another prefix, another hash.
    let (later, _) = run(
        "part",
        &[
            "--iters",
            "40",
            "--seed",
            "3",
            "--stop-after",
            "25",
            "--resume",
        ],
    );
    assert_ne!(stop_hash(&later), stop_hash(&stopped));
    run("part", &["--iters", "40", "--seed", "3", "--resume"]);
    assert_eq!(card(&part)["checkpoint"], fp);
    assert_eq!(
        std::fs::read(part.join("init.postcard")).unwrap(),
        std::fs::read(full.join("init.postcard")).unwrap()
    );
    // Another seed, another fingerprint.
    let (_, other) = run("other", &["--iters", "40", "--seed", "4"]);
    assert_ne!(card(&other)["checkpoint"], fp);
    let (_, short) = run("short", &["--iters", "10", "--seed", "3"]);
    assert!(card(&short).get("checkpoint").is_none());
}
