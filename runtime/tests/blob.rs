//! The blob end to end: blob → learner → export → blob is bit-identical in every dtype, f16
//! and bf16 blobs predict within their precision, and every bad input gets its own error
//! variant with a readable message, never a panic. The minimal build (`--no-default-features`)
//! runs the tests on the sine MLP alone.
#![cfg_attr(
    not(all(
        feature = "conv",
        feature = "norm",
        feature = "cross-entropy",
        feature = "adam"
    )),
    allow(unused_imports, dead_code)
)]

mod common;

use anole::blob::{crc32, RawLayer, RawTensor, FORMAT_VERSION, MAX_LAYERS};
use anole::layers::{conv2d, kind, Window};
use anole::{Blob, DType, Error, HeadStart, Layer, Learner, Options, SampleBuffer, SliceSamples};
use common::*;

fn sine() -> Model {
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
        42,
    )
}

#[cfg(all(
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
fn small_cnn() -> Model {
    let mut m = Model::new(
        &[1, 6, 6],
        vec![
            conv(1, 3, 3, 2, 1),
            norm(3),
            Layer::Relu,
            Layer::Flatten,
            dense(27, 3),
        ],
        CROSS_ENTROPY,
        43,
    );
    m.settings.optimizer = 1;
    m.settings.lr = 0.01;
    m.settings.batch = 6;
    m
}

fn arena_for(blob: &Blob<'_>) -> Vec<f32> {
    vec![
        0.0;
        blob.arena_len(blob.settings().batch as usize)
            .expect("plan")
    ]
}

#[cfg(all(
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
#[test]
fn roundtrip_is_bit_identical_in_every_dtype() {
    for base in [sine(), small_cnn()] {
        for dtype in [DType::F32, DType::F16, DType::Bf16] {
            let mut m = base.clone();
            m.dtype = dtype;
            let bytes = m.encode();
            let blob = Blob::parse(&bytes).unwrap();
            assert!(blob.dtypes.iter().all(|&d| d == dtype));
            let mut arena = arena_for(&blob);
            let mut l = Learner::new(&blob, &mut arena).unwrap();
            assert_eq!(
                exported(&l),
                bytes,
                "{dtype:?}: unadapted export differs from the source blob"
            );

            // Adapt, export, load the export: same parameters and the same predictions, bit
            // for bit, and exporting again gives the same bytes.
            let mut rng = Rng::new(5);
            let (x, t) = random_batch(&m, 6, &mut rng);
            let s = SliceSamples::new(&x, &t, m.input_len(), blob.target_len()).unwrap();
            l.adapt(&s, 3).unwrap();
            let adapted = exported(&l);
            assert_ne!(adapted, bytes);
            let blob2 = Blob::parse(&adapted).unwrap();
            let mut arena2 = arena_for(&blob2);
            let mut l2 = Learner::new(&blob2, &mut arena2).unwrap();
            for (a, b) in l.params().iter().zip(l2.params()) {
                let mut buf = [0u8; 4];
                dtype.put(*a, &mut buf[..dtype.size()]);
                assert_eq!(
                    dtype.get(&buf, 0).to_bits(),
                    b.to_bits(),
                    "{dtype:?}: reloaded parameter"
                );
            }
            assert_eq!(
                exported(&l2),
                adapted,
                "{dtype:?}: export of the reloaded blob"
            );
            if dtype == DType::F32 {
                let (mut y1, mut y2) =
                    (vec![0.0; 6 * m.output_len()], vec![0.0; 6 * m.output_len()]);
                l.predict(&x, &mut y1).unwrap();
                l2.predict(&x, &mut y2).unwrap();
                assert_eq!(y1, y2, "reloaded f32 blob predicts differently");
            }
            // Reset goes back to the meta-initialization exactly.
            l.reset();
            assert_eq!(exported(&l), bytes, "{dtype:?}: export after reset");
        }
    }
}

#[cfg(feature = "std")]
#[test]
fn vec_helpers_match_the_no_std_writers() {
    let m = sine();
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    assert_eq!(blob.to_vec(), bytes);
    let mut arena = arena_for(&blob);
    let l = Learner::new(&blob, &mut arena).unwrap();
    assert_eq!(l.export_vec(), bytes);
}

/// f16 and bf16 blobs predict within their precision: `|y_half - y_f32| <= 1.5 u Σ|∂y/∂w · w|`
/// (the first-order effect of rounding every weight by at most the unit roundoff `u`).
#[test]
fn half_precision_blobs_predict_within_their_precision() {
    let m = sine();
    let f32_bytes = m.encode();
    let blob32 = Blob::parse(&f32_bytes).unwrap();
    let mut arena32 = arena_for(&blob32);
    let mut l32 = Learner::new(&blob32, &mut arena32).unwrap();
    for (dtype, u) in [(DType::F16, 2f64.powi(-11)), (DType::Bf16, 2f64.powi(-8))] {
        let mut mh = m.clone();
        mh.dtype = dtype;
        let bytes = mh.encode();
        assert!(
            bytes.len() < f32_bytes.len() * 6 / 10,
            "{dtype:?} blob is not smaller"
        );
        let blob = Blob::parse(&bytes).unwrap();
        let mut arena = arena_for(&blob);
        let mut lh = Learner::new(&blob, &mut arena).unwrap();
        assert!(
            lh.params() != l32.params(),
            "{dtype:?}: parameters were not rounded"
        );
        let mut worst = 0.0f64;
        let mut worst_ratio = 0.0f64;
        for i in 0..41 {
            let x = [-5.0 + 0.25 * i as f32];
            let (mut y32, mut yh) = ([0.0f32], [0.0f32]);
            l32.predict(&x, &mut y32).unwrap();
            lh.predict(&x, &mut yh).unwrap();
            // MSE on one output with target y - 0.5 has dL/dy = 1, so the gradient is dy/dw.
            l32.gradient(&x, &[y32[0] - 0.5]).unwrap();
            let mut g = vec![0.0f32; l32.params().len()];
            l32.gradient_into(&mut g).unwrap();
            let sens: f64 = g
                .iter()
                .zip(l32.params())
                .map(|(g, w)| (*g as f64 * *w as f64).abs())
                .sum();
            let err = (yh[0] as f64 - y32[0] as f64).abs();
            let bound = 1.5 * u * sens + 1e-5;
            assert!(
                err <= bound,
                "{dtype:?} x={}: |{} - {}| = {err:.3e} > {bound:.3e}",
                x[0],
                yh[0],
                y32[0]
            );
            worst = worst.max(err);
            worst_ratio = worst_ratio.max(err / (u * sens));
        }
        assert!(
            worst > 0.0,
            "{dtype:?}: predictions identical to f32; rounding not exercised"
        );
        println!("{dtype:?}: worst |Δy| {worst:.3e}, worst |Δy| / (u Σ|∂y/∂w·w|) {worst_ratio:.3}");
    }
}

