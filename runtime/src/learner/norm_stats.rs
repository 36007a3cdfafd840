//! The stored statistics of adapting norm layers, recomputed from samples after adaptation.

use super::{split, Arena, BlobRef, Engine};
use crate::buffer::Samples;
use crate::error::{Error, Result};
use crate::layers::{norm, Layer};
use crate::plan::Node;

impl<B: BlobRef, A: Arena> Engine<B, A> {
    /// Recompute the stored statistics of trainable norm layers from `samples`, layer by
    /// layer, each with the refreshed statistics of the layers before it. If a statistic
    /// comes out non-finite (the adapted weights overflow on these samples), every layer's
    /// previous statistics are put back and [`Error::NonFiniteParameter`] is returned.
    pub fn refresh_norm_stats<S: Samples + ?Sized>(&mut self, samples: &S) -> Result<()> {
        if samples.is_empty() {
            return Err(Error::NoSamples);
        }
        self.check_all(samples)?;
        let is_refreshed = |node: &Node| matches!(node.layer, Layer::Norm { .. }) && node.adapts;
        {
            let r = split(&self.plan, self.arena.as_mut());
            for node in self.plan.nodes(self.blob.get()).filter(is_refreshed) {
                let stats = norm::stats(node.layer.tensor_len(node.input, 0));
                r.norm[node.scratch..][stats.clone()]
                    .copy_from_slice(&r.params[node.params..][stats]);
            }
        }
        for i in 0..self.blob.get().layers.len() {
            let Some(node) = self.plan.node(self.blob.get(), i) else {
                continue;
            };
            if !is_refreshed(&node) {
                continue;
            }
            let (c, s) = node.input.channels_spatial();
            let mut count = 0;
            self.regions().norm[node.scratch..node.scratch + 2 * c].fill(0.0);
            let mut start = 0;
            while start < samples.len() {
                let end = (start + self.plan.batch).min(samples.len());
                let n = self.load(samples, start..end);
                self.forward(n, false, i);
                let r = self.regions();
                let x = &r.acts[node.in_slot..node.in_slot + n * node.input.len()];
                let (mean, m2) = r.norm[node.scratch..node.scratch + 2 * c].split_at_mut(c);
                norm::accumulate(c, s, x, n, mean, m2, count);
                count += n;
                start = end;
            }
            let total = (count * s) as f32;
            let r = split(&self.plan, self.arena.as_mut());
            let (mean, m2) = r.norm[node.scratch..node.scratch + 2 * c].split_at(c);
            let stats = &mut r.params[node.params..][norm::stats(c)];
            stats[..c].copy_from_slice(mean);
            for (v, m) in stats[c..].iter_mut().zip(m2) {
                *v = m / total;
            }
            if stats.iter().any(|v| !v.is_finite()) {
                for node in self.plan.nodes(self.blob.get()).filter(is_refreshed) {
                    let stats = norm::stats(node.layer.tensor_len(node.input, 0));
                    r.params[node.params..][stats.clone()]
                        .copy_from_slice(&r.norm[node.scratch..][stats]);
                }
                return Err(Error::NonFiniteParameter { step: self.steps });
            }
        }
        Ok(())
    }
}
