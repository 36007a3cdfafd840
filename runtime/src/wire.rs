//! The blob's records as they are encoded (postcard, then a CRC-32 trailer; specified in
//! `docs/format.md`): the header constants, the layer, tensor, settings and provenance
//! records, and the layer kind codes. [`crate::Blob`] parses and validates them.

use crate::dtype::DType;
use crate::limits::{
    LayerMask, MAX_INPUT_RANK, MAX_LAYERS, MAX_LAYERS_V2, MAX_LAYER_ARGS, MAX_TENSORS,
};
use heapless::Vec as HVec;
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

/// The four bytes every blob starts with.
pub const MAGIC: [u8; 4] = *b"ANOL";
/// The newest format version this runtime reads and writes: version 3 adds
/// [`AdaptSettings::head_scale`], a 64-bit trainable mask and up to 64 layers. It reads every
/// version from [`FORMAT_VERSION_1`] up; writers write the oldest version that holds their
/// settings and layers ([`Wire::format_version`]), so a blob that needs nothing new stays a
/// version-1 (or version-2) blob, byte for byte.
pub const FORMAT_VERSION: u16 = 3;
/// The first format version: no head start in the settings (the head starts from the blob's),
/// a 32-bit trainable mask, at most 32 layers.
pub const FORMAT_VERSION_1: u16 = 1;
/// The second format version: version 1 and [`AdaptSettings::head_start`].
pub const FORMAT_VERSION_2: u16 = 2;
/// The provenance algorithm of an optimizer-state blob (see
/// [`crate::Learner::export_optimizer_state`]): its tensors hold Adam's second moments, not
/// parameters, and its `meta_iterations` the optimizer steps they were accumulated over.
pub const OPTIMIZER_STATE: &str = "adam-state";

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 (ISO-HDLC, as zlib and PNG) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC.checksum(bytes)
}

/// One layer as stored: a kind code and up to [`MAX_LAYER_ARGS`] integer arguments.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RawLayer {
    /// Layer kind code (see docs/format.md).
    pub kind: u8,
    /// Kind-specific arguments.
    pub args: HVec<u32, MAX_LAYER_ARGS>,
}

/// One tensor as stored: a dtype code and its little-endian bytes, borrowed from the blob.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct RawTensor<'a> {
    /// dtype code (0 f32, 1 f16, 2 bf16).
    pub dtype: u8,
    /// Raw bytes, `len * dtype.size()` long.
    #[serde(borrow)]
    pub data: &'a [u8],
}

/// Recommended adaptation settings, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AdaptSettings {
    /// Loss code (0 MSE, 1 cross-entropy).
    pub loss: u8,
    /// Optimizer code (0 SGD, 1 Adam with beta1 = 0).
    pub optimizer: u8,
    /// Inner learning rate.
    pub lr: f32,
    /// Number of adaptation steps.
    pub steps: u32,
    /// Minibatch size of one step.
    pub batch: u32,
    /// Bit `i` set: layer `i` adapts. Layers without parameters ignore their bit. A `u64` on
    /// the wire from format version 3 on (a `u32` before); [`LayerMask`] is `u32` in a lean
    /// build, which holds at most 32 layers.
    pub trainable: LayerMask,
    /// Per-tensor learning-rate multipliers; empty means 1.0 for every tensor.
    pub lr_scale: HVec<f32, MAX_TENSORS>,
    /// Head start code (format version 2; 0 in a version-1 blob): where adaptation starts a
    /// classifier's head, 0 from the blob's parameters (meta), 1 from the class prototypes of
    /// the support set (see [`crate::HeadStart`]).
    pub head_start: u8,
    /// The factor `s` on the logits of a head started from class prototypes (format version 3;
    /// 1 in older blobs): row `c` becomes 2·s·μ_c and bias `c` −s·‖μ_c‖². Finite and `> 0`. A
    /// smaller factor keeps the start's softmax from saturating on the support set, so the
    /// steps after it still learn. Ignored under [`crate::HeadStart::Meta`].
    pub head_scale: f32,
}

