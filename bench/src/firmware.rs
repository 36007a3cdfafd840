//! Instruction counts of the sine adaptation step on the Cortex-M cores, read from the report
//! that `firmware-examples/run.sh` writes (QEMU with `-icount`: guest instructions).

/// One core's row of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Guest instructions per adaptation step.
    pub per_step: String,
    /// Guest instructions per multiply-accumulate of the step.
    pub per_mac: String,
    /// Guest instructions per prediction.
    pub per_prediction: String,
}

/// The first table row after the section whose heading starts with `### {heading}`, as
/// `Counts`; `None` when the section or one of the three columns is missing.
pub fn counts(report: &str, heading: &str) -> Option<Counts> {
    let mut lines = report
        .lines()
        .skip_while(|l| !l.starts_with(&format!("### {heading}")))
        .skip(1)
        .take_while(|l| !l.starts_with("### "))
        .filter(|l| l.trim_start().starts_with('|'));
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = cells(lines.next()?);
    lines.next()?; // the |---| separator
    let row = cells(lines.next()?);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .and_then(|i| row.get(i).cloned())
    };
    Some(Counts {
        per_step: col("instructions / step")?,
        per_mac: col("instructions / MAC")?,
        per_prediction: col("instructions / prediction")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "## Firmware cost\n\n\
### Cortex-M4F: qemu-cortex-m4 (thumbv7em-none-eabihf)\n\n\
| instructions / step | instructions / prediction | instructions / MAC | flash |\n\
|---:|---:|---:|---:|\n\
| 742,837 | 24,712 | 5.89 | 113,808 B |\n\n\
### Cortex-M0+ code: qemu-cortex-m4 built for thumbv6m-none-eabi\n\n\
| instructions / step | instructions / prediction | instructions / MAC |\n\
|---:|---:|---:|\n\
| 36,561,813 | 1,508,851 | 289.98 |\n";

    #[test]
    fn reads_both_cores() {
        assert_eq!(
            counts(REPORT, "Cortex-M4F"),
            Some(Counts {
                per_step: "742,837".into(),
                per_mac: "5.89".into(),
                per_prediction: "24,712".into(),
            })
        );
        assert_eq!(
            counts(REPORT, "Cortex-M0+").map(|c| c.per_mac),
            Some("289.98".into())
        );
    }

    #[test]
    fn missing_section_or_column_is_none() {
        assert_eq!(counts(REPORT, "RP2040"), None);
        assert_eq!(
            counts("### Cortex-M4F\n\n| a |\n|---|\n| 1 |\n", "Cortex-M4F"),
            None
        );
    }
}
