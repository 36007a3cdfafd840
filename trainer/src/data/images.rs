//! Image preprocessing shared by training and inference: PNG → 28×28 grey levels, exactly as the
//! paper's reference (openai/supervised-reptile), plus readers for user folders of PNGs
//! (`--support DIR`, `--query DIR_OR_FILES`).
//!
//! The reference opens each Omniglot PNG with PIL (a 1-bit image, mode "1"), calls
//! `resize((28, 28))`, which PIL always performs with nearest-neighbour sampling for 1-bit
//! images, rotates by a multiple of 90° (an exact transpose) and converts the result to a float
//! array: white background = 1.0, ink = 0.0, no inversion, no mean/std normalisation.
//! [`preprocess`] reproduces that bit for bit on the Omniglot images:
//!
//! 1. decode to grey levels in \[0, 1\] (1-bit and 8/16-bit grey as is, colour by ITU-R 601
//!    luma, transparency composited over white);
//! 2. only for images wider or taller than 105 px (Omniglot's native size): average each such
//!    axis down to 105 px (area filter), so that thin strokes in a large photo are not skipped;
//! 3. nearest-neighbour resize to 28×28 with PIL's sampling positions: output pixel `x` takes
//!    source pixel `floor((x + 0.5) · W / 28)`;
//! 4. store as `u8` (`round(v · 255)`; exact for the 0/1 Omniglot pixels); the network input is
//!    `u8 / 255` as f32, CHW 1×28×28.

use anole::{Blob, LossKind};
use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// Side of the network input, in pixels.
pub const SIDE: usize = 28;
/// Pixels per preprocessed image (1 × 28 × 28).
pub const PIXELS: usize = SIDE * SIDE;
/// Side of the original Omniglot drawings; larger images are first area-averaged to this size.
pub const NATIVE_SIDE: usize = 105;
/// Largest image read, in pixels (8192 × 8192): a PNG header can announce up to 2³¹ × 2³¹
/// pixels in a few bytes, and the decoder allocates the announced size before reading any data.
pub const MAX_PIXELS: usize = 1 << 26;

/// One preprocessed image: 28×28 grey levels, row-major, 0 = black ink, 255 = white paper.
pub type Pixels = [u8; PIXELS];

/// A decoded image before resizing: grey levels in \[0, 1\] (1 = white), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Gray {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height` grey levels in \[0, 1\].
    pub values: Vec<f32>,
}

/// Decodes PNG bytes (any bit depth and colour type) to grey levels; the error says what is wrong
/// with the bytes but not where they came from (callers add the file name).
pub fn decode_png(bytes: &[u8]) -> Result<Gray> {
    Ok(Raster::decode(bytes)?.to_gray())
}

/// The training/inference preprocessing of one decoded image (see the module docs).
pub fn preprocess(img: &Gray) -> Pixels {
    let (w, h) = (img.width.min(NATIVE_SIDE), img.height.min(NATIVE_SIDE));
    if (w, h) == (img.width, img.height) {
        nearest(w, h, |x, y| img.values[y * w + x])
    } else {
        let small = area_resize(img, w, h);
        nearest(w, h, |x, y| small.values[y * w + x])
    }
}

/// Decodes and preprocesses PNG bytes (errors do not name a file; see [`load_png`]).
pub fn preprocess_png(bytes: &[u8]) -> Result<Pixels> {
    let raster = Raster::decode(bytes)?;
    if raster.width <= NATIVE_SIDE && raster.height <= NATIVE_SIDE {
        // Same as `preprocess(&decode_png(bytes)?)`, converting only the 784 sampled pixels.
        Ok(nearest(raster.width, raster.height, |x, y| {
            raster.grey(x, y)
        }))
    } else {
        Ok(preprocess(&raster.to_gray()))
    }
}

