//! What one invocation runs, from its command line: W, then each S1–S6
//! scenario on its servers (`--repeat` times), then RLS and RECONNECT, then
//! REL and REL-MOVE (after S2, which they are measured against).

use anyhow::Result;

use crate::cli::Cli;
use crate::scenario::fanout::Target;
use crate::scenario::related::params::{self as related, RParams};
use crate::scenario::tenants::params::{self as tenants, Kind, TOverrides, TParams};
use crate::scenario::writers;
use crate::scenario::{self, Overrides, Params};

/// One run of an S1–S6 scenario: its parameters, its servers in the order
/// they run, and which of the `--repeat` runs it is (1-based).
pub type Round = (Params, Vec<Target>, u32);

/// Everything one invocation runs.
pub struct Plan {
    /// The scenario named on the command line, lowercased.
    pub which: String,
    pub smoke: bool,
    /// Scenario W, when it was named.
    pub writers: Option<writers::Config>,
    pub fanout: Vec<Round>,
    pub tenants: Vec<TParams>,
    /// REL, REL-MOVE (REL runs both) and REL-SMOKE.
    pub related: Vec<RParams>,
}

/// Parses `--targets`.
pub fn parse_targets(list: &str) -> Result<Vec<Target>> {
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

impl Plan {
    pub fn of(cli: &Cli) -> Result<Plan> {
        let which = cli.scenario.to_ascii_lowercase();
        let smoke = which == "smoke";
        let writers_scenario = matches!(which.as_str(), "w" | "writers");
        let names: Vec<String> = match which.as_str() {
            "all" => scenario::NAMES.iter().map(|s| s.to_string()).collect(),
            // REL's targets are relative to S2's, measured in the same
            // invocation (pglive only: see below).
            _ if related::wants_s2(&which) => vec!["S2".to_string()],
            _ if writers_scenario || tenants::is_name(&which) || related::is_name(&which) => {
                Vec::new()
            }
            _ => vec![cli.scenario.clone()],
        };
        let tenant_names: Vec<&str> = match which.as_str() {
            "smoke" => vec!["RLS-SMOKE", "RECONNECT-SMOKE"],
            w if tenants::is_name(w) => vec![w],
            _ => Vec::new(),
        };
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
        let toverrides = TOverrides {
            common: overrides.clone(),
            tenants: cli.tenants,
            partition_hint: cli.partition_hint,
        };
        let tplans: Vec<TParams> = tenant_names
            .iter()
            .map(|n| tenants::params(n, &toverrides))
            .collect::<Result<_>>()?;
        anyhow::ensure!(
            !cli.partition_hint || tplans.iter().any(|p| p.kind == Kind::Rls),
            "--partition-hint applies to the RLS scenarios only"
        );
        let related_names: Vec<&str> = match which.as_str() {
            "smoke" => vec!["REL-SMOKE"],
            w => related::expand(w),
        };
        let rplans: Vec<RParams> = related_names
            .iter()
            .map(|n| related::params(n, &overrides))
            .collect::<Result<_>>()?;
        // With REL, the overrides apply to S2 as well: like is compared
        // with like (S2's rows are items, REL's tasks).
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
                    // REL compares with pglive's S2 only.
                    None if related::wants_s2(&which) => vec![Target::Pglive],
                    None => parse_targets(scenario::default_targets(&p.name))?,
                };
                anyhow::Ok((p, t))
            })
            .collect::<Result<_>>()?;
        // Repeated runs of a scenario follow each other; every other one runs
        // the servers in reverse order, so that neither always goes first
        // (a drifting machine would otherwise favour one of them).
        let fanout: Vec<Round> = plan
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
        let writers = if writers_scenario {
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
        Ok(Plan {
            which,
            smoke,
            writers,
            fanout,
            tenants: tplans,
            related: rplans,
        })
    }

    /// The most clients any one run connects.
    pub fn max_clients(&self) -> usize {
        self.fanout
            .iter()
            .map(|(p, _, _)| p.clients)
            .chain(self.writers.iter().map(|w| w.subscribers))
            .chain(self.tenants.iter().map(|p| p.clients))
            .chain(self.related.iter().map(|p| p.clients))
            .max()
            .unwrap_or(1)
    }

    /// An upper bound of the whole invocation, for the watchdog. Building
    /// the floor (a few minutes at most on a cold cache) comes on top of
    /// the runs.
    pub fn deadline_s(&self) -> f64 {
        self.fanout
            .iter()
            .map(|(p, ts, _)| p.schedule.deadline_s * ts.len() as f64)
            .sum::<f64>()
            + self
                .writers
                .as_ref()
                .map_or(0.0, writers::Config::deadline_s)
            + self
                .tenants
                .iter()
                .map(|p| match p.kind {
                    Kind::Rls => p.schedule.deadline_s,
                    Kind::Reconnect => 2.0 * p.schedule.deadline_s,
                })
                .sum::<f64>()
            + self
                .related
                .iter()
                .map(|p| p.schedule.deadline_s)
                .sum::<f64>()
            + if self.wants(Target::Floor) {
                900.0
            } else {
                0.0
            }
            + 240.0
    }

    /// Whether some scenario of the plan runs `t`.
    pub fn wants(&self, t: Target) -> bool {
        self.fanout.iter().any(|(_, ts, _)| ts.contains(&t))
    }

    /// Removes `t` from every scenario of the plan (it cannot run).
    pub fn drop_target(&mut self, t: Target) {
        for (_, ts, _) in self.fanout.iter_mut() {
            ts.retain(|x| *x != t);
        }
    }
}
