//! The Reptile paper's Taylor analysis, measured (`anole_trainer::meta::theory`): at a fixed φ
//! of the sine MLP (the initialization of `--seed`, or the parameters of `--model`), over
//! `--tasks` sine tasks of 50 points, the terms AvgGrad and AvgGradInner and the meta-gradients
//! of MAML, FOMAML and Reptile for each inner lr; each meta-gradient is fitted as
//! a·AvgGrad + b·α·AvgGradInner. Prints a markdown table of the measured coefficients next to
//! the theory's and writes one plot per k (measured / theory against α) into `--out`.
//!
//! ```text
//! cargo run --release -p anole-trainer --example paper_theory -- --out docs/img
//! ```

use anole::{DType, Options, OwnedLearner};
use anole_trainer::meta::theory::{measure, theory, ALGORITHMS};
use anole_trainer::meta::{adapt_settings, Config};
use anole_trainer::model::{encode_blob, read_blob, shared, BlobMeta};
use anole_trainer::plots;
use anole_trainer::tasks::{rng, Sine, Stream, TaskFamily};
use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Measure the first-order expansion of the MAML, FOMAML and Reptile meta-gradients on sine tasks"
)]
struct Args {
    /// Folder of the plots (theory-k<K>.png).
    #[arg(long)]
    out: PathBuf,
    /// Sine tasks averaged over.
    #[arg(long, default_value_t = 200)]
    tasks: usize,
    /// Inner steps k (minibatches of 10 of the 50 points), one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "2,3,4")]
    steps: Vec<usize>,
    /// Inner learning rates α.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.0003,0.001,0.003,0.01,0.02,0.03"
    )]
    lrs: Vec<f32>,
    /// Seed of the initialization φ and of the tasks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Take φ from this sine blob instead of the initialization.
    #[arg(long)]
    model: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(&Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    if args.lrs.iter().any(|&a| !(a.is_finite() && a > 0.0)) {
        bail!("--lrs: every inner lr must be a positive number");
    }
    let arch = Sine::default().arch();
    let phi = match &args.model {
        Some(p) => OwnedLearner::new(&read_blob(p)?)
            .with_context(|| format!("{}: not a sine model", p.display()))?
            .params()
            .to_vec(),
        None => Sine::default().init_params(args.seed)?,
    };
    let meta = BlobMeta {
        dtype: DType::F32,
        settings: adapt_settings(&Sine::default(), &Config::sine(), 1, 10),
        algorithm: "theory".into(),
        task: "sine".into(),
        seed: args.seed,
        meta_iterations: 0,
    };
    let blob = shared(encode_blob(&arch, &phi, &meta)?)?;
    let mut learner = OwnedLearner::with_options(
        &blob,
        Options {
            batch: 10,
            trainable: arch.all_layers(),
            lr: 0.02,
        },
    )?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    println!("| k | α | algorithm | a (theory) | b (theory) | residual |");
    println!("|---:|---:|---|---:|---:|---:|");
    for &k in &args.steps {
        let mut r = rng(args.seed, Stream::Train, k as u64);
        let terms = measure(
            &mut learner,
            &Sine::default(),
            &mut r,
            &phi,
            args.tasks,
            50,
            k,
            10,
            &args.lrs,
        )?;
        let fits = terms.fits();
        let th = theory(k);
        let mut series = Vec::new();
        for (i, name) in ALGORITHMS.iter().enumerate() {
            let (a, b) = th[i];
            series.push((
                format!("{name}: a / {a}"),
                fits.iter()
                    .map(|(lr, f)| (*lr as f64, f[i].a / a))
                    .collect(),
            ));
            series.push((
                format!("{name}: b / {b}"),
                fits.iter()
                    .map(|(lr, f)| (*lr as f64, f[i].b / b))
                    .collect(),
            ));
        }
        for (lr, f) in &fits {
            for (i, name) in ALGORITHMS.iter().enumerate() {
                let (a, b) = th[i];
                println!(
                    "| {k} | {lr} | {name} | {:.3} ({a}) | {:.3} ({b}) | {:.1e} |",
                    f[i].a, f[i].b, f[i].residual
                );
            }
        }
        let path = args.out.join(format!("theory-k{k}.png"));
        plots::lines(
            &path,
            &format!(
                "k = {k}: measured / theory, {} sine tasks, all {}! minibatch orders",
                args.tasks, k
            ),
            ("inner lr α", "measured coefficient / theory's"),
            true,
            &series,
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
