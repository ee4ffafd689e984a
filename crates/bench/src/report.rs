//! What every scenario's report is made of: percentiles of samples, the
//! number formats of the printed tables, and the tables with one column per
//! report (RLS and RECONNECT print theirs with it).

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// Percentiles (nearest rank) of microsecond samples, in milliseconds.
pub fn percentiles(mut us: Vec<u32>) -> Percentiles {
    if us.is_empty() {
        return Percentiles::default();
    }
    us.sort_unstable();
    let at = |p: f64| -> f64 {
        let rank = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len());
        f64::from(us[rank - 1]) / 1000.0
    };
    let sum: u64 = us.iter().map(|&x| u64::from(x)).sum();
    Percentiles {
        count: us.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
        mean: sum as f64 / us.len() as f64 / 1000.0,
    }
}

pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

pub fn bytes(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} MB", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} kB", v / 1e3)
    } else {
        format!("{v:.0} B")
    }
}

pub fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders one labelled row of cells per metric, a column per header: a
/// Markdown table, or aligned text for the console.
fn render(labels_cols: &[(String, Vec<String>)], header: &[String], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str(&format!("| metric | {} |\n", header.join(" | ")));
        out.push_str(&format!(
            "|---|{}\n",
            header.iter().map(|_| "---:|").collect::<String>()
        ));
        for (label, cells) in labels_cols {
            out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
        }
    } else {
        let w0 = labels_cols.iter().map(|(l, _)| l.len()).max().unwrap_or(6);
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                labels_cols
                    .iter()
                    .map(|(_, cells)| cells.get(c).map_or(0, |s| s.chars().count()))
                    .chain(std::iter::once(header[c].len()))
                    .max()
                    .unwrap_or(8)
            })
            .collect();
        out.push_str(&format!("{:w0$}", "metric"));
        for (c, h) in header.iter().enumerate() {
            out.push_str(&format!("  {:>w$}", h, w = widths[c]));
        }
        out.push('\n');
        for (label, cells) in labels_cols {
            out.push_str(&format!("{label:w0$}"));
            for (c, cell) in cells.iter().enumerate() {
                out.push_str(&format!("  {:>w$}", cell, w = widths[c]));
            }
            out.push('\n');
        }
    }
    out
}

/// A table row: its label and how to render one report's cell.
pub type Cell<'a, R> = (&'static str, Box<dyn Fn(&R) -> String + 'a>);

/// Renders `rows` with one column per report (both scenarios' tables).
pub fn table<R>(rows: &[Cell<'_, R>], reports: &[&R], header: &[String], markdown: bool) -> String {
    let cols: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|(l, f)| (l.to_string(), reports.iter().map(|r| f(r)).collect()))
        .collect();
    render(&cols, header, markdown)
}

/// `f(v)`, or "n/a" without a value.
pub fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or_else(|| "n/a".to_string(), f)
}

/// A whole number.
pub fn int(v: f64) -> String {
    format!("{v:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = percentiles((1..=1000).map(|x| x * 1000).collect());
        assert_eq!(p.p50, 500.0);
        assert_eq!(p.p99, 990.0);
        assert_eq!(p.p999, 999.0);
        assert_eq!(p.max, 1000.0);
        assert_eq!(percentiles(vec![]).count, 0);
    }
}
