//! The random-writes property test, for every declared table, generated from
//! the declarations rather than written per table: random inserts, updates
//! (several rows, any column, key changes) and deletes in multi-statement
//! transactions, interleaved with subscriptions to random filters, orders
//! and limits, half of them asking for a live count. After quiescence every
//! client's rows equal a fresh SQL run of its query (SQL written
//! independently of the server's), row for row and in order, and its count
//! a fresh `count(*)`.
//!
//! It runs once per capture mode.
//!
//! Seeds: `PGLIVE_PROPTEST_SEEDS=1,2,3` to replay; otherwise two random seeds,
//! printed so that a failure can be replayed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use futures_util::future::BoxFuture;
use pglive_schema::live::{Listed, TableVisitor};
use pglive_schema::tables::visit_tables;
use pglive_testkit::random::{self, Spec};
use pglive_testkit::{CaptureMode, Client, TestDb, TestServer, fresh, fresh_count, in_both_modes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

type Fresh = for<'a> fn(&'a TestDb, String) -> BoxFuture<'a, Vec<Value>>;

struct Table {
    spec: Spec,
    fresh: Fresh,
}

fn fresh_of<T: Listed>(db: &TestDb, sql: String) -> BoxFuture<'_, Vec<Value>> {
    Box::pin(async move { fresh::<T>(db, &sql).await })
}

struct Tables(Vec<Table>);

impl TableVisitor for Tables {
    fn visit<T: Listed>(&mut self) {
        self.0.push(Table {
            spec: Spec::of::<T>(),
            fresh: fresh_of::<T>,
        });
    }
}

fn tables() -> Vec<Table> {
    let mut tables = Tables(Vec::new());
    visit_tables(&mut tables);
    tables.0
}

async fn converge(table: &Table, all: &[Table], seed: u64, mode: CaptureMode) {
    let db = TestDb::new().await;
    let server = TestServer::start_in(&db, mode).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conn = db.conn().await;
    // Rows in every table, in declaration order so that references to
    // earlier tables find rows.
    for t in all {
        let rows: Vec<String> = (0..15).map(|_| random::insert(&mut rng, &t.spec)).collect();
        random::transaction(&mut conn, &rows).await;
    }
    let mut clients: Vec<(Client, Value, String, Option<String>)> = Vec::new();
    let mut pending = Vec::new();
    for step in 0..200 {
        if step % 20 == 0 {
            let q = random::counted_query(&mut rng, &table.spec);
            let mut c = Client::connect(&server).await;
            c.subscribe("p", q.json.clone()).await;
            clients.push((c, q.json, q.sql, q.count_sql));
        }
        // Mostly this table; now and then another, whose changes may reach
        // this one (cascading deletes, say).
        let target = if rng.random_bool(0.15) {
            &all[rng.random_range(0..all.len())].spec
        } else {
            &table.spec
        };
        pending.push(random::write(&mut rng, target));
        if pending.len() >= rng.random_range(1..4) {
            random::transaction(&mut conn, &pending).await;
            pending.clear();
        }
        // Let clients read now and then so that both diffs and backlog occur.
        if step % 7 == 0 {
            for (c, ..) in &mut clients {
                c.drain(Duration::from_millis(1)).await;
            }
        }
    }
    random::transaction(&mut conn, &pending).await;
    for (c, query, sql, count_sql) in &mut clients {
        let want = (table.fresh)(&db, sql.clone()).await;
        let count = match count_sql {
            Some(sql) => Some(fresh_count(&db, None, sql).await),
            None => None,
        };
        let ok = c
            .until(|c| c.has("p") && c.rows("p") == want && c.count("p") == count)
            .await;
        assert!(
            ok,
            "seed {seed}, table {}: {query} diverged from\n  {sql}\n got {:?} (count {:?})\nwant {:?} (count {count:?})\nerrors {:?}",
            table.spec.name,
            c.rows("p"),
            c.count("p"),
            want,
            c.errors
        );
        assert!(c.errors.is_empty(), "{query}: {:?}", c.errors);
        println!(
            "{} rows, {} diffs, {} snapshots: {query}",
            c.len("p"),
            c.subs["p"].diffs,
            c.subs["p"].snapshots
        );
    }
    server.stop().await;
}

in_both_modes!(every_table_converges_under_random_writes);

async fn every_table_converges_under_random_writes(mode: CaptureMode) {
    let all = tables();
    for seed in random::seeds() {
        println!("seed {seed} ({mode:?} capture)");
        for table in &all {
            converge(table, &all, seed, mode).await;
        }
    }
}
