//! `anole eval` of an Omniglot model: the query accuracy over N-way K-shot episodes of
//! held-out characters with 95% confidence intervals, for the device's and the transductive
//! normalisation and for full and head-only adaptation (see [`crate::fewshot`]). The held-out
//! characters are those listed in the card next to the model, in a file, or of a split.

use super::recipe::EVAL_SHOTS;
use super::{OmniglotTasks, Protocol};
use crate::data::omniglot::{Omniglot, Split};
use crate::fewshot::{self, AdaptMode, FewShotConfig, FewShotReport, HeadInit, NormMode};
use crate::meta::HeadStart;
use crate::model::{self, Arch};
use crate::progress;
use crate::tasks::recipe::{EvalOptions, EvalOutput, EvalRecipe};
use anole::{Blob, Layer, SharedBlob};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The flags of `anole eval` for an Omniglot model.
#[derive(clap::Args, Debug)]
#[group(id = "omniglot_eval")] // clap names a group after its struct: two `EvalArgs` clash
pub struct EvalArgs {
    /// Omniglot: adaptation minibatch [default: the blob's].
    #[arg(long)]
    pub batch: Option<usize>,
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
    /// Omniglot, full adaptation: start the head from the blob's (meta) or from the class
    /// prototypes of the support set's features [the blob's head start; for a blob that records
    /// meta, the card's `head_start` next to the model (models written before blobs recorded it)].
    #[arg(long, value_enum)]
    pub head_start: Option<HeadStart>,
    /// Omniglot: how episodes are drawn: standard (any held-out classes, drawings at random)
    /// or lake (Lake et al.'s challenge: 1-shot, the classes of one alphabet, support and
    /// queries from two drawers).
    #[arg(long, value_enum, default_value_t = Protocol::Standard)]
    pub protocol: Protocol,
    /// Omniglot: evaluate on the meta-validation characters listed in the card
    /// (`validation_characters`, from `train --val-chars`) instead of the held-out ones.
    #[arg(long)]
    pub validation: bool,
    /// Omniglot, full adaptation: start every episode's optimizer from this optimizer-state
    /// blob (the `init.adam.postcard` a `--inner-state keep` run writes) instead of a fresh one.
    #[arg(long, value_name = "FILE")]
    pub optimizer_state: Option<PathBuf>,
    /// Omniglot: multiply the logits of a head started from class prototypes by this factor
    /// (both the full and the head-only start; 1: unscaled, the nearest-prototype classifier)
    /// [the blob's head scale, 1 for blobs older than format version 3]. For experiments on
    /// validation characters: see docs/experiments.md.
    #[arg(long, value_name = "S")]
    pub prototype_scale: Option<f32>,
}

impl EvalArgs {
    /// The held-out episodes of a `ways`-way model of `filters` channels read from `path`, and
    /// a description of their characters: the list given with `--held-out`, else the card next
    /// to the model, else a split of the data.
    fn held_out(
        &self,
        path: &Path,
        blob: &Blob<'_>,
        ways: usize,
        filters: usize,
    ) -> Result<(OmniglotTasks, String)> {
        let data_path = self.data.as_ref().ok_or_else(|| {
            anyhow!("omniglot needs --data PATH (the folder holding images_background.zip and images_evaluation.zip)")
        })?;
        let mut data = Omniglot::load(data_path)?;
        if let Some(n) = self.subset {
            data = data.subset(n)?;
        }
        let data = Arc::new(data);
        let card = path.parent().map(|d| d.join("card.json"));
        let split_given = self.split.is_some() || self.split_seed.is_some();
        if self.validation {
            if split_given || self.held_out.is_some() {
                bail!("--validation evaluates the characters the card lists: give no --held-out, --split or --split-seed");
            }
            let c = card.filter(|c| c.is_file()).ok_or_else(|| {
                anyhow!(
                    "--validation: no card.json next to {} to list the validation characters",
                    path.display()
                )
            })?;
            return listed(&data, &c, VALIDATION_KEY, "validation", (ways, filters));
        }
        let list_file = match (&self.held_out, &card) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(c)) if !split_given && c.is_file() && read_held_out(c).is_ok() => {
                Some(c.clone())
            }
            _ => None,
        };
        if let Some(f) = &list_file {
            if split_given {
                bail!("give either --held-out or --split / --split-seed, not both");
            }
            return listed(&data, f, HELD_OUT_KEY, "held-out", (ways, filters));
        }
        let split = self.split.unwrap_or_default();
        let seed = self.split_seed.unwrap_or(blob.provenance().seed);
        let fam = OmniglotTasks::new(&data, split, seed, ways, filters)?;
        let n = fam.test_pool().len();
        let how = match split {
            Split::Paper => format!("the paper split with seed {seed}"),
            Split::Lake => "the lake split (evaluation alphabets)".to_string(),
        };
        Ok((fam, format!("{n} held-out characters of {how}")))
    }
}

