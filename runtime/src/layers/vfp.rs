//! Hard-float Armv7E-M microkernels (Cortex-M4F, Cortex-M7, Cortex-M33 with FPU, bare metal)
//! for the dense layers' loops of an adaptation step.
//!
//! Each kernel performs the multiply-accumulates of its Rust twin in `dense.rs` in the same
//! order: `vmla.f32` rounds the product and then the sum, as Rust's `acc += a * b` does (Rust
//! never fuses), and `vmls.f32` likewise for `p - lr * s`. Results are therefore bit for bit
//! those of the Rust kernels on every other target; the firmware run checks that the losses of
//! the Cortex-M4F, Armv6-M and aarch64 builds are identical. What the assembly adds is the
//! register plan the compiler does not find: accumulators pinned in `s0`–`s19`, operands
//! fetched with multi-register `vldm`, row pointers advanced by the loads themselves, and no
//! per-block bookkeeping, so a multiply-accumulate costs little more than its `vmla`.
//!
//! Every kernel checks that the slices cover everything its loop will touch before it runs the
//! assembly, and returns `None` (having done nothing) when they do not or when its shape does
//! not apply; the Rust kernel then does the work.
//!
//! Register use: each block saves and restores all of `s0`–`s31` itself (`vpush`/`vpop` of
//! `d0`–`d15`, one instruction each), because Rust's inline assembly cannot name floating-point
//! registers on targets whose FPU it does not list as a target feature; every general register
//! the block changes is an operand declared clobbered (`=> _`) or an output, and the stack is
//! used only by the balanced push and pop.

#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

/// Sixteen zeros, the accumulators' start.
static ZEROS: [f32; 16] = [0.0; 16];

/// One sample of the 4 × 4 weight-gradient sums (the body of a loop; `{g}`, `{x}` advance by
/// their strides `{gs}`, `{xs}`): rows `s16`–`s19` of `g` times columns `s20`–`s23` of `x`
/// into `s0`–`s15`.
macro_rules! sums_4x4_step {
    () => {
        concat!(
            "vldm {g}, {{s16, s17, s18, s19}}\n",
            "add {g}, {g}, {gs}\n",
            "vldm {x}, {{s20, s21, s22, s23}}\n",
            "add {x}, {x}, {xs}\n",
            "vmla.f32 s0, s16, s20\n",
            "vmla.f32 s1, s16, s21\n",
            "vmla.f32 s2, s16, s22\n",
            "vmla.f32 s3, s16, s23\n",
            "vmla.f32 s4, s17, s20\n",
            "vmla.f32 s5, s17, s21\n",
            "vmla.f32 s6, s17, s22\n",
            "vmla.f32 s7, s17, s23\n",
            "vmla.f32 s8, s18, s20\n",
            "vmla.f32 s9, s18, s21\n",
            "vmla.f32 s10, s18, s22\n",
            "vmla.f32 s11, s18, s23\n",
            "vmla.f32 s12, s19, s20\n",
            "vmla.f32 s13, s19, s21\n",
            "vmla.f32 s14, s19, s22\n",
            "vmla.f32 s15, s19, s23\n",
        )
    };
}

/// One row of a 5 × 4 block over two steps of the sum: loads the next two values of row
/// pointer `$ptr` into `s28`, `s29` (advancing it) and adds `s28 · a_k`, then `s29 · b_k`, into
/// accumulators `c_0`–`c_3`, in that order.
macro_rules! pair_step {
    ($ptr:literal, [$c0:literal, $c1:literal, $c2:literal, $c3:literal],
     [$a0:literal, $a1:literal, $a2:literal, $a3:literal],
     [$b0:literal, $b1:literal, $b2:literal, $b3:literal]) => {
        concat!(
            "vldmia ",
            $ptr,
            "!, {{s28, s29}}\n",
            "vmla.f32 ",
            $c0,
            ", ",
            $a0,
            ", s28\n",
            "vmla.f32 ",
            $c1,
            ", ",
            $a1,
            ", s28\n",
            "vmla.f32 ",
            $c2,
            ", ",
            $a2,
            ", s28\n",
            "vmla.f32 ",
            $c3,
            ", ",
            $a3,
            ", s28\n",
            "vmla.f32 ",
            $c0,
            ", ",
            $b0,
            ", s29\n",
            "vmla.f32 ",
            $c1,
            ", ",
            $b1,
            ", s29\n",
            "vmla.f32 ",
            $c2,
            ", ",
            $b2,
            ", s29\n",
            "vmla.f32 ",
            $c3,
            ", ",
            $b3,
            ", s29\n",
        )
    };
}

