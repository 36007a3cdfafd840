//! Host convolution (feature `gemm`), for meta-training on a workstation. Layers with few
//! input channels: im2col plus a tuned matrix product (ndarray's `general_mat_mul`, which runs
//! `matrixmultiply`'s SIMD kernels). Layers with more: each sample's input copied into a
//! zero-padded channels-last image, then one product per kernel offset, either through
//! `general_mat_mul` over the gathered window vectors or, on x86-64 with AVX2 and FMA and
//! channel counts in blocks of 16, through the kernels of `conv_fma.rs`, which read the images
//! in place and give the same bits. Same maths and the same tensors as the direct kernels in
//! `conv2d.rs`, which the device uses: only the order of the additions differs (results agree
//! to float rounding, checked by the tests below). Needs a heap for its scratch, so it is
//! host-only; a device build never enables it.

extern crate std;

use super::conv2d::Geometry;
#[cfg(target_arch = "x86_64")]
use core::cell::Cell;
use core::cell::RefCell;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use std::vec;
use std::vec::Vec;

std::thread_local! {
    /// Per-thread scratch for the patch matrix, the product and the output gradient,
    /// reused between calls so a meta-training step allocates nothing after its first pass.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The weights last reordered for the forward FMA kernel on this thread: a few layers'
/// worth, each kept with the shape and a copy of the weights it came from.
#[cfg(target_arch = "x86_64")]
struct Reordered {
    entries: Vec<ReorderedEntry>,
    next: usize,
}

/// One layer's weights reordered for the forward FMA kernel (`wr`), from weights of shape
/// `[cout, cin, k²]` equal to `src`: the order depends on the shape, so weights of equal
/// values but another shape never share it.
#[cfg(target_arch = "x86_64")]
struct ReorderedEntry {
    shape: (usize, usize, usize),
    src: Vec<f32>,
    wr: Vec<f32>,
}

/// Layers whose reordered weights a thread keeps (the Omniglot CNN has 3 that use them).
#[cfg(target_arch = "x86_64")]
const REORDERED_KEPT: usize = 4;

#[cfg(target_arch = "x86_64")]
std::thread_local! {
    static REORDERED: RefCell<Reordered> = const {
        RefCell::new(Reordered { entries: Vec::new(), next: 0 })
    };
    /// The buffer of [`input_grad_order`], taken out for the length of one [`backward`] (a
    /// job rayon runs on this thread meanwhile finds it empty and allocates its own).
    static INPUT_GRAD_ORDER: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on the weights `wt` reordered for the forward FMA kernel. Predictions with
/// unchanged weights (the common case: one adapted model, many queries) reuse the last
/// reordering: an entry is used only when its shape is the layer's and its copy equals `wt`
/// value for value, so a stale one or another layer's is never read; comparing costs a
/// fraction of reordering, and fails at the first values when the weights have moved.
#[cfg(target_arch = "x86_64")]
fn with_reordered<R>(g: &Geometry, wt: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    let kk = g.win.kernel * g.win.kernel;
    let shape = (g.cout, g.cin, kk);
    let wt = &wt[..g.cout * g.cin * kk];
    REORDERED.with(|r| {
        let mut r = r.borrow_mut();
        let hit = r
            .entries
            .iter()
            .position(|e| e.shape == shape && same_bits(&e.src, wt));
        let at = match hit {
            Some(at) => at,
            None => {
                let at = if r.entries.len() < REORDERED_KEPT {
                    r.entries.push(ReorderedEntry {
                        shape,
                        src: Vec::new(),
                        wr: Vec::new(),
                    });
                    r.entries.len() - 1
                } else {
                    let at = r.next;
                    r.next = (at + 1) % REORDERED_KEPT;
                    at
                };
                // An evicted entry's buffers are reused.
                let e = &mut r.entries[at];
                e.shape = shape;
                e.src.clear();
                e.src.extend_from_slice(wt);
                e.wr.resize(wt.len(), 0.0);
                super::conv_fma::reorder_forward(g.cout, g.cin, kk, wt, &mut e.wr);
                at
            }
        };
        f(&r.entries[at].wr)
    })
}

/// For a [`backward`] pass whose input gradient the FMA kernels compute (`needed`, and the
/// geometry and CPU suit them): the weights `wt` in the input-gradient kernel's order,
/// reordered once before the batch is split so both halves read them. Hand the buffer back
/// with [`INPUT_GRAD_ORDER`]`.set` afterwards.
#[cfg(target_arch = "x86_64")]
fn input_grad_order(g: &Geometry, wt: &[f32], needed: bool) -> Option<Vec<f32>> {
    if !(needed && per_offset(g) && super::conv_fma::usable(g.cin, g.cout)) {
        return None;
    }
    let mut wr = INPUT_GRAD_ORDER.take();
    reorder_input_grad_into(g, wt, &mut wr);
    Some(wr)
}

/// `wr` resized to the weights `wt` and filled with them in the input-gradient kernel's order.
#[cfg(target_arch = "x86_64")]
fn reorder_input_grad_into(g: &Geometry, wt: &[f32], wr: &mut Vec<f32>) {
    let kk = g.win.kernel * g.win.kernel;
    wr.resize(g.cout * g.cin * kk, 0.0);
    super::conv_fma::reorder_input_grad(g.cout, g.cin, kk, wt, wr);
}

/// Whether `a` and `b` hold the same values, bit for bit. Compared 64 values at a time
/// (XORs the compiler vectorises), stopping at the first block that differs.
#[cfg(target_arch = "x86_64")]
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.chunks(64).zip(b.chunks(64)).all(|(x, y)| {
            x.iter()
                .zip(y)
                .fold(0, |d, (p, q)| d | (p.to_bits() ^ q.to_bits()))
                == 0
        })
}

/// Below this many multiply-accumulates per sample the direct kernel is as fast.
const MIN_MACS: usize = 4096;

/// Most scratch values per sample the matrix-product paths take: beyond it (a geometry no
/// real model has, such as a padding far wider than the input) the direct kernels, which need
/// no scratch, run instead of allocating gigabytes.
const MAX_SCRATCH: usize = super::MAX_SHAPE_LEN;

/// Whether the GEMM path pays off for this geometry (one that passed
/// [`Geometry::check`](super::conv2d::Geometry::check)), and its scratch stays within
/// [`MAX_SCRATCH`] per sample.
pub fn worthwhile(g: &Geometry) -> bool {
    let k = g.win.kernel;
    let plane = g.oh.checked_mul(g.ow);
    let macs = plane
        .and_then(|p| p.checked_mul(g.cout))
        .and_then(|m| m.checked_mul(g.cin))
        .and_then(|m| m.checked_mul(k))
        .and_then(|m| m.checked_mul(k));
    // Whichever path runs: the padded images, at most `cin·k²` gathered rows and the
    // `cout`-row product per position.
    let (ph, pw) = Padded::dims(g);
    let scratch = ph
        .checked_mul(pw)
        .and_then(|px| px.checked_mul(g.cin))
        .zip(g.cin.checked_mul(k * k).and_then(|r| r.checked_add(g.cout)))
        .and_then(|(images, rows)| plane?.checked_mul(rows)?.checked_add(images));
    macs.is_some_and(|m| m >= MIN_MACS) && scratch.is_some_and(|s| s <= MAX_SCRATCH)
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut v = s.borrow_mut();
        if v.len() < len {
            v.resize(len, 0.0);
        }
        f(&mut v[..len])
    })
}

