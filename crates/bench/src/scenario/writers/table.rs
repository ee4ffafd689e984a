//! Scenario W's table: one row per case.

use super::result::WritersResult;

fn fmt_tps(v: f64) -> String {
    let whole = v.round() as u64;
    let s = whole.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The results table: one row per case.
pub fn table(res: &WritersResult, markdown: bool) -> String {
    let header = [
        "op",
        "writers",
        "capture",
        "subscribers",
        "tx/s",
        "vs unwatched",
        "vs recvlogical",
        "commit p50 / p99",
        "pglive CPU s",
        "subscribers converged",
        "fence at all after",
        "frames / subscriber",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &res.cases {
        let mut r = vec![
            c.op.clone(),
            c.writers.to_string(),
            c.mode.clone(),
            c.subscribers.to_string(),
        ];
        if c.skipped.is_some() {
            r.push("n/a".into());
            r.extend(std::iter::repeat_n("-".to_string(), header.len() - 5));
        } else if c.error.is_some() && c.tps == 0.0 {
            r.push("error".into());
            r.extend(std::iter::repeat_n("-".to_string(), header.len() - 5));
        } else {
            r.push(fmt_tps(c.tps));
            r.push(
                c.ratio_to_unwatched
                    .map_or("n/a".into(), |x| format!("{:.0} %", x * 100.0)),
            );
            r.push(
                c.ratio_to_recvlogical
                    .map_or("-".into(), |x| format!("{:.0} %", x * 100.0)),
            );
            r.push(format!(
                "{:.2} / {:.2} ms",
                c.commit_ms.p50, c.commit_ms.p99
            ));
            r.push(c.server_cpu_s.map_or("-".into(), |v| format!("{v:.1}")));
            r.push(match c.converged {
                Some(n) => format!("{n}/{} ({} rows each)", c.subscribers, c.rows_checked),
                None => "-".into(),
            });
            r.push(c.fence_all_ms.map_or("-".into(), |v| format!("{v:.0} ms")));
            r.push(if c.subscribers > 0 {
                format!("{:.0}", c.frames_per_subscriber)
            } else {
                "-".into()
            });
        }
        rows.push(r);
    }
    let mut out = String::new();
    let s = &res.settings;
    let settings = format!(
        "cluster: fsync = {}, synchronous_commit = {}, full_page_writes = {}, wal_level = {}",
        s.fsync, s.synchronous_commit, s.full_page_writes, s.wal_level
    );
    if markdown {
        out.push_str(&format!("| {} |\n|", header.join(" | ")));
        for i in 0..header.len() {
            out.push_str(if i < 4 { "---|" } else { "---:|" });
        }
        out.push('\n');
        for r in &rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out.push_str(&format!("\n{settings}\n"));
    } else {
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(4)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                if i < 4 {
                    l.push_str(c);
                    l.push_str(&" ".repeat(pad + 2));
                } else {
                    l.push_str(&" ".repeat(pad));
                    l.push_str(c);
                    l.push_str("  ");
                }
            }
            l.trim_end().to_string() + "\n"
        };
        out.push_str(&line(header.to_vec()));
        for r in &rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out.push_str(&format!("{settings}\n"));
    }
    // Below the table: notes, skipped modes and errors, one per line (a
    // Markdown list in Markdown).
    let mut lines: Vec<String> = res.notes.iter().map(|n| format!("note: {n}")).collect();
    for c in &res.cases {
        if let Some(s) = &c.skipped {
            let line = format!("{}: {s}", c.mode);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    for c in &res.cases {
        let tag = format!("{} {}×{} {}", c.mode, c.op, c.writers, c.subscribers);
        if let Some(e) = &c.error {
            lines.push(format!("{tag}: error: {}", e.replace('\n', " ")));
        }
        for n in &c.notes {
            lines.push(format!("{tag}: note: {n}"));
        }
    }
    let bullet = if markdown { "- " } else { "" };
    for l in lines {
        out.push_str(&format!("{bullet}{l}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands() {
        assert_eq!(fmt_tps(16_757.4), "16,757");
        assert_eq!(fmt_tps(999.0), "999");
    }
}