/// The forward's sample row: weights of inputs `i` in `s20, s22, s24, s26` (outputs 0–3),
/// of `i + 1` in `s21, s23, s25, s27`.
macro_rules! forward_sample {
    ($ptr:literal, $c0:literal, $c1:literal, $c2:literal, $c3:literal) => {
        pair_step!(
            $ptr,
            [$c0, $c1, $c2, $c3],
            ["s20", "s22", "s24", "s26"],
            ["s21", "s23", "s25", "s27"]
        )
    };
}

/// The input gradient's sample row: weights of output `o` in `s20`–`s23` (inputs 0–3), of
/// `o + 1` in `s24`–`s27`.
macro_rules! input_grad_sample {
    ($ptr:literal, $c0:literal, $c1:literal, $c2:literal, $c3:literal) => {
        pair_step!(
            $ptr,
            [$c0, $c1, $c2, $c3],
            ["s20", "s21", "s22", "s23"],
            ["s24", "s25", "s26", "s27"]
        )
    };
}

/// A row stride (in `f32`s) the kernels take: at least one 4-value block, and small enough
/// that its byte count fits a register.
#[inline(always)]
fn stride_ok(stride: usize) -> bool {
    (4..=usize::MAX / 4).contains(&stride)
}

/// `(count - 1) · stride + width <= len`: a slice of `len` values holds `count >= 1` rows of
/// `width` values, `stride` apart.
#[inline(always)]
fn covers(len: usize, count: usize, stride: usize, width: usize) -> bool {
    count
        .checked_sub(1)
        .and_then(|c| c.checked_mul(stride))
        .and_then(|o| o.checked_add(width))
        .is_some_and(|end| end <= len)
}

/// Forward sums of 4 outputs × 5 samples over all `inputs` (even, at least 2):
/// `out[4·s + o] = Σ_i w[o][i] · x[s][i]`, `i` in order from 0, two inputs per iteration.
#[inline(always)]
pub(super) fn forward_4x5(inputs: usize, w: &[&[f32]], x: &[&[f32]]) -> Option<[f32; 20]> {
    let w: &[&[f32]; 4] = w.try_into().ok()?;
    let x: &[&[f32]; 5] = x.try_into().ok()?;
    if inputs < 2 || inputs % 2 != 0 || w.iter().chain(x).any(|r| r.len() < inputs) {
        return None;
    }
    let mut out = MaybeUninit::<[f32; 20]>::uninit();
    // SAFETY: the loop runs `inputs / 2 >= 1` times, each iteration loading two consecutive
    // `f32`s through each of the nine row pointers and advancing it by 8 bytes: the first
    // `inputs` values of each row, all in bounds (every row holds at least `inputs`). The
    // output pointer is kept in `s30` during the loop (its register is reused as a zero to
    // clear the accumulators) and the final `vstm` writes exactly the 20 `f32`s of `out`.
    // Registers and stack as in the module notes.
    unsafe {
        asm!(
            "vpush {{d0-d15}}",
            "vmov s30, {io}",
            "movs {io}, #0",
            "vmov s0, s1, {io}, {io}",
            "vmov s2, s3, {io}, {io}",
            "vmov s4, s5, {io}, {io}",
            "vmov s6, s7, {io}, {io}",
            "vmov s8, s9, {io}, {io}",
            "vmov s10, s11, {io}, {io}",
            "vmov s12, s13, {io}, {io}",
            "vmov s14, s15, {io}, {io}",
            "vmov s16, s17, {io}, {io}",
            "vmov s18, s19, {io}, {io}",
            "2:",
            "vldmia {w0}!, {{s20, s21}}",
            "vldmia {w1}!, {{s22, s23}}",
            "vldmia {w2}!, {{s24, s25}}",
            "vldmia {w3}!, {{s26, s27}}",
            forward_sample!("{x0}", "s0", "s1", "s2", "s3"),
            forward_sample!("{x1}", "s4", "s5", "s6", "s7"),
            forward_sample!("{x2}", "s8", "s9", "s10", "s11"),
            forward_sample!("{x3}", "s12", "s13", "s14", "s15"),
            forward_sample!("{x4}", "s16", "s17", "s18", "s19"),
            "subs {n}, {n}, #1",
            "bne 2b",
            "vmov {io}, s30",
            "vstm {io}, {{s0-s19}}",
            "vpop {{d0-d15}}",
            w0 = inout(reg) w[0].as_ptr() => _,
            w1 = inout(reg) w[1].as_ptr() => _,
            w2 = inout(reg) w[2].as_ptr() => _,
            w3 = inout(reg) w[3].as_ptr() => _,
            x0 = inout(reg) x[0].as_ptr() => _,
            x1 = inout(reg) x[1].as_ptr() => _,
            x2 = inout(reg) x[2].as_ptr() => _,
            x3 = inout(reg) x[3].as_ptr() => _,
            x4 = inout(reg) x[4].as_ptr() => _,
            n = inout(reg) inputs / 2 => _,
            io = inout(reg) out.as_mut_ptr() => _,
        );
        // SAFETY: the block's `vstm` wrote all 20 values.
        Some(out.assume_init())
    }
}

