//! Statistics shared by evaluation, meta-training and the model card: the mean and 95%
//! confidence interval over tasks ([`Stat`]), classification hits, the mean of the last
//! meta-iterations of a learning curve ([`recent`]), and f32 values as the decimals they print as
//! ([`decimal`]).

use crate::meta::IterLoss;
use serde::{Deserialize, Serialize};

/// Mean with its spread over tasks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean over tasks.
    pub mean: f64,
    /// Sample standard deviation over tasks.
    pub sd: f64,
    /// Half-width of the 95% confidence interval of the mean, 1.96 · sd / √n.
    pub ci95: f64,
}

impl Stat {
    /// Of `values` (at least one).
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        let sd = var.sqrt();
        Stat {
            mean,
            sd,
            ci95: 1.96 * sd / n.sqrt(),
        }
    }
}

/// How many rows of `outputs` (`k` scores each) have their largest score at the row's label.
pub fn hits(outputs: &[f32], labels: &[f32], k: usize) -> usize {
    outputs
        .chunks_exact(k)
        .zip(labels)
        .filter(|(p, &t)| anole::loss::argmax(p) == t as usize)
        .count()
}

/// Fraction of rows of `outputs` (`k` scores each) classified as their label.
pub fn accuracy(outputs: &[f32], labels: &[f32], k: usize) -> f64 {
    hits(outputs, labels, k) as f64 / labels.len().max(1) as f64
}

/// `x` as the f64 with the same shortest decimal form (0.02 stays 0.02 in JSON, not
/// 0.019999999552965164).
pub fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Means over the last meta-iterations of a learning curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recent {
    /// Loss of the first inner minibatch.
    pub before: f32,
    /// Loss of the last inner minibatch.
    pub after: f32,
    /// Accuracy on the last inner minibatch, over the meta-iterations that measured it.
    pub accuracy: Option<f32>,
}

/// Means over the last `k` meta-iterations of `curve` (at least one; all of them when there
/// are fewer). An empty curve gives losses of 0 and no accuracy.
pub fn recent(curve: &[IterLoss], k: usize) -> Recent {
    let k = k.min(curve.len()).max(1);
    let tail = &curve[curve.len().saturating_sub(k)..];
    let n = tail.len().max(1) as f32;
    let acc: Vec<f32> = tail.iter().filter_map(|l| l.accuracy).collect();
    Recent {
        before: tail.iter().map(|l| l.before).sum::<f32>() / n,
        after: tail.iter().map(|l| l.after).sum::<f32>() / n,
        accuracy: (!acc.is_empty()).then(|| acc.iter().sum::<f32>() / acc.len() as f32),
    }
}

/// Meta-iterations in the last 1% of a run of `iterations` (at least one).
pub fn last_percent(iterations: usize) -> usize {
    iterations.div_ceil(100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_matches_hand_computation() {
        let s = Stat::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.ci95 - 1.96 * s.sd / 2.0).abs() < 1e-12);
    }

    #[test]
    fn hits_count_argmax_at_label() {
        let outputs = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        assert_eq!(hits(&outputs, &[1.0, 0.0, 0.0], 2), 2);
        assert_eq!(accuracy(&outputs, &[1.0, 0.0, 0.0], 2), 2.0 / 3.0);
        assert_eq!(accuracy(&[], &[], 2), 0.0);
    }

    #[test]
    fn recent_means_the_tail() {
        let l = |before: f32, accuracy: Option<f32>| IterLoss {
            before,
            after: before / 2.0,
            accuracy,
        };
        let curve = [l(8.0, Some(0.5)), l(4.0, None), l(2.0, Some(1.0))];
        let r = recent(&curve, 2);
        assert_eq!((r.before, r.after, r.accuracy), (3.0, 1.5, Some(1.0)));
        let all = recent(&curve, 10);
        assert_eq!((all.before, all.accuracy), (14.0 / 3.0, Some(0.75)));
        let none = recent(&[], 5);
        assert_eq!((none.before, none.after, none.accuracy), (0.0, 0.0, None));
        assert_eq!(
            (last_percent(0), last_percent(100), last_percent(101)),
            (1, 1, 2)
        );
    }

    #[test]
    fn decimals_print_as_given() {
        assert_eq!(decimal(0.02), 0.02);
        assert_eq!(decimal(1e-3), 0.001);
    }
}
