//! The markdown table: one row per measurement, with the reference it is compared with, the
//! ratio and the goal of the performance issue.

/// One row.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// anole's number (with unit).
    pub anole: String,
    /// The reference's number (with unit), empty when there is none.
    pub reference: String,
    /// How many times faster anole is, empty when there is no reference.
    pub ratio: String,
    /// The goal and whether this run met it.
    pub goal: String,
}

/// Rows as a markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| benchmark | anole | reference | anole speed-up | goal |\n|---|---:|---:|---:|---|\n",
    );
    for r in rows {
        let cell = |c: &str| {
            if c.is_empty() {
                "—".to_string()
            } else {
                c.replace('|', "\\|")
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&r.what),
            cell(&r.anole),
            cell(&r.reference),
            cell(&r.ratio),
            cell(&r.goal)
        ));
    }
    s
}

/// Seconds as microseconds, three significant figures (thousands separated).
pub fn micros(secs: f64) -> String {
    let us = secs * 1e6;
    if us < 10.0 {
        format!("{us:.2} µs")
    } else if us < 100.0 {
        format!("{us:.1} µs")
    } else {
        format!("{} µs", thousands(sig3(us)))
    }
}

/// A rate with three significant figures (thousands separated) and `unit`.
pub fn rate(v: f64, unit: &str) -> String {
    if v < 10.0 {
        format!("{v:.2} {unit}")
    } else if v < 100.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{} {unit}", thousands(sig3(v)))
    }
}

/// `x` as a speed-up: `6.2×`.
pub fn times(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}×")
    } else {
        format!("{x:.1}×")
    }
}

/// The goal text with whether `ratio` meets `at_least`.
pub fn goal(at_least: f64, ratio: Option<f64>) -> String {
    let g = format!("≥ {at_least}×");
    match ratio {
        Some(r) if r >= at_least => format!("{g}: met"),
        Some(_) => format!("{g}: not met"),
        None => g,
    }
}

fn sig3(v: f64) -> u64 {
    let digits = v.abs().log10().floor() as i32 + 1;
    let scale = 10f64.powi((digits - 3).max(0));
    ((v / scale).round() * scale) as u64
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(micros(1.234e-6), "1.23 µs");
        assert_eq!(micros(53.21e-6), "53.2 µs");
        assert_eq!(micros(3.7149e-3), "3,710 µs");
        assert_eq!(rate(4351.2, "it/s"), "4,350 it/s");
        assert_eq!(rate(0.2712, "it/s"), "0.27 it/s");
        assert_eq!(times(19.33), "19.3×");
        assert_eq!(times(1.234), "1.23×");
        assert_eq!(goal(20.0, Some(19.0)), "≥ 20×: not met");
        assert_eq!(goal(3.0, Some(3.5)), "≥ 3×: met");
    }

    #[test]
    fn escapes_pipes_and_fills_empty_cells() {
        let t = markdown(&[Row {
            what: "a|b".into(),
            anole: "1 µs".into(),
            ..Row::default()
        }]);
        assert!(t.ends_with("| a\\|b | 1 µs | — | — | — |\n"), "{t}");
    }
}