impl AdaptSettings {
    /// The oldest format version that holds these settings: 1; 2 for a head start other than
    /// the blob's parameters (code 0); 3 for a head scale other than 1 or a trainable mask
    /// naming a layer from 32 on. [`Wire::format_version`] also counts the layers.
    pub fn format_version(&self) -> u16 {
        if self.head_scale != 1.0 || beyond_32(self.trainable) {
            FORMAT_VERSION
        } else if self.head_start != 0 {
            FORMAT_VERSION_2
        } else {
            FORMAT_VERSION_1
        }
    }
}

/// Whether `mask` names a layer from 32 on (never in a lean build, whose mask is a `u32`).
fn beyond_32(mask: LayerMask) -> bool {
    mask.checked_shr(32).is_some_and(|high| high != 0)
}

/// The settings every version holds, up to `lr_scale` (the trainable mask read as a `u64`, as
/// version 3 stores it; older versions store a `u32`, the same bytes).
#[derive(Deserialize)]
pub(crate) struct AdaptSettingsV1 {
    pub(crate) loss: u8,
    pub(crate) optimizer: u8,
    pub(crate) lr: f32,
    pub(crate) steps: u32,
    pub(crate) batch: u32,
    pub(crate) trainable: u64,
    pub(crate) lr_scale: HVec<f32, MAX_TENSORS>,
}

/// The settings of a wire of format `version`, as written: a version-1 blob has no head start,
/// a version-1 or 2 blob no head scale and a `u32` trainable mask (serializing settings the
/// version cannot hold fails; [`crate::Blob::encode_wire`] says why first).
struct AdaptOnWire<'s>(&'s AdaptSettings, u16);

impl Serialize for AdaptOnWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        // A version below 1 (refused by readers) is laid out as version 1.
        let (a, version) = (self.0, self.1.max(FORMAT_VERSION_1));
        if a.format_version() > version {
            return Err(serde::ser::Error::custom(
                "these settings need a newer format version",
            ));
        }
        let fields =
            7 + usize::from(version >= FORMAT_VERSION_2) + usize::from(version >= FORMAT_VERSION);
        let mut st = s.serialize_struct("AdaptSettings", fields)?;
        st.serialize_field("loss", &a.loss)?;
        st.serialize_field("optimizer", &a.optimizer)?;
        st.serialize_field("lr", &a.lr)?;
        st.serialize_field("steps", &a.steps)?;
        st.serialize_field("batch", &a.batch)?;
        // A u32 and a u64 below 2^32 are the same varint.
        st.serialize_field("trainable", &a.trainable)?;
        st.serialize_field("lr_scale", &a.lr_scale)?;
        if version >= FORMAT_VERSION_2 {
            st.serialize_field("head_start", &a.head_start)?;
        }
        if version >= FORMAT_VERSION {
            st.serialize_field("head_scale", &a.head_scale)?;
        }
        st.end()
    }
}

/// Where the initialization came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Provenance<'a> {
    /// Meta-learning algorithm ("reptile", "fomaml", "joint", "random", "import", ...).
    pub algorithm: &'a str,
    /// Task family ("sine", "omniglot-5way", ...).
    pub task: &'a str,
    /// Seed of the run that produced it.
    pub seed: u64,
    /// Meta-iterations run.
    pub meta_iterations: u64,
}

/// The payload as written on the wire, generic over how tensors are represented.
#[derive(Clone, Debug, PartialEq)]
pub struct Wire<'a, T> {
    /// Must equal [`MAGIC`].
    pub magic: [u8; 4],
    /// [`FORMAT_VERSION_1`] to [`FORMAT_VERSION`]; writers put [`Wire::format_version`] here.
    pub version: u16,
    /// Shape of one input sample: `[n]` or `[channels, height, width]`.
    pub input_shape: HVec<u32, MAX_INPUT_RANK>,
    /// Layers in execution order.
    pub layers: HVec<RawLayer, MAX_LAYERS>,
    /// Tensors in layer order (see docs/format.md for each layer's tensors).
    pub tensors: HVec<T, MAX_TENSORS>,
    /// Recommended adaptation settings.
    pub adapt: AdaptSettings,
    /// Provenance.
    pub provenance: Provenance<'a>,
}

