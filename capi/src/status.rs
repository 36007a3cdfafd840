//! The status every call returns: `ANOLE_STATUS_OK` or what went wrong, one code per cause,
//! and its message (`anole_status_message`).

use core::ffi::CStr;

/// What a call did: `ANOLE_STATUS_OK` (0), or why it refused or failed. Every function of the
/// library returns one. Codes 1-19 are about the arguments and handles, 20-39 a blob (and 47,
/// a blob's head start), 40-46 a signed envelope, 60-79 a learner and its samples, 80-99 the
/// flash store.
/// `anole_status_message` gives a code's meaning; `anole_last_error` the details of the last
/// failed call on a handle (which argument, which sizes).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnoleStatus {
    /// Success.
    Ok = 0,
    /// A pointer argument is NULL.
    NullPointer = 1,
    /// A pointer argument is not aligned for its type (handle memory: `ANOLE_HANDLE_ALIGN`).
    Misaligned = 2,
    /// The memory given for a handle is smaller than its `ANOLE_*_SIZE`.
    MemoryTooSmall = 3,
    /// Two buffers of one call overlap where one of them is written (or an argument overlaps a
    /// handle, a learner's arena or a blob's bytes).
    Overlap = 4,
    /// An argument has a value the function does not take (unknown mode, zero capacity, ...).
    InvalidArgument = 5,
    /// The handle argument is not a handle: uninitialised or overwritten memory, or a copy of
    /// a handle at another address.
    NotAHandle = 6,
    /// The handle was released, or its creation failed.
    Released = 7,
    /// The handle is of another kind than the function takes (a blob given as a learner, ...).
    WrongHandle = 8,
    /// The handle is in use: a blob that live learners were created on, or a handle whose
    /// call is still running (a flash callback called back into the library).
    InUse = 9,

    /// The blob ends before its payload and CRC do.
    Truncated = 20,
    /// Not an anole blob: it does not start with "ANOL".
    BadMagic = 21,
    /// The blob's format version is not the one this library reads.
    UnsupportedVersion = 22,
    /// The blob's CRC-32 does not match its bytes: corrupted.
    CrcMismatch = 23,
    /// The blob's payload does not decode.
    Malformed = 24,
    /// Unexpected bytes between the blob's payload and its CRC.
    TrailingBytes = 25,
    /// A layer kind this library does not know.
    UnknownLayer = 26,
    /// A layer has wrong, zero, oversized or non-finite arguments.
    BadLayerArgs = 27,
    /// A layer's input shape does not match the previous layer's output.
    ShapeMismatch = 28,
    /// The model has no layers, or more than this library takes.
    LayerCount = 29,
    /// The number of tensors does not match the architecture.
    TensorCount = 30,
    /// A tensor's byte length does not match its shape and dtype.
    TensorSize = 31,
    /// A tensor's dtype code is unknown.
    UnknownDtype = 32,
    /// A tensor holds NaN or infinity.
    NonFiniteWeight = 33,
    /// The loss is unknown or does not fit the model's output.
    BadLoss = 34,
    /// The optimizer is unknown.
    BadOptimizer = 35,
    /// Adaptation settings are unusable (zero batch, negative or non-finite learning rate, ...).
    BadSettings = 36,
    /// tanh directly after tanh: the backward pass cannot recover the derivative.
    UnsupportedChain = 37,
    /// A size exceeds what this library accepts or can address.
    TooLarge = 38,
    /// A convolution's sizes are not those of a layer a blob could hold.
    BadGeometry = 39,

    /// A signed blob was required but the bytes are a plain blob or something else.
    Unsigned = 40,
    /// The signed envelope's version is not the one this library reads.
    EnvelopeVersion = 41,
    /// The signed envelope's size does not match its header.
    EnvelopeLength = 42,
    /// The signed envelope's header is malformed.
    EnvelopeMalformed = 43,
    /// The blob was signed with a key other than the trusted one.
    UnknownKey = 44,
    /// The signature does not verify: the envelope was altered or signed by another key.
    BadSignature = 45,
    /// The trusted public key is not a valid ed25519 key.
    BadPublicKey = 46,
    /// The blob's head start is unknown (format version 2: `ANOLE_HEAD_START_META` or
    /// `ANOLE_HEAD_START_PROTOTYPES`).
    BadHeadStart = 47,

    /// The arena holds fewer floats than the learner needs (`anole_arena_len`).
    ArenaTooSmall = 60,
    /// More samples in one step than the learner's batch.
    BatchTooLarge = 61,
    /// A sample, or an array of samples, has the wrong number of values.
    SampleLength = 62,
    /// A sample holds NaN or infinity.
    NonFiniteSample = 63,
    /// A classification target is not a class index below the number of classes.
    BadLabel = 64,
    /// No samples were given.
    NoSamples = 65,
    /// A step's loss is not finite; the parameters were kept from the last good step.
    NonFiniteLoss = 66,
    /// A step would make a parameter non-finite; it was not applied.
    NonFiniteParameter = 67,
    /// An output buffer, or a buffer the library works in, is smaller than needed.
    BufferTooSmall = 68,
    /// A parameter vector has the wrong length.
    ParamCount = 69,
    /// An optimizer state has the wrong length.
    OptimizerStateLen = 70,
    /// An optimizer state holds a value the optimizer cannot have.
    BadOptimizerState = 71,
    /// The blob is not an optimizer-state blob.
    NotOptimizerState = 72,
    /// The trainable-layer mask names layers the model does not have.
    BadTrainableMask = 73,
    /// A blob of another architecture was given where the learner's was expected.
    ArchitectureMismatch = 74,
    /// Prototype initialisation needs a model starting with a dense head under cross-entropy.
    NotAHead = 75,
    /// Prototype initialisation needs a sample of every class.
    MissingClass = 76,
    /// A head was asked of a model with no layer with parameters.
    NoHead = 77,
    /// A body was asked of a model whose only layer with parameters is its first.
    NoBody = 78,

    /// The flash's page or write size does not fit the library's (`anole_store_geometry`), or
    /// its capacity does not hold the range.
    FlashGeometry = 80,
    /// The store's flash range is not page-aligned or holds fewer than 4 pages.
    FlashRange = 81,
    /// A flash callback failed, or the store found a corruption it could not repair.
    FlashFailed = 82,
    /// The store's flash range has fewer pages than this blob needs (`anole_store_pages_needed`).
    StoreRangeTooSmall = 83,
    /// The record read back after writing it is refused: the flash does not keep what is
    /// written.
    StoreVerify = 84,
}

