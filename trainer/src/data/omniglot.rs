//! Omniglot (Lake et al. 2015) for few-shot episodes: loads the official archives or their
//! unzipped folders, preprocesses every drawing once (in parallel) into memory, splits the
//! characters as the paper (`paper`) or as Lake's challenge (`lake`), augments training classes
//! with rotations and samples N-way K-shot episodes.
//!
//! Layout read: `PATH/images_background.zip` and `PATH/images_evaluation.zip` (entries
//! `images_background/<alphabet>/<character>/<image>.png`), or the unzipped folders
//! `PATH/images_background/<alphabet>/<character>/<image>.png` (a folder is preferred over the
//! zip when both exist). Characters are ordered by `(alphabet, character)` and images by file
//! name, so everything downstream is deterministic.

use super::images::{self, Pixels, PIXELS};
use anyhow::{anyhow, bail, ensure, Context, Result};
use rand::seq::{index, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Characters in the full data set.
pub const CHARACTERS: usize = 1623;
/// Training characters of the paper's split (the rest, 423, are held out).
pub const PAPER_TRAIN: usize = 1200;

/// The two halves of the official release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// `images_background`: 30 alphabets, 964 characters.
    Background,
    /// `images_evaluation`: 20 alphabets, 659 characters.
    Evaluation,
}

impl Part {
    /// Both parts, in release order.
    pub const ALL: [Part; 2] = [Part::Background, Part::Evaluation];

    /// Folder (and archive stem) name: `images_background` or `images_evaluation`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Part::Background => "images_background",
            Part::Evaluation => "images_evaluation",
        }
    }
}

/// How characters are divided into meta-training and held-out test classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The paper's protocol: all characters pooled, shuffled with the seed, 1,200 train / 423 test
    /// (on a subset: the same 1200/1623 proportion).
    #[default]
    Paper,
    /// Lake et al.'s one-shot challenge: background alphabets train, evaluation alphabets test.
    Lake,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Paper => "paper",
            Split::Lake => "lake",
        })
    }
}

/// One handwritten character (a class before augmentation) and where its images are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Character {
    /// Which half of the release it comes from.
    pub part: Part,
    /// Alphabet folder name, e.g. `Alphabet_of_the_Magi`.
    pub alphabet: String,
    /// Character folder name, e.g. `character01`.
    pub character: String,
    first: usize,
    count: usize,
}

impl Character {
    /// `alphabet/character`: the identity written to model cards.
    pub fn name(&self) -> String {
        if self.alphabet.is_empty() {
            // A user's class folder without a group (`Omniglot::load_classes`).
            return self.character.clone();
        }
        format!("{}/{}", self.alphabet, self.character)
    }

    /// Number of drawings (20 in the official release).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the character has no drawing (never after [`Omniglot::load`]).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// All characters, with every drawing preprocessed to 28×28 `u8` (see [`images`]), in memory.
#[derive(Clone, Debug)]
pub struct Omniglot {
    characters: Vec<Character>,
    pixels: Vec<Pixels>,
}

/// A class of an episode pool: a character, possibly rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Class {
    /// Index into [`Omniglot::characters`].
    pub character: usize,
    /// Counter-clockwise quarter turns, 0..4 (rotated copies are distinct classes).
    pub rotation: u8,
}

/// A set of classes episodes are drawn from; cheap to clone (the images are shared).
#[derive(Clone, Debug)]
pub struct Pool {
    data: Arc<Omniglot>,
    classes: Vec<Class>,
}

/// Where the classes of an episode come from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Classes {
    /// Any classes of the pool.
    #[default]
    Any,
    /// The classes of one alphabet (harder: similar characters side by side, as in Lake et
    /// al.'s challenge).
    Alphabet,
}

impl fmt::Display for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Classes::Any => "any",
            Classes::Alphabet => "alphabet",
        })
    }
}

/// Seed of the meta-validation characters' shuffle, mixed with the run's seed so that they
/// differ from the `paper` split's shuffle.
const VALIDATION_SEED: u64 = 0x7661_6c69_6461_7465;

/// Meta-training and held-out classes.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Training classes: each training character in 4 rotations (0°, 90°, 180°, 270°).
    pub train: Pool,
    /// Held-out test classes: the test characters, unrotated.
    pub test: Pool,
    /// Meta-validation classes: characters taken out of the training split (never test
    /// characters), unrotated; empty unless asked for.
    pub validation: Pool,
}

