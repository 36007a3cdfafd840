//! `anole train csv`: meta-training on CSV task families (regression and classification, a
//! folder of files or one file with a `task` column, from `--arch` or an `--init` blob or ONNX
//! file), and every bad input failing in one line that names the file and row.

mod common;

use anole_trainer::model::Arch;
use common::{anole, blob_bytes, card_loss, fails, ok, put};
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `n` regression tasks y = a·x + b (a, b per task) of `rows` rows each, as `dir/t{i}.csv`.
fn linear_tasks(dir: &Path, n: usize, rows: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let (a, b) = (((i * 7) % 5) as f32 - 2.0, ((i * 3) % 4) as f32 - 1.5);
        let mut text = String::from("x,y\n");
        for r in 0..rows {
            let x = (r as f32 / rows as f32) * 4.0 - 2.0;
            writeln!(text, "{x},{}", a * x + b).unwrap();
        }
        put(dir, &format!("t{i}.csv"), text);
    }
    dir.to_path_buf()
}

/// One file with a `task` column: `n` users of 4 classes, `per_class` rows each; user `u`'s
/// classes sit around shifted corners.
fn class_tasks(path: &Path, n: usize, per_class: usize, classes: usize) -> PathBuf {
    let mut text = String::from("task,a,b,label\n");
    for u in 0..n {
        for c in 0..classes {
            for r in 0..per_class {
                let (x, y) = (
                    (c % 2) as f32 * 2.0 - 1.0 + u as f32 * 0.1 + r as f32 * 0.01,
                    (c / 2) as f32 * 2.0 - 1.0 - u as f32 * 0.1,
                );
                writeln!(text, "user{u},{x},{y},{c}").unwrap();
            }
        }
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn card(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("card.json")).unwrap()).unwrap()
}

#[test]
fn regression_trains_and_adapts_better_than_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = linear_tasks(&dir.path().join("data"), 10, 20);
    let run = |name: &str, iters: &str| {
        let out = dir.path().join(name);
        let o = anole([
            "train",
            "csv",
            "--data",
            &s(&data),
            "--out",
            &s(&out),
            "--iters",
            iters,
            "--arch",
            "dense:16,tanh,dense:1",
            "--eval-tasks",
            "50",
            "--eval-shots",
            "5",
        ]);
        ok(&o);
        out
    };
    let start_dir = run("start", "0");
    let trained_dir = run("reptile", "1500");
    let trained = card(&trained_dir);
    assert_eq!(trained["task"], "csv");
    assert_eq!(
        trained["data"]["held_out_tasks"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        trained["data"]["training_tasks"].as_array().unwrap().len(),
        8
    );
    assert_eq!(trained["data"]["input_columns"], serde_json::json!(["x"]));
    let (a, b) = (card_loss(&start_dir, 32), card_loss(&trained_dir, 32));
    assert!(
        b < a,
        "adapted MSE from the meta-trained init {b} not below the start's {a}"
    );
    // The card's command reproduces the run byte for byte.
    let cmd = trained["command"].as_str().unwrap().to_string();
    assert!(cmd.contains("--arch dense:16,tanh,dense:1"), "{cmd}");
    let again = dir.path().join("again");
    let args: Vec<String> = cmd
        .split_whitespace()
        .skip(1)
        .map(|w| {
            if w == s(&dir.path().join("reptile")) {
                s(&again)
            } else {
                w.to_string()
            }
        })
        .collect();
    ok(&anole(&args));
    assert_eq!(
        std::fs::read(dir.path().join("reptile/init.postcard")).unwrap(),
        std::fs::read(again.join("init.postcard")).unwrap()
    );
}

