//! `anole train images`: meta-training on small generated image folders (class sub-folders,
//! or grouped one level deeper; PNGs of several sizes and colour types), from the default CNN,
//! `--arch` or `--init`, and bad input failing in one line that names the folder or file.

mod common;

use anole_trainer::model::Arch;
use common::{anole, blob_bytes, fails, ok, put};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A PNG of `w × h` pixels: white with a dark bar whose place depends on `class`, shifted by
/// `variant`; RGB when `colour`.
fn png(class: usize, variant: usize, w: u32, h: u32, colour: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(if colour {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    enc.set_depth(png::BitDepth::Eight);
    let channels = if colour { 3 } else { 1 };
    let mut data = vec![255u8; (w * h) as usize * channels];
    for y in 0..h {
        for x in 0..w {
            // Class: the bar's angle band; variant: a small shift.
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let d = (fx * (class as f32 + 1.0) * 0.7 - fy + variant as f32 * 0.02).abs();
            if d < 0.08 {
                let i = (y * w + x) as usize * channels;
                data[i..i + channels].fill(0);
            }
        }
    }
    enc.write_header().unwrap().write_image_data(&data).unwrap();
    bytes
}

/// `classes` class folders of `per_class` images under `root` (or `root/<group>/` by groups of
/// `group` classes), sizes and colour types varying.
fn folders(root: &Path, classes: usize, per_class: usize, group: Option<usize>) -> PathBuf {
    for c in 0..classes {
        let dir = match group {
            Some(g) => root
                .join(format!("group{}", c / g))
                .join(format!("class{c:02}")),
            None => root.join(format!("class{c:02}")),
        };
        std::fs::create_dir_all(&dir).unwrap();
        for v in 0..per_class {
            let (w, h) = [(28, 28), (40, 32), (120, 90)][v % 3];
            put(&dir, &format!("{v}.png"), png(c, v, w, h, v % 2 == 1));
        }
    }
    root.to_path_buf()
}

fn card(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("card.json")).unwrap()).unwrap()
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["train".into(), "images".into(), "--data".into(), s(data)];
    args.extend(["--out".into(), s(out)]);
    // Small defaults, unless `extra` sets them.
    for (flag, value) in [
        ("--iters", "10"),
        ("--eval-tasks", "6"),
        ("--shots", "1,2"),
        ("--train-shots", "2"),
        ("--ways", "3"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    anole(&args)
}

#[test]
fn trains_on_class_folders_and_grouped_folders() {
    let dir = tempfile::tempdir().unwrap();
    let data = folders(&dir.path().join("flat"), 15, 4, None);
    let out = dir.path().join("flat-run");
    let text = ok(&train(&data, &out, &["--filters", "4", "--rotations"]));
    assert!(
        text.contains("1-shot") || text.contains("accuracy"),
        "{text}"
    );
    let c = card(&out);
    assert_eq!(c["task"], "images");
    assert_eq!(c["ways"], 3);
    assert_eq!(c["data"]["held_out_classes"].as_array().unwrap().len(), 3);
    assert_eq!(c["data"]["training_classes"], 12 * 4);
    assert!(c["data"]["held_out_classes"][0]
        .as_str()
        .unwrap()
        .starts_with("class"));
    assert_eq!(c["results"]["init.postcard"].as_array().unwrap().len(), 2);
    assert!(c["command"]
        .as_str()
        .unwrap()
        .contains("--filters 4 --rotations --ways 3 --shots 1,2"));

    // Grouped folders, held-out classes from another folder.
    let grouped = folders(&dir.path().join("grouped"), 6, 3, Some(3));
    let held = folders(&dir.path().join("held"), 4, 3, Some(2));
    let out = dir.path().join("grouped-run");
    ok(&train(
        &grouped,
        &out,
        &[
            "--eval-data",
            &s(&held),
            "--arch",
            "conv:4,relu,conv:4,relu,flatten,dense:3",
        ],
    ));
    let c = card(&out);
    assert_eq!(
        c["data"]["held_out_classes"],
        serde_json::json!([
            "group0/class00",
            "group0/class01",
            "group1/class02",
            "group1/class03"
        ])
    );
    assert!(c["start"].as_str().unwrap().starts_with("--arch conv:4"));

    // --init from that blob with --iters 0 keeps its weights.
    let again = dir.path().join("init-run");
    ok(&train(
        &grouped,
        &again,
        &[
            "--eval-data",
            &s(&held),
            "--init",
            &s(&out.join("init.postcard")),
            "--iters",
            "0",
        ],
    ));
    let params = |p: &Path| {
        let b = anole_trainer::model::read_blob(p).unwrap();
        anole::OwnedLearner::new(&b).unwrap().params().to_vec()
    };
    let (a, b) = (
        params(&out.join("init.postcard")),
        params(&again.join("init.postcard")),
    );
    // The stored norm statistics are recomputed; this network has none, so all weights match.
    assert_eq!(a, b);
}

#[test]
fn bad_input_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    let data = folders(&d.join("data"), 15, 4, None);
    // Fewer classes than --ways.
    let few = folders(&d.join("few"), 3, 4, None);
    fails(
        &train(&few, &out, &["--filters", "4"]),
        &["few: 3-way episodes need 3 training classes; the data has 2"],
    );
    fails(
        &train(&data, &out, &["--filters", "4", "--ways", "13"]),
        &["13-way episodes need 13 training classes; the data has 12"],
    );
    // Too few images for the evaluation's shots and for training.
    fails(
        &train(&data, &out, &["--filters", "4", "--shots", "4"]),
        &[
            "data/class",
            ": 4 image(s); --shots 4 (the support images and a query) needs 5 per class",
        ],
    );
    fails(
        &train(&data, &out, &["--filters", "4", "--train-shots", "6"]),
        &[": 4 image(s); --train-shots 6 needs 6 per class"],
    );
    // An image outside a class folder, an empty class folder, a broken PNG.
    let loose = folders(&d.join("loose"), 4, 3, None);
    put(&loose, "stray.png", png(0, 0, 28, 28, false));
    fails(
        &train(&loose, &out, &[]),
        &["stray.png: image outside a class folder"],
    );
    let empty = folders(&d.join("empty"), 4, 3, None);
    std::fs::create_dir_all(empty.join("class99")).unwrap();
    fails(
        &train(&empty, &out, &[]),
        &["class folder", "class99 holds no PNG images"],
    );
    let broken = folders(&d.join("broken"), 4, 3, None);
    put(&broken.join("class01"), "bad.png", "not a png");
    fails(
        &train(&broken, &out, &[]),
        &["class01/bad.png", "not a readable PNG"],
    );
    fails(
        &train(&d.join("nowhere"), &out, &[]),
        &["nowhere: not a folder"],
    );
    // A network whose widths do not fit.
    fails(
        &train(&data, &out, &["--arch", "conv:4,relu,flatten,dense:5"]),
        &["--arch: the network gives 5 output(s); --ways 3 needs 3"],
    );
    let sine = put(d, "sine.postcard", blob_bytes(&Arch::sine(), 0, 10));
    fails(
        &train(&data, &out, &["--init", &s(&sine)]),
        &["sine.postcard: a regression (MSE) model; image families classify"],
    );
    let mlp = Arch {
        input_shape: vec![2],
        layers: vec![anole::Layer::Dense {
            inputs: 2,
            outputs: 3,
        }],
    };
    let mlp = put(d, "mlp.postcard", blob_bytes(&mlp, 1, 10));
    fails(
        &train(&data, &out, &["--init", &s(&mlp)]),
        &["mlp.postcard: the model takes inputs of shape [2]; images are preprocessed to [1, 28, 28]"],
    );
    fails(
        &train(&data, &out, &["--holdout", "0.2", "--eval-data", &s(&data)]),
        &["--eval-data and --holdout both"],
    );
}