/// Rows of the patch matrix: one per (input channel, kernel row, kernel column).
fn rows(g: &Geometry) -> usize {
    g.cin * g.win.kernel * g.win.kernel
}

/// A sample's channel plane with its padding made explicit: the input copied into a zeroed
/// `ph × pw` plane at offset (padding, padding), so every window reads inside it.
struct Padded {
    ph: usize,
    pw: usize,
    /// For each output position `oy·ow + ox`, where its window starts in a padded plane
    /// relative to the window of position 0: `oy·stride·pw + ox·stride`. The gathers walk
    /// this table, one flat loop per plane instead of one short loop per output row.
    starts: Vec<usize>,
    /// Where the windows of each kernel offset start in a padded plane, in kernel order (row,
    /// then column): `ky·pw + kx` for offset `ky·k + kx`.
    origins: Vec<usize>,
}

impl Padded {
    /// The padded plane's height and width: rows (columns) 0..(o-1)·stride + kernel are
    /// read; the input itself ends at padding + h (w).
    fn dims(g: &Geometry) -> (usize, usize) {
        let (k, st) = (g.win.kernel, g.win.stride);
        (
            ((g.oh - 1) * st + k).max(g.win.padding + g.h),
            ((g.ow - 1) * st + k).max(g.win.padding + g.w),
        )
    }
    fn new(g: &Geometry) -> Padded {
        let st = g.win.stride;
        let (ph, pw) = Padded::dims(g);
        let k = g.win.kernel;
        let starts = (0..g.oh)
            .flat_map(|oy| (0..g.ow).map(move |ox| oy * st * pw + ox * st))
            .collect();
        let origins = (0..k)
            .flat_map(|ky| (0..k).map(move |kx| ky * pw + kx))
            .collect();
        Padded {
            ph,
            pw,
            starts,
            origins,
        }
    }
    /// How far the windows of one kernel offset reach past its origin: every start plus 1.
    /// An origin `ky·pw + kx` plus this span stays inside the plane (see `new`).
    fn span(&self) -> usize {
        self.starts.last().map_or(0, |&s| s + 1)
    }
    fn len(&self) -> usize {
        self.ph * self.pw
    }
    /// The kernel offsets in kernel order: each one's index `ky·k + kx` and its origin.
    fn offsets(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.origins.iter().copied().enumerate()
    }
}

/// Fills `cols` (`rows × n·P`, row-major, P = oh·ow) with the input patches of `n` samples:
/// column `s·P + oy·ow + ox` of row (ci, ky, kx) holds the input under kernel offset (ky, kx)
/// of output position (oy, ox) of sample `s`, zero where it overlaps the padding. `planes`
/// holds the padded input planes.
fn im2col(g: &Geometry, pad: &Padded, planes: &mut [f32], x: &[f32], n: usize, cols: &mut [f32]) {
    pad_planes(g, pad, x, n, planes);
    for (j, origin) in pad.offsets() {
        gather(g, pad, planes, n, (j, origin), cols);
    }
}

/// Writes into the input gradient `gx` the patch-matrix gradient `cols` summed back onto the
/// input positions (the transpose of [`im2col`]); contributions to one position are added in
/// kernel order (row, then column), from 0. `planes` is scratch for the padded planes.
fn col2im(g: &Geometry, pad: &Padded, planes: &mut [f32], cols: &[f32], n: usize, gx: &mut [f32]) {
    planes.fill(0.0);
    for (j, origin) in pad.offsets() {
        scatter_add(g, pad, cols, n, (j, origin), planes);
    }
    unpad_planes(g, pad, planes, n, gx);
}

/// Convolutions with at least this many input channels run as one product per kernel offset
/// over the `n·P × cin` window vectors (gathered, or read in place by the FMA kernels), which
/// stay in cache, instead of one product over the whole (`kernel²` times larger) im2col
/// matrix, whose writes and reads go to memory. Chosen by the
/// geometry alone, never by the batch size, so a sample's output does not depend on the batch
/// it is predicted in (per-element sums in the same order at batch 1 and 25; a test checks
/// it).
const PER_OFFSET_MIN_CIN: usize = 8;

