//! Helpers shared by the CLI tests: blobs written to temporary files, and running the built
//! `anole` binary.
#![allow(dead_code)]

use anole::blob::AdaptSettings;
use anole::DType;
use anole_trainer::model::{encode_blob, Arch, BlobMeta};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A blob of `arch` with seeded PyTorch-style parameters.
pub fn blob_bytes(arch: &Arch, loss: u8, batch: u32) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let params = arch.init_params(&mut rng).unwrap();
    let meta = BlobMeta {
        dtype: DType::F32,
        settings: AdaptSettings {
            loss,
            optimizer: 0,
            lr: 0.02,
            steps: 32,
            batch,
            trainable: arch.all_layers(),
            head_start: 0,
            head_scale: 1.0,
            lr_scale: Default::default(),
        },
        algorithm: "random".into(),
        task: "cli-test".into(),
        seed: 5,
        meta_iterations: 0,
    };
    encode_blob(arch, &params, &meta).unwrap()
}

/// Write `bytes` to `dir/name`.
pub fn put(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Run `anole` with `args`.
pub fn anole<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_anole"))
        .args(args)
        .output()
        .unwrap()
}

/// Stdout of a run that must succeed.
pub fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "anole failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The stderr of a run that must fail cleanly: non-zero exit, no panic, one line, containing
/// every piece of `must`.
pub fn fails(out: &Output, must: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    for m in must {
        assert!(stderr.contains(m), "missing {m:?} in {stderr:?}");
    }
    stderr
}

/// The held-out loss of `init.postcard` after `steps` adaptation steps in the card.json of a
/// `sine` or `csv` run in `out`.
pub fn card_loss(out: &Path, steps: u64) -> f64 {
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("card.json")).unwrap()).unwrap();
    card["metrics"]["init.postcard"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["steps"] == steps)
        .unwrap()["loss"]["mean"]
        .as_f64()
        .unwrap()
}
