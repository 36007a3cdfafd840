//! A check of the convolution kernels on the device itself: `anole::layers::conv2d::forward`
//! as the runtime built it for this target (on Arm, 3 × 3 stride-2 padding-1 layers run
//! register-blocked, in FPU assembly on hard-float Cortex-M) against a plain scalar loop with
//! the same additions in the same order, bit for bit, forward and backward (input, weight and
//! bias gradients), on the shapes of [`CONV_SHAPES`]:
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

/// f32 one shape needs: weights, bias, a NaN, the inputs and a NaN image, the output
/// gradients and a NaN image, and twice (kernel and scalar loop) the outputs, the input
/// gradients, the weight gradients and the bias gradients, each with its guards.
const fn need(s: (usize, usize, usize, usize, usize)) -> usize {
    let (cin, cout, h, w, n) = s;
    let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    let (wl, xl, yl) = (cout * cin * 9, cin * h * w, cout * oh * ow);
    wl + cout
        + 1
        + (n + 1) * xl
        + (n + 1) * yl
        + 2 * ((n * yl + PAD) + (n * xl + PAD) + (wl + PAD) + (cout + PAD))
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
    /// The kernel's result differs from the scalar loop's at value `index` of `what` (or a
    /// guard past the values changed: `index` at or past their count).
    Mismatch {
        /// The outputs, the input gradient, the weight gradient or the bias gradient.
        what: &'static str,
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
                what,
                shape: (cin, cout, h, w, n),
                index,
            } => write!(
                f,
                "conv2d: {what} differs from the scalar loop's at value {index} ({cin} -> {cout} \
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
    let (xl, yl, wl) = (n * cin * h * w, n * cout * g.oh * g.ow, cout * cin * 9);
    let (wt, rest) = scratch.split_at_mut(wl);
    let (bias, rest) = rest.split_at_mut(cout);
    let (x, rest) = rest.split_at_mut(1 + xl + cin * h * w);
    let (gy, rest) = rest.split_at_mut(yl + yl / n);
    let outs = [
        (yl, "the output"),
        (xl, "the input gradient"),
        (wl, "the weight gradient"),
        (cout, "the bias gradient"),
    ]
    .map(|(len, what)| (len + PAD, what));
    let mut bufs: [[&mut [f32]; 2]; 4] = Default::default();
    let mut rest = rest;
    for (pair, &(len, _)) in bufs.iter_mut().zip(&outs) {
        for b in pair.iter_mut() {
            let (head, tail) = core::mem::take(&mut rest).split_at_mut(len);
            head.fill(GUARD);
            *b = head;
            rest = tail;
        }
    }
    fill(3 * seed + 1, wt);
    fill(3 * seed + 2, bias);
    bias[0] = -0.0;
    fill(3 * seed + 3, x);
    fill(5 * seed + 4, gy);
    for v in [&mut x[..], &mut gy[..]] {
        for (k, v) in v.iter_mut().enumerate() {
            if k % 7 == 3 {
                *v = 0.0;
            } else if k % 7 == 5 {
                *v = -0.0;
            }
        }
    }
    x[0] = f32::NAN;
    x[1 + xl..].fill(f32::NAN);
    gy[yl..].fill(f32::NAN);
    let (x, gy) = (&x[1..1 + xl], &gy[..yl]);
    let [[y, want], [gx, gx_want], [dw, dw_want], [db, db_want]] = bufs;
    scalar(&g, wt, bias, x, want, n);
    conv2d::forward(&g, wt, bias, x, y, n);
    scalar_grads(&g, wt, x, gy, gx_want, dw_want, db_want, n);
    let (dwl, dbl) = (dw.len() - PAD, db.len() - PAD);
    let pg = Some((&mut dw[..dwl], &mut db[..dbl]));
    conv2d::backward(&g, wt, x, gy, pg, Some(&mut gx[..xl]), n);
    let pairs = [
        (&*y, &*want),
        (&*gx, &*gx_want),
        (&*dw, &*dw_want),
        (&*db, &*db_want),
    ];
    for ((got, want), &(_, what)) in pairs.into_iter().zip(&outs) {
        if let Some(index) = got.iter().zip(want.iter()).position(|(a, b)| !same(*a, *b)) {
            return Err(ConvCheckError::Mismatch { what, shape, index });
        }
    }
    Ok(())
}

/// The input, weight and bias gradients one value at a time: each input gradient from `+0.0`
/// over the output channels, kernel rows and columns in increasing order; each weight's sum
/// from `+0.0` over the output positions in row-major order, per sample, added onto `+0.0`;
/// each bias's per-sample sum of its output gradients, likewise.
#[allow(clippy::too_many_arguments)]
fn scalar_grads(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    gx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    n: usize,
) {
    let (pi, po) = (g.h * g.w, g.oh * g.ow);
    // The output index that kernel offset `k` brings to input index `i` along an axis of
    // `outs` outputs, if any.
    let under = |i: usize, k: usize, outs: usize| {
        (i + 1)
            .checked_sub(k)
            .filter(|d| d % 2 == 0)
            .map(|d| d / 2)
            .filter(|&o| o < outs)
    };
    for s in 0..n {
        for ci in 0..g.cin {
            for iy in 0..g.h {
                for ix in 0..g.w {
                    let mut acc = 0.0f32;
                    for co in 0..g.cout {
                        for ky in 0..3 {
                            let Some(oy) = under(iy, ky, g.oh) else {
                                continue;
                            };
                            for kx in 0..3 {
                                let Some(ox) = under(ix, kx, g.ow) else {
                                    continue;
                                };
                                let wv = wt[((co * g.cin + ci) * 3 + ky) * 3 + kx];
                                acc += wv * gy[(s * g.cout + co) * po + oy * g.ow + ox];
                            }
                        }
                    }
                    gx[(s * g.cin + ci) * pi + iy * g.w + ix] = acc;
                }
            }
        }
    }
    dw[..g.cout * g.cin * 9].fill(0.0);
    db[..g.cout].fill(0.0);
    for s in 0..n {
        for co in 0..g.cout {
            let gc = &gy[(s * g.cout + co) * po..][..po];
            db[co] += gc.iter().sum::<f32>();
            for ci in 0..g.cin {
                let xc = &x[(s * g.cin + ci) * pi..][..pi];
                for t in 0..9 {
                    let (ky, kx) = (t / 3, t % 3);
                    let mut acc = 0.0f32;
                    for oy in 0..g.oh {
                        let Some(iy) = (2 * oy + ky).checked_sub(1).filter(|&i| i < g.h) else {
                            continue;
                        };
                        for ox in 0..g.ow {
                            let Some(ix) = (2 * ox + kx).checked_sub(1).filter(|&i| i < g.w) else {
                                continue;
                            };
                            acc += gc[oy * g.ow + ox] * xc[iy * g.w + ix];
                        }
                    }
                    dw[(co * g.cin + ci) * 9 + t] += acc;
                }
            }
        }
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

/// Shapes [`conv_costs`] times, `(input channels, output channels, height, width)`: the
/// Omniglot body's 3 × 3 stride-2 layers on 14 × 14, 7 × 7 and 4 × 4 inputs, with 4 output
/// channels (and 16 input channels on 14 × 14), so that one sample's buffers fit the scratch.
pub const COST_SHAPES: [(usize, usize, usize, usize); 3] =
    [(16, 4, 14, 14), (64, 4, 7, 7), (64, 4, 4, 4)];

/// The cost of one shape of [`COST_SHAPES`], in the clock's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvCost {
    /// Input channels, output channels, height, width.
    pub shape: (usize, usize, usize, usize),
    /// Multiply-accumulates of one pass (`cout · cin · 9 · oh · ow`, padding included).
    pub macs: usize,
    /// The forward pass.
    pub forward: u64,
    /// The input gradient.
    pub input_grad: u64,
    /// The weight and bias gradients.
    pub weight_grad: u64,
}

/// f32 of scratch [`conv_costs`] needs.
pub const COST_SCRATCH_LEN: usize = {
    let mut most = 0;
    let mut i = 0;
    while i < COST_SHAPES.len() {
        let (cin, cout, h, w) = COST_SHAPES[i];
        let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let n = 2 * (cout * cin * 9 + cin * h * w + cout * oh * ow + cout);
        if n > most {
            most = n;
        }
        i += 1;
    }
    most
};

/// Time `conv2d::forward` and `conv2d::backward` (input gradient alone, then weight and bias
/// gradients alone) on one sample of each shape of [`COST_SHAPES`], in `scratch` (at least
/// [`COST_SCRATCH_LEN`] f32; `None` if shorter).
pub fn conv_costs(
    scratch: &mut [f32],
    clock: &mut impl crate::Clock,
) -> Option<[ConvCost; COST_SHAPES.len()]> {
    let scratch = scratch.get_mut(..COST_SCRATCH_LEN)?;
    let mut costs = [ConvCost {
        shape: (0, 0, 0, 0),
        macs: 0,
        forward: 0,
        input_grad: 0,
        weight_grad: 0,
    }; COST_SHAPES.len()];
    for (cost, &(cin, cout, h, w)) in costs.iter_mut().zip(&COST_SHAPES) {
        let g = Geometry {
            cin,
            h,
            w,
            cout,
            oh: (h - 1) / 2 + 1,
            ow: (w - 1) / 2 + 1,
            win: Window {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
        };
        let (wl, xl, yl) = (cout * cin * 9, cin * h * w, cout * g.oh * g.ow);
        let (wt, rest) = scratch.split_at_mut(wl);
        let (dw, rest) = rest.split_at_mut(wl);
        let (x, rest) = rest.split_at_mut(xl);
        let (gx, rest) = rest.split_at_mut(xl);
        let (y, rest) = rest.split_at_mut(yl);
        let (gy, rest) = rest.split_at_mut(yl);
        let (db, rest) = rest.split_at_mut(cout);
        let bias = &mut rest[..cout];
        fill(11, wt);
        fill(12, x);
        fill(13, gy);
        fill(14, bias);
        let t0 = clock.now();
        conv2d::forward(&g, wt, bias, x, y, 1);
        let t1 = clock.now();
        conv2d::backward(&g, wt, x, gy, None, Some(gx), 1);
        let t2 = clock.now();
        conv2d::backward(&g, wt, x, gy, Some((dw, db)), None, 1);
        let t3 = clock.now();
        *cost = ConvCost {
            shape: (cin, cout, h, w),
            macs: wl * g.oh * g.ow,
            forward: t1 - t0,
            input_grad: t2 - t1,
            weight_grad: t3 - t2,
        };
    }
    Some(costs)
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
