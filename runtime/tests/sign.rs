//! Signed blobs (feature `sign`): an envelope signed with the trusted key loads; a plain
//! blob, another key, a forged key id, and every single-bit change or truncation of the
//! envelope are refused, each with its own error.
//!
//! `cargo test -p anole --release --features sign --test sign -- --nocapture` prints the
//! error message of each bad input.

mod common;

use anole::sign::{self, HEADER_LEN, SIGNATURE_LEN};
use anole::{Blob, Error, Layer};
use common::{dense, Model, MSE};
use ed25519_dalek::{Signer, SigningKey};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The envelope of `blob` signed by `key`, as `anole sign` writes it.
fn envelope(blob: &[u8], key: &SigningKey) -> Vec<u8> {
    let public = key.verifying_key().to_bytes();
    let header = sign::header(sign::key_id(&public), blob.len()).unwrap();
    let signature = key.sign(&sign::message(&header, blob));
    [&header[..], blob, &signature.to_bytes()[..]].concat()
}

fn tiny() -> Vec<u8> {
    Model::new(&[3], vec![dense(3, 8), Layer::Relu, dense(8, 4)], MSE, 1).encode()
}

fn sine() -> Vec<u8> {
    Model::new(
        &[1],
        vec![
            dense(1, 64),
            Layer::Tanh,
            dense(64, 64),
            Layer::Tanh,
            dense(64, 1),
        ],
        MSE,
        2,
    )
    .encode()
}

#[test]
fn signed_blob_loads_and_is_the_blob() {
    for bytes in [tiny(), sine()] {
        let k = key(1);
        let signed = envelope(&bytes, &k);
        assert_eq!(signed.len(), HEADER_LEN + bytes.len() + SIGNATURE_LEN);
        assert!(sign::is_signed(&signed));
        let public = k.verifying_key().to_bytes();
        assert_eq!(sign::verify(&signed, &public).unwrap(), &bytes[..]);
        let blob = Blob::parse_signed(&signed, &public).unwrap();
        let plain = Blob::parse(&bytes).unwrap();
        assert_eq!(format!("{:?}", blob.wire), format!("{:?}", plain.wire));
    }
}

/// A public key that is not a point of the curve.
fn invalid_public_key() -> [u8; 32] {
    (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .expect("some small y is not on the curve")
}

#[test]
fn bad_inputs_get_their_own_error() {
    let bytes = tiny();
    let k = key(1);
    let public = k.verifying_key().to_bytes();
    let signed = envelope(&bytes, &k);
    let mut cases: Vec<(&str, Vec<u8>, [u8; 32], Error)> = Vec::new();

    cases.push((
        "plain (unsigned) blob",
        bytes.clone(),
        public,
        Error::Unsigned { found: *b"ANOL" },
    ));
    let other = key(2);
    let other_public = other.verifying_key().to_bytes();
    cases.push((
        "signed with another key",
        envelope(&bytes, &other),
        public,
        Error::UnknownKey {
            found: sign::key_id(&other_public),
            expected: sign::key_id(&public),
        },
    ));
    // Another key signs a header that claims the trusted key's id.
    let forged = {
        let header = sign::header(sign::key_id(&public), bytes.len()).unwrap();
        let sig = other.sign(&sign::message(&header, &bytes));
        [&header[..], &bytes[..], &sig.to_bytes()[..]].concat()
    };
    cases.push((
        "another key, forged key id",
        forged,
        public,
        Error::BadSignature,
    ));
    // A signature over the bare blob (no domain, header or digest) does not verify.
    let bare = {
        let header = sign::header(sign::key_id(&public), bytes.len()).unwrap();
        let sig = k.sign(&bytes);
        [&header[..], &bytes[..], &sig.to_bytes()[..]].concat()
    };
    cases.push((
        "signature over the bare blob",
        bare,
        public,
        Error::BadSignature,
    ));
    let mut tampered = signed.clone();
    tampered[HEADER_LEN + 40] ^= 0x01;
    cases.push((
        "one blob byte changed",
        tampered,
        public,
        Error::BadSignature,
    ));
    let mut tampered = signed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    cases.push(("signature changed", tampered, public, Error::BadSignature));
    cases.push((
        "cut short by one byte",
        signed[..signed.len() - 1].to_vec(),
        public,
        Error::EnvelopeLength {
            len: signed.len() - 1,
            expected: signed.len(),
        },
    ));
    cases.push((
        "one byte appended",
        [&signed[..], &[0u8][..]].concat(),
        public,
        Error::EnvelopeLength {
            len: signed.len() + 1,
            expected: signed.len(),
        },
    ));
    cases.push((
        "header only",
        signed[..10].to_vec(),
        public,
        Error::EnvelopeLength {
            len: 10,
            expected: HEADER_LEN + SIGNATURE_LEN,
        },
    ));
    let mut v2 = signed.clone();
    v2[4] = 2;
    cases.push((
        "envelope version 2",
        v2,
        public,
        Error::EnvelopeVersion {
            found: 2,
            supported: 1,
        },
    ));
    let mut alg = signed.clone();
    alg[6] = 2;
    cases.push((
        "unknown signature algorithm",
        alg,
        public,
        Error::EnvelopeMalformed {
            what: "unknown signature algorithm (1 = ed25519)",
        },
    ));
    cases.push((
        "trusted public key not on the curve",
        signed.clone(),
        invalid_public_key(),
        Error::BadPublicKey,
    ));
    // The identity point: a valid encoding of a small-order key, which verify_strict refuses.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = {
        let header = sign::header(sign::key_id(&identity), bytes.len()).unwrap();
        [&header[..], &bytes[..], &[0u8; 64][..]].concat()
    };
    cases.push((
        "small-order public key",
        weak,
        identity,
        Error::BadSignature,
    ));
    // A correctly signed envelope around a corrupted blob: the signature passes, the blob's
    // own checks refuse it.
    let mut broken = bytes.clone();
    let last = broken.len() - 1;
    broken[last] ^= 0xFF;
    let expect = Blob::parse(&broken).err().unwrap();
    assert!(matches!(expect, Error::CrcMismatch { .. }), "{expect}");
    cases.push((
        "signed, but the blob inside is corrupted",
        envelope(&broken, &k),
        public,
        expect,
    ));

    for (what, input, trusted, expected) in &cases {
        let got = Blob::parse_signed(input, trusted).err();
        assert_eq!(got, Some(*expected), "{what}");
        println!("bad input: {what} -> {expected}");
    }
}

/// Every single-bit change anywhere in the envelope, and every truncation, is refused.
#[test]
fn every_bit_flip_and_truncation_is_refused() {
    let bytes = tiny();
    let k = key(3);
    let public = k.verifying_key().to_bytes();
    let signed = envelope(&bytes, &k);
    let mut flips = 0;
    for i in 0..signed.len() {
        for bit in 0..8 {
            let mut t = signed.clone();
            t[i] ^= 1 << bit;
            assert!(
                Blob::parse_signed(&t, &public).is_err(),
                "flip of bit {bit} at byte {i} accepted"
            );
            flips += 1;
        }
    }
    for n in 0..signed.len() {
        assert!(
            Blob::parse_signed(&signed[..n], &public).is_err(),
            "truncation to {n} bytes accepted"
        );
    }
    println!(
        "signed envelope of {} bytes: {flips} single-bit flips and {} truncations tried, all refused",
        signed.len(),
        signed.len()
    );
}