impl<T> Wire<'_, T> {
    /// The oldest format version that holds this payload: its settings'
    /// ([`AdaptSettings::format_version`]), or 3 for more than 32 layers. What writers put in
    /// [`Wire::version`], so a blob that needs nothing new keeps its older version byte for
    /// byte, and older runtimes keep reading it.
    pub fn format_version(&self) -> u16 {
        if self.layers.len() > MAX_LAYERS_V2 {
            FORMAT_VERSION
        } else {
            self.adapt.format_version()
        }
    }
}

impl<T: Serialize> Serialize for Wire<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Wire", 7)?;
        st.serialize_field("magic", &self.magic)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("input_shape", &self.input_shape)?;
        st.serialize_field("layers", &self.layers)?;
        st.serialize_field("tensors", &self.tensors)?;
        st.serialize_field("adapt", &AdaptOnWire(&self.adapt, self.version))?;
        st.serialize_field("provenance", &self.provenance)?;
        st.end()
    }
}

/// Wire code of each layer kind.
pub mod kind {
    /// Dense: args `[inputs, outputs]`.
    pub const DENSE: u8 = 0;
    /// Conv2d: args `[in_channels, out_channels, kernel, stride, padding]`.
    pub const CONV2D: u8 = 1;
    /// Norm: args `[channels, eps as f32 bits]`.
    pub const NORM: u8 = 2;
    /// ReLU: no args.
    pub const RELU: u8 = 3;
    /// Tanh: no args.
    pub const TANH: u8 = 4;
    /// MaxPool2d: args `[kernel, stride]`, or `[kernel, stride, padding]` with padding (a
    /// newer form, see docs/format.md).
    pub const MAXPOOL2D: u8 = 5;
    /// Flatten: no args.
    pub const FLATTEN: u8 = 6;
    /// Sigmoid: no args; a newer kind (see docs/format.md).
    pub const SIGMOID: u8 = 7;
    /// Clip: args `[min as f32 bits, max as f32 bits]`; a newer kind (see docs/format.md).
    pub const CLIP: u8 = 8;
    /// PRelu: args `[channels]`, one tensor of per-channel slopes; a newer kind (see docs/format.md).
    pub const PRELU: u8 = 9;
    /// LeakyRelu: args `[alpha as f32 bits]`; a newer kind.
    pub const LEAKY_RELU: u8 = 10;
    /// HardSigmoid: args `[alpha as f32 bits, beta as f32 bits]`; a newer kind.
    pub const HARD_SIGMOID: u8 = 11;
    /// HardSwish: no args; a newer kind.
    pub const HARD_SWISH: u8 = 12;
    /// AvgPool2d: args `[kernel, stride, padding, include_pad (0 or 1)]`; a newer kind.
    pub const AVGPOOL2D: u8 = 13;
    /// GlobalAvgPool: no args; a newer kind.
    pub const GLOBAL_AVGPOOL: u8 = 14;
    /// Convolution with a window of its own per axis, dilation and groups (1-D, depthwise).
    pub const CONV: u8 = 15;
    /// Max or average pooling with a window of its own per axis.
    pub const POOL: u8 = 16;
    /// The sum of the input and an earlier value (a residual connection).
    pub const ADD: u8 = 17;
    /// An earlier value, where a branch of the network starts again from it.
    pub const BRANCH: u8 = 18;
    /// The input and an earlier value joined along the channels.
    pub const CONCAT: u8 = 19;
    /// The highest kind code this runtime reads.
    pub const LAST: u8 = CONCAT;

