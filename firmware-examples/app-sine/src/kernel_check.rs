//! A check of the dense kernels on the device itself: the kernels the runtime built for this
//! target (hand-written FPU assembly on hard-float Cortex-M, Rust elsewhere) against plain
//! scalar loops with the same additions in the same order, bit for bit, including the fused
//! SGD update's stop at a non-finite value. Run by the firmware before the demo, in its own
//! stack frame of about 2 KB.

use anole::layers::dense;

const INPUTS: usize = 12;
const OUTPUTS: usize = 8;
/// One 5-sample block and one left over.
const N: usize = 6;

/// Deterministic values in [-0.5, 0.5).
fn fill(seed: u32, v: &mut [f32]) {
    let mut s = seed;
    for x in v {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *x = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
    }
}

/// Checks forward, input gradient and the fused SGD update of a 12 → 8 layer on 6 samples
/// (several 4 × 4 blocks, a 5-sample block and a single sample), then the update's stop at a
/// non-finite weight. `Err` names the first mismatch.
#[inline(never)] // its own frame, released before the demo runs
pub fn kernel_check() -> Result<(), &'static str> {
    let mut w = [0.0f32; OUTPUTS * INPUTS];
    let mut bias = [0.0f32; OUTPUTS];
    let mut x = [0.0f32; N * INPUTS];
    let mut g = [0.0f32; N * OUTPUTS];
    fill(1, &mut w);
    fill(2, &mut bias);
    fill(3, &mut x);
    fill(4, &mut g);
    let (lr_w, lr_b) = (0.03f32, 0.02f32);
    // The scalar references, each sum in order from 0.
    let out = |b: usize, o: usize| {
        let mut acc = 0.0f32;
        for i in 0..INPUTS {
            acc += w[o * INPUTS + i] * x[b * INPUTS + i];
        }
        bias[o] + acc
    };
    let grad_in = |b: usize, i: usize| {
        let mut acc = 0.0f32;
        for o in 0..OUTPUTS {
            acc += g[b * OUTPUTS + o] * w[o * INPUTS + i];
        }
        acc
    };
    let updated = |w: &[f32], o: usize, i: usize| {
        let mut acc = 0.0f32;
        for b in 0..N {
            acc += g[b * OUTPUTS + o] * x[b * INPUTS + i];
        }
        w[o * INPUTS + i] - lr_w * acc
    };
    let updated_bias = |o: usize| {
        let mut acc = 0.0f32;
        for b in 0..N {
            acc += g[b * OUTPUTS + o];
        }
        bias[o] - lr_b * acc
    };
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits();

    let mut y = [0.0f32; N * OUTPUTS];
    dense::forward(INPUTS, OUTPUTS, &w, &bias, &x, &mut y, N);
    for b in 0..N {
        for o in 0..OUTPUTS {
            if !same(y[b * OUTPUTS + o], out(b, o)) {
                return Err("dense forward differs from the scalar sums");
            }
        }
    }

    let (mut w1, mut b1) = (w, bias);
    let mut gx = [0.0f32; N * INPUTS];
    let ok = dense::backward_sgd(
        INPUTS,
        OUTPUTS,
        &mut w1,
        &mut b1,
        &x,
        &g,
        Some(&mut gx),
        N,
        lr_w,
        lr_b,
    );
    for b in 0..N {
        for i in 0..INPUTS {
            if !same(gx[b * INPUTS + i], grad_in(b, i)) {
                return Err("dense input gradient differs from the scalar sums");
            }
        }
    }
    if !ok {
        return Err("fused SGD update refused finite values");
    }
    for o in 0..OUTPUTS {
        for i in 0..INPUTS {
            if !same(w1[o * INPUTS + i], updated(&w, o, i)) {
                return Err("fused SGD update of a weight differs from the scalar update");
            }
        }
        if !same(b1[o], updated_bias(o)) {
            return Err("fused SGD update of a bias differs from the scalar update");
        }
    }

    // A NaN weight at row 6, column 5: the update stops at the row block holding it. The
    // runtime's blocks are 4 rows × `CHUNK` columns (8 on x86-64, 4 elsewhere), walked band
    // by band, column block by column block, rows in order, then the band's leftover columns
    // one at a time: everything before the failing row block is written, the rest of the
    // weights and all the biases are unchanged.
    const CHUNK: usize = if cfg!(target_arch = "x86_64") { 8 } else { 4 };
    const BAD: (usize, usize) = (6, 5);
    let full_cols = INPUTS - INPUTS % CHUNK;
    // The same weight and bias buffers again (the check keeps its stack small).
    w1 = w;
    w1[BAD.0 * INPUTS + BAD.1] = f32::NAN;
    b1 = bias;
    if dense::backward_sgd(
        INPUTS, OUTPUTS, &mut w1, &mut b1, &x, &g, None, N, lr_w, lr_b,
    ) {
        return Err("fused SGD update accepted a NaN weight");
    }
    let band = BAD.0 / 4;
    for o in 0..OUTPUTS {
        for i in 0..INPUTS {
            let written = o / 4 < band
                || (o / 4 == band
                    && i < full_cols
                    && (i / CHUNK < BAD.1 / CHUNK || (i / CHUNK == BAD.1 / CHUNK && o < BAD.0)));
            // Written values never involve the NaN (its row block is not written).
            let want = if written {
                updated(&w, o, i)
            } else if (o, i) == BAD {
                f32::NAN
            } else {
                w[o * INPUTS + i]
            };
            if !same(w1[o * INPUTS + i], want) {
                return Err("fused SGD update did not stop at the non-finite weight's block");
            }
        }
        if !same(b1[o], bias[o]) {
            return Err("fused SGD update changed a bias after a non-finite weight");
        }
    }
    Ok(())
}
