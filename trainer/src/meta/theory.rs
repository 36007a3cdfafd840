//! The Reptile paper's Taylor analysis (Nichol et al. 2018, section 5.1), measured with the
//! engine. For k minibatches of a task with losses L_0 … L_{k−1}, gradients ḡ_j and Hessians
//! H̄_j at the meta-parameters φ, the expected meta-gradients are, to first order in the inner lr α,
//!
//! ```text
//! MAML     ≈ AvgGrad − 2(k−1) α AvgGradInner
//! FOMAML   ≈ AvgGrad −  (k−1) α AvgGradInner
//! Reptile  ≈ k AvgGrad − ½k(k−1) α AvgGradInner      (Reptile's "gradient" (φ − W) / α)
//! ```
//!
//! with AvgGrad = E[ḡ_j] and AvgGradInner = E[H̄_i ḡ_j] (i ≠ j). [`measure`] estimates both terms
//! and the three meta-gradients over the same tasks at a fixed φ (every gradient the engine's,
//! every H v a central difference of two, as in [`super::maml`]); [`Fit::of`] fits each
//! meta-gradient as a·AvgGrad + b·α·AvgGradInner by least squares over the parameters.
//!
//! The expectation over the order of a task's minibatches is taken exactly: each task's
//! meta-gradients are averaged over all k! orders of its k minibatches. The two sides then agree
//! task by task up to O(α²) (and the error of the differences), instead of only in expectation
//! over tasks, so a few hundred tasks show the trend in α without sampling noise.

use super::maml::{hessian_vector, meta_gradient, Tape, HVP_STEP};
use crate::tasks::{Batch, TaskFamily, TaskRng};
use anole::OwnedLearner;
use anyhow::{bail, Context, Result};

/// The three algorithms whose meta-gradients are measured.
pub const ALGORITHMS: [&str; 3] = ["maml", "fomaml", "reptile"];

/// The terms and meta-gradients, averaged over tasks (f64, one value per parameter).
#[derive(Clone, Debug)]
pub struct Terms {
    /// Inner steps k (minibatches per task).
    pub steps: usize,
    /// Tasks averaged over.
    pub tasks: usize,
    /// AvgGrad: the mean gradient of a minibatch at φ.
    pub avg_grad: Vec<f64>,
    /// AvgGradInner: the mean of H̄_i ḡ_j over ordered pairs i ≠ j of minibatches.
    pub avg_grad_inner: Vec<f64>,
    /// For each inner lr: the mean meta-gradients of [`ALGORITHMS`], in that order.
    pub meta: Vec<(f32, [Vec<f64>; 3])>,
}

/// The theory's coefficients (a, b) of [`ALGORITHMS`] for `k` inner steps.
pub fn theory(k: usize) -> [(f64, f64); 3] {
    let k = k as f64;
    [
        (1.0, -2.0 * (k - 1.0)),
        (1.0, -(k - 1.0)),
        (k, -0.5 * k * (k - 1.0)),
    ]
}