/// Input-gradient sums of 5 samples × 4 inputs over all `outputs` (even, at least 2):
/// `out[4·s + k] = Σ_o g[s][o] · w[o·stride + k]`, `o` in order from 0, two outputs per
/// iteration; `w` starts at the block's first column of row 0, `stride` is the row length.
#[inline(always)]
pub(super) fn input_grad_5x4(
    outputs: usize,
    w: &[f32],
    stride: usize,
    g: &[&[f32]],
) -> Option<[f32; 20]> {
    let g: &[&[f32]; 5] = g.try_into().ok()?;
    if outputs < 2
        || outputs % 2 != 0
        || !stride_ok(stride)
        || !covers(w.len(), outputs, stride, 4)
        || g.iter().any(|r| r.len() < outputs)
    {
        return None;
    }
    let mut out = MaybeUninit::<[f32; 20]>::uninit();
    // SAFETY: the loop runs `outputs / 2 >= 1` times; iteration `j` loads
    // `w[(2j)·stride..][..4]` and `w[(2j+1)·stride..][..4]`, rows below `outputs`, in bounds
    // by `covers(w.len(), outputs, stride, 4)`, and `g[s][2j..2j + 2]` for the five rows, in
    // bounds since each holds at least `outputs` values. `ZEROS` holds the 16 `f32`s loaded
    // from it (the last 4 accumulators are copies of `s0`). The final `vstm` writes exactly
    // the 20 `f32`s of `out`. Registers and stack as in the module notes.
    unsafe {
        asm!(
            "vpush {{d0-d15}}",
            "vldm {zeros}, {{s0-s15}}",
            "vmov.f32 s16, s0",
            "vmov.f32 s17, s0",
            "vmov.f32 s18, s0",
            "vmov.f32 s19, s0",
            "2:",
            "vldm {w}, {{s20, s21, s22, s23}}",
            "add {w}, {w}, {stride}",
            "vldm {w}, {{s24, s25, s26, s27}}",
            "add {w}, {w}, {stride}",
            input_grad_sample!("{g0}", "s0", "s1", "s2", "s3"),
            input_grad_sample!("{g1}", "s4", "s5", "s6", "s7"),
            input_grad_sample!("{g2}", "s8", "s9", "s10", "s11"),
            input_grad_sample!("{g3}", "s12", "s13", "s14", "s15"),
            input_grad_sample!("{g4}", "s16", "s17", "s18", "s19"),
            "subs {n}, {n}, #1",
            "bne 2b",
            "vstm {out}, {{s0-s19}}",
            "vpop {{d0-d15}}",
            w = inout(reg) w.as_ptr() => _,
            stride = in(reg) 4 * stride,
            g0 = inout(reg) g[0].as_ptr() => _,
            g1 = inout(reg) g[1].as_ptr() => _,
            g2 = inout(reg) g[2].as_ptr() => _,
            g3 = inout(reg) g[3].as_ptr() => _,
            g4 = inout(reg) g[4].as_ptr() => _,
            n = inout(reg) outputs / 2 => _,
            zeros = in(reg) ZEROS.as_ptr(),
            out = in(reg) out.as_mut_ptr(),
        );
        // SAFETY: the block's `vstm` wrote all 20 values.
        Some(out.assume_init())
    }
}

