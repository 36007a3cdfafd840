//! `anole eval`: few-shot adaptation of a blob on held-out tasks, as a table or JSON.
//! Sine: the mean query loss after 0, 1, 8 and `--steps` adaptation steps, with 95% confidence
//! intervals. Omniglot: the query accuracy over N-way K-shot episodes of held-out characters
//! with 95% confidence intervals, for the device's and the transductive normalisation and for
//! full and head-only adaptation (see [`crate::fewshot`]).

use crate::data::omniglot::{Omniglot, Split};
use crate::eval::{self, EvalConfig};
use crate::fewshot::{self, AdaptMode, FewShotConfig, FewShotReport, HeadInit, NormMode};
use crate::model::Arch;
use crate::tasks::{self, OmniglotTasks, TaskName};
use crate::{model, progress};
use anole::{Blob, Layer};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `anole eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to evaluate (a .postcard file, or a directory holding init.postcard).
    #[arg(long)]
    pub model: PathBuf,
    /// Task family [default: the one the blob was trained on].
    #[arg(long, value_enum)]
    pub task: Option<TaskName>,
    /// Held-out tasks (episodes).
    #[arg(long, visible_alias = "episodes", default_value_t = 1000)]
    pub tasks: usize,
    /// Support samples per task: sine points [10]; Omniglot images per class, one K or a list
    /// [1,5].
    #[arg(long, value_delimiter = ',')]
    pub shots: Vec<usize>,
    /// Query samples per task: sine points of an even grid over [−5, 5] [100]; Omniglot
    /// images per class [1, the paper's protocol].
    #[arg(long)]
    pub queries: Option<usize>,
    /// Adaptation steps [default: the blob's]; sine reports the loss after 0, 1, 8 and this many.
    #[arg(long)]
    pub steps: Option<u32>,
    /// Adaptation learning rate [default: the blob's].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Omniglot: adaptation minibatch [default: the blob's].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed of the held-out tasks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Omniglot: folder holding images_background.zip and images_evaluation.zip (or the
    /// unzipped folders).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Omniglot: classes per episode (must be the model's number of outputs) [the model's].
    #[arg(long)]
    pub ways: Option<usize>,
    /// Omniglot: held-out characters from this split of the data [default: the list in the
    /// card.json next to the model if there is one, else paper].
    #[arg(long, value_enum)]
    pub split: Option<Split>,
    /// Omniglot: seed of the paper split [default: the seed the model was trained with].
    #[arg(long)]
    pub split_seed: Option<u64>,
    /// Omniglot: the held-out characters, from a card.json (`held_out_characters`) or a text
    /// file with one `alphabet/character` per line.
    #[arg(long)]
    pub held_out: Option<PathBuf>,
    /// Omniglot: use only this many characters of the data before splitting (as `train
    /// --subset`).
    #[arg(long)]
    pub subset: Option<usize>,
    /// Omniglot: normalisation at prediction: the device's (statistics recomputed from the
    /// support set, per-sample prediction), transductive (the query batch's), or both.
    #[arg(long, value_enum, default_value_t = NormMode::Both)]
    pub norm: NormMode,
    /// Omniglot: adapt all layers, only the head (body frozen, features cached), or both.
    #[arg(long, value_enum, default_value_t = AdaptMode::Both)]
    pub adapt: AdaptMode,
    /// Omniglot, head-only adaptation: start from the support set's class prototypes (the
    /// nearest-prototype classifier, then fine-tuned) or from the meta-learned head.
    #[arg(long, value_enum, default_value_t = HeadInit::Prototypes)]
    pub head_init: HeadInit,
    /// Omniglot, full adaptation: start every episode's optimizer from this optimizer-state
    /// blob (the `init.adam.postcard` a `--inner-state keep` run writes) instead of a fresh one.
    #[arg(long, value_name = "FILE")]
    pub optimizer_state: Option<PathBuf>,
}

/// The blob file `model` names: the file itself, or `init.postcard` inside a directory.
pub fn blob_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join("init.postcard")
    } else {
        model.to_path_buf()
    }
}

/// Run `anole eval`.
pub fn run(args: Args) -> Result<()> {
    let path = blob_path(&args.model);
    let bytes = model::read_blob(&path)?;
    let blob = model::parse(&bytes)?;
    let task = match args.task {
        Some(t) => t,
        None => {
            let name = blob.provenance().task;
            TaskName::from_provenance(name).ok_or_else(|| {
                anyhow!(
                    "{}: trained on task '{name}', which eval does not know; pass --task",
                    path.display()
                )
            })?
        }
    };
    match task {
        TaskName::Sine => run_sine(&args, &path, &blob),
        TaskName::Omniglot => run_omniglot(&args, &path, &blob),
    }
}

fn print_json(v: serde_json::Value) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&v).map_err(|e| anyhow!("{e}"))?
    );
    Ok(())
}

fn run_sine(args: &Args, path: &Path, blob: &Blob<'_>) -> Result<()> {
    for (flag, set) in [
        ("--data", args.data.is_some()),
        ("--ways", args.ways.is_some()),
        ("--split", args.split.is_some()),
        ("--split-seed", args.split_seed.is_some()),
        ("--held-out", args.held_out.is_some()),
        ("--subset", args.subset.is_some()),
        ("--batch", args.batch.is_some()),
        ("--optimizer-state", args.optimizer_state.is_some()),
    ] {
        if set {
            bail!("{flag} is for the omniglot task family");
        }
    }
    let shots = match args.shots.as_slice() {
        [] => 10,
        [n] => *n,
        _ => bail!("--shots: sine takes one number of support points"),
    };
    let steps = args.steps.unwrap_or(blob.settings().steps);
    let cfg = EvalConfig {
        tasks: args.tasks,
        shots,
        queries: args.queries.unwrap_or(100),
        checkpoints: eval::checkpoints(steps),
        seed: args.seed,
        lr: args.lr,
        batch: None,
    };
    let bar = progress::bar(cfg.tasks as u64, "eval");
    let report = eval::evaluate(blob, &tasks::Sine, &cfg, &bar)
        .with_context(|| format!("{}", path.display()))?;
    bar.finish_and_clear();
    if args.json {
        let mut v = serde_json::to_value(&report).map_err(|e| anyhow!("{e}"))?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "model".into(),
                serde_json::Value::String(path.display().to_string()),
            );
        }
        print_json(v)
    } else {
        println!("{}", path.display());
        print!("{}", report.table());
        Ok(())
    }
}

