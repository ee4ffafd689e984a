//! Resume from a version: a client that reconnects says what it has, and
//! gets what it missed from the group's history, or a snapshot when the
//! history cannot say (another epoch, too long ago, a version it never had).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use pglive_schema::Item;
use pglive_server::config::Config;
use pglive_testkit::{Client, TestDb, TestServer, fresh};
use serde_json::{Value, json};

fn all() -> Value {
    json!({"table":"items","order":{"by":"name"}})
}

async fn want(db: &TestDb) -> Vec<Value> {
    fresh::<Item>(db, "SELECT * FROM items ORDER BY name COLLATE \"C\", id").await
}

/// A client that keeps `a` subscribed and another that leaves, as if the
/// network blinked, keeping its rows.
async fn away(server: &TestServer) -> (Client, Client) {
    let mut stay = Client::connect(server).await;
    stay.subscribe("a", all()).await;
    let mut gone = Client::connect(server).await;
    gone.subscribe("a", all()).await;
    assert!(stay.until(|c| c.has("a")).await);
    assert!(gone.until(|c| c.has("a")).await);
    (stay, gone)
}

/// A new connection carrying the rows the old one had.
async fn back(server: &TestServer, mut old: Client) -> Client {
    let subs = std::mem::take(&mut old.subs);
    drop(old);
    let mut c = Client::connect(server).await;
    c.subs = subs;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_resumes_with_the_diffs_it_missed_and_no_query() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 50) g")
        .await;
    let server = TestServer::start(&db).await;
    let (mut stay, gone) = away(&server).await;
    let queries = || async {
        server.metric("pglive_refreshes_total").await
            - server.metric("pglive_refreshes_keyed_total").await
    };
    let full_before = queries().await;
    // Writes while one client is away (the other keeps the group alive).
    for i in 0..5 {
        db.exec(&format!(
            "UPDATE items SET name = 'x{i}' WHERE id = {}",
            i + 1
        ))
        .await;
        db.exec(&format!("INSERT INTO items (name) VALUES ('new {i}')"))
            .await;
    }
    db.exec("DELETE FROM items WHERE id BETWEEN 20 AND 22")
        .await;
    let target = want(&db).await;
    assert!(stay.until(|c| c.rows("a") == target).await);
    let mut c = back(&server, gone).await;
    c.resume("a", all()).await;
    assert!(
        c.until(|c| c.rows("a") == target).await,
        "converged row for row"
    );
    assert_eq!(c.subs["a"].resumes, 1, "it was a resume");
    assert_eq!(c.subs["a"].snapshots, 1, "no second snapshot");
    assert!(c.subs["a"].diffs >= 1);
    assert_eq!(queries().await, full_before, "no query ran for the resume");
    assert_eq!(server.metric("pglive_resumes_total").await, 1);
    // And it stays live.
    db.exec("INSERT INTO items (name) VALUES ('after')").await;
    let target = want(&db).await;
    assert!(c.until(|c| c.rows("a") == target).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_history_cannot_say_a_snapshot_comes() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 20) g")
        .await;
    let mut config = Config::new(db.url.clone());
    config.group_linger_secs = 0;
    config.history_diffs = 3;
    let server = TestServer::with_config(config).await;

    // Too long away: more changes than the history keeps.
    let (mut stay, gone) = away(&server).await;
    for i in 0..10 {
        db.exec(&format!(
            "UPDATE items SET name = 'y{i}' WHERE id = {}",
            i + 1
        ))
        .await;
        let target = want(&db).await;
        assert!(stay.until(|c| c.rows("a") == target).await);
    }
    let mut c = back(&server, gone).await;
    c.resume("a", all()).await;
    let target = want(&db).await;
    assert!(
        c.until(|c| c.subs["a"].snapshots == 2 && c.rows("a") == target)
            .await
    );
    assert_eq!(c.subs["a"].resumes, 0);

    // A version newer than the group's (forged or confused): a snapshot,
    // never a wrong result.
    let mut f = back(&server, c).await;
    f.subs.get_mut("a").unwrap().version += 1000;
    f.resume("a", all()).await;
    assert!(f.until(|c| c.subs["a"].snapshots == 3).await);
    assert_eq!(f.rows("a"), target);
    // Another epoch: a snapshot.
    let mut e = back(&server, f).await;
    e.subs.get_mut("a").unwrap().epoch = "0123456789abcdef.0".into();
    e.resume("a", all()).await;
    assert!(e.until(|c| c.subs["a"].snapshots == 4).await);
    assert_eq!(server.metric("pglive_resume_misses_total").await, 3);
    drop(stay);

    // The group is gone (everyone left): a new group, a new epoch.
    let mut g = back(&server, e).await;
    server.wait_metric("pglive_groups", 0).await;
    g.resume("a", all()).await;
    assert!(g.until(|c| c.subs["a"].snapshots == 5).await);
    assert_eq!(g.rows("a"), target);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_never_takes_an_old_version_for_its_own() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 5) g")
        .await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("a", all()).await;
    assert!(c.until(|c| c.has("a")).await);
    let old_epoch = c.subs["a"].epoch.clone();
    server.stop().await;
    db.exec("DELETE FROM items WHERE id = 1").await;
    let server = TestServer::start(&db).await;
    let mut c = back(&server, c).await;
    c.resume("a", all()).await;
    let target = want(&db).await;
    assert!(
        c.until(|c| c.subs["a"].snapshots == 2 && c.rows("a") == target)
            .await
    );
    assert_ne!(c.subs["a"].epoch, old_epoch);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_and_unsubscribing_quickly_converges() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 30) g")
        .await;
    let server = TestServer::start(&db).await;
    let (mut stay, gone) = away(&server).await;
    let mut c = back(&server, gone).await;
    for i in 0..20 {
        db.exec(&format!(
            "UPDATE items SET name = 'z{i}' WHERE id = {}",
            i % 30 + 1
        ))
        .await;
        c.resume("a", all()).await;
        c.unsubscribe("a").await;
        // What it has is kept across the churn, as a client keeps its cache.
        c.drain(Duration::from_millis(2)).await;
    }
    c.resume("a", all()).await;
    let target = want(&db).await;
    assert!(stay.until(|c| c.rows("a") == target).await);
    assert!(c.until(|c| c.rows("a") == target).await);
    assert!(
        c.errors
            .iter()
            .all(|e| serde_json::to_value(e.code).unwrap() == "unknown_id"
                || serde_json::to_value(e.code).unwrap() == "duplicate_id"),
        "{:?}",
        c.errors
    );
    server.stop().await;
}

