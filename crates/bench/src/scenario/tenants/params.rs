//! RLS and RECONNECT by name, and their parameters with the command
//! line's overrides applied.

use anyhow::Result;
use serde::Serialize;

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
    pub seed: u64,
    pub connect_concurrency: usize,
    pub settle_s: f64,
    pub quiet_s: f64,
    pub tail_timeout_s: f64,
    pub connect_timeout_s: f64,
    pub deadline_s: f64,
    /// RLS: `SELECT pglive_watch('items', partition => 'tenant')` first.
    pub partition_hint: bool,
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct TOverrides {
    pub clients: Option<usize>,
    pub tenants: Option<usize>,
    pub rows: Option<usize>,
    pub rate: Option<f64>,
    pub writes: Option<usize>,
    pub duration: Option<f64>,
    pub seed: Option<u64>,
    pub connect_concurrency: Option<usize>,
    pub settle: Option<f64>,
    pub quiet: Option<f64>,
    pub tail_timeout: Option<f64>,
    pub deadline: Option<f64>,
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
    let clients = o.clients.unwrap_or(clients).max(1);
    let tenants = match kind {
        Kind::Rls => o.tenants.unwrap_or(tenants).clamp(1, clients),
        Kind::Reconnect => 1,
    };
    let rows = o.rows.unwrap_or(rows).max(tenants);
    let rate = o.rate.unwrap_or(rate).max(0.0);
    let writes = match (o.writes, o.duration) {
        (Some(w), _) => w,
        (None, Some(d)) if rate > 0.0 && kind == Kind::Rls => (rate * d).round() as usize,
        _ => writes,
    }
    .max(1);
    let settle_s = o.settle.unwrap_or(if smoke { 0.0 } else { 11.0 });
    let quiet_s = o.quiet.unwrap_or(if smoke { 0.5 } else { 2.0 });
    let tail_timeout_s = o.tail_timeout.unwrap_or(if smoke { 10.0 } else { 60.0 });
    let connect_timeout_s = 30.0 + clients as f64 / 50.0;
    let total_writes = (writes + during) as f64;
    let write_s = if rate > 0.0 {
        total_writes / rate * 1.5 + 10.0
    } else {
        total_writes * 0.02 + 10.0
    };
    let rounds = if kind == Kind::Reconnect { 2.0 } else { 1.0 };
    let deadline_s = o.deadline.unwrap_or(
        connect_timeout_s * rounds
            + settle_s
            + write_s
            + tail_timeout_s * rounds
            + if smoke { 30.0 } else { 90.0 },
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
        seed: o.seed.unwrap_or(42),
        connect_concurrency: o.connect_concurrency.unwrap_or(128).max(1),
        settle_s,
        quiet_s,
        tail_timeout_s,
        connect_timeout_s,
        deadline_s,
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
