//! Power-fail-safe persistence of adapted parameters in NOR flash (feature `persist`).
//!
//! A [`Store`] keeps the learner's adapted parameters — the blob [`Learner::export`]
//! writes — in a flash range, through the `embedded-storage` NOR-flash traits and the
//! [`sequential_storage`] key-value map (append-only items each with a CRC, pages used in a
//! cycle for wear levelling, interrupted operations repaired on the next access). No heap:
//! the caller lends one byte buffer of [`Store::buffer_len`] bytes.
//!
//! ```no_run
//! use anole::persist::{Loaded, Store};
//! use anole::{Blob, Learner, SliceSamples};
//! # fn device<F: embedded_storage::nor_flash::NorFlash>(flash: F) -> Result<(), String> {
//! static INIT: &[u8] = &[]; // include_bytes!("init.postcard"): the meta-initialization
//! let blob = Blob::parse(INIT).map_err(|e| e.to_string())?;
//! let mut arena = [0f32; 20_000];
//! let mut learner = Learner::new(&blob, &mut arena).map_err(|e| e.to_string())?;
//! // Store::<F>::buffer_len(learner.export_len()) bytes, word-aligned if the driver wants it.
//! let mut buf = [0u8; 24 * 1024];
//! let mut store = Store::new(flash, 0x0008_0000..0x000A_0000).map_err(|e| e.to_string())?;
//! match store.load_into(&mut learner, &mut buf).map_err(|e| e.to_string())? {
//!     Loaded::Adapted { generation, .. } => { /* running on the parameters of save `generation` */ }
//!     Loaded::Initial { refused } => { /* at the meta-initialization; `refused` says why */ }
//! }
//! let (x, y) = ([0.5f32, 1.0], [0.9f32, 0.2]);
//! learner
//!     .adapt(&SliceSamples::new(&x, &y, 1, 1).map_err(|e| e.to_string())?, 10)
//!     .map_err(|e| e.to_string())?;
//! store.save(&learner, &mut buf).map_err(|e| e.to_string())?; // power may fail at any moment
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//! - A power cut at any moment of [`Store::save`] leaves either the previous or the new
//!   parameters loadable, never a mix. The range is split into two halves, each its own
//!   map holding one record; a save writes only into the half that does *not* hold the
//!   newest valid record, and commits by writing that half's head record last. Whatever an
//!   interrupted write or erase does to the half being written (torn words, a half-erased
//!   page, a map the library cannot repair), the other half is not touched, and a record
//!   is only loaded after every check below passes. A save that meets a damaged half
//!   erases that half and writes it again.
//! - [`Store::load_into`] loads the newest valid record, or leaves the learner at the
//!   meta-initialization (which lives elsewhere in flash, e.g. `include_bytes!`, and is
//!   never written by the store) and says why the newest record was refused: another
//!   format version, another model (a record names the CRC-32 of the meta-initialization
//!   it was adapted from), a CRC mismatch, or a blob that does not parse or fit the learner.
//!
//! # Layout of one half (a `sequential-storage` map with `u16` keys)
//! Key `0` holds the head record (32 bytes, little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `ANPR` |
//! | 4 | 2 | record format version, [`RECORD_VERSION`] (1) |
//! | 6 | 1 | state: 1 = holds a blob; `0xFF` = cleared by [`Store::clear`] |
//! | 7 | 1 | reserved, 0 |
//! | 8 | 4 | generation: 1 for the first save, then one more than the newest head |
//! | 12 | 4 | model: CRC-32 of the meta-initialization's payload (its blob's CRC trailer) |
//! | 16 | 4 | blob length in bytes |
//! | 20 | 4 | CRC-32 of the blob without its last 4 bytes (= the blob's own CRC trailer) |
//! | 24 | 4 | chunk length: blob bytes per chunk item (the last one may be shorter) |
//! | 28 | 4 | CRC-32 of bytes 0..28 |
//!
//! Key `i + 1` holds chunk `i`: bytes `i × chunk .. (i + 1) × chunk` of the blob (an ordinary
//! anole blob, with its own CRC-32 and validation).
//!
//! # Flash needed
//! A chunk fills one flash page; [`Store::pages_needed`] gives the pages a blob needs (two
//! halves of one copy each, the head records, and the pages each map keeps free for its
//! garbage collection). A blocking flash driver is wrapped in a small adapter and the map's
//! futures are driven to completion with [`embassy_futures::block_on`] (they never wait:
//! every flash call returns at once).