/// Adapted values beyond the f16 range saturate on export, so the exported blob loads.
#[test]
fn export_saturates_to_the_dtype_range() {
    let mut m = Model::new(&[2], vec![dense(2, 1)], MSE, 3);
    m.dtype = DType::F16;
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut arena = arena_for(&blob);
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    l.set_params(&[1.0e6, -2.0e5, 3.0]).unwrap();
    let out = exported(&l);
    let back = Blob::parse(&out).expect("saturated export parses");
    let mut w = [0.0f32; 2];
    back.read_tensor(0, &mut w);
    assert_eq!(w, [65504.0, -65504.0]);
}

/// Name of each error variant; exhaustive, so a new variant must be added to the table.
fn variant(e: &Error) -> &'static str {
    match e {
        Error::Truncated { .. } => "Truncated",
        Error::BadMagic { .. } => "BadMagic",
        Error::UnsupportedVersion { .. } => "UnsupportedVersion",
        Error::CrcMismatch { .. } => "CrcMismatch",
        Error::Malformed { .. } => "Malformed",
        Error::TrailingBytes { .. } => "TrailingBytes",
        Error::UnknownLayer { .. } => "UnknownLayer",
        Error::BadLayerArgs { .. } => "BadLayerArgs",
        Error::ShapeMismatch { .. } => "ShapeMismatch",
        Error::LayerCount { .. } => "LayerCount",
        Error::TensorCount { .. } => "TensorCount",
        Error::TensorSize { .. } => "TensorSize",
        Error::UnknownDType { .. } => "UnknownDType",
        Error::NonFiniteWeight { .. } => "NonFiniteWeight",
        Error::BadLoss { .. } => "BadLoss",
        Error::BadOptimizer { .. } => "BadOptimizer",
        Error::BadHeadStart { .. } => "BadHeadStart",
        Error::BadSettings { .. } => "BadSettings",
        Error::ArenaTooSmall { .. } => "ArenaTooSmall",
        Error::BatchTooLarge { .. } => "BatchTooLarge",
        Error::SampleLength { .. } => "SampleLength",
        Error::NonFiniteSample { .. } => "NonFiniteSample",
        Error::BadLabel { .. } => "BadLabel",
        Error::NoSamples => "NoSamples",
        Error::NonFiniteLoss { .. } => "NonFiniteLoss",
        Error::NonFiniteParameter { .. } => "NonFiniteParameter",
        Error::BufferTooSmall { .. } => "BufferTooSmall",
        Error::ParamCount { .. } => "ParamCount",
        Error::BadTrainableMask { .. } => "BadTrainableMask",
        Error::OptimizerStateLen { .. } => "OptimizerStateLen",
        Error::BadOptimizerState { .. } => "BadOptimizerState",
        Error::NotOptimizerState => "NotOptimizerState",
        Error::UnsupportedChain { .. } => "UnsupportedChain",
        Error::TooLarge { .. } => "TooLarge",
        Error::ArchitectureMismatch => "ArchitectureMismatch",
        Error::NoHead => "NoHead",
        Error::NoBody => "NoBody",
        Error::NotAHead => "NotAHead",
        Error::MissingClass { .. } => "MissingClass",
        Error::BadGeometry { .. } => "BadGeometry",
        // Signed envelopes (feature `sign`) are tested with that feature.
        Error::Unsigned { .. }
        | Error::EnvelopeVersion { .. }
        | Error::EnvelopeLength { .. }
        | Error::EnvelopeMalformed { .. }
        | Error::UnknownKey { .. }
        | Error::BadSignature
        | Error::BadPublicKey => "signature",
    }
}

/// Variants blob parsing, the learner, sub-models, the sample buffer and the convolution kernels'
/// checks produce: every one has a row.
const ALL_VARIANTS: usize = 38;