/// One N-way K-shot episode; labels are class indices `0..ways` stored as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// Number of classes N.
    pub ways: usize,
    /// Support images per class K.
    pub shots: usize,
    /// Query images per class.
    pub queries: usize,
    /// The class behind label `i`.
    pub classes: Vec<Class>,
    /// `ways·shots × 784` inputs (CHW 1×28×28), rows in random order.
    pub support_inputs: Vec<f32>,
    /// `ways·shots` labels.
    pub support_labels: Vec<f32>,
    /// `ways·queries × 784` inputs, rows in random order, no image shared with the support.
    pub query_inputs: Vec<f32>,
    /// `ways·queries` labels.
    pub query_labels: Vec<f32>,
    /// Drawing index (within its class) of each support row.
    pub support_drawings: Vec<usize>,
    /// Drawing index (within its class) of each query row.
    pub query_drawings: Vec<usize>,
}

impl Episode {
    /// The support set as engine samples (input length 784, target length 1).
    pub fn support(&self) -> Result<anole::SliceSamples<'_>> {
        anole::SliceSamples::new(&self.support_inputs, &self.support_labels, PIXELS, 1)
            .context("support set")
    }

    /// The query set as engine samples (input length 784, target length 1).
    pub fn query(&self) -> Result<anole::SliceSamples<'_>> {
        anole::SliceSamples::new(&self.query_inputs, &self.query_labels, PIXELS, 1)
            .context("query set")
    }
}

/// One drawing to read: its place in the layout and its source (a file path or an archive
/// entry index).
struct Entry<S> {
    alphabet: String,
    character: String,
    file: String,
    source: S,
}

impl Omniglot {
    /// Loads both halves from `path`: the folder that holds `images_background.zip` and
    /// `images_evaluation.zip`, or the unzipped `images_background/` and `images_evaluation/`.
    /// Errors name the path, archive entry or file at fault.
    pub fn load(path: &Path) -> Result<Omniglot> {
        if !path.exists() {
            bail!("Omniglot data path {} does not exist", path.display());
        }
        if !path.is_dir() {
            bail!(
                "Omniglot data path {} is not a folder: give the folder that holds images_background.zip and images_evaluation.zip (or the unzipped folders)",
                path.display()
            );
        }
        let mut characters = Vec::new();
        let mut pixels = Vec::new();
        for part in Part::ALL {
            let dir = path.join(part.dir_name());
            let zip = path.join(format!("{}.zip", part.dir_name()));
            if dir.is_dir() {
                let (entries, decoded) = load_folder(&dir)?;
                group(part, entries, decoded, &mut characters, &mut pixels);
            } else if zip.is_file() {
                let (entries, decoded) = load_zip(&zip, part)?;
                group(part, entries, decoded, &mut characters, &mut pixels);
            } else {
                bail!(
                    "{}: neither {} nor {} found (expected the official Omniglot release)",
                    path.display(),
                    zip.display(),
                    dir.display()
                );
            }
        }
        // Pool both halves in name order, as the reference lists one folder of all alphabets.
        let mut order: Vec<usize> = (0..characters.len()).collect();
        order.sort_by(|&a, &b| {
            (&characters[a].alphabet, &characters[a].character)
                .cmp(&(&characters[b].alphabet, &characters[b].character))
        });
        for w in order.windows(2) {
            let (a, b) = (&characters[w[0]], &characters[w[1]]);
            if a.alphabet == b.alphabet && a.character == b.character {
                bail!(
                    "{}: character {} appears in both {} and {}",
                    path.display(),
                    a.name(),
                    a.part.dir_name(),
                    b.part.dir_name()
                );
            }
        }
        let characters = order.into_iter().map(|i| characters[i].clone()).collect();
        Ok(Omniglot { characters, pixels })
    }

