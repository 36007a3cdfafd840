//! Sub-models ([`anole::submodel`]): a blob's body and head, each a blob of its own borrowing
//! the source's tensors, compute the whole model's outputs, and head-only adaptation on the
//! body's features is a whole-model learner with only the head adapting, bit for bit.

mod common;

use anole::submodel::{body_into, head_into, head_layer};
use anole::{Blob, DType, Error, Layer, Learner, Mode, Options, Shape, SliceSamples};
use common::*;

/// The test CNN with a two-layer head end (dense, ReLU, dense): the head is the last dense
/// layer alone.
fn cnn_with_hidden() -> Model {
    let mut m = Model::new(
        &[1, 8, 8],
        vec![
            conv(1, 4, 3, 2, 1),
            norm(4),
            Layer::Relu,
            maxpool(2, 2),
            Layer::Flatten,
            dense(16, 7),
            Layer::Relu,
            dense(7, 3),
        ],
        CROSS_ENTROPY,
        8,
    );
    m.settings.batch = 5;
    m
}

/// A sine-style MLP whose head (the last dense layer) is followed by tanh.
fn mlp_tanh_head() -> Model {
    let mut m = Model::new(
        &[3],
        vec![dense(3, 8), Layer::Tanh, dense(8, 2), Layer::Tanh],
        MSE,
        3,
    );
    m.settings.batch = 4;
    m
}

/// Every test model, in f32 and f16, with SGD and Adam, and per-tensor learning-rate scales.
fn models() -> Vec<Model> {
    let mut out = Vec::new();
    for base in [small_cnn(2, 6), cnn_with_hidden(), mlp_tanh_head()] {
        for (dtype, optimizer) in [(DType::F32, 0), (DType::F16, 1)] {
            let mut m = base.clone();
            m.dtype = dtype;
            m.settings.optimizer = optimizer;
            let tensors = m.tensor_lens().len();
            m.settings.lr_scale = (0..tensors).map(|t| 0.5 + 0.25 * t as f32).collect();
            out.push(m);
        }
    }
    out
}

fn parts<'a>(whole: &Blob<'a>) -> (Blob<'a>, Blob<'a>) {
    let (mut body, mut head) = (Blob::empty(), Blob::empty());
    body_into(whole, &mut body).unwrap();
    head_into(whole, &mut head).unwrap();
    (body, head)
}

/// `n` outputs of a learner over `blob` with `opts` in `mode`.
fn predict(blob: &Blob<'_>, opts: Options, mode: Mode, x: &[f32]) -> Vec<f32> {
    let mut arena = vec![
        0.0;
        anole::Plan::with_mode(blob, opts.batch, opts.trainable, mode)
            .unwrap()
            .arena_len()
    ];
    let mut l = Learner::with_mode(blob, &mut arena, opts, mode).unwrap();
    let mut y = vec![0.0; x.len() / blob.input_len() * blob.output_len()];
    l.predict(x, &mut y).unwrap();
    y
}

#[test]
fn body_then_head_is_the_whole_model() {
    for m in models() {
        let bytes = m.encode();
        let whole = Blob::parse(&bytes).unwrap();
        let (body, head) = parts(&whole);
        assert_eq!(body.output_shape(), head.input_shape());
        let (x, _) = random_batch(&m, 7, &mut Rng::new(5));
        for mode in [Mode::Buffered, Mode::Device] {
            let expected = predict(&whole, Options::from_blob(&whole), mode, &x);
            let features = predict(&body, Options::from_blob(&body), mode, &x);
            let got = predict(&head, Options::from_blob(&head), mode, &features);
            assert_eq!(got, expected, "{:?} {mode:?}", m.layers);
        }
    }
}

/// A whole-model learner with only the head adapting, and a head learner adapting on the
/// body's features with the same options: the same head parameters, optimizer state and
/// outputs, bit for bit.
#[test]
fn head_only_adaptation_on_features_is_the_masked_whole_model() {
    for m in models() {
        let bytes = m.encode();
        let whole = Blob::parse(&bytes).unwrap();
        let (body, head) = parts(&whole);
        let h = head_layer(&whole).unwrap();
        let mut rng = Rng::new(11);
        let (x, y) = random_batch(&m, 9, &mut rng);
        let (q, _) = random_batch(&m, 4, &mut rng);
        let opts = Options {
            trainable: 1 << h,
            ..Options::from_blob(&whole)
        };
        let mut arena = vec![0.0; whole.arena_len(opts.batch).unwrap()];
        let mut full = Learner::with_options(&whole, &mut arena, opts).unwrap();
        let tl = whole.target_len();
        full.adapt(&SliceSamples::new(&x, &y, m.input_len(), tl).unwrap(), 6)
            .unwrap();

        let features = predict(&body, Options::from_blob(&body), Mode::Buffered, &x);
        let hopts = Options {
            trainable: head.settings().trainable,
            ..opts
        };
        assert_eq!(hopts.trainable.count_ones() as usize, head.layers.len());
        let mut harena = vec![0.0; head.arena_len(hopts.batch).unwrap()];
        let mut hl = Learner::with_options(&head, &mut harena, hopts).unwrap();
        let fs = SliceSamples::new(&features, &y, head.input_len(), tl).unwrap();
        hl.adapt(&fs, 6).unwrap();

        let np = full.params().len();
        assert_eq!(hl.params(), &full.params()[np - hl.params().len()..]);
        assert_eq!(hl.optimizer_state(), full.optimizer_state());
        let qf = predict(&body, Options::from_blob(&body), Mode::Buffered, &q);
        let mut got = vec![0.0; 4 * whole.output_len()];
        hl.predict(&qf, &mut got).unwrap();
        let mut expected = vec![0.0; 4 * whole.output_len()];
        full.predict(&q, &mut expected).unwrap();
        assert_eq!(got, expected);
        hl.reset();
        assert_ne!(hl.params(), &full.params()[np - hl.params().len()..]);
    }
}

