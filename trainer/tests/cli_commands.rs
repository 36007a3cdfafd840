//! `anole adapt`, `predict`, `inspect` and `import` on real files: outputs agree with the
//! runtime, adapted blobs and ONNX files are written, import inverts export.

mod common;

use anole::{Blob, Learner, SliceSamples};
use anole_trainer::export::onnx::onnx_bytes;
use anole_trainer::model::Arch;
use common::{anole, blob_bytes, fails, ok, put};
use std::ffi::OsStr;

fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<f32>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

#[test]
fn adapt_predicts_like_the_runtime_and_saves_the_adapted_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bytes = blob_bytes(&Arch::sine(), 0, 10);
    let model = put(d, "init.postcard", &bytes);
    let xs: Vec<f32> = (0..10).map(|i| -4.5 + i as f32).collect();
    let ys: Vec<f32> = xs.iter().map(|x| 3.0 * (x + 1.0f32).sin()).collect();
    let mut support = String::from("x,amplitude\n");
    for (x, y) in xs.iter().zip(&ys) {
        support += &format!("{x},{y}\n");
    }
    let support = put(d, "support.csv", support);
    let qx = [-3.0f32, -0.5, 0.0, 2.25, 4.75];
    let query = put(
        d,
        "query.csv",
        format!("x\n{}\n", qx.map(|x| x.to_string()).join("\n")),
    );
    let (out_blob, out_onnx) = (d.join("adapted.postcard"), d.join("adapted.onnx"));
    let o = anole([
        "adapt".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--support".as_ref(),
        support.as_os_str(),
        "--query".as_ref(),
        query.as_os_str(),
        "--out".as_ref(),
        out_blob.as_os_str(),
        "--onnx".as_ref(),
        out_onnx.as_os_str(),
    ]);
    let text = ok(&o);
    let (header, rows) = parse_csv(&text);
    assert_eq!(header, ["amplitude"]);
    assert_eq!(rows.len(), qx.len());
    assert!(String::from_utf8_lossy(&o.stderr).contains("32 steps at lr 0.02"));

    // The same adaptation through the library gives the same predictions and blob.
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = vec![0.0; blob.arena_len(10).unwrap()];
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    l.adapt(&SliceSamples::new(&xs, &ys, 1, 1).unwrap(), 32)
        .unwrap();
    let mut expected = [0.0f32; 5];
    l.predict(&qx, &mut expected).unwrap();
    for (r, e) in rows.iter().zip(expected) {
        assert_eq!(r[0], e, "printed values round-trip exactly");
    }
    let adapted = std::fs::read(&out_blob).unwrap();
    assert_eq!(adapted, l.export_vec());
    let adapted_blob = Blob::parse(&adapted).unwrap();
    assert_eq!(
        std::fs::read(&out_onnx).unwrap(),
        onnx_bytes(&adapted_blob).unwrap()
    );

    // predict with the adapted blob prints the same rows; the init predicts differently.
    let p = ok(&anole([
        "predict".as_ref(),
        "--model".as_ref(),
        out_blob.as_os_str(),
        "--query".as_ref(),
        query.as_os_str(),
    ]));
    let (ph, prow) = parse_csv(&p);
    assert_eq!(ph, ["y"]);
    assert_eq!(prow, rows);
    let p0 = ok(&anole([
        "predict".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--query".as_ref(),
        query.as_os_str(),
    ]));
    assert_ne!(parse_csv(&p0).1, rows);

    // Zero steps: predictions of the initialization.
    let o = anole([
        "adapt".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--support".as_ref(),
        support.as_os_str(),
        "--query".as_ref(),
        query.as_os_str(),
        "--steps".as_ref(),
        "0".as_ref(),
    ]);
    assert_eq!(parse_csv(&ok(&o)).1, parse_csv(&p0).1);
}