/// Measure the terms at `phi` over `tasks` tasks of `family` (`shots` samples each, drawn from
/// `rng`), with `steps` minibatches of `batch` rows, and the meta-gradients at each of `lrs`
/// on the same tasks. `learner` has the family's architecture and a batch of at least `batch`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    learner: &mut OwnedLearner,
    family: &dyn TaskFamily,
    rng: &mut TaskRng,
    phi: &[f32],
    tasks: usize,
    shots: usize,
    steps: usize,
    batch: usize,
    lrs: &[f32],
) -> Result<Terms> {
    if steps < 2 || tasks == 0 {
        bail!("the expansion needs at least 2 inner steps and 1 task");
    }
    if steps * batch > shots {
        bail!("{steps} disjoint minibatches of {batch} need at least {} samples per task, got {shots}", steps * batch);
    }
    let orders = permutations(steps);
    let n = phi.len();
    let mut avg_grad = vec![0.0f64; n];
    let mut avg_grad_inner = vec![0.0f64; n];
    let mut meta: Vec<(f32, [Vec<f64>; 3])> = lrs
        .iter()
        .map(|&lr| (lr, [vec![0.0; n], vec![0.0; n], vec![0.0; n]]))
        .collect();
    let mut grads = vec![vec![0.0f32; n]; steps];
    let mut scratch = Default::default();
    let mut tape = Tape::default();
    let (mut probe, mut hv, mut minus) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    let mut g = vec![0.0f32; n];
    for t in 0..tasks {
        let task = family.train_task(rng, shots)?;
        let ctx = || format!("task {}", t + 1);
        learner.set_params(phi).with_context(ctx)?;
        for (j, gj) in grads.iter_mut().enumerate() {
            let (x, y) = task.minibatch(j, batch, &mut scratch);
            learner.gradient(x, y).with_context(ctx)?;
            learner.gradient_into(gj).with_context(ctx)?;
            add(&mut avg_grad, gj);
        }
        for i in 0..steps {
            let (x, y) = task.minibatch(i, batch, &mut scratch);
            for (j, gj) in grads.iter().enumerate().filter(|(j, _)| *j != i) {
                hessian_vector(
                    learner,
                    x,
                    y,
                    phi,
                    gj,
                    HVP_STEP,
                    [&mut probe, &mut hv, &mut minus],
                )
                .with_context(|| format!("task {}: H_{i} g_{j}", t + 1))?;
                add(&mut avg_grad_inner, &hv);
            }
        }
        for order in &orders {
            let task = reordered(&task, order, batch)?;
            for (lr, [maml, fomaml, reptile]) in meta.iter_mut() {
                let lr = *lr;
                meta_gradient(learner, &task, phi, steps, batch, lr, HVP_STEP, &mut tape)
                    .with_context(ctx)?;
                add(maml, tape.gradient());
                learner.set_params(tape.adapted()).with_context(ctx)?;
                let (x, y) = task.minibatch(steps - 1, batch, &mut scratch);
                learner.gradient(x, y).with_context(ctx)?;
                learner.gradient_into(&mut g).with_context(ctx)?;
                add(fomaml, &g);
                learner.set_params(phi).with_context(ctx)?;
                for s in 0..steps {
                    let (x, y) = task.minibatch(s, batch, &mut scratch);
                    learner.step(x, y, lr).with_context(ctx)?;
                }
                for ((r, &p), &w) in reptile.iter_mut().zip(phi).zip(learner.params()) {
                    *r += (p as f64 - w as f64) / lr as f64;
                }
            }
        }
    }
    let scale = |v: &mut Vec<f64>, d: f64| v.iter_mut().for_each(|x| *x /= d);
    scale(&mut avg_grad, (tasks * steps) as f64);
    scale(&mut avg_grad_inner, (tasks * steps * (steps - 1)) as f64);
    for (_, m) in meta.iter_mut() {
        for v in m.iter_mut() {
            scale(v, (tasks * orders.len()) as f64);
        }
    }
    Ok(Terms {
        steps,
        tasks,
        avg_grad,
        avg_grad_inner,
        meta,
    })
}

/// Every order of `0..k` (k! of them).
fn permutations(k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(k - 1) {
        for at in 0..k {
            let mut q = p.clone();
            q.insert(at, k - 1);
            out.push(q);
        }
    }
    out
}

/// `task` with its first `order.len()` minibatches of `batch` rows in `order` (the rest after).
fn reordered(task: &Batch, order: &[usize], batch: usize) -> Result<Batch> {
    let (il, tl) = (task.inputs.ncols(), task.targets.ncols());
    let (x, y) = (task.input_slice(), task.target_slice());
    let mut rows: Vec<usize> = order
        .iter()
        .flat_map(|&b| b * batch..(b + 1) * batch)
        .collect();
    rows.extend(order.len() * batch..task.len());
    let xs = rows
        .iter()
        .flat_map(|&r| &x[r * il..(r + 1) * il])
        .copied()
        .collect();
    let ys = rows
        .iter()
        .flat_map(|&r| &y[r * tl..(r + 1) * tl])
        .copied()
        .collect();
    Batch::from_flat(xs, il, ys, tl)
}

fn add(sum: &mut [f64], v: &[f32]) {
    for (s, &x) in sum.iter_mut().zip(v) {
        *s += x as f64;
    }
}

/// A meta-gradient fitted as a·AvgGrad + b·α·AvgGradInner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    /// Coefficient of AvgGrad.
    pub a: f64,
    /// Coefficient of α·AvgGradInner.
    pub b: f64,
    /// ‖residual‖ / ‖meta-gradient‖.
    pub residual: f64,
}

