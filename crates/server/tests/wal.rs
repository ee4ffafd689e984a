//! WAL capture (`--capture wal`) beyond the suites both modes share: the
//! triggers detached and the publication in step, the slot's lag in
//! `/metrics` and `/readyz`, a pglive killed during writes resuming from
//! its slot with no change lost, a dropped slot, `pglive slot drop`, a large
//! transaction, PostgreSQL restarting under both modes, and clear start-up
//! errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::Path;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use pglive_schema::Item;
use pglive_server::config::Config;
use pglive_testkit::{
    CaptureMode, Client, PrivateCluster, ServerProcess, TestDb, TestServer, config_in, fresh,
    fresh_at, fresh_json, in_both_modes, run_command, start_error,
};
use serde_json::{Value, json};

const LOOPBACK: &str = "127.0.0.1:0";

fn pglive() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pglive"))
}

async fn slot_of(db: &TestDb) -> Vec<Value> {
    fresh_json(
        db,
        "SELECT slot_name, plugin, active, confirmed_flush_lsn::text AS confirmed \
           FROM pg_replication_slots WHERE database = current_database()",
    )
    .await
}

/// Writers never fire pglive's triggers in WAL mode; the publication lists
/// every watched table with its key column only; `/metrics` and `/readyz`
/// show the slot's lag. A NOTIFY server is refused while a WAL server is
/// connected, and switches the database back once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_mode_detaches_triggers_and_keeps_the_publication() {
    let db = TestDb::new().await;
    let triggers = "SELECT count(*)::int AS n FROM pg_trigger WHERE tgname IN ('pglive_insert', 'pglive_update', 'pglive_delete', 'pglive_truncate')";
    assert_eq!(fresh_json(&db, triggers).await, vec![json!({"n": 12})]);
    let server = TestServer::start_in(&db, CaptureMode::Wal).await;
    assert_eq!(fresh_json(&db, triggers).await, vec![json!({"n": 0})]);
    assert_eq!(
        fresh_json(
            &db,
            "SELECT tablename, attnames FROM pg_publication_tables WHERE pubname = 'pglive' ORDER BY tablename"
        )
        .await,
        vec![
            json!({"tablename": "comments", "attnames": ["id"]}),
            json!({"tablename": "items", "attnames": ["id"]}),
            json!({"tablename": "tasks", "attnames": ["id"]}),
        ]
    );
    let slot = slot_of(&db).await;
    assert_eq!(slot.len(), 1, "{slot:?}");
    assert_eq!(slot[0]["slot_name"], json!(format!("pglive_{}", db.name)));
    assert_eq!(slot[0]["plugin"], "pgoutput");
    assert_eq!(slot[0]["active"], true);

    // A table watched now joins the publication, not the triggers.
    db.exec("CREATE TABLE extra (id bigint PRIMARY KEY, v text); SELECT pglive_watch('extra')")
        .await;
    assert_eq!(
        fresh_json(
            &db,
            "SELECT attnames FROM pg_publication_tables WHERE tablename = 'extra'"
        )
        .await,
        vec![json!({"attnames": ["id"]})]
    );
    assert_eq!(fresh_json(&db, triggers).await, vec![json!({"n": 0})]);

    // The lag is measured every 5 s.
    let mut c = Client::connect(&server).await;
    c.subscribe("a", json!({"table":"items"})).await;
    // The snapshot comes first, so that the rows below can only arrive
    // through the capture (which counts their transaction before it hands
    // them on), not in a snapshot read after their commit.
    assert!(c.until(|c| c.has("a")).await);
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 20) g")
        .await;
    assert!(c.until(|c| c.len("a") == 20).await);
    let deadline = tokio::time::Instant::now() + pglive_testkit::TIMEOUT;
    let ready = loop {
        let (code, body) = server.get("/readyz").await;
        assert_eq!(code, 200);
        if body.contains("lag") {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        ready.starts_with(&format!(
            "ready: capture wal, slot pglive_{}, lag ",
            db.name
        )),
        "{ready}"
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("\npglive_capture_slot_lag_bytes "),
        "{metrics}"
    );
    assert!(server.metric("pglive_capture_transactions_total").await >= 1);

    // A NOTIFY server would hear nothing: it is refused, clearly.
    let err = start_error(config_in(&db, CaptureMode::Notify), LOOPBACK)
        .await
        .expect("refused");
    assert!(err.contains("same --capture"), "{err}");
    drop(c);
    server.stop().await;

    // Once the WAL server is gone, a NOTIFY server takes the database back.
    let server = TestServer::start_in(&db, CaptureMode::Notify).await;
    assert_eq!(fresh_json(&db, triggers).await, vec![json!({"n": 16})]);
    assert_eq!(
        fresh_json(&db, "SELECT count(*)::int AS n FROM pg_publication").await,
        vec![json!({"n": 0})]
    );
    assert_eq!(server.get("/readyz").await.1, "ready: capture notify\n");
    // While it listens, a WAL server is refused in turn.
    let err = start_error(config_in(&db, CaptureMode::Wal), LOOPBACK)
        .await
        .expect("refused");
    assert!(err.contains("same --capture"), "{err}");
    server.stop().await;
}

