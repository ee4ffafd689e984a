//! Failure modes: slow clients, a lost capture connection (in both capture
//! modes), bad input, shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use futures_util::StreamExt;
use pglive_schema::Item;
use pglive_schema::wire::{DelayReason, LiveState};
use pglive_server::config::Config;
use pglive_testkit::{CaptureMode, Client, TestDb, TestServer, fresh, fresh_json, in_both_modes};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Connects with a tiny receive buffer so that not reading backs up quickly.
async fn slow_client(server: &TestServer) -> pglive_testkit::Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        server.ws_url(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_resynced_and_never_blocks_others() {
    let db = TestDb::new().await;
    let long = "x".repeat(190);
    db.exec(&format!(
        "INSERT INTO items (name) SELECT '{long}' || g FROM generate_series(1, 200) g"
    ))
    .await;
    let mut config = Config::new(db.url.clone());
    config.outbox_frames = 8;
    config.stall_timeout_secs = 60;
    let server = TestServer::with_config(config).await;

    let mut slow = slow_client(&server).await;
    slow.send_sub().await;
    let mut fast = Client::connect(&server).await;
    fast.subscribe("all", json!({"table":"items"})).await;
    assert!(fast.until(|c| c.rows("all").len() == 200).await);

    let rss_before = rss_kib();
    // 1,000 changes of 20 long rows each (~6 kB per diff): far more than the
    // socket buffers hold, so the slow client's outbox fills.
    let mut conn = db.conn().await;
    for round in 0..100 {
        churn(&mut conn, &long, round * 10..(round + 1) * 10).await;
        fast.drain(Duration::from_millis(1)).await;
    }
    let want = fresh::<Item>(&db, "SELECT * FROM items ORDER BY id").await;
    assert!(
        fast.until(|c| c.rows("all") == want).await,
        "the fast client kept up"
    );
    let dropped = server.metric("pglive_frames_dropped_total").await;
    assert!(
        dropped > 0,
        "the slow client's outbox never filled; the test proves nothing"
    );
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    println!("slow client: {dropped} frames dropped, RSS grew {grown_mib} MiB");
    assert!(grown_mib < 100, "memory grew by {grown_mib} MiB");

    // Reading again, the slow client converges through a fresh snapshot.
    let mut state = Client::over(slow);
    assert!(
        state.until(|c| c.rows("s") == want).await,
        "slow client converged"
    );
    assert!(
        state.subs["s"].snapshots >= 2,
        "it was resynced with a snapshot"
    );
    assert!(server.metric("pglive_lagging_resyncs_total").await >= 1);
    server.stop().await;
}

/// One change per `i`: 20 of the 200 long-named items renamed (~6 kB per diff).
async fn churn(
    conn: &mut diesel_async::AsyncPgConnection,
    long: &str,
    changes: std::ops::Range<usize>,
) {
    for i in changes {
        let lo = (i * 20) % 200 + 1;
        let hi = lo + 19;
        conn.batch_execute(&format!(
            "UPDATE items SET name = '{long}{i}-' || id WHERE id BETWEEN {lo} AND {hi}"
        ))
        .await
        .unwrap();
    }
}

trait SendSub {
    async fn send_sub(&mut self);
}

impl SendSub for pglive_testkit::Ws {
    async fn send_sub(&mut self) {
        use futures_util::SinkExt;
        let msg = json!({"type":"subscribe","id":"s","query":{"table":"items"}});
        self.send(Message::text(msg.to_string())).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_is_closed() {
    let db = TestDb::new().await;
    let long = "y".repeat(190);
    db.exec(&format!(
        "INSERT INTO items (name) SELECT '{long}' || g FROM generate_series(1, 200) g"
    ))
    .await;
    let mut config = Config::new(db.url.clone());
    config.outbox_frames = 4;
    config.stall_timeout_secs = 1;
    let server = TestServer::with_config(config).await;
    let mut slow = slow_client(&server).await;
    slow.send_sub().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Enough data to fill the kernel's socket buffers on both ends.
    let mut conn = db.conn().await;
    churn(&mut conn, &long, 0..2500).await;
    // The stuck client is closed…
    server
        .wait_metric_at_least("pglive_slow_clients_closed_total", 1)
        .await;
    // …and its subscription is gone with it.
    server.wait_metric("pglive_subscriptions", 0).await;
    drop(slow);
    server.stop().await;
}

in_both_modes!(capture_loss_is_survived);

/// Capture's connection is killed during writes (the listener's backend,
/// or WAL capture's walsender): it reconnects, resyncs, and every client
/// converges.
async fn capture_loss_is_survived(mode: CaptureMode) {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 50) g")
        .await;
    let server = TestServer::start_in(&db, mode).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = Client::connect(&server).await;
        c.subscribe(
            "a",
            json!({"table":"items","order":{"by":"name","dir":"desc"}}),
        )
        .await;
        clients.push(c);
    }
    for c in &mut clients {
        assert!(c.until(|c| c.rows("a").len() == 50).await);
    }
    let writer = {
        let url = db.url.clone();
        tokio::spawn(async move {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            for i in 0..200 {
                conn.batch_execute(&format!(
                    "UPDATE items SET name = 'v{i}' WHERE id = {}",
                    1 + i % 50
                ))
                .await
                .unwrap();
                conn.batch_execute(&format!("INSERT INTO items (name) VALUES ('i{i}')"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // WAL capture's control connection has the same name; the walsender
    // is the one to kill.
    let killed = fresh_json(&db, "SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity WHERE application_name IN ('pglive_listener', 'pglive_wal') AND datname = current_database() AND (backend_type = 'walsender' OR application_name = 'pglive_listener')").await;
    assert_eq!(
        killed,
        vec![json!({"k": true})],
        "capture's backend was found and killed"
    );
    writer.await.unwrap();
    let want = fresh::<Item>(&db, "SELECT * FROM items ORDER BY name DESC, id DESC").await;
    for c in &mut clients {
        assert!(
            c.until(|c| c.rows("a") == want).await,
            "client converged after the listener was killed"
        );
        // Clients were told changes were delayed, then live again.
        let states: Vec<String> = c
            .statuses
            .iter()
            .map(|s| serde_json::to_value(s).unwrap().to_string())
            .collect();
        assert!(
            c.until(
                |c| c.statuses.len() >= 3 && c.statuses.last().is_some_and(|s| s.reason.is_none())
            )
            .await,
            "{states:?}"
        );
        assert!(
            c.statuses
                .iter()
                .any(|s| s.reason == Some(pglive_schema::wire::DelayReason::CaptureDown)),
            "{states:?}"
        );
    }
    assert!(server.metric("pglive_capture_reconnects_total").await >= 1);
    assert_eq!(server.get("/readyz").await.0, 200);
    server.stop().await;
}

async fn expect_error(c: &mut Client, code: &str) -> serde_json::Value {
    // The next message that is not the connection's status.
    let msg = loop {
        let msg = c
            .next(pglive_testkit::TIMEOUT)
            .await
            .expect("an error frame");
        if !matches!(msg, pglive_schema::ServerMessage::Status(_)) {
            break msg;
        }
    };
    let msg = serde_json::to_value(msg).unwrap();
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(msg["code"], code, "{msg}");
    assert!(msg["message"].as_str().is_some_and(|m| !m.is_empty()));
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.max_subscriptions = 3;
    config.max_frame_bytes = 2048;
    config.max_query_limit = 100;
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;

    c.send_raw(Message::text("{not json")).await;
    expect_error(&mut c, "bad_frame").await;
    c.send_raw(Message::text("[1,2]")).await;
    expect_error(&mut c, "bad_frame").await;
    c.send(json!({"type":"subscribe","query":{"table":"items"}}))
        .await;
    expect_error(&mut c, "bad_frame").await;
    c.send(json!({"type":"subscribe","id":"","query":{"table":"items"}}))
        .await;
    expect_error(&mut c, "invalid_id").await;
    c.send(json!({"type":"hello","id":"a"})).await;
    let e = expect_error(&mut c, "bad_frame").await;
    assert_eq!(e["id"], "a");
    c.send(json!({"type":"subscribe","id":"a"})).await;
    expect_error(&mut c, "bad_frame").await;
    c.send(json!({"type":"subscribe","id":"a","query":{"table":"secrets"}}))
        .await;
    let e = expect_error(&mut c, "unknown_table").await;
    assert!(
        e["message"].as_str().unwrap().contains("items"),
        "lists the live tables"
    );
    c.send(json!({"type":"subscribe","id":"a","query":{"table":"items","filter":{"sql":"1=1"}}}))
        .await;
    expect_error(&mut c, "invalid_query").await;
    c.send(
        json!({"type":"subscribe","id":"a","query":{"table":"tasks","filter":{"status_in":["lost"]}}}),
    )
    .await;
    expect_error(&mut c, "invalid_query").await;
    c.send(json!({"type":"subscribe","id":"a","query":{"table":"items","limit":101}}))
        .await;
    expect_error(&mut c, "invalid_query").await;
    c.send(
        json!({"type":"subscribe","id":"a","query":{"table":"items","order":{"by":"password"}}}),
    )
    .await;
    expect_error(&mut c, "invalid_query").await;
    c.send(json!({"type":"unsubscribe","id":"nope"})).await;
    expect_error(&mut c, "unknown_id").await;
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    expect_error(&mut c, "binary_frame").await;
    c.send_raw(Message::text(format!(
        "{{\"type\":\"subscribe\",\"id\":\"{}\"}}",
        "z".repeat(3000)
    )))
    .await;
    expect_error(&mut c, "frame_too_large").await;

    // The connection still works, and the limits hold.
    c.subscribe("a", json!({"table":"items"})).await;
    let first = c.next(pglive_testkit::TIMEOUT).await.unwrap();
    assert!(
        matches!(first, pglive_schema::ServerMessage::Snapshot(_)),
        "{first:?}"
    );
    c.subscribe("a", json!({"table":"items"})).await;
    expect_error(&mut c, "duplicate_id").await;
    c.subscribe("b", json!({"table":"items","limit":5})).await;
    c.subscribe("c", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.subs.len() == 3).await);
    c.subscribe("d", json!({"table":"tasks"})).await;
    expect_error(&mut c, "too_many_subscriptions").await;

    // Above the hard cap the server closes with 1009 instead of buffering.
    // The server closes while the 2 MiB are still arriving, so the kernel
    // may answer the rest of the write with a reset: that, too, is the
    // server refusing to buffer it, and the close frame is then lost with
    // the connection.
    let sent =
        futures_util::SinkExt::send(&mut c.ws, Message::text("x".repeat(2 * 1024 * 1024))).await;
    let reset = matches!(
        &sent,
        Err(tokio_tungstenite::tungstenite::Error::Io(e))
            if e.kind() == std::io::ErrorKind::ConnectionReset
    );
    assert!(sent.is_ok() || reset, "{sent:?}");
    let mut saw_close = reset;
    while let Ok(Some(msg)) = tokio::time::timeout(pglive_testkit::TIMEOUT, c.ws.next()).await {
        match msg {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1009);
                saw_close = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(saw_close, "closed with 1009");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_is_rate_limited() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.messages_per_second = 5;
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;
    for i in 0..40 {
        c.send(json!({"type":"unsubscribe","id":format!("n{i}")}))
            .await;
    }
    let mut rate_limited = 0;
    while let Some(msg) = c.next(Duration::from_millis(500)).await {
        if matches!(msg, pglive_schema::ServerMessage::Error(e) if e.code == pglive_schema::ErrorCode::RateLimited)
        {
            rate_limited += 1;
        }
    }
    assert_eq!(rate_limited, 1, "told once, not once per message");
    assert!(c.errors.len() < 40, "excess messages were dropped");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_with_1001() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("a", json!({"table":"items"})).await;
    assert!(c.until(|c| c.subs.contains_key("a")).await);
    let stop = tokio::spawn(server.stop());
    let mut code = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(pglive_testkit::TIMEOUT, c.ws.next()).await {
        if let Message::Close(frame) = msg {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1001));
    stop.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_the_row_cap_are_refused() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 10) g")
        .await;
    let mut config = Config::new(db.url.clone());
    config.max_rows = 5;
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("a", json!({"table":"items"})).await;
    let e = expect_error(&mut c, "result_too_large").await;
    assert_eq!(e["id"], "a");
    // The id is free again, and a smaller query works.
    c.subscribe("a", json!({"table":"items","limit":3})).await;
    assert!(c.until(|c| c.rows("a").len() == 3).await);
    assert_eq!(server.metric("pglive_subscriptions").await, 1);
    server.stop().await;
}

/// A query the database keeps refusing: its subscribers are told
/// `query_failed` (with a reason class, not SQL) after a bounded number of
/// tries, the server stops retrying it, and other tables are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_the_database_keeps_refusing_ends_with_query_failed() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) VALUES ('a'); INSERT INTO tasks (title) VALUES ('t')")
        .await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("items", json!({"table":"items"})).await;
    c.subscribe("tasks", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.has("items") && c.has("tasks")).await);
    // A column the server reads disappears under it: every read of items fails.
    db.exec(
        "ALTER TABLE items RENAME COLUMN name TO label; INSERT INTO items (label) VALUES ('b')",
    )
    .await;
    let e = c.error("query_failed").await;
    assert_eq!(e.id.map(|id| id.0).as_deref(), Some("items"));
    // Before it gave up, the subscription (only it) was told it is delayed.
    let delayed: Vec<_> = c.statuses.iter().filter(|s| s.id.is_some()).collect();
    assert_eq!(delayed.len(), 1, "{delayed:?}");
    assert_eq!(
        delayed[0].id.as_ref().map(|id| id.0.as_str()),
        Some("items")
    );
    assert_eq!(delayed[0].reason, Some(DelayReason::QueryFailing));
    assert!(
        !e.message.contains("label") && !e.message.contains("column"),
        "no database text reaches the client: {}",
        e.message
    );
    assert_eq!(server.metric("pglive_query_failures_total").await, 1);
    // Other tables keep working.
    db.exec("INSERT INTO tasks (title) VALUES ('u')").await;
    assert!(c.until(|c| c.len("tasks") == 2).await);
    // The failed query is not retried any more.
    let errors = server.metric("pglive_refresh_errors_total").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.metric("pglive_refresh_errors_total").await, errors);
    // The id is free again; once the table is fixed the query works.
    db.exec("ALTER TABLE items RENAME COLUMN label TO name")
        .await;
    c.subscribe("items", json!({"table":"items"})).await;
    assert!(c.until(|c| c.len("items") == 2).await);
    server.stop().await;
}

/// A query that fails for a while and then works again: its subscription is
/// told it is delayed, then live, and converges; the others never hear of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_fails_for_a_while_is_delayed_then_live_again() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) VALUES ('a'); INSERT INTO tasks (title) VALUES ('t')")
        .await;
    let mut config = Config::new(db.url.clone());
    config.max_query_failures = 1_000;
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("items", json!({"table":"items"})).await;
    c.subscribe("tasks", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.has("items") && c.has("tasks")).await);
    let of = |c: &Client, id: &str| -> Vec<(LiveState, Option<DelayReason>)> {
        c.statuses
            .iter()
            .filter(|s| s.id.as_ref().is_some_and(|s| s.0 == id))
            .map(|s| (s.state, s.reason))
            .collect()
    };
    db.exec(
        "ALTER TABLE items RENAME COLUMN name TO label; INSERT INTO items (label) VALUES ('b')",
    )
    .await;
    assert!(
        c.until(|c| of(c, "items") == [(LiveState::Delayed, Some(DelayReason::QueryFailing))])
            .await
    );
    db.exec("ALTER TABLE items RENAME COLUMN label TO name")
        .await;
    assert!(
        c.until(|c| of(c, "items").last() == Some(&(LiveState::Live, None)))
            .await
    );
    assert!(c.until(|c| c.len("items") == 2).await, "converged");
    assert!(
        of(&c, "tasks").is_empty(),
        "only the failing query was delayed"
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    server.stop().await;
}

/// One row the server cannot decode (a date past what it can represent) is
/// left out and counted; it never stalls its table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_decoded_is_skipped_not_fatal() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO tasks (title) SELECT 't' || g FROM generate_series(1, 5) g")
        .await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("all", json!({"table":"tasks"})).await;
    assert!(c.until(|c| c.len("all") == 5).await);
    db.exec("UPDATE tasks SET due_date = '300000-01-01' WHERE id = 5")
        .await;
    assert!(
        c.until(|c| c.len("all") == 4).await,
        "the undecodable row left the live result"
    );
    db.exec("INSERT INTO tasks (title) VALUES ('later')").await;
    assert!(
        c.until(|c| c.rows("all").iter().any(|r| r["title"] == "later"))
            .await,
        "the table kept going"
    );
    assert!(server.metric("pglive_rows_skipped_total").await >= 1);
    // A new subscription runs the full query, which skips the row too.
    let mut d = Client::connect(&server).await;
    d.subscribe("all", json!({"table":"tasks"})).await;
    assert!(d.until(|c| c.len("all") == 5).await);
    assert!(c.errors.is_empty() && d.errors.is_empty());
    server.stop().await;
}