/// Whether a layer takes the per-offset path (else im2col).
fn per_offset(g: &Geometry) -> bool {
    g.cin >= PER_OFFSET_MIN_CIN
}

/// Copies each of the `n × cin` input planes into its zero-padded plane in `planes`.
fn pad_planes(g: &Geometry, pad: &Padded, x: &[f32], n: usize, planes: &mut [f32]) {
    let p = g.win.padding;
    planes.fill(0.0);
    for (xc, pc) in x
        .chunks_exact(g.h * g.w)
        .take(n * g.cin)
        .zip(planes.chunks_exact_mut(pad.len()))
    {
        for (iy, row) in xc.chunks_exact(g.w).enumerate() {
            pc[(iy + p) * pad.pw + p..][..g.w].copy_from_slice(row);
        }
    }
}

/// The interior of each padded plane (the input positions) copied back into `gx`.
fn unpad_planes(g: &Geometry, pad: &Padded, planes: &[f32], n: usize, gx: &mut [f32]) {
    let p = g.win.padding;
    for (gc, pc) in gx
        .chunks_exact_mut(g.h * g.w)
        .take(n * g.cin)
        .zip(planes.chunks_exact(pad.len()))
    {
        for (iy, row) in gc.chunks_exact_mut(g.w).enumerate() {
            row.copy_from_slice(&pc[(iy + p) * pad.pw + p..][..g.w]);
        }
    }
}

/// For kernel offset `j` (index `ky·k + kx`, windows from `origin` = ky·pw + kx in a padded
/// plane), the input value under each output position, for every channel and sample, into
/// row `ci·k² + j` of the im2col matrix `m` (`cin·k² × n·P`), columns `s·P ..`.
fn gather(
    g: &Geometry,
    pad: &Padded,
    planes: &[f32],
    n: usize,
    (j, origin): (usize, usize),
    m: &mut [f32],
) {
    let plane = g.oh * g.ow;
    let width = n * plane;
    let kk = g.win.kernel * g.win.kernel;
    for (i, pc) in planes.chunks_exact(pad.len()).take(n * g.cin).enumerate() {
        let (s, ci) = (i / g.cin, i % g.cin);
        let dst = &mut m[(ci * kk + j) * width + s * plane..][..plane];
        let src = &pc[origin..origin + pad.span()];
        for (d, &at) in dst.iter_mut().zip(&pad.starts) {
            *d = src[at];
        }
    }
}

/// The transpose of [`gather`]: adds row `ci·k² + j` of `m` onto the padded planes at the
/// windows of kernel offset `j`.
fn scatter_add(
    g: &Geometry,
    pad: &Padded,
    m: &[f32],
    n: usize,
    (j, origin): (usize, usize),
    planes: &mut [f32],
) {
    let plane = g.oh * g.ow;
    let width = n * plane;
    let kk = g.win.kernel * g.win.kernel;
    for (i, pc) in planes
        .chunks_exact_mut(pad.len())
        .take(n * g.cin)
        .enumerate()
    {
        let (s, ci) = (i / g.cin, i % g.cin);
        let src = &m[(ci * kk + j) * width + s * plane..][..plane];
        let dst = &mut pc[origin..origin + pad.span()];
        for (&v, &at) in src.iter().zip(&pad.starts) {
            dst[at] += v;
        }
    }
}

/// The per-offset path keeps each sample's padded input as one `ph × pw` image of `cin`-vectors
/// (channels last), so the input under a window is one contiguous vector: `n` such images
/// from the `n × cin × h × w` input `x`, zero outside it. Written row by row (each image row,
/// `w · cin` values, stays in L1 while the channels are interleaved into it).
fn pad_images(g: &Geometry, pad: &Padded, x: &[f32], n: usize, images: &mut [f32]) {
    let (p, c) = (g.win.padding, g.cin);
    let (hw, row_len) = (g.h * g.w, pad.pw * c);
    for (xs, im) in x
        .chunks_exact(c * hw)
        .take(n)
        .zip(images.chunks_exact_mut(pad.len() * c))
    {
        // The padding: whole rows above and below the input, then the margins of its rows.
        let (top, rest) = im.split_at_mut(p * row_len);
        top.fill(0.0);
        let (mid, bottom) = rest.split_at_mut(g.h * row_len);
        bottom.fill(0.0);
        for (iy, row) in mid.chunks_exact_mut(row_len).enumerate() {
            let (left, rest) = row.split_at_mut(p * c);
            left.fill(0.0);
            let (inside, right) = rest.split_at_mut(g.w * c);
            right.fill(0.0);
            for (ci, rows) in xs.chunks(8 * hw).enumerate() {
                interleave(rows, hw, iy * g.w, g.w, &mut inside[8 * ci..], c);
            }
        }
    }
}

/// The interior of each padded image copied back into `gx` (`n × cin × h × w`): the
/// transpose of [`pad_images`], row by row likewise.
fn unpad_images(g: &Geometry, pad: &Padded, images: &[f32], n: usize, gx: &mut [f32]) {
    let (p, c) = (g.win.padding, g.cin);
    let (hw, row_len) = (g.h * g.w, pad.pw * c);
    for (gs, im) in gx
        .chunks_exact_mut(c * hw)
        .take(n)
        .zip(images.chunks_exact(pad.len() * c))
    {
        for iy in 0..g.h {
            let inside = &im[(iy + p) * row_len + p * c..][..g.w * c];
            for (ci, rows) in gs.chunks_mut(8 * hw).enumerate() {
                deinterleave(&inside[8 * ci..], c, rows, hw, iy * g.w, g.w);
            }
        }
    }
}