impl AnoleStatus {
    /// Every status, for the lookup of a code and the tests.
    pub const ALL: [AnoleStatus; 62] = {
        use AnoleStatus::*;
        [
            Ok,
            NullPointer,
            Misaligned,
            MemoryTooSmall,
            Overlap,
            InvalidArgument,
            NotAHandle,
            Released,
            WrongHandle,
            InUse,
            Truncated,
            BadMagic,
            UnsupportedVersion,
            CrcMismatch,
            Malformed,
            TrailingBytes,
            UnknownLayer,
            BadLayerArgs,
            ShapeMismatch,
            LayerCount,
            TensorCount,
            TensorSize,
            UnknownDtype,
            NonFiniteWeight,
            BadLoss,
            BadOptimizer,
            BadSettings,
            UnsupportedChain,
            TooLarge,
            BadGeometry,
            Unsigned,
            EnvelopeVersion,
            EnvelopeLength,
            EnvelopeMalformed,
            UnknownKey,
            BadSignature,
            BadPublicKey,
            BadHeadStart,
            ArenaTooSmall,
            BatchTooLarge,
            SampleLength,
            NonFiniteSample,
            BadLabel,
            NoSamples,
            NonFiniteLoss,
            NonFiniteParameter,
            BufferTooSmall,
            ParamCount,
            OptimizerStateLen,
            BadOptimizerState,
            NotOptimizerState,
            BadTrainableMask,
            ArchitectureMismatch,
            NotAHead,
            MissingClass,
            NoHead,
            NoBody,
            FlashGeometry,
            FlashRange,
            FlashFailed,
            StoreRangeTooSmall,
            StoreVerify,
        ]
    };

    /// The status with code `code`, if there is one.
    pub fn from_code(code: i32) -> Option<AnoleStatus> {
        AnoleStatus::ALL.iter().copied().find(|s| *s as i32 == code)
    }

