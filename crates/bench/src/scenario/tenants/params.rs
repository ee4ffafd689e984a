//! RLS and RECONNECT by name, and their parameters with the command
//! line's overrides applied.

use anyhow::Result;
use serde::Serialize;

use crate::scenario::{Overrides, Schedule};

pub const NAMES: [&str; 4] = ["RLS", "RLS-SMOKE", "RECONNECT", "RECONNECT-SMOKE"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Rls,
    Reconnect,
}

/// One scenario with every parameter resolved.
#[derive(Debug, Clone, Serialize)]
pub struct TParams {
    pub name: String,
    pub kind: Kind,
    pub description: String,
    pub smoke: bool,
    pub clients: usize,
    /// RLS: tenants (clients are spread evenly over them).
    pub tenants: usize,
    /// Seeded rows (RLS: spread evenly over the tenants).
    pub rows: usize,
    pub rate: f64,
    /// RLS: all writes; RECONNECT: writes before the drop.
    pub writes: usize,
    /// RECONNECT: writes from the drop on.
    pub writes_during: usize,
    #[serde(flatten)]
    pub schedule: Schedule,
    /// RLS: `SELECT pglive_watch('items', partition => 'tenant')` first.
    pub partition_hint: bool,
}

/// Command-line overrides: those of S1–S6 (`batch` and `mix` do not
/// apply), and the tenants and the partition hint.
#[derive(Debug, Clone, Default)]
pub struct TOverrides {
    pub common: Overrides,
    pub tenants: Option<usize>,
    pub partition_hint: bool,
}

pub fn is_name(name: &str) -> bool {
    NAMES.contains(&name.to_ascii_uppercase().as_str())
}

pub fn params(name: &str, o: &TOverrides) -> Result<TParams> {
    let upper = name.to_ascii_uppercase();
    // (kind, clients, tenants, rows, rate, writes, writes during)
    let (kind, clients, tenants, rows, rate, writes, during) = match upper.as_str() {
        "RLS" => (Kind::Rls, 1_000, 100, 10_000, 20.0, 600, 0),
        "RLS-SMOKE" => (Kind::Rls, 20, 4, 200, 40.0, 20, 0),
        "RECONNECT" => (Kind::Reconnect, 1_000, 1, 10_000, 20.0, 50, 60),
        "RECONNECT-SMOKE" => (Kind::Reconnect, 10, 1, 200, 40.0, 10, 20),
        other => anyhow::bail!("unknown scenario {other:?}"),
    };
    let smoke = upper.ends_with("-SMOKE");
    let clients = o.common.clients.unwrap_or(clients).max(1);
    let tenants = match kind {
        Kind::Rls => o.tenants.unwrap_or(tenants).clamp(1, clients),
        Kind::Reconnect => 1,
    };
    let rows = o.common.rows.unwrap_or(rows).max(tenants);
    let rate = o.common.rate.unwrap_or(rate).max(0.0);
    let writes = match (o.common.writes, o.common.duration) {
        (Some(w), _) => w,
        (None, Some(d)) if rate > 0.0 && kind == Kind::Rls => (rate * d).round() as usize,
        _ => writes,
    }
    .max(1);
    let connect_timeout_s = 30.0 + clients as f64 / 50.0;
    let rounds = if kind == Kind::Reconnect { 2.0 } else { 1.0 };
    let margin = if smoke { 30.0 } else { 90.0 };
    let schedule = o.common.schedule(
        smoke,
        connect_timeout_s,
        writes + during,
        rate,
        rounds,
        margin,
    );
    let description = match kind {
        Kind::Rls => format!(
            "{clients} clients in {tenants} tenants, each with its own JWT, on all items under row-level security ({rows} rows); {writes} writes at {rate}/s to random tenants; {}",
            if o.partition_hint {
                "partition hint on (pglive_watch('items', partition => 'tenant'))"
            } else {
                "no partition hint"
            }
        ),
        Kind::Reconnect => format!(
            "{clients} clients on all items ({rows} rows); {writes} writes, then every client drops and reconnects while {during} more writes go on at {rate}/s; resume (since) vs snapshot"
        ),
    };
    Ok(TParams {
        name: upper,
        kind,
        description,
        smoke,
        clients,
        tenants,
        rows,
        rate,
        writes,
        writes_during: if kind == Kind::Reconnect {
            during.max(1)
        } else {
            0
        },
        schedule,
        partition_hint: o.partition_hint && kind == Kind::Rls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_defaults() -> Result<()> {
        let rls = params("rls", &TOverrides::default())?;
        assert_eq!(
            (rls.clients, rls.tenants, rls.rows, rls.writes),
            (1_000, 100, 10_000, 600)
        );
        assert!(!rls.partition_hint);
        let smoke = params(
            "RLS-SMOKE",
            &TOverrides {
                partition_hint: true,
                ..TOverrides::default()
            },
        )?;
        assert!(smoke.smoke && smoke.partition_hint);
        let rc = params("reconnect", &TOverrides::default())?;
        assert_eq!(
            (rc.clients, rc.rows, rc.writes, rc.writes_during),
            (1_000, 10_000, 50, 60)
        );
        assert!(
            !params(
                "reconnect",
                &TOverrides {
                    partition_hint: true,
                    ..TOverrides::default()
                }
            )?
            .partition_hint
        );
        assert!(params("nope", &TOverrides::default()).is_err());
        Ok(())
    }
}
