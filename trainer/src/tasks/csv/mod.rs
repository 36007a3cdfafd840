//! A task family of the user's own, from CSV files: one file per task (a user, a machine, a
//! speaker…), all with the same header, read as `anole adapt` reads a support set
//! ([`crate::csvio`]): input columns, then target columns (regression, MSE) or one integer
//! `label` column (classification, cross-entropy). A file with a `task` column holds several
//! tasks, one per value. Meta-training draws rows of random training tasks; held-out tasks
//! (another folder, or a seeded share of the tasks) give the evaluation episodes: K support rows
//! (per class for classification) and the rest of the task as queries. With `ways`, a
//! classification episode draws that many of a task's classes and numbers them 0..ways in
//! random order. The recipe (`anole train csv`) is in [`recipe`].

pub mod recipe;

pub use recipe::{CardSection, TrainArgs};

use super::{holdout_indices, start, Batch, Episode, TaskFamily, TaskRng};
use crate::csvio::{self, Columns, Table, LABEL};
use crate::model::Arch;
use anole::LossKind;
use anyhow::{anyhow, bail, Result};
use rand::seq::{index, SliceRandom};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Provenance name of the family.
pub const NAME: &str = "csv";
/// Name of the column that splits one file into several tasks.
pub const TASK: &str = "task";

/// One task's rows, as read.
#[derive(Clone, Debug)]
pub struct Task {
    /// `FILE` or `FILE (task VALUE)`: how errors and the card name the task.
    pub name: String,
    /// The rows' numbers in their file (the header is row 1).
    rows: Vec<u64>,
    inputs: Vec<f32>,
    targets: Vec<f32>,
    /// Classification: the rows of each class present, by label.
    classes: BTreeMap<usize, Vec<usize>>,
}

impl Task {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the task has no row (never after reading).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Where the task is: its name and the span of its rows, for errors.
    pub fn place(&self) -> String {
        match (self.rows.iter().min(), self.rows.iter().max()) {
            (Some(a), Some(b)) if a != b => format!("{}: rows {a}-{b}", self.name),
            (Some(a), _) => format!("{}: row {a}", self.name),
            _ => self.name.clone(),
        }
    }

    /// Classification: the classes present, with their number of rows.
    pub fn class_counts(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.classes.iter().map(|(c, r)| (*c, r.len()))
    }
}

/// Raw tables of a data path, before their columns are known.
#[derive(Clone, Debug)]
pub struct Tables {
    /// Column names shared by every task (without a `task` column).
    pub header: Vec<String>,
    /// Each task's name and table.
    pub tasks: Vec<(String, PathBuf, Table)>,
}

impl Tables {
    /// Read `path`: a folder of `.csv` files (one task each, or several with a `task` column),
    /// or one CSV file with a `task` column. Every task must have the same header.
    pub fn read(path: &Path) -> Result<Tables> {
        let p = path.display();
        let files = if path.is_dir() {
            let mut files = Vec::new();
            for e in std::fs::read_dir(path).map_err(|e| anyhow!("{p}: cannot list: {e}"))? {
                let f = e.map_err(|e| anyhow!("{p}: cannot list: {e}"))?.path();
                if f.is_file() && f.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) {
                    files.push(f);
                }
            }
            files.sort();
            if files.is_empty() {
                bail!("{p}: no .csv files (one file per task, or one file with a '{TASK}' column)");
            }
            files
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            bail!("{p}: no such file or folder");
        };
        let mut tasks = Vec::new();
        let mut header: Option<(PathBuf, Vec<String>)> = None;
        for file in files {
            let t = csvio::read_table(&file)?;
            let split = split_tasks(&file, t)?;
            let this = &split[0].1.header;
            match &header {
                None => header = Some((file.clone(), this.clone())),
                Some((first, h)) if h != this => bail!(
                    "{}: row 1: header '{}' differs from {}'s '{}' (every task has the same columns)",
                    file.display(),
                    this.join(","),
                    first.display(),
                    h.join(",")
                ),
                Some(_) => {}
            }
            tasks.extend(split.into_iter().map(|(n, t)| (n, file.clone(), t)));
        }
        let (_, header) = header.ok_or_else(|| anyhow!("{p}: no CSV file read"))?;
        if path.is_file() && tasks.len() < 2 {
            bail!("{p}: one task only: give a folder of CSV files (one per task) or a '{TASK}' column with several values");
        }
        Ok(Tables { header, tasks })
    }

    /// The column layout: a last column named `label` makes a classification family (one
    /// target), else the last `targets` columns are regression targets.
    pub fn columns(&self, targets: usize, classes: usize) -> Result<Columns> {
        let first = &self.tasks[0].1;
        let n = self.header.len();
        let classify = self.header.last().is_some_and(|h| h == LABEL);
        let targets = if classify { 1 } else { targets };
        if targets == 0 || n <= targets {
            bail!(
                "{}: row 1: {n} column(s) '{}': need at least one input column, then {}",
                first.display(),
                self.header.join(","),
                if classify {
                    format!("the '{LABEL}' column")
                } else {
                    format!("{targets} target column(s)")
                }
            );
        }
        Ok(Columns {
            inputs: n - targets,
            targets,
            classes: classify.then_some(classes),
        })
    }

    /// Parse every task's cells for `columns` (errors name the file, row and column).
    pub fn parse(self, columns: &Columns) -> Result<Vec<Task>> {
        self.tasks
            .into_iter()
            .map(|(name, file, t)| {
                let rows = t.rows.iter().map(|(r, _)| *r).collect();
                let s = csvio::support_with_columns(&file, t, columns)?;
                let mut classes: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                if columns.classes.is_some() {
                    for (i, &l) in s.targets.iter().enumerate() {
                        classes.entry(l as usize).or_default().push(i);
                    }
                }
                Ok(Task {
                    name,
                    rows,
                    inputs: s.inputs,
                    targets: s.targets,
                    classes,
                })
            })
            .collect()
    }
}

