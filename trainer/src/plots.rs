//! PNG plots of a training run: the smoothed meta-training learning curve, and held-out sine
//! tasks before and after adaptation (true curve, support points, prediction of the
//! initialization and after adapting through the engine). Text uses the embedded Noto Sans.

use crate::meta::IterLoss;
use crate::tasks::{self, sine, Stream, TaskFamily};
use anole::{OwnedLearner, SharedBlob};
use anyhow::{anyhow, Context, Result};
use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// Register the embedded font under plotters' "sans-serif" family (once per process).
fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut ok = true;
    ONCE.call_once(|| {
        ok =
            plotters::style::register_font("sans-serif", FontStyle::Normal, ttf_noto_sans::REGULAR)
                .is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("internal: the embedded font does not load"))
    }
}

/// Draw the legend of `chart` at `position` and write the image.
fn legend_and_save<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    path: &Path,
    position: SeriesLabelPosition,
) -> Result<()> {
    let err = draw_err(path);
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("{}: cannot draw plot: {e}", path.display())
}

/// Moving average over a trailing window of `window` values.
pub fn smooth(values: &[f32], window: usize) -> Vec<f32> {
    let window = window.max(1);
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0f64;
    for (i, &v) in values.iter().enumerate() {
        sum += v as f64;
        if i >= window {
            sum -= values[i - window] as f64;
        }
        out.push((sum / (i + 1).min(window) as f64) as f32);
    }
    out
}

/// The learning curve: meta-training loss before and after the inner steps, smoothed over 2%
/// of the run, on a log scale.
pub fn learning_curve(path: &Path, curve: &[IterLoss], title: &str) -> Result<()> {
    register_font()?;
    let err = draw_err(path);
    let n = curve.len();
    let window = (n / 50).max(1);
    let before = smooth(&curve.iter().map(|l| l.before).collect::<Vec<_>>(), window);
    let after = smooth(&curve.iter().map(|l| l.after).collect::<Vec<_>>(), window);
    let differ = curve.iter().any(|l| l.before != l.after);
    let all = before
        .iter()
        .chain(if differ { after.iter() } else { [].iter() });
    let (lo, hi) = all.fold((f32::INFINITY, 0.0f32), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() && lo > 0.0 && hi > lo {
        (lo * 0.8, hi * 1.25)
    } else {
        (1e-3, 10.0)
    };
    let stride = n.div_ceil(2000).max(1);
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f32..n.max(1) as f32, (lo..hi).log_scale())
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("meta-iteration")
        .y_desc(format!("loss (moving average of {window})"))
        .x_label_formatter(&|x| format!("{}", *x as u64))
        .y_labels(12)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(&err)?;
    let series = |v: &[f32]| -> Vec<(f32, f32)> {
        v.iter()
            .enumerate()
            .step_by(stride)
            .map(|(i, &y)| (i as f32, y))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(series(&before), BLUE.stroke_width(2)))
        .map_err(&err)?
        .label(if differ {
            "first inner minibatch, at the meta-parameters"
        } else {
            "training minibatch loss"
        })
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if differ {
        chart
            .draw_series(LineSeries::new(series(&after), RED.stroke_width(2)))
            .map_err(&err)?
            .label("last inner minibatch, after the steps before it")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    }
    legend_and_save(&mut chart, &root, path, SeriesLabelPosition::UpperRight)
}

/// One model's line of [`loss_vs_steps`]: its name and (steps, mean, ci95) points.
pub type Curve = (String, Vec<(u32, f64, f64)>);

/// Held-out loss against adaptation steps, one line (with its 95% confidence band) per model.
pub fn loss_vs_steps(path: &Path, title: &str, y_desc: &str, curves: &[Curve]) -> Result<()> {
    register_font()?;
    let err = draw_err(path);
    let points = curves.iter().flat_map(|(_, c)| c.iter());
    let (steps, hi) = points.fold((1u32, 0f64), |(s, h), &(k, m, c)| (s.max(k), h.max(m + c)));
    let hi = if hi > 0.0 && hi.is_finite() {
        hi * 1.1
    } else {
        1.0
    };
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..steps as f64, 0f64..hi)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("adaptation steps on the support set")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_desc)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(&err)?;
    for (i, (name, c)) in curves.iter().enumerate() {
        let colour = [BLUE, RED, RGBColor(90, 90, 90), GREEN, MAGENTA][i % 5].to_rgba();
        let band: Vec<(f64, f64)> = c
            .iter()
            .map(|&(k, m, ci)| (k as f64, m + ci))
            .chain(
                c.iter()
                    .rev()
                    .map(|&(k, m, ci)| (k as f64, (m - ci).max(0.0))),
            )
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.15))))
            .map_err(&err)?;
        chart
            .draw_series(LineSeries::new(
                c.iter().map(|&(k, m, _)| (k as f64, m)),
                colour.stroke_width(2),
            ))
            .map_err(&err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    legend_and_save(&mut chart, &root, path, SeriesLabelPosition::UpperRight)
}