use crate::blob::{crc32, Blob, Wire};
use crate::error::Error;
use crate::learner::Learner;
use core::fmt;
use core::ops::Range;
use embedded_storage::nor_flash::{NorFlash, NorFlashError, ReadNorFlash};
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapConfigError, MapStorage};

/// The four bytes the head record starts with.
pub const RECORD_MAGIC: [u8; 4] = *b"ANPR";
/// The only record format version this runtime reads and writes.
pub const RECORD_VERSION: u16 = 1;
/// Bytes of the head record.
pub const HEAD_LEN: usize = 32;
/// Map key of the head record (chunk `i` has key `i + 1`).
pub const HEAD_KEY: u16 = 0;
/// Most chunks one blob may span.
pub const MAX_CHUNKS: usize = u16::MAX as usize;

const HOLDS_BLOB: u8 = 1;
const CLEARED: u8 = 0xFF;

static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What [`Store::load_into`] put into the learner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loaded {
    /// The adapted parameters of save number `generation` (a blob of `len` bytes).
    Adapted {
        /// Save counter of the record loaded.
        generation: u32,
        /// Bytes of the stored blob.
        len: usize,
    },
    /// The learner was reset to the meta-initialization: nothing was saved, the store was
    /// cleared, or no record passed the checks (`refused` says why the newest one failed).
    Initial {
        /// Why the newest record in flash was not loaded; `None` if there was none.
        refused: Option<Refused>,
    },
}

/// Why a record found in flash was not loaded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refused {
    /// The head record does not start with `ANPR`, fails its CRC or holds an unknown state.
    CorruptHead,
    /// The record was written in a format version this runtime does not read.
    Version {
        /// Version found.
        found: u16,
        /// Version this runtime reads.
        supported: u16,
    },
    /// The record holds parameters adapted from another meta-initialization.
    OtherModel {
        /// Model CRC stored in the record.
        stored: u32,
        /// CRC of the learner's meta-initialization.
        expected: u32,
    },
    /// The record's blob length differs from what the learner exports.
    Length {
        /// Length stored in the head record.
        stored: usize,
        /// Length of the learner's export.
        expected: usize,
    },
    /// The assembled blob does not match the CRC in the head record (a chunk is missing,
    /// cut short or altered, or belongs to another save).
    Crc {
        /// CRC stored in the head record.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// The stored blob does not parse, or does not fit the learner's architecture.
    Blob(Error),
    /// The map holding the record reports a corruption it cannot repair.
    Unreadable,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refused::CorruptHead => f.write_str("stored record header is corrupted (bad magic, state or CRC)"),
            Refused::Version { found, supported } => write!(
                f,
                "stored record format version {found} is not supported (this runtime reads version {supported})"
            ),
            Refused::OtherModel { stored, expected } => write!(
                f,
                "stored record belongs to another model (initialization CRC {stored:#010x}, this model's {expected:#010x})"
            ),
            Refused::Length { stored, expected } => write!(
                f,
                "stored record holds a {stored}-byte blob, this model exports {expected} bytes"
            ),
            Refused::Crc { stored, computed } => write!(
                f,
                "stored record incomplete or corrupted: CRC-32 stored {stored:#010x}, computed {computed:#010x}"
            ),
            Refused::Blob(e) => write!(f, "stored blob refused: {e}"),
            Refused::Unreadable => f.write_str("stored record unreadable: the flash map is corrupted"),
        }
    }
}

/// What [`Store::save`] wrote.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Saved {
    /// Save counter of the new record.
    pub generation: u32,
    /// Bytes of the blob written.
    pub len: usize,
    /// Which half of the range holds it (0 or 1).
    pub half: usize,
    /// Whether the half had to be erased and written again after an error.
    pub rewrote: bool,
}

