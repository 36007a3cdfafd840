//! End-to-end tests of `anole train sine` and `anole eval` through the binary: Reptile learns an
//! initialization that adapts better than a random one and than joint training, runs are
//! reproducible byte for byte, eval's JSON is well-formed, bad input fails in one line.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn anole(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anole"))
        .args(args)
        .output()
        .expect("the anole binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = anole(args);
    assert!(
        out.status.success(),
        "anole {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `anole args`, expects failure with a one-line `error:` message, and returns it.
fn fails(args: &[&str]) -> String {
    let out = anole(args);
    assert!(!out.status.success(), "anole {args:?} should fail");
    assert_ne!(out.status.code(), Some(101), "anole {args:?} panicked");
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(
        err.lines().count(),
        1,
        "anole {args:?}: not one line: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn train(dir: &Path, extra: &[&str]) -> PathBuf {
    let d = dir.to_str().expect("utf-8 temp path");
    let mut args = vec!["train", "sine", "--out", d, "--eval-tasks", "20"];
    args.extend_from_slice(extra);
    ok(&args);
    dir.to_path_buf()
}

fn eval_json(model: &Path, extra: &[&str]) -> Value {
    let m = model.to_str().expect("utf-8 temp path");
    let mut args = vec!["eval", "--model", m, "--task", "sine", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).expect("eval --json prints JSON")
}

fn mse_after(report: &Value, steps: u64) -> f64 {
    report["results"]
        .as_array()
        .expect("results array")
        .iter()
        .find(|r| r["steps"] == steps)
        .and_then(|r| r["loss"]["mean"].as_f64())
        .expect("a result for the step count")
}

#[test]
fn reptile_adapts_better_than_random_and_joint() {
    let tmp = tempfile::tempdir().unwrap();
    let reptile = train(&tmp.path().join("reptile"), &["--iters", "3000"]);
    let joint = train(
        &tmp.path().join("joint"),
        &["--iters", "3000", "--algo", "joint"],
    );
    let random = train(&tmp.path().join("random"), &["--iters", "0"]);
    let args = ["--tasks", "300"];
    let (r, j, z) = (
        eval_json(&reptile, &args),
        eval_json(&joint, &args),
        eval_json(&random, &args),
    );
    let (r32, j32, z32) = (mse_after(&r, 32), mse_after(&j, 32), mse_after(&z, 32));
    assert!(r32 < 0.8 * z32, "reptile {r32} vs random init {z32}");
    assert!(r32 < 0.8 * j32, "reptile {r32} vs joint {j32}");
    // Adaptation helps the meta-learned initialization: the loss falls with steps.
    assert!(mse_after(&r, 32) < mse_after(&r, 8) && mse_after(&r, 8) < mse_after(&r, 0));
    // Provenance of the random initialization.
    let card: Value =
        serde_json::from_slice(&std::fs::read(random.join("card.json")).unwrap()).unwrap();
    assert_eq!(card["algorithm"], "random");
}

#[test]
fn same_seed_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let common = ["--iters", "300", "--seed", "7", "--meta-batch", "3"];
    let a = train(&tmp.path().join("a"), &common);
    let b = train(&tmp.path().join("b"), &common);
    let c = train(
        &tmp.path().join("c"),
        &["--iters", "300", "--seed", "8", "--meta-batch", "3"],
    );
    for f in ["init.postcard", "init.f16.postcard", "init.onnx"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between equal seeds"
        );
    }
    assert_ne!(
        std::fs::read(a.join("init.postcard")).unwrap(),
        std::fs::read(c.join("init.postcard")).unwrap()
    );
}

#[test]
fn card_reproduces_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let a = train(
        &tmp.path().join("a"),
        &["--iters", "200", "--algo", "fomaml", "--inner-lr", "0.03"],
    );
    let card: Value = serde_json::from_slice(&std::fs::read(a.join("card.json")).unwrap()).unwrap();
    let command = card["command"].as_str().expect("card has the command");
    let out_b = tmp.path().join("b");
    let mut words: Vec<String> = command.split_whitespace().map(String::from).collect();
    assert_eq!(words[0], "anole");
    let at = words
        .iter()
        .position(|w| w == "--out")
        .expect("--out in the command");
    words[at + 1] = out_b.to_str().unwrap().to_string();
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    ok(&args);
    let postcard = std::fs::read(out_b.join("init.postcard")).unwrap();
    let sha = card["artifacts"]["init.postcard"]["sha256"]
        .as_str()
        .unwrap();
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&postcard)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, sha);
    assert_eq!(card["hyperparameters"]["inner_lr"], 0.03);
    for f in [
        "init.onnx",
        "init.f16.postcard",
        "learning_curve.png",
        "adaptation.png",
    ] {
        assert!(card["artifacts"][f]["sha256"].is_string(), "card lists {f}");
        assert!(a.join(f).is_file(), "{f} written");
    }
    let m = &card["metrics"]["init.postcard"];
    assert_eq!(m["results"].as_array().unwrap().len(), 4);
}