    /// A user's image classes: `dir/<class>/<image>.png`, or grouped one level deeper,
    /// `dir/<group>/<class>/<image>.png` (as Omniglot's alphabets), told apart by whether the
    /// first sub-folder holds PNG files. Each image is preprocessed as for Omniglot (any size);
    /// the group is the class's alphabet (empty without groups). Errors name the folder or file.
    pub fn load_classes(dir: &Path) -> Result<Omniglot> {
        if !dir.is_dir() {
            bail!(
                "{}: not a folder (expected one sub-folder of PNG images per class)",
                dir.display()
            );
        }
        let layout = || {
            format!(
                "expected {0}/<class>/<image>.png or {0}/<group>/<class>/<image>.png",
                dir.display()
            )
        };
        let top = sub_dirs(dir, &layout)?;
        let Some((_, first)) = top.first() else {
            bail!("{} holds no class folders ({})", dir.display(), layout());
        };
        let grouped = std::fs::read_dir(first)
            .with_context(|| format!("cannot list folder {}", first.display()))?
            .filter_map(|e| e.ok())
            .all(|e| !(images::is_png(&e.path()) && e.path().is_file()));
        let mut entries = Vec::new();
        for (name, path) in top {
            if grouped {
                for (class, class_dir) in sub_dirs(&path, &layout)? {
                    class_images(&name, &class, &class_dir, &layout, &mut entries)?;
                }
            } else {
                class_images("", &name, &path, &layout, &mut entries)?;
            }
        }
        if entries.is_empty() {
            bail!("{} holds no class folders ({})", dir.display(), layout());
        }
        let (entries, decoded) = decode(entries)?;
        let mut characters = Vec::new();
        let mut pixels = Vec::new();
        group(
            Part::Background,
            entries,
            decoded,
            &mut characters,
            &mut pixels,
        );
        Ok(Omniglot { characters, pixels })
    }

    /// A pool of the given characters, each also in 3 rotations (90°, 180°, 270°) with
    /// `rotations`.
    pub fn pool_of(self: &Arc<Self>, characters: &[usize], rotations: bool) -> Pool {
        let turns = if rotations { 4 } else { 1 };
        Pool {
            data: Arc::clone(self),
            classes: characters
                .iter()
                .flat_map(|&character| {
                    (0..turns).map(move |rotation| Class {
                        character,
                        rotation,
                    })
                })
                .collect(),
        }
    }

    /// All characters, ordered by `(alphabet, character)`.
    pub fn characters(&self) -> &[Character] {
        &self.characters
    }

    /// Number of drawings.
    pub fn num_images(&self) -> usize {
        self.pixels.len()
    }

    /// The characters of one half of the release.
    pub fn count(&self, part: Part) -> usize {
        self.characters.iter().filter(|c| c.part == part).count()
    }

    /// Drawing `i` of character `c`, preprocessed and unrotated. Panics if out of range.
    pub fn image(&self, c: usize, i: usize) -> &Pixels {
        let ch = &self.characters[c];
        assert!(
            i < ch.count,
            "image {i} of {} out of range ({})",
            ch.name(),
            ch.count
        );
        &self.pixels[ch.first + i]
    }

    /// The same data restricted to `n` characters spread evenly over the name order (so both
    /// halves and most alphabets are represented): a quick set for CI and smoke tests.
    pub fn subset(&self, n: usize) -> Result<Omniglot> {
        ensure!(
            n >= 1 && n <= self.characters.len(),
            "subset of {n} characters requested; the data has {}",
            self.characters.len()
        );
        let total = self.characters.len();
        let mut characters = Vec::with_capacity(n);
        let mut pixels = Vec::new();
        for k in 0..n {
            let ch = &self.characters[k * total / n];
            characters.push(Character {
                first: pixels.len(),
                ..ch.clone()
            });
            pixels.extend_from_slice(&self.pixels[ch.first..ch.first + ch.count]);
        }
        Ok(Omniglot { characters, pixels })
    }

    /// Divides the characters into meta-training (augmented with 90°/180°/270° rotations) and
    /// held-out test classes. `seed` drives the `paper` shuffle (ChaCha8); `lake` ignores it.
    pub fn split(self: &Arc<Self>, split: Split, seed: u64) -> Result<Splits> {
        self.split_with_validation(split, seed, 0)
    }

