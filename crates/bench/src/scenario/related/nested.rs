//! The whole nested query of a page (its 20 tasks, each task's 3 newest
//! comments and their count) as one SQL statement with lateral joins, the
//! way a re-running engine (Hasura) reads it: the final check compares
//! every client with it, and the Hasura-style cost is measured by running
//! it, for every distinct query or only the affected ones, per change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::Window;
use super::params::{PAGE, WINDOW};
use super::writer::OpRecord;
use crate::ctx::Ctx;
use crate::pgstats::{self, DbStats};
use crate::{db, server};

/// The task keys of page `page` (0-based): tasks are seeded with keys
/// 1..=tasks, so a page is a range of keys.
pub fn page_ids(page: usize) -> Vec<i32> {
    let first = page * PAGE + 1;
    (first..first + PAGE)
        .map(|k| i32::try_from(k).unwrap_or(i32::MAX))
        .collect()
}

/// The page a task key is on.
pub fn page_of(task: i64) -> usize {
    usize::try_from(task - 1).unwrap_or(0) / PAGE
}

/// The subscription of a client on `page`: its tasks by key (in key
/// order, pglive's order without `order`), with the include.
pub fn query(page: usize) -> Value {
    json!({
        "table": "tasks",
        "filter": {"id_in": page_ids(page)},
        "limit": PAGE,
        "include": {"comments": {
            "order": {"by": "created_at", "dir": "desc"},
            "limit": WINDOW,
            "count": true
        }}
    })
}

/// The nested query as one statement, built as Hasura builds its JSON:
/// the tasks, and per task two lateral subqueries (the window, the count).
pub const NESTED_SQL: &str = "SELECT coalesce(json_agg(json_build_object(\
         'task', to_jsonb(t), 'comments', cm.rows, 'comments_count', cn.n) ORDER BY t.id), '[]')::text \
     FROM (SELECT * FROM tasks WHERE id = ANY($1::int[]) ORDER BY id LIMIT 20) t \
     LEFT JOIN LATERAL (\
         SELECT coalesce(json_agg(to_jsonb(c) ORDER BY c.created_at DESC), '[]') AS rows \
         FROM (SELECT * FROM comments WHERE task_id = t.id ORDER BY created_at DESC LIMIT 3) c\
     ) cm ON true \
     LEFT JOIN LATERAL (SELECT count(*) AS n FROM comments WHERE task_id = t.id) cn ON true";

/// A page as the nested query returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageState {
    pub tasks: Vec<i64>,
    pub windows: HashMap<i64, Window>,
}

#[derive(Deserialize)]
struct NestedRow {
    task: TaskKey,
    comments: Vec<CommentKey>,
    comments_count: u64,
}

#[derive(Deserialize)]
struct TaskKey {
    id: i64,
}

#[derive(Deserialize)]
struct CommentKey {
    id: String,
}

fn decode(text: &str) -> Result<PageState> {
    let rows: Vec<NestedRow> = serde_json::from_str(text).context("decoding the nested query")?;
    let mut page = PageState::default();
    for r in rows {
        page.tasks.push(r.task.id);
        if r.comments_count > 0 || !r.comments.is_empty() {
            page.windows.insert(
                r.task.id,
                Window {
                    count: r.comments_count,
                    comments: r.comments.into_iter().map(|c| c.id).collect(),
                },
            );
        }
    }
    Ok(page)
}

/// A fresh read of `pages` pages, in a session that does not count its
/// reads in the table statistics (it comes after they are read anyway).
pub async fn fresh_pages(db_url: &str, pages: usize) -> Result<Vec<PageState>> {
    let sep = if db_url.contains('?') { '&' } else { '?' };
    let c = db::connect(&format!("{db_url}{sep}options=-c%20track_counts%3Doff")).await?;
    let stmt = c.prepare(NESTED_SQL).await.context("prepare nested")?;
    let mut out = Vec::with_capacity(pages);
    for p in 0..pages {
        let text: String = c
            .query_one(&stmt, &[&page_ids(p)])
            .await
            .context("nested query")?
            .try_get(0)?;
        out.push(decode(&text)?);
    }
    Ok(out)
}

/// What the nested query cost, per change.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NestedCost {
    /// Re-runs of every distinct query measured (each one a change's cost).
    pub reruns: usize,
    /// Per change, re-running every distinct query (Hasura does not know
    /// which a change affects): statements, rows read (pg_stat), index and
    /// table scans, wall time and the backend's CPU.
    pub all_statements: usize,
    pub all_rows_read: f64,
    pub all_scans: f64,
    pub all_ms: f64,
    pub all_backend_cpu_ms: Option<f64>,
    /// Per change, re-running only the distinct queries whose page holds a
    /// task the write changed (the writes replayed as they happened).
    pub affected_statements: f64,
    pub affected_rows_read: f64,
    pub affected_ms: f64,
    /// One of these statements' plan, for the record.
    pub plan: Vec<String>,
}

