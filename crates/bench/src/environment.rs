//! Everything the runs need before the first one starts: the results
//! directory, the admin connection (leftover bench databases dropped), and
//! each server's binary or sources, prepared when the plan runs it (a
//! server that cannot run is dropped from the plan, or its runs fail).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::Cli;
use crate::ctx::Ctx;
use crate::plan::Plan;
use crate::scenario::fanout::Target;
use crate::{db, floor, machine, peer};

/// The prepared context and what the results say about it.
pub struct Environment {
    pub ctx: Ctx,
    /// The repository the bench runs in.
    pub root: PathBuf,
    pub postgres_version: Option<String>,
    pub node_version: Option<String>,
}

/// The newer of target/release/pglive and target/debug/pglive.
fn find_pglive(root: &Path) -> Result<PathBuf, String> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for p in [
        root.join("target/release/pglive"),
        root.join("target/debug/pglive"),
    ] {
        if let Ok(m) = std::fs::metadata(&p).and_then(|m| m.modified())
            && best.as_ref().is_none_or(|(t, _)| m > *t)
        {
            best = Some((m, p));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| {
        format!(
            "no pglive binary in {}/target/{{release,debug}}: build it with `cargo build --release -p pglive-server` (or pass --pglive-bin)",
            root.display()
        )
    })
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    let mut s = String::new();
    for _ in 0..6 {
        let d = (x % 36) as u32;
        s.push(char::from_digit(d, 36).unwrap_or('x'));
        x /= 36;
    }
    s
}

/// Prepares everything `plan` needs; drops from it the servers a smoke run
/// (or a clone without the floor's sources) cannot run.
pub async fn prepare(cli: &Cli, plan: &mut Plan) -> Result<Environment> {
    let smoke = plan.smoke;
    let writers_scenario = plan.writers.is_some();
    let root = machine::repo_root();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let admin_url = db::admin_url(cli.database_url.as_deref(), &root)?;
    let admin = db::connect(&admin_url).await?;
    db::drop_leftovers(&admin).await?;
    let pg_version = admin
        .query_one("SHOW server_version", &[])
        .await
        .ok()
        .and_then(|r| r.try_get::<_, String>(0).ok());

    let pglive_bin = match &cli.pglive_bin {
        Some(p) if p.exists() => Ok(p.clone()),
        Some(p) => Err(format!("--pglive-bin {} does not exist", p.display())),
        None => find_pglive(&root),
    };
    let pglive_only = writers_scenario || !plan.tenants.is_empty() || !plan.related.is_empty();
    if plan.wants(Target::Pglive) || pglive_only {
        match &pglive_bin {
            Ok(p) => eprintln!("pglive-bench: pglive binary {}", p.display()),
            Err(e) if smoke || pglive_only => {
                anyhow::bail!("{e}")
            }
            Err(e) => eprintln!("pglive-bench: warning: {e}"),
        }
    }
    let mut peer_dir = Err("not requested".to_string());
    let mut node_version = None;
    if plan.wants(Target::Peer) {
        let src = cli
            .peer_dir
            .clone()
            .unwrap_or_else(|| root.join("../shared/peers/seed-node"));
        let npm_timeout = Duration::from_secs(if smoke { 25 } else { 300 });
        peer_dir = peer::prepare(&src, &out_dir, &cli.node, npm_timeout).await;
        match &peer_dir {
            Ok(_) => {
                node_version = tokio::process::Command::new(&cli.node)
                    .arg("--version")
                    .output()
                    .await
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            }
            Err(e) if smoke => {
                eprintln!("pglive-bench: smoke: skipping the peer: {e}");
                plan.drop_target(Target::Peer);
            }
            Err(e) => eprintln!("pglive-bench: warning: the peer cannot run: {e}"),
        }
    }
    let mut floor = Err("not requested".to_string());
    if plan.wants(Target::Floor) {
        let src = cli
            .floor_dir
            .clone()
            .unwrap_or_else(|| root.join("../shared/peers/floor-rs"));
        let timeout = Duration::from_secs(if smoke { 300 } else { 900 });
        match floor::prepare(&src, &out_dir, timeout).await {
            Ok(f) => {
                eprintln!("pglive-bench: floor binary {}", f.bin.display());
                floor = Ok(f);
            }
            // A clone without ../shared has no floor: not a failure.
            Err(e) if e.is_missing() || smoke => {
                eprintln!("pglive-bench: {e}");
                plan.drop_target(Target::Floor);
            }
            Err(e) => {
                eprintln!("pglive-bench: warning: the floor cannot run: {e}");
                floor = Err(e.to_string());
            }
        }
    }

    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let ctx = Ctx {
        admin,
        admin_url,
        out_dir,
        pglive_bin,
        peer_dir,
        floor,
        node: cli.node.clone(),
        run_id: run_id(),
        stamp,
    };
    Ok(Environment {
        ctx,
        root,
        postgres_version: pg_version,
        node_version,
    })
}
