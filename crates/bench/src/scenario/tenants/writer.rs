//! The tenant-aware writer of RLS and RECONNECT: single-row writes on
//! `items`, each marked, on a tenant picked at random.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::receiver::LiveShared;

/// One write as the writer did it.
#[derive(Debug, Clone, Serialize)]
pub struct OpRecord {
    /// Index into the writer's tenant list.
    pub tenant: u32,
    pub id: i64,
    pub insert: bool,
    /// When its COMMIT returned (µs since t0).
    pub commit_us: u64,
    pub round_trip_us: u32,
}

/// One call of [`TenantWriter::write`], for the writer thread.
struct Job {
    writes: usize,
    rate: f64,
    /// The job's writes, sent once by the writer thread when it is done.
    reply: tokio::sync::oneshot::Sender<Result<Vec<OpRecord>>>,
}

/// Single-row UPDATEs (70 %) and INSERTs (30 %) on `items`, each with the
/// marker `<prefix><seq>` as its name, on a tenant picked at random, at an
/// open-loop rate, on an OS thread of its own (as the S1–S6 writer).
pub struct TenantWriter {
    /// The writer thread's work. Dropping the writer closes it, and the
    /// thread ends.
    jobs: std::sync::mpsc::Sender<Job>,
}

impl TenantWriter {
    /// Connects (as the admin role: it owns `items` and bypasses its
    /// policies) and loads every row's tenant. Its writes carry the run's
    /// markers and are timed from the run's t0.
    pub async fn open(
        url: &str,
        tenants: &[String],
        run: &LiveShared,
        seed: u64,
    ) -> Result<TenantWriter> {
        let (tenants, prefix, t0) = (tenants.to_vec(), run.prefix.clone(), run.t0);
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        // The thread's backend pid once connected, or why it could not; sent
        // once by the thread.
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<i32>>();
        let url = url.to_string();
        std::thread::Builder::new()
            .name("pglive-bench-tenant-writer".into())
            .spawn(move || writer_thread(&url, &tenants, &prefix, seed, t0, &rx, ready_tx))
            .context("starting the writer thread")?;
        ready_rx.await.context("writer thread ended")??;
        Ok(TenantWriter { jobs })
    }

    /// Runs `writes` writes at `rate` per second; the next markers follow
    /// on from the previous call's.
    pub async fn write(&self, writes: usize, rate: f64) -> Result<Vec<OpRecord>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job {
                writes,
                rate,
                reply,
            })
            .map_err(|_| anyhow::anyhow!("the writer thread ended"))?;
        rx.await.context("the writer thread ended")?
    }
}

fn writer_thread(
    url: &str,
    tenants: &[String],
    prefix: &str,
    seed: u64,
    t0: Instant,
    jobs: &std::sync::mpsc::Receiver<Job>,
    ready: tokio::sync::oneshot::Sender<Result<i32>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(anyhow::Error::new(e).context("writer runtime")));
            return;
        }
    };
    let opened = rt.block_on(async {
        let (client, pid) = crate::db::connect_writer(url).await?;
        let mut ids: Vec<Vec<i64>> = vec![Vec::new(); tenants.len()];
        let index: HashMap<&str, usize> = tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        for row in client
            .query("SELECT id::bigint, tenant FROM items ORDER BY id", &[])
            .await
            .context("reading the rows' tenants")?
        {
            let id: i64 = row.try_get(0)?;
            let tenant: String = row.try_get(1)?;
            if let Some(&i) = index.get(tenant.as_str()) {
                ids[i].push(id);
            }
        }
        let ins = client
            .prepare("/* pglive-bench */ INSERT INTO items (name, tenant) VALUES ($1, $2) RETURNING id::bigint")
            .await
            .context("prepare INSERT")?;
        let upd = client
            .prepare("/* pglive-bench */ UPDATE items SET name = $1 WHERE id = $2::bigint")
            .await
            .context("prepare UPDATE")?;
        anyhow::Ok((client, pid, ids, ins, upd))
    });
    let (client, pid, mut ids, ins, upd) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(pid));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq = 0usize;
    while let Ok(job) = jobs.recv() {
        let res = rt.block_on(async {
            let mut out = Vec::with_capacity(job.writes);
            let start = tokio::time::Instant::now();
            for k in 0..job.writes {
                if job.rate > 0.0 {
                    let at = start + Duration::from_secs_f64(k as f64 / job.rate);
                    tokio::time::sleep_until(at).await;
                }
                let t = rng.random_range(0..tenants.len().max(1));
                let name = format!("{prefix}{seq}");
                let insert = ids[t].is_empty() || rng.random_range(0..100u32) < 30;
                let sent = Instant::now();
                let id = if insert {
                    let row = client
                        .query_one(&ins, &[&name, &tenants[t]])
                        .await
                        .context("INSERT")?;
                    let id: i64 = row.try_get(0)?;
                    ids[t].push(id);
                    id
                } else {
                    let id = ids[t][rng.random_range(0..ids[t].len())];
                    client
                        .execute(&upd, &[&name, &id])
                        .await
                        .context("UPDATE")?;
                    id
                };
                let done = Instant::now();
                out.push(OpRecord {
                    tenant: u32::try_from(t).unwrap_or(u32::MAX),
                    id,
                    insert,
                    commit_us: u64::try_from(done.duration_since(t0).as_micros())
                        .unwrap_or(u64::MAX),
                    round_trip_us: u32::try_from(done.duration_since(sent).as_micros())
                        .unwrap_or(u32::MAX),
                });
                seq += 1;
            }
            anyhow::Ok(out)
        });
        let _ = job.reply.send(res);
    }
}

/// Per client, per operation: when the client had that write or a later
/// write to the same row (µs since t0, +1; 0 = never). A later write to the
/// same row stands for an earlier one that a coalesced diff skipped.
pub fn effective_receipts(ops: &[OpRecord], recv: &[u32]) -> Vec<u32> {
    let mut next_on_row: HashMap<i64, usize> = HashMap::new();
    let mut succ = vec![usize::MAX; ops.len()];
    for (s, op) in ops.iter().enumerate().rev() {
        if let Some(&n) = next_on_row.get(&op.id) {
            succ[s] = n;
        }
        next_on_row.insert(op.id, s);
    }
    let mut eff = vec![0u32; ops.len()];
    for s in (0..ops.len()).rev() {
        let own = recv.get(s).copied().unwrap_or(0);
        eff[s] = if own != 0 {
            own
        } else if succ[s] != usize::MAX {
            eff[succ[s]]
        } else {
            0
        };
    }
    eff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: i64) -> OpRecord {
        OpRecord {
            tenant: 0,
            id,
            insert: false,
            commit_us: 0,
            round_trip_us: 0,
        }
    }

    #[test]
    fn superseded_writes_count_when_the_later_one_arrives() {
        let ops = vec![op(1), op(2), op(1), op(1)];
        // Op 0 was coalesced into op 2; op 3 never arrived.
        let eff = effective_receipts(&ops, &[0, 5, 9, 0]);
        assert_eq!(eff, vec![9, 5, 9, 0]);
    }
}
