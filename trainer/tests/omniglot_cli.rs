//! End-to-end tests of the Omniglot workflow through the `anole` binary, on the data set read in
//! place from `../shared/data/omniglot` (override with `OMNIGLOT_DIR`): a short meta-training
//! run on a subset beats chance and a random initialization and its card's numbers are
//! reproduced by `anole eval`; `--resume` continues bit for bit; image folders adapt and predict
//! exactly like the engine; bad input fails in one line naming the file.
//! Run with `cargo test --release -p anole-trainer --test omniglot_cli`.

mod common;

use anole::{Blob, Learner, Options, SliceSamples};
use anole_trainer::data::{read_query, read_support};
use anole_trainer::model::Arch;
use common::{anole, blob_bytes, fails, ok, put};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    match std::env::var_os("OMNIGLOT_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/omniglot"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn card(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("card.json")).unwrap()).unwrap()
}

/// The accuracy of one setting in a card's or eval's report.
fn accuracy(report: &Value, adaptation: &str, norm: &str) -> f64 {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["adaptation"] == adaptation && r["normalisation"] == norm)
        .unwrap_or_else(|| panic!("no {adaptation}/{norm} row in {report}"))["accuracy"]["mean"]
        .as_f64()
        .unwrap()
}

/// The CI check: a few hundred meta-iterations of a narrow CNN on 200 characters, evaluated
/// on 100 held-out 5-way 1-shot episodes, beat chance (20%) and the random initialization by a
/// wide margin; the card lists the held-out characters and the budget, and `anole eval` on
/// that list gives exactly the card's numbers.
#[test]
fn short_training_beats_chance_and_random_init() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir();
    let common = [
        "--data",
        s(&data),
        "--subset",
        "200",
        "--filters",
        "8",
        "--inner-lr",
        "0.003",
        "--adapt-steps",
        "20",
        "--shots",
        "1",
        "--eval-tasks",
        "100",
    ];
    let trained = tmp.path().join("trained");
    let random = tmp.path().join("random");
    let mut args = vec!["train", "omniglot", "--out", s(&trained), "--iters", "300"];
    args.extend_from_slice(&common);
    let t = std::time::Instant::now();
    let printed = ok(&anole(&args));
    eprintln!("300 meta-iterations + evaluation: {:.1?}", t.elapsed());
    assert!(printed.contains("head, prototypes"), "{printed}");
    let mut args = vec!["train", "omniglot", "--out", s(&random), "--iters", "0"];
    args.extend_from_slice(&common);
    ok(&anole(&args));

    let c = card(&trained);
    let report = &c["results"]["init.postcard"][0];
    let acc = accuracy(report, "all", "device");
    let acc_random = accuracy(
        &card(&random)["results"]["init.postcard"][0],
        "all",
        "device",
    );
    eprintln!("5-way 1-shot device accuracy: meta-trained {acc}, random init {acc_random}");
    assert!(
        acc > 0.35,
        "meta-trained accuracy {acc} not well above chance"
    );
    assert!(
        acc > acc_random + 0.08,
        "meta-trained {acc} vs random init {acc_random}"
    );
    assert!(accuracy(report, "all", "transductive") > 0.35);
    assert!(accuracy(report, "head", "device") > 0.2);
    // The card: command, budget, held-out characters (the test part of the paper split of
    // the 200-character subset: 200 − round(200·1200/1623) = 52).
    assert!(c["command"]
        .as_str()
        .unwrap()
        .starts_with("anole train omniglot --data"));
    assert_eq!(c["training_budget"]["meta_iterations"], 300);
    assert!(c["training_budget"]["wall_time_s"].as_f64().unwrap() > 0.0);
    let held_out = c["held_out_characters"].as_array().unwrap();
    assert_eq!(held_out.len(), 52);
    assert!(held_out[0].as_str().unwrap().contains("/character"));
    for f in [
        "init.postcard",
        "init.f16.postcard",
        "init.onnx",
        "learning_curve.png",
    ] {
        assert!(c["artifacts"][f]["sha256"].is_string(), "{f}");
    }
    let state: Value =
        serde_json::from_slice(&std::fs::read(trained.join("checkpoint/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["iteration"], 300);

    // `anole eval` with the card's list (picked up from the model's folder) = the card.
    let out = ok(&anole([
        "eval",
        "--model",
        s(&trained),
        "--data",
        s(&data),
        "--episodes",
        "100",
        "--shots",
        "1",
        "--json",
    ]));
    let e: Value = serde_json::from_str(&out).unwrap();
    assert!(e["classes"]
        .as_str()
        .unwrap()
        .contains("52 held-out characters listed in"));
    assert_eq!(e["reports"][0]["rows"], report["rows"]);
    // The same characters recomputed from the split (seed: the model's) of the same subset.
    let out = ok(&anole([
        "eval",
        "--model",
        s(&trained),
        "--data",
        s(&data),
        "--subset",
        "200",
        "--split",
        "paper",
        "--episodes",
        "100",
        "--shots",
        "1",
        "--norm",
        "device",
        "--adapt",
        "all",
        "--json",
    ]));
    let e: Value = serde_json::from_str(&out).unwrap();
    assert!(e["classes"]
        .as_str()
        .unwrap()
        .contains("52 held-out characters of the paper split with seed 0"));
    assert_eq!(
        e["reports"][0]["rows"][0]["accuracy"],
        report["rows"][0]["accuracy"]
    );
    // Only head-only adaptation, as a table.
    let table = ok(&anole([
        "eval",
        "--model",
        s(&trained.join("init.postcard")),
        "--data",
        s(&data),
        "--episodes",
        "20",
        "--shots",
        "1",
        "--adapt",
        "head",
    ]));
    assert!(
        table.contains("head, prototypes") && !table.contains("all layers"),
        "{table}"
    );
}

/// A 24-meta-iteration run of a 4-filter CNN on 60 characters (unless `extra` gives
/// `--subset`), checkpointing every 5, evaluated on `episodes` 1-shot episodes, with `extra`
/// flags.
fn small_run(out: &Path, episodes: &str, extra: &[&str]) -> std::process::Output {
    let data = data_dir();
    let mut args = vec!["train", "omniglot", "--data", s(&data), "--out", s(out)];
    if !extra.contains(&"--subset") {
        args.extend(["--subset", "60"]);
    }
    args.extend([
        "--filters",
        "4",
        "--iters",
        "24",
        "--meta-batch",
        "3",
        "--eval-tasks",
        episodes,
        "--shots",
        "1",
        "--adapt-steps",
        "3",
        "--checkpoint-every",
        "5",
    ]);
    args.extend_from_slice(extra);
    anole(&args)
}

/// `anole eval --json` of the model a [`small_run`] wrote into `model` (on `--subset` characters):
/// 4 1-shot episodes, 3 steps, with `extra` flags.
fn small_eval(model: &Path, subset: &str, extra: &[&str]) -> std::process::Output {
    let data = data_dir();
    let mut args = vec![
        "eval",
        "--model",
        s(model),
        "--data",
        s(&data),
        "--subset",
        subset,
        "--tasks",
        "4",
        "--shots",
        "1",
        "--steps",
        "3",
        "--json",
    ];
    args.extend_from_slice(extra);
    anole(&args)
}

/// `--stop-after` then `--resume` ends with the same bytes as an uninterrupted run; resuming
/// with other hyper-parameters is refused.
#[test]
fn resume_continues_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &Path, extra: &[&str]| small_run(out, "4", extra);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&run(&a, &[]));
    let stopped = ok(&run(&b, &["--stop-after", "13"]));
    assert!(
        stopped.contains("stopped after meta-iteration 13"),
        "{stopped}"
    );
    assert!(!b.join("init.postcard").exists());
    let state: Value =
        serde_json::from_slice(&std::fs::read(b.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["iteration"], 13);
    let e = fails(
        &run(&b, &["--resume", "--inner-lr", "0.01"]),
        &["--resume", "different run"],
    );
    assert!(e.contains("--inner-lr 0.01"), "{e}");
    ok(&run(&b, &["--resume"]));
    for f in ["init.postcard", "init.f16.postcard", "init.onnx"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs after resuming"
        );
    }
    let (ca, cb) = (card(&a), card(&b));
    assert_eq!(ca["results"], cb["results"]);
    assert_eq!(
        ca["artifacts"]["learning_curve.png"],
        cb["artifacts"]["learning_curve.png"]
    );
    // A run without a checkpoint cannot resume.
    let c = tmp.path().join("c");
    fails(&run(&c, &["--resume"]), &["no checkpoint in"]);
}