/// A table as its tasks: one, or one per value of its `task` column (in order of appearance).
fn split_tasks(file: &Path, t: Table) -> Result<Vec<(String, Table)>> {
    let name = file.display().to_string();
    if t.rows.is_empty() {
        bail!("{name}: no sample rows after the header: every task needs rows");
    }
    let Some(col) = t.header.iter().position(|h| h == TASK) else {
        return Ok(vec![(name, t)]);
    };
    let header: Vec<String> = t
        .header
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != col)
        .map(|(_, h)| h.clone())
        .collect();
    let mut order: Vec<String> = Vec::new();
    let mut by_task: BTreeMap<String, Vec<(u64, Vec<String>)>> = BTreeMap::new();
    for (row, mut cells) in t.rows {
        let value = cells.remove(col);
        if value.is_empty() {
            bail!(
                "{name}: row {row}, column {} ({TASK}): empty task name",
                col + 1
            );
        }
        if !by_task.contains_key(&value) {
            order.push(value.clone());
        }
        by_task.entry(value).or_default().push((row, cells));
    }
    Ok(order
        .into_iter()
        .map(|v| {
            let rows = by_task.remove(&v).unwrap_or_default();
            (
                format!("{name} ({TASK} {v})"),
                Table {
                    header: header.clone(),
                    rows,
                },
            )
        })
        .collect())
}

/// Split `tasks` into training and held-out tasks ([`holdout_indices`]); both keep their order.
pub fn holdout(tasks: Vec<Task>, fraction: f64, seed: u64) -> Result<(Vec<Task>, Vec<Task>)> {
    let picked = holdout_indices(tasks.len(), fraction, seed, "tasks")?;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, t) in tasks.into_iter().enumerate() {
        if picked.binary_search(&i).is_ok() {
            test.push(t);
        } else {
            train.push(t);
        }
    }
    Ok((train, test))
}

/// The CSV family: its tasks, model and loss.
#[derive(Clone, Debug)]
pub struct CsvTasks {
    arch: Arch,
    init: Option<Vec<f32>>,
    loss: LossKind,
    ways: Option<usize>,
    train: Vec<Task>,
    test: Vec<Task>,
}

impl CsvTasks {
    /// A family of `train` and held-out `test` tasks for `arch` (starting from `init` when
    /// given), `ways`-way for classification by a subset of each task's classes.
    pub fn new(
        arch: Arch,
        init: Option<Vec<f32>>,
        loss: LossKind,
        ways: Option<usize>,
        train: Vec<Task>,
        test: Vec<Task>,
    ) -> Result<CsvTasks> {
        if train.is_empty() || test.is_empty() {
            bail!("internal: a CSV family needs training and held-out tasks");
        }
        Ok(CsvTasks {
            arch,
            init,
            loss,
            ways,
            train,
            test,
        })
    }

