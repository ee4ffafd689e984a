//! The live engine end to end: real PostgreSQL, a real server, real WebSockets.

mod common;

use std::time::Duration;

use common::{Client, TestDb, TestServer, canon, fresh};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_diffs() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 10) g").await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("all", json!({"table":"items"})).await;
    assert!(c.until(|c| c.rows("all").len() == 10).await);
    db.exec("INSERT INTO items (name) VALUES ('c'); UPDATE items SET name = 'B' WHERE id = 2; DELETE FROM items WHERE id = 1").await;
    let want = fresh(&db, "SELECT * FROM items ORDER BY id").await;
    assert!(c.until(|c| canon(c.rows("all")) == canon(&want)).await, "{:?}", c.rows("all"));
    assert!(c.subs["all"].diffs >= 1);
    server.stop().await;
}
