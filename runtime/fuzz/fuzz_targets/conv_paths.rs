//! The convolution's three paths against each other, under AddressSanitizer: the direct
//! kernels (every device's), the host's matrix-product path and, on x86-64 with AVX2 and FMA,
//! its FMA kernels (anole built with `gemm`). The two host paths must give the same bits; both
//! must agree with the direct kernels to within the rounding of their sums, bounded by the
//! same sums over absolute values. Forward, weight, bias and input gradients, batches of 0 to
//! 7 samples.
//!
//! Input layout: byte 0 is the mode. Below 0xC0, a layer: bytes 1 and 2 pick the input and
//! output channels (1 to 9, or 16·m - 1, 16·m, 16·m + 1 for m = 1..3), bytes 3 to 8 the height
//! and width (1..=12), kernel (1..=5), stride (1..=3), padding (0..=kernel + 2) and batch
//! (0..=7, fewer where the layer is large: at most [`MAX_MACS`] multiply-adds a pass, and at
//! least one sample unless the batch is 0), bytes 9 to 12 the seed of the values; bits 0 and 1
//! of byte 0 leave out the weight and input gradients. From 0xC0, raw sizes: pairs of bytes make each of cin, h, w, cout, oh,
//! ow, kernel, stride, padding and n small, a power of two, a power of two plus 16 or near
//! `usize::MAX`, with buffers as long as the sizes' products wrapped in 64 bits (at most 4096
//! values): a geometry or buffer the kernels refuse must make them panic before they read or
//! write anything, never crash.
#![no_main]

use anole::layers::conv2d::{self, fuzzing, Geometry};
use anole::layers::Window;
use libfuzzer_sys::fuzz_target;
use std::panic::{self, AssertUnwindSafe};

fuzz_target!(|data: &[u8]| {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    if byte(0) >= 0xC0 {
        raw(&data[1.min(data.len())..]);
        return;
    }
    let channels = |b: u8| match b % 4 {
        0 => 1 + (b / 4) as usize % 9,
        d => 16 * (1 + (b / 4) as usize % 3) + d as usize - 2,
    };
    let kernel = 1 + byte(5) as usize % 5;
    let win = Window {
        kernel,
        stride: 1 + byte(6) as usize % 3,
        padding: byte(7) as usize % (kernel + 3),
    };
    let (h, w) = (1 + byte(3) as usize % 12, 1 + byte(4) as usize % 12);
    let (Some(oh), Some(ow)) = (win.out(h), win.out(w)) else {
        return; // the kernel does not fit the padded input
    };
    let g = Geometry {
        cin: channels(byte(1)),
        h,
        w,
        cout: channels(byte(2)),
        oh,
        ow,
        win,
    };
    g.check().expect("a layer's geometry passes the check");
    let macs = g.cout * g.oh * g.ow * g.cin * kernel * kernel;
    let n = (byte(8) as usize % 8).min((MAX_MACS / macs).max(1));
    let seed = u32::from_le_bytes([byte(9), byte(10), byte(11), byte(12)]);
    differential(&g, n, seed, byte(0) & 1 == 0, byte(0) & 2 == 0);
});

/// Most multiply-adds of one pass over a batch (a larger layer runs one sample): each input
/// runs 12 passes (forward, weight and input gradients, on 4 paths) under AddressSanitizer.
const MAX_MACS: usize = 1 << 20;

/// Uniform values in [-1, 1), a quarter of them exactly zero.
fn values(seed: &mut u32, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if *seed >> 30 == 0 {
                0.0
            } else {
                (*seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            }
        })
        .collect()
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The results of one path: output, weight gradient, bias gradient, input gradient.
struct Results {
    y: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    gx: Vec<f32>,
}

/// One forward and one backward pass of `g` over `n` samples; gradients left out (empty)
/// unless asked for. The outputs start as NaN, so a value the kernels did not write shows.
fn run(g: &Geometry, n: usize, t: [&[f32]; 4], params: bool, input: bool) -> Results {
    let [wt, b, x, gy] = t;
    let mut r = Results {
        y: vec![f32::NAN; gy.len()],
        dw: vec![f32::NAN; if params { wt.len() } else { 0 }],
        db: vec![f32::NAN; if params { b.len() } else { 0 }],
        gx: vec![f32::NAN; if input { x.len() } else { 0 }],
    };
    conv2d::forward(g, wt, b, x, &mut r.y, n);
    let pg = params.then_some((&mut r.dw[..], &mut r.db[..]));
    conv2d::backward(g, wt, x, gy, pg, input.then_some(&mut r.gx[..]), n);
    r
}

