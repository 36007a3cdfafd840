//! Wall-clock timing: the median time of one call over many repetitions (std::time::Instant).

use anyhow::Result;
use std::time::{Duration, Instant};

/// Median seconds per call of `f`: one warm-up call, then samples of enough calls to last about
/// 5 ms each, as many samples as fit in `budget` (at least 7, at most 101).
pub fn median_secs(budget: Duration, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let (once, per_sample) = calibrate(&mut f)?;
    let samples = ((budget.as_secs_f64() / (once * per_sample as f64)) as usize).clamp(7, 101);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..per_sample {
            f()?;
        }
        times.push(t.elapsed().as_secs_f64() / per_sample as f64);
    }
    Ok(median(&mut times))
}

/// One warm-up call of `f`: its seconds, and how many calls make a sample of about 5 ms.
fn calibrate(f: &mut dyn FnMut() -> Result<()>) -> Result<(f64, usize)> {
    let t0 = Instant::now();
    f()?;
    let once = t0.elapsed().as_secs_f64().max(1e-9);
    Ok((once, ((0.005 / once).ceil() as usize).max(1)))
}

/// [`median_secs`] of `f` and of `g` with their samples interleaved (f, g, f, g, …), so both
/// see the same machine: on a shared VM the speed drifts between runs of a few seconds, and
/// timing one after the other would put the drift into their ratio. Each gets `budget`.
pub fn median_secs_pair(
    budget: Duration,
    mut f: impl FnMut() -> Result<()>,
    mut g: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    let (nf, ng) = (calibrate(&mut f)?.1, calibrate(&mut g)?.1);
    let (mut tf, mut tg) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while (tf.len() < 7 || start.elapsed() < 2 * budget) && tf.len() < 101 {
        for (h, n, times) in [
            (&mut f as &mut dyn FnMut() -> Result<()>, nf, &mut tf),
            (&mut g, ng, &mut tg),
        ] {
            let t = Instant::now();
            for _ in 0..n {
                h()?;
            }
            times.push(t.elapsed().as_secs_f64() / n as f64);
        }
    }
    Ok((median(&mut tf), median(&mut tg)))
}

/// Median of `v` (sorted in place); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn pair_times_each_side() {
        let (a, b) = median_secs_pair(
            Duration::from_millis(40),
            || {
                std::thread::sleep(Duration::from_millis(1));
                Ok(())
            },
            || {
                std::thread::sleep(Duration::from_millis(4));
                Ok(())
            },
        )
        .unwrap();
        assert!((0.0009..0.03).contains(&a), "{a}");
        assert!((0.0039..0.05).contains(&b) && b > a, "{a} {b}");
    }

    #[test]
    fn times_a_sleep() {
        let t = median_secs(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        })
        .unwrap();
        assert!((0.0019..0.05).contains(&t), "{t}");
    }
}