impl EvalRecipe for EvalArgs {
    fn given(&self) -> Option<&'static str> {
        [
            ("--data", self.data.is_some()),
            ("--ways", self.ways.is_some()),
            ("--split", self.split.is_some()),
            ("--split-seed", self.split_seed.is_some()),
            ("--held-out", self.held_out.is_some()),
            ("--subset", self.subset.is_some()),
            ("--batch", self.batch.is_some()),
            ("--optimizer-state", self.optimizer_state.is_some()),
            ("--head-start", self.head_start.is_some()),
            ("--protocol", self.protocol != Protocol::Standard),
            ("--validation", self.validation),
        ]
        .into_iter()
        .find_map(|(flag, set)| set.then_some(flag))
    }

    fn evaluate(&self, opts: &EvalOptions, path: &Path, shared: &SharedBlob) -> Result<EvalOutput> {
        let blob = shared.blob();
        let filters = omniglot_filters(path, blob)?;
        let ways = blob.output_len();
        if let Some(w) = self.ways {
            if w != ways {
                bail!(
                    "--ways {w}: {} is a {ways}-way model (its head has {ways} outputs)",
                    path.display()
                );
            }
        }
        let (family, classes) = self.held_out(path, blob, ways, filters)?;
        let family = family.with_protocol(self.protocol);
        let ks = match self.protocol {
            Protocol::Lake => {
                if opts.shots.iter().any(|&k| k != 1) || opts.queries.is_some_and(|q| q != 1) {
                    bail!("--protocol lake is 1-shot with one query per class: give no --shots or --queries other than 1");
                }
                vec![1]
            }
            Protocol::Standard if opts.shots.is_empty() => EVAL_SHOTS.to_vec(),
            Protocol::Standard => opts.shots.clone(),
        };
        let head_start = match self.head_start {
            Some(h) => h,
            None => match HeadStart::of_blob(blob) {
                HeadStart::Meta => card_head_start(path)?,
                recorded => recorded,
            },
        };
        let state = self
            .optimizer_state
            .as_deref()
            .map(model::read_blob)
            .transpose()?;
        let mut reports: Vec<FewShotReport> = Vec::new();
        for k in ks {
            let cfg = FewShotConfig {
                episodes: opts.tasks,
                shots: k,
                queries: opts.queries.unwrap_or(1),
                steps: opts.steps.unwrap_or(blob.settings().steps),
                batch: self.batch,
                lr: opts.lr,
                seed: opts.seed,
                norm: self.norm,
                adapt: self.adapt,
                head_init: self.head_init,
                head_start,
                prototype_scale: self.prototype_scale,
            };
            let bar = progress::bar(cfg.episodes as u64, &format!("{k}-shot"));
            let report = fewshot::evaluate_from_state(
                shared,
                state.as_ref().map(|s| s.blob()),
                &family,
                &cfg,
                &bar,
            )
            .with_context(|| format!("{}", path.display()))?;
            bar.finish_and_clear();
            reports.push(report);
        }
        let mut text = format!("{}: {classes}\n", path.display());
        text.push_str(&FewShotReport::table_header());
        for r in &reports {
            text.push_str(&r.table_rows());
        }
        if let Some(r) = reports.first() {
            text.push_str(&format!("({})\n", r.describe()));
        }
        Ok(EvalOutput {
            json: serde_json::json!({
                "model": path.display().to_string(),
                "classes": classes,
                "reports": reports,
            }),
            text,
        })
    }
}

/// The card's keys listing the held-out and the meta-validation characters.
const HELD_OUT_KEY: &str = "held_out_characters";
const VALIDATION_KEY: &str = "validation_characters";

/// Evaluation episodes of the characters listed in `file` (under `key` in a card), for a
/// model of (ways, filters), and their description ("N `what` characters listed in FILE").
fn listed(
    data: &Arc<Omniglot>,
    file: &Path,
    key: &str,
    what: &str,
    (ways, filters): (usize, usize),
) -> Result<(OmniglotTasks, String)> {
    let names = read_characters(file, key)?;
    let pool = data
        .pool(&names)
        .with_context(|| format!("{}: {what} characters", file.display()))?;
    Ok((
        OmniglotTasks::from_pools(None, pool, ways, filters)?,
        format!(
            "{} {what} characters listed in {}",
            names.len(),
            file.display()
        ),
    ))
}

/// The head start the card next to the model at `path` records (`head_start`), or meta when
/// there is no card or it records none.
fn card_head_start(path: &Path) -> Result<HeadStart> {
    let Some(card) = path
        .parent()
        .map(|d| d.join("card.json"))
        .filter(|c| c.is_file())
    else {
        return Ok(HeadStart::Meta);
    };
    let text = std::fs::read_to_string(&card)
        .with_context(|| format!("{}: cannot read the card", card.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not valid JSON ({e})", card.display()))?;
    match v.get("head_start") {
        None => Ok(HeadStart::Meta),
        Some(h) => serde_json::from_value(h.clone()).map_err(|e| {
            anyhow!(
                "{}: \"head_start\" is not meta or prototypes ({e})",
                card.display()
            )
        }),
    }
}

/// The held-out characters listed in `path`: a card.json's `held_out_characters`, or one
/// `alphabet/character` per line of a text file.
pub fn read_held_out(path: &Path) -> Result<Vec<String>> {
    read_characters(path, HELD_OUT_KEY)
}

/// The characters listed in `path`: a card.json's list `key`, or one `alphabet/character` per
/// line of a text file.
fn read_characters(path: &Path, key: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{}: cannot read the held-out character list",
            path.display()
        )
    })?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: not valid JSON ({e})", path.display()))?;
        let list = v.get(key).and_then(|l| l.as_array()).ok_or_else(|| {
            anyhow!(
                "{}: no \"{key}\" list (is this a model card{}?)",
                path.display(),
                if key == VALIDATION_KEY {
                    " of a run with --val-chars"
                } else {
                    ""
                }
            )
        })?;
        list.iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("{}: {key}[{i}] is not a string", path.display()))
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