    /// [`Omniglot::split`], with `validation` of the training characters held out for
    /// meta-validation (drawn with a ChaCha8 shuffle of the training characters seeded by
    /// `seed`); the test characters are the same as without them.
    pub fn split_with_validation(
        self: &Arc<Self>,
        split: Split,
        seed: u64,
        validation: usize,
    ) -> Result<Splits> {
        let n = self.characters.len();
        let (mut train, mut test): (Vec<usize>, Vec<usize>) = match split {
            Split::Paper => {
                ensure!(
                    n >= 2,
                    "the paper split needs at least 2 characters; the data has {n}"
                );
                let n_train = ((n * PAPER_TRAIN + CHARACTERS / 2) / CHARACTERS).clamp(1, n - 1);
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                let test = order.split_off(n_train);
                (order, test)
            }
            Split::Lake => (0..n).partition(|&i| self.characters[i].part == Part::Background),
        };
        ensure!(
            !train.is_empty() && !test.is_empty(),
            "the {split} split leaves no {} characters",
            if train.is_empty() { "training" } else { "test" }
        );
        ensure!(
            validation < train.len(),
            "{validation} validation characters leave no training characters: the {split} split has {}",
            train.len()
        );
        train.sort_unstable();
        let mut val = Vec::new();
        if validation > 0 {
            let mut order = train.clone();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ VALIDATION_SEED));
            val = order.split_off(order.len() - validation);
            val.sort_unstable();
            train.retain(|c| val.binary_search(c).is_err());
        }
        test.sort_unstable();
        let unrotated = |chars: &[usize]| -> Vec<Class> {
            chars
                .iter()
                .map(|&character| Class {
                    character,
                    rotation: 0,
                })
                .collect()
        };
        let train = train
            .iter()
            .flat_map(|&character| {
                (0..4).map(move |rotation| Class {
                    character,
                    rotation,
                })
            })
            .collect();
        Ok(Splits {
            train: Pool {
                data: Arc::clone(self),
                classes: train,
            },
            test: Pool {
                data: Arc::clone(self),
                classes: unrotated(&test),
            },
            validation: Pool {
                data: Arc::clone(self),
                classes: unrotated(&val),
            },
        })
    }

    /// A pool of the named characters (`alphabet/character`, as in a model card), unrotated;
    /// errors name an unknown or repeated character.
    pub fn pool<S: AsRef<str>>(self: &Arc<Self>, names: &[S]) -> Result<Pool> {
        let index: HashMap<String, usize> = self
            .characters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name(), i))
            .collect();
        let mut seen = BTreeSet::new();
        let mut classes = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let character = *index.get(name).ok_or_else(|| {
                anyhow!("unknown Omniglot character {name:?} (expected alphabet/character)")
            })?;
            ensure!(seen.insert(character), "character {name:?} listed twice");
            classes.push(Class {
                character,
                rotation: 0,
            });
        }
        ensure!(!classes.is_empty(), "empty list of characters");
        Ok(Pool {
            data: Arc::clone(self),
            classes,
        })
    }

    /// A pool of every character, unrotated.
    pub fn all(self: &Arc<Self>) -> Pool {
        Pool {
            data: Arc::clone(self),
            classes: (0..self.characters.len())
                .map(|character| Class {
                    character,
                    rotation: 0,
                })
                .collect(),
        }
    }
}

impl Pool {
    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// True when there is no class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The classes.
    pub fn classes(&self) -> &[Class] {
        &self.classes
    }

    /// The data the pool draws from.
    pub fn data(&self) -> &Arc<Omniglot> {
        &self.data
    }

    /// `alphabet/character`, with `@90`, `@180` or `@270` for a rotated class.
    pub fn class_name(&self, class: Class) -> String {
        let name = self.data.characters[class.character].name();
        match class.rotation % 4 {
            0 => name,
            r => format!("{name}@{}", 90 * u32::from(r)),
        }
    }

    /// The distinct characters of the pool (`alphabet/character`), sorted: the held-out list
    /// of a model card when called on [`Splits::test`].
    pub fn character_names(&self) -> Vec<String> {
        let set: BTreeSet<usize> = self.classes.iter().map(|c| c.character).collect();
        let mut names: Vec<String> = set
            .into_iter()
            .map(|c| self.data.characters[c].name())
            .collect();
        names.sort();
        names
    }

    /// Writes drawing `i` of `class` (rotated) as a network input into `out[..784]`; panics if
    /// `i` is out of range.
    pub fn write_input(&self, class: Class, i: usize, out: &mut [f32]) {
        let img = self.data.image(class.character, i);
        images::write_f32(&images::rotate(img, class.rotation), out);
    }

