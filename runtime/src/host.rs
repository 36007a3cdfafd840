//! Host conveniences (feature `std`): a blob that owns its bytes and is shared by reference
//! count ([`SharedBlob`]), and a learner that owns its arena ([`OwnedLearner`]).
//!
//! An [`OwnedLearner`] is the same [`Engine`] as a device's [`crate::Learner`], with every one
//! of its methods; it allocates its own arena for the batch, trainable layers and [`Mode`] it
//! is made with, and reads its blob through a [`SharedBlob`], so any number of learners (a
//! simulated fleet of devices, one per worker thread, ...) share one copy of the blob's bytes
//! and of its parsed form. It is `'static + Send`: it can be moved into threads and kept in
//! long-lived structures. Its state (parameters, optimizer state, steps taken) changes only
//! through the methods that say so (`adapt`, `step`, `set_params`, `reset`, ...); cloning it
//! copies the state and shares the blob.
//!
//! ```
//! use anole::{OwnedLearner, SharedBlob, SliceSamples};
//! # fn main() -> Result<(), anole::Error> {
//! let blob = SharedBlob::parse(&include_bytes!("../../models/sine/init.postcard")[..])?;
//! let mut fleet = (0..3)
//!     .map(|_| OwnedLearner::new(&blob))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let (x, y) = ([0.5f32, 1.0], [0.4f32, 0.8]);
//! let support = SliceSamples::new(&x, &y, 1, 1)?;
//! fleet[0].adapt(&support, blob.blob().settings().steps)?;
//! let mut out = [0.0f32];
//! fleet[0].predict(&[0.7], &mut out)?;
//! assert_ne!(fleet[0].params(), fleet[1].params()); // only the first one adapted
//! # Ok(()) }
//! ```

use crate::blob::Blob;
use crate::error::{Error, Result};
use crate::learner::{sealed, Arena, BlobRef, Engine, Options};
use crate::plan::Mode;
use std::boxed::Box;
use std::sync::Arc;
use std::vec::Vec;

self_cell::self_cell!(
    /// A blob's bytes and their parsed form, borrowing them.
    struct Parsed {
        owner: Box<[u8]>,
        #[covariant]
        dependent: Blob,
    }
);

/// A parsed blob that owns its bytes. Cloning it is cheap (a reference count): every clone,
/// and every [`OwnedLearner`] made from it, reads the same bytes and the same parsed form.
#[derive(Clone)]
pub struct SharedBlob(Arc<Parsed>);

impl SharedBlob {
    /// Take `bytes` and parse them as [`Blob::parse`] does (same checks, same errors).
    pub fn parse(bytes: impl Into<Box<[u8]>>) -> Result<SharedBlob> {
        Parsed::try_new(bytes.into(), |b| Blob::parse(b)).map(|p| SharedBlob(Arc::new(p)))
    }

    /// The parsed blob.
    pub fn blob(&self) -> &Blob<'_> {
        self.0.borrow_dependent()
    }

    /// The blob's bytes, as given to [`SharedBlob::parse`].
    pub fn bytes(&self) -> &[u8] {
        self.0.borrow_owner()
    }
}

impl core::fmt::Debug for SharedBlob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.blob();
        f.debug_struct("SharedBlob")
            .field("bytes", &self.bytes().len())
            .field("layers", &b.layers)
            .field("provenance", b.provenance())
            .finish()
    }
}

impl sealed::Sealed for SharedBlob {}
impl BlobRef for SharedBlob {
    fn get(&self) -> &Blob<'_> {
        self.blob()
    }
}
impl sealed::Sealed for Vec<f32> {}
impl Arena for Vec<f32> {}

/// A learner that owns its arena and shares its blob: see the [module](self) and [`Engine`]
/// for its methods.
pub type OwnedLearner = Engine<SharedBlob, Vec<f32>>;

impl OwnedLearner {
    /// Load `blob` with its recommended settings, in [`Mode::Buffered`].
    pub fn new(blob: &SharedBlob) -> Result<Self> {
        Self::with_options(blob, Options::from_blob(blob.blob()))
    }

    /// Load `blob` with explicit options (batch, trainable layers, learning rate), in
    /// [`Mode::Buffered`].
    pub fn with_options(blob: &SharedBlob, opts: Options) -> Result<Self> {
        Self::with_mode(blob, opts, Mode::Buffered)
    }

    /// Load `blob` with explicit options and arena layout ([`Mode::Device`] runs exactly what
    /// a microcontroller runs). The arena is allocated here, as long as the layout needs; an
    /// arena that cannot be allocated is [`Error::TooLarge`].
    pub fn with_mode(blob: &SharedBlob, opts: Options, mode: Mode) -> Result<Self> {
        let plan = Self::plan_for(blob.blob(), opts, mode)?;
        let len = plan.arena_len();
        let mut arena = Vec::new();
        arena.try_reserve_exact(len).map_err(|_| Error::TooLarge {
            what: "the arena does not fit in this host's memory",
        })?;
        arena.resize(len, 0.0);
        Ok(Engine::assemble(blob.clone(), plan, arena, opts))
    }

    /// The blob this learner was loaded from.
    pub fn blob(&self) -> &Blob<'_> {
        self.shared_blob().blob()
    }

    /// The shared blob this learner reads (clone it to make more learners of the same blob).
    pub fn shared_blob(&self) -> &SharedBlob {
        self.source()
    }
}