/// Step 3–4: PIL's nearest-neighbour resize of a `w × h` image to 28×28, stored as `u8`.
fn nearest(w: usize, h: usize, grey: impl Fn(usize, usize) -> f32) -> Pixels {
    let cols = pil_nearest_positions(w, SIDE);
    let rows = pil_nearest_positions(h, SIDE);
    let mut out = [0u8; PIXELS];
    for (r, &sr) in rows.iter().enumerate() {
        for (c, &sc) in cols.iter().enumerate() {
            out[r * SIDE + c] = (grey(sc, sr) * 255.0).round() as u8;
        }
    }
    out
}

/// Grey level in \[0, 1\] of an 8-bit grey value with 8-bit alpha, composited over white.
fn composite(grey: f32, alpha: f32) -> f32 {
    let a = alpha / 255.0;
    (a * grey / 255.0 + (1.0 - a)).clamp(0.0, 1.0)
}

/// ITU-R 601 luma of an 8-bit RGB pixel, in 0..=255.
fn luma(p: &[u8]) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

/// A decoded PNG in its stored sample layout, read pixel by pixel.
struct Raster {
    width: usize,
    height: usize,
    /// Bytes per row of `buf`.
    line: usize,
    layout: Layout,
    buf: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Layout {
    /// Grey, 1, 2, 4 or 8 bits per pixel, packed most significant bits first.
    Grey(u8),
    /// 8-bit grey + alpha.
    GreyAlpha,
    /// 8-bit RGB.
    Rgb,
    /// 8-bit RGB + alpha.
    Rgba,
}

impl Raster {
    /// Grey images without transparency are kept packed (fast path: Omniglot's 1-bit PNGs);
    /// everything else is normalised by the decoder to 8-bit grey/RGB with or without alpha.
    fn decode(bytes: &[u8]) -> Result<Raster> {
        let bad = |e: png::DecodingError| anyhow!("not a readable PNG ({e})");
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::IDENTITY);
        let mut reader = decoder.read_info().map_err(bad)?;
        let info = reader.info();
        let (w, h) = (info.width as usize, info.height as usize);
        if w.saturating_mul(h) > MAX_PIXELS {
            bail!("image of {w}×{h} pixels is too large (at most {MAX_PIXELS} pixels)");
        }
        let packed_grey = info.color_type == png::ColorType::Grayscale
            && info.trns.is_none()
            && info.bit_depth != png::BitDepth::Sixteen;
        if !packed_grey {
            let mut decoder = png::Decoder::new(Cursor::new(bytes));
            decoder.set_transformations(png::Transformations::normalize_to_color8());
            reader = decoder.read_info().map_err(bad)?;
        }
        let mut buf = vec![0u8; reader.output_buffer_size()];
        let out = reader
            .next_frame(&mut buf)
            .map_err(|e| anyhow!("corrupt PNG data ({e})"))?;
        let (width, height) = (out.width as usize, out.height as usize);
        if width == 0 || height == 0 {
            bail!("empty PNG ({width}×{height})");
        }
        let (layout, bits_per_pixel) = match (out.color_type, out.bit_depth) {
            (
                png::ColorType::Grayscale,
                d @ (png::BitDepth::One
                | png::BitDepth::Two
                | png::BitDepth::Four
                | png::BitDepth::Eight),
            ) => (Layout::Grey(d as u8), d as usize),
            (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => (Layout::GreyAlpha, 16),
            (png::ColorType::Rgb, png::BitDepth::Eight) => (Layout::Rgb, 24),
            (png::ColorType::Rgba, png::BitDepth::Eight) => (Layout::Rgba, 32),
            (c, d) => bail!("unexpected PNG sample layout after decoding ({c:?}, {d:?})"),
        };
        if out.line_size * 8 < width * bits_per_pixel || buf.len() < out.line_size * height {
            bail!("truncated PNG data");
        }
        Ok(Raster {
            width,
            height,
            line: out.line_size,
            layout,
            buf,
        })
    }