/// Writes `n` single-row transactions (an update and an insert each) to
/// `url`, retrying a write that fails (the database restarting).
async fn write(url: String, tag: &'static str, n: usize, pause: Duration) {
    let mut conn: Option<AsyncPgConnection> = None;
    let mut i = 0;
    while i < n {
        if conn.is_none() {
            conn = AsyncPgConnection::establish(&url).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let sql = format!(
            "UPDATE items SET name = '{tag}{i}' WHERE id = {}; INSERT INTO items (name) VALUES ('{tag}-new{i}')",
            1 + i % 50
        );
        match c.batch_execute(&sql).await {
            Ok(()) => {
                i += 1;
                tokio::time::sleep(pause).await;
            }
            Err(_) => {
                conn = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// pglive is killed (SIGKILL: no shutdown, no last confirmation) while
/// writes go on; the slot keeps what it had not confirmed. Started again,
/// it replays every transaction written meanwhile from the slot, and
/// clients converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pglive_resumes_from_its_slot() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 50) g")
        .await;
    let first = ServerProcess::start(pglive(), &db.url, &["--capture", "wal"]).await;
    let mut c = Client::connect_url(&first.server.ws_url()).await;
    c.subscribe("a", json!({"table":"items","order":{"by":"name"}}))
        .await;
    assert!(c.until(|c| c.len("a") == 50).await);
    let writer = tokio::spawn(write(db.url.clone(), "k", 200, Duration::from_millis(5)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill().await;
    drop(c);
    let before = fresh_json(&db, "SELECT pg_current_wal_lsn()::text AS at").await;
    // Writes while no pglive runs: the slot must keep them.
    let down = tokio::spawn(write(db.url.clone(), "d", 30, Duration::ZERO));
    down.await.unwrap();
    let held = fresh_json(
        &db,
        &format!(
            "SELECT confirmed_flush_lsn <= '{}'::pg_lsn AS held FROM pg_replication_slots WHERE database = current_database()",
            before[0]["at"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(
        held,
        vec![json!({"held": true})],
        "the slot kept the writes made while pglive was down"
    );

    let second = ServerProcess::start(pglive(), &db.url, &["--capture", "wal"]).await;
    let mut c = Client::connect_url(&second.server.ws_url()).await;
    c.subscribe("a", json!({"table":"items","order":{"by":"name"}}))
        .await;
    writer.await.unwrap();
    let want = fresh::<Item>(&db, "SELECT * FROM items ORDER BY name, id").await;
    assert!(c.until(|c| c.rows("a") == want).await, "client converged");
    // Every transaction of the down time (30 of them) comes from the slot.
    // The client's snapshot may have converged first: wait for the replay.
    second
        .server
        .wait_metric_at_least("pglive_capture_transactions_total", 30)
        .await;
    // A graceful stop confirms what was handled: the lag drops to what
    // was written since.
    second.terminate().await;
    let slot = slot_of(&db).await;
    assert_eq!(slot[0]["active"], false);
}

/// `pglive slot drop` refuses while pglive reads the slot, drops it once
/// pglive is gone (then says there is none); pglive then starts cleanly
/// with a new slot and resyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slot_is_made_again_and_clients_resync() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 20) g")
        .await;
    let slot = format!("pglive_{}", db.name);
    let first = ServerProcess::start(pglive(), &db.url, &["--capture", "wal"]).await;
    let drop_slot = ["slot", "drop", "--database-url", db.url.as_str()];
    let (ok, _, err) = run_command(pglive(), &drop_slot).await;
    assert!(!ok, "refused while in use");
    assert!(err.contains("is in use"), "{err}");
    first.kill().await;
    tokio::spawn(write(db.url.clone(), "d", 20, Duration::ZERO))
        .await
        .unwrap();
    // The walsender may take a moment to notice its client is gone.
    let deadline = tokio::time::Instant::now() + pglive_testkit::TIMEOUT;
    let out = loop {
        let (ok, out, err) = run_command(pglive(), &drop_slot).await;
        if ok {
            break out;
        }
        assert!(tokio::time::Instant::now() < deadline, "{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(out, format!("dropped replication slot {slot}\n"));
    assert!(slot_of(&db).await.is_empty());
    let (ok, out, _) = run_command(pglive(), &drop_slot).await;
    assert!(ok);
    assert_eq!(out, format!("no replication slot {slot}\n"));

    let second = ServerProcess::start(pglive(), &db.url, &["--capture", "wal"]).await;
    assert_eq!(slot_of(&db).await.len(), 1, "a new slot");
    let mut c = Client::connect_url(&second.server.ws_url()).await;
    c.subscribe("a", json!({"table":"items"})).await;
    db.exec("UPDATE items SET name = 'after' WHERE id = 3")
        .await;
    let want = fresh::<Item>(&db, "SELECT * FROM items ORDER BY id").await;
    assert!(c.until(|c| c.rows("a") == want).await);
    second.terminate().await;
}

/// A transaction past the per-table key cap reaches the groups as "the
/// whole table changed" (a re-run, no keyed read), and clients converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_transaction_refreshes_the_table() {
    let db = TestDb::new().await;
    let server = TestServer::start_in(&db, CaptureMode::Wal).await;
    let mut c = Client::connect(&server).await;
    c.subscribe(
        "a",
        json!({"table":"items","limit":10,"order":{"by":"name","dir":"desc"}}),
    )
    .await;
    assert!(c.until(|c| c.has("a")).await);
    db.exec("INSERT INTO items (name) VALUES ('small')").await;
    assert!(c.until(|c| c.len("a") == 1).await);
    let keyed = server.metric("pglive_refreshes_keyed_total").await;
    let refreshes = server.metric("pglive_refreshes_total").await;
    db.exec("INSERT INTO items (name) SELECT 'big' || g FROM generate_series(1, 5000) g")
        .await;
    let want = fresh::<Item>(
        &db,
        "SELECT * FROM items ORDER BY name DESC, id DESC LIMIT 10",
    )
    .await;
    assert!(c.until(|c| c.rows("a") == want).await);
    assert_eq!(
        server.metric("pglive_refreshes_keyed_total").await,
        keyed,
        "no keyed read of 5,000 keys"
    );
    assert!(server.metric("pglive_refreshes_total").await > refreshes);
    server.stop().await;
}

in_both_modes!(postgres_restart_during_writes);

/// PostgreSQL itself restarts (every connection cut) during writes:
/// capture reconnects with backoff, resyncs, and clients converge.
async fn postgres_restart_during_writes(mode: CaptureMode) {
    let cluster = PrivateCluster::start(&format!("restart-{}", mode.as_str())).await;
    let url = cluster.migrated_database("restart").await;
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    conn.batch_execute("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 50) g")
        .await
        .unwrap();
    drop(conn);
    let mut config = Config::new(url.clone());
    config.capture = mode;
    let server = TestServer::with_config(config).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(&server).await;
        c.subscribe("a", json!({"table":"items","order":{"by":"name"}}))
            .await;
        clients.push(c);
    }
    for c in &mut clients {
        assert!(c.until(|c| c.len("a") == 50).await);
    }
    let writer = tokio::spawn(write(url.clone(), "r", 150, Duration::from_millis(10)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.restart(Duration::from_millis(500)).await;
    writer.await.unwrap();
    let want = fresh_at::<Item>(&url, "SELECT * FROM items ORDER BY name, id").await;
    for c in &mut clients {
        assert!(
            c.until(|c| c.rows("a") == want).await,
            "client converged after PostgreSQL restarted ({mode:?})"
        );
    }
    assert!(server.metric("pglive_capture_reconnects_total").await >= 1);
    assert_eq!(server.get("/readyz").await.0, 200);
    server.stop().await;
    let mut admin = AsyncPgConnection::establish(&cluster.admin).await.unwrap();
    pglive_testkit::drop_database(&mut admin, "restart").await;
}

/// The two configuration mistakes WAL capture cannot work around stop the
/// server at start with a message that says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_say_what_to_fix() {
    // A role without the REPLICATION attribute.
    let db = TestDb::new().await;
    let role = format!("norepl_{}", db.name);
    db.exec(&format!("CREATE ROLE {role} LOGIN")).await;
    let as_role = db.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(as_role, db.url, "the test URL names its user");
    let err = start_error(
        Config {
            capture: CaptureMode::Wal,
            ..Config::new(as_role)
        },
        LOOPBACK,
    )
    .await
    .expect("refused");
    assert!(
        err.contains(&format!("ALTER ROLE {role} REPLICATION")),
        "{err}"
    );
    db.exec(&format!("DROP ROLE {role}")).await;

    // A server without wal_level = logical.
    let cluster = PrivateCluster::start("wal-level").await;
    let url = cluster.migrated_database("walless").await;
    let mut admin = AsyncPgConnection::establish(&cluster.admin).await.unwrap();
    admin
        .batch_execute("ALTER SYSTEM SET wal_level = 'replica'")
        .await
        .unwrap();
    drop(admin);
    cluster.restart(Duration::ZERO).await;
    let err = start_error(
        Config {
            capture: CaptureMode::Wal,
            ..Config::new(url.clone())
        },
        LOOPBACK,
    )
    .await
    .expect("refused");
    assert!(err.contains("wal_level = logical"), "{err}");
    assert!(err.contains("wal_level = replica"), "{err}");
    // NOTIFY capture needs none of it.
    let server = TestServer::with_config(Config::new(url)).await;
    server.stop().await;
    let mut admin = AsyncPgConnection::establish(&cluster.admin).await.unwrap();
    admin
        .batch_execute("ALTER SYSTEM RESET wal_level")
        .await
        .unwrap();
}

/// A commit reaches the replication stream when its WAL is flushed, a
/// moment before it becomes visible. A transaction held in that moment (here:
/// waiting for a synchronous standby that does not exist) must not be read
/// before it is visible, or its rows would be read as they were and never
/// corrected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_read_only_once_visible() {
    let cluster = PrivateCluster::start("visibility").await;
    let url = cluster.migrated_database("visibility").await;
    let mut admin = AsyncPgConnection::establish(&cluster.admin).await.unwrap();
    admin
        .batch_execute("ALTER SYSTEM RESET synchronous_standby_names")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    conn.batch_execute("INSERT INTO items (name) VALUES ('before')")
        .await
        .unwrap();
    let server = TestServer::with_config(Config {
        capture: CaptureMode::Wal,
        ..Config::new(url.clone())
    })
    .await;
    let mut c = Client::connect(&server).await;
    c.subscribe("a", json!({"table":"items"})).await;
    assert!(c.until(|c| c.len("a") == 1).await);

    admin
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writer = tokio::spawn(async move {
        // Committed locally, then waits for the standby: in WAL, not visible.
        let _ = conn
            .batch_execute(
                "SET synchronous_commit = on; UPDATE items SET name = 'after' WHERE id = 1",
            )
            .await;
    });
    let waiting = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
    let deadline = tokio::time::Instant::now() + pglive_testkit::TIMEOUT;
    while fresh_at_json(&url, waiting).await != json!(1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never waited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // pglive has the commit from the stream by now; give it time to (wrongly) read.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(c.rows("a")[0]["name"], "before");
    // Cancelling the wait makes the local commit visible.
    admin
        .batch_execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        )
        .await
        .unwrap();
    writer.await.unwrap();
    admin
        .batch_execute("ALTER SYSTEM RESET synchronous_standby_names")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    assert!(
        c.until(|c| c.rows("a")[0]["name"] == "after").await,
        "the change was read once it became visible: {:?}",
        c.rows("a")
    );
    server.stop().await;
    pglive_testkit::drop_database(&mut admin, "visibility").await;
}

async fn fresh_at_json(url: &str, sql: &str) -> Value {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        n: i32,
    }
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<N> = diesel_async::RunQueryDsl::load(diesel::sql_query(sql), &mut conn)
        .await
        .unwrap();
    json!(rows[0].n)
}