    /// The tasks of `path` (laid out as `--data`) read for the model `blob`, every one held
    /// out: to evaluate a model on them.
    pub fn held_out_for(path: &Path, blob: &anole::Blob<'_>) -> Result<CsvTasks> {
        let columns = Columns {
            inputs: blob.input_len(),
            targets: blob.target_len(),
            classes: (blob.loss == LossKind::CrossEntropy).then(|| blob.output_len()),
        };
        let tables = Tables::read(path)?;
        let first = tables.tasks[0].1.display().to_string();
        if tables.header.len() != columns.inputs + columns.targets {
            bail!(
                "{first}: row 1: {} columns; the model takes {} inputs and {} target(s)",
                tables.header.len(),
                columns.inputs,
                columns.targets
            );
        }
        let tasks = tables.parse(&columns)?;
        CsvTasks::new(Arch::of(blob), None, blob.loss, None, tasks.clone(), tasks)
    }

    /// The most query rows (per class) an episode of `shots` support rows has: the rest of the
    /// largest held-out task (class).
    pub fn max_queries(&self, shots: usize) -> usize {
        self.test
            .iter()
            .map(|t| match self.loss {
                LossKind::CrossEntropy => t
                    .class_counts()
                    .map(|(_, n)| n.saturating_sub(shots))
                    .max()
                    .unwrap_or(0),
                _ => t.len().saturating_sub(shots),
            })
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// The training tasks.
    pub fn train(&self) -> &[Task] {
        &self.train
    }

    /// The held-out tasks.
    pub fn held_out(&self) -> &[Task] {
        &self.test
    }

    fn width(&self) -> (usize, usize) {
        let t = &self.train[0];
        let n = t.len().max(1);
        (t.inputs.len() / n, t.targets.len() / n)
    }

    /// Support (and query) rows of `task`: `shots` random rows and then up to `queries` more
    /// (regression), or per class (classification; relabelled with `ways`).
    fn draw(
        &self,
        task: &Task,
        rng: &mut TaskRng,
        shots: usize,
        queries: usize,
    ) -> Result<Episode> {
        let (il, tl) = self.width();
        let mut support: Vec<(usize, f32)> = Vec::new();
        let mut query: Vec<(usize, f32)> = Vec::new();
        if self.loss == LossKind::Mse {
            let k = shots.min(task.len());
            let q = queries.min(task.len() - k);
            let picked = index::sample(rng, task.len(), k + q).into_vec();
            support.extend(picked[..k].iter().map(|&i| (i, 0.0)));
            query.extend(picked[k..].iter().map(|&i| (i, 0.0)));
        } else {
            let all: Vec<(&usize, &Vec<usize>)> = task.classes.iter().collect();
            let chosen: Vec<(f32, &Vec<usize>)> = match self.ways {
                Some(w) => {
                    if all.len() < w {
                        bail!(
                            "{}: {} classes, fewer than --ways {w}",
                            task.place(),
                            all.len()
                        );
                    }
                    index::sample(rng, all.len(), w)
                        .into_iter()
                        .enumerate()
                        .map(|(label, i)| (label as f32, all[i].1))
                        .collect()
                }
                None => all.iter().map(|(c, r)| (**c as f32, *r)).collect(),
            };
            for (label, rows) in chosen {
                let k = shots.min(rows.len());
                let q = queries.min(rows.len() - k);
                let picked = index::sample(rng, rows.len(), k + q).into_vec();
                support.extend(picked[..k].iter().map(|&i| (rows[i], label)));
                query.extend(picked[k..].iter().map(|&i| (rows[i], label)));
            }
            support.shuffle(rng);
            query.shuffle(rng);
        }
        let gather = |rows: &[(usize, f32)]| -> Result<Batch> {
            let mut x = Vec::with_capacity(rows.len() * il);
            let mut y = Vec::with_capacity(rows.len() * tl);
            for &(i, label) in rows {
                x.extend_from_slice(&task.inputs[i * il..(i + 1) * il]);
                if self.loss == LossKind::Mse {
                    y.extend_from_slice(&task.targets[i * tl..(i + 1) * tl]);
                } else {
                    y.push(label);
                }
            }
            Batch::from_flat(x, il, y, tl)
        };
        Ok(Episode {
            support: gather(&support)?,
            query: gather(&query)?,
        })
    }
}

impl TaskFamily for CsvTasks {
    fn name(&self) -> &str {
        NAME
    }

    fn arch(&self) -> Arch {
        self.arch.clone()
    }

    fn loss(&self) -> LossKind {
        self.loss
    }

    /// The `--init` model's parameters, else the architecture's initialisation.
    fn init_params(&self, seed: u64) -> Result<Vec<f32>> {
        start::params(&self.arch, self.init.as_deref(), seed)
    }