/// `--inner-state keep`: the run writes its inner Adam's state as `init.adam.postcard` (an
/// optimizer-state blob), resumes bit for bit with it, evaluates from it, and `anole eval` /
/// `anole adapt --optimizer-state` reproduce the card and refuse a parameter blob in its place.
#[test]
fn kept_inner_state_is_written_resumed_and_used() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec!["--inner-state", "keep"];
        args.extend_from_slice(extra);
        small_run(out, "20", &args)
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&run(&a, &[]));
    ok(&run(&b, &["--stop-after", "13"]));
    ok(&run(&b, &["--resume"]));
    for f in ["init.postcard", "init.adam.postcard"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs after resuming"
        );
    }
    let c = card(&a);
    assert!(c["command"]
        .as_str()
        .unwrap()
        .ends_with("--inner-state keep"));
    assert_eq!(c["hyperparameters"]["inner_optimizer_state"], "keep");
    assert!(c["artifacts"]["init.adam.postcard"]["sha256"].is_string());
    let state_bytes = std::fs::read(a.join("init.adam.postcard")).unwrap();
    let state = Blob::parse(&state_bytes).unwrap();
    assert_eq!(state.provenance().algorithm, anole::OPTIMIZER_STATE);
    assert_eq!(state.provenance().meta_iterations, 24 * 5);
    // The card's numbers come back from `anole eval`: from a fresh optimizer (the blob alone)
    // and from the kept state.
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            s(&a),
            "--data",
            s(&data),
            "--episodes",
            "20",
            "--shots",
            "1",
            "--norm",
            "device",
            "--adapt",
            "all",
            "--json",
        ];
        args.extend_from_slice(extra);
        let e: Value = serde_json::from_str(&ok(&anole(&args))).unwrap();
        e["reports"][0]["rows"][0]["accuracy"].clone()
    };
    let state_path = a.join("init.adam.postcard");
    let with = eval(&["--optimizer-state", s(&state_path)]);
    assert_eq!(
        with,
        c["results"]["init.postcard + init.adam.postcard"][0]["rows"][0]["accuracy"]
    );
    assert_eq!(
        eval(&[]),
        c["results"]["init.postcard"][0]["rows"][0]["accuracy"]
    );
    let params_path = a.join("init.postcard");
    fails(
        &anole([
            "eval",
            "--model",
            s(&a),
            "--data",
            s(&data),
            "--episodes",
            "2",
            "--optimizer-state",
            s(&params_path),
        ]),
        &["optimizer state", "not an optimizer-state blob"],
    );
    let (support, query) = image_folders(tmp.path(), 3, 2, 1);
    let adapt = |extra: &[&str]| {
        let mut args = vec![
            "adapt",
            "--model",
            s(&params_path),
            "--support",
            s(&support),
            "--query",
            s(&query),
            "--scores",
        ];
        args.extend_from_slice(extra);
        ok(&anole(&args))
    };
    let adapted = adapt(&["--optimizer-state", s(&state_path)]);
    assert_eq!(lines(&adapted).len(), 4, "{adapted}");
    // Adam steps scaled by the kept second moments, not by the first gradients alone.
    assert_ne!(adapted, adapt(&[]));
    fails(
        &anole([
            "adapt",
            "--model",
            s(&params_path),
            "--support",
            s(&support),
            "--query",
            s(&query),
            "--optimizer-state",
            s(&params_path),
        ]),
        &["init.postcard", "not an optimizer-state blob"],
    );
    // Sine and SGD runs refuse it.
    fails(
        &anole([
            "train",
            "sine",
            "--out",
            s(&tmp.path().join("sine")),
            "--iters",
            "2",
            "--inner-state",
            "keep",
        ]),
        &["--inner-state keep"],
    );
}