/// Everyone leaves at once (a recycled load balancer, a server's network
/// blinking): the group lingers, stays current while nobody is there, and
/// the clients that come back resume from it with no query. Once the linger
/// is over with nobody back, the group ends and its budget is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_everyone_left_lingers_for_those_who_come_back() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 30) g")
        .await;
    let mut config = Config::new(db.url.clone());
    config.group_linger_secs = 2;
    config.max_groups = 2;
    let server = TestServer::with_config(config).await;
    let queries = || async {
        server.metric("pglive_refreshes_total").await
            - server.metric("pglive_refreshes_keyed_total").await
    };
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&server).await;
        c.subscribe("a", all()).await;
        assert!(c.until(|c| c.has("a")).await);
        clients.push(c);
    }
    let full_before = queries().await;
    // All leave; writes land while nobody is subscribed.
    let subs: Vec<_> = clients
        .into_iter()
        .map(|mut c| std::mem::take(&mut c.subs))
        .collect();
    server.wait_metric("pglive_subscriptions", 0).await;
    assert_eq!(server.metric("pglive_groups").await, 1, "it lingers");
    db.exec("UPDATE items SET name = 'moved' WHERE id = 3")
        .await;
    db.exec("INSERT INTO items (name) VALUES ('while away')")
        .await;
    let target = want(&db).await;
    let mut back_again = Vec::new();
    for subs in subs {
        let mut c = Client::connect(&server).await;
        c.subs = subs;
        c.resume("a", all()).await;
        back_again.push(c);
    }
    for c in &mut back_again {
        assert!(c.until(|c| c.rows("a") == target).await, "converged");
        assert_eq!(c.subs["a"].resumes, 1, "a resume, not a snapshot");
        assert_eq!(c.subs["a"].snapshots, 1);
    }
    assert_eq!(queries().await, full_before, "no query ran for the storm");

    // A full budget makes a lingering group give way to a new query.
    drop(back_again);
    server.wait_metric("pglive_subscriptions", 0).await;
    let mut other = Client::connect(&server).await;
    other
        .subscribe("b", json!({"table":"items","order":{"by":"id"}}))
        .await;
    other
        .subscribe("c", json!({"table":"items","order":{"by":"created_at"}}))
        .await;
    assert!(other.until(|c| c.has("b") && c.has("c")).await);
    assert!(other.errors.is_empty(), "{:?}", other.errors);
    // Nobody comes back to these: once the linger is over, they end.
    drop(other);
    server.wait_metric("pglive_groups", 0).await;
    server.stop().await;
}

/// Shutdown ends lingering groups at once: nobody is left to leave them,
/// and the server must not wait out its 5 s drain deadline for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_lingering_groups() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.group_linger_secs = 600;
    let server = TestServer::with_config(config).await;
    let mut client = Client::connect(&server).await;
    client
        .subscribe("a", json!({"table":"items","order":{"by":"id"}}))
        .await;
    assert!(client.until(|c| c.has("a")).await);
    drop(client);
    server.wait_metric("pglive_connections", 0).await;
    assert_eq!(server.metric("pglive_groups").await, 1, "it lingers");
    tokio::time::timeout(Duration::from_secs(4), server.stop())
        .await
        .expect("the server stops before the engine's drain deadline");
}
