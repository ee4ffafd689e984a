//! The writer: W transactions at rate R through one PostgreSQL connection,
//! each row operation tagged with a unique marker.
//!
//! It uses tokio-postgres directly rather than diesel-async: the writes are
//! three fixed statements that must run as prepared single round trips with
//! the commit observed as precisely as possible, the stats queries are plain
//! catalog SQL, and tokio-postgres is already in the build (diesel-async's
//! PostgreSQL backend is built on it), so it costs nothing extra.
//!
//! The writer runs on its own OS thread with its own current-thread runtime:
//! commit times are taken when the COMMIT's reply is read, and a runtime busy
//! with 10,000 client sockets would stamp them late (which would flatter the
//! latency numbers).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::db;
use crate::shared::{KIND_DELETE, KIND_INSERT, KIND_UPDATE, Shared, seq_tag};
use crate::workload::{Mix, Table};

#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub table: Table,
    /// Seeded rows (ids 1..=rows).
    pub rows: usize,
    /// Transactions.
    pub writes: usize,
    /// Row operations per transaction.
    pub batch: usize,
    /// Transactions per second; 0 = back to back.
    pub rate: f64,
    pub mix: Mix,
    pub seed: u64,
    pub prefix: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct WriterOutcome {
    pub transactions: usize,
    pub operations: usize,
    pub inserts: usize,
    pub updates: usize,
    pub deletes: usize,
    /// UPDATE/DELETE statements by primary key: one index scan and one row
    /// fetched each, subtracted from the table statistics.
    pub keyed_operations: usize,
    /// Statements prepared (each is one implicit transaction in PostgreSQL).
    pub prepared: usize,
    pub first_commit_us: u64,
    pub last_commit_us: u64,
    /// Achieved transactions per second.
    pub achieved_rate: f64,
    /// Commit round trip of each transaction, µs.
    #[serde(skip)]
    pub round_trips_us: Vec<u32>,
    pub error: Option<String>,
    /// The writer's own backend pid (excluded from PostgreSQL CPU).
    pub backend_pid: Option<i32>,
}

/// Connects and prepares; returns the connection ready to write. Done before
/// the "before" statistics snapshot.
pub struct Writer {
    client: tokio_postgres::Client,
    rt: tokio::runtime::Runtime,
    ins: tokio_postgres::Statement,
    upd: tokio_postgres::Statement,
    del: tokio_postgres::Statement,
    pub backend_pid: i32,
}

impl Writer {
    /// Builds the writer's own runtime and connection (call from a plain thread).
    pub fn open(plan: &Plan) -> Result<Writer> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("writer runtime")?;
        let (client, ins, upd, del, backend_pid) = rt.block_on(async {
            let (client, pid) = db::connect_writer(&plan.url).await?;
            let (ins, upd, del) = match plan.table {
                Table::Items => (
                    "/* pglive-bench */ INSERT INTO items (name) VALUES ($1) RETURNING id::bigint",
                    "/* pglive-bench */ UPDATE items SET name = $1 WHERE id = $2::bigint",
                    "/* pglive-bench */ DELETE FROM items WHERE id = $1::bigint",
                ),
                Table::Tasks { .. } => (
                    "/* pglive-bench */ INSERT INTO tasks (title, assignee) VALUES ($1, $2) RETURNING id::bigint",
                    "/* pglive-bench */ UPDATE tasks SET title = $1 WHERE id = $2::bigint",
                    "/* pglive-bench */ DELETE FROM tasks WHERE id = $1::bigint",
                ),
            };
            let ins = client.prepare(ins).await.context("prepare INSERT")?;
            let upd = client.prepare(upd).await.context("prepare UPDATE")?;
            let del = client.prepare(del).await.context("prepare DELETE")?;
            anyhow::Ok((client, ins, upd, del, pid))
        })?;
        Ok(Writer {
            client,
            rt,
            ins,
            upd,
            del,
            backend_pid,
        })
    }

    /// Runs the plan; blocking (call on the writer's own thread).
    pub fn run(self, plan: &Plan, shared: &Shared) -> WriterOutcome {
        let mut out = WriterOutcome {
            prepared: 3,
            backend_pid: Some(self.backend_pid),
            ..WriterOutcome::default()
        };
        let Writer {
            mut client,
            rt,
            ins,
            upd,
            del,
            backend_pid: _,
        } = self;
        let stmts = Statements { ins, upd, del };
        if let Err(e) = rt.block_on(write_all(&mut client, &stmts, plan, shared, &mut out)) {
            out.error = Some(format!("{e:#}"));
        }
        // Closing the connection flushes its statistics in PostgreSQL.
        drop(client);
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        rt.shutdown_timeout(Duration::from_secs(2));
        out
    }
}