/// Held-out sine tasks (the first `panels` tasks `anole eval --seed SEED` uses): the true
/// curve, the `shots` support points, the prediction of the initialization and after `steps`
/// adaptation steps with the blob's settings.
pub fn sine_adaptation(
    path: &Path,
    blob: &SharedBlob,
    seed: u64,
    shots: usize,
    steps: u32,
    panels: usize,
) -> Result<()> {
    register_font()?;
    let err = draw_err(path);
    let mut learner = OwnedLearner::new(blob)?;
    let lr = learner.options().lr;
    let xs = sine::grid(200);
    let optimizer = match blob.blob().optimizer {
        anole::Optimizer::Sgd => "SGD",
        anole::Optimizer::AdamB1Zero => "Adam (β1 = 0)",
    };
    let cols = 2;
    let rows = panels.div_ceil(cols).max(1);
    let root = BitMapBackend::new(path, (1000, 380 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let root = root
        .titled(
            &format!(
                "held-out sine tasks: {shots} support points, {steps} {optimizer} steps at lr {}",
                crate::stats::decimal(lr)
            ),
            ("sans-serif", 22),
        )
        .map_err(&err)?;
    for (i, area) in root
        .split_evenly((rows, cols))
        .into_iter()
        .enumerate()
        .take(panels)
    {
        let episode = tasks::Sine::default().eval_task(
            &mut tasks::rng(seed, Stream::Eval, i as u64),
            shots,
            xs.len(),
        )?;
        let truth = episode.query.target_slice();
        let mut before = vec![0.0f32; xs.len()];
        let mut after = vec![0.0f32; xs.len()];
        learner.reset();
        learner.predict(&xs, &mut before)?;
        learner
            .adapt(&episode.support.samples()?, steps)
            .context("adapting")?;
        learner.predict(&xs, &mut after)?;
        let ymax = truth
            .iter()
            .chain(&before)
            .chain(&after)
            .fold(1.0f32, |m, v| m.max(v.abs()))
            * 1.1;
        let mut chart = ChartBuilder::on(&area)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(-sine::X_MAX..sine::X_MAX, -ymax..ymax)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .draw()
            .map_err(&err)?;
        let line =
            |v: &[f32]| -> Vec<(f32, f32)> { xs.iter().copied().zip(v.iter().copied()).collect() };
        chart
            .draw_series(LineSeries::new(line(truth), BLACK.stroke_width(2)))
            .map_err(&err)?
            .label("true function")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(line(&before), BLUE.stroke_width(2)))
            .map_err(&err)?
            .label("initialization (0 steps)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(line(&after), RED.stroke_width(2)))
            .map_err(&err)?
            .label(format!("after {steps} steps"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        let support = episode
            .support
            .input_slice()
            .iter()
            .zip(episode.support.target_slice());
        chart
            .draw_series(support.map(|(&x, &y)| Circle::new((x, y), 4, BLACK.filled())))
            .map_err(&err)?
            .label("support points")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, BLACK.filled()));
        if i == 0 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerLeft)
                .draw()
                .map_err(&err)?;
        }
    }
    root.present().map_err(&err)?;
    Ok(())
}

/// Lines through points (x, y), one colour per series, with a legend; x on a log scale when
/// `log_x` (every x then positive).
pub fn lines(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    log_x: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    register_font()?;
    let err = draw_err(path);
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1, y0, y1) = points().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if !(x0.is_finite() && y0.is_finite()) || (log_x && x0 <= 0.0) {
        return Err(anyhow!("{}: nothing to plot", path.display()));
    }
    let pad = ((y1 - y0) * 0.08).max(1e-9);
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64);
    let y_range = (y0 - pad)..(y1 + pad);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_labels(6)
                .x_label_formatter(&|x| format!("{x:.1e}"))
                .draw()
                .map_err(&err)?;
            for (i, (name, p)) in series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
                    .map_err(&err)?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(p.iter().map(|&q| Circle::new(q, 3, color.filled())))
                    .map_err(&err)?;
            }
            legend_and_save(&mut chart, &root, path, SeriesLabelPosition::LowerLeft)
        }};
    }
    if log_x {
        draw!(builder
            .build_cartesian_2d((x0..x1).log_scale(), y_range)
            .map_err(&err)?)
    } else {
        draw!(builder.build_cartesian_2d(x0..x1, y_range).map_err(&err)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_a_trailing_mean() {
        assert_eq!(smooth(&[1.0, 3.0, 5.0, 7.0], 2), vec![1.0, 2.0, 4.0, 6.0]);
        assert_eq!(smooth(&[2.0], 10), vec![2.0]);
    }
}
