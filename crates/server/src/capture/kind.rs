//! The capture modes themselves: what `--capture` chooses, the name the
//! database's `pglive_capture_mode()` knows each by, and the
//! `application_name` each mode's connections carry. The bottom of capture:
//! it names no other module, so every one may name it.

use clap::ValueEnum;

/// How pglive learns which rows changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum CaptureMode {
    /// Statement-level triggers NOTIFY; one LISTEN connection (the default:
    /// needs no server configuration, costs writers NOTIFY's commit lock).
    #[default]
    Notify,
    /// Logical replication (pgoutput) through a slot pglive owns; the
    /// triggers are detached, so writers pay nothing. Needs `wal_level =
    /// logical` and a role with the REPLICATION attribute.
    Wal,
}

impl CaptureMode {
    /// The name the database's `pglive_capture_mode()` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Notify => "notify",
            CaptureMode::Wal => "wal",
        }
    }

    /// The `application_name` of the mode's capture connections, by which
    /// a server of the other mode is recognized (and operators find them in
    /// `pg_stat_activity`): the listener's session for NOTIFY, the control
    /// connection and the replication session for WAL.
    pub fn application_name(self) -> &'static str {
        match self {
            CaptureMode::Notify => "pglive_listener",
            CaptureMode::Wal => "pglive_wal",
        }
    }

    /// `url` with the mode's `application_name` added, for the capture
    /// connections made from a database URL.
    pub fn connection_url(self, url: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={}", self.application_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_urls_carry_the_application_name() {
        assert_eq!(
            CaptureMode::Notify.connection_url("postgres://h/db"),
            "postgres://h/db?application_name=pglive_listener"
        );
        assert_eq!(
            CaptureMode::Wal.connection_url("postgres://h/db?sslmode=disable"),
            "postgres://h/db?sslmode=disable&application_name=pglive_wal"
        );
    }
}
