//! Scenario W's parameters: the capture modes, statements and writer
//! counts it runs, its subscribers, and its time limits.

use anyhow::{Context, Result};
use serde::Serialize;

/// How the written table is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `items_unwatched`: no pglive triggers, no server.
    Unwatched,
    /// `items` with pglive's NOTIFY triggers, pglive running (its default).
    Notify,
    /// `items`, pglive running with `--capture wal`.
    Wal,
    /// `items` set up for WAL capture (its publication, no triggers), read
    /// by a bare `pg_recvlogical` on the same publication instead of
    /// pglive: the least any logical-replication consumer costs the
    /// writers here, the peer of `wal`.
    Recvlogical,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Unwatched => "unwatched",
            Mode::Notify => "notify",
            Mode::Wal => "wal",
            Mode::Recvlogical => "recvlogical",
        }
    }
}

/// The single-row statement each transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    Update,
    Insert,
}

impl WriteOp {
    pub fn name(self) -> &'static str {
        match self {
            WriteOp::Update => "update",
            WriteOp::Insert => "insert",
        }
    }
}

/// Scenario W's parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub writers: Vec<usize>,
    pub ops: Vec<WriteOp>,
    pub modes: Vec<Mode>,
    /// Subscribers of the "with subscribers" cases (0 = only without).
    pub subscribers: usize,
    /// Seeded rows; UPDATE picks a random one of them.
    pub rows: usize,
    /// Seconds of writing per case.
    pub duration_s: f64,
    pub connect_concurrency: usize,
    /// Longest wait for every subscriber to have the fence write.
    pub catch_up_timeout_s: f64,
    /// After the fence, frames may still be in flight to subscribers that
    /// missed it; this much silence ends the wait for them.
    pub quiet_s: f64,
}

fn parse_list<T>(list: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    let v: Vec<T> = list
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| f(x).with_context(|| format!("{what}: unknown value {x:?}")))
        .collect::<Result<_>>()?;
    anyhow::ensure!(!v.is_empty(), "{what}: empty list");
    Ok(v)
}

impl Config {
    #[allow(clippy::too_many_arguments)]
    pub fn from_flags(
        writers: &str,
        ops: &str,
        modes: &str,
        clients: Option<usize>,
        rows: Option<usize>,
        duration: Option<f64>,
        connect_concurrency: Option<usize>,
        tail_timeout: Option<f64>,
        quiet: Option<f64>,
    ) -> Result<Config> {
        Ok(Config {
            writers: parse_list(writers, "--writers", |x| {
                x.parse::<usize>().ok().filter(|n| (1..=256).contains(n))
            })?,
            ops: parse_list(ops, "--ops", |x| match x {
                "update" => Some(WriteOp::Update),
                "insert" => Some(WriteOp::Insert),
                _ => None,
            })?,
            modes: parse_list(modes, "--modes", |x| match x {
                "unwatched" => Some(Mode::Unwatched),
                "notify" => Some(Mode::Notify),
                "wal" => Some(Mode::Wal),
                "recvlogical" => Some(Mode::Recvlogical),
                _ => None,
            })?,
            subscribers: clients.unwrap_or(1_000),
            rows: rows.unwrap_or(10_000).max(2),
            duration_s: duration.unwrap_or(10.0).max(0.1),
            connect_concurrency: connect_concurrency.unwrap_or(128).max(1),
            catch_up_timeout_s: tail_timeout.unwrap_or(60.0),
            quiet_s: quiet.unwrap_or(2.0),
        })
    }

    pub fn description(&self) -> String {
        format!(
            "writers {:?} × {} for {} s per case on {} rows; modes {}; subscribers 0 and {}",
            self.writers,
            self.ops
                .iter()
                .map(|o| o.name())
                .collect::<Vec<_>>()
                .join("/"),
            self.duration_s,
            self.rows,
            self.modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join("/"),
            self.subscribers
        )
    }

    /// The setups: one database and server each.
    pub fn setups(&self) -> Vec<(Mode, usize)> {
        let mut v = Vec::new();
        for &m in &self.modes {
            v.push((m, 0));
            // Only pglive has subscribers.
            if matches!(m, Mode::Notify | Mode::Wal) && self.subscribers > 0 {
                v.push((m, self.subscribers));
            }
        }
        v
    }

    fn cases_per_setup(&self) -> usize {
        self.writers.len() * self.ops.len()
    }

    pub fn setup_deadline_s(&self, subscribers: usize) -> f64 {
        let per_case = self.duration_s + 30.0 + self.catch_up_timeout_s + self.quiet_s;
        90.0 + subscribers as f64 / 50.0 + per_case * self.cases_per_setup() as f64
    }

    /// An upper bound for the whole scenario (for the watchdog).
    pub fn deadline_s(&self) -> f64 {
        self.setups()
            .iter()
            .map(|&(_, s)| self.setup_deadline_s(s))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setups_and_flags() -> Result<()> {
        let c = Config::from_flags(
            "1,8",
            "update,insert",
            "unwatched,notify,wal,recvlogical",
            None,
            None,
            None,
            None,
            None,
            None,
        )?;
        assert_eq!(
            c.setups(),
            vec![
                (Mode::Unwatched, 0),
                (Mode::Notify, 0),
                (Mode::Notify, 1_000),
                (Mode::Wal, 0),
                (Mode::Wal, 1_000),
                (Mode::Recvlogical, 0)
            ]
        );
        assert_eq!(
            (c.rows, c.duration_s, c.cases_per_setup()),
            (10_000, 10.0, 4)
        );
        assert!(
            Config::from_flags("0", "update", "notify", None, None, None, None, None, None)
                .is_err()
        );
        assert!(
            Config::from_flags("1", "delete", "notify", None, None, None, None, None, None)
                .is_err()
        );
        Ok(())
    }
}
