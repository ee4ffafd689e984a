//! The related-rows property test: random queries that include their
//! table's relations (`has_many` with random filters, orders, limits and
//! counts; `belongs_to`), under random multi-statement writes to parents
//! and children (inserts, updates of any column including foreign keys,
//! key changes, deletes). After quiescence every client's rows equal a
//! fresh SQL run of its query, and every row's related rows (and count)
//! equal a fresh SQL run of the include for that row's value, row for row
//! and in order. Every diff applies to the version it names (the test
//! client asserts it).
//!
//! It runs once per capture mode. Seeds: `PGLIVE_PROPTEST_SEEDS=1,2,3` to
//! replay; otherwise two random seeds, printed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use futures_util::future::BoxFuture;
use pglive_schema::live::{Listed, TableVisitor};
use pglive_schema::tables::visit_tables;
use pglive_testkit::random::{self, RandomInclude, Spec};
use pglive_testkit::{CaptureMode, Client, TestDb, TestServer, fresh, fresh_count, in_both_modes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

type Fresh = for<'a> fn(&'a TestDb, String) -> BoxFuture<'a, Vec<Value>>;

fn fresh_of<T: Listed>(db: &TestDb, sql: String) -> BoxFuture<'_, Vec<Value>> {
    Box::pin(async move { fresh::<T>(db, &sql).await })
}

struct Tables(Vec<(Spec, Fresh)>);

impl TableVisitor for Tables {
    fn visit<T: Listed>(&mut self) {
        self.0.push((Spec::of::<T>(), fresh_of::<T>));
    }
}

fn tables() -> Vec<(Spec, Fresh)> {
    let mut tables = Tables(Vec::new());
    visit_tables(&mut tables);
    tables.0
}

struct Subscriber {
    client: Client,
    query: Value,
    sql: String,
    count_sql: Option<String>,
    includes: Vec<RandomInclude>,
}

/// What a client must end up with: its rows, its count, and per row and
/// include the related rows and count.
type Want = (Vec<Value>, Option<u64>, Vec<Vec<(Vec<Value>, u64)>>);

async fn want(db: &TestDb, all: &[(Spec, Fresh)], fresh_rows: Fresh, s: &Subscriber) -> Want {
    let rows = fresh_rows(db, s.sql.clone()).await;
    let count = match &s.count_sql {
        Some(sql) => Some(fresh_count(db, None, sql).await),
        None => None,
    };
    let mut related = Vec::new();
    for row in &rows {
        let mut per = Vec::new();
        for include in &s.includes {
            let (sql, count_sql) = include.sql_for(row);
            let target = all.iter().find(|(s, _)| s.name == include.target).unwrap();
            let rows = (target.1)(db, sql).await;
            let n = match count_sql {
                Some(sql) => fresh_count(db, None, &sql).await,
                None => 0,
            };
            per.push((rows, n));
        }
        related.push(per);
    }
    (rows, count, related)
}

fn got(s: &Subscriber) -> Want {
    let rows = s.client.rows("p");
    let Some(sub) = s.client.subs.get("p") else {
        return (rows, None, Vec::new());
    };
    let related = rows
        .iter()
        .map(|row| {
            s.includes
                .iter()
                .map(|i| sub.related_of(i.relation, row))
                .collect()
        })
        .collect();
    (rows, sub.count, related)
}

async fn converge(table: usize, all: &[(Spec, Fresh)], seed: u64, mode: CaptureMode) {
    let db = TestDb::new().await;
    let server = TestServer::start_in(&db, mode).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conn = db.conn().await;
    let specs: Vec<Spec> = all.iter().map(|(s, _)| *s).collect();
    for spec in &specs {
        let rows: Vec<String> = (0..20).map(|_| random::insert(&mut rng, spec)).collect();
        random::transaction(&mut conn, &rows).await;
    }
    let spec = &specs[table];
    // Writes go to this table and the tables its relations point to.
    let touched: Vec<&Spec> = specs
        .iter()
        .filter(|s| s.name == spec.name || spec.relations.iter().any(|r| r.target == s.name))
        .collect();
    // Writes only to the related tables come last: changes to the queried
    // table (or to what its policies depend on) re-read every entry, so
    // only without them are related changes decided in memory alone.
    let related: Vec<&Spec> = touched
        .iter()
        .copied()
        .filter(|s| s.name != spec.name)
        .collect();
    let mut subscribers: Vec<Subscriber> = Vec::new();
    let mut rounds = Rounds {
        rng: &mut rng,
        conn: &mut conn,
        server: &server,
        spec,
        specs: &specs,
        subscribers: &mut subscribers,
    };
    rounds.write(200, &touched).await;
    check(&db, all, table, seed, rounds.subscribers).await;
    rounds.write(150, &related).await;
    check(&db, all, table, seed, rounds.subscribers).await;
    server.stop().await;
}