    /// Samples an episode: `ways` distinct classes in random order (label = position), then per
    /// class `shots + queries` distinct drawings, the first `shots` for the support set and the
    /// rest for the query set; rows of each set are shuffled. Deterministic given `rng`.
    pub fn episode<R: Rng + ?Sized>(
        &self,
        ways: usize,
        shots: usize,
        queries: usize,
        rng: &mut R,
    ) -> Result<Episode> {
        self.episode_of(Classes::Any, ways, shots, queries, rng)
    }

    /// [`Pool::episode`] with its classes drawn as `classes` says.
    pub fn episode_of<R: Rng + ?Sized>(
        &self,
        classes: Classes,
        ways: usize,
        shots: usize,
        queries: usize,
        rng: &mut R,
    ) -> Result<Episode> {
        ensure!(
            ways >= 1 && shots >= 1,
            "an episode needs at least 1 way and 1 shot (got {ways}-way {shots}-shot)"
        );
        ensure!(
            ways <= self.classes.len(),
            "{ways}-way episodes need {ways} classes; this pool has {}",
            self.classes.len()
        );
        let classes = match classes {
            Classes::Any => {
                let picked = index::sample(rng, self.classes.len(), ways).into_vec();
                picked.iter().map(|&i| self.classes[i]).collect()
            }
            Classes::Alphabet => self.alphabet_classes(ways, rng)?,
        };
        let mut support = Vec::with_capacity(ways * shots);
        let mut query = Vec::with_capacity(ways * queries);
        for (label, &class) in classes.iter().enumerate() {
            let available = self.data.characters[class.character].count;
            ensure!(
                shots + queries <= available,
                "class {} has {available} images; {shots} shots + {queries} queries need {}",
                self.class_name(class),
                shots + queries
            );
            let drawn = index::sample(rng, available, shots + queries).into_vec();
            support.extend(drawn[..shots].iter().map(|&i| (class, i, label)));
            query.extend(drawn[shots..].iter().map(|&i| (class, i, label)));
        }
        Ok(self.assemble(classes, (shots, queries), support, query, rng))
    }

    /// The episode of `classes` with the rows (class, drawing, label) `support` and `query`,
    /// the rows of each set shuffled.
    fn assemble<R: Rng + ?Sized>(
        &self,
        classes: Vec<Class>,
        (shots, queries): (usize, usize),
        mut support: Vec<(Class, usize, usize)>,
        mut query: Vec<(Class, usize, usize)>,
        rng: &mut R,
    ) -> Episode {
        support.shuffle(rng);
        query.shuffle(rng);
        let (support_inputs, support_labels) = self.rows(&support);
        let (query_inputs, query_labels) = self.rows(&query);
        Episode {
            ways: classes.len(),
            shots,
            queries,
            classes,
            support_inputs,
            support_labels,
            query_inputs,
            query_labels,
            support_drawings: support.iter().map(|&(_, i, _)| i).collect(),
            query_drawings: query.iter().map(|&(_, i, _)| i).collect(),
        }
    }

    /// Samples an episode of Lake et al.'s one-shot challenge (Science 2015): `ways` classes of
    /// one alphabet ([`Classes::Alphabet`]) and two different drawers: the support set is the
    /// first drawer's drawing of each class, the query set the second's (one shot, one query
    /// per class). Drawing `i` of a character is drawer `i + 1` of the release (files
    /// `XXXX_YY.png` in name order). Deterministic given `rng`.
    pub fn lake_episode<R: Rng + ?Sized>(&self, ways: usize, rng: &mut R) -> Result<Episode> {
        ensure!(ways >= 1, "an episode needs at least 1 way");
        let classes = self.alphabet_classes(ways, rng)?;
        let drawers = classes
            .iter()
            .map(|c| self.data.characters[c.character].count)
            .min()
            .unwrap_or(0);
        ensure!(
            drawers >= 2,
            "Lake's episodes need two drawers of every character; {} has {drawers}",
            classes
                .iter()
                .find(|c| self.data.characters[c.character].count == drawers)
                .map(|&c| self.class_name(c))
                .unwrap_or_default()
        );
        let pair = index::sample(rng, drawers, 2).into_vec();
        let drawn = |drawer: usize| -> Vec<(Class, usize, usize)> {
            classes
                .iter()
                .enumerate()
                .map(|(label, &c)| (c, drawer, label))
                .collect()
        };
        let (support, query) = (drawn(pair[0]), drawn(pair[1]));
        Ok(self.assemble(classes, (1, 1), support, query, rng))
    }

