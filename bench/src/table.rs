//! The one summary table: each figure beside the baseline measured in the
//! same run, their ratio, and the goal it is held against.

use std::fmt::Write;

pub struct Row {
    pub figure: String,
    pub value: String,
    pub baseline: String,
    /// value / baseline; not finite (shown as –) where the baseline is zero.
    pub ratio: f64,
    pub goal: &'static str,
    /// `None` where there is no goal.
    pub met: Option<bool>,
}

/// A Markdown table, readable as is in a terminal.
pub fn render(rows: &[Row]) -> String {
    let header = ["figure", "value", "baseline", "ratio", "goal", "met?"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.value.clone(),
                r.baseline.clone(),
                ratio(r.ratio),
                r.goal.to_owned(),
                match r.met {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "NO".to_owned(),
                    None => "–".to_owned(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (cell, width) in cells.iter().zip(widths) {
            let pad = width - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
    };
    line(&mut out, &header.map(str::to_owned));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// Two decimals, or three significant digits for ratios too small for them
/// (a feed answering in a millisecond where polling takes a second); none
/// where the baseline is zero.
fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "–".to_owned()
    } else if r != 0.0 && r.abs() < 0.01 {
        format!("{r:.2e}")
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let rows = [Row {
            figure: "p50".into(),
            value: "1.00 ms".into(),
            baseline: "0.50 ms".into(),
            ratio: 2.0,
            goal: "≤ 10 ms",
            met: Some(true),
        }];
        let table = render(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
        assert!(lines[2].contains("| 2.00  |") || lines[2].contains("| 2.00 |"));
        assert!(lines[2].contains("yes"));
    }

    #[test]
    fn tiny_ratios_keep_their_digits() {
        assert_eq!(ratio(0.76 / 902.48), "8.42e-4");
        assert_eq!(ratio(0.35), "0.35");
        assert_eq!(ratio(0.0), "0.00");
        assert_eq!(ratio(f64::NAN), "–");
        assert_eq!(ratio(f64::INFINITY), "–");
    }
}
