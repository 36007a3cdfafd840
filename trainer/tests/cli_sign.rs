//! `anole keygen`, `anole sign`, `anole verify`, `anole train --sign`: a signed blob verifies
//! with its key, and another key, a tampered or truncated envelope, a plain blob, a bad key file
//! each fail with exit status 1 and one clear line; `train --sign` writes the same envelopes as
//! `anole sign` and refuses a bad key before training.

mod common;

use anole_trainer::model::Arch;
use anole_trainer::signing::{read_signing_key, sign_blob};
use common::{anole, blob_bytes, fails, ok, put};
use std::path::Path;
use std::time::{Duration, Instant};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn keygen(dir: &Path, name: &str) -> String {
    let key = dir.join(name);
    let out = ok(&anole(["keygen", "--out", &s(&key)]));
    assert!(out.contains("public key hex: "), "{out}");
    assert_eq!(
        std::fs::read(dir.join(format!("{name}.pub")))
            .unwrap()
            .len(),
        32
    );
    s(&key)
}

#[test]
fn sign_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let blob = put(d, "init.postcard", blob_bytes(&Arch::sine(), 0, 10));
    let key = keygen(d, "fleet.key");
    let signed = d.join("init.signed");
    let out = ok(&anole([
        "sign",
        "--key",
        &key,
        "--in",
        &s(&blob),
        "--out",
        &s(&signed),
    ]));
    assert!(out.contains("signed"), "{out}");
    let bytes = std::fs::read(&signed).unwrap();
    assert_eq!(&bytes[..4], b"ANSG");
    assert_eq!(
        &bytes[20..bytes.len() - 64],
        &std::fs::read(&blob).unwrap()[..]
    );
    let out = ok(&anole([
        "verify",
        "--pubkey",
        &format!("{key}.pub"),
        "--in",
        &s(&signed),
    ]));
    assert!(out.contains("signature valid"), "{out}");
    // The library function `anole train --sign` uses gives the same bytes (ed25519 is
    // deterministic).
    let k = read_signing_key(Path::new(&key)).unwrap();
    assert_eq!(
        sign_blob(&std::fs::read(&blob).unwrap(), &k).unwrap(),
        bytes
    );
    // The public key also reads as hex.
    let hex: String = std::fs::read(format!("{key}.pub"))
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hex_pub = put(d, "fleet.hex", format!("{hex}\n"));
    ok(&anole([
        "verify",
        "--pubkey",
        &s(&hex_pub),
        "--in",
        &s(&signed),
    ]));
    // The secret key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret key readable by others: {mode:o}");
    }
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let blob = put(d, "init.postcard", blob_bytes(&Arch::sine(), 0, 10));
    let key = keygen(d, "a.key");
    let other = keygen(d, "b.key");
    let signed = d.join("init.signed");
    ok(&anole([
        "sign",
        "--key",
        &key,
        "--in",
        &s(&blob),
        "--out",
        &s(&signed),
    ]));
    let good = std::fs::read(&signed).unwrap();
    let verify =
        |file: &Path, pubkey: &str| anole(["verify", "--pubkey", pubkey, "--in", &s(file)]);
    let pub_a = format!("{key}.pub");
    let pub_b = format!("{other}.pub");
    let mut lines = Vec::new();

    lines.push((
        "verify with another key",
        fails(
            &verify(&signed, &pub_b),
            &["init.signed", "signed by key id"],
        ),
    ));
    let mut t = good.clone();
    t[20 + 100] ^= 1;
    let tampered = put(d, "tampered.signed", &t);
    lines.push((
        "one blob byte changed",
        fails(
            &verify(&tampered, &pub_a),
            &["tampered.signed", "signature does not verify"],
        ),
    ));
    let cut = put(d, "cut.signed", &good[..good.len() - 10]);
    lines.push((
        "envelope cut short",
        fails(&verify(&cut, &pub_a), &["cut.signed", "cut short"]),
    ));
    lines.push((
        "plain blob where a signed one is required",
        fails(&verify(&blob, &pub_a), &["init.postcard", "not signed"]),
    ));
    let bad_key = put(d, "bad.pub", "not a key");
    lines.push((
        "public key file of the wrong size",
        fails(
            &verify(&signed, &s(&bad_key)),
            &["bad.pub", "not an ed25519 public key"],
        ),
    ));
    lines.push((
        "sign with the public key file",
        fails(
            &anole([
                "sign",
                "--key",
                &pub_a,
                "--in",
                &s(&blob),
                "--out",
                &s(&d.join("x")),
            ]),
            &["a.key.pub", "public key"],
        ),
    ));
    lines.push((
        "sign an already signed blob",
        fails(
            &anole([
                "sign",
                "--key",
                &key,
                "--in",
                &s(&signed),
                "--out",
                &s(&d.join("y")),
            ]),
            &["init.signed", "already signed"],
        ),
    ));
    let junk = put(d, "junk.postcard", b"ANOL but not a blob at all");
    lines.push((
        "sign something that is not a blob",
        fails(
            &anole([
                "sign",
                "--key",
                &key,
                "--in",
                &s(&junk),
                "--out",
                &s(&d.join("z")),
            ]),
            &["junk.postcard", "not a valid blob"],
        ),
    ));
    lines.push((
        "keygen over an existing key",
        fails(
            &anole(["keygen", "--out", &key]),
            &["a.key", "already exists"],
        ),
    ));
    lines.push((
        "sign with a missing key file",
        fails(
            &anole([
                "sign",
                "--key",
                &s(&d.join("none.key")),
                "--in",
                &s(&blob),
                "--out",
                &s(&d.join("w")),
            ]),
            &["none.key"],
        ),
    ));
    for (what, line) in lines {
        println!("bad input: {what} -> {}", line.trim_end());
    }
}