    /// The pool's classes by alphabet.
    fn by_alphabet(&self) -> BTreeMap<&str, Vec<Class>> {
        let mut by_alphabet: BTreeMap<&str, Vec<Class>> = BTreeMap::new();
        for &c in &self.classes {
            by_alphabet
                .entry(self.data.characters[c.character].alphabet.as_str())
                .or_default()
                .push(c);
        }
        by_alphabet
    }

    /// The classes of the pool's largest alphabet: within-alphabet (and Lake's) episodes can
    /// have at most this many ways.
    pub fn largest_alphabet(&self) -> usize {
        self.by_alphabet().values().map(Vec::len).max().unwrap_or(0)
    }

    /// `ways` distinct classes of one alphabet in random order: the alphabet drawn uniformly
    /// among those with at least `ways` classes in the pool (rotations count as classes).
    fn alphabet_classes<R: Rng + ?Sized>(&self, ways: usize, rng: &mut R) -> Result<Vec<Class>> {
        let by_alphabet = self.by_alphabet();
        let alphabets: Vec<&Vec<Class>> =
            by_alphabet.values().filter(|v| v.len() >= ways).collect();
        ensure!(
            !alphabets.is_empty(),
            "within-alphabet {ways}-way episodes need an alphabet with {ways} classes; this pool's largest has {}",
            self.largest_alphabet()
        );
        let alphabet = alphabets[rng.random_range(0..alphabets.len())];
        let picked = index::sample(rng, alphabet.len(), ways).into_vec();
        Ok(picked.iter().map(|&i| alphabet[i]).collect())
    }

    fn rows(&self, rows: &[(Class, usize, usize)]) -> (Vec<f32>, Vec<f32>) {
        let mut inputs = vec![0f32; rows.len() * PIXELS];
        for (&(class, i, _), out) in rows.iter().zip(inputs.chunks_exact_mut(PIXELS)) {
            self.write_input(class, i, out);
        }
        (
            inputs,
            rows.iter().map(|&(_, _, label)| label as f32).collect(),
        )
    }
}

/// Appends the characters of one part (entries sorted by alphabet, character, file).
fn group<S>(
    part: Part,
    entries: Vec<Entry<S>>,
    decoded: Vec<Pixels>,
    characters: &mut Vec<Character>,
    pixels: &mut Vec<Pixels>,
) {
    let base = pixels.len();
    pixels.extend(decoded);
    for (i, e) in entries.iter().enumerate() {
        match characters.last_mut() {
            Some(c) if c.part == part && c.alphabet == e.alphabet && c.character == e.character => {
                c.count += 1
            }
            _ => characters.push(Character {
                part,
                alphabet: e.alphabet.clone(),
                character: e.character.clone(),
                first: base + i,
                count: 1,
            }),
        }
    }
}

/// Lists and decodes `dir/<alphabet>/<character>/<image>.png`.
fn load_folder(dir: &Path) -> Result<(Vec<Entry<PathBuf>>, Vec<Pixels>)> {
    let layout = || {
        format!(
            "expected {}/<alphabet>/<character>/<image>.png",
            dir.display()
        )
    };
    let mut entries = Vec::new();
    for (alphabet, alphabet_dir) in sub_dirs(dir, &layout)? {
        for (character, character_dir) in sub_dirs(&alphabet_dir, &layout)? {
            class_images(&alphabet, &character, &character_dir, &layout, &mut entries)?;
        }
    }
    if entries.is_empty() {
        bail!("{} holds no alphabet folders ({})", dir.display(), layout());
    }
    decode(entries)
}

/// Sorts the entries and decodes them in parallel.
fn decode(mut entries: Vec<Entry<PathBuf>>) -> Result<(Vec<Entry<PathBuf>>, Vec<Pixels>)> {
    entries.sort_by(|a, b| {
        (&a.alphabet, &a.character, &a.file).cmp(&(&b.alphabet, &b.character, &b.file))
    });
    let decoded = entries
        .par_iter()
        .map(|e| images::load_png(&e.source))
        .collect::<Result<Vec<_>>>()?;
    Ok((entries, decoded))
}

