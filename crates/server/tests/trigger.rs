//! The change-capture trigger: every statement kind on every demo table sends
//! the documented payload, large statements fall back to a keyless payload,
//! the generated trigger functions build no SQL at run time, the capture
//! mode switch moves tables between the triggers and the publication, and
//! migrations run up, down and up again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use pglive_testkit::TestDb;
use serde_json::{Value, json};

struct Listener {
    conn: AsyncPgConnection,
}

impl Listener {
    async fn new(db: &TestDb) -> Listener {
        let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
        conn.batch_execute("LISTEN pglive").await.unwrap();
        Listener { conn }
    }

    async fn next(&mut self) -> Value {
        let stream = self.conn.notifications_stream();
        let mut stream = std::pin::pin!(stream);
        let n = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a notification")
            .unwrap()
            .unwrap();
        assert_eq!(n.channel, "pglive");
        serde_json::from_str(&n.payload).unwrap()
    }

    async fn none(&mut self) {
        let stream = self.conn.notifications_stream();
        let mut stream = std::pin::pin!(stream);
        let got = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
        assert!(got.is_err(), "unexpected notification {got:?}");
    }
}

fn payload(table: &str, op: &str, keys: Value, old_keys: Value) -> Value {
    json!({"v":1,"schema":"public","table":table,"op":op,"keys":keys,"old_keys":old_keys})
}

/// The demo tables are watched with `partition => 'tenant'`: a notice with
/// keys names the rows' tenants (here all rows are in `public`).
fn in_public(mut payload: Value) -> Value {
    payload["parts"] = json!({"claim":"tenant","values":["public"]});
    payload
}