impl Fit {
    /// Least-squares fit of `m` on `avg_grad` and `alpha · avg_grad_inner`.
    pub fn of(m: &[f64], avg_grad: &[f64], avg_grad_inner: &[f64], alpha: f64) -> Fit {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let u: Vec<f64> = avg_grad_inner.iter().map(|x| x * alpha).collect();
        let (aa, ab, bb) = (dot(avg_grad, avg_grad), dot(avg_grad, &u), dot(&u, &u));
        let (am, bm) = (dot(avg_grad, m), dot(&u, m));
        let det = aa * bb - ab * ab;
        let a = (am * bb - bm * ab) / det;
        let b = (aa * bm - ab * am) / det;
        let res: f64 = m
            .iter()
            .zip(avg_grad)
            .zip(&u)
            .map(|((&m, &g), &h)| (m - a * g - b * h).powi(2))
            .sum::<f64>()
            .sqrt();
        Fit {
            a,
            b,
            residual: res / dot(m, m).sqrt(),
        }
    }
}

impl Terms {
    /// The fits of [`ALGORITHMS`] at each inner lr.
    pub fn fits(&self) -> Vec<(f32, [Fit; 3])> {
        self.meta
            .iter()
            .map(|(lr, m)| {
                let f = |v: &[f64]| Fit::of(v, &self.avg_grad, &self.avg_grad_inner, *lr as f64);
                (*lr, [f(&m[0]), f(&m[1]), f(&m[2])])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{adapt_settings, Config};
    use crate::model::{encode_blob, shared, BlobMeta};
    use crate::tasks::{self, Sine, Stream};
    use anole::{DType, Options};

    /// The fit recovers known coefficients exactly.
    #[test]
    fn fit_recovers_a_combination() {
        let g = [1.0, 2.0, -1.0, 0.5];
        let h = [0.3, -1.0, 2.0, 1.0];
        let m: Vec<f64> = g.iter().zip(&h).map(|(g, h)| 2.0 * g - 0.1 * h).collect();
        let f = Fit::of(&m, &g, &h, 0.05);
        assert!(
            (f.a - 2.0).abs() < 1e-12 && (f.b + 2.0).abs() < 1e-12,
            "{f:?}"
        );
        assert!(f.residual < 1e-12);
    }

    #[test]
    fn permutations_are_all_orders() {
        let mut p = permutations(3);
        assert_eq!(p.len(), 6);
        p.sort();
        p.dedup();
        assert_eq!(p.len(), 6);
        assert!(p.iter().all(|q| {
            let mut q = q.clone();
            q.sort();
            q == [0, 1, 2]
        }));
    }

    /// At a small inner lr the measured coefficients are the theory's (on sine tasks, at the
    /// initialization); at a large one they are not.
    #[test]
    fn small_lr_matches_the_expansion() {
        let arch = Sine::default().arch();
        let phi = Sine::default().init_params(0).unwrap();
        let cfg = Config::sine();
        let meta = BlobMeta {
            dtype: DType::F32,
            settings: adapt_settings(&Sine::default(), &cfg, 2, 10),
            algorithm: "random".into(),
            task: "sine".into(),
            seed: 0,
            meta_iterations: 0,
        };
        let blob = shared(encode_blob(&arch, &phi, &meta).unwrap()).unwrap();
        let mut l = OwnedLearner::with_options(
            &blob,
            Options {
                batch: 10,
                trainable: arch.all_layers(),
                lr: 0.02,
            },
        )
        .unwrap();
        let mut rng = tasks::rng(3, Stream::Train, 0);
        let terms = measure(
            &mut l,
            &Sine::default(),
            &mut rng,
            &phi,
            50,
            50,
            2,
            10,
            &[1e-3, 0.5],
        )
        .unwrap();
        let fits = terms.fits();
        for (f, (a, b)) in fits[0].1.iter().zip(theory(2)) {
            assert!((f.a - a).abs() < 0.01 * a.abs(), "{f:?} vs ({a}, {b})");
            assert!((f.b - b).abs() < 0.05 * b.abs(), "{f:?} vs ({a}, {b})");
        }
        let off = fits[1].1.iter().zip(theory(2)).any(|(f, (a, b))| {
            (f.a - a).abs() > 0.05 * a.abs() || (f.b - b).abs() > 0.25 * b.abs()
        });
        assert!(
            off,
            "at lr 0.5 the first-order expansion should not hold: {fits:?}"
        );
    }
}