/// Copies `n` drawings of each of the first `classes` characters of an alphabet of the
/// evaluation archive into `support/<character>/` (`shots` each) and `query/` (the rest).
fn image_folders(root: &Path, classes: usize, shots: usize, queries: usize) -> (PathBuf, PathBuf) {
    let zip_path = data_dir().join("images_evaluation.zip");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip_path).unwrap()).unwrap();
    let mut names: Vec<String> = (0..archive.len())
        .filter_map(|i| archive.name_for_index(i).map(str::to_owned))
        .filter(|n| n.starts_with("images_evaluation/Kannada/") && n.ends_with(".png"))
        .collect();
    names.sort();
    let (support, query) = (root.join("support"), root.join("query"));
    std::fs::create_dir_all(&query).unwrap();
    let mut characters: Vec<String> = names
        .iter()
        .map(|n| n.split('/').nth(2).unwrap().to_owned())
        .collect();
    characters.dedup();
    for c in characters.iter().take(classes) {
        let files: Vec<&String> = names
            .iter()
            .filter(|n| n.split('/').nth(2) == Some(c))
            .collect();
        for (i, f) in files.iter().take(shots + queries).enumerate() {
            let mut bytes = Vec::new();
            archive.by_name(f).unwrap().read_to_end(&mut bytes).unwrap();
            let base = f.rsplit('/').next().unwrap();
            let dest = if i < shots {
                support.join(c).join(base)
            } else {
                query.join(format!("{c}_{base}"))
            };
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(dest, bytes).unwrap();
        }
    }
    (support, query)
}

