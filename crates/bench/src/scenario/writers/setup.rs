//! One setup of scenario W: a database, pglive (unless unwatched) and its
//! subscribers, and the cases run against them one after the other.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};

use super::config::{Config, Mode, WriteOp};
use super::load::WriteJob;
use super::result::CaseResult;
use super::subscribers::Subscribers;
use crate::ctx::Ctx;
use crate::db;
use crate::report::percentiles;
use crate::server::{self, ServerProc};
use crate::workload::Table;

/// pglive's counters read around each case.
const W_METRICS: &[&str] = &[
    "pglive_notifications_total",
    "pglive_refreshes_total",
    "pglive_diffs_total",
    "pglive_snapshots_total",
    "pglive_frames_sent_total",
    "pglive_frames_dropped_total",
    "pglive_lagging_resyncs_total",
    "pglive_slow_clients_closed_total",
];
/// `items_unwatched`: a copy of `items` with the same columns, indexes,
/// defaults and `updated_at` trigger but none of pglive's triggers, with its
/// own sequence, holding the same rows.
async fn make_unwatched_copy(url: &str) -> Result<()> {
    let c = db::connect(url).await?;
    c.batch_execute(
        "CREATE TABLE items_unwatched (LIKE items INCLUDING ALL);
         CREATE SEQUENCE items_unwatched_id_seq OWNED BY items_unwatched.id;
         ALTER TABLE items_unwatched ALTER COLUMN id SET DEFAULT nextval('items_unwatched_id_seq');
         CREATE TRIGGER pglive_touch_updated_at BEFORE UPDATE ON items_unwatched
             FOR EACH ROW EXECUTE FUNCTION pglive_touch();
         INSERT INTO items_unwatched SELECT * FROM items ORDER BY id;
         SELECT setval('items_unwatched_id_seq', (SELECT max(id) FROM items_unwatched));
         ALTER TABLE items_unwatched SET (autovacuum_enabled = off, toast.autovacuum_enabled = off);",
    )
    .await
    .context("creating items_unwatched")?;
    // Separately: a multi-statement batch is one transaction, and VACUUM
    // refuses to run in one.
    c.batch_execute("VACUUM ANALYZE items_unwatched")
        .await
        .context("VACUUM items_unwatched")?;
    Ok(())
}

/// One database, one server (unless unwatched), its subscribers, and the
/// cases run against them one after the other.
pub struct Setup<'a> {
    pub ctx: &'a Ctx,
    pub cfg: &'a Config,
    pub bin: &'a Path,
    pub mode: Mode,
    pub subscribers: usize,
    pub db_name: &'a str,
    pub prefix: &'a str,
    pub first_case: u32,
}
impl Setup<'_> {
    fn table(&self) -> &'static str {
        match self.mode {
            Mode::Unwatched => "items_unwatched",
            Mode::Notify | Mode::Wal | Mode::Recvlogical => "items",
        }
    }

    /// Runs the setup's cases, filling `cases` in.
    pub async fn run(&self, cases: &mut [CaseResult]) -> Result<()> {
        let ctx = self.ctx;
        eprintln!(
            "pglive-bench: W: {} with {} subscribers",
            self.mode.name(),
            self.subscribers
        );
        db::create_database(&ctx.admin, self.db_name).await?;
        let url = db::url_with_db(&ctx.admin_url, self.db_name);
        db::migrate(self.bin, &url).await?;
        db::seed(&url, Table::Items, self.cfg.rows, true).await?;
        if self.mode == Mode::Unwatched {
            make_unwatched_copy(&url).await?;
        }
        if self.mode == Mode::Recvlogical {
            let peer = Recvlogical::start(ctx, &url, self.db_name).await?;
            let out = self.with_server(None, &url, cases).await;
            peer.stop(ctx, cases).await;
            return out;
        }
        let mut server = if self.mode == Mode::Unwatched {
            None
        } else {
            let log = ctx.out_dir.join(format!(
                "w-{}-{}-pglive-{}.log",
                self.mode.name(),
                self.subscribers,
                ctx.stamp
            ));
            let extra: &[&str] = if self.mode == Mode::Wal {
                &["--capture", "wal"]
            } else {
                &[]
            };
            Some(server::start_pglive(self.bin, &url, &log, extra).await?)
        };
        let out = self.with_server(server.as_mut(), &url, cases).await;
        if let Some(s) = server {
            s.stop(Duration::from_secs(10)).await;
        }
        out
    }

    async fn with_server(
        &self,
        mut server: Option<&mut ServerProc>,
        url: &str,
        cases: &mut [CaseResult],
    ) -> Result<()> {
        let mut subscribers = Subscribers::new(self.prefix);
        if let (Some(srv), true) = (server.as_deref_mut(), self.subscribers > 0) {
            subscribers.connect(srv, self.subscribers, self.cfg).await?;
        }
        for (case_no, case) in (self.first_case..).zip(cases.iter_mut()) {
            let op = if case.op == "insert" {
                WriteOp::Insert
            } else {
                WriteOp::Update
            };
            case.subscribers_ready = subscribers.shared.ready.load(Ordering::Acquire);
            let r = self
                .run_case(server.as_deref(), url, &subscribers, case_no, op, case)
                .await;
            if let Err(e) = r {
                case.error = Some(format!("{e:#}"));
            }
            if let Some(status) = server.as_deref_mut().and_then(ServerProc::exited) {
                anyhow::bail!("pglive exited during the run ({status})");
            }
        }
        subscribers.stop(cases).await;
        Ok(())
    }

    async fn run_case(
        &self,
        server: Option<&ServerProc>,
        url: &str,
        subscribers: &Subscribers,
        case_no: u32,
        op: WriteOp,
        case: &mut CaseResult,
    ) -> Result<()> {
        let table = self.table();
        // Every case starts from the same state of the table's pages and of
        // the WAL: no dead rows from the previous case, no checkpoint due.
        let c = db::connect(url).await?;
        c.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .context("VACUUM")?;
        drop(c);
        self.ctx
            .admin
            .batch_execute("CHECKPOINT")
            .await
            .context("CHECKPOINT")?;
        subscribers.start_case(case_no);
        let metrics_before = match server {
            Some(s) => server::metrics(s.port, W_METRICS).await,
            None => None,
        };
        let cpu_before = server.and_then(|s| server::cpu_seconds(s.pid));
        eprintln!(
            "pglive-bench: W: case {case_no}: {} writers, {}, {}, {} subscribers, {} s",
            case.writers,
            op.name(),
            self.mode.name(),
            self.subscribers,
            self.cfg.duration_s
        );
        let job = WriteJob {
            url: url.to_string(),
            table,
            op,
            writers: case.writers,
            rows: self.cfg.rows,
            duration: Duration::from_secs_f64(self.cfg.duration_s),
            prefix: format!("{}{case_no}.", self.prefix),
            seed: u64::from(case_no),
        };
        // The writers' outcome, sent once by their thread when they are done.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("pglive-bench-writers".into())
            .spawn(move || {
                let _ = tx.send(job.run());
            })
            .context("starting the writers' thread")?;
        let out = rx.await.context("the writers' thread ended")??;
        case.transactions = out.transactions;
        case.seconds = out.seconds;
        case.tps = if out.seconds > 0.0 {
            out.transactions as f64 / out.seconds
        } else {
            0.0
        };
        case.commit_ms = percentiles(out.round_trips_us);
        eprintln!(
            "pglive-bench: W: case {case_no}: {} transactions in {:.2} s: {:.0} tx/s",
            case.transactions, case.seconds, case.tps
        );

        if self.subscribers > 0 && server.is_some() {
            subscribers.check(url, self.cfg, case_no, case).await?;
        }
        case.server_cpu_s = server
            .and_then(|s| server::cpu_seconds(s.pid))
            .zip(cpu_before)
            .map(|(a, b)| a - b);
        if let (Some(s), Some(before)) = (server, metrics_before)
            && let Some(after) = server::metrics(s.port, W_METRICS).await
        {
            for (i, name) in W_METRICS.iter().enumerate() {
                if let (Some(Some(a)), Some(Some(b))) = (after.get(i), before.get(i)) {
                    case.metrics.insert((*name).to_string(), a - b);
                }
            }
        }
        Ok(())
    }
}