    /// Grey level of pixel (x, y) in \[0, 1\] (see [`composite`] and [`luma`]).
    fn grey(&self, x: usize, y: usize) -> f32 {
        let row = &self.buf[y * self.line..(y + 1) * self.line];
        match self.layout {
            Layout::Grey(bits) => composite(unpack(row, x, bits), 255.0),
            Layout::GreyAlpha => composite(f32::from(row[2 * x]), f32::from(row[2 * x + 1])),
            Layout::Rgb => composite(luma(&row[3 * x..3 * x + 3]), 255.0),
            Layout::Rgba => composite(luma(&row[4 * x..4 * x + 3]), f32::from(row[4 * x + 3])),
        }
    }

    /// Every pixel's grey level, row by row (the same values as [`Raster::grey`]).
    fn to_gray(&self) -> Gray {
        let (w, h) = (self.width, self.height);
        let mut values = Vec::with_capacity(w * h);
        for row in self.buf.chunks(self.line).take(h) {
            match self.layout {
                Layout::Grey(bits) => {
                    values.extend((0..w).map(|x| composite(unpack(row, x, bits), 255.0)))
                }
                Layout::GreyAlpha => values.extend(
                    row.chunks_exact(2)
                        .take(w)
                        .map(|p| composite(f32::from(p[0]), f32::from(p[1]))),
                ),
                Layout::Rgb => values.extend(
                    row.chunks_exact(3)
                        .take(w)
                        .map(|p| composite(luma(p), 255.0)),
                ),
                Layout::Rgba => values.extend(
                    row.chunks_exact(4)
                        .take(w)
                        .map(|p| composite(luma(p), f32::from(p[3]))),
                ),
            }
        }
        Gray {
            width: w,
            height: h,
            values,
        }
    }
}

/// Sample `x` of a row of `bits`-bit grey samples (1, 2, 4 or 8), scaled to 0..=255.
fn unpack(row: &[u8], x: usize, bits: u8) -> f32 {
    if bits == 8 {
        return f32::from(row[x]);
    }
    let per_byte = 8 / usize::from(bits);
    let shift = 8 - usize::from(bits) * (x % per_byte + 1);
    let max = (1u16 << bits) - 1;
    let v = (u16::from(row[x / per_byte]) >> shift) & max;
    f32::from(v * (255 / max))
}

/// Reads, decodes and preprocesses one PNG file; errors name the file.
pub fn load_png(path: &Path) -> Result<Pixels> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
    preprocess_png(&bytes).with_context(|| format!("image {}", path.display()))
}

/// Rotates counter-clockwise by `quarter_turns` × 90° (PIL's `rotate(90 · k)` on a square image).
pub fn rotate(img: &Pixels, quarter_turns: u8) -> Pixels {
    let last = SIDE - 1;
    let mut out = [0u8; PIXELS];
    for r in 0..SIDE {
        for c in 0..SIDE {
            let (sr, sc) = match quarter_turns % 4 {
                0 => (r, c),
                1 => (c, last - r),
                2 => (last - r, last - c),
                _ => (last - c, r),
            };
            out[r * SIDE + c] = img[sr * SIDE + sc];
        }
    }
    out
}

/// Writes the network input of `img` (`u8 / 255`, CHW 1×28×28) into `out[..784]`.
pub fn write_f32(img: &Pixels, out: &mut [f32]) {
    for (o, &p) in out.iter_mut().zip(img.iter()) {
        *o = f32::from(p) / 255.0;
    }
}

/// PIL's nearest-neighbour source positions for resizing `from` pixels to `to`: the centre of
/// output pixel `x` maps to `(x + 0.5) · from / to`, truncated (PIL's `ImagingScaleAffine`,
/// accumulated in f64 exactly as there).
fn pil_nearest_positions(from: usize, to: usize) -> Vec<usize> {
    let scale = from as f64 / to as f64;
    let mut pos = scale * 0.5;
    let mut out = Vec::with_capacity(to);
    for _ in 0..to {
        out.push((pos as usize).min(from - 1));
        pos += scale;
    }
    out
}