/// Random writes with subscribers joining as they go.
struct Rounds<'a> {
    rng: &'a mut StdRng,
    conn: &'a mut diesel_async::AsyncPgConnection,
    server: &'a TestServer,
    spec: &'a Spec,
    specs: &'a [Spec],
    subscribers: &'a mut Vec<Subscriber>,
}

impl Rounds<'_> {
    /// `steps` random writes to `tables`, in transactions of 1–3, a new
    /// subscriber every 20.
    async fn write(&mut self, steps: usize, tables: &[&Spec]) {
        let mut pending = Vec::new();
        for step in 0..steps {
            if step % 20 == 0 {
                let (q, includes) = random::included_query(self.rng, self.spec, self.specs);
                let mut client = Client::connect(self.server).await;
                client.subscribe("p", q.json.clone()).await;
                self.subscribers.push(Subscriber {
                    client,
                    query: q.json,
                    sql: q.sql,
                    count_sql: q.count_sql,
                    includes,
                });
            }
            let target = tables[self.rng.random_range(0..tables.len())];
            pending.push(random::write(self.rng, target));
            if pending.len() >= self.rng.random_range(1..4) {
                random::transaction(self.conn, &pending).await;
                pending.clear();
            }
            if step % 7 == 0 {
                for s in self.subscribers.iter_mut() {
                    s.client.drain(Duration::from_millis(1)).await;
                }
            }
        }
        random::transaction(self.conn, &pending).await;
    }
}

/// After quiescence, every subscriber's rows, count and related rows equal
/// a fresh read.
async fn check(
    db: &TestDb,
    all: &[(Spec, Fresh)],
    table: usize,
    seed: u64,
    subscribers: &mut [Subscriber],
) {
    let spec = &all[table].0;
    for s in subscribers.iter_mut() {
        let want = want(db, all, all[table].1, s).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            s.client.drain(Duration::from_millis(100)).await;
            let now = got(s);
            if s.client.has("p") && now == want {
                break;
            }
            if tokio::time::Instant::now() < deadline {
                continue;
            }
            // Name what differs: the rows, the count, or which row's
            // related rows.
            let rows = s.client.rows("p");
            let wrong: Vec<String> = rows
                .iter()
                .zip(now.2.iter().zip(&want.2))
                .filter(|(_, (g, w))| g != w)
                .map(|(row, (g, w))| format!("row {}: got {g:?}\n   want {w:?}", row))
                .collect();
            panic!(
                "seed {seed}, table {}: {} diverged from\n  {}\nrows equal: {}, count {:?} vs {:?}\n{}\nerrors {:?}",
                spec.name,
                s.query,
                s.sql,
                now.0 == want.0,
                now.1,
                want.1,
                wrong.join("\n"),
                s.client.errors
            );
        }
        assert!(
            s.client.errors.is_empty(),
            "{}: {:?}",
            s.query,
            s.client.errors
        );
        println!(
            "{} rows, {} diffs, {} snapshots, {} related entries: {}",
            s.client.len("p"),
            s.client.subs["p"].diffs,
            s.client.subs["p"].snapshots,
            s.client.subs["p"].related.len(),
            s.query
        );
    }
}

in_both_modes!(related_rows_converge_under_random_writes);

async fn related_rows_converge_under_random_writes(mode: CaptureMode) {
    let all = tables();
    for seed in random::seeds() {
        println!("seed {seed} ({mode:?} capture)");
        for (i, (spec, _)) in all.iter().enumerate() {
            if !spec.relations.is_empty() {
                converge(i, &all, seed, mode).await;
            }
        }
    }
}