/// Errors of the store. `E` is the flash driver's error type.
#[derive(Debug)]
pub enum PersistError<E> {
    /// The flash range is unusable (not page-aligned, fewer than 4 pages, pages too small).
    Config(MapConfigError),
    /// The flash driver failed, or the map found a corruption it could not repair, even
    /// after the half being written was erased and written again.
    Flash(sequential_storage::Error<E>),
    /// The caller's buffer holds fewer bytes than the operation needs.
    BufferTooSmall {
        /// Bytes needed ([`Store::buffer_len`]).
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// The flash range has fewer pages than a blob of this size needs.
    RangeTooSmall {
        /// Pages needed ([`Store::pages_needed`]).
        needed: usize,
        /// Pages in the range.
        pages: usize,
    },
    /// The blob spans more than [`MAX_CHUNKS`] chunks, or is 4 GiB or more.
    TooLarge {
        /// Bytes of the blob.
        len: usize,
    },
    /// Exporting the learner's parameters failed.
    Export(Error),
    /// The record read back after writing it does not pass the checks, even after the half
    /// was erased and written again (the flash does not keep what is written).
    Verify(Refused),
}

impl<E: NorFlashError> fmt::Display for PersistError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::Config(e) => f.write_str(match e {
                MapConfigError::StartRangeNotAtPageBoundary => "flash range does not start on a page boundary",
                MapConfigError::EndRangeNotAtPageBoundary => "flash range does not end on a page boundary",
                MapConfigError::RangeTooSmall => "flash range holds fewer than 4 pages (2 per half)",
                MapConfigError::PagesTooSmall => "flash pages are too small for the store (a chunk needs 64 bytes)",
                MapConfigError::WordSizeTooLarge => "flash word size exceeds 32 bytes",
            }),
            PersistError::Flash(e) => match e {
                sequential_storage::Error::Storage { value, .. } => {
                    write!(f, "flash driver error: {}", value.kind())
                }
                sequential_storage::Error::FullStorage => {
                    f.write_str("flash store is full (the range is too small for this blob)")
                }
                sequential_storage::Error::Corrupted { .. } => {
                    f.write_str("flash store corrupted beyond repair, even after erasing the half being written")
                }
                other => write!(f, "flash store error: {other:?}"),
            },
            PersistError::BufferTooSmall { needed, available } => {
                write!(f, "store buffer holds {available} bytes, {needed} needed")
            }
            PersistError::RangeTooSmall { needed, pages } => write!(
                f,
                "flash range has {pages} pages, a blob of this size needs {needed}"
            ),
            PersistError::TooLarge { len } => write!(f, "blob of {len} bytes is too large for the store"),
            PersistError::Export(e) => write!(f, "cannot export the parameters: {e}"),
            PersistError::Verify(r) => write!(f, "record read back after writing is refused: {r}"),
        }
    }
}

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
impl<E: NorFlashError> std::error::Error for PersistError<E> {}

impl<E> From<sequential_storage::Error<E>> for PersistError<E> {
    fn from(e: sequential_storage::Error<E>) -> Self {
        PersistError::Flash(e)
    }
}

/// Result of the store's operations.
pub type PersistResult<T, E> = core::result::Result<T, PersistError<E>>;

/// Adapts a blocking `embedded-storage` NOR flash to the async traits the map is written
/// against; every call completes at once.
struct Blocking<F>(F);

impl<F: embedded_storage::nor_flash::ErrorType> embedded_storage::nor_flash::ErrorType
    for Blocking<F>
{
    type Error = F::Error;
}

impl<F: ReadNorFlash> embedded_storage_async::nor_flash::ReadNorFlash for Blocking<F> {
    const READ_SIZE: usize = F::READ_SIZE;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), F::Error> {
        self.0.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::NorFlash for Blocking<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), F::Error> {
        self.0.erase(from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), F::Error> {
        self.0.write(offset, bytes)
    }
}

type Map<'f, F> = MapStorage<u16, Blocking<&'f mut F>, Cache<Uncached, Uncached, Uncached, u16>>;

/// The decoded head record.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Head {
    state: u8,
    generation: u32,
    model: u32,
    len: u32,
    crc: u32,
    chunk: u32,
}