    /// `shots` random rows (per class for classification) of a random training task.
    fn train_task(&self, rng: &mut TaskRng, shots: usize) -> Result<Batch> {
        let task = &self.train[rng.random_range(0..self.train.len())];
        Ok(self.draw(task, rng, shots, 0)?.support)
    }

    /// A random held-out task: `shots` support rows (per class), then up to `queries` of the
    /// others as queries.
    fn eval_task(&self, rng: &mut TaskRng, shots: usize, queries: usize) -> Result<Episode> {
        let task = &self.test[rng.random_range(0..self.test.len())];
        self.draw(task, rng, shots, queries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{rng, Stream};

    fn tables(text: &str) -> (tempfile::TempDir, Tables) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("all.csv");
        std::fs::write(&p, text).unwrap();
        let t = Tables::read(&p).unwrap();
        (dir, t)
    }

    #[test]
    fn task_column_splits_in_order_and_keeps_rows() {
        let (_d, t) = tables("x,task,y\n1,b,2\n3,a,4\n5,b,6\n");
        assert_eq!(t.header, ["x", "y"]);
        let names: Vec<&str> = t.tasks.iter().map(|(n, _, _)| n.as_str()).collect();
        assert!(names[0].ends_with("all.csv (task b)") && names[1].ends_with("(task a)"));
        let cols = t.columns(1, 0).unwrap();
        let tasks = t.parse(&cols).unwrap();
        assert_eq!(tasks[0].inputs, [1.0, 5.0]);
        assert_eq!(tasks[0].targets, [2.0, 6.0]);
        assert!(tasks[0].place().ends_with("(task b): rows 2-4"));
        assert!(tasks[1].place().ends_with("(task a): row 3"));
    }

    #[test]
    fn holdout_is_seeded_and_leaves_training_tasks() {
        let text: String = std::iter::once("task,x,y\n".to_string())
            .chain((0..10).map(|i| format!("t{i},{i},{i}\n")))
            .collect();
        let (_d, t) = tables(&text);
        let cols = t.columns(1, 0).unwrap();
        let tasks = t.parse(&cols).unwrap();
        let split = |seed| {
            let (a, b) = holdout(tasks.clone(), 0.2, seed).unwrap();
            let names = |v: &[Task]| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
            (names(&a), names(&b))
        };
        let (train, test) = split(3);
        assert_eq!((train.len(), test.len()), (8, 2));
        assert_eq!(split(3), (train, test.clone()));
        assert!((0..20).any(|s| split(s).1 != test));
        assert!(holdout(tasks.clone(), 0.99, 0).unwrap().0.len() == 1);
        assert!(holdout(tasks, 0.0, 0).is_err());
    }

    #[test]
    fn episodes_relabel_ways_and_keep_classes_apart() {
        let mut text = String::from("task,x,label\n");
        for c in 0..4 {
            for r in 0..5 {
                text.push_str(&format!("u,{},{}\n", 10 * c + r, c));
            }
        }
        text.push_str(
            &text
                .clone()
                .replace("u,", "v,")
                .replacen("task,x,label\n", "", 1),
        );
        let (_d, t) = tables(&text);
        let cols = t.columns(1, crate::csvio::MAX_CLASSES).unwrap();
        let tasks = t.parse(&cols).unwrap();
        let arch = crate::tasks::start::parse_arch("dense:3", &[1]).unwrap();
        let fam = CsvTasks::new(
            arch,
            None,
            LossKind::CrossEntropy,
            Some(3),
            tasks[..1].to_vec(),
            tasks[1..].to_vec(),
        )
        .unwrap();
        let e = fam.eval_task(&mut rng(0, Stream::Eval, 0), 2, 10).unwrap();
        assert_eq!((e.support.len(), e.query.len()), (6, 9));
        // Every label 0..3 has two support rows, and each label is one original class.
        for label in 0..3 {
            let xs: Vec<f32> = (0..e.support.len())
                .filter(|&i| e.support.targets[[i, 0]] == label as f32)
                .map(|i| e.support.inputs[[i, 0]])
                .chain(
                    (0..e.query.len())
                        .filter(|&i| e.query.targets[[i, 0]] == label as f32)
                        .map(|i| e.query.inputs[[i, 0]]),
                )
                .collect();
            assert_eq!(xs.len(), 5);
            let class = (xs[0] / 10.0).floor();
            assert!(xs.iter().all(|x| (x / 10.0).floor() == class), "{xs:?}");
        }
        let b = fam.train_task(&mut rng(0, Stream::Train, 0), 4).unwrap();
        assert_eq!(b.len(), 12);
    }
}