/// Weight-gradient sums of 4 rows × 4 columns over `n >= 1` samples:
/// `out[4·r + k] = Σ_b g[b·g_stride + r] · x[b·x_stride + k]`, `b` in order from 0, where `g`
/// and `x` start at the block's first row and column of sample 0.
#[inline(always)]
pub(super) fn weight_sums_4x4(
    g: &[f32],
    g_stride: usize,
    x: &[f32],
    x_stride: usize,
    n: usize,
) -> Option<[f32; 16]> {
    if !stride_ok(g_stride)
        || !stride_ok(x_stride)
        || !covers(g.len(), n, g_stride, 4)
        || !covers(x.len(), n, x_stride, 4)
    {
        return None;
    }
    let mut out = MaybeUninit::<[f32; 16]>::uninit();
    // SAFETY: `covers` is false for a count of 0, so the loop runs `n >= 1` times; iteration
    // `b` loads `g[b·g_stride..][..4]` and `x[b·x_stride..][..4]`, in bounds by `covers`.
    // `ZEROS` holds the 16 `f32`s loaded from it; the final `vstm` writes exactly the 16
    // `f32`s of `out`. Registers and stack as in the module notes.
    unsafe {
        asm!(
            "vpush {{d0-d15}}",
            "vldm {zeros}, {{s0-s15}}",
            "2:",
            sums_4x4_step!(),
            "subs {n}, {n}, #1",
            "bne 2b",
            "vstm {out}, {{s0-s15}}",
            "vpop {{d0-d15}}",
            g = inout(reg) g.as_ptr() => _,
            gs = in(reg) 4 * g_stride,
            x = inout(reg) x.as_ptr() => _,
            xs = in(reg) 4 * x_stride,
            n = inout(reg) n => _,
            zeros = in(reg) ZEROS.as_ptr(),
            out = in(reg) out.as_mut_ptr(),
        );
        // SAFETY: the block's `vstm` wrote all 16 values.
        Some(out.assume_init())
    }
}

