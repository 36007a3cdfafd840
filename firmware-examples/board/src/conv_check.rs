//! A check of the convolution kernels on the device itself: `anole::layers::conv2d::forward`
//! as the runtime built it for this target (on Arm, 3 × 3 stride-2 padding-1 layers run
//! register-blocked, in FPU assembly on hard-float Cortex-M) against a plain scalar loop with
//! the same additions in the same order, bit for bit, on the shapes of [`CONV_SHAPES`]:
//! every width of the kernels' column blocks with and without padding on either side, one and
//! two input rows under the first and last output rows, input channel counts past the weight
//! buffer's, output channel counts with a partial block, and batches of two.
//!
//! Inputs hold zeros of both signs; the values before the first image and after the batch are
//! NaN, so a kernel reading outside its images spoils its result, and guard values after the
//! outputs must survive, so a kernel writing past them is caught. The values live in scratch
//! memory the firmware lends.

use crate::kernel_check::{fill, same};
use anole::layers::conv2d::{self, Geometry};
use anole::layers::Window;

/// Shapes checked: `(input channels, output channels, height, width, samples)`.
pub const CONV_SHAPES: [(usize, usize, usize, usize, usize); 12] = [
    (1, 4, 28, 28, 1),
    (1, 4, 14, 13, 2),
    (2, 8, 7, 7, 1),
    (3, 5, 4, 4, 2),
    (2, 4, 2, 2, 1),
    (1, 6, 1, 1, 2),
    (1, 4, 2, 3, 1),
    (2, 4, 5, 9, 1),
    (33, 4, 3, 6, 1),
    (70, 4, 2, 2, 1),
    (2, 4, 14, 14, 1),
    (4, 7, 8, 5, 2),
];

/// Guard values after the outputs.
const PAD: usize = 4;
/// What the guards hold.
const GUARD: f32 = 1234.5;

/// f32 one shape needs: weights, bias, a NaN, the inputs and a NaN image, and two outputs
/// with their guards.
const fn need(s: (usize, usize, usize, usize, usize)) -> usize {
    let (cin, cout, h, w, n) = s;
    let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    cout * cin * 9 + cout + 1 + (n + 1) * cin * h * w + 2 * (n * cout * oh * ow + PAD)
}

/// f32 of scratch [`conv_kernel_check`] needs.
pub const CONV_SCRATCH_LEN: usize = {
    let mut most = 0;
    let mut i = 0;
    while i < CONV_SHAPES.len() {
        let n = need(CONV_SHAPES[i]);
        if n > most {
            most = n;
        }
        i += 1;
    }
    most
};

/// Why the convolution check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConvCheckError {
    /// The scratch slice is shorter than [`CONV_SCRATCH_LEN`].
    ScratchTooSmall {
        /// f32 needed.
        needed: usize,
        /// f32 given.
        available: usize,
    },
    /// The kernel's result differs from the scalar loop's at output `index` (or a guard past
    /// the outputs changed: `index` at or past their count).
    Mismatch {
        /// Input channels, output channels, height, width, samples.
        shape: (usize, usize, usize, usize, usize),
        /// The first output that differs.
        index: usize,
    },
}

impl core::fmt::Display for ConvCheckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConvCheckError::ScratchTooSmall { needed, available } => write!(
                f,
                "the convolution check needs {needed} f32 of scratch, {available} given"
            ),
            ConvCheckError::Mismatch {
                shape: (cin, cout, h, w, n),
                index,
            } => write!(
                f,
                "conv2d forward differs from the scalar loop at output {index} ({cin} -> {cout} \
                 channels, {h} x {w}, {n} samples)"
            ),
        }
    }
}

/// Check every shape of [`CONV_SHAPES`] in `scratch` (at least [`CONV_SCRATCH_LEN`] f32).
pub fn conv_kernel_check(scratch: &mut [f32]) -> Result<(), ConvCheckError> {
    let available = scratch.len();
    let Some(scratch) = scratch.get_mut(..CONV_SCRATCH_LEN) else {
        return Err(ConvCheckError::ScratchTooSmall {
            needed: CONV_SCRATCH_LEN,
            available,
        });
    };
    for (i, &shape) in CONV_SHAPES.iter().enumerate() {
        check_shape(scratch, shape, i as u32)?;
    }
    Ok(())
}

fn check_shape(
    scratch: &mut [f32],
    shape: (usize, usize, usize, usize, usize),
    seed: u32,
) -> Result<(), ConvCheckError> {
    let (cin, cout, h, w, n) = shape;
    let win = Window {
        kernel: 3,
        stride: 2,
        padding: 1,
    };
    let g = Geometry {
        cin,
        h,
        w,
        cout,
        oh: (h - 1) / 2 + 1,
        ow: (w - 1) / 2 + 1,
        win,
    };
    let (xl, yl) = (n * cin * h * w, n * cout * g.oh * g.ow);
    let (wt, rest) = scratch.split_at_mut(cout * cin * 9);
    let (bias, rest) = rest.split_at_mut(cout);
    let (x, rest) = rest.split_at_mut(1 + xl + cin * h * w);
    let (y, rest) = rest.split_at_mut(yl + PAD);
    let want = &mut rest[..yl + PAD];
    fill(3 * seed + 1, wt);
    fill(3 * seed + 2, bias);
    bias[0] = -0.0;
    fill(3 * seed + 3, x);
    for (k, v) in x.iter_mut().enumerate() {
        if k % 7 == 3 {
            *v = 0.0;
        } else if k % 7 == 5 {
            *v = -0.0;
        }
    }
    x[0] = f32::NAN;
    x[1 + xl..].fill(f32::NAN);
    let x = &x[1..1 + xl];
    y.fill(GUARD);
    want.fill(GUARD);
    scalar(&g, wt, bias, x, want, n);
    conv2d::forward(&g, wt, bias, x, y, n);
    match y.iter().zip(want.iter()).position(|(a, b)| !same(*a, *b)) {
        None => Ok(()),
        Some(index) => Err(ConvCheckError::Mismatch { shape, index }),
    }
}

/// The forward pass one output at a time: from the bias, `w · x` for every input channel,
/// kernel row and column in increasing order, taps on the padding skipped.
fn scalar(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    let (pi, po) = (g.h * g.w, g.oh * g.ow);
    for s in 0..n {
        for co in 0..g.cout {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = bias[co];
                    for ci in 0..g.cin {
                        for ky in 0..3 {
                            let Some(iy) = (2 * oy + ky).checked_sub(1).filter(|&i| i < g.h) else {
                                continue;
                            };
                            for kx in 0..3 {
                                let Some(ix) = (2 * ox + kx).checked_sub(1).filter(|&i| i < g.w)
                                else {
                                    continue;
                                };
                                let wv = wt[((co * g.cin + ci) * 3 + ky) * 3 + kx];
                                acc += wv * x[(s * g.cin + ci) * pi + iy * g.w + ix];
                            }
                        }
                    }
                    y[(s * g.cout + co) * po + oy * g.ow + ox] = acc;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec;

    #[test]
    fn the_kernels_match_the_scalar_loop_on_the_host() {
        assert_eq!(conv_kernel_check(&mut vec![0.0; CONV_SCRATCH_LEN]), Ok(()));
    }

    #[test]
    fn a_short_scratch_is_refused() {
        assert_eq!(
            conv_kernel_check(&mut vec![0.0; CONV_SCRATCH_LEN - 1]),
            Err(ConvCheckError::ScratchTooSmall {
                needed: CONV_SCRATCH_LEN,
                available: CONV_SCRATCH_LEN - 1
            })
        );
    }
}
