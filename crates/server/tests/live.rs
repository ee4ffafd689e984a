//! The live engine end to end: real PostgreSQL, a real server, real
//! WebSockets; every test runs once per capture mode.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use pglive_schema::{Item, ServerMessage, TableChanges};
use pglive_testkit::{CaptureMode, Client, TestDb, TestServer, fresh, in_both_modes};
use serde_json::json;

in_both_modes!(
    snapshot_then_diffs,
    fifty_clients_one_query_one_refresh,
    unsubscribe_and_disconnect_clean_up,
    burst_of_writes_coalesces,
    one_read_per_write_across_filtered_groups,
    live_counts_follow_writes_past_the_limit,
);

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

async fn snapshot_then_diffs(mode: CaptureMode) {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 10) g")
        .await;
    let server = TestServer::start_in(&db, mode).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("all", json!({"table":"items"})).await;
    assert!(c.until(|c| c.rows("all").len() == 10).await);
    let before = now_ms();
    db.exec("INSERT INTO items (name) VALUES ('c'); UPDATE items SET name = 'B' WHERE id = 2; DELETE FROM items WHERE id = 1").await;
    let want = fresh::<Item>(&db, "SELECT * FROM items ORDER BY id").await;
    assert!(
        c.until(|c| c.rows("all") == want).await,
        "{:?}",
        c.rows("all")
    );
    assert!(c.subs["all"].diffs >= 1);
    // The diff says when the server learned of the change: after the write
    // began, before the client had it (same clock here).
    let noticed = c.subs["all"]
        .noticed_at
        .expect("a diff from a change carries noticed_at");
    assert!(
        (before..=now_ms()).contains(&noticed),
        "{before} <= {noticed}"
    );
    server.stop().await;
}

async fn fifty_clients_one_query_one_refresh(mode: CaptureMode) {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 100) g")
        .await;
    let server = TestServer::start_in(&db, mode).await;
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut c = Client::connect(&server).await;
        c.subscribe("q", json!({"table":"items","order":{"by":"name"}}))
            .await;
        clients.push(c);
    }
    for c in &mut clients {
        assert!(c.until(|c| c.rows("q").len() == 100).await);
    }
    assert_eq!(
        server.metric("pglive_groups").await,
        1,
        "one group for 50 equal queries"
    );
    let before = server.metric("pglive_refreshes_total").await;
    db.exec("INSERT INTO items (name) VALUES ('new one')").await;
    let mut texts = Vec::new();
    for c in &mut clients {
        let msg = c.next(pglive_testkit::TIMEOUT).await.expect("a diff");
        assert!(
            matches!(msg, pglive_schema::ServerMessage::Diff(_)),
            "{msg:?}"
        );
        texts.push(serde_json::to_string(&msg).unwrap());
        assert_eq!(c.rows("q").len(), 101);
    }
    assert!(texts.iter().all(|t| t == &texts[0]), "identical diffs");
    let after = server.metric("pglive_refreshes_total").await;
    assert_eq!(after - before, 1, "one query for the whole group");
    // The keyed refresh read only the changed row.
    server.stop().await;
}

async fn unsubscribe_and_disconnect_clean_up(mode: CaptureMode) {
    let db = TestDb::new().await;
    let server = TestServer::start_in(&db, mode).await;
    let mut a = Client::connect(&server).await;
    let mut b = Client::connect(&server).await;
    a.subscribe("x", json!({"table":"items"})).await;
    a.subscribe(
        "y",
        json!({"table":"tasks","filter":{"status_in":["todo"]}}),
    )
    .await;
    b.subscribe("x", json!({"table":"items"})).await;
    assert!(a.until(|c| c.subs.len() == 2).await);
    assert!(b.until(|c| c.subs.len() == 1).await);
    assert_eq!(server.metric("pglive_groups").await, 2);
    assert_eq!(server.metric("pglive_subscriptions").await, 3);
    a.send(json!({"type":"unsubscribe","id":"y"})).await;
    // After unsubscribing, changes to that query no longer arrive.
    db.exec("INSERT INTO tasks (title) VALUES ('t')").await;
    a.drain(Duration::from_millis(300)).await;
    assert_eq!(a.subs["y"].diffs + a.subs["y"].snapshots, 1);
    drop(b);
    drop(a);
    let deadline = tokio::time::Instant::now() + pglive_testkit::TIMEOUT;
    while server.metric("pglive_groups").await != 0
        || server.metric("pglive_connections").await != 0
    {
        assert!(tokio::time::Instant::now() < deadline, "groups not dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.metric("pglive_subscriptions").await, 0);
    server.stop().await;
}

async fn burst_of_writes_coalesces(mode: CaptureMode) {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 200) g")
        .await;
    let server = TestServer::start_in(&db, mode).await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut c = Client::connect(&server).await;
        c.subscribe("all", json!({"table":"items"})).await;
        clients.push(c);
    }
    for c in &mut clients {
        assert!(c.until(|c| c.rows("all").len() == 200).await);
    }
    let before = server.metric("pglive_refreshes_total").await;
    // 2,000 single-row transactions from 4 connections, as fast as they go.
    let mut writers = Vec::new();
    for w in 0..4 {
        let url = db.url.clone();
        writers.push(tokio::spawn(async move {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            for i in 0..500 {
                let id = 1 + (w * 500 + i) % 200;
                conn.batch_execute(&format!(
                    "UPDATE items SET name = 'w{w}-{i}' WHERE id = {id}"
                ))
                .await
                .unwrap();
            }
        }));
    }
    // Clients read concurrently, as real ones do.
    let want_final = async {
        for w in writers {
            w.await.unwrap();
        }
        fresh::<Item>(&db, "SELECT * FROM items ORDER BY id").await
    };
    let readers = async {
        for c in &mut clients {
            c.drain(Duration::from_millis(2)).await;
        }
    };
    let (want, ()) = tokio::join!(want_final, readers);
    for c in &mut clients {
        assert!(c.until(|c| c.rows("all") == want).await, "client diverged");
    }
    let refreshes = server.metric("pglive_refreshes_total").await - before;
    println!("burst: 2000 writes -> {refreshes} refresh queries for 100 subscribers");
    assert!(
        refreshes < 2000,
        "refreshes {refreshes} must be fewer than writes"
    );
    server.stop().await;
}