async fn every_operation(table: &str, insert: &str) {
    let db = TestDb::new().await;
    let mut l = Listener::new(&db).await;
    db.exec(&format!("{insert}; {insert}")).await;
    assert_eq!(
        l.next().await,
        in_public(payload(table, "INSERT", json!([1]), Value::Null))
    );
    assert_eq!(
        l.next().await,
        in_public(payload(table, "INSERT", json!([2]), Value::Null))
    );

    // One statement, several rows: one notice with every key. No key
    // changed, so the old keys are not repeated.
    db.exec(&format!("UPDATE {table} SET created_at = now()"))
        .await;
    let mut got = l.next().await;
    let mut keys: Vec<i64> = got["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    keys.sort();
    got["keys"] = json!(keys);
    assert_eq!(
        got,
        in_public(payload(table, "UPDATE", json!([1, 2]), Value::Null))
    );

    // A primary-key change reports the old and the new key.
    db.exec(&format!("UPDATE {table} SET id = 100 WHERE id = 1"))
        .await;
    assert_eq!(
        l.next().await,
        in_public(payload(table, "UPDATE", json!([100]), json!([1])))
    );

    db.exec(&format!("DELETE FROM {table} WHERE id = 2")).await;
    assert_eq!(
        l.next().await,
        in_public(payload(table, "DELETE", json!([2]), Value::Null))
    );

    // Statements that touch nothing stay quiet.
    db.exec(&format!("DELETE FROM {table} WHERE id = 12345"))
        .await;
    l.none().await;

    // CASCADE: comments reference tasks; their own notice may come too.
    db.exec(&format!("TRUNCATE {table} CASCADE")).await;
    let mut got = l.next().await;
    while got["table"] != table {
        got = l.next().await;
    }
    assert_eq!(got, payload(table, "TRUNCATE", Value::Null, Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_operations_notify() {
    every_operation("items", "INSERT INTO items (name) VALUES ('x')").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_operations_notify() {
    every_operation(
        "tasks",
        "INSERT INTO tasks (title, status, assignee) VALUES ('t', 'todo', 'alice')",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_hint_names_the_partitions_old_and_new() {
    let db = TestDb::new().await;
    let mut l = Listener::new(&db).await;
    let values = |mut got: Value| {
        let mut v: Vec<String> = serde_json::from_value(got["parts"]["values"].take()).unwrap();
        v.sort();
        (got["parts"]["claim"].clone(), v)
    };
    db.exec(
        "INSERT INTO tasks (title, tenant) VALUES ('a', 'acme'), ('b', 'globex'), ('c', 'acme')",
    )
    .await;
    assert_eq!(
        values(l.next().await),
        (json!("tenant"), vec!["acme".into(), "globex".into()])
    );
    // Moving a row between tenants names both: the old one loses it.
    db.exec("UPDATE tasks SET tenant = 'initech' WHERE title = 'b'")
        .await;
    assert_eq!(
        values(l.next().await),
        (json!("tenant"), vec!["globex".into(), "initech".into()])
    );
    db.exec("DELETE FROM tasks WHERE title = 'a'").await;
    assert_eq!(
        values(l.next().await),
        (json!("tenant"), vec!["acme".into()])
    );

    // A claim of another name; then no hint at all.
    db.exec("SELECT pglive_watch('tasks', partition => 'tenant', partition_claim => 'org')")
        .await;
    db.exec("UPDATE tasks SET title = 'c2' WHERE title = 'c'")
        .await;
    assert_eq!(values(l.next().await), (json!("org"), vec!["acme".into()]));
    db.exec("SELECT pglive_watch('tasks')").await;
    db.exec("UPDATE tasks SET title = 'c3' WHERE title = 'c2'")
        .await;
    assert_eq!(l.next().await.get("parts"), None);

    // More than 100 partitions in one statement say nothing: no parts.
    db.exec("SELECT pglive_watch('tasks', partition => 'tenant')")
        .await;
    db.exec(
        "INSERT INTO tasks (title, tenant) SELECT 't', 't' || g FROM generate_series(1, 101) g",
    )
    .await;
    let got = l.next().await;
    assert_eq!(got["keys"].as_array().unwrap().len(), 101);
    assert_eq!(got.get("parts"), None);

    // A column that does not exist is refused, and the old hint stays.
    let mut conn = db.conn().await;
    let err = conn
        .batch_execute("SELECT pglive_watch('tasks', partition => 'nope')")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no column nope to partition by"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_update_commits_with_keyless_notice() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 100000) g")
        .await;
    let mut l = Listener::new(&db).await;
    db.exec("UPDATE items SET name = name || '!'").await;
    assert_eq!(
        l.next().await,
        payload("items", "UPDATE", Value::Null, Value::Null)
    );
    let mut conn = db.conn().await;
    // The write committed.
    conn.batch_execute("DO $$ BEGIN IF (SELECT count(*) FROM items WHERE name LIKE '%!') <> 100000 THEN RAISE 'not committed'; END IF; END $$").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_over_the_cap_become_keyless() {
    let db = TestDb::new().await;
    let mut l = Listener::new(&db).await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 500) g")
        .await;
    assert_eq!(l.next().await["keys"].as_array().unwrap().len(), 500);
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 501) g")
        .await;
    assert_eq!(
        l.next().await,
        payload("items", "INSERT", Value::Null, Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_watch_never_fails_the_writer() {
    let db = TestDb::new().await;
    // A watched table whose key column was renamed after it was watched: the
    // trigger cannot build keys, and must still let the write commit
    // (with a keyless notice).
    db.exec("CREATE TABLE odd (x int PRIMARY KEY); SELECT pglive_watch('odd', 'x'); ALTER TABLE odd RENAME COLUMN x TO y").await;
    let mut l = Listener::new(&db).await;
    db.exec("INSERT INTO odd VALUES (1)").await;
    assert_eq!(
        l.next().await,
        payload("odd", "INSERT", Value::Null, Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_up_down_up() {
    let migrations = std::fs::read_dir(pglive_testkit::repo_root().join("migrations"))
        .unwrap()
        .count();
    let db = TestDb::empty().await;
    let applied = pglive_server::db::migrate(&db.url).await.unwrap();
    assert_eq!(applied.len(), migrations);
    db.exec("INSERT INTO items (name) VALUES ('x')").await;
    let reverted = pglive_server::db::revert_all(&db.url).await.unwrap();
    assert_eq!(reverted, migrations);
    let mut conn = db.conn().await;
    assert!(
        conn.batch_execute("SELECT 1 FROM items").await.is_err(),
        "items dropped"
    );
    assert!(
        conn.batch_execute("SELECT pglive_notify()").await.is_err(),
        "function dropped"
    );
    let applied = pglive_server::db::migrate(&db.url).await.unwrap();
    assert_eq!(applied.len(), migrations);
    let mut l = Listener::new(&db).await;
    db.exec("INSERT INTO items (name) VALUES ('again')").await;
    assert_eq!(l.next().await["op"], "INSERT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_every_supported_type_travel_exactly() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE TABLE k_uuid (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), v int); SELECT pglive_watch('k_uuid');
         CREATE TABLE k_text (code text PRIMARY KEY, v int); SELECT pglive_watch('k_text');
         CREATE TABLE k_big (id bigint PRIMARY KEY, v int); SELECT pglive_watch('k_big');
         CREATE TABLE k_small (id smallint PRIMARY KEY); SELECT pglive_watch('k_small');
         CREATE TABLE k_named (id int PRIMARY KEY, code varchar(10) NOT NULL UNIQUE); SELECT pglive_watch('k_named', 'code');",
    )
    .await;
    let mut l = Listener::new(&db).await;
    db.exec("INSERT INTO k_uuid (id) VALUES ('6f1c2c1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f')")
        .await;
    assert_eq!(
        l.next().await,
        payload(
            "k_uuid",
            "INSERT",
            json!(["6f1c2c1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f"]),
            Value::Null
        )
    );
    db.exec("INSERT INTO k_text VALUES ('a\"b', 1)").await;
    assert_eq!(
        l.next().await,
        payload("k_text", "INSERT", json!(["a\"b"]), Value::Null)
    );
    // Past 2^53: the notice carries the exact integer.
    db.exec("INSERT INTO k_big VALUES (9007199254740993, 1)")
        .await;
    let notice = l.next().await;
    assert_eq!(notice["keys"][0].as_u64(), Some(9_007_199_254_740_993));
    db.exec("INSERT INTO k_small VALUES (7)").await;
    assert_eq!(
        l.next().await,
        payload("k_small", "INSERT", json!([7]), Value::Null)
    );
    db.exec("INSERT INTO k_named VALUES (1, 'x')").await;
    assert_eq!(
        l.next().await,
        payload("k_named", "INSERT", json!(["x"]), Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_without_one_usable_key_are_refused_clearly() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE TABLE two (a int, b int, PRIMARY KEY (a, b));
         CREATE TABLE none (x int);
         CREATE TABLE floaty (x float8 PRIMARY KEY);
         CREATE TABLE loose (id int PRIMARY KEY, other int);",
    )
    .await;
    let err = db.exec_err("SELECT pglive_watch('two')").await;
    assert!(err.contains("composite primary key (a, b)"), "{err}");
    let err = db.exec_err("SELECT pglive_watch('none')").await;
    assert!(err.contains("has no primary key"), "{err}");
    let err = db.exec_err("SELECT pglive_watch('floaty')").await;
    assert!(
        err.contains("smallint, integer, bigint, uuid or text"),
        "{err}"
    );
    let err = db.exec_err("SELECT pglive_watch('loose', 'other')").await;
    assert!(err.contains("not a unique NOT NULL key"), "{err}");
    let err = db.exec_err("SELECT pglive_watch('loose', 'nope')").await;
    assert!(err.contains("has no column"), "{err}");
}

/// The generated per-table functions carry their SQL statically: nothing is
/// built with EXECUTE when a statement fires them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_functions_are_static_sql() {
    let db = TestDb::new().await;
    let fns = pglive_testkit::fresh_json(
        &db,
        "SELECT w.tbl::text AS tbl, p.prosrc FROM pglive_watched w \
           JOIN pg_proc p ON p.oid = (w.notify_function || '()')::regprocedure ORDER BY 1",
    )
    .await;
    assert_eq!(fns.len(), 3);
    for f in fns {
        let src = f["prosrc"].as_str().unwrap();
        assert!(!src.contains("EXECUTE"), "{}: {src}", f["tbl"]);
        assert!(src.contains("FROM pglive_new"), "{src}");
    }
    // A key change among unchanged keys still names the old key.
    let mut l = Listener::new(&db).await;
    db.exec("INSERT INTO items (name) VALUES ('a'), ('b')")
        .await;
    l.next().await;
    db.exec("UPDATE items SET id = CASE id WHEN 1 THEN 7 ELSE id END")
        .await;
    let got = l.next().await;
    let mut old: Vec<i64> = got["old_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    old.sort();
    assert_eq!(old, vec![1, 2]);
}

/// `pglive_capture_mode` moves every watched table between the triggers
/// (notify) and the publication (wal), and `pglive_watch`/`pglive_unwatch`
/// follow the mode. A table keyed by a unique column without a primary key
/// gets that column's index as replica identity, so its writers keep
/// working once it is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_mode_moves_tables_between_triggers_and_publication() {
    let db = TestDb::new().await;
    let published = "SELECT coalesce(json_agg(tablename ORDER BY tablename), '[]') AS tables FROM pg_publication_tables WHERE pubname = 'pglive'";
    let triggers = "SELECT count(*)::int AS n FROM pg_trigger WHERE tgname IN ('pglive_insert', 'pglive_update', 'pglive_delete', 'pglive_truncate')";
    db.exec("SELECT pglive_capture_mode('wal')").await;
    assert_eq!(
        pglive_testkit::fresh_json(&db, triggers).await,
        vec![json!({"n": 0})]
    );
    db.exec(
        "CREATE TABLE coded (code text NOT NULL UNIQUE, v int); SELECT pglive_watch('coded', 'code');
         INSERT INTO coded VALUES ('a', 1); UPDATE coded SET v = 2; DELETE FROM coded",
    )
    .await;
    assert_eq!(
        pglive_testkit::fresh_json(&db, published).await,
        vec![json!({"tables": ["coded", "comments", "items", "tasks"]})]
    );
    assert_eq!(
        pglive_testkit::fresh_json(
            &db,
            "SELECT relreplident::text AS r FROM pg_class WHERE relname = 'coded'"
        )
        .await,
        vec![json!({"r": "i"})]
    );
    db.exec("SELECT pglive_unwatch('tasks')").await;
    assert_eq!(
        pglive_testkit::fresh_json(&db, published).await,
        vec![json!({"tables": ["coded", "comments", "items"]})]
    );
    // Writers fire nothing in WAL mode.
    let mut l = Listener::new(&db).await;
    db.exec("INSERT INTO items (name) VALUES ('quiet')").await;
    l.none().await;

    let previous =
        pglive_testkit::fresh_json(&db, "SELECT pglive_capture_mode('notify') AS p").await;
    assert_eq!(previous, vec![json!({"p": "wal"})]);
    assert_eq!(
        pglive_testkit::fresh_json(&db, triggers).await,
        vec![json!({"n": 12})]
    );
    assert_eq!(
        pglive_testkit::fresh_json(&db, "SELECT count(*)::int AS n FROM pg_publication").await,
        vec![json!({"n": 0})]
    );
    db.exec("INSERT INTO coded VALUES ('b', 1)").await;
    assert_eq!(
        l.next().await,
        payload("coded", "INSERT", json!(["b"]), Value::Null)
    );
    let err = db.exec_err("SELECT pglive_capture_mode('both')").await;
    assert!(err.contains("must be 'notify' or 'wal'"), "{err}");
}
