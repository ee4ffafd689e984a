//! `pglive-bench`: the load generator behind `just bench`.
//!
//! For each scenario it runs pglive, the fan-out floor and the article's
//! Node.js server (the peer) one after the other on identical, freshly
//! created databases: N WebSocket clients subscribe, W marked writes go
//! through PostgreSQL at rate R, and every client records when each write
//! reaches it. Scenario W instead measures what watching a table costs its
//! writers; REL what related rows (a page of tasks with their newest
//! comments and counts) cost per change, beside S2. See docs/benchmarks.md
//! for the method and the latest results.
//!
//! Its modules depend one way (none names a module above it), lowest first:
//!
//! - `workload`, `report`, `scan`, `shared`, `server`, `floor`, `peer`,
//!   `connection` (the connections, over `pglive_testkit::Client`), then
//!   `db` → `pgstats`; `writer` (on `db`, `shared`); `machine` (on
//!   `server`); `ctx` (on `floor`);
//! - `scenario`: the scenarios and their drivers, on all of the above;
//! - `cli` → `plan` (on `scenario`) → `environment`; `results` (on
//!   `scenario`, `machine`) → `runs`;
//! - this module, on top.

mod cli;
mod connection;
mod ctx;
mod db;
mod environment;
mod floor;
mod machine;
mod peer;
mod pgstats;
mod plan;
mod report;
mod results;
mod runs;
mod scan;
mod scenario;
mod server;
mod shared;
mod workload;
mod writer;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::Cli;
use crate::plan::Plan;
use crate::results::{Output, Results};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.workers.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pglive-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let res = rt.block_on(real_main(cli));
    rt.shutdown_timeout(Duration::from_secs(2));
    match res {
        Ok(code) => code,
        Err(e) => {
            server::kill_all_children();
            eprintln!("pglive-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn real_main(cli: Cli) -> Result<ExitCode> {
    let mut plan = Plan::of(&cli)?;
    machine::raise_nofile(plan.max_clients() as u64 + 1024);

    // Watchdog: whatever happens, the process ends.
    let total = plan.deadline_s();
    std::thread::Builder::new()
        .name("pglive-bench-watchdog".into())
        .spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(total));
            eprintln!("pglive-bench: global deadline of {total:.0} s exceeded; giving up");
            server::kill_all_children();
            std::process::exit(3);
        })
        .context("starting the watchdog")?;

    let env = environment::prepare(&cli, &mut plan).await?;
    let ctx = &env.ctx;
    let results = Results {
        tool: "pglive-bench",
        started_at: chrono::Utc::now().to_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine::machine(env.postgres_version.clone(), env.node_version.clone()),
        pglive_bin: ctx
            .pglive_bin
            .as_ref()
            .ok()
            .map(|p| p.display().to_string()),
        git: machine::git_revision(&env.root),
        scenarios: Vec::new(),
        floor_ratio_spreads: Vec::new(),
        writers: None,
        tenant_scenarios: Vec::new(),
        related_scenarios: Vec::new(),
    };
    let json_path = cli.out.clone().unwrap_or_else(|| {
        ctx.out_dir
            .join(format!("{}-{}.json", plan.which, ctx.stamp))
    });
    let mut out = Output::new(results, json_path);
    let mut failed = false;
    if let Some(wc) = &plan.writers {
        failed |= runs::writers(ctx, wc, &mut out).await?;
    }
    failed |= runs::fanout(ctx, plan.fanout, cli.repeat, &mut out).await?;
    failed |= runs::tenants(ctx, plan.tenants, &mut out).await?;
    failed |= runs::related(ctx, plan.related, &mut out).await?;
    // A smoke variant always fails the run when something is wrong; a
    // tenant scenario that could not run (e.g. --partition-hint without the
    // partition hint in the database) fails it too.
    let strict_tenants = out.results.tenant_scenarios.iter().any(|t| {
        t.params.smoke || t.rls.as_ref().is_some_and(|r| !r.ok) || t.reconnect.iter().any(|r| !r.ok)
    }) || out.results.related_scenarios.iter().any(|r| r.params.smoke);
    println!(
        "results: {} (tables: {})",
        out.json_path.display(),
        out.md_path.display()
    );
    if (plan.smoke || cli.strict || strict_tenants) && failed {
        eprintln!("pglive-bench: FAILED: errors or missing deliveries (see above)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