fn lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// Image folders through `anole adapt` and `anole predict`: `file,predicted_class` per query
/// image, with the classes named after the support sub-folders, exactly as the engine
/// predicts after `Learner::adapt` on the same preprocessed images; the saved adapted model
/// predicts the same through `anole predict --classes`.
#[test]
fn image_folders_adapt_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let (support, query) = image_folders(tmp.path(), 3, 2, 2);
    let arch = Arch::omniglot(5, 8);
    let bytes = blob_bytes(&arch, 1, 5);
    let model = put(tmp.path(), "init.postcard", &bytes);
    let adapted = tmp.path().join("adapted.postcard");
    let out = ok(&anole([
        "adapt",
        "--model",
        s(&model),
        "--support",
        s(&support),
        "--query",
        s(&query),
        "--out",
        s(&adapted),
    ]));
    let rows = lines(&out);
    assert_eq!(rows[0], ["file", "predicted_class"]);
    assert_eq!(rows.len(), 1 + 3 * 2);

    // The same through the library: the engine's adaptation and per-sample prediction.
    let sup = read_support(&support).unwrap();
    assert_eq!(sup.classes.len(), 3);
    let q = read_query(std::slice::from_ref(&query)).unwrap();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = vec![0.0; blob.arena_len(5).unwrap()];
    let mut l = Learner::with_options(&blob, &mut arena, Options::from_blob(&blob)).unwrap();
    l.adapt(
        &SliceSamples::new(&sup.inputs, &sup.labels, 784, 1).unwrap(),
        32,
    )
    .unwrap();
    let mut y = vec![0.0; q.files.len() * 5];
    l.predict(&q.inputs, &mut y).unwrap();
    for (i, (row, f)) in rows[1..].iter().zip(&q.files).enumerate() {
        assert_eq!(row[0], f.display().to_string());
        let k = anole::loss::argmax(&y[5 * i..5 * i + 3]);
        assert_eq!(row[1], sup.classes[k], "row {i}");
        assert!(sup.classes.contains(&row[1]));
    }
    assert_eq!(std::fs::read(&adapted).unwrap(), l.export_vec());

    // Head-only with all 5 classes present, 1 shot, no steps: the head starts from the class
    // prototypes, so each support image is classified as its own class (its features are its
    // class's prototype); `--head-init meta` keeps the model's head. Full adaptation starts
    // from the blob's head unless the blob (format version 2) or `--head-init` says prototypes.
    let (five, _) = image_folders(&tmp.path().join("five"), 5, 1, 0);
    let mut classes: Vec<PathBuf> = std::fs::read_dir(&five)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    classes.sort();
    let mut v2 = Blob::parse(&bytes).unwrap().wire;
    v2.adapt.head_start = anole::HeadStart::Prototypes as u8;
    v2.version = v2.adapt.format_version();
    assert_eq!(v2.version, 2);
    let proto_model = put(
        tmp.path(),
        "proto.postcard",
        anole::blob::encode_to_vec(&v2),
    );
    let run = |model: &Path, init: Option<&str>, adapt: &str| {
        let mut args = vec!["adapt", "--model", s(model), "--support", s(&five)];
        args.extend(["--adapt", adapt, "--steps", "0"]);
        if let Some(init) = init {
            args.extend(["--head-init", init]);
        }
        args.push("--query");
        args.extend(classes.iter().map(|c| s(c)));
        lines(&ok(&anole(args)))
    };
    let own_class = |rows: &[Vec<String>]| {
        assert_eq!(rows.len(), 1 + 5);
        rows[1..].iter().all(|row| {
            let class = Path::new(&row[0]).parent().unwrap().file_name().unwrap();
            row[1] == class.to_str().unwrap()
        })
    };
    let proto = run(&model, Some("prototypes"), "head");
    assert!(own_class(&proto), "{proto:?}");
    let meta = run(&model, Some("meta"), "head");
    assert!(
        !own_class(&meta),
        "a random head does not classify its support set perfectly"
    );
    assert_eq!(
        run(&model, None, "all"),
        meta,
        "a version-1 blob: the head of the blob"
    );
    let full_proto = run(&model, Some("prototypes"), "all");
    assert!(own_class(&full_proto), "{full_proto:?}");
    assert_eq!(
        run(&proto_model, None, "all"),
        full_proto,
        "the blob's head start"
    );
    assert_eq!(run(&proto_model, Some("meta"), "all"), meta);

    // `predict` with the adapted model: the same classes; query files in the order given.
    let files: Vec<PathBuf> = q.files.iter().rev().cloned().collect();
    let mut args = vec![
        "predict".to_string(),
        "--model".into(),
        s(&adapted).into(),
        "--classes".into(),
        s(&support).into(),
        "--scores".into(),
        "--query".into(),
    ];
    args.extend(files.iter().map(|f| s(f).to_owned()));
    let p = lines(&ok(&anole(&args)));
    assert_eq!(p[0][..2], ["file", "predicted_class"]);
    assert_eq!(p[0].len(), 2 + 3, "one probability per class: {:?}", p[0]);
    for (row, f) in p[1..].iter().zip(&files) {
        let original = rows
            .iter()
            .find(|r| r[0] == f.display().to_string())
            .unwrap();
        assert_eq!(row[1], original[1]);
        let total: f32 = row[2..].iter().map(|v| v.parse::<f32>().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4);
    }
    // Without names, the class index.
    let idx = lines(&ok(&anole([
        "predict",
        "--model",
        s(&adapted),
        "--query",
        s(&query),
    ])));
    for (a, b) in idx[1..].iter().zip(&rows[1..]) {
        assert_eq!(sup.classes[a[1].parse::<usize>().unwrap()], b[1]);
    }
}

