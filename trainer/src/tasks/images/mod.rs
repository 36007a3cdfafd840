//! A task family of the user's own images: class sub-folders of PNGs (optionally grouped one
//! level deeper, as Omniglot's alphabet/character), every image preprocessed as `anole adapt`
//! preprocesses it ([`crate::data::images`]), N-way K-shot episodes drawn as Omniglot's
//! ([`crate::data::omniglot::Pool`]) from training classes, and from held-out classes (another
//! folder, or a seeded share of the classes) for the evaluation. The network is the Omniglot
//! CNN, `--arch` or the weights of `--init`. The recipe (`anole train images`) is in [`recipe`].

pub mod recipe;

pub use recipe::{CardSection, TrainArgs};

use super::{holdout_indices, start, Batch, Episode, OmniglotTasks, TaskFamily, TaskRng};
use crate::data::omniglot::{Omniglot, Pool};
use crate::model::Arch;
use anole::LossKind;
use anyhow::Result;
use std::sync::Arc;

/// Provenance name of the family.
pub const NAME: &str = "images";

/// Split the classes of `data` into training and held-out classes ([`holdout_indices`]);
/// training classes in 4 rotations with `rotations`.
pub fn holdout(
    data: &Arc<Omniglot>,
    fraction: f64,
    seed: u64,
    rotations: bool,
) -> Result<(Pool, Pool)> {
    let n = data.characters().len();
    let test = holdout_indices(n, fraction, seed, "classes")?;
    let train: Vec<usize> = (0..n).filter(|i| test.binary_search(i).is_err()).collect();
    Ok((data.pool_of(&train, rotations), data.pool_of(&test, false)))
}

/// The image family: Omniglot-style episodes of the user's classes, with its own network.
#[derive(Clone, Debug)]
pub struct ImageTasks {
    episodes: OmniglotTasks,
    arch: Arch,
    init: Option<Vec<f32>>,
}

impl ImageTasks {
    /// `ways`-way episodes of `train` classes (and `test` for the evaluation), learned with
    /// `arch` starting from `init` when given.
    pub fn new(
        train: Pool,
        test: Pool,
        ways: usize,
        arch: Arch,
        init: Option<Vec<f32>>,
    ) -> Result<ImageTasks> {
        Ok(ImageTasks {
            // The filters only make the Omniglot family's own architecture, replaced here.
            episodes: OmniglotTasks::from_pools(Some(train), test, ways, 1)?,
            arch,
            init,
        })
    }

    /// The episodes' classes.
    pub fn episodes(&self) -> &OmniglotTasks {
        &self.episodes
    }
}

impl TaskFamily for ImageTasks {
    fn name(&self) -> &str {
        NAME
    }

    fn arch(&self) -> Arch {
        self.arch.clone()
    }

    fn loss(&self) -> LossKind {
        LossKind::CrossEntropy
    }

    /// The `--init` model's parameters, else the architecture's initialisation.
    fn init_params(&self, seed: u64) -> Result<Vec<f32>> {
        start::params(&self.arch, self.init.as_deref(), seed)
    }

    fn train_task(&self, rng: &mut TaskRng, shots: usize) -> Result<Batch> {
        self.episodes.train_task(rng, shots)
    }

    fn eval_task(&self, rng: &mut TaskRng, shots: usize, queries: usize) -> Result<Episode> {
        self.episodes.eval_task(rng, shots, queries)
    }
}