/// Area-average (box filter with fractional coverage) from `img` to `w × h`, each axis no larger
/// than the original.
fn area_resize(img: &Gray, w: usize, h: usize) -> Gray {
    let wx = area_weights(img.width, w);
    let wy = area_weights(img.height, h);
    let mut tmp = vec![0f32; img.height * w];
    for y in 0..img.height {
        let row = &img.values[y * img.width..(y + 1) * img.width];
        for (x, taps) in wx.iter().enumerate() {
            tmp[y * w + x] = taps.iter().map(|&(i, k)| row[i] * k).sum();
        }
    }
    let mut values = vec![0f32; w * h];
    for (y, taps) in wy.iter().enumerate() {
        for x in 0..w {
            values[y * w + x] = taps.iter().map(|&(i, k)| tmp[i * w + x] * k).sum();
        }
    }
    Gray {
        width: w,
        height: h,
        values,
    }
}

/// For each of `to` output cells, the source indices it covers and their normalised weights.
fn area_weights(from: usize, to: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = from as f64 / to as f64;
    (0..to)
        .map(|j| {
            let (lo, hi) = (j as f64 * scale, (j + 1) as f64 * scale);
            let mut taps = Vec::new();
            let mut i = lo.floor() as usize;
            while (i as f64) < hi && i < from {
                let cover = (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0);
                if cover > 0.0 {
                    taps.push((i, (cover / scale) as f32));
                }
                i += 1;
            }
            taps
        })
        .collect()
}

/// True for a file name ending in `.png` (any case) that is not hidden.
pub fn is_png_name(name: &str) -> bool {
    !name.starts_with('.') && name.len() > 4 && name[name.len() - 4..].eq_ignore_ascii_case(".png")
}

/// True for a path whose name ends in `.png` (any case).
pub fn is_png(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(is_png_name)
}

/// The PNG files directly inside `dir`, sorted by name; errors name the folder.
pub fn png_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("cannot list folder {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list folder {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_str().is_some_and(is_png_name) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Error unless `blob` classifies 1×28×28 images (what the image folders are preprocessed to).
pub fn check_image_model(path: &Path, blob: &Blob<'_>) -> Result<()> {
    let shape: Vec<u32> = blob.wire.input_shape.iter().copied().collect();
    if shape != [1, SIDE as u32, SIDE as u32] || blob.input_len() != PIXELS {
        bail!(
            "{}: takes inputs of shape {shape:?}; images are preprocessed to 1×{SIDE}×{SIDE} (an Omniglot model)",
            path.display()
        );
    }
    if blob.loss != LossKind::CrossEntropy {
        bail!(
            "{}: a regression model; image folders need a classification model",
            path.display()
        );
    }
    Ok(())
}

/// Labelled support images read from a folder with one sub-folder per class.
#[derive(Clone, Debug)]
pub struct SupportSet {
    /// Class names: the sub-folder names, sorted; label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Source file of each image, in row order.
    pub files: Vec<PathBuf>,
    /// `files.len() × 784` network inputs.
    pub inputs: Vec<f32>,
    /// Class index of each image, as f32 (the cross-entropy target).
    pub labels: Vec<f32>,
}

impl SupportSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when there is no image (never the case for a set returned by [`read_support`]).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Unlabelled query images.
#[derive(Clone, Debug)]
pub struct QuerySet {
    /// Source file of each image, in row order.
    pub files: Vec<PathBuf>,
    /// `files.len() × 784` network inputs.
    pub inputs: Vec<f32>,
}

/// Reads `dir/<class>/<image>.png` (class names = sub-folder names, sorted).
///
/// Rows are interleaved across classes (first image of every class, then the second, …) so that
/// any minibatch of at least as many rows as classes holds every class. Errors name the folder or
/// file: missing folder, no class sub-folder, a PNG outside a class folder, a class folder with
/// no PNG, an unreadable PNG.
pub fn read_support(dir: &Path) -> Result<SupportSet> {
    if !dir.exists() {
        bail!("support folder {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!(
            "support path {} is not a folder (expected one sub-folder of PNGs per class)",
            dir.display()
        );
    }
    let mut class_dirs = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("cannot list folder {}", dir.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list folder {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            bail!("class folder name {} is not valid UTF-8", path.display());
        };
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            class_dirs.push((name, path));
        } else if is_png_name(&name) {
            bail!(
                "{}: support images must be inside a class sub-folder ({}/<class>/<image>.png)",
                path.display(),
                dir.display()
            );
        }
    }
    if class_dirs.is_empty() {
        bail!(
            "support folder {} has no class sub-folders (expected {}/<class>/<image>.png)",
            dir.display(),
            dir.display()
        );
    }
    class_dirs.sort();
    let mut per_class = Vec::with_capacity(class_dirs.len());
    for (name, path) in &class_dirs {
        let files = png_files(path)?;
        if files.is_empty() {
            bail!("class folder {} holds no PNG images", path.display());
        }
        per_class.push((name.clone(), files));
    }
    let longest = per_class.iter().map(|(_, f)| f.len()).max().unwrap_or(0);
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for i in 0..longest {
        for (label, (_, class_files)) in per_class.iter().enumerate() {
            if let Some(f) = class_files.get(i) {
                files.push(f.clone());
                labels.push(label as f32);
            }
        }
    }
    let inputs = load_inputs(&files)?;
    Ok(SupportSet {
        classes: per_class.into_iter().map(|(n, _)| n).collect(),
        files,
        inputs,
        labels,
    })
}

