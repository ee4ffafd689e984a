//! The plan's runs, family by family: each scenario's table printed and
//! added to the Markdown, its results added to the JSON, both saved after
//! every scenario. Each returns whether something went wrong (errors,
//! missing deliveries, clients not ready).

use anyhow::Result;

use crate::ctx::Ctx;
use crate::plan::Round;
use crate::results::{Output, RelResult, ScenarioResult, TenantResult};
use crate::scenario::fanout::{self, FloorRatioSpread, FloorRatios, Target, TargetReport};
use crate::scenario::related::params::RParams;
use crate::scenario::related::report::{RelReport, VsS2, rel_table};
use crate::scenario::tenants::params::{Kind, TParams};
use crate::scenario::tenants::report::ReconnectReport;
use crate::scenario::tenants::table::{reconnect_table, rls_table};
use crate::scenario::{reconnect, rel, rls, writers};

/// Scenario W.
pub async fn writers(ctx: &Ctx, wc: &writers::Config, out: &mut Output) -> Result<bool> {
    let res = writers::run(ctx, wc).await;
    let failed = res.failed();
    let text = format!(
        "\n== W: {}\n{}",
        wc.description(),
        writers::table(&res, false)
    );
    println!("{text}");
    out.markdown(&format!(
        "\n### W: {}\n\n{}",
        wc.description(),
        writers::table(&res, true)
    ));
    out.results.writers = Some(res);
    out.save()?;
    Ok(failed)
}

/// S1–S6, each round on its servers in turn; after a scenario's last of
/// `repeat` rounds, the spread of its ratios to the floor.
pub async fn fanout(ctx: &Ctx, rounds: Vec<Round>, repeat: u32, out: &mut Output) -> Result<bool> {
    let mut failed = false;
    for (p, targets, round) in rounds {
        if targets.is_empty() {
            eprintln!("pglive-bench: {}: no target can run; skipped", p.name);
            continue;
        }
        let run_name = if repeat > 1 {
            format!("{} (run {round} of {})", p.name, repeat)
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
            let rep = fanout::run_target(ctx, &p, t).await;
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
        res.floor_ratios = FloorRatios::of(res.pglive.as_ref(), res.floor.as_ref());
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
            fanout::table(&reports, false)
        );
        println!("{text}");
        out.markdown(&format!(
            "\n### {}: {}\n\n{}{}",
            run_name,
            p.description,
            fanout::table(&reports, true),
            if summary.is_empty() {
                String::new()
            } else {
                format!("\n{summary}")
            }
        ));
        out.results.scenarios.push(res);
        if repeat > 1 && round == repeat {
            let runs: Vec<&FloorRatios> = out
                .results
                .scenarios
                .iter()
                .filter(|r| r.params.name == p.name)
                .filter_map(|r| r.floor_ratios.as_ref())
                .collect();
            if !runs.is_empty() {
                let spread = FloorRatioSpread::of(&p.name, &runs);
                println!("{}\n", spread.summary());
                out.markdown(&format!("\n{}\n", spread.summary()));
                out.results.floor_ratio_spreads.push(spread);
            }
        }
        // Written after every scenario, so a long `all` leaves partial results.
        out.save()?;
    }
    Ok(failed)
}

/// RLS and RECONNECT (RECONNECT twice: resuming, then with snapshots).
pub async fn tenants(ctx: &Ctx, plans: Vec<TParams>, out: &mut Output) -> Result<bool> {
    let mut failed = false;
    for p in plans {
        eprintln!("pglive-bench: {} — {}", p.name, p.description);
        let mut res = TenantResult {
            params: p.clone(),
            rls: None,
            reconnect: Vec::new(),
        };
        let table = match p.kind {
            Kind::Rls => {
                let rep = rls::run(ctx, &p).await;
                failed |= rep.failed();
                let t = (rls_table(&[&rep], false), rls_table(&[&rep], true));
                res.rls = Some(rep);
                t
            }
            Kind::Reconnect => {
                for resume in [true, false] {
                    let rep = reconnect::run(ctx, &p, resume).await;
                    // Every resubscribe must be answered `resumed` in the smoke.
                    failed |= rep.failed(resume && p.smoke);
                    res.reconnect.push(rep);
                }
                let reps: Vec<&ReconnectReport> = res.reconnect.iter().collect();
                (reconnect_table(&reps, false), reconnect_table(&reps, true))
            }
        };
        println!("\n== {}: {}\n{}", p.name, p.description, table.0);
        out.markdown(&format!(
            "\n### {}: {}\n\n{}",
            p.name, p.description, table.1
        ));
        out.results.tenant_scenarios.push(res);
        out.save()?;
    }
    Ok(failed)
}

/// REL and REL-MOVE (and REL-SMOKE), each against pglive's S2 of this
/// invocation when it ran; one table for all of them.
pub async fn related(ctx: &Ctx, plans: Vec<RParams>, out: &mut Output) -> Result<bool> {
    if plans.is_empty() {
        return Ok(false);
    }
    let mut failed = false;
    let s2 = out
        .results
        .scenarios
        .iter()
        .filter(|r| r.params.name == "S2")
        .find_map(|r| r.pglive.clone());
    let mut reports: Vec<RelReport> = Vec::new();
    for p in &plans {
        eprintln!("pglive-bench: {} — {}", p.name, p.description);
        let mut rep = rel::run(ctx, p).await;
        failed |= rep.failed();
        rep.vs_s2 = s2.as_ref().and_then(|s2| VsS2::of(&rep, s2));
        let table = rel_table(&[&rep], false);
        println!("\n== {}: {}\n{}", p.name, p.description, table);
        out.markdown(&format!(
            "\n### {}: {}\n\n{}",
            p.name,
            p.description,
            rel_table(&[&rep], true)
        ));
        reports.push(rep.clone());
        out.results.related_scenarios.push(RelResult {
            params: p.clone(),
            report: rep,
        });
        out.save()?;
    }
    if reports.len() > 1 {
        let all: Vec<&RelReport> = reports.iter().collect();
        println!(
            "\n== {}\n{}",
            plans
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
            rel_table(&all, false)
        );
    }
    Ok(failed)
}