impl Head {
    fn encode(&self) -> [u8; HEAD_LEN] {
        let mut b = [0u8; HEAD_LEN];
        b[0..4].copy_from_slice(&RECORD_MAGIC);
        b[4..6].copy_from_slice(&RECORD_VERSION.to_le_bytes());
        b[6] = self.state;
        b[8..12].copy_from_slice(&self.generation.to_le_bytes());
        b[12..16].copy_from_slice(&self.model.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..24].copy_from_slice(&self.crc.to_le_bytes());
        b[24..28].copy_from_slice(&self.chunk.to_le_bytes());
        let c = crc32(&b[..28]);
        b[28..32].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Decode and check magic, version and CRC (in that order: another version may have
    /// another layout, so its CRC is not looked at).
    fn decode(b: &[u8]) -> Result<Head, Refused> {
        if b.len() < 6 || b[0..4] != RECORD_MAGIC {
            return Err(Refused::CorruptHead);
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != RECORD_VERSION {
            return Err(Refused::Version {
                found: version,
                supported: RECORD_VERSION,
            });
        }
        if b.len() != HEAD_LEN || le32(b, 28) != crc32(&b[..28]) || b[7] != 0 {
            return Err(Refused::CorruptHead);
        }
        if b[6] != HOLDS_BLOB && b[6] != CLEARED {
            return Err(Refused::CorruptHead);
        }
        Ok(Head {
            state: b[6],
            generation: le32(b, 8),
            model: le32(b, 12),
            len: le32(b, 16),
            crc: le32(b, 20),
            chunk: le32(b, 24),
        })
    }
}

/// CRC-32 of a blob without its CRC trailer: the value of the trailer of an intact blob.
/// (The CRC-32 of a whole blob, trailer included, is the same constant for every intact
/// blob, so it would not tell one record from another.)
fn content_crc(blob: &[u8]) -> u32 {
    crc32(&blob[..blob.len().saturating_sub(4)])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What one half holds, as far as its head record tells.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    /// No head record.
    Empty,
    /// A head record that decodes (it may still be refused once its blob is read).
    Head(Head),
    /// A head record that does not decode, or a map that cannot be read.
    Bad(Refused),
}

impl Slot {
    fn generation(&self) -> Option<u32> {
        match self {
            Slot::Head(h) => Some(h.generation),
            _ => None,
        }
    }
}

/// The newest valid record, `(half, head)`, or why the newest head was refused (`None`: no
/// record, or cleared).
type Newest = Result<(usize, Head), Option<Refused>>;

/// The model fingerprint: CRC-32 of the blob's payload as encoded (for a blob parsed from
/// flash, the value of its CRC trailer).
pub fn model_crc(blob: &Blob<'_>) -> u32 {
    struct CrcFlavor(crc::Digest<'static, u32>);
    impl postcard::ser_flavors::Flavor for CrcFlavor {
        type Output = u32;
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            self.0.update(&[data]);
            Ok(())
        }
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.0.update(data);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<u32> {
            Ok(self.0.finalize())
        }
    }
    let wire: &Wire<'_, _> = &blob.wire;
    // Serializing into a CRC digest cannot fail: the flavor never refuses a byte.
    postcard::serialize_with_flavor(wire, CrcFlavor(CRC32.digest())).unwrap_or(0)
}

/// Adapted parameters kept in a NOR-flash range, safe against power cuts.
pub struct Store<F: NorFlash> {
    flash: F,
    halves: [Range<u32>; 2],
    pages: usize,
}

impl<F: NorFlash> Store<F> {
    const WORD: usize = if F::READ_SIZE > F::WRITE_SIZE {
        F::READ_SIZE
    } else {
        F::WRITE_SIZE
    };

    /// Largest item data (key + value) one page holds: the page minus its two state words
    /// and one item header, at most `u16::MAX` (a whole number of words).
    const ITEM_CAPACITY: usize = {
        let cap = F::ERASE_SIZE
            .saturating_sub(2 * Self::WORD)
            .saturating_sub(MapStorage::<
            u16,
            Blocking<F>,
            Cache<Uncached, Uncached, Uncached, u16>,
        >::item_overhead_size(
        ) as usize);
        let max = u16::MAX as usize - u16::MAX as usize % Self::WORD;
        if cap > max {
            max
        } else {
            cap
        }
    };

    /// Blob bytes per chunk item (the key takes 2 bytes of the item).
    pub const CHUNK_LEN: usize = Self::ITEM_CAPACITY.saturating_sub(2);

    /// Open the store on `range` of `flash` (page-aligned, at least 4 pages; split into two
    /// halves of equal page count, an odd last page left unused). Nothing is written until
    /// [`Store::save`] or [`Store::clear`]. The range must not overlap the
    /// meta-initialization or the firmware.
    pub fn new(flash: F, range: Range<u32>) -> PersistResult<Self, F::Error> {
        let erase = F::ERASE_SIZE as u32;
        if erase == 0 || range.start % erase != 0 {
            return Err(PersistError::Config(
                MapConfigError::StartRangeNotAtPageBoundary,
            ));
        }
        if range.end % erase != 0 {
            return Err(PersistError::Config(
                MapConfigError::EndRangeNotAtPageBoundary,
            ));
        }
        if range.end < range.start {
            return Err(PersistError::Config(MapConfigError::RangeTooSmall));
        }
        if Self::CHUNK_LEN < 64 {
            return Err(PersistError::Config(MapConfigError::PagesTooSmall));
        }
        let half_pages = (range.end - range.start) / erase / 2;
        let mid = range.start + half_pages * erase;
        let halves = [range.start..mid, mid..mid + half_pages * erase];
        for h in &halves {
            MapConfig::<Blocking<&mut F>>::try_new(h.clone()).map_err(PersistError::Config)?;
        }
        Ok(Store {
            flash,
            halves,
            pages: 2 * half_pages as usize,
        })
    }

    /// Give the flash back (e.g. to reopen the store after a reset).
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// Bytes of the buffer [`Store::save`] and [`Store::load_into`] need for a blob of
    /// `blob_len` bytes ([`Learner::export_len`]): one page of scratch, then the blob. If the
    /// flash driver needs word-aligned RAM buffers, align the buffer (the scratch comes
    /// first and keeps its alignment).
    pub const fn buffer_len(blob_len: usize) -> usize {
        blob_len + Self::ITEM_CAPACITY
    }

    /// Chunks a blob of `blob_len` bytes is split into.
    pub const fn chunks(blob_len: usize) -> usize {
        if Self::CHUNK_LEN == 0 {
            return usize::MAX;
        }
        blob_len.div_ceil(Self::CHUNK_LEN)
    }

    /// Flash pages the range needs for a blob of `blob_len` bytes: per half, one page per
    /// chunk, and three more for the head record and the map's garbage collection (a new
    /// chunk is written before the page holding its previous value can be reclaimed).
    pub const fn pages_needed(blob_len: usize) -> usize {
        2 * (Self::chunks(blob_len) + 3)
    }

    /// Pages in the store's range (both halves).
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Split `buf` into the map's scratch (first, so it keeps the caller's alignment) and
    /// `len` bytes for the blob.
    fn split(len: usize, buf: &mut [u8]) -> PersistResult<(&mut [u8], &mut [u8]), F::Error> {
        let needed = Self::buffer_len(len);
        if buf.len() < needed {
            return Err(PersistError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        let (scratch, rest) = buf.split_at_mut(Self::ITEM_CAPACITY);
        Ok((scratch, &mut rest[..len]))
    }

    /// The map of `half` (its range was checked in [`Store::new`]).
    fn map(&mut self, half: usize) -> PersistResult<Map<'_, F>, F::Error> {
        let config = MapConfig::try_new(self.halves[half].clone()).map_err(PersistError::Config)?;
        Ok(MapStorage::new(
            Blocking(&mut self.flash),
            config,
            Cache::new_uncached(),
        ))
    }

    /// Read the head record of `half`.
    fn slot(&mut self, half: usize, scratch: &mut [u8]) -> Slot {
        let Ok(mut map) = self.map(half) else {
            return Slot::Bad(Refused::Unreadable);
        };
        match embassy_futures::block_on(map.fetch_item::<&[u8]>(scratch, &HEAD_KEY)) {
            Ok(None) => Slot::Empty,
            Ok(Some(bytes)) => match Head::decode(bytes) {
                Ok(h) => Slot::Head(h),
                Err(r) => Slot::Bad(r),
            },
            Err(_) => Slot::Bad(Refused::Unreadable),
        }
    }

    /// Read and check the record of `half` (head `head`) into `blob_buf`: every check but
    /// loading into a learner.
    fn read_record(
        &mut self,
        half: usize,
        head: &Head,
        model: u32,
        scratch: &mut [u8],
        blob_buf: &mut [u8],
    ) -> Result<(), Refused> {
        if head.model != model {
            return Err(Refused::OtherModel {
                stored: head.model,
                expected: model,
            });
        }
        let len = head.len as usize;
        if len != blob_buf.len() {
            return Err(Refused::Length {
                stored: len,
                expected: blob_buf.len(),
            });
        }
        let chunk = head.chunk as usize;
        if len < 4 || chunk == 0 || chunk > Self::CHUNK_LEN || len.div_ceil(chunk) > MAX_CHUNKS {
            return Err(Refused::CorruptHead);
        }
        // One pass over the half's items, oldest first: the last value of each chunk key is
        // its current one. A chunk that is missing leaves zeros, which the CRC then refuses.
        blob_buf.fill(0);
        let mut map = self.map(half).map_err(|_| Refused::Unreadable)?;
        let mut items = embassy_futures::block_on(map.fetch_all_items(scratch))
            .map_err(|_| Refused::Unreadable)?;
        loop {
            match embassy_futures::block_on(items.next::<&[u8]>(scratch)) {
                Ok(Some((key, bytes))) => {
                    let start = (key as usize).wrapping_sub(1).saturating_mul(chunk);
                    if key == HEAD_KEY || start >= len {
                        continue;
                    }
                    let dest = &mut blob_buf[start..(start + chunk).min(len)];
                    if bytes.len() == dest.len() {
                        dest.copy_from_slice(bytes);
                    }
                }
                Ok(None) => break,
                Err(_) => return Err(Refused::Unreadable),
            }
        }
        let computed = content_crc(blob_buf);
        if computed != head.crc {
            return Err(Refused::Crc {
                stored: head.crc,
                computed,
            });
        }
        Blob::parse(blob_buf).map(|_| ()).map_err(Refused::Blob)
    }

    /// Find the newest valid record: `(half, head)` with its blob left in `blob_buf`, or
    /// `Err` with why the newest head was refused (`None`: no record, or cleared).
    fn newest(
        &mut self,
        model: u32,
        scratch: &mut [u8],
        blob_buf: &mut [u8],
    ) -> (Newest, [Slot; 2]) {
        let slots = [self.slot(0, scratch), self.slot(1, scratch)];
        // Newest head first; a cleared head ends the search (it supersedes older records).
        let order = match (slots[0].generation(), slots[1].generation()) {
            (Some(a), Some(b)) if b > a => [1, 0],
            (None, Some(_)) => [1, 0],
            _ => [0, 1],
        };
        let mut first_refusal = None;
        for half in order {
            let refusal = match slots[half] {
                Slot::Empty => continue,
                Slot::Bad(r) => r,
                Slot::Head(h) if h.state == CLEARED => break,
                Slot::Head(h) => match self.read_record(half, &h, model, scratch, blob_buf) {
                    Ok(()) => return (Ok((half, h)), slots),
                    Err(r) => r,
                },
            };
            first_refusal.get_or_insert(refusal);
        }
        (Err(first_refusal), slots)
    }

    /// Save the learner's current parameters as the newest record, and read it back. If
    /// power is cut before this returns, the next [`Store::load_into`] finds either the
    /// previous record or this one, whole; once it returns `Ok`, this one. `buf` needs
    /// [`Store::buffer_len`]`(learner.export_len())` bytes.
    pub fn save(
        &mut self,
        learner: &Learner<'_, '_>,
        buf: &mut [u8],
    ) -> PersistResult<Saved, F::Error> {
        let len = learner.export_len();
        let (scratch, blob_buf) = Self::split(len, buf)?;
        if Self::chunks(len) > MAX_CHUNKS || len > u32::MAX as usize {
            return Err(PersistError::TooLarge { len });
        }
        let needed = Self::pages_needed(len);
        if self.pages < needed {
            return Err(PersistError::RangeTooSmall {
                needed,
                pages: self.pages,
            });
        }
        let model = model_crc(learner.blob());
        let (newest, slots) = self.newest(model, scratch, blob_buf);
        // Write into the half that does not hold the newest valid record.
        let half = match newest {
            Ok((h, _)) => 1 - h,
            Err(_) => match (slots[0].generation(), slots[1].generation()) {
                (Some(a), Some(b)) if b < a => 1,
                (Some(_), None) => 1,
                _ => 0,
            },
        };
        let generation = slots
            .iter()
            .filter_map(Slot::generation)
            .max()
            .map_or(1, |g| g.wrapping_add(1));
        let crc = content_crc(learner.export(blob_buf).map_err(PersistError::Export)?);
        let head = Head {
            state: HOLDS_BLOB,
            generation,
            model,
            len: len as u32,
            crc,
            chunk: Self::CHUNK_LEN as u32,
        };
        let mut rewrote = false;
        if self
            .write_and_verify(learner, half, &head, scratch, blob_buf)
            .is_err()
        {
            // The half being written is damaged (an earlier cut can leave a torn word the
            // map would program twice, or a state it cannot repair). It holds nothing we
            // need: erase it and write again.
            rewrote = true;
            self.erase_half(half)?;
            self.write_and_verify(learner, half, &head, scratch, blob_buf)?;
        }
        Ok(Saved {
            generation,
            len,
            half,
            rewrote,
        })
    }

    /// Write the learner's export as the record `head` of `half`, then read it back
    /// through every check [`Store::load_into`] makes.
    fn write_and_verify(
        &mut self,
        learner: &Learner<'_, '_>,
        half: usize,
        head: &Head,
        scratch: &mut [u8],
        blob_buf: &mut [u8],
    ) -> PersistResult<(), F::Error> {
        let blob = learner.export(blob_buf).map_err(PersistError::Export)?;
        self.write_record(half, head, blob, scratch)?;
        self.read_record(half, head, head.model, scratch, blob_buf)
            .map_err(PersistError::Verify)
    }

    fn write_record(
        &mut self,
        half: usize,
        head: &Head,
        blob: &[u8],
        scratch: &mut [u8],
    ) -> PersistResult<(), F::Error> {
        let mut map = self.map(half)?;
        for (i, chunk) in blob.chunks(Self::CHUNK_LEN).enumerate() {
            let key = i as u16 + 1;
            embassy_futures::block_on(map.store_item(scratch, &key, &chunk))?;
        }
        let bytes = head.encode();
        embassy_futures::block_on(map.store_item(scratch, &HEAD_KEY, &&bytes[..]))?;
        Ok(())
    }

    fn erase_half(&mut self, half: usize) -> PersistResult<(), F::Error> {
        let mut map = self.map(half)?;
        embassy_futures::block_on(map.erase_all())?;
        Ok(())
    }

    /// Load the newest valid record into `learner`, or reset it to the meta-initialization
    /// if there is none (see [`Refused`] for why one is not loaded). `buf` needs
    /// [`Store::buffer_len`]`(learner.export_len())` bytes. Flash errors while reading make a
    /// record count as refused ([`Refused::Unreadable`]), so a learner always comes out
    /// usable.
    pub fn load_into(
        &mut self,
        learner: &mut Learner<'_, '_>,
        buf: &mut [u8],
    ) -> PersistResult<Loaded, F::Error> {
        let (scratch, blob_buf) = Self::split(learner.export_len(), buf)?;
        let model = model_crc(learner.blob());
        match self.newest(model, scratch, blob_buf).0 {
            Ok((_, head)) => {
                // `newest` parsed this blob already; parse again to borrow it here.
                let loaded = Blob::parse(blob_buf).and_then(|blob| learner.load_params_from(&blob));
                match loaded {
                    Ok(()) => Ok(Loaded::Adapted {
                        generation: head.generation,
                        len: head.len as usize,
                    }),
                    Err(e) => {
                        learner.reset();
                        Ok(Loaded::Initial {
                            refused: Some(Refused::Blob(e)),
                        })
                    }
                }
            }
            Err(refused) => {
                learner.reset();
                Ok(Loaded::Initial { refused })
            }
        }
    }

    /// Forget the adapted parameters: the next [`Store::load_into`] gives the
    /// meta-initialization. Writes one head record, newer than any, into the half with the
    /// older head (a cut leaves the newest head as it was). `buf` needs
    /// [`Store::buffer_len`]`(0)` bytes.
    pub fn clear(&mut self, buf: &mut [u8]) -> PersistResult<(), F::Error> {
        let (scratch, _) = Self::split(0, buf)?;
        let slots = [self.slot(0, scratch), self.slot(1, scratch)];
        let (half, generation) = match (slots[0].generation(), slots[1].generation()) {
            (Some(a), Some(b)) if b > a => (0, b),
            (Some(a), _) => (1, a),
            (None, Some(b)) => (0, b),
            (None, None) => (0, 0),
        };
        let head = Head {
            state: CLEARED,
            generation: generation.wrapping_add(1),
            model: 0,
            len: 0,
            crc: 0,
            chunk: 0,
        };
        let bytes = head.encode();
        let mut map = self.map(half)?;
        if embassy_futures::block_on(map.store_item(scratch, &HEAD_KEY, &&bytes[..])).is_err() {
            self.erase_half(half)?;
            let mut map = self.map(half)?;
            embassy_futures::block_on(map.store_item(scratch, &HEAD_KEY, &&bytes[..]))?;
        }
        Ok(())
    }
}
