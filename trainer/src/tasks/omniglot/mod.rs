//! The Omniglot few-shot family: N-way K-shot classification episodes drawn from
//! [`crate::data::omniglot`] (training classes: the training characters in four rotations;
//! held-out classes: the test characters, unrotated), learned with the paper's CNN
//! ([`Arch::omniglot`]) and softmax cross-entropy. Its recipes: `anole train omniglot`
//! ([`recipe`]) and `anole eval` of an Omniglot model ([`eval`]).

pub mod eval;
pub mod recipe;

pub use eval::{read_held_out, EvalArgs};
pub use recipe::{CardSection, TrainArgs};

use super::{Batch, Episode, TaskFamily, TaskRng};
use crate::data::omniglot::{Classes, Omniglot, Pool, Split};
use crate::data::PIXELS;
use crate::model::Arch;
use anole::LossKind;
use anyhow::{anyhow, bail, Result};
use std::sync::Arc;

/// Provenance name of the family (the number of ways is the blob's output length).
pub const NAME: &str = "omniglot";

/// How held-out episodes are drawn.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// N-way K-shot episodes of any held-out classes, drawings drawn at random (the paper's).
    #[default]
    Standard,
    /// Lake et al.'s one-shot challenge: N-way 1-shot, every class of one alphabet, the support
    /// set one drawer's drawings and the queries another's.
    Lake,
}

/// N-way classification episodes of Omniglot characters.
#[derive(Clone, Debug)]
pub struct OmniglotTasks {
    ways: usize,
    filters: usize,
    train: Option<Pool>,
    test: Pool,
    /// Where the classes of a training episode come from.
    train_classes: Classes,
    /// How held-out episodes are drawn.
    protocol: Protocol,
}

impl OmniglotTasks {
    /// Meta-training and held-out classes from `split` of `data` (the `paper` split shuffles
    /// the characters with `seed`), for `ways`-way episodes and a CNN of `filters` channels.
    pub fn new(
        data: &Arc<Omniglot>,
        split: Split,
        seed: u64,
        ways: usize,
        filters: usize,
    ) -> Result<OmniglotTasks> {
        let splits = data.split(split, seed)?;
        OmniglotTasks::from_pools(Some(splits.train), splits.test, ways, filters)
    }

    /// From explicit pools (e.g. the held-out characters listed in a model card); without a
    /// training pool the family can only give evaluation episodes.
    pub fn from_pools(
        train: Option<Pool>,
        test: Pool,
        ways: usize,
        filters: usize,
    ) -> Result<OmniglotTasks> {
        if ways < 2 {
            bail!("--ways must be at least 2, got {ways}");
        }
        if filters == 0 {
            bail!("--filters must be at least 1");
        }
        if let Some(t) = &train {
            if t.len() < ways {
                bail!(
                    "{ways}-way episodes need {ways} training classes; the data has {}",
                    t.len()
                );
            }
        }
        if test.len() < ways {
            bail!(
                "{ways}-way episodes need {ways} held-out classes; the data has {}",
                test.len()
            );
        }
        Ok(OmniglotTasks {
            ways,
            filters,
            train,
            test,
            train_classes: Classes::Any,
            protocol: Protocol::Standard,
        })
    }

    /// Training episodes with their classes drawn as `classes` says.
    pub fn with_train_classes(mut self, classes: Classes) -> OmniglotTasks {
        self.train_classes = classes;
        self
    }

    /// Held-out episodes drawn by `protocol`.
    pub fn with_protocol(mut self, protocol: Protocol) -> OmniglotTasks {
        self.protocol = protocol;
        self
    }

    /// Classes per episode.
    pub fn ways(&self) -> usize {
        self.ways
    }

    /// Channels of every convolution.
    pub fn filters(&self) -> usize {
        self.filters
    }

    /// The meta-training classes, if any.
    pub fn train_pool(&self) -> Option<&Pool> {
        self.train.as_ref()
    }

