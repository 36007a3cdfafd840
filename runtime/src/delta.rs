//! Update deltas: what a device sends home after adapting, for a fleet to meta-train its
//! initialization (federated Reptile: the server moves the initialization toward the mean of
//! the devices' adapted-minus-initial parameters).
//!
//! A delta holds only the *adapting* layers' parameters (those the learner's trainable mask
//! names), as `adapted − initial` in IEEE binary16, either every coordinate (dense) or the
//! `k` of largest magnitude with their indices (top-k sparse), so a microcontroller's uplink
//! is small. [`write`] encodes one from a learner's [`Blob`], [`Plan`] and parameters into a
//! caller's buffer (no heap); [`Delta::parse`] reads and checks one (the server's side, also
//! heap-free), and [`apply`] adds a dense delta, scaled, to a parameter vector. A device
//! verifies the signed round blob it adapts from with `Blob::parse_signed` (feature `sign`).
//!
//! ```no_run
//! # fn main() -> Result<(), anole::delta::DeltaError> {
//! # let (blob, arena): (anole::Blob<'static>, &mut [f32]) = unimplemented!();
//! let mut learner = anole::Learner::new(&blob, arena).map_err(anole::delta::DeltaError::Runtime)?;
//! // ... learner.adapt(&samples, steps) ...
//! let head = anole::delta::Header { round: 7, fingerprint: 0x1234 };
//! let mut out = [0u8; 512];
//! let bytes = anole::delta::write(&blob, learner.plan(), learner.params(), head, Some(64), &mut out)?;
//! // send `bytes`
//! # Ok(()) }
//! ```
//!
//! # Format, version 1 (all integers little-endian)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `ANDT` |
//! | 4 | 1 | version, [`VERSION`] (1) |
//! | 5 | 1 | encoding: 0 dense, 1 sparse with u16 indices, 2 sparse with u32 indices |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 4 | round the delta answers |
//! | 12 | 8 | fingerprint of the round's blob ([`fingerprint`]) |
//! | 20 | 4 | `n`: coordinates (parameters of the adapting layers) |
//! | 24 | 4 | `k`: entries stored (`n` when dense) |
//! | 28 | | sparse only: `k` indices, strictly increasing, each below `n` (u16 when `n` ≤ 65,536, else u32) |
//! | | 2k | `k` values, binary16 |
//! | end − 4 | 4 | CRC-32 (ISO-HDLC) of every byte before it |
//!
//! Coordinates run over the adapting layers in layer order, and within a layer over its
//! tensors in blob order (for a norm layer all four: scale, shift and the running statistics).
//! A dense delta of `n` coordinates is `2n + 32` bytes; a top-k one `4k + 32` (u16 indices) or
//! `6k + 32` bytes, and [`write`] stores the dense form whenever it is not larger.

use crate::blob::Blob;
use crate::dtype::{f16_to_f32, DType};
use crate::plan::{Node, Plan};
use crate::wire::crc32;
use core::fmt;

/// The four bytes a delta starts with.
pub const MAGIC: [u8; 4] = *b"ANDT";
/// The only format version this runtime reads and writes.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 28;
/// Bytes of header and CRC: a delta's size beyond its payload.
pub const OVERHEAD: usize = HEADER_LEN + 4;

const DENSE: u8 = 0;
const SPARSE16: u8 = 1;
const SPARSE32: u8 = 2;
const FINGERPRINT: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// Which round and which model a delta answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The server's round number.
    pub round: u32,
    /// [`fingerprint`] of the blob the device adapted from.
    pub fingerprint: u64,
}