#[test]
fn train_sign_writes_envelopes_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen(d, "fleet.key");
    let out = d.join("model");
    let printed = ok(&anole([
        "train",
        "sine",
        "--out",
        &s(&out),
        "--iters",
        "20",
        "--eval-tasks",
        "5",
        "--sign",
        &key,
    ]));
    assert!(printed.contains("init.signed"), "{printed}");
    let k = read_signing_key(Path::new(&key)).unwrap();
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("card.json")).unwrap()).unwrap();
    for (plain, signed) in [
        ("init.postcard", "init.signed"),
        ("init.f16.postcard", "init.f16.signed"),
    ] {
        let blob = std::fs::read(out.join(plain)).unwrap();
        let envelope = std::fs::read(out.join(signed)).unwrap();
        // Byte for byte what `anole sign` writes for the plain blob, which stays as it was.
        assert_eq!(envelope, sign_blob(&blob, &k).unwrap(), "{signed}");
        assert_eq!(&blob[..4], b"ANOL");
        let v = ok(&anole([
            "verify",
            "--pubkey",
            &format!("{key}.pub"),
            "--in",
            &s(&out.join(signed)),
        ]));
        assert!(v.contains("signature valid"), "{v}");
        assert_eq!(card["signature"]["envelopes"][signed], plain, "{card:#}");
        assert_eq!(
            card["artifacts"][signed]["bytes"].as_u64(),
            Some(envelope.len() as u64)
        );
    }
    let public: String = k
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(card["signature"]["public_key"], public.as_str());
    assert_eq!(card["signature"]["algorithm"], "ed25519");
    let command = card["command"].as_str().unwrap();
    assert!(command.ends_with(&format!(" --sign {key}")), "{command}");
    // Another key does not verify what --sign wrote.
    let other = keygen(d, "other.key");
    fails(
        &anole([
            "verify",
            "--pubkey",
            &format!("{other}.pub"),
            "--in",
            &s(&out.join("init.signed")),
        ]),
        &["init.signed", "signed by key id"],
    );
}

#[test]
fn train_refuses_a_bad_key_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen(d, "good.key");
    let junk = put(d, "junk.key", "not a key\n");
    let cases = [
        (
            s(&junk),
            vec!["--sign", "junk.key", "not an ed25519 secret key"],
        ),
        (
            s(&d.join("none.key")),
            vec!["--sign", "none.key", "cannot read"],
        ),
        (
            format!("{key}.pub"),
            vec!["--sign", "good.key.pub", "public key"],
        ),
    ];
    for (bad, must) in cases {
        let out = d.join("model");
        // 30 million meta-iterations would take hours: the key must be refused first.
        let t = Instant::now();
        let line = fails(
            &anole([
                "train",
                "sine",
                "--out",
                &s(&out),
                "--iters",
                "30000000",
                "--sign",
                &bad,
            ]),
            &must,
        );
        assert!(t.elapsed() < Duration::from_secs(60), "{line}");
        assert!(!out.exists(), "output written despite a bad key: {line}");
        println!("bad input: train --sign {bad} -> {}", line.trim_end());
    }
}
