//! Data for meta-training and adaptation: Omniglot episodes ([`omniglot`]) and user PNG folders
//! ([`images`]), both through the same 28×28 preprocessing.

pub mod images;
#[cfg(feature = "full")]
pub mod omniglot;

pub use images::{read_query, read_support, Pixels, QuerySet, SupportSet, PIXELS, SIDE};
#[cfg(feature = "full")]
pub use omniglot::{Character, Class, Episode, Omniglot, Part, Pool, Split, Splits};
