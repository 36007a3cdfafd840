//! Every way loading, adapting or exporting can fail, as one enum with a human-readable
//! `Display`. No function of this crate panics on data that came from outside.

use core::fmt;

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// All errors of the runtime. Each variant names what was wrong and where.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)] // fields are named for what they hold; each variant is documented
pub enum Error {
    /// The blob ends before its payload and CRC trailer do (cut short, or a length field
    /// inside it was corrupted so that it points past the end).
    Truncated { len: usize },
    /// The blob does not start with the `ANOL` magic.
    BadMagic { found: [u8; 4] },
    /// The blob was written in a format version this runtime does not read (`supported`: the
    /// newest it reads; it reads every version from 1 up to it).
    UnsupportedVersion { found: u16, supported: u16 },
    /// The CRC-32 trailer does not match the payload.
    CrcMismatch { stored: u32, computed: u32 },
    /// The payload does not decode as the documented postcard layout.
    Malformed { what: &'static str },
    /// Bytes remain after the payload and before the CRC.
    TrailingBytes { count: usize },
    /// A layer kind this runtime does not know, or (a known code) one this build leaves out
    /// (the `extra-layers` feature).
    UnknownLayer { layer: usize, kind: u8 },
    /// A layer has the wrong number of arguments or a zero/absurd one.
    BadLayerArgs { layer: usize, kind: u8 },
    /// A layer's input shape does not match what the previous layer produces.
    ShapeMismatch { layer: usize },
    /// The model has no layers, or too many for this build.
    LayerCount { count: usize },
    /// The number of tensors does not match the architecture.
    TensorCount { expected: usize, found: usize },
    /// A tensor's byte length does not match its shape and dtype.
    TensorSize {
        tensor: usize,
        expected: usize,
        found: usize,
    },
    /// A tensor's dtype code is unknown.
    UnknownDType { tensor: usize, code: u8 },
    /// A tensor holds NaN or infinity.
    NonFiniteWeight { tensor: usize },
    /// Loss code unknown, or the loss does not fit the output (cross-entropy needs >= 2 classes).
    BadLoss { code: u8 },
    /// Optimizer code unknown.
    BadOptimizer { code: u8 },
    /// Head start code unknown (format version 2: 0 meta, 1 prototypes).
    BadHeadStart { code: u8 },
    /// Recommended settings are unusable (zero batch, non-finite or negative learning rate, ...).
    BadSettings { what: &'static str },
    /// The caller's arena holds fewer f32 than the plan needs.
    ArenaTooSmall { needed: usize, available: usize },
    /// More samples in one batch than the learner was planned for.
    BatchTooLarge { requested: usize, capacity: usize },
    /// A sample (input or target) has the wrong number of values.
    SampleLength {
        sample: usize,
        expected: usize,
        found: usize,
    },
    /// A sample holds NaN or infinity.
    NonFiniteSample { sample: usize },
    /// A classification label is not an integer class index below the number of classes.
    BadLabel { sample: usize },
    /// Adaptation was asked for with no samples.
    NoSamples,
    /// A step produced a non-finite loss; the parameters were left as they were before it.
    NonFiniteLoss { step: u32 },
    /// A step would have produced a non-finite parameter; it was not applied.
    NonFiniteParameter { step: u32 },
    /// An output buffer (exported blob bytes, predictions) does not have the size needed.
    BufferTooSmall { needed: usize, available: usize },
    /// A parameter vector given to or asked from the learner has the wrong length.
    ParamCount { expected: usize, found: usize },
    /// An optimizer state given to the learner has the wrong length.
    OptimizerStateLen { expected: usize, found: usize },
    /// An optimizer state given to the learner holds a value the optimizer cannot have
    /// (Adam's second moments are finite and non-negative).
    BadOptimizerState { index: usize },
    /// An optimizer state was to be loaded from a blob that is not an optimizer-state blob.
    NotOptimizerState,
    /// The trainable-layer mask names a layer that does not exist (a lean build, whose mask
    /// holds 32 bits, shows a wider one as all ones).
    BadTrainableMask { mask: crate::limits::LayerMask },
    /// In-place activations whose combined derivative cannot be recovered from their output
    /// (tanh applied twice in a row, with only ReLU or flatten between).
    UnsupportedChain { layer: usize },
    /// A size (tensor, sample, arena) exceeds what this runtime accepts or can address.
    TooLarge { what: &'static str },
    /// A blob of another architecture (input shape, layers or dtypes) was given where this
    /// learner's was expected.
    ArchitectureMismatch,
    /// A sub-model was asked of a model with no layer with parameters: it has no head.
    NoHead,
    /// A body was asked of a model whose only layer with parameters is its first.
    NoBody,
    /// A signed blob was required but these bytes are not a signed envelope (a plain blob
    /// starts with `ANOL`).
    Unsigned { found: [u8; 4] },
    /// The signed envelope was written in a version this runtime does not read.
    EnvelopeVersion { found: u16, supported: u16 },
    /// The signed envelope's size does not match its header (cut short or padded), or it
    /// is shorter than a header and a signature.
    EnvelopeLength { len: usize, expected: usize },
    /// The signed envelope's header holds an unknown algorithm or non-zero reserved bytes.
    EnvelopeMalformed { what: &'static str },
    /// The blob was signed with a key other than the trusted one (key ids differ).
    UnknownKey { found: [u8; 8], expected: [u8; 8] },
    /// The signature does not verify with the trusted key: the envelope was altered after
    /// signing, or another key signed it under the trusted key's id.
    BadSignature,
    /// The trusted public key is not a valid ed25519 public key.
    BadPublicKey,
    /// Prototype initialization was asked of a model that does not start with a dense layer
    /// (held in the arena) giving one output per class under a cross-entropy loss: a head.
    NotAHead,
    /// Prototype initialization needs at least one sample of every class; `class` has none.
    MissingClass { class: usize },
    /// A convolution's sizes, given to its kernels directly, are not those of a layer a blob
    /// could hold: a zero or oversized dimension, a window that does not fit, an output size
    /// other than the window gives, or more values than the runtime's limits.
    BadGeometry { what: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            Truncated { len } => write!(
                f,
                "blob truncated: its {len} bytes end before the payload and CRC do"
            ),
            BadMagic { found } => write!(f, "not an anole blob: magic {found:02x?}, expected \"ANOL\""),
            UnsupportedVersion { found, supported } => write!(
                f,
                "blob format version {found} is not supported (this runtime reads versions 1 to {supported})"
            ),
            CrcMismatch { stored, computed } => write!(
                f,
                "blob corrupted: CRC-32 stored {stored:#010x}, computed {computed:#010x}"
            ),
            Malformed { what } => write!(f, "blob malformed: cannot decode {what}"),
            TrailingBytes { count } => write!(f, "blob malformed: {count} unexpected bytes before the CRC"),
            UnknownLayer { layer, kind } if kind <= crate::wire::kind::LAST => write!(
                f,
                "layer {layer}: layer kind {kind} ({}) is not built into this runtime (its `{}` feature)",
                crate::wire::kind::name(kind),
                // Max pooling with padding, the one form of a built-in kind that needs more.
                crate::wire::kind::missing_feature(kind).unwrap_or("extra-layers")
            ),
            UnknownLayer { layer, kind } => write!(f, "layer {layer}: unknown layer kind {kind}"),
            BadLayerArgs { layer, kind } => write!(
                f,
                "layer {layer} ({}): wrong number of arguments, or a zero, oversized or non-finite one",
                crate::wire::kind::name(kind)
            ),
            ShapeMismatch { layer } => write!(
                f,
                "layer {layer}: input shape does not match the previous layer's output"
            ),
            LayerCount { count } => write!(f, "model has {count} layers; need 1 to {}", crate::limits::MAX_LAYERS),
            TensorCount { expected, found } => write!(
                f,
                "architecture needs {expected} tensors, blob has {found}"
            ),
            TensorSize { tensor, expected, found } => write!(
                f,
                "tensor {tensor}: {found} bytes, shape and dtype need {expected}"
            ),
            UnknownDType { tensor, code } => write!(f, "tensor {tensor}: unknown dtype code {code}"),
            NonFiniteWeight { tensor } => write!(f, "tensor {tensor}: holds NaN or infinity"),
            BadLoss { code: 1 } if !cfg!(feature = "cross-entropy") => write!(
                f,
                "loss code 1 (cross-entropy) is not built into this runtime (its `cross-entropy` feature)"
            ),
            BadLoss { code } => write!(f, "loss code {code} is unknown or does not fit the model output"),
            BadOptimizer { code: 1 } if !cfg!(feature = "adam") => write!(
                f,
                "optimizer code 1 (Adam) is not built into this runtime (its `adam` feature)"
            ),
            BadOptimizer { code } => write!(f, "optimizer code {code} is unknown"),
            BadHeadStart { code } => write!(
                f,
                "head start code {code} is unknown (0 meta, 1 prototypes)"
            ),
            BadSettings { what } => write!(f, "adaptation settings: {what}"),
            ArenaTooSmall { needed, available } => write!(
                f,
                "arena too small: needs {needed} f32, got {available}"
            ),
            BatchTooLarge { requested, capacity } => write!(
                f,
                "batch of {requested} samples exceeds the planned batch of {capacity}"
            ),
            SampleLength { sample, expected, found } => write!(
                f,
                "sample {sample}: {found} values, expected {expected}"
            ),
            NonFiniteSample { sample } => write!(f, "sample {sample}: holds NaN or infinity"),
            BadLabel { sample } => write!(f, "sample {sample}: label is not a valid class index"),
            NoSamples => write!(f, "no samples given"),
            NonFiniteLoss { step } => write!(
                f,
                "step {step}: loss is not finite; parameters kept from the last good step"
            ),
            NonFiniteParameter { step } => write!(
                f,
                "step {step}: update would make a parameter non-finite; parameters kept from the last good step"
            ),
            BufferTooSmall { needed, available } => write!(
                f,
                "output buffer holds {available} elements, {needed} needed"
            ),
            ParamCount { expected, found } => write!(
                f,
                "parameter vector has {found} values, the model has {expected}"
            ),
            OptimizerStateLen { expected, found } => write!(
                f,
                "optimizer state has {found} values, this learner's has {expected}"
            ),
            BadOptimizerState { index } => write!(
                f,
                "optimizer state value {index} is negative, NaN or infinite"
            ),
            NotOptimizerState => write!(
                f,
                "not an optimizer-state blob (its provenance algorithm is not {:?})",
                crate::wire::OPTIMIZER_STATE
            ),
            BadTrainableMask { mask } => write!(f, "trainable mask {mask:#x} names layers the model does not have"),
            UnsupportedChain { layer } => write!(
                f,
                "layer {layer}: tanh cannot follow tanh directly (the backward pass recovers derivatives from outputs)"
            ),
            TooLarge { what } => write!(f, "too large: {what}"),
            ArchitectureMismatch => write!(
                f,
                "blob architecture (input shape, layers or dtypes) differs from the learner's"
            ),
            NoHead => write!(f, "the model has no layer with parameters: no head to split off"),
            NoBody => write!(
                f,
                "the model's only layer with parameters is its first: no body before the head"
            ),
            Unsigned { found } => write!(
                f,
                "blob is not signed: magic {found:02x?}, a signed envelope starts with \"ANSG\" (sign it with `anole sign`)"
            ),
            EnvelopeVersion { found, supported } => write!(
                f,
                "signed envelope version {found} is not supported (this runtime reads version {supported})"
            ),
            EnvelopeLength { len, expected } => write!(
                f,
                "signed envelope is {len} bytes, expected {expected} (cut short or padded)"
            ),
            EnvelopeMalformed { what } => write!(f, "signed envelope malformed: {what}"),
            UnknownKey { found, expected } => {
                f.write_str("blob signed by key id ")?;
                hex(f, &found)?;
                f.write_str(", the trusted key's id is ")?;
                hex(f, &expected)
            }
            BadSignature => write!(
                f,
                "signature does not verify with the trusted key: altered after signing, or signed by another key"
            ),
            BadPublicKey => write!(f, "the trusted public key is not a valid ed25519 key"),
            NotAHead => write!(
                f,
                "prototypes initialize a classifier head: the model must start with a dense layer \
                 with one output per class and a cross-entropy loss"
            ),
            MissingClass { class } => write!(
                f,
                "class {class} has no sample: prototypes need at least one of every class"
            ),
            BadGeometry { what } => write!(f, "convolution geometry: {what}"),
        }
    }
}

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
impl std::error::Error for Error {}
