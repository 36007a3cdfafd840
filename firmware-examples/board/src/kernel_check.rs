//! A check of the dense kernels on the device itself: the kernels the runtime built for this
//! target (hand-written FPU assembly on hard-float Cortex-M, Rust elsewhere) against plain
//! scalar loops with the same additions in the same order, bit for bit, on many shapes.
//!
//! Every pass an adaptation step runs through a dense layer is checked: the forward pass, the
//! weight, bias and input gradients, and the fused SGD update, on every combination of
//! [`INPUTS`], [`OUTPUTS`] and [`SAMPLES`]: odd and even sizes, the smallest ones, sizes on and
//! around the kernels' blocks (4 rows or columns, 5 samples), an empty batch, and rows that
//! leave the blocks' strides uneven. Sample rows past the batch hold NaN, so a kernel reading
//! past its rows spoils its result, and guard values past every output must survive, so a
//! kernel writing past its rows is caught. On one shape the fused update is run once per weight
//! and per bias with that value made NaN: it must stop at the block holding it, every block
//! before it written and everything after it unchanged.
//!
//! The values live in a scratch slice the firmware lends (its arena, before the demo uses it),
//! so the check adds little to the stack.

use anole::layers::dense;
use core::fmt;

/// Input counts checked: 1–6, one and two 4-column blocks with and without a leftover column,
/// and three blocks with one left over.
pub const INPUTS: [usize; 9] = [1, 2, 3, 4, 5, 6, 8, 9, 13];
/// Output counts checked: 1–5, two 4-row bands, and two with one row left over.
pub const OUTPUTS: [usize; 7] = [1, 2, 3, 4, 5, 8, 9];
/// Batch sizes checked: empty, 1, 2, one 5-sample block, one with a sample left over, and two
/// with one left over.
pub const SAMPLES: [usize; 6] = [0, 1, 2, 5, 6, 11];

const MAX_IN: usize = 13;
const MAX_OUT: usize = 9;
const MAX_N: usize = 11;
/// Guard values after each output.
const PAD: usize = 4;
/// What the guards hold; no kernel computes it from the checked values.
const GUARD: f32 = 1234.5;

/// f32 of one case: weights, biases, and the inputs and output gradients of the batch and of
/// one row more.
const CASE_LEN: usize = MAX_OUT * MAX_IN + MAX_OUT + (MAX_N + 1) * (MAX_IN + MAX_OUT);
/// f32 the checks write: the largest of the forward's outputs, the gradients, and the fused
/// update's weights, biases and input gradient, each with its guards.
const WORK_LEN: usize = {
    let gradients = (MAX_OUT * MAX_IN + PAD) + MAX_OUT + (MAX_N * MAX_IN + PAD);
    let fused = (MAX_OUT * MAX_IN + PAD) + (MAX_OUT + PAD) + (MAX_N * MAX_IN + PAD);
    let forward = MAX_N * MAX_OUT + PAD;
    let most = if gradients > fused { gradients } else { fused };
    if most > forward {
        most
    } else {
        forward
    }
};
/// f32 of scratch [`kernel_check`] needs.
pub const SCRATCH_LEN: usize = CASE_LEN + WORK_LEN;

/// Why the kernel check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KernelCheckError {
    /// The scratch slice is shorter than [`SCRATCH_LEN`].
    ScratchTooSmall {
        /// f32 needed.
        needed: usize,
        /// f32 given.
        available: usize,
    },
    /// A kernel's result differs from the scalar loops' (the first difference found).
    Mismatch {
        /// What differed.
        what: &'static str,
        /// Inputs of the layer.
        inputs: usize,
        /// Outputs of the layer.
        outputs: usize,
        /// Samples in the batch.
        samples: usize,
    },
}

impl fmt::Display for KernelCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelCheckError::ScratchTooSmall { needed, available } => write!(
                f,
                "the kernel check needs {needed} f32 of scratch, {available} given"
            ),
            KernelCheckError::Mismatch {
                what,
                inputs,
                outputs,
                samples,
            } => write!(
                f,
                "{what} ({inputs} inputs, {outputs} outputs, {samples} samples)"
            ),
        }
    }
}

/// Deterministic values in [-0.5, 0.5).
pub(crate) fn fill(seed: u32, v: &mut [f32]) {
    let mut s = seed;
    for x in v {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *x = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
    }
}

pub(crate) fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits()
}

