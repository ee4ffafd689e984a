//! pglive's figures as multiples of the floor's: per run (issue 10's
//! targets are such ratios), and their median and range over repeated runs.

use serde::Serialize;

use super::report::TargetReport;

/// One pglive ÷ floor ratio over repeated runs of a scenario.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Runs that had this ratio.
    pub runs: usize,
}

impl Spread {
    /// `None` when no run had the ratio. An even number of runs takes the
    /// mean of the middle two.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    fn text(this: Option<Spread>) -> String {
        this.map_or("n/a".to_string(), |s| {
            format!("{} ({}–{})", times(s.median), times(s.min), times(s.max))
        })
    }
}

/// A scenario's pglive ÷ floor ratios over its repeated runs (`--repeat`):
/// single runs on a shared machine move by ±0.15×, so the targets are read
/// on medians.
#[derive(Debug, Clone, Serialize)]
pub struct FloorRatioSpread {
    pub scenario: String,
    pub p99: Option<Spread>,
    pub cpu_per_delivery: Option<Spread>,
    pub rss_peak: Option<Spread>,
}

impl FloorRatioSpread {
    pub fn of(scenario: &str, runs: &[&FloorRatios]) -> FloorRatioSpread {
        FloorRatioSpread {
            scenario: scenario.to_owned(),
            p99: Spread::of(runs.iter().filter_map(|r| r.p99)),
            cpu_per_delivery: Spread::of(runs.iter().filter_map(|r| r.cpu_per_delivery)),
            rss_peak: Spread::of(runs.iter().filter_map(|r| r.rss_peak)),
        }
    }

    /// One line for the console and the Markdown.
    pub fn summary(&self) -> String {
        let runs = [self.p99, self.cpu_per_delivery, self.rss_peak]
            .iter()
            .flatten()
            .map(|s| s.runs)
            .max()
            .unwrap_or(0);
        format!(
            "{}: pglive ÷ floor, median (range) of {runs} runs: p99 latency {}, server CPU per delivered message {}, peak RSS {}",
            self.scenario,
            Spread::text(self.p99),
            Spread::text(self.cpu_per_delivery),
            Spread::text(self.rss_peak)
        )
    }
}

/// A ratio as "1.36x" (two decimals near 1, where the floor targets are).
pub fn times(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}x")
    } else {
        format!("{v:.2}x")
    }
}

/// pglive's figures as multiples of the floor's in the same run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloorRatios {
    /// p99 latency, pglive ÷ floor.
    pub p99: Option<f64>,
    /// Server CPU per delivered message, pglive ÷ floor.
    pub cpu_per_delivery: Option<f64>,
    /// Peak RSS, pglive ÷ floor.
    pub rss_peak: Option<f64>,
}

impl FloorRatios {
    /// `None` unless both ran.
    pub fn of(pglive: Option<&TargetReport>, floor: Option<&TargetReport>) -> Option<FloorRatios> {
        let (p, f) = (pglive?, floor?);
        if !p.ok || !f.ok {
            return None;
        }
        let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let p99 = |r: &TargetReport| {
            (r.deliveries.latency_ms.count > 0).then_some(r.deliveries.latency_ms.p99)
        };
        Some(FloorRatios {
            p99: div(p99(p), p99(f)),
            cpu_per_delivery: div(p.server_cpu_us_per_delivery, f.server_cpu_us_per_delivery),
            rss_peak: div(p.server_rss_peak_mib, f.server_rss_peak_mib),
        })
    }

    /// One line for the console and the Markdown.
    pub fn summary(&self) -> String {
        let x = |v: Option<f64>| v.map_or("n/a".to_string(), times);
        format!(
            "pglive ÷ floor (same run): p99 latency {}, server CPU per delivered message {}, peak RSS {}",
            x(self.p99),
            x(self.cpu_per_delivery),
            x(self.rss_peak)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_take_the_middle() {
        let odd = Spread::of([1.3, 1.1, 1.2]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max, odd.runs), (1.2, 1.1, 1.3, 3));
        let even = Spread::of([1.4, 1.0, 1.2, 1.1]).unwrap();
        assert!((even.median - 1.15).abs() < 1e-12);
        assert_eq!(Spread::of([f64::NAN]), None);
        assert_eq!(Spread::of([]), None);

        let runs = [
            FloorRatios {
                p99: Some(1.2),
                cpu_per_delivery: Some(1.3),
                rss_peak: Some(0.2),
            },
            FloorRatios {
                p99: None,
                cpu_per_delivery: Some(1.1),
                rss_peak: Some(0.2),
            },
        ];
        let spread = FloorRatioSpread::of("S4", &runs.iter().collect::<Vec<_>>());
        assert_eq!(spread.p99.map(|s| s.runs), Some(1));
        assert!(
            spread
                .cpu_per_delivery
                .is_some_and(|s| (s.median - 1.2).abs() < 1e-12)
        );
        assert!(spread.summary().starts_with("S4: pglive ÷ floor, median (range) of 2 runs: p99 latency 1.20x (1.20x–1.20x), server CPU per delivered message 1.20x (1.10x–1.30x)"));
    }
}
