//! Where WAL capture reads from: the database URL and the slot, checked
//! once at start, and the replication session's parameters made from them.

use std::str::FromStr;
use std::time::Duration;

use pgwire_replication::ReplicationConfig;

use crate::capture::error::CaptureError;
use crate::capture::kind::CaptureMode;
use crate::capture::slot;

/// The publication `pglive_capture_mode('wal')` keeps in step.
pub const PUBLICATION: &str = "pglive";

/// How long a query on the control connection may take.
pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Events buffered between the replication worker and this task: one per
/// message (a row's key columns, or a transaction boundary). When it is
/// full, the worker stops reading the socket and the walsender waits.
const EVENT_BUFFER: usize = 1024;
/// How soon a confirmed position reaches the server.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Where WAL capture reads from.
#[derive(Debug, Clone)]
pub struct Settings {
    url: String,
    slot: String,
}

impl Settings {
    /// The slot is `slot_name`, else `pglive_<database>`.
    pub fn new(database_url: &str, slot_name: Option<&str>) -> Result<Settings, CaptureError> {
        let slot = match slot_name {
            Some(name) => name.to_owned(),
            None => slot::default_name(database_url)?,
        };
        slot::validate(&slot)?;
        // Refuse what the replication session could not use, now.
        replication_config(database_url, &slot)?;
        Ok(Settings {
            url: database_url.to_owned(),
            slot,
        })
    }

    /// The database URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn slot(&self) -> &str {
        &self.slot
    }
}

/// The session's parameters from the database URL (any libpq form
/// `tokio-postgres` reads). TLS is not offered, as for the pool.
pub(super) fn replication_config(url: &str, slot: &str) -> Result<ReplicationConfig, CaptureError> {
    let pg = tokio_postgres::Config::from_str(url).map_err(|e| CaptureError::Url(e.to_string()))?;
    if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(CaptureError::Url(
            "sslmode=require: pglive's connections do not use TLS".into(),
        ));
    }
    let user = pg
        .get_user()
        .ok_or_else(|| CaptureError::Url("no user name".into()))?;
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let database = pg.get_dbname().unwrap_or(user);
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let config = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Unix(dir)) => ReplicationConfig::unix(
            dir.to_string_lossy(),
            port,
            user,
            password,
            database,
            slot,
            PUBLICATION,
        ),
        Some(tokio_postgres::config::Host::Tcp(host)) => {
            ReplicationConfig::new(host.as_str(), user, password, database, slot, PUBLICATION)
                .with_port(port)
        }
        None => ReplicationConfig::new("localhost", user, password, database, slot, PUBLICATION)
            .with_port(port),
    };
    Ok(config
        .with_status_interval(STATUS_INTERVAL)
        .with_buffer_size(EVENT_BUFFER)
        .with_application_name(CaptureMode::Wal.application_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_replication_configs() {
        let c = replication_config("postgres://bob:s%40cret@db.example:6543/app", "s").unwrap();
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.user.as_str(),
                c.password.as_str()
            ),
            ("db.example", 6543, "bob", "s@cret")
        );
        assert_eq!((c.database.as_str(), c.slot.as_str()), ("app", "s"));
        assert_eq!(
            c.application_name.as_deref(),
            Some(CaptureMode::Wal.application_name())
        );
        let c = replication_config("host=/run/postgresql user=bob", "s").unwrap();
        assert!(c.is_unix_socket());
        assert_eq!(c.database, "bob");
        assert!(replication_config("postgres://bob@h/db?sslmode=require", "s").is_err());
        assert!(
            replication_config("postgres://h/db", "s").is_err(),
            "no user"
        );
    }
}
