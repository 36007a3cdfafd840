//! anole on a Linux board (Raspberry Pi class, aarch64): read labelled samples and query rows as
//! CSV, adapt the meta-learned blob on the samples, print one prediction row per query as CSV.
//!
//! A row with as many numbers as the model has inputs is a query; a row with the inputs followed
//! by the targets (regression) or a class index (classification) is a sample. Blank lines,
//! `#` comments and a header line are skipped. With `--demo` it runs the same sine demo as the
//! microcontroller examples and prints the same report.

use anole::{Blob, Learner, LossKind, Samples, SliceSamples};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
usage: anole-linux [--model BLOB] [--steps N] [--lr LR] [FILE ...]
       anole-linux --demo

Reads CSV rows from FILEs (or stdin; `-` is stdin): `x,y` rows are samples, `x` rows are queries
(in general: the model's inputs, then its targets or class index for samples). Adapts on the
samples and prints `inputs,outputs` CSV for every query. Default model: the embedded sine blob.

  --model BLOB   an anole blob (init.postcard) instead of the embedded sine model
  --steps N      adaptation steps (default: the blob's recommendation)
  --lr LR        learning rate (default: the blob's recommendation)
  --demo         run the device demo (draw a sine task, adapt, report loss and cost)";

struct Args {
    model: Option<String>,
    steps: Option<u32>,
    lr: Option<f32>,
    demo: bool,
    files: Vec<String>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        model: None,
        steps: None,
        lr: None,
        demo: false,
        files: Vec::new(),
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--demo" => a.demo = true,
            "--model" => a.model = Some(value("--model")?),
            "--steps" => {
                let v = value("--steps")?;
                a.steps = Some(
                    v.parse()
                        .map_err(|_| format!("--steps: `{v}` is not a whole number"))?,
                );
            }
            "--lr" => {
                let v = value("--lr")?;
                let lr: f32 = v
                    .parse()
                    .map_err(|_| format!("--lr: `{v}` is not a number"))?;
                if !(lr.is_finite() && lr >= 0.0) {
                    return Err(format!("--lr: `{v}` must be finite and >= 0"));
                }
                a.lr = Some(lr);
            }
            s if s.starts_with("--") => return Err(format!("unknown option `{s}`")),
            _ => a.files.push(arg),
        }
    }
    Ok(Some(a))
}

/// Rows read from the input: samples (inputs then targets) and queries (inputs).
#[derive(Debug, Default, PartialEq)]
struct Rows {
    sample_inputs: Vec<f32>,
    sample_targets: Vec<f32>,
    queries: Vec<f32>,
}

/// Parse CSV `text` from `source` into `rows` for a model with `input_len` inputs and
/// `target_len` targets per sample.
fn parse_rows(
    source: &str,
    text: impl BufRead,
    input_len: usize,
    target_len: usize,
    rows: &mut Rows,
) -> Result<(), String> {
    let mut first = true;
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.map_err(|e| format!("{source}: cannot read line {}: {e}", i + 1))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        values.clear();
        let mut bad = None;
        for cell in line.split(',') {
            match cell.trim().parse::<f32>() {
                Ok(v) => values.push(v),
                Err(_) => {
                    bad = Some(cell.trim().to_string());
                    break;
                }
            }
        }
        let was_first = std::mem::replace(&mut first, false);
        if let Some(cell) = bad {
            if was_first {
                continue; // a header
            }
            return Err(format!("{source}:{}: `{cell}` is not a number", i + 1));
        }
        if let Some(j) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "{source}:{}: column {} is not finite",
                i + 1,
                j + 1
            ));
        }
        if values.len() == input_len {
            rows.queries.extend_from_slice(&values);
        } else if values.len() == input_len + target_len {
            rows.sample_inputs.extend_from_slice(&values[..input_len]);
            rows.sample_targets.extend_from_slice(&values[input_len..]);
        } else {
            return Err(format!(
                "{source}:{}: {} columns; expected {input_len} (a query) or {} (a sample)",
                i + 1,
                values.len(),
                input_len + target_len
            ));
        }
    }
    Ok(())
}

fn read_rows(files: &[String], input_len: usize, target_len: usize) -> Result<Rows, String> {
    let mut rows = Rows::default();
    let stdin_only = ["-".to_string()];
    let files = if files.is_empty() {
        &stdin_only[..]
    } else {
        files
    };
    for f in files {
        if f == "-" {
            parse_rows(
                "<stdin>",
                io::stdin().lock(),
                input_len,
                target_len,
                &mut rows,
            )?;
        } else {
            let file = std::fs::File::open(f).map_err(|e| format!("{f}: cannot open: {e}"))?;
            parse_rows(f, BufReader::new(file), input_len, target_len, &mut rows)?;
        }
    }
    Ok(rows)
}

fn load_model(path: Option<&str>) -> Result<Vec<u8>, String> {
    match path {
        None => Ok(app_sine::BLOB.to_vec()),
        Some(p) => {
            let mut bytes = Vec::new();
            std::fs::File::open(p)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| format!("{p}: cannot read: {e}"))?;
            Ok(bytes)
        }
    }
}

