//! A fixed-capacity buffer of labelled samples collected on the device. When full, a new
//! sample replaces the oldest. No heap: capacity and sizes are const generics.

use crate::error::{Error, Result};
use heapless::Deque;

/// Read access to a set of labelled samples, as [`crate::Learner::adapt`] consumes them.
pub trait Samples {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Input values of sample `i` (`i < len()`).
    fn input(&self, i: usize) -> &[f32];
    /// Target values of sample `i`: regression targets, or one class index.
    fn target(&self, i: usize) -> &[f32];
}

/// Samples held in two flat slices, row after row.
#[derive(Clone, Copy, Debug)]
pub struct SliceSamples<'a> {
    inputs: &'a [f32],
    targets: &'a [f32],
    input_len: usize,
    target_len: usize,
}

impl<'a> SliceSamples<'a> {
    /// Wrap `inputs` (`n × input_len`) and `targets` (`n × target_len`); errors if the slices
    /// do not hold the same whole number of rows.
    pub fn new(
        inputs: &'a [f32],
        targets: &'a [f32],
        input_len: usize,
        target_len: usize,
    ) -> Result<Self> {
        if input_len == 0 || inputs.len() % input_len != 0 {
            return Err(Error::SampleLength {
                sample: inputs.len() / input_len.max(1),
                expected: input_len,
                found: inputs.len() % input_len.max(1),
            });
        }
        let n = inputs.len() / input_len;
        if targets.len() != n * target_len {
            return Err(Error::SampleLength {
                sample: (targets.len() / target_len.max(1)).min(n),
                expected: target_len,
                found: targets
                    .len()
                    .saturating_sub(n.saturating_sub(1) * target_len),
            });
        }
        Ok(SliceSamples {
            inputs,
            targets,
            input_len,
            target_len,
        })
    }
}

impl Samples for SliceSamples<'_> {
    fn len(&self) -> usize {
        self.inputs.len() / self.input_len
    }
    fn input(&self, i: usize) -> &[f32] {
        &self.inputs[i * self.input_len..(i + 1) * self.input_len]
    }
    fn target(&self, i: usize) -> &[f32] {
        &self.targets[i * self.target_len..(i + 1) * self.target_len]
    }
}

/// Ring buffer of up to `N` samples of `I` inputs and `T` targets each.
pub struct SampleBuffer<const N: usize, const I: usize, const T: usize> {
    items: Deque<([f32; I], [f32; T]), N>,
}

impl<const N: usize, const I: usize, const T: usize> Default for SampleBuffer<N, I, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const I: usize, const T: usize> SampleBuffer<N, I, T> {
    /// An empty buffer.
    pub const fn new() -> Self {
        SampleBuffer {
            items: Deque::new(),
        }
    }

    /// Add a sample, dropping the oldest when full. Refuses (and keeps the buffer unchanged)
    /// a sample of the wrong length or holding NaN or infinity.
    pub fn push(&mut self, input: &[f32], target: &[f32]) -> Result<()> {
        let index = self.items.len();
        if input.len() != I {
            return Err(Error::SampleLength {
                sample: index,
                expected: I,
                found: input.len(),
            });
        }
        if target.len() != T {
            return Err(Error::SampleLength {
                sample: index,
                expected: T,
                found: target.len(),
            });
        }
        if input.iter().chain(target).any(|v| !v.is_finite()) {
            return Err(Error::NonFiniteSample { sample: index });
        }
        let mut item = ([0.0; I], [0.0; T]);
        item.0.copy_from_slice(input);
        item.1.copy_from_slice(target);
        if self.items.is_full() {
            self.items.pop_front();
        }
        // Cannot fail: a slot was freed above when full.
        let _ = self.items.push_back(item);
        Ok(())
    }

    /// Remove every sample.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Capacity `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    fn get(&self, i: usize) -> &([f32; I], [f32; T]) {
        let (a, b) = self.items.as_slices();
        if i < a.len() {
            &a[i]
        } else {
            &b[i - a.len()]
        }
    }
}

impl<const N: usize, const I: usize, const T: usize> Samples for SampleBuffer<N, I, T> {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn input(&self, i: usize) -> &[f32] {
        &self.get(i).0
    }
    fn target(&self, i: usize) -> &[f32] {
        &self.get(i).1
    }
}