/// The fused weight-gradient SGD update of rows `o0..o0 + 4`, columns `0..4·blocks`, 4 × 4
/// blocks in column order. Each block: the sums of [`weight_sums_4x4`] over `n` samples in
/// order, then for each of its 4 rows in order `p[r·inputs + k] -= lr · sum`, the row's 4 new
/// values checked before they are written (`q · 0` summed is 0 only when all are finite).
/// `g` starts at output `o0` of sample 0 (rows of `outputs`), `x` at input 0 of sample 0 (rows
/// of `inputs`), `p` at weight row `o0`. `Some(true)` when every block was written,
/// `Some(false)` when it stopped at a row holding a non-finite value (the rows before it
/// written, that row and everything after it unchanged), `None` when the slices do not cover
/// the band (nothing done).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn sgd_band_4x4(
    g: &[f32],
    outputs: usize,
    x: &[f32],
    inputs: usize,
    n: usize,
    p: &mut [f32],
    blocks: usize,
    lr: f32,
) -> Option<bool> {
    let width = blocks.checked_mul(4)?;
    if blocks == 0
        || width > inputs
        || !stride_ok(outputs)
        || !stride_ok(inputs)
        || !covers(g.len(), n, outputs, 4)
        || !covers(x.len(), n, inputs, width)
        || !covers(p.len(), 4, inputs, width)
    {
        return None;
    }
    let mut left = blocks;
    // SAFETY: `covers` is false for a count of 0, so `n >= 1` and `blocks >= 1`: both loops
    // run. Block `j` (of `blocks`) reads `g[b·outputs..][..4]` and `x[b·inputs + 4j..][..4]`
    // for `b < n`, and reads and writes `p[r·inputs + 4j..][..4]` for `r < 4`: in bounds of
    // `g`, `x` and `p` since `covers(.., n | 4, stride, 4·blocks)` holds for each (`g`'s rows
    // are 4 wide). After the sums the `mls` instructions move `g` and `x` back by the `n`
    // strides the loop advanced them (then `x` on to the next block, 16 bytes), and after the
    // 4 rows `p` moves back 4 strides and on 16 bytes: the next block's addresses. `p` is
    // borrowed mutably for the call, so nothing else reads it meanwhile. `ZEROS` holds the
    // 16 `f32`s loaded from it. Registers and stack as in the module notes; on the branch to
    // `3:` the same `vpop` restores them.
    unsafe {
        asm!(
            "vpush {{d0-d15}}",
            "vmov s24, {t}",
            "vldr s25, [{zeros}]",
            "1:",
            "vldm {zeros}, {{s0-s15}}",
            "mov {k}, {n}",
            "2:",
            sums_4x4_step!(),
            "subs {k}, {k}, #1",
            "bne 2b",
            "mls {g}, {n}, {gs}, {g}",
            "mls {x}, {n}, {xs}, {x}",
            "add {x}, {x}, #16",
            "vldm {p}, {{s16, s17, s18, s19}}",
            "vmls.f32 s16, s24, s0",
            "vmls.f32 s17, s24, s1",
            "vmls.f32 s18, s24, s2",
            "vmls.f32 s19, s24, s3",
            "vmul.f32 s20, s16, s25",
            "vmla.f32 s20, s17, s25",
            "vmla.f32 s20, s18, s25",
            "vmla.f32 s20, s19, s25",
            "vcmp.f32 s20, #0",
            "vmrs APSR_nzcv, fpscr",
            "bne 3f",
            "vstm {p}, {{s16, s17, s18, s19}}",
            "add {p}, {p}, {xs}",
            "vldm {p}, {{s16, s17, s18, s19}}",
            "vmls.f32 s16, s24, s4",
            "vmls.f32 s17, s24, s5",
            "vmls.f32 s18, s24, s6",
            "vmls.f32 s19, s24, s7",
            "vmul.f32 s20, s16, s25",
            "vmla.f32 s20, s17, s25",
            "vmla.f32 s20, s18, s25",
            "vmla.f32 s20, s19, s25",
            "vcmp.f32 s20, #0",
            "vmrs APSR_nzcv, fpscr",
            "bne 3f",
            "vstm {p}, {{s16, s17, s18, s19}}",
            "add {p}, {p}, {xs}",
            "vldm {p}, {{s16, s17, s18, s19}}",
            "vmls.f32 s16, s24, s8",
            "vmls.f32 s17, s24, s9",
            "vmls.f32 s18, s24, s10",
            "vmls.f32 s19, s24, s11",
            "vmul.f32 s20, s16, s25",
            "vmla.f32 s20, s17, s25",
            "vmla.f32 s20, s18, s25",
            "vmla.f32 s20, s19, s25",
            "vcmp.f32 s20, #0",
            "vmrs APSR_nzcv, fpscr",
            "bne 3f",
            "vstm {p}, {{s16, s17, s18, s19}}",
            "add {p}, {p}, {xs}",
            "vldm {p}, {{s16, s17, s18, s19}}",
            "vmls.f32 s16, s24, s12",
            "vmls.f32 s17, s24, s13",
            "vmls.f32 s18, s24, s14",
            "vmls.f32 s19, s24, s15",
            "vmul.f32 s20, s16, s25",
            "vmla.f32 s20, s17, s25",
            "vmla.f32 s20, s18, s25",
            "vmla.f32 s20, s19, s25",
            "vcmp.f32 s20, #0",
            "vmrs APSR_nzcv, fpscr",
            "bne 3f",
            "vstm {p}, {{s16, s17, s18, s19}}",
            "add {p}, {p}, {xs}",
            "sub {p}, {p}, {xs}, lsl #2",
            "add {p}, {p}, #16",
            "subs {blocks}, {blocks}, #1",
            "bne 1b",
            "3:",
            "vpop {{d0-d15}}",
            g = inout(reg) g.as_ptr() => _,
            gs = in(reg) 4 * outputs,
            x = inout(reg) x.as_ptr() => _,
            xs = in(reg) 4 * inputs,
            n = in(reg) n,
            k = out(reg) _,
            p = inout(reg) p.as_mut_ptr() => _,
            blocks = inout(reg) left,
            zeros = in(reg) ZEROS.as_ptr(),
            t = in(reg) lr.to_bits(),
        );
    }
    Some(left == 0)
}