#[test]
fn starts_from_a_blob_or_its_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let data = linear_tasks(&dir.path().join("data"), 6, 20);
    let arch = Arch {
        input_shape: vec![1],
        layers: vec![
            anole::Layer::Dense {
                inputs: 1,
                outputs: 8,
            },
            anole::Layer::Relu,
            anole::Layer::Dense {
                inputs: 8,
                outputs: 1,
            },
        ],
    };
    let blob = put(dir.path(), "start.postcard", blob_bytes(&arch, 0, 10));
    // --iters 0 exports the starting weights unchanged: the same parameters, as a blob and as
    // ONNX.
    let from_blob = dir.path().join("from-blob");
    ok(&anole([
        "train",
        "csv",
        "--data",
        &s(&data),
        "--out",
        &s(&from_blob),
        "--init",
        &s(&blob),
        "--iters",
        "0",
        "--eval-tasks",
        "5",
    ]));
    let from_onnx = dir.path().join("from-onnx");
    ok(&anole([
        "train",
        "csv",
        "--data",
        &s(&data),
        "--out",
        &s(&from_onnx),
        "--init",
        &s(&from_blob.join("init.onnx")),
        "--iters",
        "0",
        "--eval-tasks",
        "5",
    ]));
    let params = |p: &Path| {
        let b = anole_trainer::model::read_blob(p).unwrap();
        anole::OwnedLearner::new(&b).unwrap().params().to_vec()
    };
    let start = params(&blob);
    assert_eq!(params(&from_blob.join("init.postcard")), start);
    assert_eq!(params(&from_onnx.join("init.postcard")), start);
    let c = card(&from_onnx);
    assert!(
        c["start"].as_str().unwrap().contains("init.onnx (sha256 "),
        "{c}"
    );
    assert!(c["architecture"].as_str().unwrap().contains("Relu"));
    // Training moves them.
    let trained = dir.path().join("trained");
    ok(&anole([
        "train",
        "csv",
        "--data",
        &s(&data),
        "--out",
        &s(&trained),
        "--init",
        &s(&blob),
        "--iters",
        "50",
        "--eval-tasks",
        "5",
    ]));
    assert_ne!(params(&trained.join("init.postcard")), start);
}

#[test]
fn classification_by_label_and_by_ways() {
    let dir = tempfile::tempdir().unwrap();
    let data = class_tasks(&dir.path().join("all.csv"), 6, 8, 4);
    for (name, extra) in [("labels", None), ("ways", Some("3"))] {
        let out = dir.path().join(name);
        let mut args = vec![
            "train".to_string(),
            "csv".into(),
            "--data".into(),
            s(&data),
            "--out".into(),
            s(&out),
            "--iters".into(),
            "20".into(),
            "--eval-tasks".into(),
            "20".into(),
        ];
        if let Some(w) = extra {
            args.extend(["--ways".to_string(), w.to_string()]);
        }
        let text = ok(&anole(&args));
        assert!(text.contains("accuracy"), "{text}");
        let c = card(&out);
        let classes = if extra.is_some() { 3 } else { 4 };
        assert!(
            c["architecture"]
                .as_str()
                .unwrap()
                .contains(&format!("outputs: {classes} }}")),
            "{}",
            c["architecture"]
        );
        assert_eq!(c["hyperparameters"]["train_shots"], 10);
        let held = c["data"]["held_out_tasks"][0].as_str().unwrap();
        assert!(
            held.starts_with(&format!("{} (task user", s(&data))),
            "{held}"
        );
    }
}

