//! Scenario W, all its setups one after the other: each on a database and
//! a server of its own, then the ratios to the unwatched copy.

use std::time::Duration;

use anyhow::{Context, Result};

use super::config::{Config, Mode};
use super::result::{CaseResult, PgSettings, WritersResult};
use super::setup::Setup;
use crate::ctx::Ctx;
use crate::{db, server};

/// Runs scenario W; never fails (errors land in the result).
pub async fn run(ctx: &Ctx, cfg: &Config) -> WritersResult {
    let mut res = WritersResult {
        config: Some(cfg.clone()),
        ..WritersResult::default()
    };
    match read_settings(&ctx.admin).await {
        Ok(s) => {
            if s.fsync != "on" || s.synchronous_commit != "on" {
                let note = format!(
                    "this cluster runs with fsync = {}, synchronous_commit = {}: commits cost \
                     less than on a durable server, so these figures are not comparable with \
                     issue 10's pgbench ones (start the cluster with PGLIVE_PG_DURABLE=1 dev/pg.sh start)",
                    s.fsync, s.synchronous_commit
                );
                eprintln!("pglive-bench: W: warning: {note}");
                res.notes.push(note);
            }
            res.settings = s;
        }
        Err(e) => res
            .notes
            .push(format!("could not read the settings: {e:#}")),
    }
    let bin = match &ctx.pglive_bin {
        Ok(b) => Some(b.clone()),
        Err(e) => {
            res.notes.push(e.clone());
            None
        }
    };
    let capture = match &bin {
        Some(b) if cfg.modes.contains(&Mode::Wal) => match server::pglive_has_capture(b).await {
            Ok(c) => Some(c),
            Err(e) => {
                res.notes.push(format!("{e:#}"));
                Some(false)
            }
        },
        _ => None,
    };
    res.capture_supported = capture;
    let prefix = format!("bm-{}-w", ctx.run_id);
    let mut case_no: u32 = 1;
    for (mode, subs) in cfg.setups() {
        let mut cases = Vec::new();
        for &op in &cfg.ops {
            for &w in &cfg.writers {
                cases.push(CaseResult {
                    mode: mode.name().into(),
                    subscribers: subs,
                    op: op.name().into(),
                    writers: w,
                    ..CaseResult::default()
                });
            }
        }
        if mode == Mode::Wal && capture != Some(true) {
            for c in &mut cases {
                c.skipped = Some("n/a (server lacks --capture)".into());
            }
            res.cases.extend(cases);
            continue;
        }
        let Some(bin) = bin.as_deref() else {
            for c in &mut cases {
                c.error = Some("no pglive binary".into());
            }
            res.cases.extend(cases);
            continue;
        };
        let db_name = format!(
            "pglive_bench_{}_w_{}_{}",
            std::process::id(),
            mode.name(),
            subs
        );
        let first_case = case_no;
        case_no += u32::try_from(cases.len()).unwrap_or(0);
        let setup = Setup {
            ctx,
            cfg,
            bin,
            mode,
            subscribers: subs,
            db_name: &db_name,
            prefix: &prefix,
            first_case,
        };
        let limit = Duration::from_secs_f64(cfg.setup_deadline_s(subs));
        match tokio::time::timeout(limit, setup.run(&mut cases)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let e = format!("{e:#}");
                for c in cases
                    .iter_mut()
                    .filter(|c| c.tps == 0.0 && c.error.is_none())
                {
                    c.error = Some(e.clone());
                }
            }
            Err(_) => {
                for c in cases
                    .iter_mut()
                    .filter(|c| c.tps == 0.0 && c.error.is_none())
                {
                    c.error = Some(format!(
                        "the setup did not finish within {:.0} s",
                        limit.as_secs_f64()
                    ));
                }
            }
        }
        if let Err(e) = db::drop_database(&ctx.admin, &db_name).await {
            res.notes.push(format!("could not drop {db_name}: {e:#}"));
        }
        res.cases.extend(cases);
    }
    // Another `dev/pg.sh start` (without PGLIVE_PG_DURABLE) may have
    // reloaded the cluster meanwhile.
    if let Ok(after) = read_settings(&ctx.admin).await
        && (after.fsync != res.settings.fsync
            || after.synchronous_commit != res.settings.synchronous_commit)
    {
        res.notes.push(format!(
            "the cluster's settings changed during the run: fsync {} → {}, synchronous_commit {} → {}",
            res.settings.fsync, after.fsync, res.settings.synchronous_commit, after.synchronous_commit
        ));
    }
    // Ratios to the unwatched copy with the same statement and writers.
    let base: Vec<(String, usize, f64)> = res
        .cases
        .iter()
        .filter(|c| c.mode == "unwatched" && c.tps > 0.0)
        .map(|c| (c.op.clone(), c.writers, c.tps))
        .collect();
    for c in &mut res.cases {
        if c.tps > 0.0 {
            c.ratio_to_unwatched = base
                .iter()
                .find(|(o, w, _)| *o == c.op && *w == c.writers)
                .map(|(_, _, t)| c.tps / t);
        }
    }
    // WAL capture beside the bare logical-replication consumer.
    let peer: Vec<(String, usize, f64)> = res
        .cases
        .iter()
        .filter(|c| c.mode == Mode::Recvlogical.name() && c.tps > 0.0)
        .map(|c| (c.op.clone(), c.writers, c.tps))
        .collect();
    for c in &mut res.cases {
        if c.mode == Mode::Wal.name() && c.tps > 0.0 {
            c.ratio_to_recvlogical = peer
                .iter()
                .find(|(o, w, _)| *o == c.op && *w == c.writers)
                .map(|(_, _, t)| c.tps / t);
        }
    }
    res
}

async fn read_settings(admin: &tokio_postgres::Client) -> Result<PgSettings> {
    let get = |name: &'static str| async move {
        admin
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .with_context(|| format!("SHOW {name}"))?
            .try_get::<_, String>(0)
            .context(name)
    };
    Ok(PgSettings {
        fsync: get("fsync").await?,
        synchronous_commit: get("synchronous_commit").await?,
        full_page_writes: get("full_page_writes").await?,
        wal_level: get("wal_level").await?,
    })
}
