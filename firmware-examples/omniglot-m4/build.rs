//! Embeds the Omniglot model and episode and sizes the RAM for them: parses the blob with the
//! same runtime the device runs, splits it into frozen body and head as the device does
//! (`anole::submodel`), checks that `episode.bin` was generated for this model, writes the exact
//! arena lengths (f32) of the body learner (one image per pass) and of the head learner (the
//! blob's batch), and puts the memory map where the linker finds it (as `memory.x` in `OUT_DIR`; no
//! `memory.x` in this folder, where the linker would look first).
//!
//! The model is [`MODEL`] unless `ANOLE_OMNIGLOT_MODEL` names another blob; the episode is
//! `episode.bin` unless `ANOLE_OMNIGLOT_EPISODE` names another file.

#[path = "src/episode.rs"]
#[allow(dead_code)]
mod episode;

use std::path::PathBuf;
use std::{env, fs, process};

/// The embedded model, relative to this folder.
const MODEL: &str = "../../models/omniglot-5way/init.f16.postcard";

/// The command that regenerates `episode.bin` (from the repository root).
const REGENERATE: &str = "cargo run --release -p anole-trainer --example omniglot_episode -- --model models/omniglot-5way/init.f16.postcard --data ../shared/data/omniglot --out firmware-examples/omniglot-m4/episode.bin";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        process::exit(1);
    }
}

fn path_setting(var: &str, default: PathBuf) -> PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    match env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => default,
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let write = |name: &str, bytes: &[u8]| {
        fs::write(out.join(name), bytes).map_err(|e| format!("cannot write OUT_DIR/{name}: {e}"))
    };

    // The memory map: the netduinoplus2's STM32F405, or mps2-an386 with the feature.
    let map = if env::var_os("CARGO_FEATURE_MPS2_AN386").is_some() {
        "memory-mps2-an386.x"
    } else {
        "memory-netduinoplus2.x"
    };
    let map_bytes = fs::read(manifest.join(map)).map_err(|e| format!("{map}: cannot read: {e}"))?;
    write("memory.x", &map_bytes)?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-netduinoplus2.x");
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");

    let model = path_setting("ANOLE_OMNIGLOT_MODEL", manifest.join(MODEL));
    let ep_path = path_setting("ANOLE_OMNIGLOT_EPISODE", manifest.join("episode.bin"));
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rerun-if-changed={}", ep_path.display());
    let m = model.display();
    let bytes = fs::read(&model).map_err(|e| {
        format!("{m}: cannot read the model blob ({e}); train it (anole train omniglot ... --out models/omniglot-5way) or set ANOLE_OMNIGLOT_MODEL")
    })?;
    let blob =
        anole::Blob::parse(&bytes).map_err(|e| format!("{m}: not a valid anole blob: {e}"))?;
    if blob.loss != anole::LossKind::CrossEntropy || blob.input_len() != episode::PIXELS {
        return Err(format!("{m}: the firmware needs a 28×28 classifier"));
    }
    let (mut body, mut head) = (anole::Blob::empty(), anole::Blob::empty());
    anole::submodel::body_into(&blob, &mut body).map_err(|e| format!("{m}: {e}"))?;
    anole::submodel::head_into(&blob, &mut head).map_err(|e| format!("{m}: {e}"))?;

    let e = ep_path.display();
    let ep_bytes = fs::read(&ep_path).map_err(|err| {
        format!("{e}: cannot read the episode ({err}); generate it with `{REGENERATE}`")
    })?;
    let ep = episode::Episode::parse(&ep_bytes).map_err(|err| format!("{e}: {err}"))?;
    let crc = u32::from_le_bytes([
        bytes[bytes.len() - 4],
        bytes[bytes.len() - 3],
        bytes[bytes.len() - 2],
        bytes[bytes.len() - 1],
    ]);
    if ep.model_crc != crc {
        return Err(format!(
            "{e} was generated for another model (CRC {:08x}, {m} has {crc:08x}): regenerate it with `{REGENERATE}`",
            ep.model_crc
        ));
    }
    if ep.ways != blob.output_len() {
        return Err(format!(
            "{e}: a {}-way episode for a {}-way model",
            ep.ways,
            blob.output_len()
        ));
    }

    let opts = anole::Options::from_blob(&head);
    let body_arena = anole::Plan::with_mode(&body, 1, 0, anole::Mode::Device)
        .map_err(|err| format!("{m}: body arena: {err}"))?
        .arena_len();
    let head_arena = anole::Plan::with_mode(&head, opts.batch, opts.trainable, anole::Mode::Device)
        .map_err(|err| format!("{m}: head arena: {err}"))?
        .arena_len();
    let features = body.output_len();
    let support = ep.support_len();
    write("model.postcard", &bytes)?;
    write("episode.bin", &ep_bytes)?;
    let sizes = format!(
        "/// f32 of the body learner's arena (one image per pass, nothing adapting).\n\
         pub const BODY_ARENA: usize = {body_arena};\n\
         /// f32 of the head learner's arena at the blob's batch.\n\
         pub const HEAD_ARENA: usize = {head_arena};\n\
         /// f32 of the cached support features (support images × features).\n\
         pub const SUPPORT_FEATURES: usize = {};\n\
         /// Support images of the embedded episode.\n\
         pub const MAX_SUPPORT: usize = {support};\n\
         /// Values per feature vector (the head's input).\n\
         pub const MAX_FEATURES: usize = {features};\n\
         /// Classes of the model.\n\
         pub const MAX_WAYS: usize = {};\n\
         /// f32 of the head's parameters (kept aside between adapting and predicting).\n\
         pub const HEAD_PARAMS: usize = {};\n\
         /// f32 of RAM region A: the body's arena, or the head's while it adapts.\n\
         pub const REGION_A: usize = {};\n\
         /// f32 of RAM region B: the cached support features, or the adapted head's arena.\n\
         pub const REGION_B: usize = {};\n",
        support * features,
        blob.output_len(),
        head.param_count(),
        body_arena.max(head_arena),
        (support * features).max(head_arena),
    );
    write("sizes.rs", sizes.as_bytes())
}