/// Bad input fails in one line naming the file: missing data path, an archive of another
/// layout, an unreadable PNG, a class folder without images, images with a non-image model.
#[test]
fn bad_omniglot_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = s(&t.join("out")).to_owned();
    let gone = t.join("nowhere");
    fails(
        &anole(["train", "omniglot", "--data", s(&gone), "--out", &out]),
        &["nowhere", "does not exist"],
    );
    fails(&anole(["train", "omniglot", "--out", &out]), &["--data"]);

    // An archive of another layout.
    let other = t.join("other");
    std::fs::create_dir_all(&other).unwrap();
    {
        let f = std::fs::File::create(other.join("images_background.zip")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        z.start_file("pictures/cat.png", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut z, b"not really").unwrap();
        z.finish().unwrap();
    }
    fails(
        &anole(["train", "omniglot", "--data", s(&other), "--out", &out]),
        &[
            "images_background.zip",
            "pictures/cat.png",
            "not in the Omniglot layout",
        ],
    );

    // Image folders.
    let (support, query) = image_folders(t, 2, 1, 1);
    let arch = Arch::omniglot(5, 4);
    let model = put(t, "m.postcard", blob_bytes(&arch, 1, 5));
    let adapt = |support: &Path, query: &Path| {
        anole([
            "adapt",
            "--model",
            s(&model),
            "--support",
            s(support),
            "--query",
            s(query),
        ])
    };
    ok(&adapt(&support, &query));
    let broken = support
        .join(
            std::fs::read_dir(&support)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name(),
        )
        .join("broken.png");
    std::fs::write(&broken, b"\x89PNG but not really").unwrap();
    fails(&adapt(&support, &query), &["broken.png"]);
    std::fs::remove_file(&broken).unwrap();
    let empty = support.join("zzz_empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &adapt(&support, &query),
        &["zzz_empty", "holds no PNG images"],
    );
    std::fs::remove_dir(&empty).unwrap();
    let bad_query = put(t, "q.png", b"garbage");
    fails(&adapt(&support, &bad_query), &["q.png"]);
    fails(&adapt(&gone, &query), &["nowhere"]);
    fails(
        &anole([
            "predict",
            "--model",
            s(&model),
            "--query",
            s(&gone.join("x.png")),
        ]),
        &["x.png", "does not exist"],
    );
    // A sine model cannot take images.
    let sine = put(t, "sine.postcard", blob_bytes(&Arch::sine(), 0, 10));
    fails(
        &anole([
            "adapt",
            "--model",
            s(&sine),
            "--support",
            s(&support),
            "--query",
            s(&query),
        ]),
        &["sine.postcard", "1×28×28"],
    );
    // More class folders than the model has outputs.
    let (many, _) = image_folders(&t.join("many"), 6, 1, 0);
    fails(&adapt(&many, &query), &["6 class folders", "5-way"]);
    // Eval without data.
    fails(
        &anole(["eval", "--model", s(&model), "--task", "omniglot"]),
        &["--data"],
    );
}