struct Statements {
    ins: tokio_postgres::Statement,
    upd: tokio_postgres::Statement,
    del: tokio_postgres::Statement,
}

async fn write_all(
    client: &mut tokio_postgres::Client,
    stmts: &Statements,
    plan: &Plan,
    shared: &Shared,
    out: &mut WriterOutcome,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let groups = match plan.table {
        Table::Items => 1,
        Table::Tasks { groups } => groups.max(1),
    };
    let per_group = (plan.rows / groups).max(1);
    // A DELETE removes the oldest row the bench inserted, once it is at
    // least this many operations old (so that clients have seen it).
    let min_age = if plan.rate > 0.0 {
        ((plan.rate * plan.batch as f64) as usize).max(20)
    } else {
        50
    };
    let mut last_marker: HashMap<i64, usize> = HashMap::new();
    let mut live: VecDeque<(i64, usize, u32)> = VecDeque::new();
    let start = Instant::now();
    let start_tokio = tokio::time::Instant::now();
    for t in 0..plan.writes {
        if plan.rate > 0.0 {
            let due = start_tokio + Duration::from_secs_f64(t as f64 / plan.rate);
            tokio::time::sleep_until(due).await;
        }
        let mut ops = Vec::with_capacity(plan.batch);
        for b in 0..plan.batch {
            let seq = t * plan.batch + b;
            let roll = rng.random_range(0..100u32);
            let pick_group = |rng: &mut StdRng| -> u32 {
                u32::try_from(rng.random_range(0..groups)).unwrap_or(0)
            };
            let op = if roll < plan.mix.update {
                None
            } else if roll < plan.mix.update + plan.mix.insert {
                Some(KIND_INSERT)
            } else {
                Some(KIND_DELETE)
            };
            let op = match op {
                Some(KIND_DELETE) => match live.front() {
                    Some(&(_, ins_seq, _)) if seq - ins_seq >= min_age => KIND_DELETE,
                    _ => KIND_UPDATE,
                },
                Some(k) => k,
                None => KIND_UPDATE,
            };
            let slot = &shared.slots[seq];
            let marker = format!("{}{}", plan.prefix, seq);
            match op {
                KIND_INSERT => {
                    let g = pick_group(&mut rng);
                    slot.group.store(g, Ordering::Release);
                    slot.kind.store(KIND_INSERT, Ordering::Release);
                    ops.push(Op::Insert {
                        seq,
                        marker,
                        group: g,
                    });
                }
                KIND_DELETE => {
                    let Some((id, ins_seq, g)) = live.pop_front() else {
                        anyhow::bail!("internal: no row to delete");
                    };
                    slot.group.store(g, Ordering::Release);
                    slot.prev.store(seq_tag(ins_seq), Ordering::Release);
                    slot.kind.store(KIND_DELETE, Ordering::Release);
                    shared.publish_delete(seq, usize::try_from(id).unwrap_or(0));
                    ops.push(Op::Delete { id });
                }
                _ => {
                    let g = pick_group(&mut rng);
                    let k = rng.random_range(0..per_group);
                    let id = i64::try_from(g as usize + 1 + groups * k)
                        .context("row id out of range")?;
                    if let Some(prev) = last_marker.insert(id, seq) {
                        slot.prev.store(seq_tag(prev), Ordering::Release);
                    }
                    slot.group.store(g, Ordering::Release);
                    slot.kind.store(KIND_UPDATE, Ordering::Release);
                    ops.push(Op::Update { id, marker });
                }
            }
        }
        let began = Instant::now();
        let inserted = execute(client, stmts, &ops, plan).await?;
        let done = Instant::now();
        let commit_us =
            u64::try_from(done.duration_since(shared.t0).as_micros()).unwrap_or(u64::MAX);
        for (seq, id, g) in inserted {
            live.push_back((id, seq, g));
        }
        for b in 0..plan.batch {
            shared.slots[t * plan.batch + b]
                .commit_us
                .store(commit_us + 1, Ordering::Release);
        }
        if t == 0 {
            out.first_commit_us = commit_us;
        }
        out.last_commit_us = commit_us;
        out.transactions += 1;
        out.round_trips_us
            .push(u32::try_from(done.duration_since(began).as_micros()).unwrap_or(u32::MAX));
        for op in &ops {
            out.operations += 1;
            match op {
                Op::Insert { .. } => out.inserts += 1,
                Op::Update { .. } => {
                    out.updates += 1;
                    out.keyed_operations += 1;
                }
                Op::Delete { .. } => {
                    out.deletes += 1;
                    out.keyed_operations += 1;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    out.achieved_rate = if secs > 0.0 {
        out.transactions as f64 / secs
    } else {
        0.0
    };
    Ok(())
}

/// Executes one transaction; returns the inserted rows (seq, id, group).
async fn execute(
    client: &mut tokio_postgres::Client,
    stmts: &Statements,
    ops: &[Op],
    plan: &Plan,
) -> Result<Vec<(usize, i64, u32)>> {
    let mut inserted = Vec::new();
    if let [op] = ops {
        if let Some(row) = exec_one(&*client, stmts, op, plan).await? {
            inserted.push(row);
        }
        return Ok(inserted);
    }
    let tx = client.transaction().await.context("BEGIN")?;
    for op in ops {
        if let Some(row) = exec_one(&tx, stmts, op, plan).await? {
            inserted.push(row);
        }
    }
    tx.commit().await.context("COMMIT")?;
    Ok(inserted)
}

enum Op {
    Insert {
        seq: usize,
        marker: String,
        group: u32,
    },
    Update {
        id: i64,
        marker: String,
    },
    Delete {
        id: i64,
    },
}

async fn exec_one<C: tokio_postgres::GenericClient>(
    client: &C,
    stmts: &Statements,
    op: &Op,
    plan: &Plan,
) -> Result<Option<(usize, i64, u32)>> {
    match op {
        Op::Insert { seq, marker, group } => {
            let row = match plan.table {
                Table::Items => client.query_one(&stmts.ins, &[marker]).await,
                Table::Tasks { .. } => {
                    let assignee = format!("user-{group}");
                    client.query_one(&stmts.ins, &[marker, &assignee]).await
                }
            }
            .context("INSERT")?;
            let id: i64 = row.try_get(0).context("INSERT … RETURNING id")?;
            Ok(Some((*seq, id, *group)))
        }
        Op::Update { id, marker } => {
            let n = client
                .execute(&stmts.upd, &[marker, id])
                .await
                .context("UPDATE")?;
            anyhow::ensure!(n == 1, "UPDATE of id {id} touched {n} rows");
            Ok(None)
        }
        Op::Delete { id } => {
            let n = client.execute(&stmts.del, &[id]).await.context("DELETE")?;
            anyhow::ensure!(n == 1, "DELETE of id {id} touched {n} rows");
            Ok(None)
        }
    }
}
