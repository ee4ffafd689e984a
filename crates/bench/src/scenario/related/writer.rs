//! REL's writer: single-statement writes on `comments` straight to
//! PostgreSQL as the table owner, on random watched tasks, at an open-loop
//! rate, on an OS thread of its own (as the other scenarios' writers). It
//! keeps every comment's task, so that it knows each task's count after
//! each write: what a client watching that task must end up showing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::params::WriteKind;

/// One write as the writer did it.
#[derive(Debug, Clone, Serialize)]
pub struct OpRecord {
    pub insert: bool,
    /// The task the comment left (a move), and its count after the write.
    pub from: Option<(i64, u64)>,
    /// The task the comment went to (or was inserted on), and its count
    /// after the write.
    pub to: (i64, u64),
    /// When the statement was sent (µs since t0): no client can have
    /// seen the write before.
    pub sent_us: u64,
    /// When it returned, committed (µs since t0).
    pub commit_us: u64,
    pub round_trip_us: u32,
}

impl OpRecord {
    /// The tasks the write changed, each with its count after it.
    pub fn touched(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.from.into_iter().chain(std::iter::once(self.to))
    }
}

/// One call of [`CommentWriter::write`], for the writer thread.
struct Job {
    writes: usize,
    rate: f64,
    /// The job's writes, sent once by the writer thread when it is done.
    reply: tokio::sync::oneshot::Sender<Result<Vec<OpRecord>>>,
}

/// The writer: its thread, driven by jobs.
pub struct CommentWriter {
    /// The writer thread's work. Dropping the writer closes it, and the
    /// thread ends.
    jobs: std::sync::mpsc::Sender<Job>,
}

impl CommentWriter {
    /// Connects as the admin role (it owns `comments`), with its own table
    /// statistics off: the foreign-key check of each write and a move's
    /// lookup by key are then not counted, so the table statistics count
    /// pglive's reads only. Writes go to tasks `1..=watched`; `t0` is the
    /// run's clock.
    pub async fn open(
        url: &str,
        watched: i64,
        kind: WriteKind,
        seed: u64,
        t0: Instant,
    ) -> Result<CommentWriter> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let url = url.to_string();
        std::thread::Builder::new()
            .name("pglive-bench-comment-writer".into())
            .spawn(move || writer_thread(&url, watched, kind, seed, t0, &rx, ready_tx))
            .context("starting the writer thread")?;
        ready_rx.await.context("writer thread ended")??;
        Ok(CommentWriter { jobs })
    }

    /// Runs `writes` writes at `rate` per second.
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

fn us(t: Instant, t0: Instant) -> u64 {
    u64::try_from(t.duration_since(t0).as_micros()).unwrap_or(u64::MAX)
}

/// What the writer knows of the table: every comment's task and every
/// task's count.
struct Known {
    comments: Vec<(String, i64)>,
    counts: HashMap<i64, u64>,
}

fn writer_thread(
    url: &str,
    watched: i64,
    kind: WriteKind,
    seed: u64,
    t0: Instant,
    jobs: &std::sync::mpsc::Receiver<Job>,
    ready: tokio::sync::oneshot::Sender<Result<()>>,
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
        let (client, _pid) = crate::db::connect_writer(url).await?;
        let mut known = Known {
            comments: Vec::new(),
            counts: HashMap::new(),
        };
        for row in client
            .query(
                "SELECT id::text, task_id::bigint FROM comments ORDER BY id",
                &[],
            )
            .await
            .context("reading the comments' tasks")?
        {
            let task: i64 = row.try_get(1)?;
            known.comments.push((row.try_get(0)?, task));
            *known.counts.entry(task).or_default() += 1;
        }
        // After the read above: that one is the set-up's, not a write's.
        client
            .batch_execute("SET track_counts = off")
            .await
            .context("SET track_counts")?;
        let ins = client
            .prepare(
                "/* pglive-bench */ INSERT INTO comments (task_id, author, body) \
                 VALUES ($1::bigint::int, 'bench', $2) RETURNING id::text",
            )
            .await
            .context("prepare INSERT")?;
        let mv = client
            .prepare(
                "/* pglive-bench */ UPDATE comments SET task_id = $1::bigint::int WHERE id = $2::text::uuid",
            )
            .await
            .context("prepare UPDATE")?;
        anyhow::Ok((client, known, ins, mv))
    });
    let (client, mut known, ins, mv) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
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
                let insert = match kind {
                    WriteKind::Insert => true,
                    WriteKind::Move => false,
                    WriteKind::Both => seq.is_multiple_of(2),
                } || known.comments.is_empty()
                    || watched < 2;
                let sent = Instant::now();
                let (from, to) = if insert {
                    let task = rng.random_range(1..=watched.max(1));
                    let row = client
                        .query_one(&ins, &[&task, &format!("bench comment {seq}")])
                        .await
                        .context("INSERT")?;
                    known.comments.push((row.try_get(0)?, task));
                    let n = known.counts.entry(task).or_default();
                    *n += 1;
                    (None, (task, *n))
                } else {
                    let i = rng.random_range(0..known.comments.len());
                    let old = known.comments[i].1;
                    let mut task = rng.random_range(1..watched);
                    // Another task than its own, uniformly.
                    if task >= old {
                        task += 1;
                    }
                    let n = client
                        .execute(&mv, &[&task, &known.comments[i].0])
                        .await
                        .context("UPDATE")?;
                    anyhow::ensure!(
                        n == 1,
                        "moving comment {} updated {n} rows",
                        known.comments[i].0
                    );
                    known.comments[i].1 = task;
                    let left = known.counts.entry(old).or_default();
                    *left = left.saturating_sub(1);
                    let left = *left;
                    let got = known.counts.entry(task).or_default();
                    *got += 1;
                    (Some((old, left)), (task, *got))
                };
                let done = Instant::now();
                out.push(OpRecord {
                    insert,
                    from,
                    to,
                    sent_us: us(sent, t0),
                    commit_us: us(done, t0),
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