/// Reads query images: each path is a PNG file (taken in the given order) or a folder whose PNGs
/// (sorted by name) are all taken. Errors name the path: missing, a folder with no PNG, an
/// unreadable PNG.
pub fn read_query(paths: &[PathBuf]) -> Result<QuerySet> {
    if paths.is_empty() {
        bail!("no query image given");
    }
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            bail!("query path {} does not exist", p.display());
        }
        if p.is_dir() {
            let found = png_files(p)?;
            if found.is_empty() {
                bail!("query folder {} holds no PNG images", p.display());
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let inputs = load_inputs(&files)?;
    Ok(QuerySet { files, inputs })
}

/// Loads and preprocesses `files` in parallel into `files.len() × 784` network inputs.
fn load_inputs(files: &[PathBuf]) -> Result<Vec<f32>> {
    let images = files
        .par_iter()
        .map(|f| load_png(f))
        .collect::<Result<Vec<Pixels>>>()?;
    let mut inputs = vec![0f32; images.len() * PIXELS];
    for (img, out) in images.iter().zip(inputs.chunks_exact_mut(PIXELS)) {
        write_f32(img, out);
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: usize, height: usize, f: impl Fn(usize, usize) -> f32) -> Gray {
        let values = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Gray {
            width,
            height,
            values,
        }
    }

    #[test]
    fn pil_positions_for_omniglot() {
        let p = pil_nearest_positions(105, 28);
        assert_eq!(p[0], 1);
        assert_eq!(p[1], 5);
        assert_eq!(p[27], 103);
        // Symmetric, so rotating before or after the resize gives the same image.
        for (x, &s) in p.iter().enumerate() {
            assert_eq!(s + p[27 - x], 104);
        }
        assert_eq!(pil_nearest_positions(28, 28), (0..28).collect::<Vec<_>>());
    }

    #[test]
    fn identity_on_28_and_rotation_cycle() {
        let img = gray(
            28,
            28,
            |x, y| if (x * 7 + y * 3) % 5 == 0 { 0.0 } else { 1.0 },
        );
        let p = preprocess(&img);
        for (i, &v) in p.iter().enumerate() {
            assert_eq!(f32::from(v) / 255.0, img.values[i]);
        }
        let r1 = rotate(&p, 1);
        assert_ne!(r1, p);
        assert_eq!(rotate(&rotate(&r1, 1), 2), p);
        // Counter-clockwise: the top-right pixel moves to the top-left.
        assert_eq!(r1[0], p[SIDE - 1]);
    }

    /// Encodes `w × h` pixels in the given PNG layout.
    fn encode(
        w: usize,
        h: usize,
        color: png::ColorType,
        depth: png::BitDepth,
        palette: Option<Vec<u8>>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, w as u32, h as u32);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some(p) = palette {
            enc.set_palette(p);
        }
        enc.write_header().unwrap().write_image_data(data).unwrap();
        bytes
    }

    #[test]
    fn every_png_layout_gives_the_same_image() {
        use png::{BitDepth as D, ColorType as C};
        let (w, h) = (37, 29);
        let ink = |x: usize, y: usize| (x * x + 3 * y) % 7 == 0;
        let pixels: Vec<(usize, usize)> =
            (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).collect();
        let grey8: Vec<u8> = pixels
            .iter()
            .map(|&(x, y)| if ink(x, y) { 0 } else { 255 })
            .collect();
        let mut bits = vec![0u8; w.div_ceil(8) * h];
        for &(x, y) in &pixels {
            if !ink(x, y) {
                bits[y * w.div_ceil(8) + x / 8] |= 0x80 >> (x % 8);
            }
        }
        let grey16: Vec<u8> = grey8.iter().flat_map(|&v| [v, v]).collect();
        let rgb: Vec<u8> = grey8.iter().flat_map(|&v| [v, v, v]).collect();
        let rgba: Vec<u8> = grey8.iter().flat_map(|&v| [v, v, v, 255]).collect();
        // Transparent pixels count as white paper.
        let ga: Vec<u8> = grey8
            .iter()
            .flat_map(|&v| if v == 0 { [0, 255] } else { [0, 0] })
            .collect();
        let indexed: Vec<u8> = grey8.iter().map(|&v| u8::from(v == 255)).collect();
        let reference = preprocess_png(&encode(w, h, C::Grayscale, D::One, None, &bits)).unwrap();
        assert!(reference.contains(&0) && reference.contains(&255));
        for (name, bytes) in [
            ("grey 8", encode(w, h, C::Grayscale, D::Eight, None, &grey8)),
            (
                "grey 16",
                encode(w, h, C::Grayscale, D::Sixteen, None, &grey16),
            ),
            ("rgb", encode(w, h, C::Rgb, D::Eight, None, &rgb)),
            ("rgba", encode(w, h, C::Rgba, D::Eight, None, &rgba)),
            (
                "grey+alpha",
                encode(w, h, C::GrayscaleAlpha, D::Eight, None, &ga),
            ),
            (
                "palette",
                encode(
                    w,
                    h,
                    C::Indexed,
                    D::Eight,
                    Some(vec![0, 0, 0, 255, 255, 255]),
                    &indexed,
                ),
            ),
        ] {
            assert_eq!(preprocess_png(&bytes).unwrap(), reference, "{name}");
            assert_eq!(
                preprocess(&decode_png(&bytes).unwrap()),
                reference,
                "{name} via decode_png"
            );
        }
    }

    #[test]
    fn area_filter_keeps_thin_strokes_of_large_images() {
        // A 1050×1050 white image with a 4 px vertical line: nearest sampling alone would miss it.
        let img = gray(
            1050,
            1050,
            |x, _| if (500..504).contains(&x) { 0.0 } else { 1.0 },
        );
        let p = preprocess(&img);
        assert!(p.iter().any(|&v| v < 255), "the stroke vanished");
        let small = area_resize(&img, 105, 105);
        let total: f32 = small.values.iter().map(|v| 1.0 - v).sum();
        assert!(
            (total - 4.0 * 1050.0 / 100.0).abs() < 1e-2,
            "ink not conserved: {total}"
        );
    }
}