/// Replace the CRC trailer of `bytes` after editing the payload.
fn recrc(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 4;
    let crc = crc32(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Re-encode a model's blob after changing its raw payload.
fn edited(m: &Model, edit: impl FnOnce(&mut anole::blob::Wire<'_, RawTensor<'_>>)) -> Vec<u8> {
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut w = blob.wire.clone();
    edit(&mut w);
    encode(&w)
}

fn parse_err(bytes: &[u8]) -> Error {
    match Blob::parse(bytes) {
        Ok(_) => panic!("blob of {} bytes parsed but should not", bytes.len()),
        Err(e) => e,
    }
}

struct Table(Vec<(String, &'static str, String)>);

impl Table {
    fn row(&mut self, input: &str, expected: &'static str, r: Result<impl Sized, Error>) {
        let e = match r {
            Ok(_) => panic!("{input}: accepted, expected {expected}"),
            Err(e) => e,
        };
        let msg = e.to_string();
        assert_eq!(variant(&e), expected, "{input}: got {e:?} ({msg})");
        assert!(!msg.trim().is_empty(), "{input}: empty message");
        self.0.push((input.to_string(), expected, msg));
    }
}

/// A shape mismatch of one of the other layer kinds: `UnknownLayer` without the
/// `extra-layers` feature.
const SHAPE_IF_EXTRA: &str = if cfg!(feature = "extra-layers") {
    "ShapeMismatch"
} else {
    "UnknownLayer"
};

/// The error for bad arguments of one of the other layer kinds: without the `extra-layers`
/// feature the kind itself is refused first.
const EXTRA_ARGS: &str = if cfg!(feature = "extra-layers") {
    "BadLayerArgs"
} else {
    "UnknownLayer"
};

#[cfg(all(
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
#[test]
fn every_bad_input_gets_its_own_error() {
    let mut t = Table(Vec::new());
    let m = Model::new(&[3], vec![dense(3, 4), Layer::Tanh, dense(4, 2)], MSE, 9);
    let good = m.encode();
    Blob::parse(&good).expect("the reference blob parses");

    // --- blob bytes ---
    t.row("empty file", "Truncated", Blob::parse(&[]));
    t.row("8 bytes", "Truncated", Blob::parse(&good[..8]));
    t.row(
        "cut in half",
        "Truncated",
        Blob::parse(&good[..good.len() / 2]),
    );
    t.row(
        "last byte missing",
        "Truncated",
        Blob::parse(&good[..good.len() - 1]),
    );
    let mut b = good.clone();
    b[0] = b'X';
    t.row("wrong magic", "BadMagic", Blob::parse(&b));
    let v4 = edited(&m, |w| w.version = FORMAT_VERSION + 1);
    t.row("format version 4", "UnsupportedVersion", Blob::parse(&v4));
    let v0 = edited(&m, |w| w.version = 0);
    t.row("format version 0", "UnsupportedVersion", Blob::parse(&v0));
    let mut b = good.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    t.row("one payload byte flipped", "CrcMismatch", Blob::parse(&b));
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 0x01;
    t.row("CRC byte flipped", "CrcMismatch", Blob::parse(&b));
    let mut b = good.clone();
    let at = b
        .windows(4)
        .position(|w| w == b"test")
        .expect("provenance string");
    b[at] = 0xFF;
    t.row(
        "invalid UTF-8 in provenance (CRC fixed)",
        "Malformed",
        Blob::parse(&recrc(b)),
    );
    let mut b = good[..good.len() - 4].to_vec();
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    t.row(
        "bytes between payload and CRC",
        "TrailingBytes",
        Blob::parse(&recrc(b)),
    );

    // --- architecture ---
    let b = edited(&m, |w| w.layers[1].kind = kind::LAST + 1);
    t.row("layer kind after the last", "UnknownLayer", Blob::parse(&b));
    // Layer 1 is the tanh: made a clip with bad bounds, or a PReLU without channels.
    for (what, lo, hi) in [
        ("clip with min = max", 1.0f32, 1.0f32),
        ("clip with min > max", 6.0, 0.0),
        ("clip with a NaN bound", f32::NAN, 6.0),
        ("clip to [inf, inf]", f32::INFINITY, f32::INFINITY),
    ] {
        let b = edited(&m, |w| {
            w.layers[1].kind = kind::CLIP;
            w.layers[1].args = [lo.to_bits(), hi.to_bits()].into_iter().collect();
        });
        t.row(what, EXTRA_ARGS, Blob::parse(&b));
    }
    let b = edited(&m, |w| {
        w.layers[1].kind = kind::PRELU;
        w.layers[1].args = [0].into_iter().collect();
    });
    t.row("prelu with 0 channels", EXTRA_ARGS, Blob::parse(&b));
    let b = edited(&m, |w| w.layers[0].args.truncate(1));
    t.row(
        "dense layer with one argument",
        "BadLayerArgs",
        Blob::parse(&b),
    );
    let b = edited(&m, |w| w.layers[0].args[1] = 0);
    t.row(
        "dense layer with 0 outputs",
        "BadLayerArgs",
        Blob::parse(&b),
    );
    let cnn = small_cnn();
    let b = edited(&cnn, |w| w.layers[1].args[1] = f32::NAN.to_bits());
    t.row("norm epsilon NaN", "BadLayerArgs", Blob::parse(&b));
    let b = edited(&cnn, |w| w.layers[0].args[3] = 0);
    t.row("conv stride 0", "BadLayerArgs", Blob::parse(&b));
    // The general convolution and pooling, made of the CNN's first layer.
    for (what, groups, stride_dilation) in [
        ("conv groups not dividing the channels", 2, 0x0101_0101),
        ("conv with a zero stride", 1, 0x0101_0001),
    ] {
        let b = edited(&cnn, |w| {
            let out = w.layers[0].args[1];
            w.layers[0].kind = kind::CONV;
            w.layers[0].args = [1, out, groups, 0x0003_0003, stride_dilation, 0x0101_0101]
                .into_iter()
                .collect();
        });
        t.row(what, EXTRA_ARGS, Blob::parse(&b));
    }
    let b = edited(&cnn, |w| {
        w.layers[0].kind = kind::POOL;
        w.layers[0].args = [0, 0x0002_0002, 0x0202, 0x0000_0002].into_iter().collect();
    });
    t.row(
        "pool padding as large as its kernel",
        EXTRA_ARGS,
        Blob::parse(&b),
    );
    // Residual connections: layer 2 of the dense-tanh-dense model made an addition or a
    // branch reading another value.
    for (what, code, from, err) in [
        ("add reading a later value", kind::ADD, 3, EXTRA_ARGS),
        ("branch reading its own input", kind::BRANCH, 2, EXTRA_ARGS),
        (
            "add reading a value a tanh overwrote",
            kind::ADD,
            1,
            EXTRA_ARGS,
        ),
        ("add of values of two shapes", kind::ADD, 0, SHAPE_IF_EXTRA),
    ] {
        let b = edited(&m, |w| {
            w.layers[2].kind = code;
            w.layers[2].args = [from].into_iter().collect();
        });
        t.row(what, err, Blob::parse(&b));
    }
    let b = edited(&m, |w| w.layers[2].args[0] = 5);
    t.row("dense 3→4 then dense 5→2", "ShapeMismatch", Blob::parse(&b));
    let b = edited(&cnn, |w| w.input_shape = [36].into_iter().collect());
    t.row("conv on a flat input", "ShapeMismatch", Blob::parse(&b));
    let b = edited(&cnn, |w| w.layers[0].args[2] = 9);
    t.row(
        "conv kernel larger than the padded image",
        "ShapeMismatch",
        Blob::parse(&b),
    );
    let b = edited(&m, |w| {
        w.layers.clear();
        w.tensors.clear();
    });
    t.row("no layers", "LayerCount", Blob::parse(&b));
    let b = edited(&m, |w| {
        let _ = w.layers.insert(
            2,
            RawLayer {
                kind: kind::TANH,
                args: heapless::Vec::new(),
            },
        );
    });
    t.row(
        "tanh directly after tanh",
        "UnsupportedChain",
        Blob::parse(&b),
    );
    let b = edited(&m, |w| {
        w.input_shape = [1, 16, 16].into_iter().collect();
        w.layers.clear();
        w.tensors.clear();
        let _ = w.layers.push(Layer::to_raw(conv(1, 1 << 20, 16, 1, 0)));
    });
    t.row("conv weight of 2^28 elements", "TooLarge", Blob::parse(&b));
    let b = edited(&m, |w| {
        w.input_shape = [1, 16, 16].into_iter().collect();
        w.layers.clear();
        w.tensors.clear();
        let _ = w.layers.push(Layer::to_raw(conv(1, 1 << 20, 1, 1, 0)));
    });
    t.row("conv output of 2^28 values", "TooLarge", Blob::parse(&b));

    // --- tensors ---
    let b = edited(&m, |w| {
        w.tensors.pop();
    });
    t.row("one tensor missing", "TensorCount", Blob::parse(&b));
    let b = edited(&m, |w| w.tensors[1].data = &w.tensors[1].data[..12]);
    t.row("bias one element short", "TensorSize", Blob::parse(&b));
    let b = edited(&m, |w| w.tensors[2].dtype = 7);
    t.row("dtype code 7", "UnknownDType", Blob::parse(&b));
    let mut nan = m.clone();
    nan.params[5] = f32::NAN;
    t.row("NaN weight", "NonFiniteWeight", Blob::parse(&nan.encode()));
    let mut inf = m.clone();
    inf.params[0] = f32::INFINITY;
    t.row(
        "infinite weight",
        "NonFiniteWeight",
        Blob::parse(&inf.encode()),
    );
    let b = edited(&m, |w| {
        let inf16: &'static [u8] = Box::leak([0x00, 0x7C].repeat(4).into_boxed_slice());
        w.tensors[1] = RawTensor {
            dtype: 1,
            data: inf16,
        };
    });
    t.row("f16 infinity", "NonFiniteWeight", Blob::parse(&b));

    // --- settings ---
    let b = edited(&m, |w| w.adapt.loss = 7);
    t.row("loss code 7", "BadLoss", Blob::parse(&b));
    let one = Model::new(&[3], vec![dense(3, 1)], CROSS_ENTROPY, 1);
    t.row(
        "cross-entropy on one output",
        "BadLoss",
        Blob::parse(&one.encode()),
    );
    let b = edited(&m, |w| w.adapt.optimizer = 9);
    t.row("optimizer code 9", "BadOptimizer", Blob::parse(&b));
    let b = edited(&m, |w| {
        w.version = 2;
        w.adapt.head_start = 2;
    });
    t.row("head start code 2", "BadHeadStart", Blob::parse(&b));
    let b = edited(&m, |w| {
        w.version = 3;
        w.adapt.head_scale = 0.0;
    });
    t.row(
        "head scale 0 (format version 3)",
        "BadSettings",
        Blob::parse(&b),
    );
    let b = edited(&m, |w| w.adapt.batch = 0);
    t.row("recommended batch 0", "BadSettings", Blob::parse(&b));
    let b = edited(&m, |w| w.adapt.lr = f32::NAN);
    t.row("learning rate NaN", "BadSettings", Blob::parse(&b));
    let b = edited(&m, |w| w.adapt.lr = -0.1);
    t.row("negative learning rate", "BadSettings", Blob::parse(&b));
    let b = edited(&m, |w| w.adapt.lr_scale = [1.0, 2.0].into_iter().collect());
    t.row(
        "lr_scale with 2 entries for 4 tensors",
        "BadSettings",
        Blob::parse(&b),
    );
    let b = edited(&m, |w| w.input_shape = [3, 0].into_iter().collect());
    t.row("input shape [3, 0]", "BadSettings", Blob::parse(&b));
    // [c, l] is a 1-D signal, the image [c, 1, l]: a dense first layer does not take it.
    let b = edited(&m, |w| w.input_shape = [3, 1].into_iter().collect());
    t.row(
        "1-D input into a dense layer",
        "ShapeMismatch",
        Blob::parse(&b),
    );
    let b = edited(&m, |w| w.adapt.trainable = 1 << 7);
    t.row(
        "trainable bit for layer 7 of 3",
        "BadTrainableMask",
        Blob::parse(&b),
    );

    // --- learner ---
    let blob = Blob::parse(&good).unwrap();
    let need = blob.arena_len(10).unwrap();
    let mut small = vec![0.0f32; need - 1];
    t.row(
        "arena one f32 short",
        "ArenaTooSmall",
        Learner::new(&blob, &mut small),
    );
    let mut arena = vec![0.0f32; need];
    let opts = Options {
        batch: 0,
        ..Options::from_blob(&blob)
    };
    t.row(
        "batch 0",
        "BadSettings",
        Learner::with_options(&blob, &mut arena, opts),
    );
    let opts = Options {
        trainable: 1 << 9,
        ..Options::from_blob(&blob)
    };
    t.row(
        "trainable bit for layer 9 of 3",
        "BadTrainableMask",
        Learner::with_options(&blob, &mut arena, opts),
    );
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    t.row(
        "learning rate infinite",
        "BadSettings",
        l.set_lr(f32::INFINITY),
    );
    let x = [0.1f32, 0.2, 0.3];
    let mut y = [0.0f32; 2];
    t.row(
        "predict: 4 values for 3-value samples",
        "SampleLength",
        l.predict(&[0.0; 4], &mut [0.0; 2]),
    );
    t.row(
        "predict: output buffer of 1 for 2 outputs",
        "BufferTooSmall",
        l.predict(&x, &mut y[..1]),
    );
    t.row(
        "predict: NaN input",
        "NonFiniteSample",
        l.predict(&[0.1, f32::NAN, 0.3], &mut y),
    );
    t.row(
        "predict: infinite input",
        "NonFiniteSample",
        l.predict(&[f32::INFINITY, 0.0, 0.3], &mut y),
    );
    let xs: Vec<f32> = (0..30).map(|i| i as f32 * 0.01).collect();
    let ts: Vec<f32> = (0..20).map(|i| i as f32 * 0.01).collect();
    let wide = SliceSamples::new(&xs, &ts, 3, 2).unwrap();
    l.adapt(&wide, 1).expect("valid samples adapt");
    let long_rows = SliceSamples::new(&xs[..20], &ts, 2, 2).unwrap();
    t.row(
        "adapt: samples of 2 values for a 3-input model",
        "SampleLength",
        l.adapt(&long_rows, 1),
    );
    let mut ts_inf = ts.clone();
    ts_inf[3] = f32::INFINITY;
    let bad_target = SliceSamples::new(&xs, &ts_inf, 3, 2).unwrap();
    t.row(
        "adapt: infinite target",
        "NonFiniteSample",
        l.adapt(&bad_target, 1),
    );
    t.row("adapt: no samples", "NoSamples", l.adapt(&empty(), 1));
    t.row("loss: no samples", "NoSamples", l.loss(&empty()));
    let xs11: Vec<f32> = (0..33).map(|i| i as f32 * 0.01).collect();
    let ts11: Vec<f32> = (0..22).map(|i| i as f32 * 0.01).collect();
    t.row(
        "step: 11 samples at batch 10",
        "BatchTooLarge",
        l.step(&xs11, &ts11, 0.1),
    );
    t.row(
        "step: 3 targets for 1 sample of 2 outputs",
        "SampleLength",
        l.step(&x, &[0.0; 3], 0.1),
    );
    t.row("gradient: no samples", "NoSamples", l.gradient(&[], &[]));
    let mut short = vec![0u8; l.export_len() - 1];
    t.row(
        "export into a buffer one byte short",
        "BufferTooSmall",
        l.export(&mut short),
    );
    t.row(
        "set_params: 5 values for 26 parameters",
        "ParamCount",
        l.set_params(&[0.0; 5]),
    );
    t.row(
        "gradient_into: 27 values for 26",
        "ParamCount",
        l.gradient_into(&mut [0.0; 27]),
    );
    let mut nan_params = l.params().to_vec();
    nan_params[20] = f32::NAN;
    t.row(
        "set_params: NaN in tensor 2",
        "NonFiniteWeight",
        l.set_params(&nan_params),
    );
    t.row(
        "set_optimizer_state: 1 value for SGD's none",
        "OptimizerStateLen",
        l.set_optimizer_state(1, &[0.5]),
    );
    let mut adam_model = Model::new(&[3], vec![dense(3, 2)], MSE, 9);
    adam_model.settings.optimizer = 1;
    let adam_bytes = adam_model.encode();
    let adam_blob = Blob::parse(&adam_bytes).unwrap();
    let mut adam_arena = arena_for(&adam_blob);
    let mut la = Learner::new(&adam_blob, &mut adam_arena).unwrap();
    let mut bad_state = la.optimizer_state().1.to_vec();
    bad_state[3] = -1.0;
    t.row(
        "set_optimizer_state: negative second moment",
        "BadOptimizerState",
        la.set_optimizer_state(1, &bad_state),
    );
    t.row(
        "load_optimizer_state_from: a parameter blob",
        "NotOptimizerState",
        la.load_optimizer_state_from(&adam_blob),
    );
    let other = Model::new(&[3], vec![dense(3, 5), Layer::Tanh, dense(5, 2)], MSE, 9).encode();
    let other = Blob::parse(&other).unwrap();
    t.row(
        "load_params_from: blob of another architecture",
        "ArchitectureMismatch",
        l.load_params_from(&other),
    );
    let mut huge = l.params().to_vec();
    huge.iter_mut().for_each(|p| *p *= 1e25);
    l.set_params(&huge).unwrap();
    t.row(
        "step with weights ×1e25 (loss overflows)",
        "NonFiniteLoss",
        l.step(&x, &[0.0, 0.0], 0.1),
    );
    l.reset();
    t.row(
        "step at learning rate 1e38",
        "NonFiniteParameter",
        l.step(&x, &[5.0, -5.0], 1e38),
    );

    // --- classification labels ---
    let ce = Model::new(&[2], vec![dense(2, 3)], CROSS_ENTROPY, 2);
    let ce_bytes = ce.encode();
    let ce_blob = Blob::parse(&ce_bytes).unwrap();
    let mut ce_arena = arena_for(&ce_blob);
    let mut lc = Learner::new(&ce_blob, &mut ce_arena).unwrap();
    for (what, label) in [
        ("label 3 of 3 classes", 3.0f32),
        ("label -1", -1.0),
        ("label 1.5", 1.5),
    ] {
        t.row(what, "BadLabel", lc.step(&[0.1, 0.2], &[label], 0.1));
    }

    // --- sub-models ---
    let no_params = Model::new(&[3], vec![Layer::Relu], MSE, 1).encode();
    let no_params = Blob::parse(&no_params).unwrap();
    let mut part = Blob::empty();
    t.row(
        "head of a model without parameters",
        "NoHead",
        anole::submodel::head_into(&no_params, &mut part),
    );
    t.row(
        "body of a model whose first layer is its head",
        "NoBody",
        anole::submodel::body_into(&ce_blob, &mut part),
    );

    // --- sample buffer ---
    let mut buf: SampleBuffer<4, 3, 2> = SampleBuffer::new();
    t.row(
        "buffer: input of 2 values for 3",
        "SampleLength",
        buf.push(&[0.0; 2], &[0.0; 2]),
    );
    t.row(
        "buffer: NaN target",
        "NonFiniteSample",
        buf.push(&[0.0; 3], &[f32::NAN, 0.0]),
    );
    t.row(
        "slices: 7 values for 3-value rows",
        "SampleLength",
        SliceSamples::new(&[0.0; 7], &[0.0; 4], 3, 2),
    );

    // --- convolution sizes given to the kernels directly ---
    let conv = conv2d::Geometry {
        cin: 16,
        h: 4,
        w: 4,
        cout: 16,
        oh: 4,
        ow: 4,
        win: Window {
            kernel: 3,
            stride: 1,
            padding: 1,
        },
    };
    t.row(
        "conv2d geometry: 2^60 + 16 input channels",
        "BadGeometry",
        conv2d::Geometry {
            cin: (1 << 60) + 16,
            ..conv
        }
        .check(),
    );
    t.row(
        "conv2d geometry: 5 × 5 output for 4 × 4 by 3×3, padding 1",
        "BadGeometry",
        conv2d::Geometry {
            oh: 5,
            ow: 5,
            ..conv
        }
        .check(),
    );

    let mut seen: Vec<&str> = t.0.iter().map(|r| r.1).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), ALL_VARIANTS, "variants covered: {seen:?}");
    println!("| bad input | error | message |\n|---|---|---|");
    for (input, v, msg) in &t.0 {
        println!("| {input} | `{v}` | {msg} |");
    }
}

fn empty() -> SliceSamples<'static> {
    SliceSamples::new(&[], &[], 3, 2).unwrap()
}

/// Every truncation and every single-byte corruption of a blob is refused with an error (a
/// CRC-32 detects every single-byte error); none panics.
#[cfg(all(
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
#[test]
fn every_truncation_and_byte_flip_is_refused() {
    let good = small_cnn().encode();
    let mut counts = std::collections::BTreeMap::new();
    for len in 0..good.len() {
        let e = parse_err(&good[..len]);
        assert_eq!(variant(&e), "Truncated", "cut to {len} bytes: {e}");
    }
    for pos in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut b = good.clone();
            b[pos] ^= mask;
            let e = parse_err(&b);
            let v = variant(&e);
            assert!(
                matches!(
                    v,
                    "BadMagic" | "UnsupportedVersion" | "CrcMismatch" | "Truncated"
                ),
                "byte {pos} ^ {mask:#x}: {e}"
            );
            *counts.entry(v).or_insert(0usize) += 1;
        }
    }
    println!(
        "{} truncations, {} flips: {counts:?}",
        good.len(),
        3 * good.len()
    );
}

