//! Writes the seed corpus kept in `corpus/<target>/`: small valid and hostile CSV files for
//! `csv_reader`, and small PNGs of every layout (1/8/16-bit grey, grey + alpha, RGB, RGBA,
//! palette with transparency, larger than 105 px) plus broken ones for `png_reader`. Run from
//! `trainer/fuzz`: `cargo run --example make_corpus`.

use png::{BitDepth as D, ColorType as C};
use std::fs;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("corpus file");
}

/// A `w × h` PNG of the given layout; `trns` adds a transparency chunk.
fn png(
    w: u32,
    h: u32,
    color: C,
    depth: D,
    palette: Option<&[u8]>,
    trns: Option<&[u8]>,
    data: &[u8],
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    if let Some(p) = palette {
        enc.set_palette(p.to_vec());
    }
    if let Some(t) = trns {
        enc.set_trns(t.to_vec());
    }
    let mut writer = enc.write_header().expect("png header");
    writer.write_image_data(data).expect("png data");
    writer.finish().expect("png end");
    bytes
}

/// A character-like drawing: ink (false) on a ring and a stroke, paper (true) elsewhere.
fn paper(x: u32, y: u32, w: u32, h: u32) -> bool {
    let (cx, cy) = (x as i64 * 2 - w as i64, y as i64 * 2 - h as i64);
    let r2 = cx * cx + cy * cy;
    let ring = (w as i64 * w as i64 / 5..w as i64 * w as i64 / 3).contains(&r2);
    let stroke = x == y || x + 1 == y;
    !(ring || stroke)
}

fn grey8(w: u32, h: u32) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| if paper(x, y, w, h) { 255 } else { 0 }))
        .collect()
}

fn bits(w: u32, h: u32) -> Vec<u8> {
    let line = w.div_ceil(8) as usize;
    let mut out = vec![0u8; line * h as usize];
    for y in 0..h {
        for x in 0..w {
            if paper(x, y, w, h) {
                out[y as usize * line + x as usize / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    out
}

fn main() {
    let dir = Path::new("corpus/csv_reader");
    write(
        dir,
        "regression",
        b"x0,x1,y\n0.5,1.0,2.0\n-1,2.5e-3,0.1\n3,4,-7.25\n",
    );
    write(dir, "classes", b"a,b,label\n1,2,0\n\n3, 4 ,2\n0.5,0.25,1\n");
    write(dir, "query", b"x0,x1\n0.1,0.2\n0.3,0.4\n");
    write(
        dir,
        "quoted_crlf",
        b"\"x 0\",\"x,1\",label\r\n\" 1 \",\"2\",1\r\n",
    );
    write(dir, "ragged", b"x0,x1,y\n1,2,3\n4,5\n");
    write(dir, "numeric_header", b"1,2,3\n4,5,6\n");
    write(dir, "not_finite", b"x0,x1,y\nNaN,1,inf\n1e40,2,3\n");
    write(dir, "bad_label", b"a,b,label\n1,2,3\n1,2,-1\n1,2,0.5\n");
    write(dir, "header_only", b"x0,x1\n");
    write(dir, "empty_name", b"x0,,y\n1,2,3\n");
    write(dir, "not_utf8", b"x0,x1,y\n1,\xff\xfe,3\n");
    write(dir, "newline_in_cell", b"x0,x1,y\n1,\"2\n3\",4\n");
    write(dir, "empty", b"");

    let dir = Path::new("corpus/png_reader");
    let (w, h) = (28, 28);
    let g8 = grey8(w, h);
    write(
        dir,
        "grey1_28",
        &png(w, h, C::Grayscale, D::One, None, None, &bits(w, h)),
    );
    write(
        dir,
        "grey8_28",
        &png(w, h, C::Grayscale, D::Eight, None, None, &g8),
    );
    let (w2, h2) = (13, 9);
    let g = grey8(w2, h2);
    let g16: Vec<u8> = g.iter().flat_map(|&v| [v, v ^ 0x5a]).collect();
    write(
        dir,
        "grey16_13x9",
        &png(w2, h2, C::Grayscale, D::Sixteen, None, None, &g16),
    );
    let rgb: Vec<u8> = g.iter().flat_map(|&v| [v, v / 2, 255 - v]).collect();
    write(
        dir,
        "rgb_13x9",
        &png(w2, h2, C::Rgb, D::Eight, None, None, &rgb),
    );
    let rgba: Vec<u8> = g.iter().flat_map(|&v| [v, v, v, v / 3]).collect();
    write(
        dir,
        "rgba_13x9",
        &png(w2, h2, C::Rgba, D::Eight, None, None, &rgba),
    );
    let ga: Vec<u8> = g.iter().flat_map(|&v| [0, 255 - v]).collect();
    write(
        dir,
        "grey_alpha_13x9",
        &png(w2, h2, C::GrayscaleAlpha, D::Eight, None, None, &ga),
    );
    let idx: Vec<u8> = g.iter().map(|&v| u8::from(v == 255)).collect();
    write(
        dir,
        "palette_trns_13x9",
        &png(
            w2,
            h2,
            C::Indexed,
            D::Eight,
            Some(&[0, 0, 0, 255, 255, 255]),
            Some(&[255, 0]),
            &idx,
        ),
    );
    let g4: Vec<u8> = g
        .chunks(w2 as usize)
        .flat_map(|row| {
            row.chunks(2)
                .map(|p| (p[0] >> 4) << 4 | p.get(1).map_or(0, |v| v >> 4))
                .collect::<Vec<u8>>()
        })
        .collect();
    write(
        dir,
        "grey4_trns_13x9",
        &png(w2, h2, C::Grayscale, D::Four, None, Some(&[0, 15]), &g4),
    );
    let (w3, h3) = (120, 110);
    write(
        dir,
        "grey1_120x110",
        &png(w3, h3, C::Grayscale, D::One, None, None, &bits(w3, h3)),
    );
    write(
        dir,
        "grey8_1x1",
        &png(1, 1, C::Grayscale, D::Eight, None, None, &[0]),
    );
    let good = png(w, h, C::Grayscale, D::Eight, None, None, &g8);
    write(dir, "truncated", &good[..good.len() / 2]);
    // A header announcing 100000 × 100000 RGBA pixels (40 GB) and a few bytes of data.
    let mut huge = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut huge, 100_000, 100_000);
        enc.set_color(C::Rgba);
        let mut w = enc.write_header().expect("png header");
        w.write_chunk(png::chunk::IDAT, &[0x78, 0x9c, 0x63, 0x00])
            .expect("png chunk");
    }
    write(dir, "huge_header", &huge);
    write(dir, "not_png", b"GIF89a not a png");
}
