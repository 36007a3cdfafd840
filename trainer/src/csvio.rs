//! CSV samples for `anole adapt` and `anole predict`: read support and query files with errors
//! that name the file, row and column, and write predictions as CSV.
//!
//! Support CSV: a header, the model's input columns, then its target columns (regression) or
//! one integer column named `label` (classification). Query CSV: the same input columns.
//! Rows are counted as in a spreadsheet: the header is row 1, the first sample row 2.
//!
//! [`Support`] and [`Query`] hold flattened f32 inputs whatever their source, so other sources
//! (image folders) can produce them too; `ids` names each query row when the source has names.

use anole::{Blob, LossKind};
use anyhow::{anyhow, bail, Context, Result};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Name of the class column of a classification support set.
pub const LABEL: &str = "label";

/// Class indices are stored as f32, exact up to 2²⁴: the largest number of classes read.
pub const MAX_CLASSES: usize = 1 << 24;

/// Labelled samples to adapt on.
#[derive(Clone, Debug, PartialEq)]
pub struct Support {
    /// `len × input_len` values, row after row.
    pub inputs: Vec<f32>,
    /// `len × target_len` values: regression targets, or one class index per row.
    pub targets: Vec<f32>,
    /// Number of samples.
    pub len: usize,
    /// Names of the input columns.
    pub input_names: Vec<String>,
    /// Names of the target columns (`["label"]` for classification).
    pub target_names: Vec<String>,
}

/// Samples to predict.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// `len × input_len` values, row after row.
    pub inputs: Vec<f32>,
    /// Number of samples.
    pub len: usize,
    /// Names of the input columns.
    pub input_names: Vec<String>,
    /// A name per row when the source has them (e.g. file names); empty for CSV.
    pub ids: Vec<String>,
}

/// A numeric CSV table: its header and rows, each remembered with its row number.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Raw cells of each data row (validated later, column by column).
    pub rows: Vec<(u64, Vec<String>)>,
}

/// Read a CSV file with a header row; every data row must have as many fields as the header.
pub fn read_table(path: &Path) -> Result<Table> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    parse_table(std::io::BufReader::new(file), path)
}

/// [`read_table`] on CSV text from any reader; `path` only names the source in errors.
pub fn parse_table(reader: impl Read, path: &Path) -> Result<Table> {
    let p = path.display();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(None)
        .from_reader(reader);
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let more = rdr
            .read_record(&mut record)
            .map_err(|e| csv_error(path, &e))?;
        if !more {
            break;
        }
        let row = record.position().map(|q| q.line()).unwrap_or(0);
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        match &header {
            None => {
                if cells.iter().all(|c| c.parse::<f64>().is_ok()) {
                    bail!("{p}: row {row}: the first row must be a header of column names, found numbers");
                }
                if let Some((k, _)) = cells.iter().enumerate().find(|(_, c)| c.is_empty()) {
                    bail!("{p}: row {row}: column {} of the header has no name", k + 1);
                }
                header = Some(cells);
            }
            Some(h) => {
                if cells.len() != h.len() {
                    bail!(
                        "{p}: row {row}: {} fields, the header has {} columns",
                        cells.len(),
                        h.len()
                    );
                }
                rows.push((row, cells));
            }
        }
    }
    let header =
        header.ok_or_else(|| anyhow!("{p}: empty file: expected a header row and sample rows"))?;
    Ok(Table { header, rows })
}

fn csv_error(path: &Path, e: &csv::Error) -> anyhow::Error {
    let p = path.display();
    let row = e.position().map(|q| q.line());
    match (e.kind(), row) {
        (csv::ErrorKind::Utf8 { .. }, Some(r)) => {
            anyhow!("{p}: row {r}: not valid UTF-8 text (is this a CSV file?)")
        }
        (csv::ErrorKind::Io(io), _) => anyhow!("{p}: cannot read: {io}"),
        (_, Some(r)) => anyhow!("{p}: row {r}: garbled CSV: {e}"),
        (_, None) => anyhow!("{p}: garbled CSV: {e}"),
    }
}