#[test]
fn a_blob_edited_in_place_is_validated_again() {
    let bytes = sine().encode();
    let whole = Blob::parse(&bytes).unwrap();
    // The first two layers as a model of their own, assembled in place.
    let mut part = whole.clone();
    part.wire.layers.truncate(2);
    part.wire.tensors.truncate(2);
    part.wire.adapt.trainable = 0b1;
    part.wire.adapt.lr_scale.clear();
    part.validate_in_place().unwrap();
    assert_eq!(part.layers.len(), 2);
    assert_eq!(part.output_len(), 64);
    assert_eq!(part.param_count(), 128);
    // A tensor list that no longer matches the layers is refused and leaves the blob empty.
    let mut bad = whole.clone();
    bad.wire.tensors.truncate(1);
    assert!(bad.validate_in_place().is_err());
    assert!(bad.layers.is_empty() && bad.wire.layers.is_empty());
}

/// The runtime's own f16 decoding (used for every weight a frozen f16 layer reads from flash)
/// equals the `half` crate's bit for bit, for every one of the 65,536 bit patterns: zeros,
/// subnormals, normals, infinities and NaN payloads.
#[test]
fn f16_decoding_matches_half_for_every_bit_pattern() {
    for h in 0..=u16::MAX {
        let ours = anole::blob::f16_to_f32(h).to_bits();
        let theirs = half::f16::from_bits(h).to_f32().to_bits();
        assert_eq!(ours, theirs, "f16 bits {h:#06x}");
    }
}

