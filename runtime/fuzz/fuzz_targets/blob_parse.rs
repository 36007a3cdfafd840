//! Arbitrary bytes → `Blob::parse`, as given and with the CRC trailer recomputed. A blob
//! that parses must also load into a small arena (or be refused as too large), predict, and
//! export into a blob that parses again and exports to the same bytes.
#![no_main]

use anole::blob::crc32;
use anole::{Blob, Learner, Options, Plan};
use libfuzzer_sys::fuzz_target;

/// Arena of the fuzzed learner (f32); larger models must be refused with `ArenaTooSmall`.
const ARENA: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Mutations almost never keep the CRC valid; with the trailer recomputed the same bytes
    // also reach the postcard decoder, the validation and the learner.
    if data.len() >= 9 {
        let mut fixed = data.to_vec();
        let n = fixed.len() - 4;
        let crc = crc32(&fixed[..n]);
        fixed[n..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let Ok(blob) = Blob::parse(data) else {
        return;
    };
    // Everything a parsed blob reports is usable.
    let (il, ol) = (blob.input_len(), blob.output_len());
    assert!(il > 0 && ol > 0);
    let _ = (
        blob.param_count(),
        blob.target_len(),
        blob.settings(),
        blob.provenance(),
    );
    let batch = (blob.settings().batch as usize).clamp(1, 4);
    let mut arena = vec![0.0f32; ARENA];
    for trainable in [blob.settings().trainable, 0, anole::LayerMask::MAX] {
        let opts = Options {
            batch,
            trainable,
            lr: blob.settings().lr,
        };
        let mut learner = match Learner::with_options(&blob, &mut arena, opts) {
            Ok(l) => l,
            Err(_) => {
                // Refused: the plan must say why (too big, or a mask naming missing layers).
                if let Ok(p) = Plan::new(&blob, batch, trainable) {
                    assert!(
                        p.arena_len() > ARENA,
                        "learner refused a blob whose plan fits"
                    );
                }
                continue;
            }
        };
        let x: Vec<f32> = (0..2 * il).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
        let mut y = vec![0.0f32; 2 * ol];
        learner
            .predict(&x, &mut y)
            .expect("predict on a loaded blob");
        let mut out = vec![0u8; learner.export_len()];
        let exported = learner
            .export(&mut out)
            .expect("export into export_len bytes")
            .to_vec();
        let again = Blob::parse(&exported).expect("an exported blob parses");
        assert_eq!(again.to_vec(), exported, "export is not stable");
    }
}