/// First-order Proto-MAML (`--head-start prototypes --proto-shots K`), meta-validation
/// characters (`--val-chars`), within-alphabet training episodes (`--train-classes
/// alphabet`): recorded in the command and the card, the card's full adaptation starts from
/// prototypes, and `anole eval` follows the card's head start and evaluates the validation
/// characters on request. Lake's split and protocol: `"split": "lake"` in the card's data and
/// 1-shot within-alphabet episodes of the evaluation alphabets.
#[test]
fn proto_maml_validation_and_lake_options() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, proto) = (tmp.path().join("plain"), tmp.path().join("proto"));
    let extra = [
        "--subset",
        "120",
        "--head-start",
        "prototypes",
        "--proto-shots",
        "1",
        "--val-chars",
        "6",
        "--train-classes",
        "alphabet",
    ];
    ok(&small_run(&plain, "4", &extra[..2]));
    ok(&small_run(&proto, "4", &extra));
    assert_ne!(
        std::fs::read(plain.join("init.postcard")).unwrap(),
        std::fs::read(proto.join("init.postcard")).unwrap(),
        "the prototype-started inner loop trains another model"
    );
    let (cp, c) = (card(&plain), card(&proto));
    assert!(cp.get("head_start").is_none() && cp.get("validation_characters").is_none());
    let command = c["command"].as_str().unwrap();
    for flag in [
        "--head-start prototypes",
        "--proto-shots 1",
        "--val-chars 6",
        "--train-classes alphabet",
    ] {
        assert!(command.contains(flag), "{command}");
    }
    assert_eq!(c["head_start"], "prototypes");
    assert_eq!(c["proto_shots"], 1);
    assert!(c["data"]["training_episodes"].is_string());
    let val: Vec<&str> = c["validation_characters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let held: Vec<&str> = c["held_out_characters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(val.len(), 6);
    assert!(val.iter().all(|v| !held.contains(v)));
    let report = &c["results"]["init.postcard"][0];
    assert_eq!(report["head_start"], "prototypes");
    let card_acc = accuracy(report, "all", "device");
    // anole eval starts the head as the card says, and reproduces its figure.
    let data = data_dir();
    let eval = |extra: &[&str]| small_eval(&proto, "120", extra);
    let out: Value = serde_json::from_str(&ok(&eval(&["--adapt", "all"]))).unwrap();
    let r = &out["reports"][0];
    assert_eq!(r["head_start"], "prototypes");
    assert_eq!(accuracy(r, "all", "device"), card_acc);
    let out: Value =
        serde_json::from_str(&ok(&eval(&["--adapt", "all", "--head-start", "meta"]))).unwrap();
    assert!(out["reports"][0].get("head_start").is_none());
    let out: Value = serde_json::from_str(&ok(&eval(&["--validation"]))).unwrap();
    assert!(
        out["classes"]
            .as_str()
            .unwrap()
            .contains("6 validation characters"),
        "{out}"
    );
    fails(
        &eval(&["--validation", "--split", "paper"]),
        &["--validation"],
    );
    let plain_eval = anole([
        "eval",
        "--model",
        s(&plain),
        "--data",
        s(&data),
        "--subset",
        "120",
        "--validation",
    ]);
    fails(&plain_eval, &["validation_characters", "--val-chars"]);

    // Lake: the background alphabets train, 1-shot episodes within an evaluation alphabet.
    let lake = tmp.path().join("lake");
    let printed = ok(&small_run(&lake, "4", &["--split", "lake"]));
    let cl = card(&lake);
    assert_eq!(cl["data"]["split"], "lake");
    // 60 characters hold no evaluation alphabet of 5: the challenge is skipped, and says why.
    assert!(printed.contains("challenge not evaluated"), "{printed}");
    assert!(cl.get("lake_challenge").is_none());
    let lake_eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            s(&lake),
            "--data",
            s(&data),
            "--split",
            "lake",
            "--tasks",
            "6",
            "--steps",
            "2",
            "--adapt",
            "all",
            "--norm",
            "device",
            "--json",
        ];
        args.extend_from_slice(extra);
        anole(&args)
    };
    let out: Value = serde_json::from_str(&ok(&lake_eval(&["--protocol", "lake"]))).unwrap();
    let r = &out["reports"][0];
    assert_eq!(
        (r["shots"].as_u64(), r["episodes"].as_u64()),
        (Some(1), Some(6))
    );
    fails(
        &lake_eval(&["--protocol", "lake", "--shots", "5"]),
        &["--protocol lake is 1-shot"],
    );
    // With enough characters the card holds the challenge's evaluation, the same as `anole
    // eval` makes it; a paper split's card has none.
    let lake = tmp.path().join("lake-300");
    ok(&small_run(
        &lake,
        "4",
        &["--split", "lake", "--subset", "300"],
    ));
    let cl = card(&lake);
    let challenge = &cl["lake_challenge"];
    assert_eq!(
        (challenge["shots"].as_u64(), challenge["episodes"].as_u64()),
        (Some(1), Some(4))
    );
    let init = lake.join("init.postcard");
    let out: Value = serde_json::from_str(&ok(&anole([
        "eval",
        "--model",
        s(&init),
        "--data",
        s(&data),
        "--split",
        "lake",
        "--subset",
        "300",
        "--protocol",
        "lake",
        "--tasks",
        "4",
        "--norm",
        "device",
        "--json",
    ])))
    .unwrap();
    assert_eq!(out["reports"][0]["rows"], challenge["rows"]);
    assert_eq!(challenge["rows"].as_array().map(Vec::len), Some(2));
    assert!(card(&plain).get("lake_challenge").is_none());
}

