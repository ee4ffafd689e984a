//! Test support: a real PostgreSQL, one fresh database per test cloned from a
//! migrated template, a real pglive server on 127.0.0.1:0, and real WebSocket
//! clients.
//!
//! The PostgreSQL server is `PGLIVE_TEST_DATABASE_URL` (an admin URL) when
//! set; otherwise a throwaway cluster under `target/` started with the
//! repository's `dev/pg.sh` from the system's PostgreSQL binaries.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::{SinkExt, StreamExt};
use pglive_server::config::Config;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(20);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Admin URL of the test PostgreSQL server (database `postgres`).
fn admin_url() -> String {
    if let Ok(url) = std::env::var("PGLIVE_TEST_DATABASE_URL") {
        return url;
    }
    let dir = repo_root().join("target/pglive-test-pg");
    let out = Command::new("bash")
        .arg(repo_root().join("dev/pg.sh"))
        .arg("start")
        .arg(&dir)
        .arg("54339")
        .output()
        .expect("run dev/pg.sh");
    assert!(
        out.status.success(),
        "dev/pg.sh could not start a test cluster:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn with_db(admin: &str, db: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{db}")
}

/// A hash of the migrations, so a changed migration gets a new template.
fn migrations_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut files: Vec<PathBuf> = walk(&repo_root().join("migrations"));
    files.sort();
    for f in files {
        f.file_name().hash(&mut h);
        std::fs::read(&f).unwrap().hash(&mut h);
    }
    h.finish()
}

fn walk(dir: &PathBuf) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

struct Cluster {
    admin: String,
    template: String,
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

async fn cluster() -> &'static Cluster {
    CLUSTER
        .get_or_init(|| async {
            let admin = tokio::task::spawn_blocking(admin_url).await.unwrap();
            let template = format!("pglive_tpl_{:016x}", migrations_hash());
            let mut conn = AsyncPgConnection::establish(&admin)
                .await
                .expect("connect to test postgres");
            // Test binaries may run at once (nextest): one builds the template.
            conn.batch_execute("SELECT pg_advisory_lock(742001)")
                .await
                .unwrap();
            let exists: bool = {
                use diesel_async::RunQueryDsl;
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{template}')"
                )))
                .get_result(&mut conn)
                .await
                .unwrap()
            };
            if !exists {
                let building = format!("{template}_building");
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {building}"))
                    .await
                    .unwrap();
                conn.batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .unwrap();
                pglive_server::db::migrate(&with_db(&admin, &building))
                    .await
                    .expect("migrate template");
                conn.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                    .await
                    .unwrap();
            }
            conn.batch_execute("SELECT pg_advisory_unlock(742001)")
                .await
                .unwrap();
            Cluster { admin, template }
        })
        .await
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A database of its own for one test, cloned from the migrated template and
/// dropped when the value is dropped.
pub struct TestDb {
    pub url: String,
    name: String,
    admin: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let cluster = cluster().await;
        TestDb::create(cluster, "pglive_test", Some(&cluster.template)).await
    }

    /// An empty database without migrations (for the migration tests).
    pub async fn empty() -> TestDb {
        TestDb::create(cluster().await, "pglive_empty", None).await
    }

    async fn create(cluster: &Cluster, prefix: &str, template: Option<&str>) -> TestDb {
        let name = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        let template = template
            .map(|t| format!(" TEMPLATE {t}"))
            .unwrap_or_default();
        let mut conn = AsyncPgConnection::establish(&cluster.admin).await.unwrap();
        conn.batch_execute(&format!("CREATE DATABASE {name}{template}"))
            .await
            .unwrap();
        TestDb {
            url: with_db(&cluster.admin, &name),
            name,
            admin: cluster.admin.clone(),
        }
    }

    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url).await.unwrap()
    }

    pub async fn exec(&self, sql: &str) {
        let mut conn = self.conn().await;
        conn.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Dropping runs outside the test's runtime, which may be gone.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                    let _ = conn
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A pglive server running in this process on a free port.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(db: &TestDb) -> TestServer {
        TestServer::with_config(Config::new(db.url.clone())).await
    }

    pub async fn with_config(mut config: Config) -> TestServer {
        config.addr = "127.0.0.1:0".parse().unwrap();
        let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            pglive_server::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server run");
        });
        let server = TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A minimal HTTP/1.1 GET; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, None).await
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = TcpStream::connect(self.addr).await else {
            return (0, String::new());
        };
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, dechunk(&body))
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Shuts down like SIGTERM does and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("server stops")
                .unwrap();
        }
    }
}

