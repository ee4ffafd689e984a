//! The load of scenario W: N writer connections running single-row
//! autocommit statements back to back for a fixed time, pgbench-like.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::config::WriteOp;
use crate::db;

/// N writers for a fixed time, on their own OS thread and runtime (a
/// runtime busy with subscriber sockets would slow them down).
pub struct WriteJob {
    pub url: String,
    pub table: &'static str,
    pub op: WriteOp,
    pub writers: usize,
    pub rows: usize,
    pub duration: Duration,
    /// `<prefix><case>.`: each write's value is this plus `<w>.<n>`.
    pub prefix: String,
    pub seed: u64,
}

pub struct WriteOutcome {
    pub transactions: u64,
    pub seconds: f64,
    pub round_trips_us: Vec<u32>,
}

impl WriteJob {
    /// Runs the writers; blocking (call on a thread of their own).
    pub fn run(self) -> Result<WriteOutcome> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("writers' runtime")?;
        rt.block_on(self.run_async())
    }

    async fn run_async(self) -> Result<WriteOutcome> {
        let sql = match self.op {
            WriteOp::Insert => format!(
                "/* pglive-bench */ INSERT INTO {} (name) VALUES ($1)",
                self.table
            ),
            WriteOp::Update => format!(
                "/* pglive-bench */ UPDATE {} SET name = $1 WHERE id = $2",
                self.table
            ),
        };
        // Connections and statements are ready before the clock starts,
        // like pgbench's; the cluster's settings are used as they are.
        let mut conns = Vec::with_capacity(self.writers);
        for _ in 0..self.writers {
            let c = db::connect(&self.url).await?;
            let st = c.prepare(&sql).await.context("prepare")?;
            conns.push((c, st));
        }
        let start = Instant::now();
        let deadline = start + self.duration;
        let rows = i64::try_from(self.rows).context("too many rows")?;
        let mut tasks = JoinSet::new();
        for (i, (c, st)) in conns.into_iter().enumerate() {
            let w = i + 1;
            let prefix = self.prefix.clone();
            let op = self.op;
            let mut rng = StdRng::seed_from_u64(self.seed * 1_000 + w as u64);
            tasks.spawn(async move {
                let mut n: u64 = 0;
                let mut rts = Vec::new();
                while Instant::now() < deadline {
                    n += 1;
                    let value = format!("{prefix}{w}.{n}");
                    let began = Instant::now();
                    let done = match op {
                        WriteOp::Insert => c.execute(&st, &[&value]).await,
                        WriteOp::Update => {
                            let id: i64 = rng.random_range(1..=rows);
                            c.execute(&st, &[&value, &id]).await
                        }
                    };
                    done.with_context(|| format!("writer {w}: {}", op.name()))?;
                    rts.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                anyhow::Ok((n, rts, Instant::now()))
            });
        }
        let mut transactions = 0;
        let mut round_trips_us = Vec::new();
        let mut end = start;
        while let Some(r) = tasks.join_next().await {
            let (n, rts, finished) = r.context("a writer panicked")??;
            transactions += n;
            round_trips_us.extend(rts);
            end = end.max(finished);
        }
        Ok(WriteOutcome {
            transactions,
            seconds: end.duration_since(start).as_secs_f64(),
            round_trips_us,
        })
    }
}