fn differential(g: &Geometry, n: usize, mut seed: u32, params: bool, input: bool) {
    let k2 = g.win.kernel * g.win.kernel;
    let (in_len, out_len) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    let wt = values(&mut seed, g.cout * g.cin * k2);
    let b = values(&mut seed, g.cout);
    let x = values(&mut seed, n * in_len);
    let gy = values(&mut seed, n * out_len);
    let t = [&wt[..], &b[..], &x[..], &gy[..]];

    fuzzing::set_fma(true);
    let fma = run(g, n, t, params, input);
    fuzzing::set_fma(false);
    let gemm = run(g, n, t, params, input);
    fuzzing::set_fma(true);
    let direct = fuzzing::direct(|| run(g, n, t, params, input));
    // The same sums over absolute values bound every rounding error.
    let (awt, ab, ax, agy) = (abs(&wt), abs(&b), abs(&x), abs(&gy));
    let bound = fuzzing::direct(|| run(g, n, [&awt, &ab, &ax, &agy], params, input));

    let at = format!("{g:?}, n {n}");
    for (what, f, m, d, a, terms) in [
        (
            "output",
            &fma.y,
            &gemm.y,
            &direct.y,
            &bound.y,
            g.cin * k2 + 1,
        ),
        (
            "weight gradient",
            &fma.dw,
            &gemm.dw,
            &direct.dw,
            &bound.dw,
            n * g.oh * g.ow,
        ),
        (
            "bias gradient",
            &fma.db,
            &gemm.db,
            &direct.db,
            &bound.db,
            n * g.oh * g.ow,
        ),
        (
            "input gradient",
            &fma.gx,
            &gemm.gx,
            &direct.gx,
            &bound.gx,
            g.cout * k2,
        ),
    ] {
        assert_eq!(
            bits(f),
            bits(m),
            "{what}: FMA and matrix-product paths differ, {at}"
        );
        // Each path's sum of `terms` products is within terms·u of the exact one, relative
        // to the sum of their magnitudes (u = ε/2); the bound's own sum is rounded too.
        let tol = |a: f32| 1.1 * (terms + 2) as f32 * f32::EPSILON * a + f32::MIN_POSITIVE;
        for (i, ((&h, &d), &a)) in m.iter().zip(d).zip(a).enumerate() {
            assert!(
                h.is_finite() && (h - d).abs() <= tol(a),
                "{what} {i}: host {h}, direct {d}, bound {a}, {at}"
            );
        }
    }
}

/// Pairs of bytes to sizes from 0 to near `usize::MAX`.
fn size(b: &[u8], i: usize) -> usize {
    let (kind, v) = (
        b.get(2 * i).copied().unwrap_or(0),
        b.get(2 * i + 1).copied().unwrap_or(1),
    );
    match kind % 4 {
        0 => v as usize % 20,
        1 => 1usize << (v % 64),
        2 => (1usize << (v % 64)).wrapping_add(16),
        _ => usize::MAX - v as usize,
    }
}

/// Whether `f` panics; the panic is expected, so it is neither printed nor taken for a crash
/// (the fuzzer's hook aborts on every panic).
fn panics(f: impl FnOnce()) -> bool {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(hook);
    r.is_err()
}

fn raw(b: &[u8]) {
    let s = |i| size(b, i);
    let g = Geometry {
        cin: s(0),
        h: s(1),
        w: s(2),
        cout: s(3),
        oh: s(4),
        ow: s(5),
        win: Window {
            kernel: s(6),
            stride: s(7),
            padding: s(8),
        },
    };
    let n = s(9);
    // Buffers as long as the unchecked products say, capped.
    let cap = |v: usize| v.min(4096);
    let k2 = g.win.kernel.wrapping_mul(g.win.kernel);
    let in_len = g.cin.wrapping_mul(g.h).wrapping_mul(g.w);
    let out_len = g.cout.wrapping_mul(g.oh).wrapping_mul(g.ow);
    let wt = vec![0.5f32; cap(g.cout.wrapping_mul(g.cin).wrapping_mul(k2))];
    let bias = vec![0.25f32; cap(g.cout)];
    let x = vec![1.0f32; cap(n.wrapping_mul(in_len))];
    let gy = vec![1.0f32; cap(n.wrapping_mul(out_len))];
    let fits = |len: usize, per: Option<usize>| per.is_some_and(|v| v <= len);
    let per_sample = |v: usize| n.checked_mul(v);
    let valid = g.check().is_ok()
        && fits(wt.len(), Some(g.cout * g.cin * k2))
        && fits(bias.len(), Some(g.cout))
        && fits(x.len(), per_sample(in_len))
        && fits(gy.len(), per_sample(out_len));
    if valid {
        // A real layer: compared like the others when small enough to run quickly.
        if n * out_len * g.cin * k2 <= MAX_MACS {
            differential(&g, n, 7, true, true);
        }
        return;
    }
    let mut y = vec![f32::NAN; gy.len()];
    assert!(
        panics(|| conv2d::forward(&g, &wt, &bias, &x, &mut y, n)),
        "forward accepted {g:?}, n {n}"
    );
    let (mut dw, mut db, mut gx) = (wt.clone(), bias.clone(), x.clone());
    assert!(
        panics(|| conv2d::backward(&g, &wt, &x, &gy, Some((&mut dw, &mut db)), Some(&mut gx), n)),
        "backward accepted {g:?}, n {n}"
    );
    // Refused before anything was written.
    assert!(
        y.iter().all(|v| v.is_nan()),
        "forward wrote before refusing"
    );
    assert!(
        dw == wt && db == bias && gx == x,
        "backward wrote before refusing"
    );
}