/// A cell or column name as an error shows it: as is, or escaped (`\n`, `\u{1b}`, …) when it
/// holds control characters, so that every error stays one line.
fn shown(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(text.escape_debug().to_string())
    } else {
        Cow::Borrowed(text)
    }
}

/// Parse one cell as a finite number; the error names file, row and column.
fn number(path: &Path, row: u64, col: usize, name: &str, cell: &str) -> Result<f32> {
    let p = path.display();
    let at = format!("{p}: row {row}, column {} ({})", col + 1, shown(name));
    let cell = shown(cell);
    if cell.is_empty() {
        bail!("{at}: empty cell");
    }
    let v: f32 = cell
        .parse()
        .map_err(|_| anyhow!("{at}: '{cell}' is not a number"))?;
    if !v.is_finite() {
        bail!("{at}: '{cell}' is not a finite number (NaN and infinity are not allowed)");
    }
    Ok(v)
}

fn columns(n: usize, what: &str) -> String {
    format!("{n} {what} column{}", if n == 1 { "" } else { "s" })
}

/// Read the support set for `blob`: its input columns, then its targets (regression) or a
/// `label` column of class indices (classification).
pub fn read_support(path: &Path, blob: &Blob<'_>) -> Result<Support> {
    support_from_table(path, read_table(path)?, blob)
}

/// [`read_support`] on a table already read from `path`.
pub fn support_from_table(path: &Path, t: Table, blob: &Blob<'_>) -> Result<Support> {
    let columns = Columns {
        inputs: blob.input_len(),
        targets: blob.target_len(),
        classes: (blob.loss == LossKind::CrossEntropy).then(|| blob.output_len()),
    };
    support_with_columns(path, t, &columns)
}

/// The columns of a support table: inputs, then targets (regression) or a `label` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    /// Input columns.
    pub inputs: usize,
    /// Target columns (1 for classification: the label).
    pub targets: usize,
    /// Classification: `Some(n)` accepts labels `0..n` (at most [`MAX_CLASSES`]).
    pub classes: Option<usize>,
}

/// [`support_from_table`] for a model described by its columns alone (meta-training reads its
/// tasks with it before any model exists).
pub fn support_with_columns(path: &Path, t: Table, layout: &Columns) -> Result<Support> {
    let p = path.display();
    let (il, tl) = (layout.inputs, layout.targets);
    let classify = layout.classes.is_some();
    if t.header.len() != il + tl {
        let targets = if classify {
            format!("a '{LABEL}' column")
        } else {
            columns(tl, "target")
        };
        bail!(
            "{p}: row 1: the header has {} columns; the model takes {} then {targets} ({} in all)",
            t.header.len(),
            columns(il, "input"),
            il + tl
        );
    }
    if classify && t.header[il] != LABEL {
        bail!("{p}: row 1, column {}: the last column must be named '{LABEL}' (class index), found '{}'", il + 1, shown(&t.header[il]));
    }
    if t.rows.is_empty() {
        bail!("{p}: no sample rows after the header: the support set is empty");
    }
    let classes = layout.classes.unwrap_or(0);
    let mut inputs = Vec::with_capacity(t.rows.len() * il);
    let mut targets = Vec::with_capacity(t.rows.len() * tl);
    for (row, cells) in &t.rows {
        for (k, cell) in cells.iter().enumerate() {
            let name = &t.header[k];
            if k >= il && classify {
                let (name, shown_cell) = (shown(name), shown(cell));
                let label: usize = cell.parse().map_err(|_| {
                    anyhow!(
                        "{p}: row {row}, column {} ({name}): '{shown_cell}' is not a class index (an integer from 0 to {})",
                        k + 1,
                        classes - 1
                    )
                })?;
                if label >= classes {
                    bail!(
                        "{p}: row {row}, column {} ({name}): class {label} does not exist in this {classes}-class model (0 to {})",
                        k + 1,
                        classes - 1
                    );
                }
                targets.push(label as f32);
            } else {
                let v = number(path, *row, k, name, cell)?;
                if k < il {
                    inputs.push(v);
                } else {
                    targets.push(v);
                }
            }
        }
    }
    Ok(Support {
        inputs,
        targets,
        len: t.rows.len(),
        input_names: t.header[..il].to_vec(),
        target_names: t.header[il..].to_vec(),
    })
}