fn adapt_and_predict(args: &Args) -> Result<(), String> {
    let name = args.model.as_deref().unwrap_or("embedded sine model");
    let bytes = load_model(args.model.as_deref())?;
    let blob = Blob::parse(&bytes).map_err(|e| format!("{name}: not a valid anole blob: {e}"))?;
    let (il, tl, ol) = (blob.input_len(), blob.target_len(), blob.output_len());
    let rows = read_rows(&args.files, il, tl)?;

    let batch = blob.settings().batch as usize;
    let mut arena = vec![0.0f32; blob.arena_len(batch).map_err(|e| format!("{name}: {e}"))?];
    let mut learner = Learner::new(&blob, &mut arena).map_err(|e| format!("{name}: {e}"))?;
    if let Some(lr) = args.lr {
        learner.set_lr(lr).map_err(|e| format!("--lr: {e}"))?;
    }
    let steps = args.steps.unwrap_or(blob.settings().steps);
    let samples = SliceSamples::new(&rows.sample_inputs, &rows.sample_targets, il, tl)
        .map_err(|e| e.to_string())?;
    if samples.is_empty() || steps == 0 {
        eprintln!(
            "anole: {name}: no adaptation ({} samples, {steps} steps)",
            samples.len()
        );
    } else {
        let before = learner
            .loss(&samples)
            .map_err(|e| format!("samples: {e}"))?;
        let t = Instant::now();
        let report = learner
            .adapt(&samples, steps)
            .map_err(|e| format!("adapting: {e}"))?;
        let per_step = t.elapsed().as_secs_f64() * 1e6 / f64::from(report.steps.max(1));
        let after = learner
            .loss(&samples)
            .map_err(|e| format!("samples: {e}"))?;
        eprintln!(
            "anole: {name}: adapted on {} samples for {} steps at lr {}: sample loss {before} -> {after} ({per_step:.1} µs per step)",
            samples.len(),
            report.steps,
            learner.options().lr
        );
    }

    let n = rows.queries.len() / il;
    let mut outputs = vec![0.0f32; n * ol];
    learner
        .predict(&rows.queries, &mut outputs)
        .map_err(|e| format!("queries: {e}"))?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let classify = blob.loss == LossKind::CrossEntropy;
    let header = column_names(il, ol, classify);
    let write_err = |e: io::Error| format!("cannot write the predictions: {e}");
    writeln!(out, "{header}").map_err(write_err)?;
    for (x, y) in rows.queries.chunks(il).zip(outputs.chunks(ol)) {
        let cells: Vec<String> = x.iter().chain(y).map(|v| v.to_string()).collect();
        write!(out, "{}", cells.join(",")).map_err(write_err)?;
        if classify {
            write!(out, ",{}", anole::loss::argmax(y)).map_err(write_err)?;
        }
        writeln!(out).map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}

fn column_names(inputs: usize, outputs: usize, classify: bool) -> String {
    let names = |prefix: &str, n: usize| -> Vec<String> {
        if n == 1 {
            vec![prefix.to_string()]
        } else {
            (0..n).map(|i| format!("{prefix}{i}")).collect()
        }
    };
    let mut cols = names("x", inputs);
    cols.extend(names("y", outputs));
    if classify {
        cols.push("class".to_string());
    }
    cols.join(",")
}

/// The microcontroller demo on this machine, timed in nanoseconds.
struct Nanos(Instant);

impl board::Clock for Nanos {
    fn now(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn unit(&self) -> &'static str {
        "ns"
    }
}

fn demo() -> Result<bool, String> {
    let mut arena = vec![0.0f32; app_sine::ARENA_LEN.max(board::SCRATCH_LEN)];
    board::kernel_check(&mut arena).map_err(|e| format!("kernel check: {e}"))?;
    let report =
        app_sine::run(&mut arena, &mut Nanos(Instant::now())).map_err(|e| e.to_string())?;
    println!("anole sine demo on {} Linux", std::env::consts::ARCH);
    println!("kernel_check=ok");
    println!("{report}");
    Ok(report.improved())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if args.demo {
        demo().and_then(|ok| {
            if ok {
                Ok(())
            } else {
                Err("adapting did not lower the held-out loss".into())
            }
        })
    } else {
        adapt_and_predict(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rows, String> {
        let mut rows = Rows::default();
        parse_rows("t.csv", text.as_bytes(), 1, 1, &mut rows).map(|()| rows)
    }

    #[test]
    fn samples_queries_header_and_comments() {
        let r = parse("x,y\n# note\n0.5, 1.5\n\n2\n-1,3\n").unwrap();
        assert_eq!(r.sample_inputs, [0.5, -1.0]);
        assert_eq!(r.sample_targets, [1.5, 3.0]);
        assert_eq!(r.queries, [2.0]);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        assert_eq!(
            parse("1,2\n1,oops\n").unwrap_err(),
            "t.csv:2: `oops` is not a number"
        );
        assert_eq!(
            parse("1,2,3\n").unwrap_err(),
            "t.csv:1: 3 columns; expected 1 (a query) or 2 (a sample)"
        );
        assert_eq!(
            parse("1,NaN\n").unwrap_err(),
            "t.csv:1: column 2 is not finite"
        );
    }

    #[test]
    fn options_are_checked() {
        let args = |v: &[&str]| parse_args(v.iter().map(|s| s.to_string()));
        assert!(args(&["--steps", "x"]).is_err());
        assert!(args(&["--lr", "-1"]).is_err());
        assert!(args(&["--lr"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        let a = args(&["--steps", "8", "a.csv", "-"]).unwrap().unwrap();
        assert_eq!((a.steps, a.files.len()), (Some(8), 2));
    }

    #[test]
    fn columns_are_named() {
        assert_eq!(column_names(1, 1, false), "x,y");
        assert_eq!(column_names(2, 3, true), "x0,x1,y0,y1,y2,class");
    }
}
