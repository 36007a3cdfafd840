//! Why a call failed, in full: the status it returned plus the argument, sizes or runtime
//! error behind it. A handle keeps the failure of its last failed call for
//! `anole_last_error`; a failure is a few machine words, no text is stored.

use crate::status::AnoleStatus;
use anole::persist::Refused;
use core::fmt;

/// The failure of one call: the function and what went wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Failure {
    /// The C function that failed.
    pub func: &'static str,
    /// What went wrong.
    pub what: What,
}

/// What went wrong. Every variant maps to one [`anole_status`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum What {
    /// Argument `arg` is NULL.
    Null { arg: &'static str },
    /// Argument `arg` is not aligned to `align` bytes.
    Misaligned { arg: &'static str, align: usize },
    /// The memory for a handle holds `available` bytes, `needed` are needed.
    MemoryTooSmall {
        arg: &'static str,
        needed: usize,
        available: usize,
    },
    /// Argument `arg` holds `available` elements, `needed` are needed.
    TooShort {
        arg: &'static str,
        needed: usize,
        available: usize,
    },
    /// Argument `arg` overlaps `other` and one of them is written.
    Overlap {
        arg: &'static str,
        other: &'static str,
    },
    /// Argument `arg` has a value the function does not take.
    Invalid {
        arg: &'static str,
        why: &'static str,
    },
    /// Argument `arg` is not a handle.
    NotAHandle { arg: &'static str },
    /// Argument `arg` is a released handle, or memory whose handle creation failed.
    Released { arg: &'static str },
    /// Argument `arg` is a live handle of kind `found`, `expected` was wanted.
    WrongHandle {
        arg: &'static str,
        found: &'static str,
        expected: &'static str,
    },
    /// Argument `arg` is a blob that `users` live learners use.
    BlobInUse { arg: &'static str, users: usize },
    /// Argument `arg` is a handle whose call is still running (re-entered from a callback).
    Busy { arg: &'static str },
    /// The runtime refused.
    Runtime(anole::Error),
    /// The flash's geometry does not fit the store's.
    Geometry {
        what: &'static str,
        flash: u32,
        store: u32,
    },
    /// The range does not fit the flash's capacity.
    Capacity { end: u32, capacity: u32 },
    /// The range is unusable.
    Range { why: &'static str },
    /// A flash callback failed (`op` at `offset`, returning `code`), or, with `code` 0, the
    /// store found a corruption it could not repair (or ran out of room).
    Flash(FlashFailure),
    /// The range holds `pages`, the blob needs `needed`.
    StoreRange { needed: usize, pages: usize },
    /// The store's buffer holds `available` bytes, `needed` are needed.
    StoreBuffer { needed: usize, available: usize },
    /// The record read back after writing was refused.
    Verify(Refused),
}

/// A failed flash operation, as the store met it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum FlashFailure {
    /// The callback for `op` returned `code` (non-zero) at `offset`.
    Callback {
        op: &'static str,
        offset: u32,
        len: u32,
        code: i32,
    },
    /// The store asked for an operation outside the flash or not aligned to its units (a bug
    /// the wrapper refuses rather than pass on).
    Refused {
        op: &'static str,
        offset: u32,
        len: u32,
    },
    /// The map in flash is corrupted beyond repair, or full.
    Store { what: &'static str },
}

impl What {
    /// The status this failure returns.
    pub fn status(&self) -> AnoleStatus {
        use AnoleStatus as S;
        match self {
            What::Null { .. } => S::NullPointer,
            What::Misaligned { .. } => S::Misaligned,
            What::MemoryTooSmall { .. } => S::MemoryTooSmall,
            What::TooShort { .. } | What::StoreBuffer { .. } => S::BufferTooSmall,
            What::Overlap { .. } => S::Overlap,
            What::Invalid { .. } => S::InvalidArgument,
            What::NotAHandle { .. } => S::NotAHandle,
            What::Released { .. } => S::Released,
            What::WrongHandle { .. } => S::WrongHandle,
            What::BlobInUse { .. } | What::Busy { .. } => S::InUse,
            What::Runtime(e) => runtime_status(e),
            What::Geometry { .. } | What::Capacity { .. } => S::FlashGeometry,
            What::Range { .. } => S::FlashRange,
            What::Flash(_) => S::FlashFailed,
            What::StoreRange { .. } => S::StoreRangeTooSmall,
            What::Verify(_) => S::StoreVerify,
        }
    }
}

impl From<anole::Error> for What {
    fn from(e: anole::Error) -> What {
        What::Runtime(e)
    }
}

/// The status of a runtime error: one per variant.
pub(crate) fn runtime_status(e: &anole::Error) -> AnoleStatus {
    use anole::Error as E;
    use AnoleStatus as S;
    match e {
        E::Truncated { .. } => S::Truncated,
        E::BadMagic { .. } => S::BadMagic,
        E::UnsupportedVersion { .. } => S::UnsupportedVersion,
        E::CrcMismatch { .. } => S::CrcMismatch,
        E::Malformed { .. } => S::Malformed,
        E::TrailingBytes { .. } => S::TrailingBytes,
        E::UnknownLayer { .. } => S::UnknownLayer,
        E::BadLayerArgs { .. } => S::BadLayerArgs,
        E::ShapeMismatch { .. } => S::ShapeMismatch,
        E::LayerCount { .. } => S::LayerCount,
        E::TensorCount { .. } => S::TensorCount,
        E::TensorSize { .. } => S::TensorSize,
        E::UnknownDType { .. } => S::UnknownDtype,
        E::NonFiniteWeight { .. } => S::NonFiniteWeight,
        E::BadLoss { .. } => S::BadLoss,
        E::BadOptimizer { .. } => S::BadOptimizer,
        E::BadHeadStart { .. } => S::BadHeadStart,
        E::BadSettings { .. } => S::BadSettings,
        E::ArenaTooSmall { .. } => S::ArenaTooSmall,
        E::BatchTooLarge { .. } => S::BatchTooLarge,
        E::SampleLength { .. } => S::SampleLength,
        E::NonFiniteSample { .. } => S::NonFiniteSample,
        E::BadLabel { .. } => S::BadLabel,
        E::NoSamples => S::NoSamples,
        E::NonFiniteLoss { .. } => S::NonFiniteLoss,
        E::NonFiniteParameter { .. } => S::NonFiniteParameter,
        E::BufferTooSmall { .. } => S::BufferTooSmall,
        E::ParamCount { .. } => S::ParamCount,
        E::OptimizerStateLen { .. } => S::OptimizerStateLen,
        E::BadOptimizerState { .. } => S::BadOptimizerState,
        E::NotOptimizerState => S::NotOptimizerState,
        E::BadTrainableMask { .. } => S::BadTrainableMask,
        E::UnsupportedChain { .. } => S::UnsupportedChain,
        E::TooLarge { .. } => S::TooLarge,
        E::ArchitectureMismatch => S::ArchitectureMismatch,
        E::Unsigned { .. } => S::Unsigned,
        E::EnvelopeVersion { .. } => S::EnvelopeVersion,
        E::EnvelopeLength { .. } => S::EnvelopeLength,
        E::EnvelopeMalformed { .. } => S::EnvelopeMalformed,
        E::UnknownKey { .. } => S::UnknownKey,
        E::BadSignature => S::BadSignature,
        E::BadPublicKey => S::BadPublicKey,
        E::NotAHead => S::NotAHead,
        E::MissingClass { .. } => S::MissingClass,
        E::NoHead => S::NoHead,
        E::NoBody => S::NoBody,
        E::BadGeometry { .. } => S::BadGeometry,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.func)?;
        match self.what {
            What::Null { arg } => write!(f, "`{arg}` is NULL"),
            What::Misaligned { arg, align } => {
                write!(f, "`{arg}` is not aligned to {align} bytes")
            }
            What::MemoryTooSmall {
                arg,
                needed,
                available,
            } => write!(
                f,
                "`{arg}` holds {available} bytes, the handle needs {needed}"
            ),
            What::TooShort {
                arg,
                needed,
                available,
            } => write!(f, "`{arg}` holds {available} elements, {needed} needed"),
            What::Overlap { arg, other } => write!(
                f,
                "`{arg}` overlaps {other}, and one of them is written"
            ),
            What::Invalid { arg, why } => write!(f, "`{arg}`: {why}"),
            What::NotAHandle { arg } => write!(
                f,
                "`{arg}` is not a handle (uninitialised or overwritten memory, or a copy of a handle)"
            ),
            What::Released { arg } => write!(
                f,
                "`{arg}` was released, or the call that was to create it failed"
            ),
            What::WrongHandle {
                arg,
                found,
                expected,
            } => write!(f, "`{arg}` is a {found} handle, not a {expected}"),
            What::BlobInUse { arg, users } => write!(
                f,
                "`{arg}` is used by {users} live learner(s): release them first"
            ),
            What::Busy { arg } => write!(
                f,
                "`{arg}` is in a call that has not returned (a flash callback must not call the library)"
            ),
            What::Runtime(e) => write!(f, "{e}"),
            What::Geometry { what, flash, store } => write!(
                f,
                "the flash's {what} is {flash} bytes; the store works in units of {store} bytes, which it must divide"
            ),
            What::Capacity { end, capacity } => write!(
                f,
                "the store's range ends at {end:#x}, past the flash's capacity of {capacity:#x} bytes"
            ),
            What::Range { why } => write!(f, "flash range: {why}"),
            What::Flash(FlashFailure::Callback {
                op,
                offset,
                len,
                code,
            }) => write!(
                f,
                "flash {op} callback returned {code} ({len} bytes at {offset:#x})"
            ),
            What::Flash(FlashFailure::Refused { op, offset, len }) => write!(
                f,
                "flash {op} of {len} bytes at {offset:#x} is outside the flash or not aligned to its units"
            ),
            What::Flash(FlashFailure::Store { what }) => write!(f, "flash store: {what}"),
            What::StoreRange { needed, pages } => write!(
                f,
                "flash range has {pages} pages, a blob of this size needs {needed}"
            ),
            What::StoreBuffer { needed, available } => write!(
                f,
                "store buffer holds {available} bytes, {needed} needed (anole_store_buffer_len)"
            ),
            What::Verify(r) => write!(f, "record read back after writing is refused: {r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anole::Error as E;

    /// One value of every runtime error.
    fn every_runtime_error() -> [E; 47] {
        [
            E::Truncated { len: 1 },
            E::BadMagic { found: [0; 4] },
            E::UnsupportedVersion {
                found: 2,
                supported: 1,
            },
            E::CrcMismatch {
                stored: 1,
                computed: 2,
            },
            E::Malformed { what: "x" },
            E::TrailingBytes { count: 1 },
            E::UnknownLayer { layer: 0, kind: 9 },
            E::BadLayerArgs { layer: 0, kind: 0 },
            E::ShapeMismatch { layer: 0 },
            E::LayerCount { count: 0 },
            E::TensorCount {
                expected: 1,
                found: 2,
            },
            E::TensorSize {
                tensor: 0,
                expected: 1,
                found: 2,
            },
            E::UnknownDType { tensor: 0, code: 9 },
            E::NonFiniteWeight { tensor: 0 },
            E::BadLoss { code: 9 },
            E::BadOptimizer { code: 9 },
            E::BadHeadStart { code: 9 },
            E::BadSettings { what: "x" },
            E::ArenaTooSmall {
                needed: 2,
                available: 1,
            },
            E::BatchTooLarge {
                requested: 2,
                capacity: 1,
            },
            E::SampleLength {
                sample: 0,
                expected: 1,
                found: 2,
            },
            E::NonFiniteSample { sample: 0 },
            E::BadLabel { sample: 0 },
            E::NoSamples,
            E::NonFiniteLoss { step: 1 },
            E::NonFiniteParameter { step: 1 },
            E::BufferTooSmall {
                needed: 2,
                available: 1,
            },
            E::ParamCount {
                expected: 1,
                found: 2,
            },
            E::OptimizerStateLen {
                expected: 1,
                found: 2,
            },
            E::BadOptimizerState { index: 0 },
            E::NotOptimizerState,
            E::BadTrainableMask { mask: 1 },
            E::UnsupportedChain { layer: 0 },
            E::TooLarge { what: "x" },
            E::ArchitectureMismatch,
            E::Unsigned { found: [0; 4] },
            E::EnvelopeVersion {
                found: 2,
                supported: 1,
            },
            E::EnvelopeLength {
                len: 1,
                expected: 2,
            },
            E::EnvelopeMalformed { what: "x" },
            E::UnknownKey {
                found: [0; 8],
                expected: [1; 8],
            },
            E::BadSignature,
            E::BadPublicKey,
            E::NotAHead,
            E::MissingClass { class: 0 },
            E::NoHead,
            E::NoBody,
            E::BadGeometry { what: "x" },
        ]
    }

    #[test]
    fn every_runtime_error_has_its_own_status() {
        let errors = every_runtime_error();
        let statuses: std::vec::Vec<AnoleStatus> = errors.iter().map(runtime_status).collect();
        for (i, s) in statuses.iter().enumerate() {
            assert_ne!(*s, AnoleStatus::Ok);
            assert!(
                !statuses[..i].contains(s),
                "{:?} shares its status with another error",
                errors[i]
            );
        }
    }

    #[test]
    fn details_name_the_function_and_the_runtime_reason() {
        let f = Failure {
            func: "anole_learner_predict",
            what: What::Runtime(E::ArenaTooSmall {
                needed: 20,
                available: 10,
            }),
        };
        let text = std::format!("{f}");
        assert_eq!(
            text,
            "anole_learner_predict: arena too small: needs 20 f32, got 10"
        );
        assert_eq!(f.what.status(), AnoleStatus::ArenaTooSmall);
    }
}
