//! The worked example of `docs/own-tasks.md`, small: `scripts/own-tasks.py` writes damped
//! oscillations of 60 training and 20 held-out devices and a starting network as ONNX (built
//! with the `onnx` Python package, as `scripts/setup.sh` installs it); `anole train csv`
//! meta-trains from that ONNX init with Reptile and with joint training, and exports the
//! starting weights as they are. On the held-out devices, Reptile's initialization adapts to a
//! far lower MSE than joint training's after a few steps, and lower than the starting weights'.

mod common;

use common::{anole, card_loss, ok};
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn reptile_beats_joint_training_and_the_starting_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/own-tasks.py");
    let gen = Command::new("python3")
        .arg(&script)
        .arg(&data)
        .args(["--train", "60", "--eval", "20"])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "train".to_string(),
            "csv".into(),
            "--data".into(),
            s(&data.join("train")),
            "--eval-data".into(),
            s(&data.join("eval")),
            "--init".into(),
            s(&data.join("init.onnx")),
            "--out".into(),
            s(&out),
            "--eval-tasks".into(),
            "300".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        ok(&anole(&args));
        out
    };
    let reptile = run("reptile", &["--iters", "20000"]);
    let joint = run("joint", &["--iters", "20000", "--algo", "joint"]);
    let start = run("start", &["--iters", "0"]);
    let (r8, j8) = (card_loss(&reptile, 8), card_loss(&joint, 8));
    assert!(r8 < 0.7 * j8, "after 8 steps: Reptile {r8}, joint {j8}");
    let (r32, j32, s32) = (
        card_loss(&reptile, 32),
        card_loss(&joint, 32),
        card_loss(&start, 32),
    );
    assert!(
        r32 < j32 && r32 < s32,
        "after 32 steps: Reptile {r32}, joint {j32}, start {s32}"
    );
}
