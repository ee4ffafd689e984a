//! `pglive-bench`: the load generator behind `just bench`.
//!
//! For each scenario it runs pglive, the fan-out floor and the article's
//! Node.js server (the peer) one after the other on identical, freshly
//! created databases: N WebSocket clients subscribe, W marked writes go
//! through PostgreSQL at rate R, and every client records when each write
//! reaches it. Scenario W instead measures what watching a table costs its
//! writers. See docs/benchmarks.md for the method and the latest results.

mod client;
mod db;
mod floor;
mod live;
mod report;
mod run;
mod scan;
mod scenario;
mod server;
mod shared;
mod tenants;
mod writer;
mod writers;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::report::TargetReport;
use crate::run::{Ctx, Target};
use crate::scenario::{Overrides, Params};
use crate::writer::Mix;

#[derive(Debug, Parser)]
#[command(
    name = "pglive-bench",
    about = "Load generator: pglive side by side with the fan-out floor and the article's Node.js server",
    after_help = "Scenarios: S1 100 clients/1,000 rows/20 writes/s; S2 1,000 clients/10,000 rows/20 writes/s; \
S3 100 clients/2,000 writes as fast as possible; S4 5,000 clients/10 writes/s; S5 10,000 clients/10 writes/s; \
S6 2,000 clients on distinct filtered task queries; all = S1..S6; smoke = 4 clients, 20 writes, then RLS-SMOKE and RECONNECT-SMOKE (for `just test`); \
RLS (pglive only) = 1,000 clients in 100 tenants with their own JWTs under row-level security, 20 writes/s (--partition-hint: pglive_watch('items', partition => 'tenant') first); \
RECONNECT (pglive only) = 1,000 clients on 10,000 items drop and reconnect during writes, resume (since) vs snapshot; \
W (writers) = writer throughput on an unwatched copy of items vs watched by pglive (NOTIFY, WAL), \
1 and 8 writers, INSERT and UPDATE, with 0 and --clients (1,000) subscribers, --duration (10) s per case.\n\
Targets by default: pglive,floor,peer for S2, S4, S5; pglive,peer otherwise.\n\
Database: --database-url / PGLIVE_BENCH_DATABASE_URL, else DATABASE_URL, else `dev/pg.sh start`."
)]
struct Cli {
    /// S1, S2, S3, S4, S5, S6, all, smoke, W (writers), RLS, RLS-SMOKE, RECONNECT or RECONNECT-SMOKE.
    scenario: String,
    /// RLS: number of tenants (clients are spread evenly over them).
    #[arg(long)]
    tenants: Option<usize>,
    /// RLS: run `SELECT pglive_watch('items', partition => 'tenant')` before
    /// the server starts (fails when the migrations lack the partition hint).
    #[arg(long)]
    partition_hint: bool,
    /// Number of WebSocket clients (W: subscribers of its "with subscribers" cases).
    #[arg(long)]
    clients: Option<usize>,
    /// Rows loaded before the run (items; tasks for S6).
    #[arg(long)]
    rows: Option<usize>,
    /// Write transactions per second (0 = as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Number of write transactions (default: rate × duration).
    #[arg(long)]
    writes: Option<usize>,
    /// Seconds of writing (writes = rate × duration; W: seconds per case).
    #[arg(long)]
    duration: Option<f64>,
    /// Row operations per transaction (1 = single-row autocommit writes).
    #[arg(long)]
    batch: Option<usize>,
    /// Operation mix, e.g. update=60,insert=20,delete=20 (the default).
    #[arg(long)]
    mix: Option<Mix>,
    /// Which servers to run, comma-separated: pglive, floor, peer (default:
    /// pglive,floor,peer for S2, S4, S5; pglive,peer for the others).
    #[arg(long)]
    targets: Option<String>,
    /// Where to write the JSON results (default target/bench/<scenario>-<time>.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Admin URL of PostgreSQL (needs CREATEDB).
    #[arg(long, env = "PGLIVE_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// The pglive binary (default: the newer of target/release/pglive and target/debug/pglive).
    #[arg(long, env = "PGLIVE_BIN")]
    pglive_bin: Option<PathBuf>,
    /// The peer's sources (default ../shared/peers/seed-node beside the repository).
    #[arg(long)]
    peer_dir: Option<PathBuf>,
    /// The floor's sources (default ../shared/peers/floor-rs beside the repository).
    #[arg(long)]
    floor_dir: Option<PathBuf>,
    /// W: numbers of writer connections, comma-separated.
    #[arg(long, default_value = "1,8")]
    writers: String,
    /// W: the single-row operations, comma-separated: update, insert.
    #[arg(long, default_value = "update,insert")]
    ops: String,
    /// W: the capture modes, comma-separated: unwatched, notify, wal.
    #[arg(long, default_value = "unwatched,notify,wal")]
    modes: String,
    /// The node executable.
    #[arg(long, default_value = "node")]
    node: String,
    /// Clients connecting at the same time.
    #[arg(long)]
    connect_concurrency: Option<usize>,
    /// Seconds of idle time between the connect phase and the first write.
    #[arg(long)]
    settle: Option<f64>,
    /// Seconds without any frame that end the tail after the last write.
    #[arg(long)]
    quiet: Option<f64>,
    /// Longest tail after the last write, seconds.
    #[arg(long)]
    tail_timeout: Option<f64>,
    /// Hard limit for one server's run, seconds.
    #[arg(long)]
    deadline: Option<f64>,
    /// Random seed of the write plan (identical for both servers).
    #[arg(long)]
    seed: Option<u64>,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Exit non-zero when a run has errors or missing deliveries (always on for smoke).
    #[arg(long)]
    strict: bool,
    /// S1–S6: run each scenario this many times, the servers' order
    /// alternating from run to run, and report the median and range of the
    /// pglive ÷ floor ratios over the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
}

