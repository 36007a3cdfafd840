//! Embeds the sine model and sizes the arena for it: parses the blob with the same runtime the
//! device runs, checks it is a 1-input, 1-output regressor, copies it into `OUT_DIR` for
//! `include_bytes!` and writes the exact arena length (f32) for the blob's recommended batch in the
//! device layout (`anole::Mode::Device`).
//!
//! The model is `models/sine/init.postcard` unless `ANOLE_SINE_MODEL` names another blob.

use std::path::PathBuf;
use std::{env, fs, process};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    println!("cargo:rerun-if-env-changed=ANOLE_SINE_MODEL");
    let model = match env::var_os("ANOLE_SINE_MODEL") {
        Some(p) => PathBuf::from(p),
        None => manifest.join("../../models/sine/init.postcard"),
    };
    println!("cargo:rerun-if-changed={}", model.display());
    let bytes = fs::read(&model)
        .map_err(|e| format!("{}: cannot read the model blob: {e}", model.display()))?;
    let blob = anole::Blob::parse(&bytes)
        .map_err(|e| format!("{}: not a valid anole blob: {e}", model.display()))?;
    if blob.input_len() != 1 || blob.output_len() != 1 || blob.loss != anole::LossKind::Mse {
        return Err(format!(
            "{}: the sine demo needs a 1-input, 1-output MSE regressor; this blob has {} inputs and {} outputs",
            model.display(),
            blob.input_len(),
            blob.output_len()
        ));
    }
    let batch = blob.settings().batch as usize;
    let arena = blob
        .device_arena_len(batch)
        .map_err(|e| format!("{}: cannot lay out the arena: {e}", model.display()))?;
    fs::write(out.join("model.postcard"), &bytes)
        .map_err(|e| format!("cannot write OUT_DIR: {e}"))?;
    fs::write(out.join("arena_len.rs"), format!("{arena}\n"))
        .map_err(|e| format!("cannot write OUT_DIR: {e}"))?;
    Ok(())
}