/// Every way writing, reading or applying a delta can fail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DeltaError {
    /// Shorter than a header and CRC, or than its header's entries need.
    Length {
        /// Bytes given.
        len: usize,
        /// Bytes the header asks for (or the minimum).
        expected: usize,
    },
    /// Does not start with `ANDT`.
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A version this runtime does not read.
    Version {
        /// The version byte.
        found: u8,
    },
    /// An unknown encoding, a non-zero reserved field, or `k` inconsistent with `n`.
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
    /// The CRC-32 does not match the bytes.
    Crc {
        /// CRC in the delta.
        stored: u32,
        /// CRC of its bytes.
        computed: u32,
    },
    /// Sparse indices not strictly increasing or not below `n`.
    BadIndex {
        /// Entry number.
        entry: usize,
        /// The index stored there.
        index: usize,
    },
    /// A NaN or infinite value (in the delta, or in the parameters it is written from).
    NonFinite {
        /// The coordinate holding it.
        coordinate: usize,
    },
    /// A vector's length is not the number of coordinates or parameters the model has.
    Coordinates {
        /// Values the model needs.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// `top_k` is 0.
    ZeroTopK,
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// More coordinates than a u32 counts.
    TooLarge,
    /// A runtime error from the learner the delta is made with or applied to.
    Runtime(crate::Error),
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DeltaError::*;
        match *self {
            Length { len, expected } => {
                write!(f, "delta is {len} bytes, expected {expected}")
            }
            BadMagic { found } => write!(f, "not a delta: magic {found:02x?}, expected \"ANDT\""),
            Version { found } => write!(
                f,
                "delta format version {found} is not supported (this runtime reads version {VERSION})"
            ),
            Malformed { what } => write!(f, "delta malformed: {what}"),
            Crc { stored, computed } => write!(
                f,
                "delta corrupted: CRC-32 stored {stored:#010x}, computed {computed:#010x}"
            ),
            BadIndex { entry, index } => write!(
                f,
                "delta entry {entry}: index {index} is out of range or not above the previous one"
            ),
            NonFinite { coordinate } => {
                write!(f, "delta coordinate {coordinate}: NaN or infinity")
            }
            Coordinates { expected, found } => {
                write!(f, "{found} values given, the model's adapting layers have {expected}")
            }
            ZeroTopK => write!(f, "top-k of a delta must keep at least one entry"),
            BufferTooSmall { needed, available } => write!(
                f,
                "output buffer holds {available} bytes, the delta needs {needed}"
            ),
            TooLarge => write!(f, "too many coordinates for a delta (at most 2^32 - 1)"),
            Runtime(e) => fmt::Display::fmt(&e, f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DeltaError {}

impl From<crate::Error> for DeltaError {
    fn from(e: crate::Error) -> Self {
        DeltaError::Runtime(e)
    }
}

/// Result of this module's functions.
pub type Result<T> = core::result::Result<T, DeltaError>;

/// The 64-bit fingerprint of a blob's bytes (CRC-64/XZ), which names the round's model in a
/// delta's header. It tells an update for another model or round from the right one; it is not
/// a signature (the round blob's ed25519 envelope is).
pub fn fingerprint(blob_bytes: &[u8]) -> u64 {
    FINGERPRINT.checksum(blob_bytes)
}

/// The adapting layers of `plan` over `blob`.
fn adapting<'p>(blob: &'p Blob<'_>, plan: &Plan) -> impl Iterator<Item = Node> + 'p {
    plan.nodes(blob).filter(|n| n.adapts)
}

/// Coordinates of a delta: the parameters of the layers `plan` adapts.
pub fn coordinates(blob: &Blob<'_>, plan: &Plan) -> usize {
    adapting(blob, plan)
        .map(|n| n.layer.param_len(n.input))
        .sum()
}

/// Bytes [`write`] produces for `n` coordinates, dense (`top_k` `None`) or keeping the
/// `top_k` largest (the dense size when that is not larger).
pub fn encoded_len(n: usize, top_k: Option<usize>) -> usize {
    let dense = OVERHEAD + 2 * n;
    match top_k {
        Some(k) if k < n => {
            let index = if n <= 1 << 16 { 2 } else { 4 };
            dense.min(OVERHEAD + (index + 2) * k)
        }
        _ => dense,
    }
}

/// Every coordinate's `adapted − initial` as binary16 bits, in coordinate order: `params` are
/// the learner's parameters, the initial values the blob's.
fn for_each_delta(
    blob: &Blob<'_>,
    plan: &Plan,
    params: &[f32],
    mut f: impl FnMut(usize, u16),
) -> Result<()> {
    if params.len() != plan.params_len {
        return Err(DeltaError::Coordinates {
            expected: plan.params_len,
            found: params.len(),
        });
    }
    let mut c = 0;
    let mut bits = [0u8; 2];
    for node in adapting(blob, plan) {
        let mut at = node.params;
        for t in node.tensor0..node.tensor0 + node.layer.tensor_count() {
            let stored = blob.stored(t);
            for i in 0..stored.len() {
                let d = params[at + i] - stored.get(i);
                if !d.is_finite() {
                    return Err(DeltaError::NonFinite { coordinate: c });
                }
                DType::F16.put(d, &mut bits);
                f(c, u16::from_le_bytes(bits));
                c += 1;
            }
            at += stored.len();
        }
    }
    Ok(())
}

/// Encode the delta of `params` (a learner's, [`crate::Learner::params`]) from `blob`'s
/// parameters over the layers `plan` adapts, into `out`; returns the bytes written
/// ([`encoded_len`] of them). `top_k` keeps the `k` coordinates of largest magnitude (ties to
/// the lower index); `None` keeps all. Heap-free: a top-k selection makes 17 passes over the
/// parameters instead of sorting.
pub fn write<'o>(
    blob: &Blob<'_>,
    plan: &Plan,
    params: &[f32],
    header: Header,
    top_k: Option<usize>,
    out: &'o mut [u8],
) -> Result<&'o [u8]> {
    if top_k == Some(0) {
        return Err(DeltaError::ZeroTopK);
    }
    let n = coordinates(blob, plan);
    let n32 = u32::try_from(n).map_err(|_| DeltaError::TooLarge)?;
    let len = encoded_len(n, top_k);
    if out.len() < len {
        return Err(DeltaError::BufferTooSmall {
            needed: len,
            available: out.len(),
        });
    }
    let out = &mut out[..len];
    let sparse = len < OVERHEAD + 2 * n;
    let (encoding, k) = match top_k {
        Some(k) if sparse => (if n <= 1 << 16 { SPARSE16 } else { SPARSE32 }, k),
        _ => (DENSE, n),
    };
    out[0..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[5] = encoding;
    out[6..8].fill(0);
    out[8..12].copy_from_slice(&header.round.to_le_bytes());
    out[12..20].copy_from_slice(&header.fingerprint.to_le_bytes());
    out[20..24].copy_from_slice(&n32.to_le_bytes());
    // k <= n < 2^32 here.
    out[24..28].copy_from_slice(&(k as u32).to_le_bytes());
    let body = &mut out[HEADER_LEN..len - 4];
    if encoding == DENSE {
        for_each_delta(blob, plan, params, |c, h| {
            body[2 * c..2 * c + 2].copy_from_slice(&h.to_le_bytes())
        })?;
    } else {
        // The magnitude of a binary16 (its bits without the sign) orders like its absolute
        // value: find the largest magnitude `t` with at least k coordinates at or above it.
        let count_at_least = |t: u16| -> Result<usize> {
            let mut c = 0;
            for_each_delta(blob, plan, params, |_, h| c += usize::from(h & 0x7fff >= t))?;
            Ok(c)
        };
        let (mut lo, mut hi) = (0u16, 0x7c00u16); // count(lo) >= k; above every finite value
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if count_at_least(mid)? >= k {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let above = count_at_least(lo + 1)?;
        let mut ties = k - above; // coordinates at exactly `lo` to keep, lowest indices first
        let index_len = if encoding == SPARSE16 { 2 } else { 4 };
        let (indices, values) = body.split_at_mut(index_len * k);
        let mut e = 0;
        for_each_delta(blob, plan, params, |c, h| {
            let m = h & 0x7fff;
            let keep = m > lo || (m == lo && ties > 0);
            if !keep || e == k {
                return;
            }
            if m == lo {
                ties -= 1;
            }
            if index_len == 2 {
                // c < n <= 65536 here.
                indices[2 * e..2 * e + 2].copy_from_slice(&(c as u16).to_le_bytes());
            } else {
                indices[4 * e..4 * e + 4].copy_from_slice(&(c as u32).to_le_bytes());
            }
            values[2 * e..2 * e + 2].copy_from_slice(&h.to_le_bytes());
            e += 1;
        })?;
    }
    let crc = crc32(&out[..len - 4]);
    out[len - 4..].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A delta read back and checked: header, and its entries as stored.
#[derive(Clone, Copy, Debug)]
pub struct Delta<'a> {
    /// Round and model fingerprint.
    pub header: Header,
    /// Coordinates of the model's adapting layers.
    pub coordinates: usize,
    entries: usize,
    index_len: usize,
    indices: &'a [u8],
    values: &'a [u8],
}

impl<'a> Delta<'a> {
    /// Read a delta, checking magic, version, encoding, lengths, CRC, that sparse indices
    /// increase strictly below the coordinate count, and that every value is finite.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < OVERHEAD {
            return Err(DeltaError::Length {
                len: bytes.len(),
                expected: OVERHEAD,
            });
        }
        let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if found != MAGIC {
            return Err(DeltaError::BadMagic { found });
        }
        if bytes[4] != VERSION {
            return Err(DeltaError::Version { found: bytes[4] });
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let (encoding, reserved) = (bytes[5], [bytes[6], bytes[7]]);
        if reserved != [0, 0] {
            return Err(DeltaError::Malformed {
                what: "reserved bytes are not zero",
            });
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[12..20]);
        let header = Header {
            round: u32_at(8),
            fingerprint: u64::from_le_bytes(fp),
        };
        let n = u32_at(20) as usize;
        let k = u32_at(24) as usize;
        let index_len: usize = match encoding {
            DENSE if k == n => 0,
            DENSE => {
                return Err(DeltaError::Malformed {
                    what: "a dense delta stores every coordinate",
                })
            }
            SPARSE16 if n <= 1 << 16 => 2,
            SPARSE32 if n > 1 << 16 => 4,
            SPARSE16 | SPARSE32 => {
                return Err(DeltaError::Malformed {
                    what: "index width does not match the coordinate count",
                })
            }
            _ => {
                return Err(DeltaError::Malformed {
                    what: "unknown encoding",
                })
            }
        };
        if index_len > 0 && k > n {
            return Err(DeltaError::Malformed {
                what: "more entries than coordinates",
            });
        }
        // k < 2^32, so (index_len + 2) * k fits a u64 and, checked, a usize.
        let expected = (index_len + 2usize)
            .checked_mul(k)
            .and_then(|b| b.checked_add(OVERHEAD))
            .ok_or(DeltaError::TooLarge)?;
        if bytes.len() != expected {
            return Err(DeltaError::Length {
                len: bytes.len(),
                expected,
            });
        }
        let end = bytes.len() - 4;
        let stored = u32_at(end);
        let computed = crc32(&bytes[..end]);
        if stored != computed {
            return Err(DeltaError::Crc { stored, computed });
        }
        let (indices, values) = bytes[HEADER_LEN..end].split_at(index_len * k);
        let d = Delta {
            header,
            coordinates: n,
            entries: k,
            index_len,
            indices,
            values,
        };
        let mut previous = None;
        for e in 0..k {
            let (c, bits) = d.raw(e);
            if index_len > 0 {
                if c >= n || previous.is_some_and(|p| c <= p) {
                    return Err(DeltaError::BadIndex { entry: e, index: c });
                }
                previous = Some(c);
            }
            if bits & 0x7c00 == 0x7c00 {
                return Err(DeltaError::NonFinite { coordinate: c });
            }
        }
        Ok(d)
    }

    /// Entries stored (`coordinates` when dense).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Whether only some coordinates are stored (top-k).
    pub fn is_sparse(&self) -> bool {
        self.index_len > 0
    }

    /// Entry `e`'s coordinate and binary16 bits (`e < entries`).
    fn raw(&self, e: usize) -> (usize, u16) {
        let c = match self.index_len {
            0 => e,
            2 => u16::from_le_bytes([self.indices[2 * e], self.indices[2 * e + 1]]) as usize,
            _ => {
                let i = &self.indices[4 * e..4 * e + 4];
                u32::from_le_bytes([i[0], i[1], i[2], i[3]]) as usize
            }
        };
        (
            c,
            u16::from_le_bytes([self.values[2 * e], self.values[2 * e + 1]]),
        )
    }

    /// The stored entries: `(coordinate, value)` in increasing coordinate order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        (0..self.entries).map(|e| {
            let (c, h) = self.raw(e);
            (c, f16_to_f32(h))
        })
    }

    /// Write the delta into `out` (`coordinates` long), zeros where a sparse delta stores none.
    pub fn to_dense(&self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.coordinates {
            return Err(DeltaError::Coordinates {
                expected: self.coordinates,
                found: out.len(),
            });
        }
        out.fill(0.0);
        for (c, v) in self.iter() {
            out[c] = v;
        }
        Ok(())
    }
}