fn dechunk(body: &str) -> String {
    // Responses may be chunked; good enough for small test bodies.
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, tail)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if n == 0 {
            return out;
        }
        if tail.len() < n {
            return body.to_owned();
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol client that keeps each subscription's rows the way the web
/// client does: snapshots replace, diffs apply after a version check.
pub struct Client {
    pub ws: Ws,
    pub subs: HashMap<String, SubState>,
    pub errors: Vec<Value>,
    pub frames: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct SubState {
    pub version: u64,
    pub rows: Vec<Value>,
    pub snapshots: u64,
    pub diffs: u64,
}

impl Client {
    pub async fn connect(server: &TestServer) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .expect("ws connect");
        Client {
            ws,
            subs: HashMap::new(),
            errors: Vec::new(),
            frames: 0,
            bytes: 0,
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: Value) {
        self.send(json!({"type":"subscribe","id":id,"query":query}))
            .await;
    }

    /// Next server message as JSON, or `None` on close/timeout.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => {
                    self.frames += 1;
                    self.bytes += t.len() as u64;
                    let v: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                    self.apply(&v);
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    fn apply(&mut self, v: &Value) {
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str() {
            Some("snapshot") => {
                let st = self.subs.entry(id).or_default();
                st.version = v["version"].as_u64().unwrap();
                st.rows = v["rows"].as_array().unwrap().clone();
                st.snapshots += 1;
            }
            Some("diff") => {
                let st = self.subs.entry(id).or_default();
                assert_eq!(
                    v["from"].as_u64().unwrap(),
                    st.version,
                    "diff version gap: {v}"
                );
                let mut gone: Vec<i64> = v["deletes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_i64().unwrap())
                    .collect();
                let upserts = v["upserts"].as_array().unwrap();
                gone.extend(upserts.iter().map(|u| u["row"]["id"].as_i64().unwrap()));
                st.rows
                    .retain(|r| !gone.contains(&r["id"].as_i64().unwrap()));
                for u in upserts {
                    let at = (u["at"].as_u64().unwrap() as usize).min(st.rows.len());
                    st.rows.insert(at, u["row"].clone());
                }
                st.version = v["to"].as_u64().unwrap();
                st.diffs += 1;
            }
            Some("error") => self.errors.push(v.clone()),
            _ => panic!("unknown server message {v}"),
        }
    }

    /// Reads messages until `done` holds or the timeout passes.
    pub async fn until(&mut self, mut done: impl FnMut(&Client) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while !done(self) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next(left).await.is_none() {
                return done(self);
            }
        }
        true
    }

    pub fn rows(&self, id: &str) -> &[Value] {
        self.subs.get(id).map(|s| s.rows.as_slice()).unwrap_or(&[])
    }

    /// Reads until no message arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) {
        while self.next(quiet).await.is_some() {}
    }
}

/// A query's fresh result straight from PostgreSQL, as JSON rows.
pub async fn fresh(db: &TestDb, sql: &str) -> Vec<Value> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct J {
        #[diesel(sql_type = diesel::sql_types::Text)]
        j: String,
    }
    let mut conn = db.conn().await;
    let rows: Vec<J> = diesel::sql_query(format!(
        "SELECT coalesce(json_agg(t)::text, '[]') AS j FROM ({sql}) t"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&rows[0].j).unwrap();
    v.as_array().unwrap().clone()
}

/// Normalizes timestamps so rows from json_agg and from the server compare
/// equal (PostgreSQL and chrono print fractional seconds differently).
pub fn canon(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(obj) = r.as_object_mut() {
                for key in ["created_at", "updated_at"] {
                    if let Some(Value::String(s)) = obj.get(key) {
                        let t = chrono::DateTime::parse_from_rfc3339(s)
                            .or_else(|_| {
                                chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%:z")
                            })
                            .map(|t| t.timestamp_micros())
                            .unwrap_or_default();
                        obj.insert(key.into(), json!(t));
                    }
                }
            }
            r
        })
        .collect()
}