#[derive(Debug, Serialize)]
struct Machine {
    nproc: usize,
    mem_total_mib: Option<u64>,
    cpu_model: Option<String>,
    kernel: Option<String>,
    postgres: Option<String>,
    node: Option<String>,
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    params: Params,
    /// Which of `--repeat` runs this was (1-based).
    round: u32,
    pglive: Option<TargetReport>,
    floor: Option<TargetReport>,
    peer: Option<TargetReport>,
    /// pglive ÷ floor in this run (when both ran).
    floor_ratios: Option<report::FloorRatios>,
}

#[derive(Debug, Serialize)]
struct Results {
    tool: &'static str,
    started_at: String,
    command: String,
    machine: Machine,
    pglive_bin: Option<String>,
    /// `git rev-parse HEAD` of the repository, `+dirty` with local changes
    /// under crates/ or migrations/.
    git: Option<String>,
    scenarios: Vec<ScenarioResult>,
    /// With `--repeat`: each scenario's ratios to the floor over its runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    floor_ratio_spreads: Vec<report::FloorRatioSpread>,
    /// Scenario W, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    writers: Option<writers::WritersResult>,
    /// Scenarios RLS and RECONNECT (and their smoke variants).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tenant_scenarios: Vec<TenantResult>,
}

#[derive(Debug, Serialize)]
struct TenantResult {
    params: tenants::TParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    rls: Option<tenants::RlsReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reconnect: Vec<tenants::ReconnectReport>,
}

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

fn repo_root() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if compiled.join("Cargo.toml").exists() {
        compiled.canonicalize().unwrap_or(compiled)
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    }
}

/// Raises RLIMIT_NOFILE to the hard limit (children inherit it) and warns
/// when that is too low for `need` descriptors.
fn raise_nofile(need: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum;
    let new = Rlimit {
        current: hard,
        maximum: hard,
    };
    if let Err(e) = setrlimit(Resource::Nofile, new) {
        eprintln!("pglive-bench: warning: could not raise RLIMIT_NOFILE: {e}");
    }
    if let Some(h) = hard
        && h < need
    {
        eprintln!(
            "pglive-bench: warning: the hard open-file limit is {h}, but this run needs about {need} \
                 (clients + servers' sockets); raise it (e.g. `ulimit -Hn {need}` as root, or \
                 /etc/security/limits.conf) or use fewer --clients"
        );
    }
}

