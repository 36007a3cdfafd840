//! The host C tests: `tests/c/api_test.c` compiled with the C compiler (`CC`, else `cc`)
//! against `include/anole.h` and the host static library `libanole_capi.a`, and run (under
//! valgrind's memcheck when it is installed, so a write past a C buffer fails the test). It
//! calls every function of the header with good arguments and with every bad one it can
//! make, and checks each status. The fixtures it reads are written here with the runtime
//! (the sine model, a signed envelope and keys, a small classifier, samples, the expected
//! sizes), and its adapted blob is compared byte for byte with the runtime's own.
//!
//! `cargo test -p anole-capi --release --test c_api -- --nocapture` prints the C test's
//! output.

use anole::blob::{crc32, encoded_len, RawLayer, RawTensor, Wire};
use anole::sign;
use anole::{Blob, Layer, Learner, Mode, Options, Plan, SliceSamples};
use anole_capi::AnoleStatus;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`, where cargo put this test and the static library.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory for one test's files.
fn work_dir(name: &str) -> PathBuf {
    let d = profile_dir().join("capi-c-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the work directory");
    d
}

/// The static library cargo built with this test: `cargo test` compiles the library once for
/// both its crate types and leaves the archive in `deps/` (`cargo build` also copies it to
/// `target/<profile>/`); the newest one is this build's.
fn static_lib() -> PathBuf {
    let deps = profile_dir().join("deps");
    std::fs::read_dir(&deps)
        .expect("target/<profile>/deps")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("libanole_capi-") && name.ends_with(".a")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no libanole_capi-*.a in {}", deps.display()))
}

/// Compile `sources` with the C compiler against the header and the static library.
fn compile(sources: &[PathBuf], exe: &Path) {
    let lib = static_lib();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args([
            "-std=c11",
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .args(sources)
        .arg(&lib)
        // The native libraries a Rust static library needs on a GNU/Linux host
        // (`rustc --print native-static-libs`).
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ])
        .arg("-o")
        .arg(exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "compiling {sources:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `exe` with `args`, under valgrind when it is installed; returns its output.
fn run(exe: &Path, args: &[&Path]) -> String {
    let valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    let mut cmd = if valgrind {
        let mut c = Command::new("valgrind");
        c.args(["--quiet", "--error-exitcode=99", "--leak-check=no"])
            .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let out = cmd.args(args).output().expect("run the C test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "{} failed ({}){}:\n{text}",
        exe.display(),
        out.status,
        if valgrind { " under valgrind" } else { "" }
    );
    text
}

fn sine_bytes() -> Vec<u8> {
    let p = manifest_dir().join("../models/sine/init.postcard");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The envelope of `blob` signed by `key`, as `anole sign` writes it.
fn envelope(blob: &[u8], key: &SigningKey) -> Vec<u8> {
    let public = key.verifying_key().to_bytes();
    let header = sign::header(sign::key_id(&public), blob.len()).expect("envelope header");
    let signature = key.sign(&sign::message(&header, blob));
    [&header[..], blob, &signature.to_bytes()[..]].concat()
}

/// A 32-byte string that is not an ed25519 public key.
fn invalid_key() -> [u8; 32] {
    (0..=255u8)
        .map(|b| [b; 32])
        .find(|k| VerifyingKey::from_bytes(k).is_err())
        .expect("some constant byte string is not a curve point")
}

/// A classifier head: 4 inputs, one dense layer to 3 classes, cross-entropy; adapts at
/// batch 6 with lr 0.1 for 5 steps.
fn head_bytes(sine: &[u8]) -> Vec<u8> {
    let base = Blob::parse(sine).expect("the sine model parses");
    let weights: Vec<u8> = (0..12)
        .flat_map(|i| ((i as f32 - 6.0) * 0.05).to_le_bytes())
        .collect();
    let bias: Vec<u8> = [0.1f32, -0.1, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut w = base.wire.clone();
    w.input_shape.clear();
    w.input_shape.push(4).expect("room for one dimension");
    w.layers.clear();
    w.layers
        .push(
            Layer::Dense {
                inputs: 4,
                outputs: 3,
            }
            .to_raw(),
        )
        .expect("room for one layer");
    w.tensors.clear();
    for data in [&weights[..], &bias[..]] {
        w.tensors
            .push(anole::blob::RawTensor { dtype: 0, data })
            .expect("room for two tensors");
    }
    w.adapt.loss = 1;
    w.adapt.batch = 6;
    w.adapt.lr = 0.1;
    w.adapt.steps = 5;
    w.adapt.trainable = 1;
    w.adapt.lr_scale.clear();
    let mut out = vec![0u8; encoded_len(&w)];
    let n = Blob::encode_wire(&w, &mut out).expect("encode").len();
    out.truncate(n);
    Blob::parse(&out).expect("the classifier parses");
    out
}

/// `w` encoded as a blob (no validation: the C test parses it).
fn encode(w: &Wire<'_, RawTensor<'_>>) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(w)];
    let n = Blob::encode_wire(w, &mut out).expect("encode").len();
    out.truncate(n);
    out
}

/// `payload` with its CRC-32 trailer.
fn with_crc(mut payload: Vec<u8>) -> Vec<u8> {
    let crc = crc32(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    payload
}

/// The sine model damaged in one way each, with the status its parse must return: every way
/// a blob can be refused after its CRC checks out.
fn damaged(sine: &[u8]) -> Vec<(&'static str, Vec<u8>, AnoleStatus)> {
    let base = Blob::parse(sine).expect("the sine model parses");
    let tanh = RawLayer {
        kind: anole::layers::kind::TANH,
        args: Default::default(),
    };
    let mut nan = base.wire.tensors[0].data.to_vec();
    nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    fn edited<'a>(
        w: &Wire<'a, RawTensor<'a>>,
        f: impl FnOnce(&mut Wire<'a, RawTensor<'a>>),
    ) -> Vec<u8> {
        let mut w = w.clone();
        f(&mut w);
        encode(&w)
    }
    let edit = |f: &dyn Fn(&mut Wire<'_, RawTensor<'_>>)| edited(&base.wire, |w| f(w));
    let payload = &sine[..sine.len() - 4];
    let mut trailing = payload.to_vec();
    trailing.push(0);
    // Byte 5 is the input shape's length (after "ANOL" and the version): more dimensions than
    // a blob may hold. Byte 7 is the layer count (after the one-dimension input shape): more
    // layers than the library holds.
    let mut malformed = payload.to_vec();
    malformed[5] = 0x7F;
    let mut too_many = payload.to_vec();
    too_many[7] = 0x7F;
    use AnoleStatus as S;
    vec![
        ("trailing", with_crc(trailing), S::TrailingBytes),
        ("malformed", with_crc(malformed), S::Malformed),
        ("too_many_layers", with_crc(too_many), S::LayerCount),
        (
            "unknown_layer",
            edit(&|w| w.layers[1].kind = 200),
            S::UnknownLayer,
        ),
        (
            "bad_layer_args",
            edit(&|w| w.layers[0].args[1] = 0),
            S::BadLayerArgs,
        ),
        (
            "shape_mismatch",
            edit(&|w| w.layers[2].args[0] = 32),
            S::ShapeMismatch,
        ),
        ("layer_count", edit(&|w| w.layers.clear()), S::LayerCount),
        (
            "tensor_count",
            edit(&|w| {
                w.tensors.pop();
            }),
            S::TensorCount,
        ),
        (
            "tensor_size",
            edit(&|w| w.tensors[1].data = &w.tensors[1].data[4..]),
            S::TensorSize,
        ),
        (
            "unknown_dtype",
            edit(&|w| w.tensors[0].dtype = 9),
            S::UnknownDtype,
        ),
        (
            "non_finite_weight",
            edited(&base.wire, |w| w.tensors[0].data = &nan),
            S::NonFiniteWeight,
        ),
        ("bad_loss", edit(&|w| w.adapt.loss = 7), S::BadLoss),
        (
            "bad_head_start",
            edit(&|w| {
                w.version = 2;
                w.adapt.head_start = 9;
            }),
            S::BadHeadStart,
        ),
        (
            "bad_optimizer",
            edit(&|w| w.adapt.optimizer = 9),
            S::BadOptimizer,
        ),
        ("bad_settings", edit(&|w| w.adapt.lr = -1.0), S::BadSettings),
        (
            "unsupported_chain",
            edit(&|w| w.layers.insert(2, tanh.clone()).expect("room for a layer")),
            S::UnsupportedChain,
        ),
    ]
}

/// Ten support points of one sine task, as raw little-endian floats: 10 inputs, 10 targets.
fn samples() -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..10).map(|i| -4.5 + i as f32).collect();
    let y = x.iter().map(|x| 2.0 * (x + 0.5).sin()).collect();
    (x, y)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// The figures the C test checks, computed with the runtime.
fn expectations(sine: &[u8], signed: &[u8], head: &[u8]) -> String {
    let b = Blob::parse(sine).expect("sine parses");
    let s = b.settings();
    let batch = s.batch as usize;
    let arena = |batch, trainable, mode| {
        Plan::with_mode(&b, batch, trainable, mode)
            .expect("plan")
            .arena_len()
    };
    let mut e = String::new();
    let mut put = |k: &str, v: String| writeln!(e, "{k} {v}").expect("write to a string");
    put("sine_len", sine.len().to_string());
    put("signed_len", signed.len().to_string());
    put("head_len", head.len().to_string());
    put("input_len", b.input_len().to_string());
    put("output_len", b.output_len().to_string());
    put("target_len", b.target_len().to_string());
    put("layers", b.layers.len().to_string());
    put("params", b.param_count().to_string());
    put("steps", s.steps.to_string());
    put("batch", s.batch.to_string());
    put("trainable", s.trainable.to_string());
    put("lr_bits", s.lr.to_bits().to_string());
    put(
        "meta_iterations",
        b.provenance().meta_iterations.to_string(),
    );
    put(
        "arena_buffered",
        arena(batch, s.trainable, Mode::Buffered).to_string(),
    );
    put(
        "arena_device",
        arena(batch, s.trainable, Mode::Device).to_string(),
    );
    put(
        "arena_predict_device",
        arena(1, 0, Mode::Device).to_string(),
    );
    e
}

/// The sine model adapted on [`samples`] in the device layout, exported: what the C test
/// must write.
fn rust_adapted(sine: &[u8]) -> Vec<u8> {
    let b = Blob::parse(sine).expect("sine parses");
    let mut arena = vec![0f32; b.device_arena_len(b.settings().batch as usize).unwrap()];
    let mut l =
        Learner::with_mode(&b, &mut arena, Options::from_blob(&b), Mode::Device).expect("learner");
    let (x, y) = samples();
    let s = SliceSamples::new(&x, &y, 1, 1).expect("samples");
    l.adapt(&s, b.settings().steps).expect("adapt");
    let mut out = vec![0u8; l.export_len()];
    let n = l.export(&mut out).expect("export").len();
    out.truncate(n);
    out
}

#[test]
fn c_tests_call_every_function_with_good_and_bad_arguments() {
    let dir = work_dir("api");
    let sine = sine_bytes();
    let key = SigningKey::from_bytes(&[1; 32]);
    let other = SigningKey::from_bytes(&[2; 32]);
    let signed = envelope(&sine, &key);
    let head = head_bytes(&sine);
    let (x, y) = samples();
    let mut proto = Blob::parse(&head).expect("the head parses").wire;
    proto.adapt.head_start = anole::HeadStart::Prototypes as u8;
    proto.version = proto.format_version();
    let head_proto = encode(&proto);
    proto.adapt.head_scale = 0.5;
    proto.version = proto.format_version();
    let head_scaled = encode(&proto);
    let files: [(&str, Vec<u8>); 10] = [
        ("head_proto.postcard", head_proto),
        ("head_scaled.postcard", head_scaled),
        ("sine.postcard", sine.clone()),
        ("sine.signed", signed.clone()),
        ("key.pub", key.verifying_key().to_bytes().to_vec()),
        ("other.pub", other.verifying_key().to_bytes().to_vec()),
        ("invalid.pub", invalid_key().to_vec()),
        ("head.postcard", head.clone()),
        ("samples.f32", [f32_bytes(&x), f32_bytes(&y)].concat()),
        (
            "expect.txt",
            expectations(&sine, &signed, &head).into_bytes(),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).expect("write a fixture");
    }
    let mut index = String::new();
    for (name, bytes, status) in damaged(&sine) {
        std::fs::write(dir.join(format!("{name}.postcard")), bytes).expect("write a fixture");
        writeln!(index, "{name}.postcard {}", status as i32).expect("write to a string");
    }
    std::fs::write(dir.join("damaged.txt"), index).expect("write a fixture");
    let exe = dir.join("api_test");
    compile(&[manifest_dir().join("tests/c/api_test.c")], &exe);
    let out = run(&exe, &[&dir]);
    assert!(out.contains(" passed, 0 failed"), "{out}");
    let c = std::fs::read(dir.join("c-adapted.postcard")).expect("the C test wrote its export");
    assert!(
        c == rust_adapted(&sine),
        "the blob the C test adapted differs from the runtime's"
    );
}

/// The first C code block of `docs/c-api.md`: the quick start.
fn quick_start() -> String {
    let page = manifest_dir().join("../docs/c-api.md");
    let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let start = text
        .find("```c\n")
        .expect("docs/c-api.md has a C code block")
        + 5;
    let len = text[start..].find("```").expect("the code block ends");
    text[start..start + len].to_string()
}

#[test]
fn the_documented_quick_start_adapts_and_predicts() {
    let dir = work_dir("quick-start");
    let src = dir.join("quick_start.c");
    std::fs::write(&src, quick_start()).expect("write the quick start");
    let exe = dir.join("quick_start");
    compile(&[src], &exe);
    let model = manifest_dir().join("../models/sine/init.postcard");
    let out = run(&exe, &[&model]);
    let p: f32 = out
        .trim()
        .strip_prefix("prediction at 0.5: ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {out}"));
    assert!(p.is_finite(), "{out}");
}

#[test]
fn header_compiles_as_cpp() {
    let dir = work_dir("cpp");
    let src = dir.join("include.cpp");
    std::fs::write(
        &src,
        "#include \"anole.h\"\nint main() { return anole_status_message(0) == nullptr; }\n",
    )
    .expect("write the C++ source");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = Command::new(&cxx)
        .args([
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
        ])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler `{cxx}`: {e}"));
    assert!(
        out.status.success(),
        "anole.h does not compile as C++:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
