//! The parameter blob: a postcard-encoded, CRC-protected model (architecture, tensors,
//! recommended adaptation settings, provenance), parsed in place from flash.
//!
//! The wire format is specified in `docs/format.md`. Parsing borrows every tensor and
//! string from the input bytes: nothing is copied until a [`crate::Learner`] loads the
//! parameters into its arena.

use crate::error::{Error, Result};
use crate::layers::{Layer, Post, Shape};
use crate::plan::{Mode, Plan};
use crate::wire::Feature;
use heapless::Vec as HVec;
use serde::{Deserialize, Serialize};

pub use crate::dtype::{f16_to_f32, DType, Stored};
pub use crate::limits::{
    LayerMask, MAX_INPUT_RANK, MAX_LAYERS, MAX_LAYERS_V2, MAX_LAYER_ARGS, MAX_TENSORS,
};
pub use crate::wire::{
    crc32, AdaptSettings, Provenance, RawLayer, RawTensor, Wire, FORMAT_VERSION, FORMAT_VERSION_1,
    FORMAT_VERSION_2, MAGIC, OPTIMIZER_STATE,
};

/// Loss the model is adapted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Mean of squared errors over batch and outputs.
    Mse = 0,
    /// Softmax cross-entropy, mean over the batch; targets are one class index per sample.
    CrossEntropy = 1,
}

impl LossKind {
    /// The runtime feature this loss needs beyond what every build carries.
    pub const fn feature(self) -> Option<Feature> {
        match self {
            LossKind::Mse => None,
            LossKind::CrossEntropy => Some(Feature::CROSS_ENTROPY),
        }
    }
    /// The name of the runtime feature this loss needs, when this build lacks it.
    pub const fn missing_feature(self) -> Option<&'static str> {
        Feature::missing(self.feature())
    }
}

/// Inner-loop optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// Plain first-order SGD.
    Sgd = 0,
    /// Adam with beta1 = 0 (the paper's Omniglot inner loop): beta2 = 0.999, eps = 1e-8.
    AdamB1Zero = 1,
}

impl Optimizer {
    /// The runtime feature this optimizer needs beyond what every build carries.
    pub const fn feature(self) -> Option<Feature> {
        match self {
            Optimizer::Sgd => None,
            Optimizer::AdamB1Zero => Some(Feature::ADAM),
        }
    }
    /// The name of the runtime feature this optimizer needs, when this build lacks it.
    pub const fn missing_feature(self) -> Option<&'static str> {
        Feature::missing(self.feature())
    }
}

/// Where adaptation starts a classifier's head (format version 2; a version-1 blob's is
/// [`HeadStart::Meta`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadStart {
    /// From the blob's parameters (the meta-learned head).
    #[default]
    Meta = 0,
    /// From the class prototypes of the support set's features, the blob's head replaced by
    /// the nearest-prototype classifier
    /// ([`Learner::init_head_prototypes`](crate::Learner::init_head_prototypes)) before the
    /// adaptation steps: the blob was meta-learned for that start (first-order Proto-MAML).
    /// [`Learner::start_head`](crate::Learner::start_head) does it.
    Prototypes = 1,
}

impl HeadStart {
    /// The head start of code `code`, if there is one.
    pub const fn from_code(code: u8) -> Option<HeadStart> {
        match code {
            0 => Some(HeadStart::Meta),
            1 => Some(HeadStart::Prototypes),
            _ => None,
        }
    }