/// Runs `work` on a fresh connection to `db_name` and returns the table
/// statistics' change (once its backend is gone, so that everything it
/// read is flushed), its wall time and its backend's CPU.
async fn counted<F, Fut>(
    ctx: &Ctx,
    db_url: &str,
    db_name: &str,
    work: F,
) -> Result<(DbStats, DbStats, Duration, Option<f64>)>
where
    F: FnOnce(tokio_postgres::Client) -> Fut,
    Fut: std::future::Future<Output = Result<tokio_postgres::Client>>,
{
    if !pgstats::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        anyhow::bail!("backends still connected to {db_name}: the statistics would be incomplete");
    }
    let before = pgstats::read_stats(&ctx.admin, db_url, db_name).await?;
    let c = db::connect(db_url).await?;
    let pid: i32 = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .try_get(0)?;
    let pid = u32::try_from(pid).unwrap_or(0);
    let cpu0 = server::cpu_seconds(pid);
    let t = Instant::now();
    let c = work(c).await?;
    let elapsed = t.elapsed();
    let cpu = server::cpu_seconds(pid).zip(cpu0).map(|(a, b)| a - b);
    drop(c);
    if !pgstats::wait_backends_gone(&ctx.admin, db_name, Duration::from_secs(15)).await? {
        anyhow::bail!("the nested-query session did not end within 15 s");
    }
    let after = pgstats::read_stats(&ctx.admin, db_url, db_name).await?;
    Ok((before, after, elapsed, cpu))
}

fn rows_read(b: &DbStats, a: &DbStats) -> i64 {
    (a.seq_tup_read + a.idx_tup_fetch) - (b.seq_tup_read + b.idx_tup_fetch)
}

/// Measures the nested query on the run's final data: `reruns` re-runs of
/// all `pages` distinct queries, then the writes `ops` replayed with only
/// their affected pages' queries. Nothing else may be connected to
/// `db_name`.
pub async fn measure(
    ctx: &Ctx,
    db_url: &str,
    db_name: &str,
    pages: usize,
    ops: &[OpRecord],
    reruns: usize,
) -> Result<NestedCost> {
    let reruns = reruns.max(1);
    let mut cost = NestedCost {
        reruns,
        all_statements: pages,
        ..NestedCost::default()
    };
    // The plan, read once in a session that does not count (EXPLAIN without
    // ANALYZE reads no rows anyway).
    {
        let c = db::connect(db_url).await?;
        for row in c
            .query(&format!("EXPLAIN {NESTED_SQL}"), &[&page_ids(0)])
            .await
            .context("EXPLAIN nested")?
        {
            cost.plan.push(row.try_get(0)?);
        }
    }
    let (b, a, elapsed, cpu) = counted(ctx, db_url, db_name, |c| async move {
        let stmt = c.prepare(NESTED_SQL).await.context("prepare nested")?;
        for _ in 0..reruns {
            for p in 0..pages {
                let _: String = c.query_one(&stmt, &[&page_ids(p)]).await?.try_get(0)?;
            }
        }
        anyhow::Ok(c)
    })
    .await?;
    let n = reruns as f64;
    cost.all_rows_read = rows_read(&b, &a) as f64 / n;
    cost.all_scans = ((a.seq_scan + a.idx_scan) - (b.seq_scan + b.idx_scan)) as f64 / n;
    cost.all_ms = elapsed.as_secs_f64() * 1e3 / n;
    cost.all_backend_cpu_ms = cpu.map(|s| s * 1e3 / n);

    // Only the affected pages, write by write.
    let affected: Vec<Vec<usize>> = ops
        .iter()
        .map(|op| {
            let mut v: Vec<usize> = op
                .touched()
                .map(|(t, _)| page_of(t))
                .filter(|&p| p < pages)
                .collect();
            v.dedup();
            v
        })
        .collect();
    let statements: usize = affected.iter().map(Vec::len).sum();
    let (b, a, elapsed, _) = counted(ctx, db_url, db_name, |c| async move {
        let stmt = c.prepare(NESTED_SQL).await.context("prepare nested")?;
        for pages in &affected {
            for &p in pages {
                let _: String = c.query_one(&stmt, &[&page_ids(p)]).await?.try_get(0)?;
            }
        }
        anyhow::Ok(c)
    })
    .await?;
    let w = ops.len().max(1) as f64;
    cost.affected_statements = statements as f64 / w;
    cost.affected_rows_read = rows_read(&b, &a) as f64 / w;
    cost.affected_ms = elapsed.as_secs_f64() * 1e3 / w;
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_key_ranges() {
        assert_eq!(page_ids(0).first(), Some(&1));
        assert_eq!(page_ids(1), (21..=40).collect::<Vec<i32>>());
        assert_eq!((page_of(1), page_of(20), page_of(21)), (0, 0, 1));
        let q = query(2);
        assert_eq!(q["filter"]["id_in"][0], 41);
        assert_eq!(q["include"]["comments"]["limit"], 3);
    }

    #[test]
    fn nested_rows_decode() -> Result<()> {
        let page = decode(
            r#"[{"task":{"id":1,"title":"x"},"comments":[{"id":"u1"}],"comments_count":4},{"task":{"id":2},"comments":[],"comments_count":0}]"#,
        )?;
        assert_eq!(page.tasks, vec![1, 2]);
        assert_eq!(page.windows[&1].count, 4);
        assert!(!page.windows.contains_key(&2));
        Ok(())
    }
}
