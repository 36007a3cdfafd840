//! Signing blobs with ed25519 for devices that accept only blobs of a trusted key: key files,
//! the signed envelope around a blob (format in `anole::sign`), and the signing of every blob a
//! training run exports (`anole train --sign`), with what its model card records about it.
//!
//! Key files: the secret key is 64 hex characters and a newline; the public key (`KEY.pub`) is
//! the 32 raw bytes, ready for `include_bytes!` in firmware. Both readers also take the other
//! form (raw 32 bytes or 64 hex characters).

use crate::card;
use crate::files::{self, hex};
use anole::sign;
use anole::Blob;
use anyhow::{bail, Context, Result};
use ed25519_dalek::{Signer as _, SigningKey};
use std::path::{Path, PathBuf};

/// 32 key bytes from a key file's contents: 32 raw bytes, or 64 hex characters (surrounding
/// whitespace ignored).
fn key_bytes(path: &Path, what: &str) -> Result<[u8; 32]> {
    let data =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if let Ok(raw) = <[u8; 32]>::try_from(data.as_slice()) {
        return Ok(raw);
    }
    let text = std::str::from_utf8(&data).map(str::trim).unwrap_or("");
    if text.len() == 64 && text.bytes().all(|c| c.is_ascii_hexdigit()) {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
        }
        return Ok(out);
    }
    bail!(
        "{}: not an {what}: expected 32 raw bytes or 64 hex characters, found {} bytes",
        path.display(),
        data.len()
    )
}

/// Read a secret signing key written by `anole keygen`.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    if path.extension().is_some_and(|e| e == "pub") {
        bail!(
            "{}: this is a public key; sign with the secret key file (without .pub)",
            path.display()
        );
    }
    Ok(SigningKey::from_bytes(&key_bytes(
        path,
        "ed25519 secret key",
    )?))
}

/// Read a trusted public key (`KEY.pub`).
pub fn read_public_key(path: &Path) -> Result<[u8; 32]> {
    key_bytes(path, "ed25519 public key")
}

/// Wrap `blob` (a valid, unsigned anole blob) in a signed envelope: header, the blob byte
/// for byte, and the ed25519 signature of `key` (see `anole::sign` for the format).
pub fn sign_blob(blob: &[u8], key: &SigningKey) -> Result<Vec<u8>> {
    if sign::is_signed(blob) {
        bail!("already signed (starts with \"ANSG\"); sign the plain blob");
    }
    Blob::parse(blob).context("not a valid blob")?;
    let public = key.verifying_key().to_bytes();
    let header = sign::header(sign::key_id(&public), blob.len())?;
    let signature = key.sign(&sign::message(&header, blob));
    let mut out = Vec::with_capacity(sign::HEADER_LEN + blob.len() + sign::SIGNATURE_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(blob);
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// The name of the signed envelope of the blob `name`: `init.postcard` → `init.signed`,
/// `init.f16.postcard` → `init.f16.signed` (the names `anole sign` is shown with).
pub fn signed_name(name: &str) -> String {
    format!("{}.signed", name.strip_suffix(".postcard").unwrap_or(name))
}

/// The signing key of `anole train --sign`, read (and checked) before any training.
pub struct Signer {
    key: SigningKey,
    path: PathBuf,
}

impl Signer {
    /// Read the secret key file at `path`.
    pub fn read(path: &Path) -> Result<Signer> {
        let key = read_signing_key(path).context("--sign")?;
        Ok(Signer {
            key,
            path: path.to_path_buf(),
        })
    }

    /// Signs every blob of `blobs` (file name, bytes) and writes each envelope next to its blob
    /// in `out`.
    pub fn sign_all<'b>(
        &self,
        out: &Path,
        blobs: impl IntoIterator<Item = (&'b str, &'b [u8])>,
    ) -> Result<Vec<Signed>> {
        let mut signed = Vec::new();
        for (name, blob) in blobs {
            let bytes = sign_blob(blob, &self.key).with_context(|| format!("signing {name}"))?;
            let file = signed_name(name);
            files::write(&out.join(&file), &bytes)?;
            signed.push(Signed {
                file,
                blob: name.to_string(),
                bytes,
            });
        }
        Ok(signed)
    }

    /// What the model card records about the signature of `signed`.
    pub fn card(&self, signed: &[Signed]) -> card::Signature {
        let public = self.key.verifying_key().to_bytes();
        card::Signature {
            algorithm: "ed25519".into(),
            format: "anole signed envelope version 1 (anole::sign), as written by anole sign"
                .into(),
            public_key: hex(&public),
            key_id: hex(&sign::key_id(&public)),
            secret_key_file: self.path.display().to_string(),
            envelopes: signed
                .iter()
                .map(|s| (s.file.clone(), s.blob.clone()))
                .collect(),
            check: signed.first().map(|s| {
                format!(
                    "anole verify --pubkey {}.pub --in {}",
                    self.path.display(),
                    s.file
                )
            }),
        }
    }
}

/// A signed envelope written by [`Signer::sign_all`].
pub struct Signed {
    /// Its file name in the output folder.
    pub file: String,
    /// The blob it wraps.
    pub blob: String,
    /// The envelope.
    pub bytes: Vec<u8>,
}