/// Up to 8 channel planes (`planes`, `stride` apart) read at `at..at + len` and written
/// interleaved: value `x` of plane `t` to `dst[x·c + t]`. A block of 8 is a fixed-size copy the
/// compiler keeps in registers; a last block of fewer channels goes one value at a time.
fn interleave(planes: &[f32], stride: usize, at: usize, len: usize, dst: &mut [f32], c: usize) {
    let t = planes.len().div_ceil(stride);
    if t == 8 {
        let rows: [&[f32]; 8] = core::array::from_fn(|i| &planes[i * stride + at..][..len]);
        for (x, px) in dst.chunks_mut(c).take(len).enumerate() {
            let v: [f32; 8] = core::array::from_fn(|i| rows[i][x]);
            px[..8].copy_from_slice(&v);
        }
    } else {
        for (i, plane) in planes.chunks(stride).enumerate() {
            for (x, &v) in plane[at..][..len].iter().enumerate() {
                dst[x * c + i] = v;
            }
        }
    }
}

/// The transpose of [`interleave`]: value `x·c + t` of `src` to position `at + x` of plane `t`
/// of `planes`.
fn deinterleave(src: &[f32], c: usize, planes: &mut [f32], stride: usize, at: usize, len: usize) {
    let t = planes.len().div_ceil(stride);
    if t == 8 {
        let mut rows = planes.chunks_mut(stride).map(|p| &mut p[at..][..len]);
        let mut rows: [&mut [f32]; 8] = core::array::from_fn(|_| rows.next().unwrap_or_default());
        for (x, px) in src.chunks(c).take(len).enumerate() {
            for (row, &v) in rows.iter_mut().zip(&px[..8]) {
                row[x] = v;
            }
        }
    } else {
        for (i, plane) in planes.chunks_mut(stride).enumerate() {
            for (x, d) in plane[at..][..len].iter_mut().enumerate() {
                *d = src[x * c + i];
            }
        }
    }
}

/// For the kernel offset whose windows start at `origin` in a padded image, the input vector
/// under each output position: row `s·P + p` of `xk` (`n·P × cin`) is the `cin` channels under
/// position `p` of sample `s`. Whole vectors are copied, so this costs little next to the
/// product.
fn gather_vectors(
    g: &Geometry,
    pad: &Padded,
    images: &[f32],
    n: usize,
    origin: usize,
    xk: &mut [f32],
) {
    let c = g.cin;
    let plane = g.oh * g.ow;
    for (im, dst) in images
        .chunks_exact(pad.len() * c)
        .take(n)
        .zip(xk.chunks_exact_mut(plane * c))
    {
        let src = &im[origin * c..(origin + pad.span()) * c];
        for (d, &at) in dst.chunks_exact_mut(c).zip(&pad.starts) {
            d.copy_from_slice(&src[at * c..][..c]);
        }
    }
}

/// The transpose of [`gather_vectors`]: adds each row of `xk` onto the vector under its
/// window in the padded images.
fn scatter_add_vectors(
    g: &Geometry,
    pad: &Padded,
    xk: &[f32],
    n: usize,
    origin: usize,
    images: &mut [f32],
) {
    let c = g.cin;
    let plane = g.oh * g.ow;
    for (im, src) in images
        .chunks_exact_mut(pad.len() * c)
        .take(n)
        .zip(xk.chunks_exact(plane * c))
    {
        let dst = &mut im[origin * c..(origin + pad.span()) * c];
        for (s, &at) in src.chunks_exact(c).zip(&pad.starts) {
            for (d, &v) in dst[at * c..][..c].iter_mut().zip(s) {
                *d += v;
            }
        }
    }
}

/// The `cout × cin` weights of kernel offset `j = ky·k + kx`, viewed in place in
/// `[cout, cin, k, k]`.
fn offset_weights<'w>(g: &Geometry, wt: &'w [f32], j: usize) -> ArrayView2<'w, f32> {
    let k = g.win.kernel;
    ArrayView2::from_shape((g.cout, g.cin).strides((g.cin * k * k, k * k)), &wt[j..])
        .expect("weights sized for their shape")
}

/// Views `data` as a row-major `r × c` matrix. The callers pass slices they sized exactly,
/// so the shape always matches.
fn view(data: &[f32], r: usize, c: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((r, c), &data[..r * c]).expect("slice sized for its matrix shape")
}

fn view_mut(data: &mut [f32], r: usize, c: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((r, c), &mut data[..r * c]).expect("slice sized for its matrix shape")
}

/// Forward for `n` samples, same contract as [`super::conv2d::forward`]. The batch is split
/// in two halves handed to `rayon::join`, so a thread left idle by the meta-batch (5 tasks on
/// 2 threads) takes one; the split is fixed, so results do not depend on the thread count.
pub fn forward(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    let (in_len, out_len) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    if n < 2 {
        return forward_part(g, wt, bias, x, y, n);
    }
    let h = n / 2;
    let (x0, x1) = x[..n * in_len].split_at(h * in_len);
    let (y0, y1) = y[..n * out_len].split_at_mut(h * out_len);
    rayon::join(
        || forward_part(g, wt, bias, x0, y0, h),
        || forward_part(g, wt, bias, x1, y1, n - h),
    );
}

fn forward_part(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    if per_offset(g) {
        return forward_offsets(g, wt, bias, x, y, n);
    }
    let kk = rows(g);
    let plane = g.oh * g.ow;
    let width = n * plane;
    let pad = Padded::new(g);
    with_scratch(
        kk * width + g.cout * width + n * g.cin * pad.len(),
        |scratch| {
            let (cols, rest) = scratch.split_at_mut(kk * width);
            let (out, planes) = rest.split_at_mut(g.cout * width);
            im2col(g, &pad, planes, x, n, cols);
            general_mat_mul(
                1.0,
                &view(wt, g.cout, kk),
                &view(cols, kk, width),
                0.0,
                &mut view_mut(out, g.cout, width),
            );
            scatter(g, bias, out, y, n);
        },
    );
}