/// The `recvlogical` peer: the database switched to WAL capture (its
/// publication `pglive`, the triggers quiet), a slot of its own, and
/// `pg_recvlogical` streaming it with pgoutput into /dev/null. It does
/// nothing with a change but receive it and confirm its position (every
/// 10 s, pg_recvlogical's default): what any logical-replication consumer
/// costs the writers at least.
struct Recvlogical {
    child: tokio::process::Child,
    slot: String,
    url: String,
    cpu_before: Option<f64>,
}

impl Recvlogical {
    async fn start(ctx: &Ctx, url: &str, db_name: &str) -> Result<Recvlogical> {
        let c = db::connect(url).await?;
        c.batch_execute("SELECT pglive_capture_mode('wal')")
            .await
            .context("switching the database to WAL capture")?;
        drop(c);
        let slot = format!("{db_name}_recvlogical");
        let created = tokio::process::Command::new("pg_recvlogical")
            .args([
                "-d",
                url,
                "--slot",
                &slot,
                "--create-slot",
                "-P",
                "pgoutput",
            ])
            .output()
            .await
            .context("running pg_recvlogical (Debian: postgresql-client)")?;
        anyhow::ensure!(
            created.status.success(),
            "pg_recvlogical --create-slot: {}",
            String::from_utf8_lossy(&created.stderr).trim()
        );
        let log = ctx.out_dir.join(format!("w-recvlogical-{}.log", ctx.stamp));
        let log =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = tokio::process::Command::new("pg_recvlogical")
            .args([
                "-d",
                url,
                "--slot",
                &slot,
                "--start",
                "--no-loop",
                "-o",
                "proto_version=1",
                "-o",
                "publication_names=pglive",
                "-f",
                "/dev/null",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting pg_recvlogical")?;
        let cpu_before = child.id().and_then(server::cpu_seconds);
        Ok(Recvlogical {
            child,
            slot,
            url: url.to_owned(),
            cpu_before,
        })
    }

    /// Stops it, notes its CPU over the whole setup, and drops its slot.
    async fn stop(mut self, ctx: &Ctx, cases: &mut [CaseResult]) {
        let cpu = self
            .child
            .id()
            .and_then(server::cpu_seconds)
            .zip(self.cpu_before)
            .map(|(a, b)| a - b);
        if let Ok(Some(status)) = self.child.try_wait() {
            for c in cases.iter_mut() {
                c.notes
                    .push(format!("pg_recvlogical exited during the run ({status})"));
                c.error
                    .get_or_insert_with(|| "pg_recvlogical exited".into());
            }
        }
        let _ = self.child.kill().await;
        if let Some(cpu) = cpu {
            for c in cases.iter_mut() {
                c.notes.push(format!(
                    "pg_recvlogical CPU over the setup's cases: {cpu:.2} s"
                ));
            }
        }
        let dropped = tokio::process::Command::new("pg_recvlogical")
            .args(["-d", &self.url, "--slot", &self.slot, "--drop-slot"])
            .output()
            .await;
        if !dropped.is_ok_and(|o| o.status.success()) {
            let _ = ctx
                .admin
                .batch_execute(&format!("SELECT pg_drop_replication_slot('{}')", self.slot))
                .await;
        }
    }
}