    /// Name of a kind code ("unknown" if not one of the above).
    pub const fn name(code: u8) -> &'static str {
        match code {
            DENSE => "dense",
            CONV2D => "conv2d",
            NORM => "norm",
            RELU => "relu",
            TANH => "tanh",
            MAXPOOL2D => "maxpool2d",
            FLATTEN => "flatten",
            SIGMOID => "sigmoid",
            CLIP => "clip",
            PRELU => "prelu",
            LEAKY_RELU => "leakyrelu",
            HARD_SIGMOID => "hardsigmoid",
            HARD_SWISH => "hardswish",
            AVGPOOL2D => "avgpool2d",
            GLOBAL_AVGPOOL => "globalavgpool",
            CONV => "conv",
            POOL => "pool",
            ADD => "add",
            BRANCH => "branch",
            CONCAT => "concat",
            _ => "unknown",
        }
    }

    /// The runtime feature a kind code needs beyond what every build carries, whether or not
    /// this build has it (`None`: dense, ReLU, tanh, flatten, or not a known code). A max
    /// pooling with padding (three arguments) also needs `extra-layers`.
    pub const fn feature(code: u8) -> Option<super::Feature> {
        use super::Feature;
        match code {
            CONV2D | MAXPOOL2D => Some(Feature::CONV),
            NORM => Some(Feature::NORM),
            SIGMOID..=LAST => Some(Feature::EXTRA_LAYERS),
            _ => None,
        }
    }

    /// The name of the runtime feature kind `code` needs and this build lacks (`None`: built
    /// in, or not a known code). `Layer::from_raw` refuses a padded max pooling without
    /// `extra-layers` on its own.
    pub const fn missing_feature(code: u8) -> Option<&'static str> {
        super::Feature::missing(feature(code))
    }
}

/// A runtime feature a blob can need beyond what every build carries (dense layers, ReLU,
/// tanh, flatten, MSE, SGD): its name and whether this build has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    /// The cargo feature's name.
    pub name: &'static str,
    /// Whether this build has it.
    pub built: bool,
}

impl Feature {
    /// Layer kinds 1 and 5: 2-D convolutions and max pooling.
    pub const CONV: Feature = Feature {
        name: "conv",
        built: cfg!(feature = "conv"),
    };
    /// Layer kind 2: normalisation.
    pub const NORM: Feature = Feature {
        name: "norm",
        built: cfg!(feature = "norm"),
    };
    /// Layer kinds 7 and up, and max pooling with padding.
    pub const EXTRA_LAYERS: Feature = Feature {
        name: "extra-layers",
        built: cfg!(feature = "extra-layers"),
    };
    /// Loss 1: softmax cross-entropy.
    pub const CROSS_ENTROPY: Feature = Feature {
        name: "cross-entropy",
        built: cfg!(feature = "cross-entropy"),
    };
    /// Optimizer 1: Adam with beta1 = 0.
    pub const ADAM: Feature = Feature {
        name: "adam",
        built: cfg!(feature = "adam"),
    };

    /// The name of `needed` when this build lacks it.
    pub const fn missing(needed: Option<Feature>) -> Option<&'static str> {
        match needed {
            Some(f) if !f.built => Some(f.name),
            _ => None,
        }
    }
}

/// A tensor given as f32 values, encoded to its dtype while serializing. Its wire form is
/// identical to [`RawTensor`]; writers (the learner's export, the trainer) use it
/// to produce blobs without an intermediate byte buffer.
#[derive(Clone, Copy, Debug)]
pub struct TensorValues<'v> {
    /// Storage dtype.
    pub dtype: DType,
    /// Values.
    pub values: &'v [f32],
}

struct Encoded<'v>(TensorValues<'v>);

impl Serialize for Encoded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let t = self.0;
        let size = t.dtype.size();
        let mut seq = s.serialize_seq(Some(t.values.len() * size))?;
        let mut buf = [0u8; 4];
        for &v in t.values {
            t.dtype.put(v, &mut buf[..size]);
            for b in &buf[..size] {
                seq.serialize_element(b)?;
            }
        }
        seq.end()
    }
}

impl Serialize for TensorValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RawTensor", 2)?;
        st.serialize_field("dtype", &(self.dtype as u8))?;
        st.serialize_field("data", &Encoded(*self))?;
        st.end()
    }
}