/// `--prototype-scale S`: every training task's inner loop starts from the prototype head
/// times S, so the run trains another model (S = 1: the same bytes and command as without the
/// flag); the command, the card and its evaluation record S, `anole eval --prototype-scale S`
/// reproduces the card, and a checkpoint resumes only with the same S.
#[test]
fn prototype_scale_trains_records_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let proto = ["--head-start", "prototypes", "--proto-shots", "1"];
    let run = |out: &Path, extra: &[&str]| small_run(out, "4", &[&proto[..], extra].concat());
    let dirs = ["plain", "one", "scaled", "resumed"].map(|d| tmp.path().join(d));
    let [plain, one, scaled, resumed] = &dirs;
    ok(&run(plain, &[]));
    ok(&run(one, &["--prototype-scale", "1"]));
    ok(&run(scaled, &["--prototype-scale", "0.05"]));
    let read = |d: &Path| std::fs::read(d.join("init.postcard")).unwrap();
    assert_eq!(read(plain), read(one));
    assert_ne!(read(plain), read(scaled));
    let (cp, co, cs) = (card(plain), card(one), card(scaled));
    let command = |c: &Value, d: &Path| c["command"].as_str().unwrap().replace(s(d), "OUT");
    assert_eq!(command(&cp, plain), command(&co, one));
    assert!(!command(&cp, plain).contains("--prototype-scale"));
    assert!(command(&cs, scaled).ends_with(" --prototype-scale 0.05"));
    assert!(cp.get("prototype_scale").is_none());
    assert_eq!(cs["prototype_scale"], 0.05);
    for reports in cs["results"].as_object().unwrap().values() {
        for r in reports.as_array().unwrap() {
            assert_eq!(r["prototype_scale"], 0.05, "{r}");
        }
    }

    // `anole eval` with the same scale gives the card's figures.
    let eval = small_eval(scaled, "60", &["--prototype-scale", "0.05"]);
    let out: Value = serde_json::from_str(&ok(&eval)).unwrap();
    let report = &cs["results"]["init.postcard"][0];
    assert_eq!(out["reports"][0]["rows"], report["rows"]);

    // A checkpoint is resumed only by a run of the same scale, and then to the same bytes.
    ok(&run(
        resumed,
        &["--prototype-scale", "0.05", "--stop-after", "13"],
    ));
    let e = fails(
        &run(resumed, &["--prototype-scale", "0.5", "--resume"]),
        &["--resume", "different run"],
    );
    assert!(e.contains("--prototype-scale 0.5"), "{e}");
    fails(&run(resumed, &["--resume"]), &["different run"]);
    ok(&run(resumed, &["--prototype-scale", "0.05", "--resume"]));
    assert_eq!(read(resumed), read(scaled));
}

