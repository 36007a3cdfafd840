//! Arbitrary bytes as a CSV file → the reader of `anole adapt` / `anole predict`: the table, the
//! support set and the query rows of a regression model (2 inputs, 1 target) and of a 3-class
//! classifier (2 inputs, a `label` column), then the predictions writer. Nothing may panic;
//! every error is one line that names the file; whatever is accepted has the right shape,
//! finite values and labels of existing classes.
#![no_main]

use anole::blob::{encode_to_vec, AdaptSettings, Provenance, Wire, FORMAT_VERSION_1, MAGIC};
use anole::{Blob, DType, Layer, LossKind, TensorValues};
use anole_trainer::csvio::{self, OutputFormat};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

/// A one-layer dense model `inputs → outputs` (loss 0: MSE, 1: cross-entropy).
fn dense(inputs: usize, outputs: usize, loss: u8) -> Vec<u8> {
    let w: Vec<f32> = (0..inputs * outputs)
        .map(|k| 0.1 * k as f32 - 0.2)
        .collect();
    let b: Vec<f32> = vec![0.05; outputs];
    let mut tensors = heapless::Vec::new();
    for values in [&w[..], &b[..]] {
        let _ = tensors.push(TensorValues {
            dtype: DType::F32,
            values,
        });
    }
    let wire = Wire {
        magic: MAGIC,
        version: FORMAT_VERSION_1,
        input_shape: [inputs as u32].into_iter().collect(),
        layers: [Layer::Dense { inputs, outputs }.to_raw()]
            .into_iter()
            .collect(),
        tensors,
        adapt: AdaptSettings {
            loss,
            optimizer: 0,
            lr: 0.01,
            steps: 5,
            batch: 4,
            trainable: 1,
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
    encode_to_vec(&wire)
}

fn models() -> &'static [Vec<u8>; 2] {
    static MODELS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    MODELS.get_or_init(|| [dense(2, 1, 0), dense(2, 3, 1)])
}

const FILE: &str = "fuzz.csv";

/// An error of the readers: one line, naming the file.
fn check_error(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with("fuzz.csv: "),
        "error does not name the file: {msg:?}"
    );
    assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "error of several lines: {msg:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new(FILE);
    let table = match csvio::parse_table(data, path) {
        Ok(t) => t,
        Err(e) => return check_error(&e),
    };
    for row in &table.rows {
        assert_eq!(row.1.len(), table.header.len(), "ragged row accepted");
    }
    for bytes in models() {
        let blob = Blob::parse(bytes).expect("the fuzzed models parse");
        let (il, tl, classes) = (blob.input_len(), blob.target_len(), blob.output_len());
        let support = csvio::support_from_table(path, table.clone(), &blob);
        match &support {
            Ok(s) => {
                assert!(s.len > 0);
                assert_eq!(s.inputs.len(), s.len * il);
                assert_eq!(s.targets.len(), s.len * tl);
                assert!(s.inputs.iter().chain(&s.targets).all(|v| v.is_finite()));
                if blob.loss == LossKind::CrossEntropy {
                    assert!(s
                        .targets
                        .iter()
                        .all(|&t| t >= 0.0 && t.fract() == 0.0 && (t as usize) < classes));
                }
            }
            Err(e) => check_error(e),
        }
        let expected = support.as_ref().ok().map(|s| s.input_names.clone());
        for names in [None, expected.as_deref()] {
            match csvio::query_from_table(path, table.clone(), &blob, names) {
                Ok(q) => {
                    assert_eq!(q.inputs.len(), q.len * il);
                    assert!(q.inputs.iter().all(|v| v.is_finite()));
                    let outputs: Vec<f32> = (0..q.len * classes).map(|k| k as f32 * 0.5).collect();
                    let fmt = OutputFormat {
                        target_names: support.as_ref().ok().map(|s| s.target_names.clone()),
                        scores: true,
                    };
                    let mut out = Vec::new();
                    csvio::write_predictions(&mut out, &blob, &q, &outputs, &fmt)
                        .expect("predictions are written");
                    assert!(std::str::from_utf8(&out).is_ok());
                }
                Err(e) => check_error(&e),
            }
        }
    }
});
