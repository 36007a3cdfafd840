//! Signed blobs (feature `sign`): an ed25519 envelope around an unchanged anole blob, so a
//! device fleet accepts only initializations signed by a trusted key.
//!
//! The blob format itself is untouched: the envelope wraps the blob's bytes. A device that
//! must only run signed initializations loads them with [`Blob::parse_signed`] (or checks
//! with [`verify`] and parses the returned bytes): it refuses a plain blob, a blob signed by
//! another key and any altered byte, each with its own [`Error`] variant. Signing happens on
//! the workstation (`anole sign`); the device holds only the 32-byte public key.
//!
//! [`Blob::parse_signed`]: crate::Blob::parse_signed
//!
//! ```no_run
//! static SIGNED: &[u8] = &[]; // include_bytes!("init.signed"), from `anole sign`
//! static FLEET_KEY: &[u8; 32] = &[0; 32]; // include_bytes!("fleet.key.pub")
//! let blob = anole::Blob::parse_signed(SIGNED, FLEET_KEY)?; // refuses anything else
//! # Ok::<(), anole::Error>(())
//! ```
//!
//! # Envelope, version 1 (all integers little-endian)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `ANSG` |
//! | 4 | 2 | envelope version, [`ENVELOPE_VERSION`] (1) |
//! | 6 | 1 | algorithm: 1 = ed25519 |
//! | 7 | 1 | reserved, 0 |
//! | 8 | 8 | key id: the first 8 bytes of SHA-512(public key) |
//! | 16 | 4 | blob length `n` in bytes |
//! | 20 | n | the blob, byte for byte (`ANOL` … CRC-32) |
//! | 20 + n | 64 | ed25519 signature (RFC 8032, pure Ed25519) of the message below |
//!
//! The signed message is [`MESSAGE_LEN`] (148) bytes: the domain string [`DOMAIN`]
//! (`"anole signed blob v1"` and a zero byte, 21 bytes), the 20 header bytes (offsets 0..20),
//! then SHA-512 of the blob's `n` bytes (64 bytes). The domain keeps a signature made for
//! anything else from ever verifying as an anole envelope; the header binds version, key id
//! and length; the digest binds every byte of the blob. Verification uses
//! `verify_strict` (rejects non-canonical signatures and small-order keys).
//!
//! Checks, in order: magic (a plain blob gives [`Error::Unsigned`]), size of the header,
//! version, algorithm and reserved byte, total size against the header's length, the public
//! key, the key id, the signature; only then is the blob parsed (its own CRC and validation).

use crate::error::{Error, Result};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// The four bytes a signed envelope starts with.
pub const MAGIC: [u8; 4] = *b"ANSG";
/// The only envelope version this runtime reads and writes.
pub const ENVELOPE_VERSION: u16 = 1;
/// Algorithm code of ed25519.
pub const ALGORITHM_ED25519: u8 = 1;
/// Bytes before the blob.
pub const HEADER_LEN: usize = 20;
/// Bytes of the signature after the blob.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of an ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Domain separation string at the start of every signed message.
pub const DOMAIN: &[u8; 21] = b"anole signed blob v1\0";
/// Bytes of the signed message: domain, header, SHA-512 of the blob.
pub const MESSAGE_LEN: usize = DOMAIN.len() + HEADER_LEN + 64;

/// Key id of `public_key`: the first 8 bytes of its SHA-512.
pub fn key_id(public_key: &[u8; PUBLIC_KEY_LEN]) -> [u8; 8] {
    let digest = Sha512::digest(public_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

/// The envelope header for a blob of `blob_len` bytes signed by the key with `key_id`.
pub fn header(key_id: [u8; 8], blob_len: usize) -> Result<[u8; HEADER_LEN]> {
    let len = u32::try_from(blob_len).map_err(|_| Error::TooLarge {
        what: "a signed blob must be under 4 GiB",
    })?;
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&ENVELOPE_VERSION.to_le_bytes());
    h[6] = ALGORITHM_ED25519;
    h[8..16].copy_from_slice(&key_id);
    h[16..20].copy_from_slice(&len.to_le_bytes());
    Ok(h)
}

/// The message the signature covers: [`DOMAIN`], `header`, SHA-512 of `blob`.
pub fn message(header: &[u8; HEADER_LEN], blob: &[u8]) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    let (domain, rest) = m.split_at_mut(DOMAIN.len());
    domain.copy_from_slice(DOMAIN);
    let (head, digest) = rest.split_at_mut(HEADER_LEN);
    head.copy_from_slice(header);
    digest.copy_from_slice(&Sha512::digest(blob));
    m
}

/// Whether `bytes` start like a signed envelope (no verification).
pub fn is_signed(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes[..4] == MAGIC
}

/// Check the envelope `bytes` against the trusted `public_key` and return the blob bytes
/// inside it (not yet parsed). Every failure has its own [`Error`] variant.
pub fn verify<'a>(bytes: &'a [u8], public_key: &[u8; PUBLIC_KEY_LEN]) -> Result<&'a [u8]> {
    if bytes.len() >= 4 && !is_signed(bytes) {
        return Err(Error::Unsigned {
            found: [bytes[0], bytes[1], bytes[2], bytes[3]],
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(Error::EnvelopeLength {
            len: bytes.len(),
            expected: HEADER_LEN + SIGNATURE_LEN,
        });
    }
    let (head, rest) = bytes.split_at(HEADER_LEN);
    let version = u16::from_le_bytes([head[4], head[5]]);
    if version != ENVELOPE_VERSION {
        return Err(Error::EnvelopeVersion {
            found: version,
            supported: ENVELOPE_VERSION,
        });
    }
    if head[6] != ALGORITHM_ED25519 {
        return Err(Error::EnvelopeMalformed {
            what: "unknown signature algorithm (1 = ed25519)",
        });
    }
    if head[7] != 0 {
        return Err(Error::EnvelopeMalformed {
            what: "reserved header byte is not zero",
        });
    }
    let blob_len = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
    let expected = HEADER_LEN
        .checked_add(blob_len)
        .and_then(|n| n.checked_add(SIGNATURE_LEN))
        .ok_or(Error::TooLarge {
            what: "signed envelope length",
        })?;
    if bytes.len() != expected {
        return Err(Error::EnvelopeLength {
            len: bytes.len(),
            expected,
        });
    }
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| Error::BadPublicKey)?;
    let trusted = key_id(public_key);
    let mut found = [0u8; 8];
    found.copy_from_slice(&head[8..16]);
    if found != trusted {
        return Err(Error::UnknownKey {
            found,
            expected: trusted,
        });
    }
    let (blob, sig) = rest.split_at(blob_len);
    let mut sig_bytes = [0u8; SIGNATURE_LEN];
    sig_bytes.copy_from_slice(sig);
    let signature = Signature::from_bytes(&sig_bytes);
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(head);
    key.verify_strict(&message(&h, blob), &signature)
        .map_err(|_| Error::BadSignature)?;
    Ok(blob)
}