/// The parts' layers, tensors (the source's bytes, not copies), shapes and settings.
#[test]
fn parts_borrow_the_source_and_carry_its_settings() {
    let m = &models()[3]; // cnn_with_hidden, f16, Adam, scaled learning rates
    let bytes = m.encode();
    let whole = Blob::parse(&bytes).unwrap();
    let (body, head) = parts(&whole);
    let h = head_layer(&whole).unwrap();
    assert_eq!(h, 7);
    assert_eq!(&body.layers[..], &whole.layers[..h]);
    assert_eq!(&head.layers[..], &whole.layers[h..]);
    assert_eq!(body.input_shape(), whole.input_shape());
    assert_eq!(head.input_shape(), Shape::Flat(7));
    assert_eq!(head.output_shape(), whole.output_shape());
    let tensors = whole.wire.tensors.iter();
    let parts = body.wire.tensors.iter().chain(head.wire.tensors.iter());
    assert_eq!(tensors.len(), parts.clone().count());
    for (a, b) in tensors.zip(parts) {
        assert_eq!(a.data.as_ptr(), b.data.as_ptr());
        assert_eq!((a.dtype, a.data.len()), (b.dtype, b.data.len()));
    }
    assert_eq!(
        body.dtypes.iter().chain(&head.dtypes).count(),
        whole.dtypes.len()
    );
    for part in [&body, &head] {
        assert_eq!(part.provenance(), whole.provenance());
        assert_eq!(part.wire.version, whole.wire.version);
        assert_eq!(part.optimizer, whole.optimizer);
    }
    let (b, s) = (body.settings(), whole.settings());
    assert_eq!((b.trainable, b.batch, b.steps, b.lr), (0, 1, 0, 0.0));
    assert!(b.lr_scale.is_empty());
    let hs = head.settings();
    assert_eq!(
        (hs.loss, hs.lr, hs.steps, hs.batch),
        (s.loss, s.lr, s.steps, s.batch)
    );
    assert_eq!(hs.trainable, 1);
    assert_eq!(&hs.lr_scale[..], &s.lr_scale[s.lr_scale.len() - 2..]);
}

#[test]
fn models_without_a_body_or_a_head() {
    // No layer with parameters.
    let m = Model::new(&[4], vec![Layer::Relu, Layer::Tanh], MSE, 1);
    let bytes = m.encode();
    let whole = Blob::parse(&bytes).unwrap();
    let mut out = Blob::empty();
    assert_eq!(head_layer(&whole), Err(Error::NoHead));
    assert_eq!(body_into(&whole, &mut out), Err(Error::NoHead));
    assert_eq!(head_into(&whole, &mut out), Err(Error::NoHead));
    assert!(out.layers.is_empty());

    // The first layer is the only one with parameters: no body, the head is the whole model.
    let m = Model::new(&[8], vec![dense(8, 2), Layer::Tanh], MSE, 2);
    let bytes = m.encode();
    let whole = Blob::parse(&bytes).unwrap();
    assert_eq!(head_layer(&whole), Ok(0));
    let mut body = Blob::empty();
    assert_eq!(body_into(&whole, &mut body), Err(Error::NoBody));
    assert!(body.layers.is_empty());
    let mut head = Blob::empty();
    head_into(&whole, &mut head).unwrap();
    assert_eq!(head.wire, whole.wire);
    assert_eq!(
        Error::NoBody.to_string(),
        "the model's only layer with parameters is its first: no body before the head"
    );
}

/// A head whose input could not be a blob's input (a dimension above `MAX_DIM`) is refused
/// with the validation error, and the output blob is left empty.
#[test]
fn a_head_that_is_not_a_valid_blob_is_refused() {
    let wide = anole::limits::MAX_DIM as u32;
    let m = Model::new(
        &[1, 1, wide],
        vec![conv(1, 1, 1, 1, 2), conv(1, 1, 1, 1, 0)],
        MSE,
        4,
    );
    let bytes = m.encode();
    let whole = Blob::parse(&bytes).unwrap();
    let mut head = Blob::empty();
    assert!(matches!(
        head_into(&whole, &mut head),
        Err(Error::BadSettings { .. })
    ));
    assert!(head.layers.is_empty() && head.wire.layers.is_empty());
    let mut body = Blob::empty();
    body_into(&whole, &mut body).unwrap();
    assert_eq!(body.output_shape(), Shape::Chw(1, 5, wide as usize + 4));
}