/// [`forward_part`] as one product per kernel offset, summed into the output in kernel order.
fn forward_offsets(g: &Geometry, wt: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], n: usize) {
    let pad = Padded::new(g);
    let images_len = n * g.cin * pad.len();
    #[cfg(target_arch = "x86_64")]
    if super::conv_fma::usable(g.cin, g.cout) {
        let lay = fma_layout(g, &pad, n);
        return with_scratch(images_len, |images| {
            pad_images(g, &pad, x, n, images);
            with_reordered(g, wt, |wr| {
                super::conv_fma::forward(&lay, images, wr, bias, y);
            })
        });
    }
    forward_offsets_gemm(g, wt, bias, x, y, n)
}

/// The FMA kernels' view of the padded images and the output of `n` samples.
#[cfg(target_arch = "x86_64")]
fn fma_layout<'a>(g: &Geometry, pad: &'a Padded, n: usize) -> super::conv_fma::Layout<'a> {
    super::conv_fma::Layout {
        n,
        image_len: g.cin * pad.len(),
        cin: g.cin,
        cout: g.cout,
        starts: &pad.starts,
        origins: &pad.origins,
    }
}

/// [`forward_offsets`] through `general_mat_mul`, one product per offset.
fn forward_offsets_gemm(
    g: &Geometry,
    wt: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    n: usize,
) {
    let width = n * g.oh * g.ow;
    let pad = Padded::new(g);
    let images_len = n * g.cin * pad.len();
    with_scratch(images_len + g.cin * width + g.cout * width, |scratch| {
        let (images, rest) = scratch.split_at_mut(images_len);
        let (xk, out) = rest.split_at_mut(g.cin * width);
        pad_images(g, &pad, x, n, images);
        for (j, origin) in pad.offsets() {
            gather_vectors(g, &pad, images, n, origin, xk);
            let beta = if j == 0 { 0.0 } else { 1.0 };
            general_mat_mul(
                1.0,
                &offset_weights(g, wt, j),
                &view(xk, width, g.cin).t(),
                beta,
                &mut view_mut(out, g.cout, width),
            );
        }
        scatter(g, bias, out, y, n);
    });
}

/// Writes the `cout × n·P` product plus the bias into `y` (`n × cout×oh×ow`).
fn scatter(g: &Geometry, bias: &[f32], out: &[f32], y: &mut [f32], n: usize) {
    let plane = g.oh * g.ow;
    let width = n * plane;
    let out_len = g.cout * plane;
    for (s, ys) in y.chunks_exact_mut(out_len).take(n).enumerate() {
        for (co, yc) in ys.chunks_exact_mut(plane).enumerate() {
            let src = &out[co * width + s * plane..][..plane];
            for (d, &v) in yc.iter_mut().zip(src) {
                *d = v + bias[co];
            }
        }
    }
}

/// The output gradient `gy` (`n × cout×oh×ow`) as a `cout × n·P` matrix in `gyc`.
fn output_grad_matrix(g: &Geometry, gy: &[f32], n: usize, gyc: &mut [f32]) {
    let plane = g.oh * g.ow;
    let width = n * plane;
    for (s, gs) in gy.chunks_exact(g.cout * plane).take(n).enumerate() {
        for (co, gc) in gs.chunks_exact(plane).enumerate() {
            gyc[co * width + s * plane..][..plane].copy_from_slice(gc);
        }
    }
}

/// Bias gradient: each channel's output gradient `gy` (`n × cout×oh×ow`) summed over the
/// samples and positions, in that order.
/// Eight channels are summed side by side, each in its own order, so the eight chains of
/// dependent additions overlap. Each sum starts from -0.0, as `Iterator::sum` does.
fn bias_grad(g: &Geometry, gy: &[f32], n: usize, db: &mut [f32]) {
    let plane = g.oh * g.ow;
    let db = &mut db[..g.cout];
    db.fill(-0.0);
    for s in 0..n {
        let gs = &gy[s * g.cout * plane..][..g.cout * plane];
        for (d8, g8) in db.chunks_mut(8).zip(gs.chunks(8 * plane)) {
            let mut acc = [0.0f32; 8];
            acc[..d8.len()].copy_from_slice(d8);
            if d8.len() == 8 {
                let rows: [&[f32]; 8] = core::array::from_fn(|i| &g8[i * plane..][..plane]);
                for p in 0..plane {
                    for (a, row) in acc.iter_mut().zip(&rows) {
                        *a += row[p];
                    }
                }
            } else {
                for (a, row) in acc.iter_mut().zip(g8.chunks(plane)) {
                    *a = row.iter().fold(*a, |a, v| a + v);
                }
            }
            d8.copy_from_slice(&acc[..d8.len()]);
        }
    }
}