    /// The lowercase name: "meta" or "prototypes".
    pub const fn name(self) -> &'static str {
        match self {
            HeadStart::Meta => "meta",
            HeadStart::Prototypes => "prototypes",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    magic: [u8; 4],
    version: u16,
}

/// A parsed, validated blob: typed layers, their shapes and borrowed tensors.
#[derive(Clone, Debug)]
// Declaration order, the payload last: what every pass reads (layers, shapes) sits at the
// start, at the same offsets whatever the settings hold.
#[repr(C)]
pub struct Blob<'a> {
    /// Typed layers.
    pub layers: HVec<Layer, MAX_LAYERS>,
    /// `shapes[i]` is the input of layer `i`; the last entry is the model output.
    pub shapes: HVec<Shape, { MAX_LAYERS + 1 }>,
    /// Decoded dtypes of each tensor.
    pub dtypes: HVec<DType, MAX_TENSORS>,
    /// Loss.
    pub loss: LossKind,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Where adaptation starts the head.
    pub head_start: HeadStart,
    /// The decoded payload (tensors borrowed from the blob bytes).
    pub wire: Wire<'a, RawTensor<'a>>,
}

impl<'a> Blob<'a> {
    /// Parse and validate a blob in place: magic, version, CRC, layers, shapes, tensor sizes,
    /// finiteness of every weight and the settings. Borrowed, nothing is copied.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut blob = Blob::empty();
        blob.parse_in_place(bytes)?;
        Ok(blob)
    }

    /// Verify the signed envelope `bytes` against the trusted `public_key` (see
    /// [`crate::sign`]), then parse the blob inside it in place. Refuses plain blobs, blobs
    /// signed by another key and altered bytes.
    #[cfg(feature = "sign")]
    pub fn parse_signed(
        bytes: &'a [u8],
        public_key: &[u8; crate::sign::PUBLIC_KEY_LEN],
    ) -> Result<Self> {
        Blob::parse(crate::sign::verify(bytes, public_key)?)
    }

    /// A blob with no layers, the starting point of [`Blob::parse_in_place`]. It is not a
    /// valid model: a learner refuses it.
    pub const fn empty() -> Self {
        Blob {
            wire: Wire {
                magic: [0; 4],
                version: 0,
                input_shape: HVec::new(),
                layers: HVec::new(),
                tensors: HVec::new(),
                adapt: AdaptSettings {
                    loss: 0,
                    optimizer: 0,
                    lr: 0.0,
                    steps: 0,
                    batch: 0,
                    trainable: 0,
                    lr_scale: HVec::new(),
                    head_start: 0,
                    head_scale: 1.0,
                },
                provenance: Provenance {
                    algorithm: "",
                    task: "",
                    seed: 0,
                    meta_iterations: 0,
                },
            },
            layers: HVec::new(),
            shapes: HVec::new(),
            dtypes: HVec::new(),
            loss: LossKind::Mse,
            optimizer: Optimizer::Sgd,
            head_start: HeadStart::Meta,
        }
    }

    /// [`Blob::parse`] into `self`, decoding every list straight into its place. A `Blob` is a
    /// few kilobytes of fixed-capacity lists; `let mut b = Blob::empty(); b.parse_in_place(..)`
    /// keeps the only copy where the caller put it, where `parse` may need a temporary one on
    /// the stack. On error `self` is left empty.
    pub fn parse_in_place(&mut self, bytes: &'a [u8]) -> Result<()> {
        let r = self.parse_into(bytes);
        if r.is_err() {
            self.clear();
        }
        r
    }

    fn clear(&mut self) {
        self.wire.input_shape.clear();
        self.wire.layers.clear();
        self.wire.tensors.clear();
        self.wire.adapt.lr_scale.clear();
        self.layers.clear();
        self.shapes.clear();
        self.dtypes.clear();
    }

    fn parse_into(&mut self, bytes: &'a [u8]) -> Result<()> {
        if bytes.len() < 4 + 1 + 4 {
            return Err(Error::Truncated { len: bytes.len() });
        }
        let (payload, trailer) = bytes.split_at(bytes.len() - 4);
        // Header first so a wrong magic or version gets its own error even if the CRC is off.
        let header: Header =
            postcard::from_bytes(payload).map_err(|_| Error::Truncated { len: bytes.len() })?;
        if header.magic != MAGIC {
            return Err(Error::BadMagic {
                found: header.magic,
            });
        }
        if !(FORMAT_VERSION_1..=FORMAT_VERSION).contains(&header.version) {
            return Err(Error::UnsupportedVersion {
                found: header.version,
                supported: FORMAT_VERSION,
            });
        }
        let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let computed = crc32(payload);
        if stored != computed {
            // Tell a blob cut short from a corrupted one: the payload of a truncated blob
            // cannot be decoded from all the bytes there are, or leaves no room for the CRC.
            self.clear();
            let cut = match decode_into(&mut self.wire, bytes, &mut Overflow::None) {
                Err(postcard::Error::DeserializeUnexpectedEnd) => true,
                Ok(rest) => rest.len() < 4,
                Err(_) => false,
            };
            if cut {
                return Err(Error::Truncated { len: bytes.len() });
            }
            return Err(Error::CrcMismatch { stored, computed });
        }
        self.clear();
        let mut overflow = Overflow::None;
        let rest =
            decode_into(&mut self.wire, payload, &mut overflow).map_err(|_| match overflow {
                Overflow::Layers(count) => Error::LayerCount { count },
                Overflow::Mask => Error::BadTrainableMask {
                    mask: LayerMask::MAX,
                },
                Overflow::None => Error::Malformed {
                    what: "payload (layers, tensors, settings or provenance)",
                },
            })?;
        if !rest.is_empty() {
            return Err(Error::TrailingBytes { count: rest.len() });
        }
        self.check()
    }

    /// Validate a decoded payload (also used by writers before encoding).
    pub fn validate(wire: Wire<'a, RawTensor<'a>>) -> Result<Self> {
        let mut blob = Blob {
            wire,
            ..Blob::empty()
        };
        blob.check()?;
        Ok(blob)
    }

    /// Validate `self.wire` as edited in place and fill in the typed layers, shapes, dtypes,
    /// loss and optimizer, as [`Blob::validate`] does without moving a second copy of the blob
    /// through the stack (a device assembling a sub-model of a blob in flash, for example).
    /// On error the blob is left empty.
    pub fn validate_in_place(&mut self) -> Result<()> {
        let r = self.check();
        if r.is_err() {
            self.clear();
        }
        r
    }

    /// Validate `self.wire` and fill in the typed layers, shapes, dtypes, loss and optimizer.
    fn check(&mut self) -> Result<()> {
        self.layers.clear();
        self.shapes.clear();
        self.dtypes.clear();
        let wire = &self.wire;
        let n = wire.layers.len();
        if n == 0 {
            return Err(Error::LayerCount { count: 0 });
        }
        let mut shape = Shape::from_dims(&wire.input_shape).ok_or(Error::BadSettings {
            what: "input shape must be [n], [channels, length] or [channels, height, width] with non-zero sizes",
        })?;
        let (layers, shapes) = (&mut self.layers, &mut self.shapes);
        let mut expected_tensors = 0usize;
        let mut post = Post::Identity;
        for (i, raw) in wire.layers.iter().enumerate() {
            let layer = Layer::from_raw(i, raw)?;
            // A value read again later must still hold its values: not the input of a layer
            // that works in place.
            if let Some(k) = layer.reads() {
                if k < i && layers[k].in_place() {
                    return Err(Error::BadLayerArgs {
                        layer: i,
                        kind: raw.kind,
                    });
                }
            }
            let value = |k: usize| {
                if k < i {
                    shapes.get(k).copied()
                } else {
                    Some(shape)
                }
            };
            let out = match layer.output_shape_after(shape, value) {
                Some(out) => out,
                None if layer.accepts(shape) && layer.reads().is_none() => {
                    return Err(Error::TooLarge {
                        what: "a layer's output exceeds 16 Mi values per sample",
                    })
                }
                None => return Err(Error::ShapeMismatch { layer: i }),
            };
            post = if layer.in_place() {
                post.then(layer)
                    .ok_or(Error::UnsupportedChain { layer: i })?
            } else {
                Post::Identity
            };
            for k in 0..layer.tensor_count() {
                layer.checked_tensor_len(k).ok_or(Error::TooLarge {
                    what: "a tensor exceeds 64 Mi elements",
                })?;
            }
            // Capacity cannot overflow: wire.layers has at most MAX_LAYERS entries.
            let _ = shapes.push(shape);
            let _ = layers.push(layer);
            expected_tensors += layer.tensor_count();
            shape = out;
        }
        let _ = shapes.push(shape);
        if wire.tensors.len() != expected_tensors {
            return Err(Error::TensorCount {
                expected: expected_tensors,
                found: wire.tensors.len(),
            });
        }
        let dtypes = &mut self.dtypes;
        let mut t = 0usize;
        for (i, layer) in layers.iter().enumerate() {
            for k in 0..layer.tensor_count() {
                let raw = &wire.tensors[t];
                let dtype = DType::from_code(raw.dtype).ok_or(Error::UnknownDType {
                    tensor: t,
                    code: raw.dtype,
                })?;
                let len = layer.tensor_len(shapes[i], k);
                let expected = len * dtype.size();
                if raw.data.len() != expected {
                    return Err(Error::TensorSize {
                        tensor: t,
                        expected,
                        found: raw.data.len(),
                    });
                }
                if (0..len).any(|j| !dtype.get(raw.data, j).is_finite()) {
                    return Err(Error::NonFiniteWeight { tensor: t });
                }
                let _ = dtypes.push(dtype);
                t += 1;
            }
        }
        let out_len = shape.len();
        let loss = match wire.adapt.loss {
            0 => LossKind::Mse,
            1 if out_len >= 2 && Feature::CROSS_ENTROPY.built => LossKind::CrossEntropy,
            code => return Err(Error::BadLoss { code }),
        };
        let optimizer = match wire.adapt.optimizer {
            0 => Optimizer::Sgd,
            1 if Feature::ADAM.built => Optimizer::AdamB1Zero,
            code => return Err(Error::BadOptimizer { code }),
        };
        let a = &wire.adapt;
        let head_start =
            HeadStart::from_code(a.head_start).ok_or(Error::BadHeadStart { code: a.head_start })?;
        if !(FORMAT_VERSION_1..=FORMAT_VERSION).contains(&wire.version) {
            return Err(Error::UnsupportedVersion {
                found: wire.version,
                supported: FORMAT_VERSION,
            });
        }
        version_holds(wire)?;
        if !(a.lr.is_finite() && a.lr >= 0.0) {
            return Err(Error::BadSettings {
                what: "learning rate must be finite and >= 0",
            });
        }
        if a.batch == 0 {
            return Err(Error::BadSettings {
                what: "batch must be >= 1",
            });
        }
        if !a.lr_scale.is_empty() && a.lr_scale.len() != expected_tensors {
            return Err(Error::BadSettings {
                what: "lr_scale must be empty or have one entry per tensor",
            });
        }
        if a.lr_scale.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(Error::BadSettings {
                what: "lr_scale entries must be finite and >= 0",
            });
        }
        if !(a.head_scale.is_finite() && a.head_scale > 0.0) {
            return Err(Error::BadSettings {
                what: "head scale must be finite and > 0",
            });
        }
        if crate::limits::names_beyond(a.trainable, n) {
            return Err(Error::BadTrainableMask { mask: a.trainable });
        }
        self.loss = loss;
        self.optimizer = optimizer;
        self.head_start = head_start;
        Ok(())
    }

    /// The runtime features (beyond what every build carries) a build needs to load this blob:
    /// `conv`, `norm`, `extra-layers`, `cross-entropy`, `adam`, in that order, each once.
    /// Whether this build has them does not matter (a host tool tells a firmware what to
    /// enable).
    pub fn features(&self) -> HVec<&'static str, 5> {
        let kinds = || self.layers.iter().map(|l| l.to_raw().kind);
        let of_kinds = |f: Feature| kinds().any(|k| crate::wire::kind::feature(k) == Some(f));
        // A padded max pooling is kind 5 (`conv`) and one of the other kinds (`extra-layers`).
        let extra = self.layers.iter().any(|l| matches!(l, Layer::Extra(_)));
        [
            (Feature::CONV, of_kinds(Feature::CONV)),
            (Feature::NORM, of_kinds(Feature::NORM)),
            (Feature::EXTRA_LAYERS, extra),
            (Feature::CROSS_ENTROPY, self.loss.feature().is_some()),
            (Feature::ADAM, self.optimizer.feature().is_some()),
        ]
        .into_iter()
        .filter(|&(_, needed)| needed)
        .map(|(f, _)| f.name)
        .collect()
    }

    /// Per-sample input shape.
    pub fn input_shape(&self) -> Shape {
        self.shapes[0]
    }
    /// Whether the model reads a 1-D signal (input stored `[c, l]`): its images are one row
    /// high (`[c, 1, l]`), and ONNX and the bindings show them as `[c, l]`.
    pub fn is_signal(&self) -> bool {
        self.wire.input_shape.len() == 2
    }
    /// A per-sample shape as the user sees it: `[n]`, `[c, h, w]`, or `[c, l]` for an image of a
    /// 1-D model ([`Blob::is_signal`]).
    pub fn user_dims(&self, s: Shape) -> heapless::Vec<usize, 3> {
        let dims: &[usize] = match s {
            Shape::Flat(n) => &[n],
            Shape::Chw(c, _, l) if self.is_signal() => &[c, l],
            Shape::Chw(c, h, w) => &[c, h, w],
        };
        dims.iter().copied().collect()
    }
    /// Per-sample output shape.
    pub fn output_shape(&self) -> Shape {
        self.shapes[self.layers.len()]
    }
    /// Values in one input sample.
    pub fn input_len(&self) -> usize {
        self.input_shape().len()
    }
    /// Values in one model output.
    pub fn output_len(&self) -> usize {
        self.output_shape().len()
    }
    /// Values in one target: the output size for MSE, 1 (a class index) for cross-entropy.
    pub fn target_len(&self) -> usize {
        match self.loss {
            LossKind::Mse => self.output_len(),
            LossKind::CrossEntropy => 1,
        }
    }
    /// Total number of parameters (all tensors).
    pub fn param_count(&self) -> usize {
        self.wire
            .tensors
            .iter()
            .zip(self.dtypes.iter())
            .map(|(t, d)| t.data.len() / d.size())
            .sum()
    }
    /// Recommended settings.
    pub fn settings(&self) -> &AdaptSettings {
        &self.wire.adapt
    }
    /// Provenance.
    pub fn provenance(&self) -> &Provenance<'a> {
        &self.wire.provenance
    }
    /// f32 of arena a [`crate::Learner`] needs to adapt the blob's trainable layers at `batch`.
    pub fn arena_len(&self, batch: usize) -> Result<usize> {
        Ok(Plan::new(self, batch, self.settings().trainable)?.arena_len())
    }
    /// f32 of arena a learner in [`Mode::Device`] needs to adapt the blob's trainable layers
    /// at `batch`: what a microcontroller's static arena is sized with.
    pub fn device_arena_len(&self, batch: usize) -> Result<usize> {
        Ok(Plan::with_mode(self, batch, self.settings().trainable, Mode::Device)?.arena_len())
    }
    /// Tensor `t` as stored, read in place (`t` below the tensor count, else it panics).
    pub fn stored(&self, t: usize) -> Stored<'a> {
        Stored {
            dtype: self.dtypes[t],
            bytes: self.wire.tensors[t].data,
        }
    }
    /// Decode tensor `t` into `out` (len must equal the tensor's element count).
    pub fn read_tensor(&self, t: usize, out: &mut [f32]) {
        let dtype = self.dtypes[t];
        let data = self.wire.tensors[t].data;
        for (j, o) in out.iter_mut().enumerate() {
            *o = dtype.get(data, j);
        }
    }

    /// Encode this blob's payload (as parsed, with its own tensors) into a fresh vector.
    #[cfg(feature = "std")]
    pub fn to_vec(&self) -> std::vec::Vec<u8> {
        encode_to_vec(&self.wire)
    }

    /// Encode `wire` into `out` with its CRC trailer; returns the written prefix.
    pub fn encode_wire<'o, T: Serialize>(
        wire: &Wire<'_, T>,
        out: &'o mut [u8],
    ) -> Result<&'o [u8]> {
        version_holds(wire)?;
        let available = out.len();
        let n = postcard::to_slice(wire, out)
            .map_err(|_| Error::BufferTooSmall {
                needed: encoded_len(wire),
                available,
            })?
            .len();
        if n + 4 > available {
            return Err(Error::BufferTooSmall {
                needed: n + 4,
                available,
            });
        }
        let crc = crc32(&out[..n]);
        out[n..n + 4].copy_from_slice(&crc.to_le_bytes());
        Ok(&out[..n + 4])
    }
}