/// Bad values of the Proto-MAML, validation and Lake options are refused, naming the flag.
#[test]
fn bad_proto_and_validation_options_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    for (extra, expect) in [
        (
            &["--head-start", "prototypes", "--proto-shots", "0"][..],
            "--proto-shots must be at least 1",
        ),
        (
            &["--proto-shots", "2"][..],
            "--proto-shots needs --head-start prototypes",
        ),
        (
            &["--head-start", "prototypes", "--algo", "joint"][..],
            "not joint training",
        ),
        (
            &[
                "--head-start",
                "prototypes",
                "--proto-shots",
                "11",
                "--train-shots",
                "10",
            ][..],
            "--proto-shots 11",
        ),
        (
            &["--head-start", "prototypes", "--prototype-scale", "0"][..],
            "--prototype-scale must be a finite number > 0, got 0",
        ),
        (
            &["--head-start", "prototypes", "--prototype-scale", "-1"][..],
            "--prototype-scale must be a finite number > 0",
        ),
        (
            &["--head-start", "prototypes", "--prototype-scale", "inf"][..],
            "--prototype-scale must be a finite number > 0",
        ),
        (
            &["--prototype-scale", "0.5"][..],
            "--prototype-scale scales the head started from prototypes",
        ),
        (
            &["--val-chars", "60"][..],
            "validation characters leave no training characters",
        ),
        (
            &["--train-classes", "alphabet", "--ways", "10"][..],
            "need an alphabet with 10 classes",
        ),
    ] {
        let o = small_run(&out, "2", extra);
        fails(&o, &[expect]);
        assert!(!out.join("init.postcard").exists());
    }
    // An unknown value is a usage error of the argument parser.
    let o = small_run(&out, "2", &["--head-start", "sometimes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'sometimes' for '--head-start"));
}

/// `--head-start prototypes` is recorded in the exported blobs (format version 2:
/// `init.postcard`, its f16 copy, `init.adam.postcard`) but not in the checkpoints, which stay
/// the version-1 blobs they were; `--resume` of a finished run trains nothing and writes the
/// exports and the card's evaluation again, the same bytes and figures.
#[test]
fn head_start_is_in_the_exported_blobs_and_a_finished_run_reexports() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("proto");
    let data = data_dir();
    let run = |resume: bool| {
        let mut args = vec!["train", "omniglot", "--data", s(&data), "--out", s(&out)];
        args.extend([
            "--subset",
            "60",
            "--filters",
            "4",
            "--iters",
            "12",
            "--meta-batch",
            "2",
            "--eval-tasks",
            "3",
            "--shots",
            "1",
            "--adapt-steps",
            "2",
            "--checkpoint-every",
            "6",
            "--head-start",
            "prototypes",
            "--proto-shots",
            "1",
        ]);
        if resume {
            args.push("--resume");
        }
        anole(&args)
    };
    ok(&run(false));
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    for name in ["init.postcard", "init.f16.postcard", "init.adam.postcard"] {
        let bytes = read(name);
        let b = Blob::parse(&bytes).unwrap();
        assert_eq!(
            (b.wire.version, b.head_start),
            (2, anole::HeadStart::Prototypes),
            "{name}"
        );
    }
    let checkpoint = read("checkpoint/params.postcard");
    let b = Blob::parse(&checkpoint).unwrap();
    assert_eq!((b.wire.version, b.head_start), (1, anole::HeadStart::Meta));
    let first = card(&out);
    assert!(first["checkpoint"]["params_sha256"].is_string(), "{first}");
    let blobs = ["init.postcard", "init.f16.postcard", "init.adam.postcard"].map(read);

    // The exports and the card are written again from the last checkpoint, without training.
    for name in [
        "init.postcard",
        "init.f16.postcard",
        "init.adam.postcard",
        "card.json",
    ] {
        std::fs::remove_file(out.join(name)).unwrap();
    }
    let again = run(true);
    let stderr = String::from_utf8_lossy(&again.stderr).to_string();
    ok(&again);
    assert!(stderr.contains("at meta-iteration 12 of 12"), "{stderr}");
    assert_eq!(
        ["init.postcard", "init.f16.postcard", "init.adam.postcard"].map(read),
        blobs
    );
    assert_eq!(read("checkpoint/params.postcard"), checkpoint);
    let second = card(&out);
    for key in ["checkpoint", "results", "command", "head_start"] {
        assert_eq!(second[key], first[key], "{key}");
    }
}