fn machine(postgres: Option<String>, node: Option<String>) -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_mib: server::parse_status_kb(&meminfo, "MemTotal").map(|kb| kb / 1024),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string()),
        postgres,
        node,
    }
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

/// Copies the peer into target/bench/seed-node and installs its
/// node_modules (npm ci) when missing or stale.
async fn prepare_peer(
    src: &Path,
    out_dir: &Path,
    node: &str,
    npm_timeout: Duration,
) -> Result<PathBuf, String> {
    let inner = async {
        anyhow::ensure!(
            src.join("server.js").exists(),
            "the peer is not at {} (pass --peer-dir)",
            src.display()
        );
        let node_ok = tokio::process::Command::new(node)
            .arg("--version")
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        anyhow::ensure!(
            node_ok,
            "{node} is not runnable (Node.js 18+ is needed for the peer)"
        );
        let dst = out_dir.join("seed-node");
        std::fs::create_dir_all(&dst)?;
        let mut changed = false;
        for f in [
            "package.json",
            "package-lock.json",
            "server.js",
            "schema.sql",
        ] {
            let from = src.join(f);
            if !from.exists() {
                continue;
            }
            let new =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            let to = dst.join(f);
            if std::fs::read(&to).ok().as_deref() != Some(new.as_slice()) {
                std::fs::write(&to, &new).with_context(|| format!("writing {}", to.display()))?;
                changed = true;
            }
        }
        if changed || !dst.join("node_modules").exists() {
            eprintln!("pglive-bench: npm ci in {}", dst.display());
            let out = tokio::time::timeout(
                npm_timeout,
                tokio::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dst)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .context("npm ci took too long")?
            .context("running npm ci")?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(dst.join("node_modules"));
                anyhow::bail!(
                    "npm ci failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(dst)
    };
    inner.await.map_err(|e: anyhow::Error| format!("{e:#}"))
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

/// Parses `--targets`.
fn parse_targets(list: &str) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let t = match t {
            "pglive" => Target::Pglive,
            "peer" | "seed-node" | "node" => Target::Peer,
            "floor" | "floor-rs" => Target::Floor,
            other => anyhow::bail!("unknown target {other:?}: pglive, floor or peer"),
        };
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    anyhow::ensure!(!targets.is_empty(), "no targets");
    Ok(targets)
}

async fn real_main(cli: Cli) -> Result<ExitCode> {
    let which = cli.scenario.to_ascii_lowercase();
    let smoke = which == "smoke";
    let writers_scenario = matches!(which.as_str(), "w" | "writers");
    let names: Vec<String> = match which.as_str() {
        "all" => scenario::NAMES.iter().map(|s| s.to_string()).collect(),
        _ if writers_scenario || tenants::is_name(&which) => Vec::new(),
        _ => vec![cli.scenario.clone()],
    };
    let tenant_names: Vec<&str> = match which.as_str() {
        "smoke" => vec!["RLS-SMOKE", "RECONNECT-SMOKE"],
        w if tenants::is_name(w) => vec![w],
        _ => Vec::new(),
    };
    let toverrides = tenants::TOverrides {
        clients: cli.clients,
        tenants: cli.tenants,
        rows: cli.rows,
        rate: cli.rate,
        writes: cli.writes,
        duration: cli.duration,
        seed: cli.seed,
        connect_concurrency: cli.connect_concurrency,
        settle: cli.settle,
        quiet: cli.quiet,
        tail_timeout: cli.tail_timeout,
        deadline: cli.deadline,
        partition_hint: cli.partition_hint,
    };
    let tplans: Vec<tenants::TParams> = tenant_names
        .iter()
        .map(|n| tenants::params(n, &toverrides))
        .collect::<Result<_>>()?;
    anyhow::ensure!(
        !cli.partition_hint || tplans.iter().any(|p| p.kind == tenants::Kind::Rls),
        "--partition-hint applies to the RLS scenarios only"
    );
    let overrides = Overrides {
        clients: cli.clients,
        rows: cli.rows,
        rate: cli.rate,
        writes: cli.writes,
        duration: cli.duration,
        batch: cli.batch,
        mix: cli.mix,
        seed: cli.seed,
        connect_concurrency: cli.connect_concurrency,
        settle: cli.settle,
        quiet: cli.quiet,
        tail_timeout: cli.tail_timeout,
        deadline: cli.deadline,
    };
    let params: Vec<Params> = names
        .iter()
        .map(|n| scenario::params(n, &overrides))
        .collect::<Result<_>>()?;
    let explicit_targets = cli.targets.as_deref().map(parse_targets).transpose()?;
    // Each scenario's targets: --targets, else the scenario's defaults.
    let plan: Vec<(Params, Vec<Target>)> = params
        .into_iter()
        .map(|p| {
            let t = match &explicit_targets {
                Some(t) => t.clone(),
                None => parse_targets(scenario::default_targets(&p.name))?,
            };
            anyhow::Ok((p, t))
        })
        .collect::<Result<_>>()?;
    // Repeated runs of a scenario follow each other; every other one runs
    // the servers in reverse order, so that neither always goes first
    // (a drifting machine would otherwise favour one of them).
    let mut plan: Vec<(Params, Vec<Target>, u32)> = plan
        .into_iter()
        .flat_map(|(p, t)| {
            (1..=cli.repeat).map(move |round| {
                let mut t = t.clone();
                if round % 2 == 0 {
                    t.reverse();
                }
                (p.clone(), t, round)
            })
        })
        .collect();
    let wconfig = if writers_scenario {
        Some(writers::Config::from_flags(
            cli.writers.as_str(),
            cli.ops.as_str(),
            cli.modes.as_str(),
            cli.clients,
            cli.rows,
            cli.duration,
            cli.connect_concurrency,
            cli.tail_timeout,
            cli.quiet,
        )?)
    } else {
        None
    };

    let max_clients = plan
        .iter()
        .map(|(p, _, _)| p.clients)
        .chain(wconfig.iter().map(|w| w.subscribers))
        .chain(tplans.iter().map(|p| p.clients))
        .max()
        .unwrap_or(1) as u64;
    raise_nofile(max_clients + 1024);

    // Watchdog: whatever happens, the process ends. Building the floor (a
    // few minutes at most on a cold cache) comes on top of the runs.
    let total: f64 = plan
        .iter()
        .map(|(p, ts, _)| p.deadline_s * ts.len() as f64)
        .sum::<f64>()
        + wconfig.as_ref().map_or(0.0, writers::Config::deadline_s)
        + tplans
            .iter()
            .map(|p| match p.kind {
                tenants::Kind::Rls => p.deadline_s,
                tenants::Kind::Reconnect => 2.0 * p.deadline_s,
            })
            .sum::<f64>()
        + if wants(&plan, Target::Floor) {
            900.0
        } else {
            0.0
        }
        + 240.0;
    std::thread::Builder::new()
        .name("pglive-bench-watchdog".into())
        .spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(total));
            eprintln!("pglive-bench: global deadline of {total:.0} s exceeded; giving up");
            server::kill_all_children();
            std::process::exit(3);
        })
        .context("starting the watchdog")?;

    let root = repo_root();
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
    if wants(&plan, Target::Pglive) || writers_scenario || !tplans.is_empty() {
        match &pglive_bin {
            Ok(p) => eprintln!("pglive-bench: pglive binary {}", p.display()),
            Err(e) if smoke || writers_scenario || !tplans.is_empty() => anyhow::bail!("{e}"),
            Err(e) => eprintln!("pglive-bench: warning: {e}"),
        }
    }
    let mut peer_dir = Err("not requested".to_string());
    let mut node_version = None;
    if wants(&plan, Target::Peer) {
        let src = cli
            .peer_dir
            .clone()
            .unwrap_or_else(|| root.join("../shared/peers/seed-node"));
        let npm_timeout = Duration::from_secs(if smoke { 25 } else { 300 });
        peer_dir = prepare_peer(&src, &out_dir, &cli.node, npm_timeout).await;
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
                drop_target(&mut plan, Target::Peer);
            }
            Err(e) => eprintln!("pglive-bench: warning: the peer cannot run: {e}"),
        }
    }
    let mut floor = Err("not requested".to_string());
    if wants(&plan, Target::Floor) {
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
                drop_target(&mut plan, Target::Floor);
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
        out_dir: out_dir.clone(),
        pglive_bin: pglive_bin.clone(),
        peer_dir,
        floor,
        node: cli.node.clone(),
        run_id: run_id(),
        stamp: stamp.clone(),
    };
    let mut results = Results {
        tool: "pglive-bench",
        started_at: chrono::Utc::now().to_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(pg_version, node_version),
        pglive_bin: pglive_bin.as_ref().ok().map(|p| p.display().to_string()),
        git: git_revision(&root),
        scenarios: Vec::new(),
        floor_ratio_spreads: Vec::new(),
        writers: None,
        tenant_scenarios: Vec::new(),
    };
    let out_path = cli
        .out
        .clone()
        .unwrap_or_else(|| out_dir.join(format!("{which}-{stamp}.json")));
    let md_path = out_path.with_extension("md");
    let mut failed = false;
    let mut markdown = String::new();
    if let Some(wc) = &wconfig {
        let res = writers::run(&ctx, wc).await;
        failed |= res.failed();
        let text = format!(
            "\n== W: {}\n{}",
            wc.description(),
            writers::table(&res, false)
        );
        println!("{text}");
        markdown.push_str(&format!(
            "\n### W: {}\n\n{}",
            wc.description(),
            writers::table(&res, true)
        ));
        results.writers = Some(res);
        write_json(&out_path, &results)?;
        std::fs::write(&md_path, &markdown)
            .with_context(|| format!("writing {}", md_path.display()))?;
    }
    for (p, targets, round) in plan {
        if targets.is_empty() {
            eprintln!("pglive-bench: {}: no target can run; skipped", p.name);
            continue;
        }
        let run_name = if cli.repeat > 1 {
            format!("{} (run {round} of {})", p.name, cli.repeat)
        } else {
            p.name.clone()
        };
        eprintln!(
            "pglive-bench: {} — {} clients, {} rows, {} writes at {}, batch {}, mix {}; targets {}",
            run_name,
            p.clients,
            p.rows,
            p.writes,
            if p.rate > 0.0 {
                format!("{}/s", p.rate)
            } else {
                "full speed".into()
            },
            p.batch,
            p.mix,
            targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut res = ScenarioResult {
            params: p.clone(),
            round,
            pglive: None,
            floor: None,
            peer: None,
            floor_ratios: None,
        };
        for &t in &targets {
            let rep = run::run_target(&ctx, &p, t).await;
            failed |= !rep.ok
                || rep.deliveries.missing > 0
                || rep.ready < p.clients
                || rep.error_frames > 0;
            match t {
                Target::Pglive => res.pglive = Some(rep),
                Target::Floor => res.floor = Some(rep),
                Target::Peer => res.peer = Some(rep),
            }
        }
        res.floor_ratios = report::FloorRatios::of(res.pglive.as_ref(), res.floor.as_ref());
        let reports: Vec<&TargetReport> =
            [res.pglive.as_ref(), res.floor.as_ref(), res.peer.as_ref()]
                .into_iter()
                .flatten()
                .collect();
        let summary = res
            .floor_ratios
            .as_ref()
            .map(|r| format!("{}\n", r.summary()))
            .unwrap_or_default();
        let text = format!(
            "\n== {}: {}\n{}{summary}",
            run_name,
            p.description,
            report::table(&reports, false)
        );
        println!("{text}");
        markdown.push_str(&format!(
            "\n### {}: {}\n\n{}{}",
            run_name,
            p.description,
            report::table(&reports, true),
            if summary.is_empty() {
                String::new()
            } else {
                format!("\n{summary}")
            }
        ));
        results.scenarios.push(res);
        if cli.repeat > 1 && round == cli.repeat {
            let runs: Vec<&report::FloorRatios> = results
                .scenarios
                .iter()
                .filter(|r| r.params.name == p.name)
                .filter_map(|r| r.floor_ratios.as_ref())
                .collect();
            if !runs.is_empty() {
                let spread = report::FloorRatioSpread::of(&p.name, &runs);
                println!("{}\n", spread.summary());
                markdown.push_str(&format!("\n{}\n", spread.summary()));
                results.floor_ratio_spreads.push(spread);
            }
        }
        // Written after every scenario, so a long `all` leaves partial results.
        write_json(&out_path, &results)?;
        std::fs::write(&md_path, &markdown)
            .with_context(|| format!("writing {}", md_path.display()))?;
    }
    for p in tplans {
        eprintln!("pglive-bench: {} — {}", p.name, p.description);
        let mut res = TenantResult {
            params: p.clone(),
            rls: None,
            reconnect: Vec::new(),
        };
        let table = match p.kind {
            tenants::Kind::Rls => {
                let rep = tenants::run_rls(&ctx, &p).await;
                failed |= rep.failed();
                let t = (
                    tenants::rls_table(&[&rep], false),
                    tenants::rls_table(&[&rep], true),
                );
                res.rls = Some(rep);
                t
            }
            tenants::Kind::Reconnect => {
                for resume in [true, false] {
                    let rep = tenants::run_reconnect(&ctx, &p, resume).await;
                    // Every resubscribe must be answered `resumed` in the smoke.
                    failed |= rep.failed(resume && p.smoke);
                    res.reconnect.push(rep);
                }
                let reps: Vec<&tenants::ReconnectReport> = res.reconnect.iter().collect();
                (
                    tenants::reconnect_table(&reps, false),
                    tenants::reconnect_table(&reps, true),
                )
            }
        };
        println!("\n== {}: {}\n{}", p.name, p.description, table.0);
        markdown.push_str(&format!(
            "\n### {}: {}\n\n{}",
            p.name, p.description, table.1
        ));
        results.tenant_scenarios.push(res);
        write_json(&out_path, &results)?;
        std::fs::write(&md_path, &markdown)
            .with_context(|| format!("writing {}", md_path.display()))?;
    }
    // A smoke variant always fails the run when something is wrong; a
    // tenant scenario that could not run (e.g. --partition-hint without the
    // partition hint in the database) fails it too.
    let strict_tenants = results.tenant_scenarios.iter().any(|t| {
        t.params.smoke || t.rls.as_ref().is_some_and(|r| !r.ok) || t.reconnect.iter().any(|r| !r.ok)
    });
    println!(
        "results: {} (tables: {})",
        out_path.display(),
        md_path.display()
    );
    if (smoke || cli.strict || strict_tenants) && failed {
        eprintln!("pglive-bench: FAILED: errors or missing deliveries (see above)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether some scenario of the plan runs `t`.
fn wants(plan: &[(Params, Vec<Target>, u32)], t: Target) -> bool {
    plan.iter().any(|(_, ts, _)| ts.contains(&t))
}

/// Removes `t` from every scenario of the plan (it cannot run).
fn drop_target(plan: &mut [(Params, Vec<Target>, u32)], t: Target) {
    for (_, ts, _) in plan.iter_mut() {
        ts.retain(|x| *x != t);
    }
}

fn git_revision(root: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = run(&["rev-parse", "HEAD"])?;
    let dirty = run(&["status", "--porcelain", "--", "crates", "migrations"])
        .is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}+dirty") } else { head })
}

fn write_json(path: &Path, results: &Results) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(results).context("encoding results")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