/// Format version 2 adds the head start after `lr_scale`: a version-1 blob reads as meta and is
/// written back byte for byte; a version-2 blob is the version-1 bytes with the version byte 2
/// and the head start's code inserted before the provenance; a version-1 wire cannot carry a
/// head start other than meta.
#[cfg(all(
    feature = "conv",
    feature = "norm",
    feature = "cross-entropy",
    feature = "adam"
))]
#[test]
fn format_version_2_carries_the_head_start() {
    let m = Model::new(
        &[3],
        vec![dense(3, 4), Layer::Relu, dense(4, 2)],
        CROSS_ENTROPY,
        4,
    );
    let v1 = m.encode();
    assert_eq!(
        v1[4], 1,
        "writers write version 1 when nothing needs version 2"
    );
    let blob = Blob::parse(&v1).unwrap();
    assert_eq!(blob.head_start, HeadStart::Meta);
    assert_eq!(blob.wire.adapt.head_start, 0);
    assert_eq!(encode(&blob.wire), v1);
    let mut arena = vec![0.0; blob.arena_len(blob.settings().batch as usize).unwrap()];
    assert_eq!(exported(&Learner::new(&blob, &mut arena).unwrap()), v1);

    let mut w = blob.wire.clone();
    w.adapt.head_start = HeadStart::Prototypes as u8;
    assert_eq!(w.adapt.format_version(), 2);
    refused_by_its_version(&w, "a head start other than meta needs format version 2");
    w.version = w.adapt.format_version();
    let v2 = encode(&w);
    let parsed = Blob::parse(&v2).unwrap();
    assert_eq!(parsed.head_start, HeadStart::Prototypes);
    assert_eq!(parsed.wire.version, 2);
    assert_eq!(encode(&parsed.wire), v2);
    let mut arena = vec![0.0; parsed.arena_len(parsed.settings().batch as usize).unwrap()];
    assert_eq!(exported(&Learner::new(&parsed, &mut arena).unwrap()), v2);
    // The layout: the provenance starts with the length of "test".
    let at = v1.windows(5).position(|x| x == b"\x04test").unwrap();
    assert_eq!(v2.len(), v1.len() + 1);
    assert_eq!(v2[4], 2);
    assert_eq!(v2[5..at], v1[5..at]);
    assert_eq!(v2[at], 1, "the head start code");
    assert_eq!(v2[at + 1..v2.len() - 4], v1[at..v1.len() - 4]);

    // A version-2 blob whose head starts from the blob's parameters is read as such and
    // written back as it came.
    w.adapt.head_start = 0;
    let v2_meta = encode(&w);
    let parsed = Blob::parse(&v2_meta).unwrap();
    assert_eq!(
        (parsed.wire.version, parsed.head_start),
        (2, HeadStart::Meta)
    );
    assert_eq!(encode(&parsed.wire), v2_meta);
    // A version-1 blob's bytes relabelled version 2 lack the head start: refused, not guessed.
    let mut relabelled = v1.clone();
    relabelled[4] = 2;
    assert!(Blob::parse(&recrc(relabelled)).is_err());
}