/// Refuses (`BadSettings`) a payload whose format version cannot hold its settings or its
/// layers: what [`Wire::format_version`] says the oldest version holding them is, is newer
/// (a version below 1, refused by readers, is laid out as version 1).
fn version_holds<T>(wire: &Wire<'_, T>) -> Result<()> {
    if wire.version.max(FORMAT_VERSION_1) >= wire.format_version() {
        return Ok(());
    }
    let a = &wire.adapt;
    Err(Error::BadSettings {
        what: if wire.version < FORMAT_VERSION_2 && a.head_start != 0 {
            "a head start other than meta needs format version 2"
        } else if a.head_scale != 1.0 {
            "a head scale other than 1 needs format version 3"
        } else {
            "more than 32 layers, or a trainable mask naming a layer from 32 on, need format version 3"
        },
    })
}

/// What a payload holds more of than this build reads, found while decoding it.
enum Overflow {
    /// Nothing (or the payload is malformed otherwise).
    None,
    /// This many layers, more than [`MAX_LAYERS`].
    Layers(usize),
    /// A trainable mask wider than [`LayerMask`] (a lean build's 32 bits).
    Mask,
}

/// Decode a payload into `wire` (whose lists must be empty), each list element pushed
/// straight into its place rather than decoded into a temporary list and moved; returns the
/// bytes after the payload. Accepts exactly what decoding a [`Wire`] with postcard accepts;
/// on an error `overflow` says whether the payload held more than this build reads.
fn decode_into<'a>(
    wire: &mut Wire<'a, RawTensor<'a>>,
    bytes: &'a [u8],
    overflow: &mut Overflow,
) -> core::result::Result<&'a [u8], postcard::Error> {
    let mut de = postcard::Deserializer::from_bytes(bytes);
    WireSeed(wire, overflow).deserialize(&mut de)?;
    de.finalize()
}

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

