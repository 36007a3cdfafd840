//! The exported files pass the ONNX reference checker (`full_check`) and run in onnxruntime
//! with the outputs the runtime computes (within 1e-5): `onnx_check.py`, run with python3,
//! installs `onnx` and `onnxruntime` with pip when missing.
//!
//! Skipped (loudly) only when python3 or pip is unavailable, and never under CI (`CI` set).

use anole::{Blob, DType};
use anole_tests::{adapted, blob_bytes, rng, runtime_predict, uniform};
use anole_trainer::export::onnx::onnx_bytes;
use anole_trainer::model::Arch;
use serde_json::json;
use std::process::Command;

const TOL: f32 = 1e-5;

fn case(
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
    batches: &[usize],
    lo: f32,
    hi: f32,
    seed: u64,
) -> serde_json::Value {
    let blob = Blob::parse(bytes).unwrap();
    let file = format!("{name}.onnx");
    std::fs::write(dir.join(&file), onnx_bytes(&blob).unwrap()).unwrap();
    let mut r = rng(seed);
    let runs: Vec<_> = batches
        .iter()
        .map(|&n| {
            let x = uniform(&mut r, n * blob.input_len(), lo, hi);
            let mut shape = vec![n];
            shape.extend(blob.wire.input_shape.iter().map(|&d| d as usize));
            json!({ "shape": shape, "input": x, "expected": runtime_predict(bytes, &x) })
        })
        .collect();
    json!({ "name": name, "model": file, "runs": runs })
}

fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("onnx_check.py cannot run under CI: {why}");
    }
    eprintln!("\n*** SKIPPED onnx reference checker and onnxruntime: {why} ***\n");
}

#[test]
fn reference_checker_and_onnxruntime_agree_with_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut cases = Vec::new();

    let sine = blob_bytes(&Arch::sine(), DType::F32, 0, 0.02, 10, 1);
    let mut r = rng(2);
    let x = uniform(&mut r, 10, -5.0, 5.0);
    let y: Vec<f32> = x.iter().map(|v| 1.7 * (v - 0.3).sin()).collect();
    cases.push(case(d, "sine-init", &sine, &[1, 16], -5.0, 5.0, 3));
    cases.push(case(
        d,
        "sine-adapted",
        &adapted(&sine, &x, &y, 32),
        &[1, 16],
        -5.0,
        5.0,
        4,
    ));
    let sine16 = blob_bytes(&Arch::sine(), DType::F16, 0, 0.02, 10, 5);
    cases.push(case(d, "sine-f16", &sine16, &[4], -5.0, 5.0, 6));

    let omni = blob_bytes(&Arch::omniglot(5, 64), DType::F32, 1, 0.001, 5, 7);
    let xs = uniform(&mut r, 5 * 784, 0.0, 1.0);
    let ys: Vec<f32> = (0..5).map(|i| i as f32).collect();
    cases.push(case(d, "omniglot-init", &omni, &[1, 3], 0.0, 1.0, 8));
    cases.push(case(
        d,
        "omniglot-adapted",
        &adapted(&omni, &xs, &ys, 5),
        &[1, 3],
        0.0,
        1.0,
        9,
    ));

    let act = blob_bytes(&anole_tests::activations_arch(), DType::F32, 1, 0.05, 6, 10);
    let xa = uniform(&mut r, 6 * 128, -1.0, 1.0);
    let ya: Vec<f32> = (0..6).map(|i| (i % 3) as f32).collect();
    cases.push(case(d, "activations-init", &act, &[1, 3], -1.0, 1.0, 11));
    cases.push(case(
        d,
        "activations-adapted",
        &adapted(&act, &xa, &ya, 10),
        &[1, 3],
        -1.0,
        1.0,
        12,
    ));

    std::fs::write(
        d.join("cases.json"),
        json!({ "tolerance": TOL, "cases": cases }).to_string(),
    )
    .unwrap();

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/onnx_check.py");
    let out = match Command::new(&python).arg(script).arg(d).output() {
        Ok(o) => o,
        Err(e) => return skip(&format!("cannot run {python}: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    match out.status.code() {
        Some(0) => assert_eq!(
            stdout.matches("checker ok").count(),
            cases.len(),
            "{stdout}"
        ),
        Some(77) => skip(stderr.trim()),
        _ => panic!("onnx_check.py failed:\n{stdout}\n{stderr}"),
    }
}
