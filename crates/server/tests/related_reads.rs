//! What a change to a related row costs: the related table's reader reads
//! the changed rows once per context, and every group that includes the
//! table decides in memory what they do to its entries. A read of the
//! related window happens only when memory cannot decide (a row left a
//! full window with rows past it). Runs once per capture mode.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use pglive_testkit::{CaptureMode, Client, TestDb, TestServer, in_both_modes};
use serde_json::{Value, json};

in_both_modes!(related_changes_are_decided_in_memory);

/// The bodies of task 1's related comments and their count, per client.
fn task_one(c: &Client) -> Option<(Vec<String>, u64)> {
    let sub = c.subs.get("p")?;
    let rows = c.rows("p");
    let task = rows.iter().find(|r| r["id"] == json!(1))?;
    let (comments, count) = sub.related_of("comments", task);
    let bodies = comments
        .iter()
        .map(|c: &Value| c["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    Some((bodies, count))
}

fn want(bodies: &[&str], count: u64) -> Option<(Vec<String>, u64)> {
    Some((bodies.iter().map(|b| (*b).to_owned()).collect(), count))
}

async fn related_changes_are_decided_in_memory(mode: CaptureMode) {
    let db = TestDb::new().await;
    db.exec("INSERT INTO tasks (id, title) VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        .await;
    // Five comments on task 1, c1 oldest; one on task 2.
    db.exec(
        "INSERT INTO comments (task_id, author, body, created_at) \
         SELECT 1, 'a', 'c' || g, now() - (10 - g) * interval '1 minute' FROM generate_series(1, 5) g; \
         INSERT INTO comments (task_id, author, body) VALUES (2, 'a', 'other')",
    )
    .await;
    let server = TestServer::start_in(&db, mode).await;
    // Eight groups (distinct limits), each including task 1's comments.
    let mut clients = Vec::new();
    for i in 0..8 {
        let mut c = Client::connect(&server).await;
        c.subscribe(
            "p",
            json!({"table":"tasks","order":{"by":"id"},"limit":3 + i,
                   "include":{"comments":{"order":{"by":"created_at","dir":"desc"},"limit":3,"count":true}}}),
        )
        .await;
        clients.push(c);
    }
    for c in &mut clients {
        assert!(
            c.until(|c| task_one(c) == want(&["c5", "c4", "c3"], 5))
                .await
        );
    }
    let reads = || async { server.metric("pglive_related_reads_total").await };
    let keyed = || async { server.metric("pglive_refreshes_total").await };
    let (r0, k0) = (reads().await, keyed().await);

    // A new comment: first in the window, counted; no window is read.
    db.exec("INSERT INTO comments (task_id, author, body) VALUES (1, 'b', 'c6')")
        .await;
    for c in &mut clients {
        assert!(
            c.until(|c| task_one(c) == want(&["c6", "c5", "c4"], 6))
                .await,
            "{:?}",
            task_one(c)
        );
    }
    // An edit that keeps its place, and a row past the window leaving.
    db.exec("UPDATE comments SET body = 'c5!' WHERE body = 'c5'; DELETE FROM comments WHERE body = 'c1'")
        .await;
    for c in &mut clients {
        assert!(
            c.until(|c| task_one(c) == want(&["c6", "c5!", "c4"], 5))
                .await,
            "{:?}",
            task_one(c)
        );
    }
    // A comment moving from task 2 to task 1, past the window.
    db.exec("UPDATE comments SET task_id = 1, created_at = now() - interval '1 hour' WHERE body = 'other'")
        .await;
    for c in &mut clients {
        assert!(
            c.until(|c| task_one(c) == want(&["c6", "c5!", "c4"], 6))
                .await,
            "{:?}",
            task_one(c)
        );
    }
    assert_eq!(reads().await - r0, 0, "every change was decided in memory");
    // Three transactions (the second of two statements, which may be read
    // apart): one keyed read of comments each, for eight groups.
    let keyed_reads = keyed().await - k0;
    assert!((3..=4).contains(&keyed_reads), "{keyed_reads} keyed reads");

    // The newest leaves a full window with rows past it: each group reads
    // its window again (memory does not hold the next row).
    db.exec("DELETE FROM comments WHERE body = 'c6'").await;
    for c in &mut clients {
        assert!(
            c.until(|c| task_one(c) == want(&["c5!", "c4", "c3"], 5))
                .await,
            "{:?}",
            task_one(c)
        );
    }
    assert_eq!(reads().await - r0, 8, "one window read per group");
    server.stop().await;
}
