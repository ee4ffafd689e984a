//! Test databases: one per test, cloned from a template that has every
//! migration applied.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use pglive_schema::live::LiveTable;
use serde_json::Value;
use tokio::sync::OnceCell;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Admin URL of the test PostgreSQL server (database `postgres`):
/// `PGLIVE_TEST_DATABASE_URL` when set, else a throwaway cluster under
/// `target/` started with `dev/pg.sh` from the system's PostgreSQL binaries.
pub fn admin_url() -> String {
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

/// `admin` with its database replaced by `db`.
pub fn with_db(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
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
            let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                &format!("EXISTS (SELECT 1 FROM pg_database WHERE datname = '{template}')"),
            ))
            .get_result(&mut conn)
            .await
            .unwrap();
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
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub name: String,
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
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
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

    /// This database's URL logging in as `role` instead (no password: the
    /// test cluster trusts local connections).
    pub fn url_as(&self, role: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL with a scheme");
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{role}@{host}")
    }

    /// This database's URL as `pglive_authenticator`, the least-privileged
    /// role the shipped setup runs the server as (its migration creates it).
    pub fn authenticator_url(&self) -> String {
        self.url_as("pglive_authenticator")
    }

    /// The cluster's admin URL (database `postgres`).
    pub fn admin(&self) -> &str {
        &self.admin
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

    /// Runs `sql` and returns PostgreSQL's error message, which must come.
    pub async fn exec_err(&self, sql: &str) -> String {
        let mut conn = self.conn().await;
        match conn.batch_execute(sql).await {
            Ok(()) => panic!("{sql}: expected an error"),
            Err(e) => e.to_string(),
        }
    }
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
                    drop_database(&mut conn, &name).await;
                }
            });
        })
        .join();
    }
}

/// Drops database `name`, and first its replication slots (WAL capture
/// makes one; PostgreSQL refuses to drop a database that has any, and they
/// count against the cluster's `max_replication_slots`). A slot still read
/// by a walsender is freed by ending that walsender.
pub async fn drop_database(conn: &mut AsyncPgConnection, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let _ = conn
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                  WHERE database = '{name}' AND active_pid IS NOT NULL; \
                 SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                  WHERE database = '{name}' AND NOT active"
            ))
            .await;
        match conn
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
        {
            Ok(()) => return,
            Err(err) if std::time::Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(err) => {
                eprintln!("testkit: could not drop database {name}: {err}");
                return;
            }
        }
    }
}

/// Whether the test cluster can run WAL capture (`wal_level = logical`,
/// which `dev/pg.sh` sets).
pub async fn wal_level_is_logical() -> bool {
    let mut conn = AsyncPgConnection::establish(&cluster().await.admin)
        .await
        .unwrap();
    let level: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
        "current_setting('wal_level')",
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    level == "logical"
}

/// A query's fresh result straight from PostgreSQL, decoded as table `T`'s
/// rows and serialized as the server serializes them: compare it with a
/// client's rows to check the server, row for row and in order.
pub async fn fresh<T: LiveTable>(db: &TestDb, sql: &str) -> Vec<Value> {
    fresh_at::<T>(&db.url, sql).await
}

/// [`fresh`] on the database at `url`.
pub async fn fresh_at<T: LiveTable>(url: &str, sql: &str) -> Vec<Value> {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<T> = diesel::sql_query(sql)
        .load(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

/// [`fresh`] as a client sees it: in a transaction switched to `role`
/// with `claims` (JSON) as `request.jwt.claims`, the way pglive reads.
pub async fn fresh_as<T: LiveTable>(
    db: &TestDb,
    role: &str,
    claims: &str,
    sql: &str,
) -> Vec<Value> {
    let mut conn = db.conn().await;
    begin_as(&mut conn, role, claims).await;
    let rows: Vec<T> = diesel::sql_query(sql)
        .load(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.batch_execute("ROLLBACK").await.unwrap();
    rows.iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

/// Opens a transaction that reads as `role` with `claims`, as the server's
/// reads do; the caller rolls it back.
async fn begin_as(conn: &mut AsyncPgConnection, role: &str, claims: &str) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    conn.batch_execute(&format!(
        "BEGIN; SELECT set_config('role', {}, true), set_config('request.jwt.claims', {}, true)",
        quote(role),
        quote(claims)
    ))
    .await
    .unwrap();
}

/// The one `bigint` column `n` of a count's SQL.
#[derive(diesel::QueryableByName)]
struct Counted {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A count's fresh value (`sql` selects one `bigint` column `n`), as the
/// database's owner, or with `as_user` as that role and claims (so that
/// row-level security applies, as for [`fresh_as`]).
pub async fn fresh_count(db: &TestDb, as_user: Option<(&str, &str)>, sql: &str) -> u64 {
    let mut conn = db.conn().await;
    if let Some((role, claims)) = as_user {
        begin_as(&mut conn, role, claims).await;
    }
    let rows: Vec<Counted> = diesel::sql_query(sql)
        .load(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    if as_user.is_some() {
        conn.batch_execute("ROLLBACK").await.unwrap();
    }
    rows.as_slice().first().map_or(0, |c| c.n as u64)
}

/// A query's fresh result as PostgreSQL's own JSON (`json_agg`).
pub async fn fresh_json(db: &TestDb, sql: &str) -> Vec<Value> {
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
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let v: Value = serde_json::from_str(&rows[0].j).unwrap();
    v.as_array().unwrap().clone()
}