/// Fills a [`Wire`] in place (see [`decode_into`]), noting what overflows this build.
struct WireSeed<'x, 'a>(&'x mut Wire<'a, RawTensor<'a>>, &'x mut Overflow);

/// The payload's elements in order; `head_start` from version 2 on and `head_scale` from
/// version 3 on (the last of the settings).
const WIRE_FIELDS: [&str; 9] = [
    "magic",
    "version",
    "input_shape",
    "layers",
    "tensors",
    "adapt",
    "head_start",
    "head_scale",
    "provenance",
];

impl<'de: 'a, 'a> DeserializeSeed<'de> for WireSeed<'_, 'a> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> core::result::Result<(), D::Error> {
        d.deserialize_struct("Wire", &WIRE_FIELDS, self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for WireSeed<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an anole payload")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> core::result::Result<(), A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"7 fields");
        let (w, overflow) = (self.0, self.1);
        w.magic = seq.next_element()?.ok_or_else(|| missing(0))?;
        w.version = seq.next_element()?.ok_or_else(|| missing(1))?;
        seq.next_element_seed(Extend(&mut w.input_shape, None))?
            .ok_or_else(|| missing(2))?;
        seq.next_element_seed(Extend(&mut w.layers, Some(overflow)))?
            .ok_or_else(|| missing(3))?;
        seq.next_element_seed(Extend(&mut w.tensors, None))?
            .ok_or_else(|| missing(4))?;
        // Version 2's settings are version 1's followed by the head start, version 3's by the
        // head start and the head scale: postcard frames neither structs nor their fields, so
        // each is read as the next element.
        let a = seq
            .next_element::<crate::wire::AdaptSettingsV1>()?
            .ok_or_else(|| missing(5))?;
        if w.version < FORMAT_VERSION && a.trainable > u64::from(u32::MAX) {
            // Versions 1 and 2 store a u32.
            return Err(de::Error::invalid_value(
                de::Unexpected::Unsigned(a.trainable),
                &"a 32-bit trainable mask",
            ));
        }
        let Some(trainable) = crate::limits::layer_mask(a.trainable) else {
            *overflow = Overflow::Mask;
            return Err(de::Error::invalid_value(
                de::Unexpected::Unsigned(a.trainable),
                &"a trainable mask of this build's layers",
            ));
        };
        w.adapt = AdaptSettings {
            loss: a.loss,
            optimizer: a.optimizer,
            lr: a.lr,
            steps: a.steps,
            batch: a.batch,
            trainable,
            lr_scale: a.lr_scale,
            head_start: 0,
            head_scale: 1.0,
        };
        if w.version >= FORMAT_VERSION_2 {
            w.adapt.head_start = seq.next_element()?.ok_or_else(|| missing(5))?;
        }
        if w.version >= FORMAT_VERSION {
            w.adapt.head_scale = seq.next_element()?.ok_or_else(|| missing(5))?;
        }
        w.provenance = seq.next_element()?.ok_or_else(|| missing(6))?;
        Ok(())
    }
}

