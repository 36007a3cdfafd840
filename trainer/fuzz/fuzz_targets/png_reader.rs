//! Arbitrary bytes → the image reader of `anole adapt/predict --support DIR --query …` and of
//! the Omniglot loader: `preprocess_png` (decode + 28×28 preprocessing) and `decode_png`. Both
//! must refuse or accept the same inputs, never panic, and agree: the fast path of
//! `preprocess_png` gives the same 28×28 image as `preprocess(decode_png(..))`, grey levels
//! stay in [0, 1], and rotations of the result cycle back to it.
#![no_main]

use anole_trainer::data::images::{self, PIXELS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fast = images::preprocess_png(data);
    let decoded = images::decode_png(data);
    match (fast, decoded) {
        (Ok(pixels), Ok(gray)) => {
            assert!(gray.width > 0 && gray.height > 0);
            assert!(gray.width * gray.height <= images::MAX_PIXELS);
            assert_eq!(gray.values.len(), gray.width * gray.height);
            assert!(
                gray.values.iter().all(|v| (0.0..=1.0).contains(v)),
                "grey level outside [0, 1]"
            );
            assert_eq!(
                images::preprocess(&gray),
                pixels,
                "preprocess_png and preprocess(decode_png) differ"
            );
            let mut input = [0f32; PIXELS];
            images::write_f32(&pixels, &mut input);
            assert!(input.iter().all(|v| (0.0..=1.0).contains(v)));
            let turned = images::rotate(&images::rotate(&pixels, 1), 3);
            assert_eq!(turned, pixels);
        }
        (Err(a), Err(b)) => {
            assert!(!a.to_string().is_empty() && !b.to_string().is_empty());
        }
        (fast, decoded) => panic!(
            "the readers disagree: preprocess_png {:?}, decode_png {:?}",
            fast.err().map(|e| e.to_string()),
            decoded.err().map(|e| e.to_string())
        ),
    }
});