/// Add `scale × delta` (`delta` dense, in coordinate order, [`coordinates`] long) to the
/// adapting layers' entries of `params` (a learner's parameter vector, `plan.params_len`
/// long): the server's step `φ ← φ + ε·Δ`. Refuses a non-finite result, leaving `params`
/// unchanged.
pub fn apply(
    blob: &Blob<'_>,
    plan: &Plan,
    params: &mut [f32],
    delta: &[f32],
    scale: f32,
) -> Result<()> {
    let n = coordinates(blob, plan);
    if delta.len() != n {
        return Err(DeltaError::Coordinates {
            expected: n,
            found: delta.len(),
        });
    }
    if params.len() != plan.params_len {
        return Err(DeltaError::Coordinates {
            expected: plan.params_len,
            found: params.len(),
        });
    }
    // Check every result before writing any.
    for pass in 0..2 {
        let mut c = 0;
        for node in adapting(blob, plan) {
            let len = node.layer.param_len(node.input);
            for p in &mut params[node.params..node.params + len] {
                let v = *p + scale * delta[c];
                if pass == 0 && !v.is_finite() {
                    return Err(DeltaError::NonFinite { coordinate: c });
                }
                if pass == 1 {
                    *p = v;
                }
                c += 1;
            }
        }
    }
    Ok(())
}