/// Learning rates of the fused update.
const LR_W: f32 = 0.03;
const LR_B: f32 = 0.02;

/// One layer and batch: weights `[outputs][inputs]`, biases, inputs `[samples][inputs]` and
/// output gradients `[samples][outputs]`, the last two followed by a NaN row the kernels must
/// not read.
struct Case<'a> {
    inputs: usize,
    outputs: usize,
    n: usize,
    w: &'a [f32],
    bias: &'a [f32],
    x: &'a [f32],
    g: &'a [f32],
}

/// The first `len` values of `rest`, which keeps the others.
fn take<'a>(rest: &mut &'a mut [f32], len: usize) -> &'a mut [f32] {
    let (head, tail) = core::mem::take(rest).split_at_mut(len);
    *rest = tail;
    head
}

impl<'a> Case<'a> {
    /// A case in `data` (at least [`CASE_LEN`] f32), with values from a seed of its shape.
    fn new(mut data: &'a mut [f32], inputs: usize, outputs: usize, n: usize) -> Case<'a> {
        let w = take(&mut data, outputs * inputs);
        let bias = take(&mut data, outputs);
        let x = take(&mut data, (n + 1) * inputs);
        let g = take(&mut data, (n + 1) * outputs);
        let seed = (inputs * 100 + outputs * 10 + n) as u32;
        fill(seed, w);
        fill(seed + 1, bias);
        x.fill(f32::NAN);
        g.fill(f32::NAN);
        fill(seed + 2, &mut x[..n * inputs]);
        fill(seed + 3, &mut g[..n * outputs]);
        Case {
            inputs,
            outputs,
            n,
            w,
            bias,
            x,
            g,
        }
    }

    fn mismatch(&self, what: &'static str) -> KernelCheckError {
        KernelCheckError::Mismatch {
            what,
            inputs: self.inputs,
            outputs: self.outputs,
            samples: self.n,
        }
    }

    // The scalar references, each sum in order from 0.
    fn out(&self, b: usize, o: usize) -> f32 {
        let mut acc = 0.0f32;
        for i in 0..self.inputs {
            acc += self.w[o * self.inputs + i] * self.x[b * self.inputs + i];
        }
        self.bias[o] + acc
    }
    fn grad_in(&self, b: usize, i: usize) -> f32 {
        let mut acc = 0.0f32;
        for o in 0..self.outputs {
            acc += self.g[b * self.outputs + o] * self.w[o * self.inputs + i];
        }
        acc
    }
    fn grad_w(&self, o: usize, i: usize) -> f32 {
        let mut acc = 0.0f32;
        for b in 0..self.n {
            acc += self.g[b * self.outputs + o] * self.x[b * self.inputs + i];
        }
        acc
    }
    fn grad_b(&self, o: usize) -> f32 {
        let mut acc = 0.0f32;
        for b in 0..self.n {
            acc += self.g[b * self.outputs + o];
        }
        acc
    }

    /// `got` holds `rows × cols` values equal to `want(r, c)`, then [`PAD`] untouched guards.
    fn expect(
        &self,
        got: &[f32],
        (rows, cols): (usize, usize),
        want: impl Fn(usize, usize) -> f32,
        what: &'static str,
    ) -> Result<(), KernelCheckError> {
        let (values, guards) = got.split_at(rows * cols);
        let ok = values
            .chunks_exact(cols.max(1))
            .enumerate()
            .all(|(r, row)| row.iter().enumerate().all(|(c, &v)| same(v, want(r, c))));
        if !ok {
            return Err(self.mismatch(what));
        }
        if !guards.iter().all(|&v| same(v, GUARD)) {
            return Err(self.mismatch("a kernel wrote past its output"));
        }
        Ok(())
    }

    /// `len` values of `work`, set to [`GUARD`].
    fn guarded<'w>(work: &mut &'w mut [f32], len: usize) -> &'w mut [f32] {
        let v = take(work, len);
        v.fill(GUARD);
        v
    }

    fn check_forward(&self, mut work: &mut [f32]) -> Result<(), KernelCheckError> {
        let (i, o, n) = (self.inputs, self.outputs, self.n);
        let y = Self::guarded(&mut work, n * o + PAD);
        dense::forward(i, o, self.w, self.bias, self.x, y, n);
        self.expect(
            y,
            (n, o),
            |b, o| self.out(b, o),
            "dense forward differs from the scalar sums",
        )
    }

    fn check_gradients(&self, mut work: &mut [f32]) -> Result<(), KernelCheckError> {
        let (i, o, n) = (self.inputs, self.outputs, self.n);
        let dw = Self::guarded(&mut work, o * i + PAD);
        let db = Self::guarded(&mut work, o);
        let gx = Self::guarded(&mut work, n * i + PAD);
        dense::backward(
            i,
            o,
            self.w,
            self.x,
            self.g,
            Some((&mut dw[..o * i], &mut db[..o])),
            Some(gx),
            n,
        );
        self.expect(
            dw,
            (o, i),
            |o, i| self.grad_w(o, i),
            "dense weight gradient differs from the scalar sums",
        )?;
        self.expect(
            &db[..o],
            (1, o),
            |_, o| self.grad_b(o),
            "dense bias gradient differs from the scalar sums",
        )?;
        self.expect(
            gx,
            (n, i),
            |b, i| self.grad_in(b, i),
            "dense input gradient differs from the scalar sums",
        )
    }

    /// The fused update with `poison` (a weight index, or `outputs · inputs` plus a bias index)
    /// made NaN first, or with none.
    fn check_fused(
        &self,
        mut work: &mut [f32],
        poison: Option<usize>,
    ) -> Result<(), KernelCheckError> {
        let (i, o, n) = (self.inputs, self.outputs, self.n);
        let w = Self::guarded(&mut work, o * i + PAD);
        let bias = Self::guarded(&mut work, o + PAD);
        w[..o * i].copy_from_slice(self.w);
        bias[..o].copy_from_slice(self.bias);
        if let Some(p) = poison {
            match p.checked_sub(o * i) {
                None => w[p] = f32::NAN,
                Some(k) => bias[k] = f32::NAN,
            }
        }
        // The input gradient (from the weights before the update) when nothing is poisoned.
        let gx = Self::guarded(&mut work, n * i + PAD);
        let (wl, bl) = (o * i, o);
        let finished = dense::backward_sgd(
            i,
            o,
            &mut w[..wl],
            &mut bias[..bl],
            self.x,
            self.g,
            poison.is_none().then_some(&mut gx[..]),
            n,
            LR_W,
            LR_B,
        );
        if poison.is_none() {
            self.expect(
                gx,
                (n, i),
                |b, i| self.grad_in(b, i),
                "fused update's input gradient differs from the scalar sums",
            )?;
        }
        if finished != poison.is_none() {
            return Err(self.mismatch(if finished {
                "fused SGD update accepted a NaN"
            } else {
                "fused SGD update refused finite values"
            }));
        }
        // Which values the update wrote: before the poisoned weight's block, or all weights
        // and the biases before the poisoned bias.
        let (wrote_w, wrote_b) = match poison {
            None => (None, o),
            Some(p) if p < o * i => (Some(self.block(p / i, p % i)), 0),
            Some(p) => (None, p - o * i),
        };
        let weight = |r: usize, c: usize| {
            let old = if poison == Some(r * i + c) {
                f32::NAN
            } else {
                self.w[r * i + c]
            };
            match wrote_w {
                Some(stop) if self.block(r, c) >= stop => old,
                _ => old - LR_W * self.grad_w(r, c),
            }
        };
        self.expect(
            w,
            (o, i),
            weight,
            "fused SGD update of a weight differs from the scalar update",
        )?;
        let bias_value = |_: usize, k: usize| {
            if poison == Some(o * i + k) {
                f32::NAN
            } else if k < wrote_b {
                self.bias[k] - LR_B * self.grad_b(k)
            } else {
                self.bias[k]
            }
        };
        self.expect(
            &bias[..o + PAD],
            (1, o),
            bias_value,
            "fused SGD update of a bias differs from the scalar update",
        )
    }

    /// Rank of the block holding weight `(r, c)` in the order the fused update checks and
    /// writes blocks: bands of 4 rows, each its full blocks of 4 rows × [`CHUNK`] columns
    /// (column by column, the 4 rows in order), then its leftover columns one at a time (rows
    /// in order); then the rows below the last band one by one, each in blocks of [`CHUNK`]
    /// columns and then column by column. Values of one block share a rank.
    fn block(&self, r: usize, c: usize) -> (usize, usize, usize, usize) {
        let full_rows = self.outputs - self.outputs % 4;
        let full_cols = self.inputs - self.inputs % CHUNK;
        let (band, row) = if r < full_rows {
            (r / 4, r % 4)
        } else {
            (full_rows / 4 + (r - full_rows), 0)
        };
        if c < full_cols {
            (band, 0, c / CHUNK, row)
        } else {
            (band, 1, c, row)
        }
    }
}