/// Appends a decoded sequence to a fixed-capacity list, element by element; a sequence longer
/// than the list's capacity is an error, its length noted in the [`Overflow`] if one is given.
struct Extend<'x, T, const N: usize>(&'x mut HVec<T, N>, Option<&'x mut Overflow>);

impl<'de, T: Deserialize<'de>, const N: usize> DeserializeSeed<'de> for Extend<'_, T, N> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> core::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Extend<'_, T, N> {
    type Value = ();
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "a sequence of at most {N} elements")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> core::result::Result<(), A::Error> {
        // postcard knows a sequence's length before its first element.
        if let (Some(len), Some(overflow)) = (seq.size_hint(), self.1) {
            if len > N {
                *overflow = Overflow::Layers(len);
                return Err(de::Error::invalid_length(len, &"at most MAX_LAYERS layers"));
            }
        }
        while let Some(v) = seq.next_element()? {
            if self.0.push(v).is_err() {
                return Err(de::Error::invalid_length(N + 1, &"a shorter sequence"));
            }
        }
        Ok(())
    }
}

/// Bytes `wire` takes once encoded, CRC included.
pub fn encoded_len<T: Serialize>(wire: &Wire<'_, T>) -> usize {
    postcard::serialize_with_flavor(wire, postcard::ser_flavors::Size::default())
        .unwrap_or(usize::MAX - 4)
        + 4
}

#[cfg(feature = "std")]
extern crate std;

/// Encode any wire payload, CRC appended, into a fresh vector (host convenience).
#[cfg(feature = "std")]
pub fn encode_to_vec<T: Serialize>(wire: &Wire<'_, T>) -> std::vec::Vec<u8> {
    let mut out = std::vec![0u8; encoded_len(wire)];
    let n = Blob::encode_wire(wire, &mut out)
        .map(|b| b.len())
        .unwrap_or(0);
    out.truncate(n);
    out
}