/// Appends the PNG files of one class folder; a sub-folder in it, or no PNG, is an error.
fn class_images(
    alphabet: &str,
    character: &str,
    character_dir: &Path,
    layout: &dyn Fn() -> String,
    entries: &mut Vec<Entry<PathBuf>>,
) -> Result<()> {
    let before = entries.len();
    for item in std::fs::read_dir(character_dir)
        .with_context(|| format!("cannot list folder {}", character_dir.display()))?
    {
        let item =
            item.with_context(|| format!("cannot list folder {}", character_dir.display()))?;
        let path = item.path();
        let name = utf8_name(&path)?;
        if images::is_png_name(&name) && path.is_file() {
            entries.push(Entry {
                alphabet: alphabet.to_owned(),
                character: character.to_owned(),
                file: name,
                source: path,
            });
        } else if path.is_dir() && !name.starts_with('.') {
            bail!(
                "{}: unexpected folder inside a class folder ({})",
                path.display(),
                layout()
            );
        }
    }
    if entries.len() == before {
        bail!(
            "class folder {} holds no PNG images",
            character_dir.display()
        );
    }
    Ok(())
}

/// The non-hidden sub-folders of `dir`, sorted; a PNG directly in `dir` is a layout error.
fn sub_dirs(dir: &Path, layout: &dyn Fn() -> String) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for item in
        std::fs::read_dir(dir).with_context(|| format!("cannot list folder {}", dir.display()))?
    {
        let item = item.with_context(|| format!("cannot list folder {}", dir.display()))?;
        let path = item.path();
        let name = utf8_name(&path)?;
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            out.push((name, path));
        } else if images::is_png_name(&name) {
            bail!(
                "{}: image outside a class folder ({})",
                path.display(),
                layout()
            );
        }
    }
    out.sort();
    Ok(out)
}

fn utf8_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("file name {} is not valid UTF-8", path.display()))
}

/// Lists and decodes the PNG entries of one official archive.
fn load_zip(zip_path: &Path, part: Part) -> Result<(Vec<Entry<usize>>, Vec<Pixels>)> {
    let bytes =
        std::fs::read(zip_path).with_context(|| format!("cannot read {}", zip_path.display()))?;
    let archive = zip::ZipArchive::new(Cursor::new(bytes.as_slice()))
        .map_err(|e| anyhow!("{} is not a readable zip archive ({e})", zip_path.display()))?;
    let top = part.dir_name();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let Some(name) = archive.name_for_index(i) else {
            bail!("{}: entry {i} has no readable name", zip_path.display());
        };
        if name.ends_with('/') || name.starts_with("__MACOSX/") {
            continue;
        }
        let parts: Vec<&str> = name.split('/').collect();
        let Some(file) = parts.last().copied() else {
            continue;
        };
        if !images::is_png_name(file) {
            continue;
        }
        match parts.as_slice() {
            [t, alphabet, character, file] if *t == top && !alphabet.is_empty() && !character.is_empty() => entries.push(Entry {
                alphabet: (*alphabet).to_owned(),
                character: (*character).to_owned(),
                file: (*file).to_owned(),
                source: i,
            }),
            _ => bail!(
                "{}: entry {name} is not in the Omniglot layout (expected {top}/<alphabet>/<character>/<image>.png)",
                zip_path.display()
            ),
        }
    }
    if entries.is_empty() {
        bail!(
            "{} holds no PNG images under {top}/<alphabet>/<character>/ (not the Omniglot layout)",
            zip_path.display()
        );
    }
    entries.sort_by(|a, b| {
        (&a.alphabet, &a.character, &a.file).cmp(&(&b.alphabet, &b.character, &b.file))
    });
    let decoded = entries
        .par_iter()
        .map_init(
            || (archive.clone(), Vec::new()),
            |(archive, buf), e| {
                let what = || {
                    format!(
                        "{}: entry {}/{}/{}/{}",
                        zip_path.display(),
                        top,
                        e.alphabet,
                        e.character,
                        e.file
                    )
                };
                let mut f = archive
                    .by_index(e.source)
                    .map_err(|err| anyhow!("{}: cannot open ({err})", what()))?;
                buf.clear();
                std::io::Read::read_to_end(&mut f, buf)
                    .map_err(|err| anyhow!("{}: cannot decompress ({err})", what()))?;
                images::preprocess_png(buf).with_context(what)
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok((entries, decoded))
}