/// `w`'s version cannot hold its settings: neither written nor validated, for the reason `what`.
fn refused_by_its_version(w: &anole::blob::Wire<'_, RawTensor<'_>>, what: &'static str) {
    let mut out = vec![0u8; anole::blob::encoded_len(w) + 16];
    let refused = Err(Error::BadSettings { what });
    assert_eq!(Blob::encode_wire(w, &mut out).map(|b| b.len()), refused);
    assert_eq!(
        Blob::validate(w.clone()).map(|_| ()),
        refused.map(|_: usize| ())
    );
}

/// A learner's export, as bytes.
fn exported(l: &Learner<'_, '_>) -> Vec<u8> {
    let mut out = vec![0u8; l.export_len()];
    l.export(&mut out).unwrap().to_vec()
}

/// Format version 3 adds the head scale after the head start and stores the trainable mask as a
/// `u64`: a blob that needs neither keeps its older version byte for byte; a version-3 blob is
/// the version-2 bytes with the version byte 3 and the scale's 4 bytes before the provenance;
/// an older version cannot carry a scale other than 1; a runtime that reads versions 1 and 2
/// (the check before this one) refuses it.
#[cfg(feature = "cross-entropy")]
#[test]
fn format_version_3_carries_the_head_scale() {
    let mut m = Model::new(
        &[3],
        vec![dense(3, 4), Layer::Relu, dense(4, 2)],
        CROSS_ENTROPY,
        4,
    );
    m.settings.head_start = HeadStart::Prototypes as u8;
    let v2 = m.encode();
    assert_eq!(v2[4], 2, "a prototype start at scale 1 stays version 2");
    let blob = Blob::parse(&v2).unwrap();
    assert_eq!(blob.settings().head_scale, 1.0);
    assert_eq!(encode(&blob.wire), v2);

    let mut w = blob.wire.clone();
    w.adapt.head_scale = 0.25;
    assert_eq!((w.adapt.format_version(), w.format_version()), (3, 3));
    refused_by_its_version(&w, "a head scale other than 1 needs format version 3");
    w.version = w.format_version();
    let v3 = encode(&w);
    let parsed = Blob::parse(&v3).unwrap();
    assert_eq!(
        (parsed.wire.version, parsed.head_start),
        (3, HeadStart::Prototypes)
    );
    assert_eq!(parsed.settings().head_scale, 0.25);
    assert_eq!(encode(&parsed.wire), v3, "round trip");
    let mut arena = vec![0.0; parsed.arena_len(parsed.settings().batch as usize).unwrap()];
    let l = Learner::new(&parsed, &mut arena).unwrap();
    assert_eq!(l.head_scale(), 0.25);
    assert_eq!(exported(&l), v3, "a learner's export keeps the version");
    // The layout: the provenance starts with the length of "test".
    let at = v2.windows(5).position(|x| x == b"\x04test").unwrap();
    assert_eq!(v3.len(), v2.len() + 4);
    assert_eq!(v3[4], 3);
    assert_eq!(v3[5..at], v2[5..at]);
    assert_eq!(v3[at..at + 4], 0.25f32.to_le_bytes(), "the head scale");
    assert_eq!(v3[at + 4..v3.len() - 4], v2[at..v2.len() - 4]);

    // What a runtime that reads versions 1 and 2 checks first: the version after the magic.
    let older = |b: &[u8]| (1..=2).contains(&b[4]);
    assert!(older(&v2) && !older(&v3));
    // A version-2 blob's bytes relabelled version 3 lack the scale: refused, not guessed.
    let mut relabelled = v2.clone();
    relabelled[4] = 3;
    assert!(Blob::parse(&recrc(relabelled)).is_err());
    // A scale that is not a finite number > 0 is refused.
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let mut w = parsed.wire.clone();
        w.adapt.head_scale = bad;
        assert!(
            matches!(Blob::validate(w), Err(Error::BadSettings { .. })),
            "{bad}"
        );
    }
}