#[test]
fn eval_json_is_well_formed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = train(&tmp.path().join("m"), &["--iters", "100"]);
    // A directory or the blob itself.
    let r = eval_json(&dir, &["--tasks", "50", "--steps", "16", "--seed", "3"]);
    assert_eq!(r["task"], "sine");
    assert_eq!(r["loss"], "mse");
    assert_eq!(r["tasks"], 50);
    assert_eq!(r["shots"], 10);
    assert_eq!(r["queries"], 100);
    assert_eq!(r["lr"], 0.02);
    assert_eq!(r["seed"], 3);
    assert!(r["model"].as_str().unwrap().ends_with("init.postcard"));
    let steps: Vec<u64> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["steps"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![0, 1, 8, 16]);
    for c in r["results"].as_array().unwrap() {
        let (mean, ci) = (
            c["loss"]["mean"].as_f64().unwrap(),
            c["loss"]["ci95"].as_f64().unwrap(),
        );
        assert!(
            mean.is_finite() && mean > 0.0 && ci > 0.0 && ci < mean,
            "{c}"
        );
        assert!(c.get("accuracy").is_none());
    }
    // Same seed, same numbers; the f16 blob evaluates too.
    assert_eq!(
        r,
        eval_json(&dir, &["--tasks", "50", "--steps", "16", "--seed", "3"])
    );
    let f16 = eval_json(&dir.join("init.f16.postcard"), &["--tasks", "50"]);
    assert!(
        (mse_after(&f16, 32) - mse_after(&eval_json(&dir, &["--tasks", "50"]), 32)).abs() < 0.05
    );
    // The table form.
    let table = ok(&["eval", "--model", dir.to_str().unwrap(), "--tasks", "20"]);
    assert!(
        table.contains("mse (±95% CI)") && table.lines().count() >= 6,
        "{table}"
    );
}

#[test]
fn bad_input_fails_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.postcard");
    let e = fails(&[
        "eval",
        "--model",
        missing.to_str().unwrap(),
        "--task",
        "sine",
    ]);
    assert!(e.contains("missing.postcard"), "{e}");
    let garbage = tmp.path().join("garbage.postcard");
    std::fs::write(&garbage, b"this is not a blob at all").unwrap();
    let e = fails(&["eval", "--model", garbage.to_str().unwrap()]);
    assert!(
        e.contains("garbage.postcard") && e.contains("not a valid anole blob"),
        "{e}"
    );
    let empty = tmp.path().join("empty.postcard");
    std::fs::write(&empty, b"").unwrap();
    fails(&["eval", "--model", empty.to_str().unwrap()]);
    let dir = train(&tmp.path().join("m"), &["--iters", "10"]);
    let m = dir.to_str().unwrap();
    fails(&["eval", "--model", m, "--tasks", "0"]);
    fails(&["eval", "--model", m, "--shots", "0"]);
    let e = fails(&["eval", "--model", m, "--lr", "NaN"]);
    assert!(e.contains("--lr"), "{e}");
    let out = tmp.path().join("t").to_str().unwrap().to_string();
    let e = fails(&["train", "sine", "--out", &out, "--meta-batch", "0"]);
    assert!(e.contains("--meta-batch"), "{e}");
    fails(&["train", "sine", "--out", &out, "--inner-steps", "0"]);
    fails(&["train", "sine", "--out", &out, "--inner-lr=-1"]);
    fails(&["train", "sine", "--out", &out, "--outer-lr", "inf"]);
    // The output path is a file.
    let e = fails(&[
        "train",
        "sine",
        "--out",
        garbage.to_str().unwrap(),
        "--iters",
        "1",
    ]);
    assert!(e.contains("garbage.postcard"), "{e}");
    // Diverging training is reported, not written.
    let e = fails(&[
        "train",
        "sine",
        "--out",
        &out,
        "--iters",
        "50",
        "--inner-lr",
        "1000",
    ]);
    assert!(e.contains("meta-iteration"), "{e}");
    // Unknown values are refused by the parser with a non-zero exit.
    assert!(!anole(&["train", "cosine", "--out", &out]).status.success());
    assert!(
        !anole(&["train", "sine", "--out", &out, "--algo", "newton"])
            .status
            .success()
    );
}