    /// The held-out classes.
    pub fn test_pool(&self) -> &Pool {
        &self.test
    }

    /// The held-out characters, `alphabet/character`, sorted (the list of a model card).
    pub fn held_out(&self) -> Vec<String> {
        self.test.character_names()
    }

    /// One episode as a support batch and a query batch.
    fn batches(e: crate::data::omniglot::Episode) -> Result<Episode> {
        Ok(Episode {
            support: Batch::from_flat(e.support_inputs, PIXELS, e.support_labels, 1)?,
            query: Batch::from_flat(e.query_inputs, PIXELS, e.query_labels, 1)?,
        })
    }
}

impl TaskFamily for OmniglotTasks {
    fn name(&self) -> &str {
        NAME
    }

    fn arch(&self) -> Arch {
        Arch::omniglot(self.ways, self.filters)
    }

    fn loss(&self) -> LossKind {
        LossKind::CrossEntropy
    }

    /// `ways` training classes, `shots` drawings of each, rows shuffled.
    fn train_task(&self, rng: &mut TaskRng, shots: usize) -> Result<Batch> {
        let pool = self
            .train
            .as_ref()
            .ok_or_else(|| anyhow!("internal: no Omniglot training classes loaded"))?;
        let e = pool.episode_of(self.train_classes, self.ways, shots, 0, rng)?;
        Ok(OmniglotTasks::batches(e)?.support)
    }

    /// `ways` held-out classes, `shots` support and `queries` query drawings **per class**
    /// (disjoint), rows of each set shuffled; under [`Protocol::Lake`], Lake's one-shot
    /// episodes (one shot, one query).
    fn eval_task(&self, rng: &mut TaskRng, shots: usize, queries: usize) -> Result<Episode> {
        let e = match self.protocol {
            Protocol::Standard => self.test.episode(self.ways, shots, queries, rng)?,
            Protocol::Lake => {
                if shots != 1 || queries != 1 {
                    bail!("the lake protocol is 1-shot with 1 query per class (got {shots}-shot, {queries} queries)");
                }
                self.test.lake_episode(self.ways, rng)?
            }
        };
        OmniglotTasks::batches(e)
    }
}

/// The full data set for unit tests, loaded once: `OMNIGLOT_DIR`, or `../shared/data/omniglot`
/// next to the repository.
#[cfg(test)]
pub(crate) fn test_data() -> Arc<Omniglot> {
    use std::sync::OnceLock;
    static DATA: OnceLock<Arc<Omniglot>> = OnceLock::new();
    Arc::clone(DATA.get_or_init(|| {
        let dir = match std::env::var_os("OMNIGLOT_DIR") {
            Some(d) => std::path::PathBuf::from(d),
            None => {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/omniglot")
            }
        };
        Arc::new(Omniglot::load(&dir).unwrap_or_else(|e| panic!("{e:#}")))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{rng, Stream};

    #[test]
    fn episodes_have_the_requested_shape_and_repeat() {
        let data = Arc::new(test_data().subset(40).unwrap());
        let fam = OmniglotTasks::new(&data, Split::Paper, 3, 5, 8).unwrap();
        let t = fam.train_task(&mut rng(1, Stream::Train, 0), 10).unwrap();
        assert_eq!(
            (t.len(), t.inputs.ncols(), t.targets.ncols()),
            (50, PIXELS, 1)
        );
        let mut counts = [0; 5];
        for &l in t.target_slice() {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [10; 5]);
        assert_eq!(
            t,
            fam.train_task(&mut rng(1, Stream::Train, 0), 10).unwrap()
        );
        let e = fam.eval_task(&mut rng(1, Stream::Eval, 7), 1, 1).unwrap();
        assert_eq!((e.support.len(), e.query.len()), (5, 5));
        assert_eq!(fam.arch(), Arch::omniglot(5, 8));
        assert!(OmniglotTasks::new(&data, Split::Paper, 3, 40, 8).is_err());
    }
}
