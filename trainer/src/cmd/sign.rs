//! `anole keygen`, `anole sign` and `anole verify`: ed25519 keys for a device fleet, the
//! signed envelope around a blob (format in `anole::sign`), and its check on the workstation.
//!
//! The secret key file is written with mode 0600; key files and the envelope are described in
//! [`crate::signing`].

use crate::files::hex;
use crate::signing::{read_public_key, read_signing_key, sign_blob};
use anole::sign;
use anole::Blob;
use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::SigningKey;
use rand::TryRngCore;
use std::path::{Path, PathBuf};

/// Arguments of `anole keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Secret key file to write (hex); the public key goes to the same path plus `.pub`.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `anole sign`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Secret key file (from `anole keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// Blob to sign (init.postcard).
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Signed envelope to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `anole verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Trusted public key file (`KEY.pub`: 32 raw bytes, or 64 hex characters).
    #[arg(long)]
    pub pubkey: PathBuf,
    /// Signed envelope to check.
    #[arg(long = "in")]
    pub input: PathBuf,
}

fn write_new(path: &Path, bytes: &[u8], force: bool, secret: bool) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "{}: already exists (pass --force to overwrite a key)",
                path.display()
            )
        } else {
            anyhow!("cannot write {}: {e}", path.display())
        }
    })?;
    std::io::Write::write_all(&mut f, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn pub_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Run `anole keygen`.
pub fn run_keygen(a: KeygenArgs) -> Result<()> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut secret)
        .context("no randomness from the operating system")?;
    let key = SigningKey::from_bytes(&secret);
    let public = key.verifying_key().to_bytes();
    let pub_file = pub_path(&a.out);
    for p in [&a.out, &pub_file] {
        if !a.force && p.exists() {
            bail!(
                "{}: already exists (pass --force to overwrite a key)",
                p.display()
            );
        }
    }
    write_new(
        &a.out,
        format!("{}\n", hex(&secret)).as_bytes(),
        a.force,
        true,
    )?;
    write_new(&pub_file, &public, a.force, false)?;
    println!(
        "secret key: {} (keep it off devices and out of the repository)",
        a.out.display()
    );
    println!(
        "public key: {} (32 bytes for include_bytes!)",
        pub_file.display()
    );
    println!("public key hex: {}", hex(&public));
    println!("key id: {}", hex(&sign::key_id(&public)));
    Ok(())
}

/// Run `anole sign`.
pub fn run(a: Args) -> Result<()> {
    let key = read_signing_key(&a.key)?;
    let blob =
        std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let signed = sign_blob(&blob, &key).with_context(|| a.input.display().to_string())?;
    std::fs::write(&a.out, &signed).with_context(|| format!("cannot write {}", a.out.display()))?;
    let id = sign::key_id(&key.verifying_key().to_bytes());
    println!(
        "signed {} ({} bytes) with key id {} -> {} ({} bytes)",
        a.input.display(),
        blob.len(),
        hex(&id),
        a.out.display(),
        signed.len()
    );
    Ok(())
}

/// Run `anole verify`.
pub fn run_verify(a: VerifyArgs) -> Result<()> {
    let public = read_public_key(&a.pubkey)?;
    let bytes =
        std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let blob =
        Blob::parse_signed(&bytes, &public).with_context(|| a.input.display().to_string())?;
    let p = blob.provenance();
    println!(
        "{}: signature valid (key id {}); blob of {} parameters, task {}, {} run, seed {}",
        a.input.display(),
        hex(&sign::key_id(&public)),
        blob.param_count(),
        p.task,
        p.algorithm,
        p.seed
    );
    Ok(())
}