/// Postcard bytes of a `u64` varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A version-3 blob written byte by byte (a lean build's lists cannot hold it): input `[2]`,
/// `pairs` times Dense 2→2 then ReLU, MSE, SGD, the trainable mask `mask`.
fn deep_blob(pairs: usize, version: u8, mask: u64) -> Vec<u8> {
    let mut b = b"ANOL".to_vec();
    b.extend([version, 1, 2]);
    varint(&mut b, 2 * pairs as u64);
    for _ in 0..pairs {
        b.extend([kind::DENSE, 2, 2, 2, kind::RELU, 0]);
    }
    varint(&mut b, 2 * pairs as u64);
    for _ in 0..pairs {
        b.extend([0, 16]);
        [0.9f32, 0.1, 0.1, 0.9]
            .iter()
            .for_each(|v| b.extend(v.to_le_bytes()));
        b.extend([0, 8]);
        [0.01f32, -0.01]
            .iter()
            .for_each(|v| b.extend(v.to_le_bytes()));
    }
    b.extend([0, 0]); // MSE, SGD
    b.extend(0.01f32.to_le_bytes());
    b.extend([3, 1]); // steps, batch
    varint(&mut b, mask);
    b.push(0); // lr_scale: empty
    if version >= 2 {
        b.push(0); // head start: meta
    }
    if version >= 3 {
        b.extend(1.0f32.to_le_bytes());
    }
    b.extend(b"\x04test\x04deep\x00\x00");
    let crc = crc32(&b);
    b.extend(crc.to_le_bytes());
    b
}