/// Every bad input: exit 1, one line, naming the file and row.
#[test]
fn bad_input_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = linear_tasks(&d.join("good"), 5, 20);
    let train = |data: &Path, extra: &[&str]| {
        let out = d.join("out");
        let mut args = vec![
            "train".to_string(),
            "csv".into(),
            "--data".into(),
            s(data),
            "--out".into(),
            s(&out),
            "--iters".into(),
            "2".into(),
            "--eval-tasks".into(),
            "2".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        anole(&args)
    };
    // Tasks with different headers.
    let mixed = linear_tasks(&d.join("mixed"), 3, 20);
    put(&mixed, "t9.csv", "x,z\n1,2\n");
    fails(
        &train(&mixed, &[]),
        &["t9.csv: row 1: header 'x,z' differs from", "t0.csv's 'x,y'"],
    );
    // Held-out tasks with other columns than the training tasks.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    put(&other, "e.csv", "u,v\n1,2\n");
    fails(
        &train(&good, &["--eval-data", &s(&other)]),
        &["e.csv: row 1: header 'u,v' differs"],
    );
    // Too few rows for the inner batch.
    let short = linear_tasks(&d.join("short"), 4, 20);
    put(&short, "t1.csv", "x,y\n1,2\n2,3\n3,4\n");
    fails(
        &train(&short, &["--eval-data", &s(&good)]),
        &["t1.csv: rows 2-4: 3 rows, fewer than the inner batch (10)"],
    );
    // Too few rows for the evaluation's shots.
    fails(
        &train(&good, &["--eval-data", &s(&short), "--eval-shots", "5"]),
        &["t1.csv: rows 2-4: 3 row(s); --eval-shots 5 needs at least 6"],
    );
    // A bad cell names file, row and column.
    let cell = linear_tasks(&d.join("cell"), 3, 20);
    put(&cell, "t2.csv", "x,y\n1,2\n2,oops\n");
    fails(
        &train(&cell, &[]),
        &["t2.csv: row 3, column 2 (y): 'oops' is not a number"],
    );
    // Architecture widths that do not match the columns.
    fails(
        &train(&good, &["--arch", "dense:8,tanh,dense:2"]),
        &[
            "--arch: the network gives 2 output(s)",
            "t0.csv: row 1 has 2 column(s) ('x,y')",
        ],
    );
    fails(
        &train(&good, &["--arch", "dense:8,tanh,dense:2", "--targets", "1"]),
        &[
            "--arch: the network gives 2 output(s)",
            "t0.csv: row 1 has 1 target column(s) ('y'",
        ],
    );
    fails(
        &train(&good, &["--arch", "dense:8,tanh,dense:0"]),
        &["--arch: layer 3 ('dense:0'): sizes must be at least 1"],
    );
    fails(
        &train(&good, &["--arch", "dense:8,sigmoid"]),
        &["--arch: layer 2 ('sigmoid'): unknown layer"],
    );
    let wide = Arch {
        input_shape: vec![3],
        layers: vec![anole::Layer::Dense {
            inputs: 3,
            outputs: 1,
        }],
    };
    let wide = put(d, "wide.postcard", blob_bytes(&wide, 0, 10));
    fails(
        &train(&good, &["--init", &s(&wide)]),
        &[
            "wide.postcard: the model takes 3 inputs",
            "t0.csv: row 1 has 1 input column(s) ('x')",
        ],
    );
    fails(
        &train(&good, &["--init", &s(&good.join("t0.csv"))]),
        &["t0.csv: neither an ONNX file"],
    );
    put(d, "bad.onnx", "not onnx");
    fails(
        &train(&good, &["--init", &s(&d.join("bad.onnx"))]),
        &["bad.onnx: not an ONNX model"],
    );
    // Labels outside the model's classes.
    let classes = class_tasks(&d.join("classes.csv"), 4, 8, 4);
    fails(
        &train(&classes, &["--arch", "dense:8,relu,dense:3"]),
        &["classes.csv: row 26, column 3 (label): class 3 does not exist in this 3-class model"],
    );
    // Fewer classes than --ways.
    let mut text = std::fs::read_to_string(&classes).unwrap();
    text.push_str("user9,0,0,0\nuser9,1,1,1\n");
    let few = put(d, "few.csv", text);
    fails(
        &train(&few, &["--ways", "3"]),
        &["few.csv (task user9): rows 130-131: 2 class(es) (0, 1), fewer than --ways 3"],
    );
    fails(
        &train(&good, &["--ways", "3"]),
        &["--ways is for classification"],
    );
    // Held-out classes with too few rows for the shots.
    fails(
        &train(&classes, &["--eval-shots", "8"]),
        &[
            "classes.csv (task user",
            "class 0 has 8 row(s); --eval-shots 8 needs 9 per class",
        ],
    );
    // A task without rows.
    let hollow = linear_tasks(&d.join("hollow"), 3, 20);
    put(&hollow, "t1.csv", "x,y\n");
    fails(
        &train(&hollow, &[]),
        &["t1.csv: no sample rows after the header"],
    );
    // Folders without CSV files, a single task.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&train(&empty, &[]), &["empty: no .csv files"]);
    fails(
        &train(&good.join("t0.csv"), &[]),
        &["t0.csv: one task only"],
    );
    fails(
        &train(&good, &["--holdout", "1.5"]),
        &["--holdout must be between 0 and 1"],
    );
    fails(
        &train(&good, &["--holdout", "0.2", "--eval-data", &s(&good)]),
        &["--eval-data and --holdout both"],
    );
}
