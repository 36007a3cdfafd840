//! `include/anole.h` is what cbindgen generates from the sources with `cbindgen.toml`: fails
//! when the committed header is stale. `ANOLE_WRITE_HEADER=1` writes it instead.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = dir.join("include/anole.h");
    if std::env::var_os("ANOLE_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write include/anole.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with `ANOLE_WRITE_HEADER=1 cargo test -p anole-capi --release --test header` and commit it",
        path.display()
    );
}