/// Read query rows for `blob`. With `expected`, the header must name exactly those input
/// columns (those of the support set).
pub fn read_query(path: &Path, blob: &Blob<'_>, expected: Option<&[String]>) -> Result<Query> {
    query_from_table(path, read_table(path)?, blob, expected)
}

/// [`read_query`] on a table already read from `path`.
pub fn query_from_table(
    path: &Path,
    t: Table,
    blob: &Blob<'_>,
    expected: Option<&[String]>,
) -> Result<Query> {
    let p = path.display();
    let il = blob.input_len();
    if let Some(names) = expected {
        if t.header != names {
            bail!(
                "{p}: row 1: header '{}' does not match the support set's input columns '{}'",
                shown(&t.header.join(",")),
                shown(&names.join(","))
            );
        }
    }
    if t.header.len() != il {
        bail!(
            "{p}: row 1: the header has {} columns; the model takes {} (query rows hold inputs only)",
            t.header.len(),
            columns(il, "input")
        );
    }
    let mut inputs = Vec::with_capacity(t.rows.len() * il);
    for (row, cells) in &t.rows {
        for (k, cell) in cells.iter().enumerate() {
            inputs.push(number(path, *row, k, &t.header[k], cell)?);
        }
    }
    Ok(Query {
        inputs,
        len: t.rows.len(),
        input_names: t.header,
        ids: Vec::new(),
    })
}

/// How predictions are written.
#[derive(Clone, Debug, Default)]
pub struct OutputFormat {
    /// Names of the regression output columns (default `y`, or `y0`, `y1`, ...).
    pub target_names: Option<Vec<String>>,
    /// Classification: also write the softmax probability of every class (`p0`, `p1`, ...).
    pub scores: bool,
}