    /// The status's meaning, one sentence.
    pub fn message(self) -> &'static CStr {
        use AnoleStatus::*;
        match self {
            Ok => c"success",
            NullPointer => c"a pointer argument is NULL",
            Misaligned => c"a pointer argument is not aligned for its type",
            MemoryTooSmall => c"the memory given for the handle is smaller than its ANOLE_*_SIZE",
            Overlap => c"two buffers of the call overlap where one of them is written",
            InvalidArgument => c"an argument has a value the function does not take",
            NotAHandle => c"not a handle: uninitialised or overwritten memory, or a copy of a handle",
            Released => c"the handle was released, or its creation failed",
            WrongHandle => c"the handle is of another kind than the function takes",
            InUse => c"the handle is in use (learners still use this blob, or a call on it is running)",
            Truncated => c"blob truncated: it ends before its payload and CRC do",
            BadMagic => c"not an anole blob: it does not start with \"ANOL\"",
            UnsupportedVersion => c"blob format version not supported by this library",
            CrcMismatch => c"blob corrupted: its CRC-32 does not match its bytes",
            Malformed => c"blob malformed: its payload does not decode",
            TrailingBytes => c"blob malformed: unexpected bytes before the CRC",
            UnknownLayer => c"blob has a layer kind this library does not know",
            BadLayerArgs => c"blob has a layer with wrong, zero, oversized or non-finite arguments",
            ShapeMismatch => c"blob has a layer whose input does not match the previous layer's output",
            LayerCount => c"blob has no layers, or more than this library takes",
            TensorCount => c"blob's tensor count does not match its architecture",
            TensorSize => c"blob has a tensor whose byte length does not match its shape and dtype",
            UnknownDtype => c"blob has a tensor of unknown dtype",
            NonFiniteWeight => c"a tensor or parameter holds NaN or infinity",
            BadLoss => c"loss unknown or not fitting the model output",
            BadOptimizer => c"optimizer unknown",
            BadSettings => c"adaptation settings unusable (zero batch, bad learning rate, ...)",
            UnsupportedChain => c"tanh directly after tanh is not supported",
            TooLarge => c"a size exceeds what this library accepts or can address",
            BadGeometry => c"a convolution's sizes are not those of a layer a blob could hold",
            Unsigned => c"blob is not signed (a signed envelope starts with \"ANSG\")",
            EnvelopeVersion => c"signed envelope version not supported by this library",
            EnvelopeLength => c"signed envelope size does not match its header",
            EnvelopeMalformed => c"signed envelope header malformed",
            UnknownKey => c"blob signed with a key other than the trusted one",
            BadSignature => c"signature does not verify with the trusted key",
            BadPublicKey => c"the trusted public key is not a valid ed25519 key",
            BadHeadStart => c"head start unknown (neither meta nor prototypes)",
            ArenaTooSmall => c"arena too small for this model, batch and mode (see anole_arena_len)",
            BatchTooLarge => c"more samples in one step than the learner's batch",
            SampleLength => c"a sample or sample array has the wrong number of values",
            NonFiniteSample => c"a sample holds NaN or infinity",
            BadLabel => c"a classification target is not a valid class index",
            NoSamples => c"no samples given",
            NonFiniteLoss => c"a step's loss is not finite; parameters kept from the last good step",
            NonFiniteParameter => c"a step would make a parameter non-finite; it was not applied",
            BufferTooSmall => c"a buffer is smaller than needed",
            ParamCount => c"parameter vector of the wrong length",
            OptimizerStateLen => c"optimizer state of the wrong length",
            BadOptimizerState => c"optimizer state holds a negative, NaN or infinite value",
            NotOptimizerState => c"not an optimizer-state blob",
            BadTrainableMask => c"trainable-layer mask names layers the model does not have",
            ArchitectureMismatch => c"blob of another architecture than the learner's",
            NotAHead => c"prototypes need a model starting with a dense head under cross-entropy",
            MissingClass => c"prototypes need at least one sample of every class",
            NoHead => c"the model has no layer with parameters: no head",
            NoBody => c"the model's only layer with parameters is its first: no body",
            FlashGeometry => c"flash page or write size, or capacity, does not fit the store",
            FlashRange => c"flash range not page-aligned or fewer than 4 pages",
            FlashFailed => c"a flash callback failed, or the store is corrupted beyond repair",
            StoreRangeTooSmall => c"flash range has fewer pages than this blob needs",
            StoreVerify => c"record read back after writing is refused: the flash does not keep what is written",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AnoleStatus;

    #[test]
    fn codes_are_unique_and_each_has_its_own_message() {
        let all = AnoleStatus::ALL;
        for (i, a) in all.iter().enumerate() {
            assert_eq!(AnoleStatus::from_code(*a as i32), Some(*a));
            for b in &all[..i] {
                assert_ne!(*a as i32, *b as i32, "{a:?} and {b:?} share a code");
                assert_ne!(a.message(), b.message(), "{a:?} and {b:?} share a message");
            }
        }
        let known = (-1000..1000).filter_map(AnoleStatus::from_code).count();
        assert_eq!(known, all.len());
    }
}
