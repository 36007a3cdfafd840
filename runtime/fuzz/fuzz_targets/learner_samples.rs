//! A fixed valid model fed arbitrary samples, labels, step counts and learning rates:
//! `adapt`, `step`, `gradient`, `predict`, `loss`, the sample buffer and export must never
//! panic, the parameters must stay finite whatever happens, and the export must parse.
//!
//! Input layout: byte 0 picks the model (bit 0: MLP regression or CNN classification) and
//! the optimizer (bit 1); byte 1 the step count (0..=15); bytes 2..6 the learning rate as
//! f32 bits; byte 6 the batch (1..=8); byte 7 the trainable-layer mask; the rest is read as
//! little-endian f32 values: inputs then targets, sample after sample.
#![no_main]

use anole::blob::{AdaptSettings, Provenance, Wire, FORMAT_VERSION_1, MAGIC};
use anole::layers::Window;
use anole::{
    Blob, Layer, Learner, Options, SampleBuffer, Samples, Shape, SliceSamples, TensorValues,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn encode(input: &[u32], layers: &[Layer], loss: u8, optimizer: u8) -> Vec<u8> {
    let mut shape = Shape::from_dims(input).expect("input shape");
    let mut lens = Vec::new();
    for l in layers {
        for k in 0..l.tensor_count() {
            lens.push(l.tensor_len(shape, k));
        }
        shape = l.output_shape(shape).expect("layers chain");
    }
    let params: Vec<f32> = (0..lens.iter().sum::<usize>())
        .map(|i| 0.5 * ((i as f32) * 0.7).sin() + 0.05)
        .collect();
    let mut tensors = heapless::Vec::new();
    let mut off = 0;
    for len in lens {
        let _ = tensors.push(TensorValues {
            dtype: anole::DType::F32,
            values: &params[off..off + len],
        });
        off += len;
    }
    let wire = Wire {
        magic: MAGIC,
        version: FORMAT_VERSION_1,
        input_shape: input.iter().copied().collect(),
        layers: layers.iter().map(|l| l.to_raw()).collect(),
        tensors,
        adapt: AdaptSettings {
            loss,
            optimizer,
            lr: 0.01,
            steps: 5,
            batch: 4,
            trainable: anole::LayerMask::MAX >> (anole::LayerMask::BITS as usize - layers.len()),
            head_start: 0,
            head_scale: 1.0,
            lr_scale: heapless::Vec::new(),
        },
        provenance: Provenance {
            algorithm: "fuzz",
            task: "fuzz",
            seed: 0,
            meta_iterations: 0,
        },
    };
    anole::blob::encode_to_vec(&wire)
}

fn models() -> &'static [Vec<u8>; 4] {
    static MODELS: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    MODELS.get_or_init(|| {
        let mlp = [
            Layer::Dense {
                inputs: 3,
                outputs: 5,
            },
            Layer::Tanh,
            Layer::Dense {
                inputs: 5,
                outputs: 2,
            },
        ];
        let w = |kernel, stride, padding| Window {
            kernel,
            stride,
            padding,
        };
        let cnn = [
            Layer::Conv2d {
                in_channels: 1,
                out_channels: 2,
                window: w(3, 1, 1),
            },
            Layer::Norm {
                channels: 2,
                eps: 1e-3,
            },
            Layer::Relu,
            Layer::MaxPool2d { window: w(2, 2, 0) },
            Layer::Flatten,
            Layer::Dense {
                inputs: 8,
                outputs: 3,
            },
        ];
        [
            encode(&[3], &mlp, 0, 0),
            encode(&[1, 4, 4], &cnn, 1, 0),
            encode(&[3], &mlp, 0, 1),
            encode(&[1, 4, 4], &cnn, 1, 1),
        ]
    })
}

fn all_finite(l: &Learner<'_, '_>) -> bool {
    l.params().iter().all(|v| v.is_finite())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let bytes = &models()[(data[0] & 3) as usize];
    let blob = Blob::parse(bytes).expect("fixed model parses");
    let steps = (data[1] & 15) as u32;
    let lr = f32::from_le_bytes([data[2], data[3], data[4], data[5]]);
    let batch = 1 + (data[6] & 7) as usize;
    let trainable = anole::LayerMask::from(data[7])
        & (anole::LayerMask::MAX >> (anole::LayerMask::BITS as usize - blob.layers.len()));
    let values: Vec<f32> = data[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (il, tl, ol) = (blob.input_len(), blob.target_len(), blob.output_len());
    let n = values.len() / (il + tl);
    let (inputs, targets) = values[..n * (il + tl)].split_at(n * il);

    let mut arena = vec![
        0.0f32;
        anole::Plan::new(&blob, batch, trainable)
            .expect("plan")
            .arena_len()
    ];
    let opts = Options {
        batch,
        trainable,
        lr,
    };
    let mut l = match Learner::with_options(&blob, &mut arena, opts) {
        Ok(l) => l,
        Err(_) => {
            assert!(!(lr.is_finite() && lr >= 0.0), "valid options refused");
            return;
        }
    };
    let samples = SliceSamples::new(inputs, targets, il, tl).expect("whole rows");
    let _ = l.adapt(&samples, steps);
    assert!(all_finite(&l), "non-finite parameter after adapt");
    let _ = l.loss(&samples);
    let m = n.min(batch);
    let _ = l.step(&inputs[..m * il], &targets[..m * tl], lr.abs());
    assert!(all_finite(&l), "non-finite parameter after step");
    if l.gradient(&inputs[..m * il], &targets[..m * tl]).is_ok() {
        let mut g = vec![0.0f32; l.params().len()];
        l.gradient_into(&mut g).expect("gradient length");
    }
    // Arbitrary rows, possibly ragged: predict refuses or fills exactly n × outputs.
    let mut y = vec![0.0f32; (values.len() / il) * ol];
    let _ = l.predict(&values, &mut y);
    let _ = l.predict(&values[..n * il], &mut y[..n * ol]);
    if let Some(x) = values.get(..il) {
        let _ = l.classify(x);
    }
    // The device's buffer takes the same rows (ring of 4, replacing the oldest).
    let mut buf: SampleBuffer<4, 3, 2> = SampleBuffer::new();
    for row in values.chunks(5) {
        let (x, t) = row.split_at(row.len().min(3));
        let before = buf.len();
        if buf.push(x, t).is_err() {
            assert_eq!(buf.len(), before);
        }
    }
    if il == 3 && tl == 2 && !buf.is_empty() {
        let _ = l.adapt(&buf, steps);
        assert!(all_finite(&l));
    }
    // Whatever happened, the learner's state exports to a blob that loads.
    Blob::parse(&l.export_vec()).expect("export of the adapted learner parses");
});