/// Backward for `n` samples, same contract as [`super::conv2d::backward`]. Split in two
/// halves of the batch like [`forward`]; the weight and bias gradients are the first half's
/// plus the second's.
pub fn backward(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    #[cfg(target_arch = "x86_64")]
    let reordered = input_grad_order(g, wt, gx.is_some());
    #[cfg(not(target_arch = "x86_64"))]
    let reordered: Option<Vec<f32>> = None;
    let w = BackWeights {
        plain: wt,
        input_grad: reordered.as_deref(),
    };
    let (in_len, out_len) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    let h = n / 2;
    if n < 2 {
        backward_part(g, w, x, gy, params_grad, gx, n);
    } else {
        let (x0, x1) = x[..n * in_len].split_at(h * in_len);
        let (gy0, gy1) = gy[..n * out_len].split_at(h * out_len);
        let (gx0, gx1) = match gx {
            Some(gx) => {
                let (a, b) = gx[..n * in_len].split_at_mut(h * in_len);
                (Some(a), Some(b))
            }
            None => (None, None),
        };
        match params_grad {
            Some((dw, db)) => {
                let (mut dw1, mut db1) = (vec![0.0; dw.len()], vec![0.0; db.len()]);
                rayon::join(
                    || backward_part(g, w, x0, gy0, Some((&mut *dw, &mut *db)), gx0, h),
                    || backward_part(g, w, x1, gy1, Some((&mut dw1, &mut db1)), gx1, n - h),
                );
                for (d, e) in dw.iter_mut().zip(&dw1) {
                    *d += e;
                }
                for (d, e) in db.iter_mut().zip(&db1) {
                    *d += e;
                }
            }
            None => {
                rayon::join(
                    || backward_part(g, w, x0, gy0, None, gx0, h),
                    || backward_part(g, w, x1, gy1, None, gx1, n - h),
                );
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(wr) = reordered {
        INPUT_GRAD_ORDER.set(wr);
    }
}

/// A layer's weights `[cout, cin, k²]` as a backward pass reads them and, when the FMA
/// kernels compute its input gradient, the same weights in their order.
#[derive(Clone, Copy)]
struct BackWeights<'a> {
    plain: &'a [f32],
    input_grad: Option<&'a [f32]>,
}

fn backward_part(
    g: &Geometry,
    w: BackWeights<'_>,
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    if per_offset(g) {
        return backward_offsets(g, w, x, gy, params_grad, gx, n);
    }
    let wt = w.plain;
    let kk = rows(g);
    let plane = g.oh * g.ow;
    let width = n * plane;
    let pad = Padded::new(g);
    with_scratch(
        kk * width + g.cout * width + n * g.cin * pad.len(),
        |scratch| {
            let (cols, rest) = scratch.split_at_mut(kk * width);
            let (gyc, planes) = rest.split_at_mut(g.cout * width);
            output_grad_matrix(g, gy, n, gyc);
            let gyv = view(gyc, g.cout, width);
            if let Some((dw, db)) = params_grad {
                im2col(g, &pad, planes, x, n, cols);
                general_mat_mul(
                    1.0,
                    &gyv,
                    &view(cols, kk, width).t(),
                    0.0,
                    &mut view_mut(dw, g.cout, kk),
                );
                bias_grad(g, gy, n, db);
            }
            if let Some(gx) = gx {
                general_mat_mul(
                    1.0,
                    &view(wt, g.cout, kk).t(),
                    &gyv,
                    0.0,
                    &mut view_mut(cols, kk, width),
                );
                col2im(g, &pad, planes, cols, n, gx);
            }
        },
    );
}

/// [`backward_part`] as one product per kernel offset: the weight gradient of each offset
/// written in place in `[cout, cin, k, k]`, the input gradient summed onto padded planes in
/// kernel order.
fn backward_offsets(
    g: &Geometry,
    w: BackWeights<'_>,
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if super::conv_fma::usable(g.cin, g.cout) {
        return backward_offsets_fma(g, w, x, gy, params_grad, gx, n);
    }
    backward_offsets_gemm(g, w.plain, x, gy, params_grad, gx, n)
}

/// [`backward_offsets`] through the FMA kernels: the same results, bit for bit.
#[cfg(target_arch = "x86_64")]
fn backward_offsets_fma(
    g: &Geometry,
    w: BackWeights<'_>,
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    let pad = Padded::new(g);
    let lay = fma_layout(g, &pad, n);
    let images_len = n * g.cin * pad.len();
    with_scratch(images_len, |images| {
        if let Some((dw, db)) = params_grad {
            pad_images(g, &pad, x, n, images);
            super::conv_fma::backward_weights(&lay, images, gy, dw);
            bias_grad(g, gy, n, db);
        }
        if let Some(gx) = gx {
            images.fill(0.0);
            // Reordered here only when the caller did not.
            let mut local = Vec::new();
            let wr = match w.input_grad {
                Some(wr) => wr,
                None => {
                    reorder_input_grad_into(g, w.plain, &mut local);
                    &local
                }
            };
            super::conv_fma::backward_input(&lay, gy, wr, images);
            unpad_images(g, &pad, images, n, gx);
        }
    });
}

/// [`backward_offsets`] through `general_mat_mul`, one product per offset.
fn backward_offsets_gemm(
    g: &Geometry,
    wt: &[f32],
    x: &[f32],
    gy: &[f32],
    params_grad: Option<(&mut [f32], &mut [f32])>,
    gx: Option<&mut [f32]>,
    n: usize,
) {
    let k = g.win.kernel;
    let plane = g.oh * g.ow;
    let width = n * plane;
    let pad = Padded::new(g);
    let images_len = n * g.cin * pad.len();
    with_scratch(images_len + g.cin * width + g.cout * width, |scratch| {
        let (images, rest) = scratch.split_at_mut(images_len);
        let (xk, gyc) = rest.split_at_mut(g.cin * width);
        output_grad_matrix(g, gy, n, gyc);
        let gyv = view(gyc, g.cout, width);
        if let Some((dw, db)) = params_grad {
            pad_images(g, &pad, x, n, images);
            for (j, origin) in pad.offsets() {
                gather_vectors(g, &pad, images, n, origin, xk);
                let mut dwk = ArrayViewMut2::from_shape(
                    (g.cout, g.cin).strides((g.cin * k * k, k * k)),
                    &mut dw[j..],
                )
                .expect("weight gradient sized for its shape");
                general_mat_mul(1.0, &gyv, &view(xk, width, g.cin), 0.0, &mut dwk);
            }
            bias_grad(g, gy, n, db);
        }
        if let Some(gx) = gx {
            images.fill(0.0);
            for (j, origin) in pad.offsets() {
                general_mat_mul(
                    1.0,
                    &gyv.t(),
                    &offset_weights(g, wt, j),
                    0.0,
                    &mut view_mut(xk, width, g.cin),
                );
                scatter_add_vectors(g, &pad, xk, n, origin, images);
            }
            unpad_images(g, &pad, images, n, gx);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::conv2d;
    use super::super::Window;
    use super::*;
    use std::vec;

    fn lcg(seed: &mut u32) -> f32 {
        *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    }

    fn close(a: &[f32], b: &[f32]) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{i}: {x} vs {y}");
        }
    }

    /// A square `h × h` input, square kernel, same stride and padding on both axes.
    fn square(
        cin: usize,
        h: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Geometry {
        let oh = (h + 2 * padding - kernel) / stride + 1;
        Geometry {
            cin,
            h,
            w: h,
            cout,
            oh,
            ow: oh,
            win: Window {
                kernel,
                stride,
                padding,
            },
        }
    }

    #[test]
    fn matches_direct_kernels() {
        for &(cin, h, cout, kernel, stride, padding, n) in &[
            (1, 28, 64, 3, 2, 1, 3),
            (3, 7, 5, 3, 2, 1, 2),
            (2, 9, 4, 3, 1, 1, 2),
            (4, 6, 3, 2, 2, 0, 1),
            (2, 5, 3, 5, 1, 2, 2),
            (1, 2, 2, 5, 1, 3, 2),
            (64, 14, 64, 3, 2, 1, 5),
            (8, 5, 3, 3, 1, 1, 3),
            (9, 6, 4, 2, 2, 0, 1),
            (8, 3, 2, 5, 1, 3, 2),
            (8, 10, 3, 4, 3, 2, 2),
            (8, 11, 2, 3, 2, 0, 2),
        ] {
            let g = square(cin, h, cout, kernel, stride, padding);
            let oh = g.oh;
            let mut seed = 7;
            let mut rnd = |len: usize| (0..len).map(|_| lcg(&mut seed)).collect::<Vec<_>>();
            let wt = rnd(cout * cin * kernel * kernel);
            let b = rnd(cout);
            let x = rnd(n * cin * h * h);
            let gy = rnd(n * cout * oh * oh);
            // The direct kernels against this path.
            let mut y0 = vec![0.0; gy.len()];
            let mut y1 = y0.clone();
            conv2d::direct(|| conv2d::forward(&g, &wt, &b, &x, &mut y0, n));
            forward(&g, &wt, &b, &x, &mut y1, n);
            close(&y1, &y0);
            let (mut dw0, mut db0, mut gx0) =
                (vec![0.0; wt.len()], vec![0.0; cout], vec![0.0; x.len()]);
            let (mut dw1, mut db1, mut gx1) = (dw0.clone(), db0.clone(), vec![1.0; x.len()]);
            conv2d::direct(|| {
                conv2d::backward(
                    &g,
                    &wt,
                    &x,
                    &gy,
                    Some((&mut dw0, &mut db0)),
                    Some(&mut gx0),
                    n,
                )
            });
            backward(
                &g,
                &wt,
                &x,
                &gy,
                Some((&mut dw1, &mut db1)),
                Some(&mut gx1),
                n,
            );
            close(&dw1, &dw0);
            close(&db1, &db0);
            close(&gx1, &gx0);
        }
    }
    /// The AVX-512 and AVX2/FMA kernels' forward, input gradient and weight gradient are the
    /// `general_mat_mul` path's, bit for bit, over geometries that exercise every block
    /// remainder (of 6 and of 16 rows) and a restart of matrixmultiply's chains in each product
    /// (more than 256 input channels, output channels, positions).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_kernels_are_bit_identical() {
        if !super::super::conv_fma::usable(16, 16) {
            return; // a CPU without AVX2 and FMA never runs the kernels
        }
        crate::simd::each_path(|path| {
            if path == crate::simd::Path::Baseline {
                return; // the kernels run on AVX2 or AVX-512 only
            }
            // Bits, or where the first difference is (not the whole vectors).
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let same = |a: &[u32], b: &[u32]| a.iter().zip(b).position(|(x, y)| x != y);
            for &(cin, h, cout, kernel, stride, padding, n) in &[
                (64, 14, 64, 3, 2, 1, 1),
                (64, 14, 64, 3, 2, 1, 6),
                (64, 7, 64, 3, 2, 1, 5),
                (64, 4, 32, 3, 2, 1, 7),
                (16, 9, 16, 3, 1, 1, 2),
                (320, 5, 16, 3, 2, 1, 2),
                (16, 5, 272, 3, 2, 1, 2),
                (32, 8, 16, 4, 3, 2, 3),
            ] {
                let g = square(cin, h, cout, kernel, stride, padding);
                let mut seed = 11;
                let mut rnd = |len: usize| (0..len).map(|_| lcg(&mut seed)).collect::<Vec<_>>();
                let mut wt = rnd(cout * cin * kernel * kernel);
                let b = rnd(cout);
                let x = rnd(n * cin * h * h);
                let gy = rnd(n * cout * g.oh * g.ow);
                let at = std::format!("cin {cin}, h {h}, cout {cout}, n {n}, {path:?}");
                // `None`: the matrix-product path; `Some(handed)`: the FMA path, handed the weights
                // reordered or reordering them itself.
                let grads = |wt: &[f32], fma: Option<bool>| {
                    let (mut dw, mut db, mut gx) =
                        (vec![2.0; wt.len()], vec![3.0; cout], vec![4.0; x.len()]);
                    let pg = Some((&mut dw[..], &mut db[..]));
                    if let Some(handed) = fma {
                        let wr = handed.then(|| {
                            let mut wr = Vec::new();
                            reorder_input_grad_into(&g, wt, &mut wr);
                            wr
                        });
                        let w = BackWeights {
                            plain: wt,
                            input_grad: wr.as_deref(),
                        };
                        backward_offsets_fma(&g, w, &x, &gy, pg, Some(&mut gx), n);
                    } else {
                        backward_offsets_gemm(&g, wt, &x, &gy, pg, Some(&mut gx), n);
                    }
                    (bits(&dw), bits(&db), bits(&gx))
                };
                // The same weights twice (the second reuses the forward's reordering), then
                // changed at the last value and at the first: a reordering is reused only for
                // equal weights.
                let last = wt.len() - 1;
                for change in [None, None, Some(last), Some(0)] {
                    if let Some(i) = change {
                        wt[i] += 0.25;
                    }
                    let mut fast = vec![0.0; gy.len()];
                    let mut gemm = vec![1.0; gy.len()];
                    forward_offsets(&g, &wt, &b, &x, &mut fast, n);
                    forward_offsets_gemm(&g, &wt, &b, &x, &mut gemm, n);
                    let first = same(&bits(&fast), &bits(&gemm));
                    assert_eq!(first, None, "forward, {at}, change {change:?}");
                }
                let gemm = grads(&wt, None);
                for handed in [false, true] {
                    let fast = grads(&wt, Some(handed));
                    let at = std::format!("{at}, reordering handed over: {handed}");
                    assert_eq!(same(&fast.0, &gemm.0), None, "weight gradient, {at}");
                    assert_eq!(same(&fast.1, &gemm.1), None, "bias gradient, {at}");
                    assert_eq!(same(&fast.2, &gemm.2), None, "input gradient, {at}");
                }
                // The bias gradient is each channel's plain sum over samples then positions.
                let mut db = vec![1.0; cout];
                bias_grad(&g, &gy, n, &mut db);
                let plane = g.oh * g.ow;
                let want: Vec<f32> = (0..cout)
                    .map(|co| {
                        (0..n)
                            .flat_map(|s| &gy[(s * cout + co) * plane..][..plane])
                            .sum()
                    })
                    .collect();
                assert_eq!(same(&bits(&db), &bits(&want)), None, "bias sums, {at}");
            }
        });
    }

    /// The forward reordering cache holds a layer's weights in an order that depends on its
    /// shape: layers whose weights have the same values and count but not the same shape
    /// (32 → 16 and 16 → 32 channels, 3×3) each get their own, in either order and again.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn reordered_weights_are_kept_per_shape() {
        if !super::super::conv_fma::usable(16, 16) {
            return; // the cache serves only the FMA kernels
        }
        let mut seed = 5;
        let mut rnd = |len: usize| (0..len).map(|_| lcg(&mut seed)).collect::<Vec<_>>();
        let wt = rnd(32 * 16 * 9);
        let b = rnd(32);
        let (wide, narrow) = (square(16, 5, 32, 3, 1, 1), square(32, 5, 16, 3, 1, 1));
        let x = rnd(32 * 25);
        for g in [wide, narrow, wide, narrow, narrow] {
            let len = g.cout * g.oh * g.ow;
            let (mut fast, mut gemm) = (vec![0.0; len], vec![1.0; len]);
            let x = &x[..g.cin * g.h * g.w];
            forward_offsets(&g, &wt, &b, x, &mut fast, 1);
            forward_offsets_gemm(&g, &wt, &b, x, &mut gemm, 1);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&gemm), "cin {}, cout {}", g.cin, g.cout);
        }
    }

    /// A geometry that passes the checks but whose padded images would take gigabytes (a
    /// 1-pixel input padded by 2^20 on each side, 1×1 kernel, stride 2^20: 3 × 3 outputs) runs
    /// the direct kernels, which need no scratch.
    #[test]
    fn huge_padding_runs_the_direct_kernels() {
        let big = 1 << 20;
        let g = square(16, 1, 16, 1, big, big);
        assert_eq!(g.check(), Ok(()));
        assert_eq!((g.oh, g.ow), (3, 3));
        assert!(!worthwhile(&g));
        let (wt, b) = (vec![1.0; 16 * 16], vec![0.5; 16]);
        let mut y = vec![0.0; 16 * 9];
        conv2d::forward(&g, &wt, &b, &[1.0; 16], &mut y, 1);
        // Only the centre output's window holds the pixel.
        for (i, &v) in y.iter().enumerate() {
            let want = if i % 9 == 4 { 16.5 } else { 0.5 };
            assert_eq!(v, want, "{i}");
        }
        // The same geometry with a realistic padding does take the matrix-product path.
        assert!(worthwhile(&square(16, 5, 16, 3, 1, 1)));
    }

    /// A sample's forward output does not depend on the batch it is computed in: the same
    /// bits alone and at batch 7, for the im2col and the per-offset paths.
    #[test]
    fn forward_is_batch_independent() {
        for &(cin, h, cout, stride) in &[(1, 28, 16, 2), (64, 14, 64, 2), (8, 7, 4, 1)] {
            let g = square(cin, h, cout, 3, stride, 1);
            let oh = g.oh;
            let n = 7;
            let mut seed = 3;
            let mut rnd = |len: usize| (0..len).map(|_| lcg(&mut seed)).collect::<Vec<_>>();
            let wt = rnd(cout * cin * 9);
            let b = rnd(cout);
            let x = rnd(n * cin * h * h);
            let out_len = cout * oh * oh;
            let mut all = vec![0.0; n * out_len];
            forward(&g, &wt, &b, &x, &mut all, n);
            for s in 0..n {
                let mut one = vec![0.0; out_len];
                forward(
                    &g,
                    &wt,
                    &b,
                    &x[s * cin * h * h..][..cin * h * h],
                    &mut one,
                    1,
                );
                assert_eq!(one, all[s * out_len..][..out_len], "cin {cin}, sample {s}");
            }
        }
    }
}