/// A lean build (32 layers) refuses a 40-layer model with `LayerCount`, and a mask naming a
/// layer from 32 on with `BadTrainableMask` (its mask shown as the 32 bits it holds, all set).
#[cfg(not(feature = "extra-layers"))]
#[test]
fn forty_layers_are_refused_by_a_lean_build() {
    assert_eq!(MAX_LAYERS, 32);
    let bytes = deep_blob(20, 3, (1 << 40) - 1);
    assert_eq!(
        Blob::parse(&bytes).err(),
        Some(Error::LayerCount { count: 40 })
    );
    let wide = deep_blob(15, 3, 1 << 35);
    assert_eq!(
        Blob::parse(&wide).err(),
        Some(Error::BadTrainableMask { mask: u32::MAX })
    );
    assert!(Blob::parse(&deep_blob(16, 3, u64::from(u32::MAX))).is_ok());
}

/// A 40-layer model (format version 3): read, adapted and written back by a build with
/// `extra-layers` (64 layers). Versions 1 and 2 hold at most 32 layers and a 32-bit mask.
#[cfg(feature = "extra-layers")]
#[test]
fn forty_layers_need_extra_layers_and_version_3() {
    assert_eq!(MAX_LAYERS, 64);
    let all = (1u64 << 40) - 1;
    let bytes = deep_blob(20, 3, all);
    let blob = Blob::parse(&bytes).unwrap();
    assert_eq!((blob.layers.len(), blob.wire.version), (40, 3));
    assert_eq!(blob.settings().trainable, all);
    assert_eq!(blob.wire.format_version(), 3);
    assert_eq!(encode(&blob.wire), bytes, "the writer's bytes");
    let mut arena = arena_for(&blob);
    let mut l = Learner::new(&blob, &mut arena).unwrap();
    let (x, y) = ([0.5f32, -0.25], [0.3f32, 0.1]);
    let s = SliceSamples::new(&x, &y, 2, 2).unwrap();
    let before = l.params().to_vec();
    let r = l.adapt(&s, 3).unwrap();
    assert!(r.last_loss < r.first_loss, "{r:?}");
    assert_ne!(l.params(), &before[..], "the first layers adapt too");
    assert_eq!(exported(&l)[4], 3);
    // The last dense layer alone (bit 38) adapts.
    let head = anole::Plan::new(&blob, 1, 1 << 38).unwrap();
    assert_eq!(head.trainable, 1 << 38);
    // A 40-layer model whose mask fits 32 bits needs version 3 too: version 2 cannot hold it.
    let v2 = deep_blob(20, 2, 1);
    assert_eq!(
        Blob::parse(&v2).err(),
        Some(Error::BadSettings {
            what: "more than 32 layers, or a trainable mask naming a layer from 32 on, need format version 3"
        })
    );
    let mut w = blob.wire.clone();
    w.adapt.trainable = 1;
    assert_eq!((w.adapt.format_version(), w.format_version()), (1, 3));
    // Bits at or above the layer count are refused.
    let beyond = deep_blob(20, 3, 1 << 40);
    assert_eq!(
        Blob::parse(&beyond).err(),
        Some(Error::BadTrainableMask { mask: 1 << 40 })
    );
    // 64 layers hold; 65 do not.
    assert!(Blob::parse(&deep_blob(32, 3, u64::MAX)).is_ok());
    assert_eq!(
        Blob::parse(&deep_blob(33, 3, 1)).err(),
        Some(Error::LayerCount { count: 66 })
    );
}