/// Columns of a weight block: the runtime's vector width, 8 on x86-64 and 4 elsewhere.
const CHUNK: usize = if cfg!(target_arch = "x86_64") { 8 } else { 4 };

/// The shape on which every weight and every bias is made NaN in turn.
const POISONED: (usize, usize, usize) = (13, 9, 6);

/// Checks forward, gradients and the fused SGD update on every shape, then the update's stop
/// at a NaN in every position of one shape, in `scratch` (at least [`SCRATCH_LEN`] f32; its
/// values are overwritten). `Err` names the first mismatch and its shape.
#[inline(never)] // its own frame, released before the application runs
pub fn kernel_check(scratch: &mut [f32]) -> Result<(), KernelCheckError> {
    let available = scratch.len();
    let Some(scratch) = scratch.get_mut(..SCRATCH_LEN) else {
        return Err(KernelCheckError::ScratchTooSmall {
            needed: SCRATCH_LEN,
            available,
        });
    };
    let (data, work) = scratch.split_at_mut(CASE_LEN);
    for &outputs in &OUTPUTS {
        for &inputs in &INPUTS {
            for &n in &SAMPLES {
                let case = Case::new(data, inputs, outputs, n);
                case.check_forward(work)?;
                case.check_gradients(work)?;
                case.check_fused(work, None)?;
            }
        }
    }
    let (inputs, outputs, n) = POISONED;
    let case = Case::new(data, inputs, outputs, n);
    for p in 0..outputs * inputs + outputs {
        case.check_fused(work, Some(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec;

    #[test]
    fn the_kernels_match_the_scalar_loops_on_the_host() {
        assert_eq!(kernel_check(&mut vec![0.0; SCRATCH_LEN]), Ok(()));
    }

    #[test]
    fn a_short_scratch_is_refused() {
        assert_eq!(
            kernel_check(&mut vec![0.0; SCRATCH_LEN - 1]),
            Err(KernelCheckError::ScratchTooSmall {
                needed: SCRATCH_LEN,
                available: SCRATCH_LEN - 1
            })
        );
    }

    #[test]
    fn the_shapes_fit_the_buffers() {
        assert!(INPUTS.iter().all(|&i| (1..=MAX_IN).contains(&i)));
        assert!(OUTPUTS.iter().all(|&o| (1..=MAX_OUT).contains(&o)));
        assert!(SAMPLES.iter().all(|&n| n <= MAX_N));
        let (i, o, n) = POISONED;
        assert!(INPUTS.contains(&i) && OUTPUTS.contains(&o) && SAMPLES.contains(&n));
    }

    #[test]
    fn a_wrong_value_or_a_write_past_the_output_is_caught() {
        let mut data = [0.0; CASE_LEN];
        let case = Case::new(&mut data, 5, 3, 2);
        let mut y = [GUARD; 2 * 3 + PAD];
        dense::forward(5, 3, case.w, case.bias, case.x, &mut y, 2);
        let want = |b: usize, o: usize| case.out(b, o);
        let what = |r: Result<(), KernelCheckError>| match r {
            Err(KernelCheckError::Mismatch { what, .. }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(case.expect(&y, (2, 3), want, "forward"), Ok(()));
        let mut bad = y;
        bad[4] = f32::from_bits(bad[4].to_bits() ^ 1);
        assert_eq!(what(case.expect(&bad, (2, 3), want, "forward")), "forward");
        let mut past = y;
        past[6] = 0.0;
        assert_eq!(
            what(case.expect(&past, (2, 3), want, "forward")),
            "a kernel wrote past its output"
        );
    }

    #[test]
    fn blocks_are_ranked_in_the_update_order() {
        // 9 outputs × 13 inputs: rows 0–7 in two bands, row 8 on its own.
        let mut data = [0.0; CASE_LEN];
        let case = Case::new(&mut data, 13, 9, 1);
        assert!(case.block(3, 0) < case.block(0, CHUNK));
        assert_eq!(case.block(0, 0), case.block(0, CHUNK - 1));
        assert!(case.block(0, 0) < case.block(1, 0));
        assert!(case.block(3, 12) < case.block(4, 0));
        assert!(case.block(7, 12) < case.block(8, 0));
        assert!(case.block(8, 0) < case.block(8, 12));
    }
}