/// The held-out characters listed in `path`: a card.json's `held_out_characters`, or one
/// `alphabet/character` per line of a text file.
pub fn read_held_out(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{}: cannot read the held-out character list",
            path.display()
        )
    })?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: not valid JSON ({e})", path.display()))?;
        let list = v
            .get("held_out_characters")
            .and_then(|l| l.as_array())
            .ok_or_else(|| {
                anyhow!(
                    "{}: no \"held_out_characters\" list (is this a model card?)",
                    path.display()
                )
            })?;
        list.iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_str().map(str::to_owned).ok_or_else(|| {
                    anyhow!(
                        "{}: held_out_characters[{i}] is not a string",
                        path.display()
                    )
                })
            })
            .collect()
    } else {
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect())
    }
}

/// The channels of an Omniglot CNN blob, or an error saying why the blob is not one.
fn omniglot_filters(path: &Path, blob: &Blob<'_>) -> Result<usize> {
    let ways = blob.output_len();
    let filters = match blob.layers.first() {
        Some(Layer::Conv2d { out_channels, .. }) => *out_channels,
        _ => 0,
    };
    if filters == 0 || Arch::of(blob) != Arch::omniglot(ways, filters) {
        bail!(
            "{}: not an Omniglot CNN (4 × conv 3×3 stride 2 + norm + ReLU, dense to N classes on 1×28×28)",
            path.display()
        );
    }
    Ok(filters)
}

fn run_omniglot(args: &Args, path: &Path, blob: &Blob<'_>) -> Result<()> {
    let filters = omniglot_filters(path, blob)?;
    let ways = blob.output_len();
    if let Some(w) = args.ways {
        if w != ways {
            bail!(
                "--ways {w}: {} is a {ways}-way model (its head has {ways} outputs)",
                path.display()
            );
        }
    }
    let data_path = args.data.as_ref().ok_or_else(|| {
        anyhow!("omniglot needs --data PATH (the folder holding images_background.zip and images_evaluation.zip)")
    })?;
    let mut data = Omniglot::load(data_path)?;
    if let Some(n) = args.subset {
        data = data.subset(n)?;
    }
    let data = Arc::new(data);
    // Which characters are held out.
    let card = path.parent().map(|d| d.join("card.json"));
    let split_given = args.split.is_some() || args.split_seed.is_some();
    let list_file = match (&args.held_out, &card) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(c)) if !split_given && c.is_file() && read_held_out(c).is_ok() => {
            Some(c.clone())
        }
        _ => None,
    };
    let (family, classes) = match &list_file {
        Some(f) => {
            if split_given {
                bail!("give either --held-out or --split / --split-seed, not both");
            }
            let names = read_held_out(f)?;
            let pool = data
                .pool(&names)
                .with_context(|| format!("{}: held-out characters", f.display()))?;
            (
                OmniglotTasks::from_pools(None, pool, ways, filters)?,
                format!(
                    "{} held-out characters listed in {}",
                    names.len(),
                    f.display()
                ),
            )
        }
        None => {
            let split = args.split.unwrap_or_default();
            let seed = args.split_seed.unwrap_or(blob.provenance().seed);
            let fam = OmniglotTasks::new(&data, split, seed, ways, filters)?;
            let n = fam.test_pool().len();
            let how = match split {
                Split::Paper => format!("the paper split with seed {seed}"),
                Split::Lake => "the lake split (evaluation alphabets)".to_string(),
            };
            (fam, format!("{n} held-out characters of {how}"))
        }
    };
    let ks = if args.shots.is_empty() {
        vec![1, 5]
    } else {
        args.shots.clone()
    };
    let state_bytes = args
        .optimizer_state
        .as_deref()
        .map(model::read_blob)
        .transpose()?;
    let state = state_bytes.as_deref().map(model::parse).transpose()?;
    let mut reports: Vec<FewShotReport> = Vec::new();
    for &k in &ks {
        let cfg = FewShotConfig {
            episodes: args.tasks,
            shots: k,
            queries: args.queries.unwrap_or(1),
            steps: args.steps.unwrap_or(blob.settings().steps),
            batch: args.batch,
            lr: args.lr,
            seed: args.seed,
            norm: args.norm,
            adapt: args.adapt,
            head_init: args.head_init,
        };
        let bar = progress::bar(cfg.episodes as u64, &format!("{k}-shot"));
        let report = fewshot::evaluate_from_state(blob, state.as_ref(), &family, &cfg, &bar)
            .with_context(|| format!("{}", path.display()))?;
        bar.finish_and_clear();
        reports.push(report);
    }
    if args.json {
        print_json(serde_json::json!({
            "model": path.display().to_string(),
            "classes": classes,
            "reports": reports,
        }))
    } else {
        println!("{}: {classes}", path.display());
        print!("{}", FewShotReport::table_header());
        for r in &reports {
            print!("{}", r.table_rows());
        }
        if let Some(r) = reports.first() {
            println!("({})", r.describe());
        }
        Ok(())
    }
}