#[test]
fn classification_prints_labels_and_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arch = Arch::omniglot(3, 4);
    let model = put(d, "cnn.postcard", blob_bytes(&arch, 1, 6));
    let cols: Vec<String> = (0..784).map(|i| format!("px{i}")).collect();
    let row = |seed: usize| -> String {
        (0..784)
            .map(|i| {
                if (i * 7 + seed * 13) % 11 < 4 {
                    "1"
                } else {
                    "0"
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut support = format!("{},label\n", cols.join(","));
    for k in 0..6 {
        support += &format!("{},{}\n", row(k), k % 3);
    }
    let support = put(d, "support.csv", support);
    let query = put(
        d,
        "query.csv",
        format!("{}\n{}\n{}\n", cols.join(","), row(0), row(4)),
    );
    let o = anole([
        "adapt".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--support".as_ref(),
        support.as_os_str(),
        "--query".as_ref(),
        query.as_os_str(),
        "--steps".as_ref(),
        "10".as_ref(),
        "--lr".as_ref(),
        "0.05".as_ref(),
        "--scores".as_ref(),
    ]);
    let (header, rows) = parse_csv(&ok(&o));
    assert_eq!(header, ["label", "p0", "p1", "p2"]);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let sum: f32 = r[1..].iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{r:?}");
        let best = r[1..]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(r[0] as usize, best);
    }
    // Adapting on the support set makes its own rows come out as their labels.
    assert_eq!(rows[0][0], 0.0);
    assert_eq!(rows[1][0], 1.0);
}

#[test]
fn inspect_reports_sizes_that_match_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = blob_bytes(&Arch::omniglot(5, 64), 1, 10);
    let model = put(dir.path(), "omni.postcard", &bytes);
    let blob = Blob::parse(&bytes).unwrap();
    let text = ok(&anole([
        "inspect".as_ref(),
        model.as_os_str(),
        "--batch".as_ref(),
        "25".as_ref(),
    ]));
    assert!(
        text.contains(&format!("parameters: {}", blob.param_count())),
        "{text}"
    );
    assert!(
        text.contains(&format!("flash: {} bytes", bytes.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "arena to adapt at batch 10: {} f32",
            blob.arena_len(10).unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "arena to adapt at batch 25: {} f32",
            blob.arena_len(25).unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains("conv2d") && text.contains("[64, 2, 2]"),
        "{text}"
    );
    let features = blob.features().join(", ");
    assert!(features.starts_with("conv, norm"), "{features}");
    assert!(
        text.contains(&format!(
            "runtime features a device build needs: {features}"
        )),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&ok(&anole([
        "inspect".as_ref(),
        model.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert_eq!(json["params"], blob.param_count());
    assert_eq!(json["flash_bytes"], bytes.len());
    assert_eq!(json["arena"][0]["f32"], blob.arena_len(10).unwrap());
    assert_eq!(json["layers"].as_array().unwrap().len(), blob.layers.len());
    assert_eq!(
        json["runtime_features"],
        serde_json::json!(blob.features().to_vec())
    );
    // A learner really fits in the reported arena, and not in one f32 less.
    let need = blob.arena_len(10).unwrap();
    let mut arena = vec![0.0; need];
    assert!(Learner::new(&blob, &mut arena).is_ok());
    let mut arena = vec![0.0; need - 1];
    assert!(Learner::new(&blob, &mut arena).is_err());
}

#[test]
fn import_inverts_export_and_applies_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, arch, loss) in [
        ("sine", Arch::sine(), 0u8),
        ("omni", Arch::omniglot(5, 16), 1),
    ] {
        let bytes = blob_bytes(&arch, loss, 10);
        let onnx = put(
            d,
            &format!("{name}.onnx"),
            onnx_bytes(&Blob::parse(&bytes).unwrap()).unwrap(),
        );
        let out = d.join(format!("{name}.postcard"));
        ok(&anole([
            "import".as_ref(),
            onnx.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ]));
        assert_eq!(
            std::fs::read(&out).unwrap(),
            bytes,
            "{name}: export then import gives the same blob"
        );

        let out2 = d.join(format!("{name}-head.postcard"));
        let args = [
            "--lr", "0.5", "--steps", "3", "--batch", "4", "--adapt", "head", "--dtype", "f16",
        ];
        let mut all: Vec<&OsStr> = vec![
            "import".as_ref(),
            onnx.as_os_str(),
            "--out".as_ref(),
            out2.as_os_str(),
        ];
        all.extend(args.iter().map(OsStr::new));
        ok(&anole(all));
        let b2 = std::fs::read(&out2).unwrap();
        let blob2 = Blob::parse(&b2).unwrap();
        let s = blob2.settings();
        assert_eq!(
            (s.lr, s.steps, s.batch, s.trainable),
            (0.5, 3, 4, arch.head_only())
        );
        assert!(blob2.dtypes.iter().all(|d| *d == anole::DType::F16));
    }
    // Cross-entropy on a one-output model is refused.
    let onnx = put(
        d,
        "one.onnx",
        onnx_bytes(&Blob::parse(&blob_bytes(&Arch::sine(), 0, 10)).unwrap()).unwrap(),
    );
    fails(
        &anole([
            "import".as_ref(),
            onnx.as_os_str(),
            "--out".as_ref(),
            d.join("x.postcard").as_os_str(),
            "--loss".as_ref(),
            "xent".as_ref(),
        ]),
        &["one.onnx: cross-entropy needs at least 2 outputs"],
    );

    // The operator table: markdown, one row per operator, and only on its own.
    let table = ok(&anole(["import", "--operators"]));
    assert!(table.starts_with("| ONNX operator | becomes | accepts |"));
    for op in [
        "`Gemm`",
        "`Conv`",
        "`AveragePool`",
        "`Softmax`",
        "`Constant`",
    ] {
        assert!(
            table.contains(&format!("| {op} |")),
            "{op} missing:\n{table}"
        );
    }
    let e = anole(["import", "--operators", "--out", "x.postcard"]);
    assert!(!e.status.success());
}