/// Write one CSV row of predictions per query row: regression outputs, or for classification
/// the predicted `label` (argmax), then optionally the class probabilities. A `file` column
/// comes first when the query rows have ids.
pub fn write_predictions(
    out: impl Write,
    blob: &Blob<'_>,
    query: &Query,
    outputs: &[f32],
    fmt: &OutputFormat,
) -> Result<()> {
    let ol = blob.output_len();
    let classify = blob.loss == LossKind::CrossEntropy;
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = Vec::new();
    if !query.ids.is_empty() {
        header.push("file".into());
    }
    if classify {
        header.push(LABEL.into());
        if fmt.scores {
            header.extend((0..ol).map(|k| format!("p{k}")));
        }
    } else {
        match &fmt.target_names {
            Some(names) if names.len() == ol => header.extend(names.iter().cloned()),
            _ if ol == 1 => header.push("y".into()),
            _ => header.extend((0..ol).map(|k| format!("y{k}"))),
        }
    }
    w.write_record(&header)?;
    for (i, y) in outputs.chunks_exact(ol).enumerate() {
        let mut rec: Vec<String> = Vec::with_capacity(header.len());
        if let Some(id) = query.ids.get(i) {
            rec.push(id.clone());
        }
        if classify {
            rec.push(anole::loss::argmax(y).to_string());
            if fmt.scores {
                rec.extend(softmax(y).iter().map(|p| p.to_string()));
            }
        } else {
            rec.extend(y.iter().map(|v| v.to_string()));
        }
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// Write `file,predicted_class` per row (then the probability of each class with `scores`).
/// Only the first `names.len()` outputs are considered when `names` is given (a model with
/// more outputs than the support set has classes); without names the class is the index.
pub fn write_image_predictions(
    mut out: impl Write,
    files: &[PathBuf],
    outputs: &[f32],
    k: usize,
    names: Option<&[String]>,
    scores: bool,
) -> Result<()> {
    let used = names.map(|n| n.len().min(k)).unwrap_or(k);
    let label = |i: usize| match names {
        Some(n) => n[i].clone(),
        None => i.to_string(),
    };
    let mut w = csv::Writer::from_writer(&mut out);
    let mut header = vec!["file".to_string(), "predicted_class".to_string()];
    if scores {
        header.extend((0..used).map(|i| format!("p_{}", label(i))));
    }
    w.write_record(&header)?;
    for (f, y) in files.iter().zip(outputs.chunks_exact(k)) {
        let y = &y[..used];
        let mut rec = vec![f.display().to_string(), label(anole::loss::argmax(y))];
        if scores {
            rec.extend(softmax(y).iter().map(|p| p.to_string()));
        }
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// Softmax probabilities of one row of logits.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let e: Vec<f32> = z.iter().map(|v| (v - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[cfg(all(test, feature = "full"))]
mod tests {
    use super::*;
    use crate::model::{encode_blob, Arch, BlobMeta};
    use anole::blob::AdaptSettings;
    use anole::DType;

    fn blob_bytes(loss: u8) -> Vec<u8> {
        let arch = Arch {
            input_shape: vec![2],
            layers: vec![anole::Layer::Dense {
                inputs: 2,
                outputs: 3,
            }],
        };
        let meta = BlobMeta {
            dtype: DType::F32,
            settings: AdaptSettings {
                loss,
                optimizer: 0,
                lr: 0.1,
                steps: 1,
                batch: 4,
                trainable: 1,
                head_start: 0,
                head_scale: 1.0,
                lr_scale: Default::default(),
            },
            algorithm: "random".into(),
            task: "t".into(),
            seed: 0,
            meta_iterations: 0,
        };
        encode_blob(&arch, &[0.0; 9], &meta).unwrap()
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_classification_support_and_reports_rows() {
        let bytes = blob_bytes(1);
        let blob = Blob::parse(&bytes).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ok = write(&dir, "s.csv", "a,b,label\n1,2,0\n\n3, 4 ,2\n");
        let s = read_support(&ok, &blob).unwrap();
        assert_eq!(
            (s.len, s.inputs, s.targets),
            (2, vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 2.0])
        );
        let bad = write(&dir, "b.csv", "a,b,label\n1,2,0\n3,x,1\n");
        let e = read_support(&bad, &blob).unwrap_err().to_string();
        assert!(
            e.ends_with("b.csv: row 3, column 2 (b): 'x' is not a number"),
            "{e}"
        );
        let bad = write(&dir, "c.csv", "a,b,label\n1,2,3\n");
        let e = read_support(&bad, &blob).unwrap_err().to_string();
        assert!(
            e.contains("row 2, column 3 (label): class 3 does not exist"),
            "{e}"
        );
    }

    #[test]
    fn writes_labels_and_scores() {
        let bytes = blob_bytes(1);
        let blob = Blob::parse(&bytes).unwrap();
        let q = Query {
            inputs: vec![0.0; 4],
            len: 2,
            input_names: vec!["a".into(), "b".into()],
            ids: vec![],
        };
        let mut out = Vec::new();
        write_predictions(
            &mut out,
            &blob,
            &q,
            &[0.0, 2.0, 1.0, 5.0, 0.0, 0.0],
            &OutputFormat {
                scores: true,
                ..Default::default()
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "label,p0,p1,p2");
        assert!(
            lines[1].starts_with("1,") && lines[2].starts_with("0,"),
            "{text}"
        );
    }
}
