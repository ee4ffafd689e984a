//! What the clients saw, checked: their rows against a fresh read of the
//! table, the writes that reached them (and none of another tenant's), and
//! their problems.

use std::collections::HashMap;

use anyhow::{Context, Result};
use serde::Serialize;

use super::receiver::LiveOutcome;
use super::row::{Row, row_sig};
use super::writer::{OpRecord, effective_receipts};
use crate::report::{Percentiles, percentiles};

/// What the clients' states are checked against.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Convergence {
    pub clients_converged: usize,
    pub clients_diverged: usize,
    pub examples: Vec<String>,
    /// The last client's last change of rows, after the last commit.
    pub all_converged_after_last_commit_ms: Option<f64>,
}

/// Compares every client's rows with `want[tenant]` (a fresh read).
fn converge(
    outcomes: &[LiveOutcome],
    tenant_of: &[usize],
    want: &[HashMap<i64, u64>],
    last_commit_us: u64,
) -> Convergence {
    let mut c = Convergence::default();
    let mut last_change = 0u64;
    for (i, o) in outcomes.iter().enumerate() {
        let w = &want[tenant_of[i]];
        if &o.rows == w {
            c.clients_converged += 1;
            last_change = last_change.max(o.last_change_us);
        } else {
            c.clients_diverged += 1;
            if c.examples.len() < 5 {
                let missing = w.keys().filter(|k| !o.rows.contains_key(k)).count();
                let extra = o.rows.keys().filter(|k| !w.contains_key(k)).count();
                let differ = w
                    .iter()
                    .filter(|(k, v)| o.rows.get(k).is_some_and(|x| x != *v))
                    .count();
                c.examples.push(format!(
                    "client {i}: {} rows, want {}: {missing} missing, {extra} extra, {differ} different",
                    o.rows.len(),
                    w.len()
                ));
            }
        }
    }
    if c.clients_diverged == 0 {
        c.all_converged_after_last_commit_ms =
            Some(last_change.saturating_sub(last_commit_us) as f64 / 1000.0);
    }
    c
}

/// A fresh read of `items` as the table owner (no policies), per tenant.
async fn final_rows(db_url: &str, tenants: &[String]) -> Result<Vec<HashMap<i64, u64>>> {
    let url = db_url.to_string();
    // The test kit's typed read (the server's own row type and decoding).
    let values = tokio::spawn(async move {
        pglive_testkit::fresh_at::<pglive_schema::Item>(&url, "SELECT * FROM items ORDER BY id")
            .await
    })
    .await
    .map_err(|e| anyhow::anyhow!("final read failed: {e}"))?;
    let index: HashMap<&str, usize> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut want = vec![HashMap::new(); tenants.len()];
    for v in values {
        // As a client decodes it: the server's own serialization of the row.
        let text = v.to_string();
        let row: Row<'_> =
            serde_json::from_str(&text).context("decoding a row of the final read")?;
        if let Some(&t) = index.get(row.tenant.as_ref()) {
            want[t].insert(row.id.0, row_sig(&row));
        }
    }
    Ok(want)
}

/// Deliveries of the writes to the clients that should see them (RLS: the
/// tenant's clients; RECONNECT: all).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TDeliveries {
    pub expected: u64,
    pub seen: u64,
    pub missing: u64,
    pub latency_ms: Percentiles,
    /// Writes that reached a client of another tenant (must be 0).
    pub foreign_deliveries: u64,
}

/// Counts the deliveries to every client from operation `first_op` on
/// (client i in tenant `tenant_of[i]`).
fn deliveries(
    ops: &[OpRecord],
    outcomes: &[LiveOutcome],
    tenant_of: &[usize],
    first_op: usize,
) -> TDeliveries {
    let mut d = TDeliveries::default();
    let mut lat = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let eff = effective_receipts(ops, &o.recv);
        for (s, op) in ops.iter().enumerate() {
            let mine = op.tenant as usize == tenant_of[i];
            let got = eff[s];
            if !mine {
                if o.recv.get(s).is_some_and(|&r| r != 0) {
                    d.foreign_deliveries += 1;
                }
                continue;
            }
            if s < first_op {
                continue;
            }
            d.expected += 1;
            if got == 0 {
                d.missing += 1;
            } else {
                d.seen += 1;
                let recv_us = u64::from(got - 1);
                lat.push(u32::try_from(recv_us.saturating_sub(op.commit_us)).unwrap_or(u32::MAX));
            }
        }
    }
    d.latency_ms = percentiles(lat);
    d
}

/// Client-side problems, summed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientProblems {
    pub foreign_rows: u64,
    pub foreign_example: Option<String>,
    pub error_frames: u64,
    pub decode_errors: u64,
    pub version_gaps: u64,
    pub unknown_deletes: u64,
    pub closed_early: usize,
    pub examples: Vec<String>,
}

/// Sums the clients' problems, with a few examples.
fn problems(outcomes: &[LiveOutcome]) -> ClientProblems {
    let mut p = ClientProblems::default();
    for o in outcomes {
        p.foreign_rows += o.foreign_rows;
        if p.foreign_example.is_none() {
            p.foreign_example.clone_from(&o.foreign_example);
        }
        p.error_frames += o.error_frames;
        p.decode_errors += o.decode_errors;
        p.version_gaps += o.version_gaps;
        p.unknown_deletes += o.unknown_deletes;
        if o.closed_early {
            p.closed_early += 1;
        }
        for e in [&o.error, &o.error_example].into_iter().flatten() {
            if p.examples.len() < 5 && !p.examples.contains(e) {
                p.examples.push(e.clone());
            }
        }
    }
    p
}

/// The clients' rows, deliveries and problems, checked.
pub struct Checked {
    pub convergence: Convergence,
    pub deliveries: TDeliveries,
    pub problems: ClientProblems,
}

/// Checks what the clients saw (client i in tenant `tenant_of[i]`) against
/// the writer's `ops` and a fresh read of `items` at `db_url`.
pub async fn check(
    db_url: &str,
    tenants: &[String],
    ops: &[OpRecord],
    outcomes: &[LiveOutcome],
    tenant_of: &[usize],
) -> Result<Checked> {
    let want = final_rows(db_url, tenants).await?;
    let last_commit = ops.iter().map(|o| o.commit_us).max().unwrap_or(0);
    Ok(Checked {
        convergence: converge(outcomes, tenant_of, &want, last_commit),
        deliveries: deliveries(ops, outcomes, tenant_of, 0),
        problems: problems(outcomes),
    })
}
