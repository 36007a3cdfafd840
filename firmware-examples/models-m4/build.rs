//! Embeds one model and sizes the RAM for it: parses the blob with the same runtime the device
//! runs (with `extra-layers`), writes the exact arena length (f32, `anole::Mode::Device`, one
//! sample per pass) that predicting and adapting the blob's trainable layers need, the input
//! and target lengths, and puts the memory map where the linker finds it (as `memory.x` in
//! `OUT_DIR`; no `memory.x` in this folder, where the linker would look first).
//!
//! - `ANOLE_MODEL=path/to/blob.postcard`: the model (default: the sine model,
//!   `models/sine/init.postcard`). `models-m4/run.sh` writes the reference models' blobs
//!   with `make-blobs.py`; the blob's settings say which layers adapt (its trainable mask), the
//!   learning rate and the steps to time.
//! - `ANOLE_MODEL_ADAPT=none`: predict only (the arena to predict, no steps); by default the
//!   blob's trainable layers adapt.
//! - `ANOLE_MODEL_MAP=256k` (default): mps2-an386 with the budget of a 256 KB-RAM, 1 MB-flash
//!   part (`memory-256k.x`); `4m`: the machine's whole 4 MB of each (`memory-4m.x`).

use std::path::PathBuf;
use std::{env, fs, process};

/// The default model, relative to this folder.
const MODEL: &str = "../../models/sine/init.postcard";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let write = |name: &str, bytes: &[u8]| {
        fs::write(out.join(name), bytes).map_err(|e| format!("cannot write OUT_DIR/{name}: {e}"))
    };

    println!("cargo:rerun-if-env-changed=ANOLE_MODEL_MAP");
    let map = env::var("ANOLE_MODEL_MAP").unwrap_or_else(|_| "256k".into());
    let (map_file, ram_kb, flash_kb, map_name) = match map.as_str() {
        "256k" => (
            "memory-256k.x",
            256,
            1024,
            "mps2-an386, budget of a 256 KB-RAM, 1 MB-flash part",
        ),
        "4m" => (
            "memory-4m.x",
            4096,
            4096,
            "mps2-an386, 4 MB RAM, 4 MB flash",
        ),
        other => return Err(format!("ANOLE_MODEL_MAP={other}: use 256k or 4m")),
    };
    let map_bytes =
        fs::read(manifest.join(map_file)).map_err(|e| format!("{map_file}: cannot read: {e}"))?;
    write("memory.x", &map_bytes)?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-256k.x");
    println!("cargo:rerun-if-changed=memory-4m.x");

    println!("cargo:rerun-if-env-changed=ANOLE_MODEL");
    let model = match env::var_os("ANOLE_MODEL") {
        Some(p) => PathBuf::from(p),
        None => manifest.join(MODEL),
    };
    println!("cargo:rerun-if-changed={}", model.display());
    let m = model.display();
    let bytes = fs::read(&model).map_err(|e| {
        format!("{m}: cannot read the model blob ({e}); models-m4/run.sh writes the reference models' blobs")
    })?;
    let blob =
        anole::Blob::parse(&bytes).map_err(|e| format!("{m}: not a valid anole blob: {e}"))?;
    let s = blob.settings();
    let plan = |trainable| {
        anole::Plan::with_mode(&blob, 1, trainable, anole::Mode::Device)
            .map(|p| p.arena_len())
            .map_err(|e| format!("{m}: cannot lay out the arena: {e}"))
    };
    println!("cargo:rerun-if-env-changed=ANOLE_MODEL_ADAPT");
    let adapt = match env::var("ANOLE_MODEL_ADAPT").as_deref() {
        Ok("none") => false,
        Ok("blob") | Err(_) => true,
        Ok(other) => return Err(format!("ANOLE_MODEL_ADAPT={other}: use blob or none")),
    };
    let predict_arena = plan(0)?;
    let adapt_arena = if adapt { plan(s.trainable)? } else { 0 };
    let arena = predict_arena.max(adapt_arena);
    if bytes.len() > flash_kb * 1024 {
        return Err(format!(
            "{m}: the blob's {} bytes do not fit the {flash_kb} KB of flash of ANOLE_MODEL_MAP={map}",
            bytes.len()
        ));
    }
    if arena * 4 > ram_kb * 1024 {
        return Err(format!(
            "{m}: the arena's {} bytes do not fit the {ram_kb} KB of RAM of ANOLE_MODEL_MAP={map}",
            arena * 4
        ));
    }
    write("model.postcard", &bytes)?;
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sizes = format!(
        "/// f32 of the arena: the larger of what predicting and adapting the blob's trainable\n\
         /// layers need, one sample per pass, in the device layout.\n\
         pub const ARENA_LEN: usize = {arena};\n\
         /// f32 of one input sample.\n\
         pub const INPUT_LEN: usize = {};\n\
         /// f32 of one target (1 for a classifier's label).\n\
         pub const TARGET_LEN: usize = {};\n\
         /// f32 of one prediction.\n\
         pub const OUTPUT_LEN: usize = {};\n\
         /// Whether the blob's trainable layers adapt (`ANOLE_MODEL_ADAPT`), or the firmware\n\
         /// only predicts.\n\
         pub const ADAPT: bool = {adapt};\n\
         /// The embedded blob's file name.\n\
         pub const MODEL_NAME: &str = {name:?};\n\
         /// The memory map linked.\n\
         pub const MAP: &str = {map_name:?};\n\
         /// Bytes of RAM and of flash of the memory map.\n\
         pub const MAP_RAM: usize = {};\n\
         /// Bytes of flash of the memory map.\n\
         pub const MAP_FLASH: usize = {};\n",
        blob.input_len(),
        blob.target_len(),
        blob.output_len(),
        ram_kb * 1024,
        flash_kb * 1024,
    );
    write("sizes.rs", sizes.as_bytes())
}
