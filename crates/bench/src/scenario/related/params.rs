//! REL, REL-MOVE and REL-SMOKE by name, and their parameters with the
//! command line's overrides applied.

use anyhow::Result;
use serde::Serialize;

use crate::scenario::{Overrides, Schedule};

pub const NAMES: [&str; 3] = ["REL", "REL-MOVE", "REL-SMOKE"];

/// Tasks per page: every client's query has `limit` 20.
pub const PAGE: usize = 20;
/// Comments seeded per task (50,000 on 10,000 tasks).
pub const COMMENTS_PER_TASK: usize = 5;
/// The include's window: the 3 newest comments of each task, counted.
pub const WINDOW: usize = 3;

/// What the writer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// Every write inserts a comment on a random watched task.
    Insert,
    /// Every write moves a random comment to another random watched task.
    Move,
    /// Alternately one and the other (the smoke covers both).
    Both,
}

/// One scenario with every parameter resolved.
#[derive(Debug, Clone, Serialize)]
pub struct RParams {
    pub name: String,
    pub description: String,
    pub smoke: bool,
    pub clients: usize,
    pub tasks: usize,
    pub comments: usize,
    /// Distinct pages (distinct queries); client i watches page i % pages.
    pub pages: usize,
    pub rate: f64,
    pub writes: usize,
    pub kind: WriteKind,
    #[serde(flatten)]
    pub schedule: Schedule,
}

pub fn is_name(name: &str) -> bool {
    NAMES.contains(&name.to_ascii_uppercase().as_str())
}

/// The scenarios `name` runs: REL runs both variants (inserts, then
/// moves), REL-MOVE the moves only.
pub fn expand(name: &str) -> Vec<&'static str> {
    match name.to_ascii_uppercase().as_str() {
        "REL" => vec!["REL", "REL-MOVE"],
        "REL-MOVE" => vec!["REL-MOVE"],
        "REL-SMOKE" => vec!["REL-SMOKE"],
        _ => Vec::new(),
    }
}

/// Whether `name` is measured against S2 in the same invocation.
pub fn wants_s2(name: &str) -> bool {
    matches!(name.to_ascii_uppercase().as_str(), "REL" | "REL-MOVE")
}

pub fn params(name: &str, o: &Overrides) -> Result<RParams> {
    let upper = name.to_ascii_uppercase();
    // (clients, tasks, rate, writes, kind)
    let (clients, tasks, rate, writes, kind) = match upper.as_str() {
        "REL" => (1_000, 10_000, 20.0, 600, WriteKind::Insert),
        "REL-MOVE" => (1_000, 10_000, 20.0, 600, WriteKind::Move),
        "REL-SMOKE" => (20, 200, 40.0, 20, WriteKind::Both),
        other => anyhow::bail!("unknown scenario {other:?}"),
    };
    let smoke = upper == "REL-SMOKE";
    let clients = o.clients.unwrap_or(clients).max(1);
    // Whole pages only, and at least one.
    let tasks = (o.rows.unwrap_or(tasks) / PAGE).max(1) * PAGE;
    let rate = o.rate.unwrap_or(rate).max(0.0);
    let writes = match (o.writes, o.duration) {
        (Some(w), _) => w,
        (None, Some(d)) if rate > 0.0 => (rate * d).round() as usize,
        _ => writes,
    }
    .max(1);
    let pages = (tasks / PAGE).min(clients).max(1);
    let comments = tasks * COMMENTS_PER_TASK;
    let connect_timeout_s = 30.0 + clients as f64 / 50.0;
    let margin = if smoke { 30.0 } else { 180.0 };
    let schedule = o.schedule(smoke, connect_timeout_s, writes, rate, 1.0, margin);
    let what = match kind {
        WriteKind::Insert => "comment inserts on random watched tasks",
        WriteKind::Move => "comment moves (UPDATE task_id) between random watched tasks",
        WriteKind::Both => "comment inserts and moves, alternately, on random watched tasks",
    };
    let description = format!(
        "{clients} clients, each on a page of {PAGE} tasks (by id; {pages} distinct pages) with comments(newest {WINDOW}, count); {tasks} tasks, {comments} comments; {writes} {what} at {rate}/s"
    );
    Ok(RParams {
        name: upper,
        description,
        smoke,
        clients,
        tasks,
        comments,
        pages,
        rate,
        writes,
        kind,
        schedule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_defaults() -> Result<()> {
        let rel = params("rel", &Overrides::default())?;
        assert_eq!(
            (rel.clients, rel.tasks, rel.comments, rel.pages, rel.writes),
            (1_000, 10_000, 50_000, 500, 600)
        );
        assert_eq!(rel.kind, WriteKind::Insert);
        assert_eq!(
            params("REL-MOVE", &Overrides::default())?.kind,
            WriteKind::Move
        );
        let smoke = params("rel-smoke", &Overrides::default())?;
        assert!(smoke.smoke);
        assert_eq!((smoke.tasks, smoke.pages), (200, 10));
        assert_eq!(expand("rel"), vec!["REL", "REL-MOVE"]);
        assert!(wants_s2("REL-MOVE") && !wants_s2("REL-SMOKE"));
        assert!(params("nope", &Overrides::default()).is_err());
        Ok(())
    }
}
