//! Every bad input to `anole adapt`, `predict`, `inspect` and `import` (CSV files, PNG image
//! folders, blobs, ONNX files) exits with status 1 and one line on stderr naming the file (and
//! row and column where there is one), never a panic.

mod common;

use anole_trainer::model::Arch;
use common::{anole, blob_bytes, fails, ok, put};
use std::path::{Path, PathBuf};

struct Fixture {
    dir: tempfile::TempDir,
    sine: PathBuf,
    classes: PathBuf,
    support: PathBuf,
    query: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sine = put(d, "sine.postcard", blob_bytes(&Arch::sine(), 0, 10));
    let tiny = Arch {
        input_shape: vec![2],
        layers: vec![anole::Layer::Dense {
            inputs: 2,
            outputs: 3,
        }],
    };
    let classes = put(d, "classes.postcard", blob_bytes(&tiny, 1, 4));
    let support = put(d, "support.csv", "x,y\n0.5,1.0\n1.5,2.0\n");
    let query = put(d, "query.csv", "x\n0.25\n");
    Fixture {
        dir,
        sine,
        classes,
        support,
        query,
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

impl Fixture {
    fn file(&self, name: &str, text: &str) -> String {
        s(&put(self.dir.path(), name, text))
    }
    fn adapt_support(&self, support: &str) -> std::process::Output {
        anole([
            "adapt",
            "--model",
            &s(&self.sine),
            "--support",
            support,
            "--query",
            &s(&self.query),
        ])
    }
    fn adapt_query(&self, query: &str) -> std::process::Output {
        anole([
            "adapt",
            "--model",
            &s(&self.sine),
            "--support",
            &s(&self.support),
            "--query",
            query,
        ])
    }
    fn classify(&self, support: &str) -> std::process::Output {
        let q = self.file("cq.csv", "a,b\n1,2\n");
        anole([
            "adapt",
            "--model",
            &s(&self.classes),
            "--support",
            support,
            "--query",
            &q,
        ])
    }
}

#[test]
fn fixture_itself_works() {
    let f = fixture();
    let out = ok(&f.adapt_support(&s(&f.support)));
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn missing_files() {
    let f = fixture();
    let gone = s(&f.dir.path().join("nope.csv"));
    fails(
        &f.adapt_support(&gone),
        &["nope.csv: cannot open: No such file"],
    );
    fails(&f.adapt_query(&gone), &["nope.csv: cannot open"]);
    let gone_model = s(&f.dir.path().join("nope.postcard"));
    fails(
        &anole([
            "adapt",
            "--model",
            &gone_model,
            "--support",
            &s(&f.support),
            "--query",
            &s(&f.query),
        ]),
        &["nope.postcard: cannot read"],
    );
    fails(
        &anole(["predict", "--model", &gone_model, "--query", &s(&f.query)]),
        &["nope.postcard: cannot read"],
    );
    fails(
        &anole(["inspect", &gone_model]),
        &["nope.postcard: cannot read"],
    );
    let gone_onnx = s(&f.dir.path().join("nope.onnx"));
    fails(
        &anole([
            "import",
            &gone_onnx,
            "--out",
            &s(&f.dir.path().join("o.postcard")),
        ]),
        &["nope.onnx: cannot read"],
    );
}

#[test]
fn garbled_csv() {
    let f = fixture();
    // Binary data: not UTF-8.
    let p = put(
        f.dir.path(),
        "bin.csv",
        [b'x', b',', b'y', b'\n', 0xff, 0xfe, b',', b'1', b'\n'],
    );
    fails(
        &f.adapt_support(&s(&p)),
        &["bin.csv: row 2: not valid UTF-8"],
    );
    // A blob given as CSV.
    fails(&f.adapt_support(&s(&f.sine)), &["sine.postcard: row 1"]);
    // Prose.
    let p = f.file("prose.csv", "Dear reader,\nthis is not a table.\n");
    fails(
        &f.adapt_support(&p),
        &["prose.csv: row 1: column 2 of the header has no name"],
    );
    // A ragged row.
    let p = f.file("ragged.csv", "x,y\n1,2\n3,4,5\n");
    fails(
        &f.adapt_support(&p),
        &["ragged.csv: row 3: 3 fields, the header has 2 columns"],
    );
    // No header.
    let p = f.file("nohead.csv", "1,2\n3,4\n");
    fails(
        &f.adapt_support(&p),
        &["nohead.csv: row 1: the first row must be a header"],
    );
    // Empty file.
    let p = f.file("empty.csv", "");
    fails(&f.adapt_support(&p), &["empty.csv: empty file"]);
}

#[test]
fn wrong_column_count() {
    let f = fixture();
    let p = f.file("three.csv", "x,y,z\n1,2,3\n");
    fails(&f.adapt_support(&p), &["three.csv: row 1: the header has 3 columns; the model takes 1 input column then 1 target column (2 in all)"]);
    let p = f.file("q2.csv", "x,y\n1,2\n");
    fails(
        &f.adapt_query(&p),
        &["q2.csv: row 1: header 'x,y' does not match the support set's input columns 'x'"],
    );
    fails(
        &anole(["predict", "--model", &s(&f.sine), "--query", &p]),
        &["q2.csv: row 1: the header has 2 columns; the model takes 1 input column"],
    );
}

#[test]
fn non_numeric_nan_and_infinity() {
    let f = fixture();
    let p = f.file("word.csv", "x,y\n1,2\n3,four\n");
    fails(
        &f.adapt_support(&p),
        &["word.csv: row 3, column 2 (y): 'four' is not a number"],
    );
    let p = f.file("nan.csv", "x,y\n1,2\nNaN,4\n");
    fails(
        &f.adapt_support(&p),
        &["nan.csv: row 3, column 1 (x): 'NaN' is not a finite number"],
    );
    let p = f.file("inf.csv", "x\n1\ninf\n");
    fails(
        &f.adapt_query(&p),
        &["inf.csv: row 3, column 1 (x): 'inf' is not a finite number"],
    );
    let p = f.file("big.csv", "x\n1e39\n");
    fails(
        &anole(["predict", "--model", &s(&f.sine), "--query", &p]),
        &["big.csv: row 2, column 1 (x): '1e39' is not a finite number"],
    );
    let p = f.file("blank.csv", "x,y\n1,\n");
    fails(
        &f.adapt_support(&p),
        &["blank.csv: row 2, column 2 (y): empty cell"],
    );
}

#[test]
fn empty_support_set() {
    let f = fixture();
    let p = f.file("header_only.csv", "x,y\n");
    fails(
        &f.adapt_support(&p),
        &["header_only.csv: no sample rows after the header: the support set is empty"],
    );
}

#[test]
fn bad_labels() {
    let f = fixture();
    ok(&f.classify(&f.file("good.csv", "a,b,label\n1,2,0\n3,4,2\n")));
    fails(&f.classify(&f.file("l3.csv", "a,b,label\n1,2,3\n")), &["l3.csv: row 2, column 3 (label): class 3 does not exist in this 3-class model (0 to 2)"]);
    fails(
        &f.classify(&f.file("lf.csv", "a,b,label\n1,2,0\n1,2,1.5\n")),
        &["lf.csv: row 3, column 3 (label): '1.5' is not a class index"],
    );
    fails(
        &f.classify(&f.file("ln.csv", "a,b,class\n1,2,1\n")),
        &["ln.csv: row 1, column 3: the last column must be named 'label'"],
    );
}

#[test]
fn not_a_blob() {
    let f = fixture();
    let csv = s(&f.support);
    fails(
        &anole(["predict", "--model", &csv, "--query", &s(&f.query)]),
        &["support.csv: not a valid anole blob"],
    );
    fails(
        &anole(["inspect", &csv]),
        &["support.csv: not a valid anole blob"],
    );
    let mut bytes = std::fs::read(&f.sine).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let corrupt = s(&put(f.dir.path(), "corrupt.postcard", &bytes));
    fails(
        &anole(["inspect", &corrupt]),
        &["corrupt.postcard: not a valid anole blob", "CRC"],
    );
    let truncated = s(&put(f.dir.path(), "trunc.postcard", &bytes[..mid]));
    fails(
        &f.adapt_query_with_model(&truncated),
        &["trunc.postcard: not a valid anole blob"],
    );
    let empty = s(&put(f.dir.path(), "empty.postcard", b""));
    fails(
        &anole(["inspect", &empty]),
        &["empty.postcard: not a valid anole blob"],
    );
    // An ONNX file where a blob is expected gets a hint.
    let onnx = s(&put(f.dir.path(), "m.onnx", b"\x08\x07\x12\x05anole"));
    fails(
        &anole(["inspect", &onnx]),
        &["m.onnx: not a valid anole blob", "anole import"],
    );
}

impl Fixture {
    fn adapt_query_with_model(&self, model: &str) -> std::process::Output {
        anole([
            "adapt",
            "--model",
            model,
            "--support",
            &s(&self.support),
            "--query",
            &s(&self.query),
        ])
    }
}

#[test]
fn not_an_onnx_model() {
    let f = fixture();
    let out = s(&f.dir.path().join("o.postcard"));
    fails(
        &anole(["import", &s(&f.support), "--out", &out]),
        &["support.csv: not an ONNX model"],
    );
    fails(
        &anole(["import", &s(&f.sine), "--out", &out]),
        &["sine.postcard: "],
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn bad_settings() {
    let f = fixture();
    let o = anole([
        "adapt",
        "--model",
        &s(&f.sine),
        "--support",
        &s(&f.support),
        "--query",
        &s(&f.query),
        "--lr",
        "NaN",
    ]);
    fails(&o, &["--lr NaN: must be finite"]);
    let o = anole([
        "adapt",
        "--model",
        &s(&f.sine),
        "--support",
        &s(&f.support),
        "--query",
        &s(&f.query),
        "--lr",
        "1e30",
        "--steps",
        "50",
    ]);
    fails(&o, &["support.csv: adapting failed", "not finite"]);
    let o = anole(["inspect", &s(&f.sine), "--batch", "0"]);
    fails(&o, &["--batch 0"]);
}

#[test]
fn control_characters_in_cells_stay_on_one_line() {
    let f = fixture();
    // A quoted cell holding a line break, and a header name holding an escape character.
    let p = f.file("newline.csv", "x,y\n1,\"2\n3\"\n");
    let line = fails(
        &f.adapt_support(&p),
        &["newline.csv: row 2, column 2 (y): '2\\n3' is not a number"],
    );
    println!("bad input: line break inside a cell -> {}", line.trim_end());
    let p = f.file("escape.csv", "x,\"y\u{1b}[2J\"\n1,z\n");
    let line = fails(
        &f.adapt_support(&p),
        &["escape.csv: row 2, column 2 (y\\u{1b}[2J): 'z' is not a number"],
    );
    println!(
        "bad input: control character in a header -> {}",
        line.trim_end()
    );
}

/// A `w × h` 8-bit grey PNG.
fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let data: Vec<u8> = (0..w * h)
        .map(|i| if i % 7 == 0 { 0 } else { 255 })
        .collect();
    enc.write_header().unwrap().write_image_data(&data).unwrap();
    bytes
}

#[test]
fn bad_images() {
    let f = fixture();
    let d = f.dir.path();
    let model = put(d, "cnn.postcard", blob_bytes(&Arch::omniglot(5, 4), 1, 5));
    let support = d.join("support");
    for class in ["a", "b"] {
        std::fs::create_dir_all(support.join(class)).unwrap();
        put(&support.join(class), "1.png", png_bytes(28, 28));
    }
    let query = put(d, "q.png", png_bytes(105, 105));
    let adapt = |support: &Path, query: &Path| {
        anole([
            "adapt",
            "--model",
            &s(&model),
            "--support",
            &s(support),
            "--query",
            &s(query),
        ])
    };
    let out = ok(&adapt(&support, &query));
    assert!(out.contains("q.png"), "{out}");
    let mut lines = Vec::new();
    let garbage = put(d, "garbage.png", "GIF89a, not a PNG");
    lines.push((
        "not a PNG",
        fails(
            &adapt(&support, &garbage),
            &["garbage.png", "not a readable PNG"],
        ),
    ));
    let good = png_bytes(28, 28);
    let cut = put(d, "cut.png", &good[..good.len() / 2]);
    lines.push((
        "PNG cut in half",
        fails(&adapt(&support, &cut), &["cut.png", "PNG"]),
    ));
    // 61 bytes announcing 100000 × 100000 RGBA pixels, with a data chunk: the PNG decoder
    // would allocate the 40 GB announced (and abort) if the reader did not refuse it first.
    let mut huge = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut huge, 100_000, 100_000);
        enc.set_color(png::ColorType::Rgba);
        let mut w = enc.write_header().unwrap();
        w.write_chunk(png::chunk::IDAT, &[0x78, 0x9c, 0x63, 0x00])
            .unwrap();
    }
    let huge = put(d, "huge.png", huge);
    lines.push((
        "61-byte PNG announcing 100000×100000 RGBA pixels",
        fails(&adapt(&support, &huge), &["huge.png", "too large"]),
    ));
    let empty = put(d, "empty.png", "");
    lines.push((
        "empty file",
        fails(&adapt(&support, &empty), &["empty.png"]),
    ));
    let stray = put(&support, "stray.png", png_bytes(28, 28));
    lines.push((
        "PNG outside a class folder",
        fails(&adapt(&support, &query), &["stray.png", "class sub-folder"]),
    ));
    std::fs::remove_file(stray).unwrap();
    std::fs::create_dir_all(support.join("c")).unwrap();
    lines.push((
        "class folder without images",
        fails(&adapt(&support, &query), &["holds no PNG images"]),
    ));
    std::fs::remove_dir(support.join("c")).unwrap();
    lines.push((
        "a PNG file as --support (read as CSV)",
        fails(&adapt(&query, &query), &["q.png", "row 1: not valid UTF-8"]),
    ));
    let no_png = d.join("no_png");
    std::fs::create_dir_all(&no_png).unwrap();
    lines.push((
        "query folder without images",
        fails(
            &adapt(&support, &no_png),
            &["no_png", "holds no PNG images"],
        ),
    ));
    for (what, line) in lines {
        println!("bad input: {what} -> {}", line.trim_end());
    }
}