/// Many filtered subscriptions on one table: a write costs one keyed read in
/// total (not one per group), and only the groups it concerns hear of it.
async fn one_read_per_write_across_filtered_groups(mode: CaptureMode) {
    let db = TestDb::new().await;
    db.exec("INSERT INTO tasks (title, assignee) SELECT 't' || g, 'user-' || (g % 40) FROM generate_series(1, 200) g").await;
    let server = TestServer::start_in(&db, mode).await;
    let mut clients = Vec::new();
    for i in 0..40 {
        let mut c = Client::connect(&server).await;
        c.subscribe(
            "mine",
            json!({"table":"tasks","filter":{"assignee_eq":format!("user-{i}")}}),
        )
        .await;
        clients.push(c);
    }
    for c in &mut clients {
        assert!(c.until(|c| c.rows("mine").len() == 5).await);
    }
    assert_eq!(server.metric("pglive_groups").await, 40);
    let before = server.metric("pglive_refreshes_total").await;
    // Task 1 belongs to user-1; it moves to user-2.
    db.exec("UPDATE tasks SET assignee = 'user-2' WHERE id = 1")
        .await;
    assert!(clients[1].until(|c| c.rows("mine").len() == 4).await);
    assert!(clients[2].until(|c| c.rows("mine").len() == 6).await);
    for (i, c) in clients.iter_mut().enumerate() {
        c.drain(Duration::from_millis(100)).await;
        let diffs = c.subs["mine"].diffs;
        assert_eq!(
            diffs,
            u64::from(i == 1 || i == 2),
            "client {i} got {diffs} diffs"
        );
    }
    assert_eq!(
        server.metric("pglive_refreshes_total").await - before,
        1,
        "one read for 40 groups"
    );
    server.stop().await;
}

/// `count: true`: the snapshot and then diffs carry how many rows pass the
/// filter, whatever the limit. A limited window that is not its whole
/// result is counted by `count(*)` after each round with changes (a diff of
/// the count alone when no row in the window changed); a window that holds
/// its whole result counts itself, with no extra read.
async fn live_counts_follow_writes_past_the_limit(mode: CaptureMode) {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 30) g")
        .await;
    let server = TestServer::start_in(&db, mode).await;
    let mut c = Client::connect(&server).await;
    let limited = json!({"table":"items","filter":{"name_contains":"n"},"order":{"by":"id"},"limit":5,"count":true});
    c.subscribe("top", limited).await;
    let whole = json!({"table":"items","filter":{"name_contains":"z"},"count":true});
    c.subscribe("z", whole).await;
    assert!(c.until(|c| c.has("top") && c.has("z")).await);
    assert_eq!((c.len("top"), c.count("top")), (5, Some(30)));
    assert_eq!((c.len("z"), c.count("z")), (0, Some(0)));
    // Without `count`, nothing is counted and no count is sent.
    c.subscribe("plain", json!({"table":"items","limit":5}))
        .await;
    assert!(c.until(|c| c.has("plain")).await);
    assert_eq!(c.count("plain"), None);

    // A row past the limit: the rows stay, the count moves.
    db.exec("INSERT INTO items (name) VALUES ('n31')").await;
    let diff = loop {
        match c.next(pglive_testkit::TIMEOUT).await.expect("a diff") {
            ServerMessage::Diff(d) if d.id.0 == "top" => break d,
            _ => {}
        }
    };
    assert_eq!(diff.count, Some(31));
    let TableChanges::Items { upserts, deletes } = &diff.changes else {
        panic!("{diff:?}");
    };
    assert!(upserts.is_empty() && deletes.is_empty(), "{diff:?}");

    // A row leaving the window, and rows that do not pass the filter.
    let counted = server.metric("pglive_counts_total").await;
    db.exec("DELETE FROM items WHERE id = 2; INSERT INTO items (name) VALUES ('zz'), ('z')")
        .await;
    let want = fresh::<Item>(
        &db,
        "SELECT * FROM items WHERE strpos(name, 'n') > 0 ORDER BY id LIMIT 5",
    )
    .await;
    assert!(
        c.until(|c| c.rows("top") == want && c.count("top") == Some(30) && c.count("z") == Some(2))
            .await,
        "{:?} {:?} {:?}",
        c.rows("top"),
        c.count("top"),
        c.count("z")
    );
    assert_eq!(c.len("z"), 2);
    let reads = server.metric("pglive_counts_total").await - counted;
    assert!(
        (1..=2).contains(&reads),
        "only the limited group counts, once per round: {reads}"
    );
    server.stop().await;
}
