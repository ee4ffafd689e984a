//! The typed check that ends every pglive run of S1–S6: the measuring
//! clients only scan frames for markers, so one contract client checks the
//! rows themselves.

use anyhow::{Context, Result};
use pglive_schema::LiveQuery;
use pglive_schema::tables::{ItemsQuery, TasksFilter, TasksQuery};
use serde_json::Value;

use crate::scenario::Params;
use crate::workload::Table;

/// The bench's clients only scan frames for markers. This one is the test
/// kit's typed client: it decodes every message as the contract's
/// `ServerMessage`, applies diffs with the server's own code, subscribes as
/// client 0 did, and must hold exactly what a fresh query returns.
pub async fn typed_check(p: &Params, ws_url: String, db_url: String) -> Result<usize> {
    let query = subscribe_query(p, 0)?;
    let table = p.table;
    // The fresh query must not count as pglive's reads in the table
    // statistics read after the run (it would add the whole table to "rows
    // read / write"): its session does not track counts (the bench connects
    // as a superuser, who may turn that off).
    let sep = if db_url.contains('?') { '&' } else { '?' };
    let db_url = format!("{db_url}{sep}options=-c%20track_counts%3Doff");
    let check = tokio::spawn(async move {
        let mut c = pglive_testkit::Client::connect_url(&ws_url).await;
        c.subscribe("check", query).await;
        let want = match table {
            Table::Items => {
                pglive_testkit::fresh_at::<pglive_schema::Item>(
                    &db_url,
                    "SELECT * FROM items ORDER BY id",
                )
                .await
            }
            Table::Tasks { .. } => {
                pglive_testkit::fresh_at::<pglive_schema::Task>(
                    &db_url,
                    "SELECT * FROM tasks WHERE assignee = 'user-0' ORDER BY id",
                )
                .await
            }
        };
        let ok = c.until(|c| c.has("check") && c.rows("check") == want).await;
        (ok, c.len("check"), want.len())
    });
    // The test kit fails loudly (it panics); here that is an error in the report.
    let (ok, got, want) = check
        .await
        .map_err(|e| anyhow::anyhow!("typed check failed: {e}"))?;
    anyhow::ensure!(
        ok,
        "typed check: the contract client holds {got} rows, a fresh query returns {want} (or they differ)"
    );
    Ok(got)
}

/// The query client `i` of pglive subscribes to: all of `items`, or the
/// tasks of its own assignee (S6).
pub fn subscribe_query(p: &Params, i: usize) -> Result<Value> {
    let query = match p.table {
        Table::Items => LiveQuery::Items(ItemsQuery::default()),
        Table::Tasks { groups } => LiveQuery::Tasks(TasksQuery {
            filter: Some(TasksFilter {
                assignee_eq: Some(format!("user-{}", i % groups.max(1))),
                ..TasksFilter::default()
            }),
            ..TasksQuery::default()
        }),
    };
    serde_json::to_value(&query).context("encoding the subscription's query")
}
