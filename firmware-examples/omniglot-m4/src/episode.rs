//! The embedded Omniglot episode (`episode.bin`, written by the trainer's `omniglot_episode`
//! example): an N-way K-shot support set and Q query images per class of held-out characters,
//! preprocessed by the trainer to 28×28 and bit-packed, with the host's head-only predictions.
//! Parsed in place (flash); images are unpacked one at a time into the network input.
//!
//! Format (version 1, integers little-endian):
//!
//! ```text
//! 0   4   magic "AOEP"
//! 4   1   version (1)
//! 5   1   ways N
//! 6   1   shots K (support images per class)
//! 7   1   queries Q (query images per class)
//! 8   1   side (28)
//! 9   3   zero
//! 12  4   CRC-32 trailer of the model blob the host predictions were made with
//! 16  N·K support labels, then N·Q query labels, then N·Q host predictions (u8 each)
//! ..  N·K + N·Q images of side² bits each (row-major, most significant bit first,
//!     1 = white paper = input 1.0, 0 = ink = input 0.0), support first
//! ```

/// Side of an image, in pixels.
pub const SIDE: usize = 28;
/// Values of one network input (1 × 28 × 28).
pub const PIXELS: usize = SIDE * SIDE;
/// Bytes of one packed image.
pub const PACKED: usize = PIXELS / 8;
const HEADER: usize = 16;

/// Why the episode bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpisodeError {
    /// Shorter than its header says.
    Truncated {
        /// Bytes there are.
        len: usize,
        /// Bytes the header asks for.
        needed: usize,
    },
    /// Not an episode file, or another version.
    BadHeader,
    /// Images of another size than 28×28.
    BadSide {
        /// The side found.
        side: u8,
    },
    /// A label or host prediction is not a class of the episode.
    BadLabel {
        /// Byte offset of the label.
        offset: usize,
    },
}

impl core::fmt::Display for EpisodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EpisodeError::Truncated { len, needed } => {
                write!(f, "episode: {len} bytes, its header needs {needed}")
            }
            EpisodeError::BadHeader => {
                write!(
                    f,
                    "episode: not an anole Omniglot episode (magic \"AOEP\", version 1)"
                )
            }
            EpisodeError::BadSide { side } => {
                write!(
                    f,
                    "episode: {side}×{side} images, the model takes {SIDE}×{SIDE}"
                )
            }
            EpisodeError::BadLabel { offset } => {
                write!(f, "episode: byte {offset} is not a class of the episode")
            }
        }
    }
}

/// An episode, borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Episode<'a> {
    /// Classes N.
    pub ways: usize,
    /// Support images per class K.
    pub shots: usize,
    /// Query images per class.
    pub queries: usize,
    /// CRC-32 trailer of the blob the host predictions belong to.
    pub model_crc: u32,
    /// Label of each support image.
    pub support_labels: &'a [u8],
    /// Label of each query image.
    pub query_labels: &'a [u8],
    /// The host's head-only prediction for each query image.
    pub host_predictions: &'a [u8],
    images: &'a [u8],
}

impl<'a> Episode<'a> {
    /// Parse and check `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Episode<'a>, EpisodeError> {
        if bytes.len() < HEADER {
            return Err(EpisodeError::Truncated {
                len: bytes.len(),
                needed: HEADER,
            });
        }
        if &bytes[..4] != b"AOEP" || bytes[4] != 1 || bytes[9..12] != [0, 0, 0] {
            return Err(EpisodeError::BadHeader);
        }
        if usize::from(bytes[8]) != SIDE {
            return Err(EpisodeError::BadSide { side: bytes[8] });
        }
        let (ways, shots, queries) = (
            usize::from(bytes[5]),
            usize::from(bytes[6]),
            usize::from(bytes[7]),
        );
        let (s, q) = (ways * shots, ways * queries);
        let needed = HEADER + s + 2 * q + (s + q) * PACKED;
        if bytes.len() != needed || ways < 2 || shots == 0 || queries == 0 {
            return Err(EpisodeError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        let model_crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let labels = &bytes[HEADER..HEADER + s + 2 * q];
        if let Some(i) = labels.iter().position(|&l| usize::from(l) >= ways) {
            return Err(EpisodeError::BadLabel { offset: HEADER + i });
        }
        Ok(Episode {
            ways,
            shots,
            queries,
            model_crc,
            support_labels: &labels[..s],
            query_labels: &labels[s..s + q],
            host_predictions: &labels[s + q..],
            images: &bytes[HEADER + s + 2 * q..],
        })
    }

    /// Support images (N·K).
    pub fn support_len(&self) -> usize {
        self.support_labels.len()
    }

    /// Query images (N·Q).
    pub fn query_len(&self) -> usize {
        self.query_labels.len()
    }

    /// Write support image `i` as the network input (`u8 / 255` of the trainer: 0.0 or 1.0).
    pub fn support_input(&self, i: usize, out: &mut [f32; PIXELS]) {
        self.unpack(i, out);
    }

    /// Write query image `i` as the network input.
    pub fn query_input(&self, i: usize, out: &mut [f32; PIXELS]) {
        self.unpack(self.support_len() + i, out);
    }

    fn unpack(&self, image: usize, out: &mut [f32; PIXELS]) {
        let packed = &self.images[image * PACKED..(image + 1) * PACKED];
        for (i, o) in out.iter_mut().enumerate() {
            *o = if packed[i / 8] & (0x80 >> (i % 8)) != 0 {
                1.0
            } else {
                0.0
            };
        }
    }
}
